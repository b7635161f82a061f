//! Call audio over WebSocket (`GET /v1/calls/{call}/media`) end to end:
//! what a pjsua2 phone plays reaches the app's stream on the right channel
//! (Goertzel), what the app sends back is heard by the phone (in place of
//! the other party, cleared at once, or mixed), bad requests get their TAPI
//! errors or close codes, and a stream whose client vanishes, or whose call
//! ends, is released.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;
use tapir_client::CallState;
use tapir_client::{Client, MediaFormat, MediaMessage, MediaStream, Privilege};
use tapir_e2e::wav::Recording;
use tapir_e2e::{
    ADMIN_TOKEN, DESK_TOKEN, ROUTE_POINT, Tapir, error_code, listen, make_answered_call,
};
use tokio::time::{Instant, timeout};

/// `/metrics` as text.
fn metrics(tapir: &Tapir) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tapir.http_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of an unlabelled metric (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Quantile `q` of a Prometheus histogram (the upper bound of the bucket
/// it falls in).
fn quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{name}_bucket{{le=\""))?;
            let (le, v) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| *le)
}

/// Audio frames of the stream for `frames` frames at most (bounded in
/// time), split into channels 1 and 2.
async fn receive(m: &mut MediaStream, frames: usize) -> (Vec<i16>, Vec<i16>) {
    let channels = usize::from(m.format().channels);
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < frames {
        let Ok(Some(msg)) =
            timeout(deadline.saturating_duration_since(Instant::now()), m.next()).await
        else {
            break;
        };
        if let MediaMessage::Audio(s) = msg.unwrap() {
            assert_eq!(s.len(), m.format().frame_samples() * channels);
            for c in s.chunks_exact(channels) {
                one.push(c[0]);
                if channels == 2 {
                    two.push(c[1]);
                }
            }
            got += 1;
        }
    }
    assert_eq!(got, frames, "frames received");
    (one, two)
}

/// Reads the backlog: what the stream sent until a message takes more than
/// 10 ms to come (frames come every 20 ms), for 3 s at most.
async fn drain(m: &mut MediaStream) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !matches!(
            timeout(Duration::from_millis(10), m.next()).await,
            Ok(Some(Ok(_)))
        ) {
            return;
        }
    }
}

/// The next message that is not audio (bounded).
async fn next_non_audio(m: &mut MediaStream) -> MediaMessage {
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..5000 {
        match timeout(deadline.saturating_duration_since(Instant::now()), m.next()).await {
            Ok(Some(Ok(MediaMessage::Audio(_)))) => {}
            Ok(Some(Ok(other))) => return other,
            other => panic!("the stream ended without a message: {other:?}"),
        }
    }
    panic!("only audio")
}

