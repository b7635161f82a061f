//! Load figures for call recording: what N concurrent recordings cost the
//! server in CPU and memory, through the real path (SIP calls with RTP, the
//! HTTP API, the media engine's taps, the writer threads, the WAV files).
//! With `stream`, the same for N call audio WebSockets
//! (`GET /v1/calls/{call}/media`, 8 kHz, both directions, each read by a
//! `tapir-client` `MediaStream`): socket encoding and writes included, and
//! the frames the server dropped for slow readers counted from the streams'
//! stats frames.
//!
//! `cargo run -p tapir-server --example record_load -- [calls] [seconds] [record|stream]`
//!
//! The server runs in this process with SIP on loopback; N phones (plain UDP
//! sockets) register, route point 2001 calls each, each answers and sends
//! 20 ms PCMU packets. The process's CPU time (all threads, from /proc) and
//! resident memory are measured for `seconds` with the calls flowing and no
//! recording, then again with every call recorded (stereo); the difference
//! divided by N is the cost of one recording. The phones' own sending is in
//! both phases. Last line: `FIGURES calls=… cpu_pct_base=… cpu_pct_rec=…
//! cpu_pct_per_rec=… rss_kib_per_rec=… dropped_frames=… bytes=…`.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tapir_sip::auth::{Algorithm, DigestInput};
use tokio::net::UdpSocket;

