//! Call recording over real sockets: a phone (a plain UDP socket on
//! loopback speaking SIP and sending PCMU) is called from route point 2001
//! and answers; app alpha (owner of 2001) records the call.
//!
//! - The WAV file holds the phone's tone on channel 1 (what 2001 hears),
//!   its header is valid, and only apps of 2001 (and the admin) list,
//!   read, download or delete it; a stranger gets 404 everywhere, a monitor
//!   may not start one (`notowner`), ids cannot walk out of the directory.
//! - Bad input (unknown action or channels, stop or pause without start,
//!   double start, a call that ended) gets a TAPI error with a sentence.
//! - A call whose phone vanishes ends its recording with a playable file
//!   of the right length; nothing stays open (taps, file handles).
//! - Limits: `max_concurrent`, the free-space floor, a secure call.
//! - Metadata survives a restart, an interrupted recording's file is
//!   repaired, and the retention sweep deletes file and row.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::media_phone::MediaPhone;
use support::{Api, WAIT};
use tapir_server::{Config, RunningServer};
use tokio::time::{Instant, timeout};

struct Setup {
    s: RunningServer,
    alpha: Api,
    beta: Api,
    watcher: Api,
    admin: Api,
    phone: MediaPhone,
    /// The route point's call.
    call: String,
    tapir_rtp: SocketAddr,
    dir: PathBuf,
}

/// A server on `data_dir` (SQLite in it), 2001 calling the phone, answered.
async fn setup(data_dir: &Path, change: impl FnOnce(&mut Config)) -> Setup {
    let mut config = Config::from_toml(support::CONFIG).unwrap();
    config.data_dir = data_dir.to_path_buf();
    config.sip.listen = vec!["udp:127.0.0.1:0".into()];
    change(&mut config);
    let s = timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap();
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner"]).await;
    watcher.open("2001", &["monitor"]).await;
    let mut events = alpha.events(0).await;
    let phone = MediaPhone::new(s.sip_addr.unwrap(), "rec1001").await;
    phone.register_with("pw").await;
    let call = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "1001"}))
        .await;
    let call = call["id"].as_str().unwrap().to_string();
    let invite = phone.request("INVITE", WAIT).await;
    phone.answer(&invite).await;
    events.state(&call, "connected").await;
    events.close().await;
    let port: u16 = invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("tapir's SDP names its RTP port");
    Setup {
        s,
        alpha,
        beta,
        watcher,
        admin,
        phone,
        call,
        tapir_rtp: SocketAddr::from(([127, 0, 0, 1], port)),
        dir: data_dir.join("recordings"),
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The error of a refused request: its code, and a sentence.
fn refused(status: u16, v: &Value, want_status: u16, want_code: &str) -> String {
    assert_eq!((status, code(v)), (want_status, want_code), "{v}");
    let message = v["error"]["message"].as_str().unwrap().to_string();
    assert!(message.len() > 10 && message.contains(' '), "{message}");
    message
}

/// GET with the raw bytes of the body.
async fn download(api: &Api, path: &str) -> (u16, Vec<u8>, String) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", api.base))
        .bearer_auth(api.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, resp.bytes().await.unwrap().to_vec(), ctype)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The samples of each channel of a WAV file this server wrote, after
/// checking its header.
fn channels_of(wav: &[u8], want: u16) -> Vec<Vec<i16>> {
    assert!(wav.len() >= 44, "a WAV header");
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), want, "channels");
    assert_eq!(u32_at(wav, 24), 8000);
    let data = u32_at(wav, 40) as usize;
    assert_eq!(data, wav.len() - 44, "the header names the whole file");
    assert_eq!(u32_at(wav, 4) as usize, data + 36);
    let n = usize::from(want);
    let mut out = vec![Vec::new(); n];
    for (i, s) in wav[44..].chunks_exact(2).enumerate() {
        out[i % n].push(i16::from_le_bytes([s[0], s[1]]));
    }
    out
}

fn amplitude(pcm: &[i16], hz: f32) -> f32 {
    tapir_media::tone::goertzel_amplitude(pcm, hz, 8000.0)
}

/// Open file handles of this process under `dir`.
fn open_files_under(dir: &Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|p| p.starts_with(&dir))
                .count()
        })
        .unwrap_or(0)
}