/// The close frame, skipping audio and stats (within 15 s).
async fn closed(m: &mut MediaStream) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for _ in 0..10_000 {
        match timeout(deadline.saturating_duration_since(Instant::now()), m.next()).await {
            Ok(Some(Ok(MediaMessage::Closed { code, reason }))) => return (code, reason),
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
    panic!("no close frame")
}

/// 20 ms frames of a tone at `rate`, mono.
fn tone(hz: f64, rate: u32, frames: usize) -> Vec<Vec<i16>> {
    let n = (rate / 50) as usize;
    (0..frames)
        .map(|f| {
            (0..n)
                .map(|i| {
                    let t = (f * n + i) as f64 / f64::from(rate);
                    (12000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
                })
                .collect()
        })
        .collect()
}

/// The second half of a channel, as a recording.
fn half(samples: &[i16], rate: u32) -> Recording {
    Recording {
        rate,
        samples: samples[samples.len() / 2..].to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phones_tone_reaches_the_app_and_the_apps_audio_reaches_the_phone() {
    let tapir = Tapir::start().await;
    let (app, _ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;
    let call = make_answered_call(&app, &mut a, &mut b).await;

    let mut media = call.media(16000, true).await.unwrap();
    assert_eq!(
        media.format(),
        MediaFormat {
            rate: 16000,
            channels: 2,
            frame_ms: 20
        }
    );
    b.send(json!({"cmd": "tone", "hz": 1000})).await;
    a.send(json!({"cmd": "tone", "hz": 600})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (heard, said) = receive(&mut media, 100).await;
    let (heard, said) = (half(&heard, 16000), half(&said, 16000));
    assert!(
        heard.hears(1000) && !heard.hears(600),
        "channel 1 is what 1001 hears (1002's 1000 Hz): {:?}",
        heard.levels(&[600, 1000])
    );
    assert!(
        said.hears(600) && !said.hears(1000),
        "channel 2 is what 1001 says (600 Hz): {:?}",
        said.levels(&[600, 1000])
    );
    let text = metrics(&tapir);
    let (p50, p99) = (
        quantile(&text, "tapir_media_stream_latency_seconds", 0.5),
        quantile(&text, "tapir_media_stream_latency_seconds", 0.99),
    );
    let mean = metric(&text, "tapir_media_stream_latency_seconds_sum")
        / metric(&text, "tapir_media_stream_latency_seconds_count");
    eprintln!(
        "media stream latency, RTP in to frame out: p50 <= {p50:?} s, p99 <= {p99:?} s, mean {mean:.6} s"
    );
    assert!(p50.is_some(), "latency is measured");

    // What the app sends replaces 1002 for 1001 while it lasts (4 s queued
    // at once: the server plays it in real time).
    for f in tone(800.0, 16000, 200) {
        media.send_audio(&f).await.unwrap();
    }
    let played = listen(&mut [&mut a], tapir.dir(), "played").await;
    drain(&mut media).await;
    assert!(
        played[0].hears(800) && !played[0].hears(1000),
        "1001 hears the app, not 1002: {:?}",
        played[0].levels(&[800, 1000])
    );
    // Barge-in: cleared at once, 1002 is heard again.
    media.clear().await.unwrap();
    let cleared = listen(&mut [&mut a], tapir.dir(), "cleared").await;
    drain(&mut media).await;
    assert!(
        cleared[0].hears(1000) && !cleared[0].hears(800),
        "after clear 1001 hears 1002 again: {:?}",
        cleared[0].levels(&[800, 1000])
    );
    // Mixed: both.
    media.set_mix(true).await.unwrap();
    for f in tone(800.0, 16000, 200) {
        media.send_audio(&f).await.unwrap();
    }
    let mixed = listen(&mut [&mut a], tapir.dir(), "mixed").await;
    assert!(
        mixed[0].hears(800) && mixed[0].hears(1000),
        "mixed: 1001 hears both: {:?}",
        mixed[0].levels(&[800, 1000])
    );
    // The stream reports its counts (every 5 s).
    let MediaMessage::Stats(stats) = next_non_audio(&mut media).await else {
        panic!("a stats frame")
    };
    assert_eq!(stats["type"], "stats", "{stats}");
    assert!(stats["frames"].as_u64().unwrap() > 100, "{stats}");
    assert!(
        stats["dropped"].is_u64() && stats["play_dropped"] == 0,
        "{stats}"
    );
    assert!(metric(&metrics(&tapir), "tapir_media_stream_frames_total") > 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_requests_get_their_errors_and_streams_are_released() {
    let tapir = Tapir::start().await;
    let (app, _ev) = tapir.app().await;
    // desk monitors every line.
    let desk = Client::connect(tapir.base_url(), DESK_TOKEN).await.unwrap();
    for mut line in desk.lines().await.unwrap() {
        line.open(&[Privilege::Monitor], &[]).await.unwrap();
    }
    // stranger may open 1005 only: it never sees the call.
    let admin = Client::new(tapir.base_url(), ADMIN_TOKEN).unwrap().admin();
    admin
        .add_app(&tapir_client::AdminApp {
            name: "stranger".into(),
            lines: vec!["1005".into()],
            token: Some("e2e-stranger-token".into()),
            ..tapir_client::AdminApp::default()
        })
        .await
        .unwrap();
    let stranger = Client::connect(tapir.base_url(), "e2e-stranger-token")
        .await
        .unwrap();
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;
    let mut call = make_answered_call(&app, &mut a, &mut b).await;

    let (code, message) = error_code(app.media(call.id(), 44100, false).await);
    assert_eq!(code, "invalparam", "{message}");
    let (code, message) = error_code(stranger.media(call.id(), 8000, false).await);
    assert_eq!(code, "invalcallhandle", "{message}");
    let (code, _) = error_code(app.media("call-999999", 8000, false).await);
    assert_eq!(code, "invalcallhandle");

    // A monitor listens but may not talk.
    let mut watching = desk.media(call.id(), 8000, false).await.unwrap();
    assert_eq!(watching.format().channels, 1);
    watching.send_audio(&[0; 160]).await.unwrap();
    let (code, reason) = closed(&mut watching).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("owner"), "{reason}");
    // An app that lets go of its handle loses the stream (1008).
    let mut letting_go = desk.media(call.id(), 8000, false).await.unwrap();
    desk.call(call.id())
        .await
        .unwrap()
        .deallocate()
        .await
        .unwrap();
    let (code, reason) = closed(&mut letting_go).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("handle"), "{reason}");
    // An owner's frame of the wrong size.
    let mut owner = app.media(call.id(), 8000, true).await.unwrap();
    owner.send_bytes(vec![0; 100]).await.unwrap();
    let (code, reason) = closed(&mut owner).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("320 bytes"), "{reason}");

    // Clients that vanish without a word: their streams are released.
    // Meanwhile, the heap each costs (a figure, not a test).
    let heap = || metric(&metrics(&tapir), "tapir_heap_allocated_bytes");
    let before = heap();
    let mut gone = Vec::new();
    for _ in 0..20 {
        gone.push(app.media(call.id(), 16000, true).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let text = metrics(&tapir);
    eprintln!(
        "heap per media stream (16 kHz, both directions, owner, 20 streams): {:.0} bytes",
        (heap() - before) / 20.0
    );
    assert!(
        metric(&text, "tapir_media_streams") >= 40.0,
        "taps and plays held"
    );
    assert!(metric(&text, "tapir_media_stream_sockets") >= 20.0);
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = (1.0, 1.0);
    while Instant::now() < deadline {
        let text = metrics(&tapir);
        left = (
            metric(&text, "tapir_media_streams"),
            metric(&text, "tapir_media_stream_sockets"),
        );
        if left == (0.0, 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, (0.0, 0.0), "streams and sockets released");

    // The call ends: the stream closes normally.
    let mut last = app.media(call.id(), 8000, false).await.unwrap();
    call.drop().await.unwrap();
    let (code, reason) = closed(&mut last).await;
    assert_eq!(code, 1000, "{reason}");
    let (code, _) = error_code(app.media(call.id(), 8000, false).await);
    assert!(
        code == "invalcallstate" || code == "invalcallhandle",
        "{code}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_agent_on_a_route_point_hears_the_caller_and_talks_to_it() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let mut a = tapir.phone("1002").await;
    a.dial(ROUTE_POINT).await;
    let at_rp = ev.new_call_at(ROUTE_POINT).await;
    ev.state(&at_rp, CallState::Offering).await;
    let mut call = app.call(&at_rp).await.unwrap();
    call.answer().await.unwrap();
    a.call_state("CONFIRMED").await;
    ev.state(&at_rp, CallState::Connected).await;

    // The route point's call: what it hears is the caller.
    let mut media = call.media(8000, true).await.unwrap();
    a.send(json!({"cmd": "tone", "hz": 700})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (heard, _) = receive(&mut media, 75).await;
    let heard = half(&heard, 8000);
    assert!(
        heard.hears(700),
        "the route point hears the caller: {:?}",
        heard.levels(&[700])
    );
    // The agent talks: the caller hears it, and it is what the route point
    // says.
    for f in tone(900.0, 8000, 300) {
        media.send_audio(&f).await.unwrap();
    }
    let got = listen(&mut [&mut a], tapir.dir(), "agent").await;
    assert!(
        got[0].hears(900),
        "the caller hears the agent: {:?}",
        got[0].levels(&[700, 900])
    );
    drain(&mut media).await;
    let (_, said) = receive(&mut media, 25).await;
    let said = Recording {
        rate: 8000,
        samples: said,
    };
    assert!(
        said.hears(900),
        "channel 2 is what the route point says: {:?}",
        said.levels(&[900])
    );
}