/// CPU time of this process (user + system), from /proc.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis((ut + st) * 10)
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn param(header: &str, key: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        let k = k.rsplit(' ').next()?;
        k.eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A SIP request and its final response (bounded).
async fn request(sip: &UdpSocket, server: SocketAddr, msg: &str) -> (u16, String) {
    sip.send_to(msg.as_bytes(), server).await.unwrap();
    let mut buf = vec![0u8; 8192];
    for _ in 0..20 {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sip.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let code: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if code >= 200 {
            return (code, text);
        }
    }
    panic!("no final response");
}

struct Phone {
    user: String,
    sip: UdpSocket,
    media: UdpSocket,
}

impl Phone {
    async fn register(&self, server: SocketAddr) {
        let local = self.sip.local_addr().unwrap();
        let user = &self.user;
        let msg = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-r{cseq}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{user}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: reg-{user}@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\n\
                 Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        let (_, text) = request(&self.sip, server, &msg(1, "")).await;
        let challenge = text
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
            .find(|l| param(l, "algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))
            .unwrap()
            .to_string();
        let realm = param(&challenge, "realm").unwrap();
        let nonce = param(&challenge, "nonce").unwrap();
        let response = DigestInput {
            algorithm: Algorithm::Md5,
            username: user,
            realm: &realm,
            password: "pw",
            method: "REGISTER",
            uri: "sip:127.0.0.1",
            nonce: &nonce,
            nonce_count: "00000001",
            cnonce: "c0ffee",
            qop: "auth",
        }
        .response();
        let auth = format!(
            "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"sip:127.0.0.1\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
             cnonce=\"c0ffee\"\r\n"
        );
        let (code, text) = request(&self.sip, server, &msg(2, &auth)).await;
        assert_eq!(code, 200, "{text}");
    }

    /// Answers the next INVITE; tapir's RTP address.
    async fn answer(&self, server: SocketAddr) -> SocketAddr {
        let mut buf = vec![0u8; 8192];
        let invite = loop {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sip.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.starts_with("INVITE ") {
                break text;
            }
        };
        let port = self.media.local_addr().unwrap().port();
        let local = self.sip.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=sendrecv\r\n"
        );
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for line in invite.lines() {
            let name = line.split(':').next().unwrap_or("").trim();
            if ["Via", "From", "Call-ID", "CSeq"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                ok.push_str(line);
                ok.push_str("\r\n");
            }
            if name.eq_ignore_ascii_case("To") {
                ok.push_str(&format!("{line};tag=p{}\r\n", self.user));
            }
        }
        ok.push_str(&format!(
            "Contact: <sip:{}@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            self.user,
            sdp.len()
        ));
        self.sip.send_to(ok.as_bytes(), server).await.unwrap();
        let port: u16 = invite
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let resp = http
        .post(format!("{base}{path}"))
        .bearer_auth("tok")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// What one reader of a media stream saw.
#[derive(Default)]
struct Seen {
    frames: u64,
    dropped: u64,
}

/// Phase two with call audio WebSockets instead of recordings: one
/// `MediaStream` per call, read as fast as it comes; the server's CPU and
/// RSS with them against `base_cpu` and `rss0`, and the frames received
/// and dropped.
async fn stream_phase(base: &str, call_ids: &[String], seconds: u64, base_cpu: f64, rss0: u64) {
    let client = tapir_client::Client::new(base, "tok").unwrap();
    let seen: Vec<_> = (0..call_ids.len())
        .map(|_| std::sync::Arc::new(std::sync::Mutex::new(Seen::default())))
        .collect();
    let mut readers = Vec::new();
    for (c, seen) in call_ids.iter().zip(&seen) {
        let mut stream = client.media(c, 8000, true).await.unwrap();
        let seen = seen.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let mut s = seen.lock().unwrap();
                match m {
                    tapir_client::MediaMessage::Audio(_) => s.frames += 1,
                    tapir_client::MediaMessage::Stats(v) => {
                        s.dropped = v["dropped"].as_u64().unwrap_or(s.dropped);
                    }
                    tapir_client::MediaMessage::Closed { .. } => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: u64 = seen.iter().map(|s| s.lock().unwrap().frames).sum();
    let cpu = measure(seconds).await;
    let rss1 = rss_kib();
    let frames: u64 = seen.iter().map(|s| s.lock().unwrap().frames).sum::<u64>() - before;
    let dropped: u64 = seen.iter().map(|s| s.lock().unwrap().dropped).sum();
    for r in readers {
        r.abort();
    }
    let n = call_ids.len() as f64;
    let per = (cpu - base_cpu) / n;
    println!(
        "{} calls, {seconds} s each phase: CPU {base_cpu:.1} % of a core without streams, \
         {cpu:.1} % with {} media WebSockets (readers in this process included); RSS +{} KiB; \
         {frames} frames read ({:.0} per stream per second), {dropped} dropped",
        call_ids.len(),
        call_ids.len(),
        rss1.saturating_sub(rss0),
        frames as f64 / n / seconds as f64
    );
    println!(
        "FIGURES calls={} cpu_pct_base={base_cpu:.2} cpu_pct_streams={cpu:.2} \
         cpu_pct_per_stream={per:.4} streams_per_core={:.0} rss_kib_per_stream={:.1} \
         frames={frames} dropped_frames={dropped}",
        call_ids.len(),
        if per > 0.0 { 100.0 / per } else { 0.0 },
        rss1.saturating_sub(rss0) as f64 / n
    );
}

/// CPU % of one core and RSS growth over `seconds`.
async fn measure(seconds: u64) -> f64 {
    let (c0, t0) = (cpu(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    (cpu() - c0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let streams = args.next().as_deref() == Some("stream");
    let dir = std::env::temp_dir().join(format!("tapir-record-load-{}", std::process::id()));
    let mut toml = String::from(
        "[sip]\nlisten = [\"udp:127.0.0.1:0\"]\n[http]\nlisten = \"127.0.0.1:0\"\n\
         admin_token = \"admin\"\nmax_connections = 20000\n[media]\nrtp_timeout = 600.0\n\
         [[lines]]\naddress = \"2001\"\nkind = \"routepoint\"\nmax_calls = 10000\n",
    );
    for i in 0..calls {
        toml.push_str(&format!(
            "[[lines]]\naddress = \"{}\"\nkind = \"phone\"\npassword = \"pw\"\n",
            3000 + i
        ));
    }
    toml.push_str(
        "[[apps]]\nname = \"load\"\ntoken = \"tok\"\nlines = [\"*\"]\n\
         permissions = [\"make_call\"]\n",
    );
    let mut config = tapir_server::Config::from_toml(&toml).unwrap();
    config.data_dir = dir.clone();
    config.recording.max_concurrent = calls + 1;
    config.recording.min_free_mb = 1;
    let s = tapir_server::start(config).await.unwrap();
    let sip = s.sip_addr.unwrap();
    let base = format!("http://{}", s.http_addr);
    let http = reqwest::Client::new();
    http.post(format!("{base}/v1/lines/2001/open"))
        .bearer_auth("tok")
        .json(&json!({"privileges": ["owner"]}))
        .send()
        .await
        .unwrap();

    let mut phones = Vec::new();
    let mut targets = Vec::new();
    let mut call_ids = Vec::new();
    for i in 0..calls {
        let p = Phone {
            user: format!("{}", 3000 + i),
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            media: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        };
        p.register(sip).await;
        let c = post(
            &http,
            &base,
            "/v1/calls",
            json!({"from": "2001", "to": p.user}),
        )
        .await;
        targets.push(p.answer(sip).await);
        call_ids.push(c["id"].as_str().unwrap().to_string());
        phones.push(p);
    }
    // Every phone talks: one task paces them all.
    let sockets: Vec<_> = phones
        .into_iter()
        .map(|p| (p.media, p.sip))
        .zip(targets)
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut pkt = vec![0u8; 172];
        for seq in 0u32.. {
            tick.tick().await;
            for (i, ((media, _sip), to)) in sockets.iter().enumerate() {
                pkt[0] = 0x80;
                pkt[1] = 0;
                pkt[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
                pkt[4..8].copy_from_slice(&(seq * 160).to_be_bytes());
                pkt[8..12].copy_from_slice(&(i as u32).to_be_bytes());
                for (j, b) in pkt[12..].iter_mut().enumerate() {
                    *b = ((j as u32 + seq) % 256) as u8;
                }
                let _ = media.send_to(&pkt, to).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base_cpu = measure(seconds).await;
    let rss0 = rss_kib();
    if streams {
        stream_phase(&base, &call_ids, seconds, base_cpu, rss0).await;
        s.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let mut ids = Vec::new();
    for c in &call_ids {
        let v = post(
            &http,
            &base,
            &format!("/v1/calls/{c}/record"),
            json!({"action": "start"}),
        )
        .await;
        ids.push(v["recording"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rec_cpu = measure(seconds).await;
    let rss1 = rss_kib();
    for c in &call_ids {
        post(
            &http,
            &base,
            &format!("/v1/calls/{c}/record"),
            json!({"action": "stop"}),
        )
        .await;
    }
    let list: Value = http
        .get(format!("{base}/v1/recordings"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recs = list["recordings"].as_array().cloned().unwrap_or_default();
    let dropped: u64 = recs
        .iter()
        .map(|r| r["dropped_frames"].as_u64().unwrap_or(0))
        .sum();
    let bytes: u64 = recs.iter().map(|r| r["size"].as_u64().unwrap_or(0)).sum();
    let mean_ms: u64 = recs
        .iter()
        .map(|r| r["duration_ms"].as_u64().unwrap_or(0))
        .sum::<u64>()
        / recs.len().max(1) as u64;
    let n = calls as f64;
    println!(
        "{calls} calls, {seconds} s each phase: CPU {base_cpu:.1} % of a core without recording, \
         {rec_cpu:.1} % with {calls} recordings; RSS +{} KiB; {} recordings, mean {mean_ms} ms, \
         {dropped} frames dropped",
        rss1.saturating_sub(rss0),
        recs.len()
    );
    println!(
        "FIGURES calls={calls} cpu_pct_base={base_cpu:.2} cpu_pct_rec={rec_cpu:.2} \
         cpu_pct_per_rec={:.4} rss_kib_per_rec={:.1} dropped_frames={dropped} bytes={bytes}",
        (rec_cpu - base_cpu) / n,
        rss1.saturating_sub(rss0) as f64 / n
    );
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
