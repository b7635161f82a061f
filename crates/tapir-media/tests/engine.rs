//! Integration tests of the media engine over real UDP on 127.0.0.1: fake
//! RTP endpoints (plain `UdpSocket`s) talk to the engine's legs, and what
//! they receive is checked with a Goertzel filter. Every loop is bounded in
//! count and in time.
#![allow(clippy::unwrap_used)]

use std::f32::consts::TAU;
use std::net::SocketAddr;
use std::time::Duration;
use tapir_media::dtmf::{TelephoneEvent, encode_event};
use tapir_media::g711::Law;
use tapir_media::rtp::{RtpPacket, write_packet};
use tapir_media::tone::goertzel_amplitude;
use tapir_media::{
    Codec, Direction, LegId, MediaConfig, MediaEngine, MediaEvent, RemoteMedia, Source, ToneKind,
};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

/// A received packet, owned.
#[derive(Debug, Clone)]
struct Rx {
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

async fn endpoint() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn engine() -> (MediaEngine, tapir_media::MediaEvents) {
    MediaEngine::new(MediaConfig::default()).unwrap()
}

fn remote(sock: &UdpSocket, codec: Codec, te: Option<u8>) -> RemoteMedia {
    RemoteMedia {
        addr: Some(sock.local_addr().unwrap()),
        codec,
        telephone_event_pt: te,
    }
}

/// Receives packets for at most `dur` or `max` packets.
async fn collect(sock: &UdpSocket, dur: Duration, max: usize) -> Vec<Rx> {
    let deadline = Instant::now() + dur;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < max {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match timeout(left, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => {
                if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                    out.push(Rx {
                        marker: p.marker,
                        pt: p.payload_type,
                        seq: p.seq,
                        ts: p.timestamp,
                        ssrc: p.ssrc,
                        payload: p.payload.to_vec(),
                    });
                }
            }
            _ => break,
        }
    }
    out
}

fn sine_frame(freq: f32, n0: u32, amp: f32) -> Vec<i16> {
    (0..160)
        .map(|i| (amp * (TAU * freq * (n0 + i) as f32 / 8000.0).sin()) as i16)
        .collect()
}

/// Sends `frames` 20 ms packets of a sine at `freq`, paced in real time.
async fn send_tone(sock: &UdpSocket, to: SocketAddr, law: Law, freq: f32, frames: u32, ssrc: u32) {
    let pt = if law == Law::Ulaw { 0 } else { 8 };
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    let mut pkt = Vec::new();
    for k in 0..frames {
        interval.tick().await;
        let mut payload = Vec::new();
        law.encode(&sine_frame(freq, k * 160, 4000.0), &mut payload);
        write_packet(&mut pkt, k == 0, pt, k as u16, k * 160, ssrc, &payload);
        let _ = sock.send_to(&pkt, to).await;
    }
}

fn decode(rx: &[Rx]) -> Vec<i16> {
    let mut pcm = Vec::new();
    for p in rx {
        let law = if p.pt == 8 { Law::Alaw } else { Law::Ulaw };
        law.decode(&p.payload, &mut pcm);
    }
    pcm
}

