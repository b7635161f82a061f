//! Applications' media streams on the engine over real UDP on 127.0.0.1:
//! a tap copies what a leg hears and says (checked with a Goertzel filter),
//! frames played to a leg replace or mix with the party and are cleared at
//! once, a reader that never reads loses whole frames without delaying the
//! relay, and everything is released with the leg or the application's end.
//! Every loop is bounded in count and in time.
#![allow(clippy::unwrap_used)]

use std::f32::consts::TAU;
use std::net::SocketAddr;
use std::time::Duration;
use tapir_media::g711::Law;
use tapir_media::rtp::{RtpPacket, write_packet};
use tapir_media::stream::{PlayMode, TapFrame};
use tapir_media::tone::goertzel_amplitude;
use tapir_media::{Codec, LegId, MediaConfig, MediaEngine, RemoteMedia, Source};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

async fn endpoint() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn remote(sock: &UdpSocket) -> RemoteMedia {
    RemoteMedia {
        addr: Some(sock.local_addr().unwrap()),
        codec: Codec::Pcmu,
        telephone_event_pt: None,
    }
}

fn sine(freq: f32, n0: u32, amp: f32) -> [i16; 160] {
    let mut f = [0i16; 160];
    for (i, s) in f.iter_mut().enumerate() {
        *s = (amp * (TAU * freq * (n0 + i as u32) as f32 / 8000.0).sin()) as i16;
    }
    f
}

/// Sends `frames` packets of a sine at `freq` from `sock` to `to`, in real
/// time.
async fn talk(sock: &UdpSocket, to: SocketAddr, freq: f32, frames: u32, ssrc: u32) {
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    let mut pkt = Vec::new();
    for k in 0..frames {
        interval.tick().await;
        let mut payload = Vec::new();
        Law::Ulaw.encode(&sine(freq, k * 160, 4000.0), &mut payload);
        write_packet(&mut pkt, k == 0, 0, k as u16, k * 160, ssrc, &payload);
        let _ = sock.send_to(&pkt, to).await;
    }
}

/// What `sock` receives for `dur`, decoded.
async fn hear(sock: &UdpSocket, dur: Duration) -> Vec<i16> {
    let deadline = Instant::now() + dur;
    let mut pcm = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..10_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match timeout(left, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                    Law::Ulaw.decode(p.payload, &mut pcm);
                }
            }
            _ => break,
        }
    }
    pcm
}

fn level(pcm: &[i16], hz: f32) -> f32 {
    goertzel_amplitude(pcm, hz, 8000.0)
}

/// Two legs bridged, each with an endpoint.
async fn bridged(eng: &MediaEngine) -> (UdpSocket, SocketAddr, UdpSocket, SocketAddr) {
    let (a, b) = (endpoint().await, endpoint().await);
    let la = eng.allocate(LegId(1)).unwrap();
    let lb = eng.allocate(LegId(2)).unwrap();
    eng.set_remote(LegId(1), remote(&a)).unwrap();
    eng.set_remote(LegId(2), remote(&b)).unwrap();
    eng.set_source(LegId(1), Source::Bridge(9)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(9)).unwrap();
    (a, la, b, lb)
}

