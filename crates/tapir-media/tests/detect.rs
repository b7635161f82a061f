//! The engine's TAPI media operations over real UDP on 127.0.0.1: what a
//! leg's peer sends is watched for tones and a fax's calling tone
//! ([`MediaEngine::detect`]), and tones are generated to a leg
//! ([`MediaEngine::generate_tone`]), a new one in place of the one before.
//! Every loop is bounded in count and in time.
#![allow(clippy::unwrap_used)]

use std::f32::consts::TAU;
use std::net::SocketAddr;
use std::time::Duration;
use tapir_media::detect::ToneSpec;
use tapir_media::g711::Law;
use tapir_media::rtp::{RtpPacket, write_packet};
use tapir_media::tone::{goertzel_amplitude, render_tone};
use tapir_media::{Codec, LegId, MediaConfig, MediaEngine, MediaError, MediaEvent, RemoteMedia};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

async fn leg(eng: &MediaEngine, id: u64) -> (UdpSocket, SocketAddr) {
    let ep = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = eng.allocate(LegId(id)).unwrap();
    eng.set_remote(
        LegId(id),
        RemoteMedia {
            addr: Some(ep.local_addr().unwrap()),
            codec: Codec::Pcmu,
            telephone_event_pt: None,
        },
    )
    .unwrap();
    (ep, local)
}

/// `frames` 20 ms PCMU packets of `hz` (0: silence), sent a millisecond apart.
async fn send(ep: &UdpSocket, to: SocketAddr, hz: f32, frames: u32, seq: &mut u16) {
    let mut pkt = Vec::new();
    for _ in 0..frames {
        let n0 = u32::from(*seq) * 160;
        let pcm: Vec<i16> = (0..160)
            .map(|i| (6000.0 * (TAU * hz * (n0 + i) as f32 / 8000.0).sin()) as i16)
            .collect();
        let mut payload = Vec::new();
        Law::Ulaw.encode(&pcm, &mut payload);
        write_packet(&mut pkt, false, 0, *seq, n0, 0x5eed, &payload);
        *seq = seq.wrapping_add(1);
        ep.send_to(&pkt, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What the endpoint hears for about `ms`, decoded.
async fn hear(ep: &UdpSocket, ms: u64) -> Vec<i16> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut buf = [0u8; 2048];
    let mut pcm = Vec::new();
    for _ in 0..10_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok((n, _))) = timeout(left, ep.recv_from(&mut buf)).await else {
            break;
        };
        if let Ok(p) = RtpPacket::parse(&buf[..n])
            && p.payload_type == 0
        {
            Law::Ulaw.decode(p.payload, &mut pcm);
        }
    }
    pcm
}

/// The media events that come within `ms`.
async fn events(ev: &mut tapir_media::MediaEvents, ms: u64) -> Vec<MediaEvent> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut out = Vec::new();
    for _ in 0..100 {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ev.recv()).await {
            Ok(Some(e)) => out.push(e),
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn watched_tones_and_a_fax_are_reported_until_unwatched_or_released() {
    let (eng, mut ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let (ep, local) = leg(&eng, 1).await;
    let watch = ToneSpec {
        frequencies: vec![1100],
        duration_ms: 200,
    };
    eng.detect(LegId(1), vec![watch.clone()], true).unwrap();
    let mut seq = 1u16;
    // CNG: 0.5 s on, 3 s off, on again.
    send(&ep, local, 1100.0, 25, &mut seq).await;
    send(&ep, local, 0.0, 150, &mut seq).await;
    send(&ep, local, 1100.0, 15, &mut seq).await;
    let got = events(&mut ev, 500).await;
    let tones = got
        .iter()
        .filter(|e| matches!(e, MediaEvent::ToneDetected { leg: LegId(1), tone } if *tone == watch))
        .count();
    assert_eq!(tones, 2, "one per burst: {got:?}");
    assert!(
        got.contains(&MediaEvent::FaxDetected { leg: LegId(1) }),
        "{got:?}"
    );
    // Unwatched: nothing more.
    eng.detect(LegId(1), Vec::new(), false).unwrap();
    send(&ep, local, 0.0, 5, &mut seq).await;
    send(&ep, local, 1100.0, 25, &mut seq).await;
    assert!(events(&mut ev, 300).await.is_empty());
    // Released: the detectors went with the leg.
    eng.release(LegId(1));
    assert!(matches!(
        eng.detect(LegId(1), vec![watch], true),
        Err(MediaError::UnknownLeg(_))
    ));
}

#[tokio::test]
async fn a_generated_tone_replaces_the_one_before_and_is_no_app_stream() {
    let (eng, _ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let (ep, _) = leg(&eng, 2).await;
    eng.generate_tone(LegId(2), &render_tone(&[700], 5000, 0, 5000))
        .unwrap();
    let first = hear(&ep, 400).await;
    assert!(goertzel_amplitude(&first[first.len().saturating_sub(1600)..], 700.0, 8000.0) > 1000.0);
    for _ in 0..50 {
        eng.generate_tone(LegId(2), &render_tone(&[1300], 5000, 0, 5000))
            .unwrap();
    }
    assert_eq!(eng.stream_count(), 0, "tones are not apps' streams");
    let _ = hear(&ep, 100).await;
    let second = hear(&ep, 400).await;
    assert!(second.len() >= 1600, "{} samples", second.len());
    let tail = &second[second.len() - 1600..];
    assert!(goertzel_amplitude(tail, 1300.0, 8000.0) > 1000.0);
    assert!(
        goertzel_amplitude(tail, 700.0, 8000.0) < 100.0,
        "the first tone stopped: {}",
        goertzel_amplitude(tail, 700.0, 8000.0)
    );
    assert!(eng.release(LegId(2)));
}