#[tokio::test]
async fn two_party_relay_with_transcoding_and_continuity() {
    let (eng, _ev) = engine();
    let (a, b, c) = (endpoint().await, endpoint().await, endpoint().await);
    let la = eng.allocate(LegId(1)).unwrap();
    let lb = eng.allocate(LegId(2)).unwrap();
    let lc = eng.allocate(LegId(3)).unwrap();
    assert!(la.ip().is_loopback() && lb.port() != 0 && lc.port() != la.port());
    eng.set_remote(LegId(1), remote(&a, Codec::Pcmu, None))
        .unwrap();
    eng.set_remote(LegId(2), remote(&b, Codec::Pcma, None))
        .unwrap();
    eng.set_remote(LegId(3), remote(&c, Codec::Pcmu, None))
        .unwrap();
    eng.set_source(LegId(1), Source::Bridge(7)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(7)).unwrap();

    // A -> B: PCMU in, PCMA out with the same audio.
    let mut pkt = Vec::new();
    let frame = sine_frame(1000.0, 0, 4000.0);
    let mut ulaw = Vec::new();
    Law::Ulaw.encode(&frame, &mut ulaw);
    for k in 0..10u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            100 + k,
            5000 + u32::from(k) * 160,
            0xaaaa,
            &ulaw,
        );
        a.send_to(&pkt, la).await.unwrap();
    }
    let got = collect(&b, Duration::from_secs(2), 10).await;
    assert_eq!(got.len(), 10, "B got {got:?}");
    for p in &got {
        assert_eq!(p.pt, 8);
        let mut back = Vec::new();
        Law::Alaw.decode(&p.payload, &mut back);
        for (x, y) in back.iter().zip(&frame) {
            assert!((i32::from(*x) - i32::from(*y)).abs() < 300);
        }
    }
    assert!(
        got.iter()
            .all(|p| p.ssrc == got[0].ssrc && p.ssrc != 0xaaaa)
    );
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(160));
    }
    // B -> A the other way, PCMA in, PCMU out.
    let mut alaw = Vec::new();
    Law::Alaw.encode(&frame, &mut alaw);
    write_packet(&mut pkt, false, 8, 1, 1, 0xbbbb, &alaw);
    b.send_to(&pkt, lb).await.unwrap();
    let back = collect(&a, Duration::from_secs(2), 1).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].pt, 0);

    // Transfer: C replaces A in the bridge; B sees one continuous stream.
    eng.set_source(LegId(1), Source::Silence).unwrap();
    eng.set_source(LegId(3), Source::Bridge(7)).unwrap();
    for k in 0..5u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            40_000 + k,
            9_000_000 + u32::from(k) * 160,
            0xcccc,
            &ulaw,
        );
        c.send_to(&pkt, lc).await.unwrap();
    }
    let after = collect(&b, Duration::from_secs(2), 5).await;
    assert_eq!(after.len(), 5);
    let last = got.last().unwrap();
    assert_eq!(after[0].ssrc, last.ssrc, "same SSRC after the transfer");
    assert_eq!(after[0].seq, last.seq.wrapping_add(1), "sequence continues");
    assert!(after[0].marker, "marker on the new talk spurt");
    let gap = after[0].ts.wrapping_sub(last.ts);
    assert!(
        (160..8000 * 10).contains(&gap),
        "timestamp advances by elapsed time: {gap}"
    );
    assert!(eng.stats().relayed >= 16);
}

#[tokio::test]
async fn three_party_mix_each_hears_the_others_not_itself() {
    let (eng, _ev) = engine();
    let eps = [endpoint().await, endpoint().await, endpoint().await];
    let freqs = [500.0f32, 1000.0, 1500.0];
    let codecs = [Codec::Pcmu, Codec::Pcma, Codec::Pcmu];
    let mut locals = Vec::new();
    for i in 0..3 {
        let leg = LegId(10 + i as u64);
        locals.push(eng.allocate(leg).unwrap());
        eng.set_remote(leg, remote(&eps[i], codecs[i], None))
            .unwrap();
        eng.set_source(leg, Source::Bridge(1)).unwrap();
    }
    let frames = 60; // 1.2 s
    let senders = async {
        tokio::join!(
            send_tone(&eps[0], locals[0], Law::Ulaw, freqs[0], frames, 1),
            send_tone(&eps[1], locals[1], Law::Alaw, freqs[1], frames, 2),
            send_tone(&eps[2], locals[2], Law::Ulaw, freqs[2], frames, 3),
        )
    };
    let receivers = async {
        tokio::join!(
            collect(&eps[0], Duration::from_millis(1500), 100),
            collect(&eps[1], Duration::from_millis(1500), 100),
            collect(&eps[2], Duration::from_millis(1500), 100),
        )
    };
    let (_, (r0, r1, r2)) = tokio::join!(senders, receivers);
    for (i, rx) in [r0, r1, r2].iter().enumerate() {
        assert!(rx.len() >= 40, "endpoint {i} got {} packets", rx.len());
        assert!(rx.iter().all(|p| p.pt == codecs[i].payload_type()));
        let pcm = decode(rx);
        // Skip the start (priming), analyse 0.5 s of the middle.
        let mid = &pcm[1600..(1600 + 4000).min(pcm.len())];
        for (j, f) in freqs.iter().enumerate() {
            let a = goertzel_amplitude(mid, *f, 8000.0);
            if i == j {
                assert!(a < 200.0, "endpoint {i} hears itself at {f} Hz: {a}");
            } else {
                assert!(a > 1500.0, "endpoint {i} does not hear {f} Hz: {a}");
            }
        }
    }
}