#[tokio::test]
async fn a_tap_copies_what_the_leg_hears_and_says_on_two_channels() {
    let (eng, _ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let (a, la, b, lb) = bridged(&eng).await;
    let mut tap = eng.tap(LegId(2), true, false, 100).unwrap();
    let mut mono = eng.tap(LegId(2), false, false, 100).unwrap();
    // From the far party's leg (as for a route point call): swapped.
    let mut peer = eng.tap(LegId(1), true, true, 100).unwrap();
    assert_eq!(eng.stream_count(), 3);
    tokio::join!(talk(&a, la, 1000.0, 40, 1), talk(&b, lb, 600.0, 40, 2));
    let mut frames: Vec<TapFrame> = Vec::new();
    while let Some(f) = tap.try_recv() {
        frames.push(f);
    }
    assert!(frames.len() >= 30, "{} frames", frames.len());
    let heard: Vec<i16> = frames.iter().flat_map(|f| f.heard).collect();
    let said: Vec<i16> = frames.iter().flat_map(|f| f.said).collect();
    assert!(level(&heard, 1000.0) > 1000.0 && level(&heard, 600.0) < 200.0);
    assert!(level(&said, 600.0) > 1000.0 && level(&said, 1000.0) < 200.0);
    let mut mono_heard = Vec::new();
    while let Some(f) = mono.try_recv() {
        assert!(f.said.iter().all(|&s| s == 0), "one channel");
        mono_heard.extend(f.heard);
    }
    assert!(level(&mono_heard, 1000.0) > 1000.0);
    let mut peer_said = Vec::new();
    while let Some(f) = peer.try_recv() {
        peer_said.extend(f.said);
    }
    assert!(
        level(&peer_said, 600.0) > 1000.0,
        "what leg 1 hears is what the tapped side says"
    );
    assert_eq!(tap.dropped(), 0);
    // The leg's media goes: the tap ends.
    assert!(eng.release(LegId(2)));
    let mut ended = false;
    for _ in 0..1000 {
        match timeout(Duration::from_secs(2), tap.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(ended, "the tap ends with the leg's media");
    drop(mono);
    drop(peer);
    let deadline = Instant::now() + Duration::from_secs(2);
    while eng.stream_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(eng.stream_count(), 0, "a dropped tap is forgotten");
}

#[tokio::test]
async fn silence_keeps_the_pace_and_a_reader_that_never_reads_loses_frames_not_the_relay() {
    let (eng, _ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let (a, la, b, _lb) = bridged(&eng).await;
    let mut idle = eng.tap(LegId(2), true, false, 100).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut n = 0;
    while let Some(f) = idle.try_recv() {
        assert!(f.heard.iter().chain(&f.said).all(|&s| s == 0));
        n += 1;
    }
    assert!((5..=25).contains(&n), "silence still comes in frames: {n}");
    drop(idle);
    let slow = eng.tap(LegId(2), true, false, 3).unwrap();
    let (_, got) = tokio::join!(
        talk(&a, la, 1000.0, 50, 1),
        hear(&b, Duration::from_millis(1500))
    );
    assert!(
        got.len() >= 45 * 160,
        "the relay went on: {} samples",
        got.len()
    );
    assert!(level(&got, 1000.0) > 1000.0);
    assert!(slow.dropped() >= 40, "dropped {}", slow.dropped());
}

#[tokio::test]
async fn frames_played_replace_or_mix_with_the_party_and_clear_at_once() {
    let (eng, _ev) = MediaEngine::new(MediaConfig::default()).unwrap();
    let (a, la, b, _lb) = bridged(&eng).await;
    let mut tap = eng.tap(LegId(2), false, false, 200).unwrap();
    let mut play = eng.play(LegId(2), 500).unwrap();
    for k in 0..60 {
        assert!(play.push(sine(800.0, k * 160, 4000.0)));
    }
    // Replace: B hears 800 Hz, not A's 1000 Hz.
    let (_, got) = tokio::join!(
        talk(&a, la, 1000.0, 25, 1),
        hear(&b, Duration::from_millis(500))
    );
    assert!(
        level(&got, 800.0) > 1000.0 && level(&got, 1000.0) < 300.0,
        "replace: 800 {} 1000 {}",
        level(&got, 800.0),
        level(&got, 1000.0)
    );
    let mut heard = Vec::new();
    while let Some(f) = tap.try_recv() {
        heard.extend(f.heard);
    }
    assert!(
        level(&heard, 800.0) > 1000.0,
        "the tap hears what is played"
    );
    // Barge-in: what is queued goes at once, the party is heard again.
    play.clear();
    let _ = hear(&b, Duration::from_millis(60)).await;
    let (_, got) = tokio::join!(
        talk(&a, la, 1000.0, 25, 3),
        hear(&b, Duration::from_millis(500))
    );
    assert!(
        level(&got, 1000.0) > 1000.0 && level(&got, 800.0) < 300.0,
        "cleared: 800 {} 1000 {}",
        level(&got, 800.0),
        level(&got, 1000.0)
    );
    // Mix: both.
    play.set_mode(PlayMode::Mix);
    for k in 0..40 {
        assert!(play.push(sine(800.0, k * 160, 4000.0)));
    }
    let (_, got) = tokio::join!(
        talk(&a, la, 1000.0, 25, 4),
        hear(&b, Duration::from_millis(500))
    );
    assert!(
        level(&got, 1000.0) > 1000.0 && level(&got, 800.0) > 1000.0,
        "mixed: 800 {} 1000 {}",
        level(&got, 800.0),
        level(&got, 1000.0)
    );
    // A full queue refuses frames (counted) and never waits.
    let mut small = eng.play(LegId(1), 2).unwrap();
    let accepted = (0..10).filter(|_| small.push([0; 160])).count();
    assert!(accepted <= 4, "{accepted}");
    assert_eq!(small.dropped() as usize, 10 - accepted);
    drop(small);
    drop(play);
    drop(tap);
    let deadline = Instant::now() + Duration::from_secs(2);
    while eng.stream_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(eng.stream_count(), 0);
    assert!(eng.tap(LegId(77), false, false, 1).is_err());
    assert!(eng.play(LegId(77), 1).is_err());
}
