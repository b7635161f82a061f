//! A phone written by hand for the real-socket media tests: phone 1001 with
//! SIP on one UDP socket and RTP on another, both on loopback. It registers
//! with an MD5 digest, waits (bounded) for tapir's requests, answers an
//! INVITE with SDP naming its media socket, sends in-dialog requests, and
//! sends and hears PCMU and RFC 4733 digits. Not every test binary uses
//! every method, hence the `dead_code` allowance.

#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use super::sip::{digest, header, sdp, tag_of};
use super::udp_request;
use std::net::SocketAddr;
use std::time::Duration;
use tapir_media::g711::Law;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

/// Phone 1001: SIP on one socket, RTP on another (which it may or may not
/// use).
pub struct MediaPhone {
    pub sip: UdpSocket,
    pub media: UdpSocket,
    pub server: SocketAddr,
    /// The To tag of its answer, the From tag of its in-dialog requests.
    pub tag: &'static str,
    /// RTP sequence number of [`MediaPhone::send_rtp`]'s next packet.
    pub seq: u16,
    /// CSeq of the last in-dialog request.
    pub cseq: u32,
}

impl MediaPhone {
    /// A phone on two fresh loopback sockets that answers with `tag`.
    pub async fn new(server: SocketAddr, tag: &'static str) -> MediaPhone {
        MediaPhone {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            media: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            tag,
            seq: 1,
            cseq: 10,
        }
    }