#[tokio::test]
async fn ringback_leg_hears_440_and_480() {
    let (eng, _ev) = engine();
    let ep = endpoint().await;
    eng.allocate(LegId(1)).unwrap();
    eng.set_remote(LegId(1), remote(&ep, Codec::Pcma, None))
        .unwrap();
    eng.set_source(LegId(1), Source::Tone(ToneKind::Ringback))
        .unwrap();
    let started = Instant::now();
    let rx = collect(&ep, Duration::from_secs(3), 50).await;
    let took = started.elapsed();
    assert_eq!(rx.len(), 50);
    // Paced: 50 packets of 20 ms take about a second.
    assert!(took > Duration::from_millis(800), "{took:?}");
    assert!(rx.iter().all(|p| p.pt == 8 && p.payload.len() == 160));
    assert!(rx[0].marker && rx[1..].iter().all(|p| !p.marker));
    for w in rx.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(160), "steady 20 ms clock");
    }
    let pcm = decode(&rx);
    assert!(goertzel_amplitude(&pcm, 440.0, 8000.0) > 2500.0);
    assert!(goertzel_amplitude(&pcm, 480.0, 8000.0) > 2500.0);
    assert!(goertzel_amplitude(&pcm, 350.0, 8000.0) < 300.0);
    assert!(goertzel_amplitude(&pcm, 620.0, 8000.0) < 300.0);

    // Hold music replaces it and is audible; inactive stops everything.
    eng.set_source(LegId(1), Source::Tone(ToneKind::HoldMusic))
        .unwrap();
    let music = collect(&ep, Duration::from_secs(2), 25).await;
    assert_eq!(music.len(), 25);
    assert_eq!(music[0].ssrc, rx[0].ssrc);
    let pcm = decode(&music);
    let rms = (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
    assert!(rms > 300.0, "hold music rms {rms}");
    eng.set_direction(LegId(1), Direction::Inactive).unwrap();
    let _ = collect(&ep, Duration::from_millis(60), 10).await; // in flight
    let none = collect(&ep, Duration::from_millis(200), 10).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn rfc4733_digits_in_become_events() {
    let (eng, mut ev) = engine();
    let ep = endpoint().await;
    let local = eng.allocate(LegId(5)).unwrap();
    eng.set_remote(LegId(5), remote(&ep, Codec::Pcmu, Some(101)))
        .unwrap();
    let mut pkt = Vec::new();
    let mut seq = 0u16;
    for (i, d) in [1u8, 2, 11].iter().enumerate() {
        let ts = 1000 + i as u32 * 4000;
        for (k, block) in encode_event(*d, 800, 160).iter().enumerate() {
            write_packet(&mut pkt, k == 0, 101, seq, ts, 77, &block.to_bytes());
            seq = seq.wrapping_add(1);
            ep.send_to(&pkt, local).await.unwrap();
        }
    }
    let mut digits = String::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while digits.len() < 3 && Instant::now() < deadline {
        match timeout(Duration::from_secs(2), ev.recv()).await {
            Ok(Some(MediaEvent::DigitsReceived { leg, digits: d })) => {
                assert_eq!(leg, LegId(5));
                digits.push_str(&d);
            }
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            _ => break,
        }
    }
    assert_eq!(digits, "12#");
    assert!(
        ev.try_recv().is_none(),
        "end packets were not reported twice"
    );
}

#[tokio::test]
async fn digits_out_as_events_and_in_band() {
    let (eng, _ev) = engine();
    let (a, b) = (endpoint().await, endpoint().await);
    eng.allocate(LegId(1)).unwrap();
    eng.allocate(LegId(2)).unwrap();
    eng.set_remote(LegId(1), remote(&a, Codec::Pcmu, Some(96)))
        .unwrap();
    eng.set_remote(LegId(2), remote(&b, Codec::Pcmu, None))
        .unwrap();
    assert_eq!(eng.send_digits(LegId(1), "5").unwrap(), 1);
    assert_eq!(eng.send_digits(LegId(2), "5").unwrap(), 1);
    let (ra, rb) = tokio::join!(
        collect(&a, Duration::from_secs(2), 7),
        collect(&b, Duration::from_secs(2), 5)
    );
    assert_eq!(ra.len(), 7);
    assert!(ra.iter().all(|p| p.pt == 96 && p.ts == ra[0].ts));
    assert!(ra[0].marker);
    let evs: Vec<TelephoneEvent> = ra
        .iter()
        .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
        .collect();
    assert!(evs.iter().all(|e| e.event == 5));
    assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
    assert_eq!(rb.len(), 5);
    let pcm = decode(&rb);
    assert!(goertzel_amplitude(&pcm, 770.0, 8000.0) > 4000.0);
    assert!(goertzel_amplitude(&pcm, 1336.0, 8000.0) > 4000.0);
    assert!(matches!(
        eng.send_digits(LegId(99), "1"),
        Err(tapir_media::MediaError::UnknownLeg(LegId(99)))
    ));
}

#[tokio::test]
async fn garbage_is_dropped_symmetric_rtp_latches_and_timeout_fires() {
    let cfg = MediaConfig {
        rtp_timeout: Some(Duration::from_millis(300)),
        ..MediaConfig::default()
    };
    let (eng, mut ev) = MediaEngine::new(cfg).unwrap();
    let (a, b) = (endpoint().await, endpoint().await);
    let la = eng.allocate(LegId(1)).unwrap();
    eng.allocate(LegId(2)).unwrap();
    // A's signalled address is wrong (behind NAT): the engine must latch.
    let wrong = RemoteMedia {
        addr: Some("127.0.0.1:9".parse().unwrap()),
        codec: Codec::Pcmu,
        telephone_event_pt: None,
    };
    eng.set_remote(LegId(1), wrong).unwrap();
    eng.set_remote(LegId(2), remote(&b, Codec::Pcmu, None))
        .unwrap();
    eng.set_source(LegId(1), Source::Bridge(3)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(3)).unwrap();
    for junk in [
        &[][..],
        &[0x80][..],
        &[0xff; 40][..],
        &[0x8f; 12][..],
        &[0x80, 200, 0, 1][..],
    ] {
        a.send_to(junk, la).await.unwrap();
    }
    // An attacker's single packet does not latch; A's fifth packet in
    // sequence does (the first four are probation).
    let mallory = endpoint().await;
    let mut pkt = Vec::new();
    write_packet(&mut pkt, false, 0, 500, 160, 66, &[0x66; 160]);
    mallory.send_to(&pkt, la).await.unwrap();
    for seq in 1..=5u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            9,
            &[0xff; 160],
        );
        a.send_to(&pkt, la).await.unwrap();
    }
    write_packet(&mut pkt, false, 18, 6, 960, 9, &[0; 20]); // G.729: dropped
    a.send_to(&pkt, la).await.unwrap();
    let relayed = collect(&b, Duration::from_secs(2), 1).await;
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert!(collect(&b, Duration::from_millis(100), 1).await.is_empty());
    assert_eq!(relayed[0].payload, vec![0xff; 160]);
    // Once latched, other sources are dropped.
    for seq in 501..=505u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            66,
            &[0x66; 160],
        );
        mallory.send_to(&pkt, la).await.unwrap();
    }
    assert!(collect(&b, Duration::from_millis(200), 1).await.is_empty());
    // Re-sending the same SDP keeps the latched address.
    eng.set_remote(LegId(1), wrong).unwrap();
    // B talks back; it reaches A's real address thanks to latching.
    let lb = eng.local_addr(LegId(2)).unwrap();
    write_packet(&mut pkt, false, 0, 1, 160, 10, &[0xff; 160]);
    b.send_to(&pkt, lb).await.unwrap();
    assert_eq!(collect(&a, Duration::from_secs(2), 1).await.len(), 1);
    let stats = eng.stats();
    assert!(stats.dropped >= 13, "{stats:?}");
    // A held leg is not watched.
    eng.allocate(LegId(3)).unwrap();
    eng.set_remote(LegId(3), remote(&a, Codec::Pcmu, None))
        .unwrap();
    eng.set_direction(LegId(3), Direction::RecvOnly).unwrap();
    // Now both go quiet: two timeouts within a second (earlier ones, from
    // before B spoke, are not counted).
    while ev.try_recv().is_some() {}
    eng.set_remote(LegId(1), wrong).unwrap(); // restarts the watch
    eng.set_remote(LegId(2), remote(&b, Codec::Pcmu, None))
        .unwrap();
    let mut timed_out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while timed_out.len() < 2 && Instant::now() < deadline {
        if let Ok(Some(MediaEvent::RtpTimeout { leg })) =
            timeout(Duration::from_secs(2), ev.recv()).await
        {
            timed_out.push(leg);
        }
    }
    timed_out.sort();
    assert_eq!(timed_out, vec![LegId(1), LegId(2)]);
    // Legs 1 and 2 are reported again while they stay silent; held leg 3
    // (one hour by default) never is.
    let quiet_until = Instant::now() + Duration::from_millis(400);
    while let Ok(Some(e)) = timeout(
        quiet_until.saturating_duration_since(Instant::now()),
        ev.recv(),
    )
    .await
    {
        assert_ne!(
            e,
            MediaEvent::RtpTimeout { leg: LegId(3) },
            "held leg 3 timed out"
        );
    }
    assert!(eng.release(LegId(1)));
    assert!(!eng.release(LegId(1)));
    assert_eq!(eng.leg_count(), 2);
}