/// The recording's metadata once `pred` holds (bounded).
async fn recording_when(api: &Api, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = api.get(&format!("/v1/recordings/{id}")).await;
        assert_eq!(status, 200, "{v}");
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "recording never got there: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_recording_holds_the_phone_on_its_channel_and_only_its_apps_reach_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = setup(tmp.path(), |_| {}).await;
    let rec = format!("/v1/calls/{}/record", t.call);

    // Bad input, each a TAPI error with a sentence; nothing starts.
    let (st, v) = t.alpha.post(&rec, json!({"action": "rewind"})).await;
    assert!(refused(st, &v, 400, "invalparam").contains("rewind"));
    let (st, v) = t
        .alpha
        .post(&rec, json!({"action": "start", "channels": "surround"}))
        .await;
    assert!(refused(st, &v, 400, "invalparam").contains("surround"));
    let (st, v) = t.alpha.post(&rec, json!({"action": "start", "x": 1})).await;
    refused(st, &v, 400, "invalparam");
    let (st, v) = t.alpha.post(&rec, json!({"action": "stop"})).await;
    assert!(refused(st, &v, 409, "invalcallstate").contains("not being recorded"));
    let (st, v) = t.alpha.post(&rec, json!({"action": "pause"})).await;
    refused(st, &v, 409, "invalcallstate");
    // A monitor may not record it, a stranger does not see the call.
    let (st, v) = t.watcher.post(&rec, json!({"action": "start"})).await;
    refused(st, &v, 403, "notowner");
    let (st, v) = t.beta.post(&rec, json!({"action": "start"})).await;
    refused(st, &v, 404, "invalcallhandle");
    assert!(ids(&t.admin.get("/v1/recordings").await.1).is_empty());

    let started = t.alpha.ok(&rec, json!({"action": "start"})).await;
    let id = started["recording"].as_str().unwrap().to_string();
    assert!(id.starts_with("rec-") && id.len() == 36, "{id}");
    let (st, v) = t.alpha.post(&rec, json!({"action": "start"})).await;
    assert!(refused(st, &v, 409, "invalcallstate").contains(&id));
    // Running: listed as such, not yet downloadable nor deletable.
    let live = recording_when(&t.alpha, &id, |v| v["state"] == "recording").await;
    assert_eq!(live["channels"], "stereo");
    assert_eq!(live["address"], "2001");
    let (st, v) = t.alpha.get(&format!("/v1/recordings/{id}/audio")).await;
    refused(st, &v, 409, "invalcallstate");
    let (st, v) = t.alpha.delete(&format!("/v1/recordings/{id}")).await;
    refused(st, &v, 409, "invalcallstate");

    // The phone says 1 kHz; a pause in the middle writes silence.
    t.phone.talk(t.tapir_rtp, 1000.0, 0, 40).await;
    assert_eq!(
        t.alpha.ok(&rec, json!({"action": "pause"})).await["recording"],
        id.as_str()
    );
    let (st, v) = t.alpha.post(&rec, json!({"action": "pause"})).await;
    assert!(refused(st, &v, 409, "invalcallstate").contains("paused"));
    recording_when(&t.alpha, &id, |v| v["state"] == "paused").await;
    t.phone.talk(t.tapir_rtp, 1000.0, 40, 25).await;
    t.alpha.ok(&rec, json!({"action": "resume"})).await;
    let (st, v) = t.alpha.post(&rec, json!({"action": "resume"})).await;
    refused(st, &v, 409, "invalcallstate");
    t.phone.talk(t.tapir_rtp, 1000.0, 65, 40).await;
    let stopped = t.alpha.ok(&rec, json!({"action": "stop"})).await;
    assert_eq!(stopped["recording"], id.as_str());

    // Final at once after stop.
    let (_, meta) = t.alpha.get(&format!("/v1/recordings/{id}")).await;
    assert_eq!(meta["state"], "stopped", "{meta}");
    assert_eq!(meta["end_reason"], "stopped", "{meta}");
    assert!(meta["ended_at"].is_string(), "{meta}");
    let duration = meta["duration_ms"].as_u64().unwrap();
    assert!(duration >= 1500, "{meta}");
    let file = t.dir.join(format!("{id}.wav"));
    assert_eq!(
        meta["size"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );

    // Downloaded: a valid stereo file, the phone's tone on channel 1 (what
    // 2001 hears), nothing on channel 2 (2001 says nothing), silence while
    // paused.
    let (st, wav, ctype) = download(&t.alpha, &format!("/v1/recordings/{id}/audio")).await;
    assert_eq!((st, ctype.as_str()), (200, "audio/wav"));
    let ch = channels_of(&wav, 2);
    let (left, right) = (&ch[0], &ch[1]);
    assert!(
        amplitude(left, 1000.0) > 1000.0,
        "{}",
        amplitude(left, 1000.0)
    );
    assert!(amplitude(right, 1000.0) < amplitude(left, 1000.0) / 20.0);
    let silent_20ms = left
        .chunks_exact(160)
        .filter(|f| f.iter().all(|&s| s == 0))
        .count();
    assert!(silent_20ms >= 15, "the pause wrote silence: {silent_20ms}");

    // Who sees it: alpha (2001's owner), the watcher (monitors every
    // line), the admin; not beta, whatever the path.
    assert!(ids(&t.alpha.get("/v1/recordings").await.1).contains(&id));
    assert!(ids(&t.watcher.get("/v1/recordings").await.1).contains(&id));
    assert!(ids(&t.admin.get("/v1/recordings").await.1).contains(&id));
    assert!(ids(&t.beta.get("/v1/recordings").await.1).is_empty());
    for path in [
        format!("/v1/recordings/{id}"),
        format!("/v1/recordings/{id}/audio"),
    ] {
        let (st, v) = t.beta.get(&path).await;
        refused(st, &v, 404, "invalparam");
    }
    let (st, v) = t.beta.delete(&format!("/v1/recordings/{id}")).await;
    refused(st, &v, 404, "invalparam");
    let (st, _) = Api::new(&t.s, None).get("/v1/recordings").await;
    assert_eq!(st, 401);
    // Ids that try to leave the directory name nothing.
    std::fs::write(tmp.path().join("secret.wav"), b"RIFF").unwrap();
    for bad in [
        "..%2Fsecret",
        "rec-..%2F..%2Fsecret",
        "..%2F..%2Fetc%2Fpasswd",
        "rec-0123456789abcdef0123456789abcdeg",
        "%2e%2e",
    ] {
        let (st, _, _) = download(&t.admin, &format!("/v1/recordings/{bad}/audio")).await;
        assert_eq!(st, 404, "{bad}");
        let (st, _) = t.admin.delete(&format!("/v1/recordings/{bad}")).await;
        assert_eq!(st, 404, "{bad}");
    }
    assert!(tmp.path().join("secret.wav").exists());

    // Nothing left open: no writer, no tap, no file handle.
    assert_eq!(t.s.recordings.running(), 0);
    assert_eq!(open_files_under(&t.dir), 0);
    let deadline = Instant::now() + WAIT;
    loop {
        let text = reqwest::get(format!("{}/metrics", t.admin.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "tapir_media_streams 0") {
            break;
        }
        assert!(Instant::now() < deadline, "a tap stayed: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The owner deletes it: file and row go.
    let (st, _) = t.alpha.delete(&format!("/v1/recordings/{id}")).await;
    assert_eq!(st, 204);
    assert!(!file.exists());
    let (st, v) = t.alpha.get(&format!("/v1/recordings/{id}")).await;
    refused(st, &v, 404, "invalparam");
    t.s.shutdown().await;
}

#[tokio::test]
async fn a_call_whose_phone_vanishes_ends_its_recording_with_a_playable_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = setup(tmp.path(), |c| c.media.rtp_timeout = 1.0).await;
    let rec = format!("/v1/calls/{}/record", t.call);
    let id = t
        .alpha
        .ok(&rec, json!({"action": "start", "channels": "mixed"}))
        .await["recording"]
        .as_str()
        .unwrap()
        .to_string();
    t.phone.talk(t.tapir_rtp, 697.0, 0, 30).await;
    // Then the phone is gone: tapir clears the call after the RTP timeout,
    // and the recording ends with it.
    t.phone.request("BYE", Duration::from_secs(15)).await;
    let meta = recording_when(&t.alpha, &id, |v| v["state"] == "stopped").await;
    assert_eq!(meta["end_reason"], "call_ended", "{meta}");
    assert!(meta["duration_ms"].as_u64().unwrap() >= 500, "{meta}");
    let (st, wav, _) = download(&t.alpha, &format!("/v1/recordings/{id}/audio")).await;
    assert_eq!(st, 200);
    let ch = channels_of(&wav, 1);
    assert_eq!(
        meta["size"].as_u64().unwrap(),
        wav.len() as u64,
        "the metadata names the file's length"
    );
    assert!(amplitude(&ch[0], 697.0) > 1000.0);
    // Recording the ended call is refused; nothing is left open.
    let (st, v) = t.alpha.post(&rec, json!({"action": "start"})).await;
    assert!(
        (st == 409 && code(&v) == "invalcallstate") || (st == 404 && code(&v) == "invalcallhandle"),
        "{st} {v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains(' '));
    let (st, v) = t.alpha.post(&rec, json!({"action": "stop"})).await;
    assert!(st == 409 || st == 404, "{st} {v}");
    assert_eq!(t.s.recordings.running(), 0);
    assert_eq!(open_files_under(&t.dir), 0);
    assert_eq!(
        std::fs::read_dir(&t.dir).unwrap().count(),
        1,
        "one file, no temporary ones"
    );
    t.s.shutdown().await;
}

#[tokio::test]
async fn limits_refuse_with_resourceunavail_and_a_secure_call_with_operationunavail() {
    // No recording may run at all.
    let tmp = tempfile::tempdir().unwrap();
    let t = setup(tmp.path(), |c| c.recording.max_concurrent = 0).await;
    let rec = format!("/v1/calls/{}/record", t.call);
    let (st, v) = t.alpha.post(&rec, json!({"action": "start"})).await;
    assert!(refused(st, &v, 503, "resourceunavail").contains("max_concurrent"));
    t.s.shutdown().await;

    // The disk "has" less than the floor.
    let tmp = tempfile::tempdir().unwrap();
    let t = setup(tmp.path(), |c| {
        c.recording.min_free_mb = u64::MAX / (1 << 21)
    })
    .await;
    let rec = format!("/v1/calls/{}/record", t.call);
    let (st, v) = t.alpha.post(&rec, json!({"action": "start"})).await;
    assert!(refused(st, &v, 503, "resourceunavail").contains("min_free_mb"));
    assert_eq!(std::fs::read_dir(&t.dir).unwrap().count(), 0, "no file");
    assert!(ids(&t.admin.get("/v1/recordings").await.1).is_empty());

    // A secure call refuses recording, as TAPI would.
    let secured = t
        .alpha
        .ok(&format!("/v1/calls/{}/secure", t.call), json!({}))
        .await;
    assert_eq!(secured["secure"], true, "{secured}");
    let (st, v) = t.alpha.post(&rec, json!({"action": "start"})).await;
    assert!(refused(st, &v, 409, "operationunavail").contains("secure"));
    t.s.shutdown().await;
}

#[tokio::test]
async fn recordings_survive_a_restart_and_retention_deletes_file_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let t = setup(tmp.path(), |_| {}).await;
    let rec = format!("/v1/calls/{}/record", t.call);
    let id = t.alpha.ok(&rec, json!({"action": "start"})).await["recording"]
        .as_str()
        .unwrap()
        .to_string();
    t.phone.talk(t.tapir_rtp, 1000.0, 0, 10).await;
    t.alpha.ok(&rec, json!({"action": "stop"})).await;
    let before = t.alpha.get(&format!("/v1/recordings/{id}")).await.1;
    t.s.shutdown().await;
    drop(t.phone);

    // What a process killed mid-recording leaves: a row still
    // `recording`, a file whose header says nothing was written.
    let store = tapir_store::Store::open(&format!(
        "sqlite://{}",
        tmp.path().join("tapir.db").display()
    ))
    .await
    .unwrap();
    let torn = "rec-00000000000000000000000000000001";
    store
        .put_recording(&tapir_store::StoredRecording {
            id: torn.into(),
            // A minute ago (the sweep keeps it: 90 days by default).
            started_at: u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap()
                - 60_000,
            bytes: 44,
            data: json!({"id": torn, "address": "2001", "channels": "stereo", "state": "recording"}),
        })
        .await
        .unwrap();
    store.close().await;
    let mut bytes = tapir_media::record::header(tapir_media::record::Channels::Stereo, 0).to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 3201));
    std::fs::write(tmp.path().join(format!("recordings/{torn}.wav")), &bytes).unwrap();

    let mut config = Config::from_toml(support::CONFIG).unwrap();
    config.data_dir = tmp.path().to_path_buf();
    let s = timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap();
    let alpha = Api::new(&s, Some("tok-alpha"));
    let after = alpha.get(&format!("/v1/recordings/{id}")).await.1;
    assert_eq!(after, before, "the metadata survived the restart");
    let repaired = alpha.get(&format!("/v1/recordings/{torn}")).await.1;
    assert_eq!(repaired["state"], "stopped", "{repaired}");
    assert_eq!(repaired["end_reason"], "interrupted", "{repaired}");
    assert_eq!(repaired["duration_ms"], 100, "{repaired}");
    let (st, wav, _) = download(&alpha, &format!("/v1/recordings/{torn}/audio")).await;
    assert_eq!(st, 200);
    assert_eq!(u32_at(&wav, 40), 3200, "the header was repaired");
    s.shutdown().await;

    // Retention: everything older than a millisecond goes, file and row.
    let mut config = Config::from_toml(support::CONFIG).unwrap();
    config.data_dir = tmp.path().to_path_buf();
    config.recording.max_age_days = 1e-8;
    config.recording.sweep_interval = 0.1;
    let s = timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap();
    let admin = Api::new(&s, Some("admin-secret"));
    let deadline = Instant::now() + WAIT;
    while !ids(&admin.get("/v1/recordings").await.1).is_empty() {
        assert!(Instant::now() < deadline, "the sweep kept them");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tmp.path().join("recordings");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "files deleted");
    s.shutdown().await;
}

/// `tapir ARGS --json` against the server, as alpha: exit code and JSON.
async fn cli(api: &Api, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec![
        "--server".to_string(),
        api.base.clone(),
        "--token".to_string(),
        api.token.clone().unwrap(),
        "--json".to_string(),
    ];
    all.extend(args.iter().map(ToString::to_string));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tapir"))
            .args(&all)
            .env_remove("TAPIR_TOKEN")
            .env_remove("TAPIR_SERVER")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn the_cli_records_lists_downloads_and_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = setup(tmp.path(), |_| {}).await;
    let (code, v, err) = cli(
        &t.alpha,
        &["call", "record", &t.call, "start", "--channels", "mixed"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let id = v["recording"].as_str().unwrap().to_string();
    let (code, _, err) = cli(&t.alpha, &["call", "record", &t.call, "start"]).await;
    assert_eq!(code, 1, "a second start is refused");
    assert!(err.contains("invalcallstate"), "{err}");
    t.phone.talk(t.tapir_rtp, 1000.0, 0, 10).await;
    let (code, _, err) = cli(&t.alpha, &["call", "record", &t.call, "stop"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, v, err) = cli(&t.alpha, &["recordings"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["recordings"][0]["id"], id.as_str(), "{v}");
    assert_eq!(v["recordings"][0]["channels"], "mixed", "{v}");
    let file = tmp.path().join("copy.wav");
    let (code, v, err) = cli(
        &t.alpha,
        &[
            "recordings",
            "download",
            &id,
            "--output",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let wav = std::fs::read(&file).unwrap();
    assert_eq!(v["bytes"].as_u64().unwrap(), wav.len() as u64);
    channels_of(&wav, 1);
    let (code, _, err) = cli(&t.beta, &["recordings", "show", &id]).await;
    assert_eq!(code, 1, "a stranger: {err}");
    let (code, _, err) = cli(&t.alpha, &["recordings", "delete", &id]).await;
    assert_eq!(code, 0, "{err}");
    let (_, v, _) = cli(&t.alpha, &["recordings"]).await;
    assert_eq!(v["recordings"], json!([]));
    t.s.shutdown().await;
}