    /// One REGISTER (CSeq 2 with an `Authorization` value, 1 without): the
    /// final status and the response.
    pub async fn register(&self, authorization: Option<String>) -> (u16, String) {
        let local = self.sip.local_addr().unwrap();
        let (cseq, auth) = match authorization {
            Some(a) => (2, format!("Authorization: {a}\r\n")),
            None => (1, String::new()),
        };
        let msg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1001@127.0.0.1>;tag=r1001\r\n\
             To: <sip:1001@127.0.0.1>\r\n\
             Call-ID: reg-{port}@127.0.0.1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:1001@{local}>\r\n\
             Expires: 60\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            port = local.port(),
        );
        udp_request(&self.sip, self.server, &msg).await
    }

    /// REGISTER, challenged (401), then with the MD5 digest of `password`
    /// (200).
    pub async fn register_with(&self, password: &str) {
        let (status, text) = self.register(None).await;
        assert_eq!(status, 401, "{text}");
        let auth = digest(&text, "1001", password, "REGISTER", "sip:127.0.0.1");
        let (status, text) = self.register(Some(auth)).await;
        assert_eq!(status, 200, "{text}");
    }

    /// The next SIP request from tapir with this method (others skipped),
    /// within `within`.
    pub async fn request(&self, method: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 8192];
        for _ in 0..100 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(got) = timeout(left, self.sip.recv_from(&mut buf)).await else {
                break;
            };
            let (n, _) = got.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.starts_with(&format!("{method} ")) {
                return text;
            }
        }
        panic!("no {method} from tapir within {within:?}");
    }

    /// Answer tapir's INVITE with 200 OK and SDP of PCMU naming the media
    /// socket.
    pub async fn answer(&self, invite: &str) {
        let port = self.media.local_addr().unwrap().port();
        self.answer_with(invite, &sdp(port)).await;
    }

    /// Answer tapir's INVITE with 200 OK and SDP of PCMU and
    /// telephone-event naming the media socket.
    pub async fn answer_with_events(&self, invite: &str) {
        let port = self.media.local_addr().unwrap().port();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\na=sendrecv\r\n"
        );
        self.answer_with(invite, &sdp).await;
    }

    /// Answer tapir's INVITE with 200 OK carrying `sdp`.
    async fn answer_with(&self, invite: &str, sdp: &str) {
        let local = self.sip.local_addr().unwrap();
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            for line in invite.lines().filter(|l| {
                l.split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            }) {
                ok.push_str(line);
                ok.push_str("\r\n");
            }
        }
        let to = header(invite, "To");
        assert!(!to.is_empty(), "{invite}");
        ok.push_str(&format!("To: {to};tag={}\r\n", self.tag));
        ok.push_str(&format!("Contact: <sip:1001@{local}>\r\n"));
        ok.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
        self.sip.send_to(ok.as_bytes(), self.server).await.unwrap();
    }

    /// An in-dialog request of the phone's (INFO, BYE) on tapir's INVITE's
    /// dialog; waits for its final response.
    pub async fn in_dialog(&mut self, invite: &str, method: &str, extra: &str, body: &str) -> u16 {
        self.cseq += 1;
        let local = self.sip.local_addr().unwrap();
        let contact = header(invite, "Contact");
        let target = contact.trim_start_matches('<').split('>').next().unwrap();
        let from_tapir = header(invite, "From");
        assert!(!tag_of(&from_tapir).is_empty());
        let msg = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{method}-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: {to};tag={tag}\r\n\
             To: {from_tapir}\r\n\
             Call-ID: {callid}\r\n\
             CSeq: {cseq} {method}\r\n\
             {extra}Content-Length: {len}\r\n\r\n{body}",
            to = header(invite, "To"),
            tag = self.tag,
            callid = header(invite, "Call-ID"),
            cseq = self.cseq,
            len = body.len(),
        );
        udp_request(&self.sip, self.server, &msg).await.0
    }

    /// `frames` × 20 ms of a `hz` tone in PCMU to tapir, paced, with
    /// sequence numbers from `first`.
    pub async fn talk(&self, to: SocketAddr, hz: f64, first: u16, frames: u16) {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for seq in first..first + frames {
            tick.tick().await;
            let mut p = vec![0x80, 0];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            p.extend_from_slice(&0x1001_u32.to_be_bytes());
            for i in 0..160u32 {
                let n = f64::from(u32::from(seq) * 160 + i);
                let s = (8000.0 * (2.0 * std::f64::consts::PI * hz * n / 8000.0).sin()) as i16;
                p.push(tapir_media::g711::encode_ulaw(s));
            }
            self.media.send_to(&p, to).await.unwrap();
        }
    }

    /// RTP packets to tapir, a millisecond apart (faster than real time:
    /// detection goes by what the packets hold).
    pub async fn send_rtp(
        &mut self,
        to: SocketAddr,
        pt: u8,
        ts: u32,
        payload: &[u8],
        marker: bool,
    ) {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1001_u32.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.media.send_to(&p, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// One RFC 4733 digit (three packets of one event, the last with E).
    pub async fn rfc4733(&mut self, to: SocketAddr, digit: u8, ts: u32) {
        for (i, end) in [(1u16, false), (2, false), (3, true)] {
            let flags = if end { 0x80 | 10 } else { 10 };
            let dur = (i * 160).to_be_bytes();
            let body = [digit, flags, dur[0], dur[1]];
            self.send_rtp(to, 101, ts, &body, i == 1).await;
        }
    }

    /// `ms` of `hz` (or silence with 0) as 20 ms PCMU packets.
    pub async fn audio(&mut self, to: SocketAddr, hz: u32, ms: u32, ts: &mut u32) {
        for _ in 0..ms / 20 {
            let pcm: Vec<i16> = (0..160u32)
                .map(|n| {
                    let t = f64::from(*ts + n) / 8000.0;
                    (8000.0 * (std::f64::consts::TAU * f64::from(hz) * t).sin()) as i16
                })
                .collect();
            let mut body = Vec::new();
            Law::Ulaw.encode(&pcm, &mut body);
            self.send_rtp(to, 0, *ts, &body, false).await;
            *ts = ts.wrapping_add(160);
        }
    }

    /// What tapir sends the phone for about `ms`, decoded.
    pub async fn hear(&self, ms: u64) -> Vec<i16> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut buf = vec![0u8; 2048];
        let mut pcm = Vec::new();
        for _ in 0..10_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Ok((n, _))) = timeout(left, self.media.recv_from(&mut buf)).await else {
                break;
            };
            // RTP (not RTCP) of PCMU.
            if n > 12 && buf[1] & 0x7f == 0 {
                Law::Ulaw.decode(&buf[12..n], &mut pcm);
            }
        }
        pcm
    }
}