#[tokio::test]
async fn port_range_is_honoured_and_exhaustion_is_an_error() {
    // Find a free even port pair region by asking the OS, then use a tiny range.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let base = probe.local_addr().unwrap().port() & !1;
    drop(probe);
    let cfg = MediaConfig {
        port_range: Some((base, base + 1)),
        ..MediaConfig::default()
    };
    let (eng, _ev) = MediaEngine::new(cfg).unwrap();
    match eng.allocate(LegId(1)) {
        Ok(addr) => {
            assert_eq!(addr.port(), base);
            assert!(matches!(
                eng.allocate(LegId(2)),
                Err(tapir_media::MediaError::NoPort(..))
            ));
        }
        // Someone else took the port in between: still an error, not a panic.
        Err(e) => assert!(matches!(e, tapir_media::MediaError::NoPort(..))),
    }
    assert!(matches!(
        eng.allocate(LegId(1)),
        Err(tapir_media::MediaError::AlreadyAllocated(_))
            | Err(tapir_media::MediaError::NoPort(..))
    ));
}

/// A released leg's socket pair serves the next leg (no new socket), and
/// what its former peer sent in between is not the new leg's.
#[test]
fn a_released_pair_serves_the_next_leg() {
    let (eng, _ev) = engine();
    let first = eng.allocate(LegId(1)).unwrap();
    assert!(eng.release(LegId(1)));
    let stale = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut pkt = Vec::new();
    write_packet(&mut pkt, true, 0, 1, 160, 0x5157, &[0xff; 160]);
    stale.send_to(&pkt, first).unwrap();
    let second = eng.allocate(LegId(2)).unwrap();
    assert_eq!(second, first, "the spare pair is used again");
    assert_eq!(eng.leg_count(), 1);
    assert_eq!(
        eng.stats().received,
        0,
        "the former peer's packet was dropped"
    );
}

