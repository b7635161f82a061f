//! RTP inactivity over real UDP on 127.0.0.1: a leg whose phone never sent
//! a packet times out as well as one whose packets stopped; a held leg
//! waits for the longer hold timeout; a leg without media applied is not
//! watched. Timeouts are configured short; every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tapir_media::rtp::write_packet;
use tapir_media::{
    Codec, Direction, LegId, MediaConfig, MediaEngine, MediaEvent, MediaEvents, RemoteMedia,
};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

/// An engine that reports `ms` of silence (and `hold_ms` on hold).
fn engine(ms: u64, hold_ms: u64) -> (MediaEngine, MediaEvents) {
    MediaEngine::new(MediaConfig {
        rtp_timeout: Some(Duration::from_millis(ms)),
        rtp_hold_timeout: Some(Duration::from_millis(hold_ms)),
        rtcp_interval: None,
        ..MediaConfig::default()
    })
    .unwrap()
}

async fn phone() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn remote(sock: &UdpSocket) -> RemoteMedia {
    RemoteMedia {
        addr: Some(sock.local_addr().unwrap()),
        codec: Codec::Pcmu,
        telephone_event_pt: None,
    }
}

/// The timeouts reported within `within`, in order.
async fn timeouts(events: &mut MediaEvents, within: Duration) -> Vec<LegId> {
    let end = Instant::now() + within;
    let mut out = Vec::new();
    for _ in 0..100 {
        let left = end.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Ok(Some(MediaEvent::RtpTimeout { leg })) => out.push(leg),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[tokio::test]
async fn a_leg_that_never_received_a_packet_times_out() {
    let (eng, mut events) = engine(200, 800);
    let a = phone().await;
    eng.allocate(LegId(1)).unwrap();
    // Allocated but never given the phone's address: not watched.
    eng.allocate(LegId(2)).unwrap();
    eng.set_remote(LegId(1), remote(&a)).unwrap();
    let first = timeout(Duration::from_secs(3), events.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(MediaEvent::RtpTimeout { leg: LegId(1) }));
    // While the silence lasts it is reported again (the server may have
    // ignored a report for a call not answered yet); leg 2 never.
    let again = timeouts(&mut events, Duration::from_secs(1)).await;
    assert!(again.contains(&LegId(1)), "{again:?}");
    assert!(!again.contains(&LegId(2)), "{again:?}");
}

#[tokio::test]
async fn a_leg_whose_packets_stopped_times_out() {
    // Generous against a loaded machine pausing the sending task.
    let (eng, mut events) = engine(500, 5000);
    let a = phone().await;
    let local = eng.allocate(LegId(1)).unwrap();
    eng.set_remote(LegId(1), remote(&a)).unwrap();
    // The phone talks for a second (two timeouts' worth): no report.
    let mut pkt = Vec::new();
    for seq in 0..50u16 {
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            7,
            &[0xff; 160],
        );
        a.send_to(&pkt, local).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events.try_recv(), None, "a talking phone timed out");
    // Then it vanishes.
    let ev = timeout(Duration::from_secs(3), events.recv())
        .await
        .unwrap();
    assert_eq!(ev, Some(MediaEvent::RtpTimeout { leg: LegId(1) }));
}

#[tokio::test]
async fn a_held_leg_waits_for_the_hold_timeout() {
    let (eng, mut events) = engine(200, 800);
    let a = phone().await;
    let b = phone().await;
    eng.allocate(LegId(1)).unwrap();
    eng.allocate(LegId(2)).unwrap();
    eng.set_remote(LegId(1), remote(&a)).unwrap();
    // Leg 1 on hold (tapir only sends: the phone holds with recvonly).
    eng.set_direction(LegId(1), Direction::SendOnly).unwrap();
    // Leg 2 held with no address (`c=0.0.0.0`).
    eng.set_remote(
        LegId(2),
        RemoteMedia {
            addr: None,
            ..remote(&b)
        },
    )
    .unwrap();
    // Well past the 200 ms timeout of a flowing call: nothing.
    let early = timeouts(&mut events, Duration::from_millis(500)).await;
    assert!(early.is_empty(), "held legs timed out early: {early:?}");
    // The 800 ms hold timeout catches both.
    let mut late = timeouts(&mut events, Duration::from_secs(3)).await;
    late.sort();
    late.dedup();
    assert_eq!(late, vec![LegId(1), LegId(2)]);
}

#[tokio::test]
async fn no_hold_timeout_never_times_a_held_leg_out() {
    let (eng, mut events) = MediaEngine::new(MediaConfig {
        rtp_timeout: Some(Duration::from_millis(100)),
        rtp_hold_timeout: None,
        rtcp_interval: None,
        ..MediaConfig::default()
    })
    .unwrap();
    let a = phone().await;
    eng.allocate(LegId(1)).unwrap();
    eng.set_remote(LegId(1), remote(&a)).unwrap();
    eng.set_direction(LegId(1), Direction::Inactive).unwrap();
    let seen = timeouts(&mut events, Duration::from_millis(600)).await;
    assert!(seen.is_empty(), "{seen:?}");
    // Back in full flow, the short timeout applies again.
    eng.set_direction(LegId(1), Direction::SendRecv).unwrap();
    let ev = timeout(Duration::from_secs(3), events.recv())
        .await
        .unwrap();
    assert_eq!(ev, Some(MediaEvent::RtpTimeout { leg: LegId(1) }));
}
