//! Prompts played by the engine over real UDP on 127.0.0.1: the leg receives
//! exactly the prompt's samples (µ-law encoded), then silence, and the end is
//! reported once; a looping prompt repeats without an end; another source
//! stops a prompt. Every loop is bounded in count and in time.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;
use tapir_media::g711::Law;
use tapir_media::rtp::RtpPacket;
use tapir_media::{Codec, LegId, MediaConfig, MediaEngine, MediaEvent, RemoteMedia, Source};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

/// Payloads received for at most `dur` or `max` packets.
async fn payloads(sock: &UdpSocket, dur: Duration, max: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + dur;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < max {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok((n, _))) = timeout(left, sock.recv_from(&mut buf)).await else {
            break;
        };
        if let Ok(p) = RtpPacket::parse(&buf[..n]) {
            out.push(p.payload.to_vec());
        }
    }
    out
}

/// Engine events seen within `dur`.
async fn events(ev: &mut tapir_media::MediaEvents, dur: Duration) -> Vec<MediaEvent> {
    let deadline = Instant::now() + dur;
    let mut out = Vec::new();
    while out.len() < 100 {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ev.recv()).await {
            Ok(Some(e)) => out.push(e),
            _ => break,
        }
    }
    out
}

async fn leg_with_phone(eng: &MediaEngine, leg: u64) -> UdpSocket {
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    eng.allocate(LegId(leg)).unwrap();
    eng.set_remote(
        LegId(leg),
        RemoteMedia {
            addr: Some(phone.local_addr().unwrap()),
            codec: Codec::Pcmu,
            telephone_event_pt: None,
        },
    )
    .unwrap();
    phone
}

/// 250 ms of a pattern no tone generator makes.
fn pattern() -> Vec<i16> {
    (0..2000).map(|i| ((i * 37) % 4001 - 2000) as i16).collect()
}

#[tokio::test]
async fn a_prompt_plays_its_samples_then_silence_and_reports_its_end_once() {
    let (eng, mut ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let phone = leg_with_phone(&eng, 1).await;
    let samples = pattern();
    eng.play_prompt(LegId(1), 7, Arc::from(samples.clone()), false)
        .unwrap();
    // Asking again for the same playing does not restart it.
    eng.play_prompt(LegId(1), 7, Arc::from(samples.clone()), false)
        .unwrap();
    let rx = payloads(&phone, Duration::from_secs(3), 25).await;
    assert_eq!(rx.len(), 25);
    let mut expected = Vec::new();
    Law::Ulaw.encode(&samples, &mut expected);
    let got: Vec<u8> = rx.concat();
    // The first 2000 samples are the prompt's, exactly; then silence.
    assert_eq!(&got[..2000], &expected[..]);
    let mut silence = Vec::new();
    Law::Ulaw.encode(&[0; 2000], &mut silence);
    assert_eq!(&got[2000..], &silence[..]);
    let seen = events(&mut ev, Duration::from_millis(500)).await;
    let done: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e, MediaEvent::PromptDone { .. }))
        .collect();
    assert_eq!(
        done,
        vec![&MediaEvent::PromptDone {
            leg: LegId(1),
            play: 7
        }]
    );
}

#[tokio::test]
async fn a_looping_prompt_repeats_and_never_ends() {
    let (eng, mut ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let phone = leg_with_phone(&eng, 1).await;
    // 100 ms: 3 1/2 loops in 350 ms.
    let samples: Vec<i16> = pattern()[..800].to_vec();
    eng.play_prompt(LegId(1), 1, Arc::from(samples.clone()), true)
        .unwrap();
    let rx = payloads(&phone, Duration::from_secs(3), 20).await;
    assert_eq!(rx.len(), 20);
    let mut once = Vec::new();
    Law::Ulaw.encode(&samples, &mut once);
    let got = rx.concat();
    for k in 0..4 {
        assert_eq!(&got[k * 800..(k + 1) * 800], &once[..], "loop {k}");
    }
    let seen = events(&mut ev, Duration::from_millis(200)).await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, MediaEvent::PromptDone { .. })),
        "{seen:?}"
    );
}

#[tokio::test]
async fn another_source_stops_a_prompt_without_an_end_report() {
    let (eng, mut ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let phone = leg_with_phone(&eng, 1).await;
    eng.play_prompt(LegId(1), 3, Arc::from(pattern()), false)
        .unwrap();
    let first = payloads(&phone, Duration::from_secs(2), 3).await;
    assert_eq!(first.len(), 3);
    eng.set_source(LegId(1), Source::Silence).unwrap();
    // What was in flight, then nothing: silence sends no packets.
    let _ = payloads(&phone, Duration::from_millis(60), 10).await;
    let after = payloads(&phone, Duration::from_millis(400), 10).await;
    assert!(after.is_empty(), "{} packets after stop", after.len());
    let seen = events(&mut ev, Duration::from_millis(100)).await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, MediaEvent::PromptDone { .. }))
    );
    // `Source::Prompt` without a prompt is silence; unknown legs are errors.
    eng.set_source(LegId(1), Source::Prompt(9)).unwrap();
    let none = payloads(&phone, Duration::from_millis(200), 10).await;
    assert!(none.is_empty());
    assert!(
        eng.play_prompt(LegId(99), 1, Arc::from(pattern()), false)
            .is_err()
    );
}