/// The engine runs on a thread of its own: no async runtime is needed to
/// relay between two legs, and dropping the engine closes their sockets.
#[test]
fn engine_relays_without_a_runtime_and_closes_on_drop() {
    let (eng, _ev) = engine();
    let (a, b) = (
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (la, lb) = (
        eng.allocate(LegId(1)).unwrap(),
        eng.allocate(LegId(2)).unwrap(),
    );
    for (leg, sock) in [(1, &a), (2, &b)] {
        eng.set_remote(
            LegId(leg),
            RemoteMedia {
                addr: Some(sock.local_addr().unwrap()),
                codec: Codec::Pcmu,
                telephone_event_pt: None,
            },
        )
        .unwrap();
        eng.set_source(LegId(leg), Source::Bridge(7)).unwrap();
    }
    let mut pkt = Vec::new();
    let mut buf = [0u8; 2048];
    let mut relayed = 0;
    for k in 0..25u16 {
        write_packet(
            &mut pkt,
            k == 0,
            0,
            k,
            u32::from(k) * 160,
            0x1234,
            &[0xff; 160],
        );
        a.send_to(&pkt, la).unwrap();
        if let Ok((n, _)) = b.recv_from(&mut buf)
            && RtpPacket::parse(&buf[..n]).is_ok_and(|p| p.payload.len() == 160)
        {
            relayed += 1;
        }
    }
    assert!(relayed >= 20, "only {relayed} of 25 packets relayed");
    drop(eng);
    // The legs' ports are free again once the engine is gone.
    assert!(std::net::UdpSocket::bind(la).is_ok());
    assert!(std::net::UdpSocket::bind(lb).is_ok());
}

#[tokio::test]
async fn random_datagrams_never_break_a_leg() {
    let (eng, _ev) = engine();
    let (a, b) = (endpoint().await, endpoint().await);
    let la = eng.allocate(LegId(1)).unwrap();
    eng.allocate(LegId(2)).unwrap();
    eng.set_remote(LegId(1), remote(&a, Codec::Pcmu, Some(101)))
        .unwrap();
    eng.set_remote(LegId(2), remote(&b, Codec::Pcma, Some(101)))
        .unwrap();
    eng.set_source(LegId(1), Source::Bridge(1)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(1)).unwrap();
    // Deterministic xorshift noise: lengths 0-300, half of them with a
    // plausible RTP v2 first byte and PT 0/8/101.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..2000 {
        let len = (next() % 301) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && len >= 2 {
            d[0] = 0x80 | (d[0] & 0x3f);
            d[1] = [0u8, 8, 101, 0x80 | 101][(next() % 4) as usize];
        }
        let _ = a.send_to(&d, la).await;
        if i % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Drain whatever was relayed, then check the leg still relays cleanly.
    let _ = collect(&b, Duration::from_millis(300), 5000).await;
    let mut pkt = Vec::new();
    write_packet(&mut pkt, false, 0, 1, 160, 9, &[0xff; 160]);
    a.send_to(&pkt, la).await.unwrap();
    let got = collect(&b, Duration::from_secs(2), 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].pt, 8);
    assert_eq!(eng.leg_count(), 2);
}

#[tokio::test]
async fn leaving_a_conference_falls_back_to_relay_without_a_break() {
    let (eng, _ev) = engine();
    let eps = [endpoint().await, endpoint().await, endpoint().await];
    let mut locals = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        let leg = LegId(i as u64);
        locals.push(eng.allocate(leg).unwrap());
        eng.set_remote(leg, remote(ep, Codec::Pcmu, None)).unwrap();
        eng.set_source(leg, Source::Bridge(9)).unwrap();
    }
    // While three are in the bridge, endpoint 0 receives mixed packets.
    let (_, mixed) = tokio::join!(
        send_tone(&eps[1], locals[1], Law::Ulaw, 1000.0, 15, 1),
        collect(&eps[0], Duration::from_millis(300), 10)
    );
    assert!(mixed.len() >= 5);
    // Party 2 leaves: 0 and 1 are relayed directly, same stream for 0.
    eng.set_source(LegId(2), Source::Silence).unwrap();
    let mut pkt = Vec::new();
    write_packet(&mut pkt, false, 0, 500, 80_000, 7, &[0x12; 160]);
    eps[1].send_to(&pkt, locals[1]).await.unwrap();
    let mut after = collect(&eps[0], Duration::from_millis(400), 40).await;
    let all: Vec<Rx> = mixed.iter().cloned().chain(after.drain(..)).collect();
    let mine = all
        .iter()
        .position(|p| p.payload == vec![0x12; 160])
        .expect("relayed untouched");
    assert!(all[mine].marker, "new stream marked");
    assert!(all.iter().all(|p| p.ssrc == all[0].ssrc), "one stream");
    for w in all.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "no sequence gap");
    }
}

#[tokio::test]
async fn telephone_events_are_relayed_with_the_peers_payload_type() {
    let (eng, mut ev) = engine();
    let (a, b, c) = (endpoint().await, endpoint().await, endpoint().await);
    let la = eng.allocate(LegId(1)).unwrap();
    eng.allocate(LegId(2)).unwrap();
    eng.allocate(LegId(3)).unwrap();
    eng.set_remote(LegId(1), remote(&a, Codec::Pcmu, Some(101)))
        .unwrap();
    eng.set_remote(LegId(2), remote(&b, Codec::Pcmu, Some(96)))
        .unwrap();
    eng.set_remote(LegId(3), remote(&c, Codec::Pcmu, None))
        .unwrap();
    eng.set_source(LegId(1), Source::Bridge(4)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(4)).unwrap();
    let mut pkt = Vec::new();
    let blocks = encode_event(7, 800, 160);
    for (k, block) in blocks.iter().enumerate() {
        write_packet(&mut pkt, k == 0, 101, k as u16, 4242, 5, &block.to_bytes());
        a.send_to(&pkt, la).await.unwrap();
    }
    let got = collect(&b, Duration::from_secs(2), blocks.len()).await;
    assert_eq!(got.len(), blocks.len());
    assert!(got.iter().all(|p| p.pt == 96 && p.ts == got[0].ts));
    assert_eq!(TelephoneEvent::parse(&got[0].payload).unwrap().event, 7);
    match timeout(Duration::from_secs(2), ev.recv()).await {
        Ok(Some(MediaEvent::DigitsReceived { leg, digits })) => {
            assert_eq!((leg, digits.as_str()), (LegId(1), "7"));
        }
        other => panic!("expected digits, got {other:?}"),
    }
    // A peer without telephone-event gets nothing (the digit was reported).
    eng.set_source(LegId(2), Source::Silence).unwrap();
    eng.set_source(LegId(3), Source::Bridge(4)).unwrap();
    for (k, block) in blocks.iter().enumerate() {
        write_packet(
            &mut pkt,
            k == 0,
            101,
            100 + k as u16,
            9999,
            5,
            &block.to_bytes(),
        );
        a.send_to(&pkt, la).await.unwrap();
    }
    assert!(collect(&c, Duration::from_millis(300), 10).await.is_empty());
}

#[tokio::test]
async fn srtp_leg_relays_to_a_plain_leg_and_refuses_plain_packets() {
    use tapir_media::srtp::{SrtpKeys, SrtpSession, SrtpSuite, generate_key};
    let (eng, _ev) = engine();
    let (a, b) = (endpoint().await, endpoint().await);
    let la = eng.allocate(LegId(1)).unwrap();
    let lb = eng.allocate(LegId(2)).unwrap();
    let (phone_key, tapir_key) = (generate_key().unwrap(), generate_key().unwrap());
    let keys = SrtpKeys {
        suite: SrtpSuite::AesCm128HmacSha1_80,
        local: tapir_key,
        remote: phone_key,
    };
    let mut phone = SrtpSession::new(&SrtpKeys {
        suite: SrtpSuite::AesCm128HmacSha1_80,
        local: phone_key,
        remote: tapir_key,
    })
    .unwrap();
    eng.set_srtp(LegId(1), Some(keys)).unwrap();
    assert!(eng.is_secure(LegId(1)) && !eng.is_secure(LegId(2)));
    eng.set_srtp(LegId(1), Some(keys)).unwrap(); // unchanged: kept
    eng.set_remote(LegId(1), remote(&a, Codec::Pcmu, None))
        .unwrap();
    eng.set_remote(LegId(2), remote(&b, Codec::Pcmu, None))
        .unwrap();
    eng.set_source(LegId(1), Source::Bridge(1)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(1)).unwrap();

    // The secure phone talks: B hears plain audio.
    let mut pkt = Vec::new();
    write_packet(&mut pkt, false, 0, 1, 160, 42, &[0x21; 160]);
    a.send_to(&phone.protect(&pkt).unwrap(), la).await.unwrap();
    let got = collect(&b, Duration::from_secs(2), 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, vec![0x21; 160]);
    // Plain RTP towards the secure leg is dropped.
    write_packet(&mut pkt, false, 0, 2, 320, 42, &[0x22; 160]);
    a.send_to(&pkt, la).await.unwrap();
    assert!(collect(&b, Duration::from_millis(200), 1).await.is_empty());
    // B talks: the phone gets SRTP it can decrypt.
    write_packet(&mut pkt, false, 0, 9, 1440, 7, &[0x33; 160]);
    b.send_to(&pkt, lb).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(Duration::from_secs(2), a.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(&buf[12..172], &[0x33; 160][..], "encrypted on the wire");
    let plain = phone.unprotect(&buf[..n]).unwrap();
    assert_eq!(RtpPacket::parse(&plain).unwrap().payload, &[0x33; 160]);
    // No way back to plain RTP.
    assert!(matches!(
        eng.set_srtp(LegId(1), None),
        Err(tapir_media::MediaError::Downgrade(LegId(1)))
    ));
}

#[tokio::test]
async fn the_mixer_rides_out_reordered_and_lost_packets() {
    let (eng, _ev) = engine();
    let eps = [endpoint().await, endpoint().await, endpoint().await];
    let mut locals = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        let leg = LegId(70 + i as u64);
        locals.push(eng.allocate(leg).unwrap());
        eng.set_remote(leg, remote(ep, Codec::Pcmu, None)).unwrap();
        eng.set_source(leg, Source::Bridge(9)).unwrap();
    }
    // A talks at 1 kHz with every pair of packets swapped and one packet in
    // ten lost; B listens.
    let sender = async {
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        let mut pkt = Vec::new();
        for t in 0u32..60 {
            interval.tick().await;
            let k = t ^ 1;
            if k % 10 == 5 {
                continue;
            }
            let mut payload = Vec::new();
            Law::Ulaw.encode(&sine_frame(1000.0, k * 160, 4000.0), &mut payload);
            write_packet(&mut pkt, false, 0, k as u16, k * 160, 5, &payload);
            eps[0].send_to(&pkt, locals[0]).await.unwrap();
        }
    };
    let (_, rx) = tokio::join!(sender, collect(&eps[1], Duration::from_millis(1500), 100));
    let pcm = decode(&rx);
    assert!(pcm.len() >= 45 * 160, "B got {} samples", pcm.len());
    // From the 6th frame (primed) to the 45th every frame carries A's voice
    // (a concealed loss at half level at least): without concealment the
    // four losses drain the 40 ms queue into eight frames of silence. Up to
    // three are allowed for a scheduling hiccup of a loaded test machine
    // (a late sender empties the queue once, then it primes again).
    let holes: Vec<usize> = pcm
        .chunks(160)
        .enumerate()
        .take(45)
        .skip(5)
        .filter(|(_, frame)| {
            let energy = frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0;
            energy.sqrt() < 1000.0
        })
        .map(|(n, _)| n)
        .collect();
    assert!(holes.len() <= 3, "holes in B's mix at frames {holes:?}");
    let a = goertzel_amplitude(&pcm[800..45 * 160], 1000.0, 8000.0);
    assert!(a > 1500.0, "B hears A's 1 kHz: {a}");
}

#[tokio::test]
async fn a_stranger_who_speaks_before_the_phone_does_not_keep_the_leg() {
    let (eng, _ev) = engine();
    let (phone, far, stranger) = (endpoint().await, endpoint().await, endpoint().await);
    let lp = eng.allocate(LegId(1)).unwrap();
    let lf = eng.allocate(LegId(2)).unwrap();
    eng.set_remote(LegId(1), remote(&phone, Codec::Pcmu, None))
        .unwrap();
    eng.set_remote(LegId(2), remote(&far, Codec::Pcmu, None))
        .unwrap();
    eng.set_source(LegId(1), Source::Bridge(7)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(7)).unwrap();
    let mut pkt = Vec::new();
    // The stranger gets in first with a well-formed stream (one SSRC, in
    // sequence), long enough to pass any probation.
    for seq in 100..120u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            0xbad,
            &[0x66; 160],
        );
        stranger.send_to(&pkt, lp).await.unwrap();
    }
    // Let the engine take them before the phone speaks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while !collect(&far, Duration::from_millis(100), 64)
        .await
        .is_empty()
    {}
    // The phone speaks from its signalled address: its audio reaches the
    // far end...
    for seq in 1..=3u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            0x1001,
            &[0x11; 160],
        );
        phone.send_to(&pkt, lp).await.unwrap();
    }
    let heard = collect(&far, Duration::from_secs(2), 3).await;
    assert_eq!(heard.len(), 3, "{heard:?}");
    assert!(
        heard.iter().all(|p| p.payload == vec![0x11; 160]),
        "{heard:?}"
    );
    // ...the stranger's is dropped from now on...
    for seq in 120..130u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            0xbad,
            &[0x66; 160],
        );
        stranger.send_to(&pkt, lp).await.unwrap();
    }
    let heard = collect(&far, Duration::from_millis(300), 10).await;
    assert!(
        heard.iter().all(|p| p.payload != vec![0x66; 160]),
        "{heard:?}"
    );
    // ...and the far end's audio goes to the phone, not to the stranger.
    while !collect(&stranger, Duration::from_millis(50), 64)
        .await
        .is_empty()
    {}
    for seq in 1..=3u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            0x2002,
            &[0x22; 160],
        );
        far.send_to(&pkt, lf).await.unwrap();
    }
    let to_phone = collect(&phone, Duration::from_secs(2), 3).await;
    assert_eq!(to_phone.len(), 3, "{to_phone:?}");
    assert!(
        collect(&stranger, Duration::from_millis(200), 1)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_source_switching_ssrc_is_not_adopted() {
    let (eng, _ev) = engine();
    let far = endpoint().await;
    let nat = endpoint().await;
    let lp = eng.allocate(LegId(1)).unwrap();
    eng.allocate(LegId(2)).unwrap();
    // The phone's signalled address is not where it sends from (NAT).
    let private = RemoteMedia {
        addr: Some("127.0.0.1:9".parse().unwrap()),
        codec: Codec::Pcmu,
        telephone_event_pt: None,
    };
    eng.set_remote(LegId(1), private).unwrap();
    eng.set_remote(LegId(2), remote(&far, Codec::Pcmu, None))
        .unwrap();
    eng.set_source(LegId(1), Source::Bridge(8)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(8)).unwrap();
    let mut pkt = Vec::new();
    // In sequence, but a new SSRC on every packet: never adopted.
    for seq in 1..=10u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            u32::from(seq),
            &[0x33; 160],
        );
        nat.send_to(&pkt, lp).await.unwrap();
    }
    assert!(
        collect(&far, Duration::from_millis(300), 1)
            .await
            .is_empty()
    );
    // One SSRC: adopted at the fifth packet (a phone behind NAT works).
    for seq in 11..=15u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            0x1001,
            &[0x44; 160],
        );
        nat.send_to(&pkt, lp).await.unwrap();
    }
    let heard = collect(&far, Duration::from_secs(2), 2).await;
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0].payload, vec![0x44; 160]);
}
