//! RTCP over real UDP on 127.0.0.1: fake phones with an RTP socket on an
//! even port and an RTCP socket on the next one exchange RTP and reports
//! with the engine's legs. tapir ends RTCP on every leg: its reports carry
//! the SSRC of the stream it sends on that leg, count what it sent there,
//! and report on the phone's stream (loss, highest sequence, LSR/DLSR); the
//! phones' own reports are read, never relayed. Every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;
use tapir_media::rtcp::{self, ReportBlock, RtcpItem, SenderInfo};
use tapir_media::rtp::{RtpPacket, is_rtcp, write_packet};
use tapir_media::srtp::{SrtpKeys, SrtpSession, SrtpSuite, generate_key};
use tapir_media::{Codec, LegId, MediaConfig, MediaEngine, RemoteMedia, Source};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

/// A fake phone: RTP on an even port, RTCP on the next.
struct Phone {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Phone {
    async fn new(ip: &str) -> Phone {
        for _ in 0..200 {
            let rtp = UdpSocket::bind((ip, 0)).await.unwrap();
            let port = rtp.local_addr().unwrap().port();
            if port % 2 == 1 || port == u16::MAX {
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
                return Phone { rtp, rtcp };
            }
        }
        panic!("no even/odd port pair on {ip}");
    }

    fn remote(&self) -> RemoteMedia {
        RemoteMedia {
            addr: Some(self.rtp.local_addr().unwrap()),
            codec: Codec::Pcmu,
            telephone_event_pt: None,
        }
    }
}

fn engine(interval_ms: u64) -> MediaEngine {
    MediaEngine::new(MediaConfig {
        rtcp_interval: Some(Duration::from_millis(interval_ms)),
        rtp_timeout: None,
        ..MediaConfig::default()
    })
    .unwrap()
    .0
}

fn rtcp_port(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port() + 1)
}

/// Sends RTP frames `seqs` (20 ms apart) with `ssrc` to `to`.
async fn send_rtp(sock: &UdpSocket, to: SocketAddr, ssrc: u32, seqs: &[u16]) {
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    let mut pkt = Vec::new();
    for &seq in seqs {
        interval.tick().await;
        write_packet(
            &mut pkt,
            false,
            0,
            seq,
            u32::from(seq) * 160,
            ssrc,
            &[0xff; 160],
        );
        sock.send_to(&pkt, to).await.unwrap();
    }
}

/// What a socket receives for `dur`: RTP packets (sequence, SSRC) and RTCP
/// compound packets, parsed.
async fn receive(sock: &UdpSocket, dur: Duration) -> (Vec<(u16, u32)>, Vec<Vec<RtcpItem>>) {
    let deadline = Instant::now() + dur;
    let (mut rtp, mut reports) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(Ok((n, _))) = timeout(left, sock.recv_from(&mut buf)).await else {
            break;
        };
        let data = &buf[..n];
        if is_rtcp(data) {
            reports.push(rtcp::parse_compound(data).expect("tapir's RTCP parses"));
        } else if let Ok(p) = RtpPacket::parse(data) {
            rtp.push((p.seq, p.ssrc));
        }
    }
    (rtp, reports)
}

/// The phone's own sender report, with `ntp`.
fn phone_sr(ssrc: u32, ntp: u64) -> Vec<u8> {
    let mut v = Vec::new();
    let info = SenderInfo {
        ntp,
        rtp_ts: 0,
        packets: 0,
        octets: 0,
    };
    rtcp::write_report(&mut v, ssrc, Some(&info), None, "phone");
    v
}

fn sender_reports(reports: &[Vec<RtcpItem>]) -> Vec<(u32, SenderInfo, Vec<ReportBlock>)> {
    reports
        .iter()
        .filter_map(|r| match &r[0] {
            RtcpItem::SenderReport { ssrc, info, blocks } => Some((*ssrc, *info, blocks.clone())),
            _ => None,
        })
        .collect()
}

/// Every report block of SRs and RRs, in order.
fn all_blocks(reports: &[Vec<RtcpItem>]) -> Vec<ReportBlock> {
    reports
        .iter()
        .flatten()
        .filter_map(|i| match i {
            RtcpItem::SenderReport { blocks, .. } | RtcpItem::ReceiverReport { blocks, .. } => {
                Some(blocks.clone())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test]
async fn each_leg_gets_its_own_reports_consistent_with_the_rewritten_stream() {
    let eng = engine(300);
    let (a, b) = (Phone::new("127.0.0.1").await, Phone::new("127.0.0.1").await);
    let la = eng.allocate(LegId(1)).unwrap();
    let lb = eng.allocate(LegId(2)).unwrap();
    assert_eq!(la.port() % 2, 0, "RTP on an even port");
    eng.set_remote(LegId(1), a.remote()).unwrap();
    eng.set_remote(LegId(2), b.remote()).unwrap();
    eng.set_source(LegId(1), Source::Bridge(1)).unwrap();
    eng.set_source(LegId(2), Source::Bridge(1)).unwrap();

    // A reports first (tapir remembers its NTP for LSR), then both talk;
    // A's frames 10 and 11 never leave.
    let a_ntp = 0x0000_1234_5678_9abc_u64 << 8;
    a.rtcp
        .send_to(&phone_sr(0xa1, a_ntp), rtcp_port(la))
        .await
        .unwrap();
    let a_seqs: Vec<u16> = (0..40).filter(|s| !(10..12).contains(s)).collect();
    let b_seqs: Vec<u16> = (500..540).collect();
    let (_, _, (a_rtp, _), (b_rtp, _), (_, a_reports), (_, b_reports)) = tokio::join!(
        send_rtp(&a.rtp, la, 0xa1, &a_seqs),
        send_rtp(&b.rtp, lb, 0xb2, &b_seqs),
        receive(&a.rtp, Duration::from_millis(1500)),
        receive(&b.rtp, Duration::from_millis(1500)),
        receive(&a.rtcp, Duration::from_millis(1800)),
        receive(&b.rtcp, Duration::from_millis(1800)),
    );
    // What each phone hears is the other's stream under tapir's SSRC.
    assert_eq!(a_rtp.len(), b_seqs.len());
    assert_eq!(b_rtp.len(), a_seqs.len());
    let to_a = a_rtp[0].1;
    let to_b = b_rtp[0].1;
    assert!(a_rtp.iter().all(|p| p.1 == to_a) && b_rtp.iter().all(|p| p.1 == to_b));
    assert!(to_a != 0xb2 && to_b != 0xa1, "SSRCs are rewritten");

    // A's reports: SRs under the SSRC of the stream A hears, counting it.
    let srs = sender_reports(&a_reports);
    assert!(!srs.is_empty(), "A gets sender reports: {a_reports:?}");
    assert!(srs.iter().all(|(ssrc, _, _)| *ssrc == to_a));
    // A sender is a sender for two intervals: one SR comes after the last
    // packet and counts all of them.
    let info = srs.iter().map(|s| s.1).max_by_key(|i| i.packets).unwrap();
    assert_eq!(
        info.packets as usize,
        a_rtp.len(),
        "packet count of the stream A got"
    );
    assert_eq!(info.octets as usize, 160 * a_rtp.len());
    assert!(srs.windows(2).all(|w| w[0].1.packets <= w[1].1.packets));
    // The last block about A's stream came after its last packet.
    let block = *all_blocks(&a_reports)
        .iter()
        .rfind(|b| b.ssrc == 0xa1)
        .expect("blocks about A");
    assert_eq!(block.highest_seq, 39);
    assert_eq!(block.cumulative_lost, 2, "frames 10 and 11");
    assert_eq!(block.lsr, rtcp::ntp_middle(a_ntp), "LSR from A's SR");
    assert!(block.dlsr > 0);
    // Every report also names its source (SDES CNAME).
    assert!(a_reports.iter().all(|r| r.iter().any(|i| matches!(
        i,
        RtcpItem::SourceDescription { ssrc, cname: Some(c) } if *ssrc == to_a && c.starts_with("tapir-")
    ))));

    // B's reports are about B's leg only: A's SR is not relayed to B.
    let srs = sender_reports(&b_reports);
    assert!(!srs.is_empty());
    assert!(
        srs.iter().all(|(ssrc, _, _)| *ssrc == to_b),
        "{b_reports:?}"
    );
    let block = *all_blocks(&b_reports)
        .iter()
        .rfind(|b| b.ssrc == 0xb2)
        .unwrap();
    assert!(all_blocks(&b_reports).iter().all(|b| b.ssrc == 0xb2));
    assert_eq!(
        (block.highest_seq, block.cumulative_lost, block.lsr),
        (539, 0, 0)
    );

    // A answers tapir's SR with a receiver report: tapir reads it and works
    // out the round trip.
    let (_, info, _) = sender_reports(&a_reports).pop().unwrap();
    let mut rr = Vec::new();
    let about_tapir = ReportBlock {
        ssrc: to_a,
        fraction_lost: 0,
        cumulative_lost: 0,
        highest_seq: 0,
        jitter: 3,
        lsr: rtcp::ntp_middle(info.ntp),
        dlsr: 0,
    };
    rtcp::write_report(&mut rr, 0xa1, None, Some(&about_tapir), "phone");
    a.rtcp.send_to(&rr, rtcp_port(la)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let stats = loop {
        let s = eng.rtcp_stats(LegId(1)).unwrap();
        if s.reports_received >= 2 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(stats.reports_received, 2);
    assert_eq!(stats.ssrc, to_a);
    assert_eq!(stats.peer_ssrc, Some(0xa1));
    assert_eq!(stats.lost, 2);
    assert_eq!(
        stats.packets_received, 38,
        "40 sent, frames 10 and 11 missing"
    );
    assert_eq!(stats.peer_report.map(|b| b.jitter), Some(3));
    let rtt = stats.round_trip.expect("round trip from LSR/DLSR");
    assert!(rtt < Duration::from_secs(3), "{rtt:?}");
    assert!(!stats.mux);
    assert_eq!(eng.stats().rtcp_received, 2);
    assert!(eng.stats().rtcp_sent >= 4);

    // Closing the leg hands over the same figures, final; then it is gone.
    let last = eng.close(LegId(1)).expect("leg 1 had media");
    assert_eq!(
        (last.packets_received, last.lost, last.peer_ssrc),
        (38, 2, Some(0xa1))
    );
    assert_eq!(last.round_trip, stats.round_trip);
    assert!(
        last.reports_sent > stats.reports_sent,
        "the last report counts"
    );
    assert!(eng.rtcp_stats(LegId(1)).is_none());
    assert!(eng.close(LegId(1)).is_none());
    let b_last = eng.close(LegId(2)).unwrap();
    assert_eq!((b_last.packets_received, b_last.lost), (40, 0));
}

#[tokio::test]
async fn a_phone_that_multiplexes_rtcp_gets_reports_on_its_rtp_port() {
    let eng = engine(200);
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let l = eng.allocate(LegId(1)).unwrap();
    eng.set_remote(
        LegId(1),
        RemoteMedia {
            addr: Some(phone.local_addr().unwrap()),
            codec: Codec::Pcmu,
            telephone_event_pt: None,
        },
    )
    .unwrap();
    // A leg that hears nothing and received nothing sends RRs without
    // blocks; after the phone's RTP and its multiplexed RR, RRs about it
    // come back on the RTP port.
    send_rtp(&phone, l, 0x77, &[1, 2, 3]).await;
    let mut rr = Vec::new();
    rtcp::write_report(&mut rr, 0x77, None, None, "muxer");
    phone.send_to(&rr, l).await.unwrap();
    let (rtp, reports) = receive(&phone, Duration::from_millis(800)).await;
    assert!(rtp.is_empty(), "the leg hears silence");
    assert!(!reports.is_empty(), "reports on the RTP port");
    assert!(
        reports
            .iter()
            .all(|r| matches!(r[0], RtcpItem::ReceiverReport { .. })),
        "tapir sent no RTP on this leg: RRs only"
    );
    let blocks = all_blocks(&reports);
    assert!(blocks.iter().any(|b| b.ssrc == 0x77 && b.highest_seq == 3));
    let stats = eng.rtcp_stats(LegId(1)).unwrap();
    assert!(stats.mux);
    assert_eq!(stats.reports_received, 1);
    assert_eq!(stats.packets_sent, 0);
}

#[tokio::test]
async fn strangers_and_garbage_on_the_rtcp_port_are_dropped() {
    let eng = engine(60_000);
    let a = Phone::new("127.0.0.1").await;
    let l = eng.allocate(LegId(1)).unwrap();
    // No remote yet: nobody may report.
    let mut rr = Vec::new();
    rtcp::write_report(&mut rr, 5, None, None, "x");
    a.rtcp.send_to(&rr, rtcp_port(l)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    eng.set_remote(LegId(1), a.remote()).unwrap();
    // Another host (127.0.0.2 is loopback too).
    let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    stranger.send_to(&rr, rtcp_port(l)).await.unwrap();
    // Garbage from the phone itself.
    for junk in [
        &[][..],
        &[0x80, 201][..],
        &[0x81, 201, 0, 1, 0, 0, 0, 5][..],
        &[0xff; 64][..],
    ] {
        a.rtcp.send_to(junk, rtcp_port(l)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(eng.rtcp_stats(LegId(1)).unwrap().reports_received, 0);
    // The real thing is read.
    a.rtcp.send_to(&rr, rtcp_port(l)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while eng.rtcp_stats(LegId(1)).unwrap().reports_received == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(eng.rtcp_stats(LegId(1)).unwrap().reports_received, 1);
}

#[tokio::test]
async fn an_srtp_leg_speaks_srtcp() {
    let eng = engine(200);
    let a = Phone::new("127.0.0.1").await;
    let l = eng.allocate(LegId(1)).unwrap();
    let (phone_key, tapir_key) = (generate_key().unwrap(), generate_key().unwrap());
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    eng.set_srtp(
        LegId(1),
        Some(SrtpKeys {
            suite,
            local: tapir_key,
            remote: phone_key,
        }),
    )
    .unwrap();
    let mut phone = SrtpSession::new(&SrtpKeys {
        suite,
        local: phone_key,
        remote: tapir_key,
    })
    .unwrap();
    eng.set_remote(LegId(1), a.remote()).unwrap();
    // Plain RTCP is refused on a secure leg; SRTCP is read.
    let mut rr = Vec::new();
    rtcp::write_report(&mut rr, 9, None, None, "secure");
    a.rtcp.send_to(&rr, rtcp_port(l)).await.unwrap();
    a.rtcp
        .send_to(&phone.protect_rtcp(&rr).unwrap(), rtcp_port(l))
        .await
        .unwrap();
    // tapir's reports arrive protected and decrypt with the phone's keys.
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(Duration::from_secs(2), a.rtcp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !buf[..n].windows(6).any(|w| w == b"tapir-"),
        "the CNAME is encrypted on the wire"
    );
    let plain = phone.unprotect_rtcp(&buf[..n]).expect("SRTCP from tapir");
    let items = rtcp::parse_compound(&plain).unwrap();
    assert!(matches!(items[0], RtcpItem::ReceiverReport { .. }));
    let stats = eng.rtcp_stats(LegId(1)).unwrap();
    assert_eq!(stats.reports_received, 1, "only the SRTCP one");
}

#[tokio::test]
async fn rtcp_alone_keeps_a_silent_phone_from_timing_out() {
    let (eng, mut events) = MediaEngine::new(MediaConfig {
        rtcp_interval: Some(Duration::from_secs(60)),
        rtp_timeout: Some(Duration::from_millis(300)),
        ..MediaConfig::default()
    })
    .unwrap();
    let a = Phone::new("127.0.0.1").await;
    let l = eng.allocate(LegId(1)).unwrap();
    eng.set_remote(LegId(1), a.remote()).unwrap();
    // A phone with silence suppression: no RTP, a report every 100 ms.
    let mut rr = Vec::new();
    rtcp::write_report(&mut rr, 3, None, None, "quiet");
    for _ in 0..10 {
        a.rtcp.send_to(&rr, rtcp_port(l)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events.try_recv(), None, "reports keep the leg alive");
    // Then nothing at all: the leg times out.
    let ev = timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap();
    assert_eq!(
        ev,
        Some(tapir_media::MediaEvent::RtpTimeout { leg: LegId(1) })
    );
}

#[tokio::test]
async fn a_released_leg_says_goodbye() {
    let eng = engine(60_000);
    let a = Phone::new("127.0.0.1").await;
    eng.allocate(LegId(1)).unwrap();
    eng.set_remote(LegId(1), a.remote()).unwrap();
    eng.set_source(LegId(1), Source::Tone(tapir_media::ToneKind::Ringback))
        .unwrap();
    let (rtp, _) = receive(&a.rtp, Duration::from_millis(200)).await;
    let ssrc = rtp.first().expect("ringback flows").1;
    assert!(eng.release(LegId(1)));
    let (_, reports) = receive(&a.rtcp, Duration::from_millis(500)).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let last = reports[0].last().unwrap();
    assert_eq!(last, &RtcpItem::Bye { ssrcs: vec![ssrc] });
    assert!(
        matches!(&reports[0][0], RtcpItem::SenderReport { ssrc: s, info, .. } if *s == ssrc && info.packets as usize >= rtp.len())
    );
}

#[tokio::test]
async fn negotiated_rtcp_mux_sends_the_first_report_to_the_rtp_port() {
    let eng = engine(100);
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    eng.allocate(LegId(1)).unwrap();
    let offer = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtcp-mux\r\n",
        phone.local_addr().unwrap().port()
    );
    let offer = tapir_media::SessionDescription::parse(&offer).unwrap();
    let mut sdp = tapir_media::SdpSession::new(eng.local_addr(LegId(1)).unwrap(), 1);
    let (_, negotiated) = sdp
        .answer(&offer, tapir_media::Direction::SendRecv)
        .unwrap();
    eng.apply(LegId(1), &negotiated).unwrap();
    // The phone never sent RTCP, yet tapir's reports reach its RTP port.
    let (_, reports) = receive(&phone, Duration::from_millis(400)).await;
    assert!(!reports.is_empty());
    assert!(eng.rtcp_stats(LegId(1)).unwrap().mux);
}

#[tokio::test]
async fn reports_follow_a_phone_that_moves() {
    let eng = engine(100);
    let (a, b) = (Phone::new("127.0.0.1").await, Phone::new("127.0.0.1").await);
    let l = eng.allocate(LegId(1)).unwrap();
    eng.set_remote(LegId(1), a.remote()).unwrap();
    // A reports from a third port: tapir answers there (symmetric RTCP).
    let elsewhere = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rr = Vec::new();
    rtcp::write_report(&mut rr, 1, None, None, "a");
    elsewhere.send_to(&rr, rtcp_port(l)).await.unwrap();
    let (_, reports) = receive(&elsewhere, Duration::from_millis(400)).await;
    assert!(!reports.is_empty(), "reports go where A's come from");
    // A re-INVITE moves the call's media to B's address.
    eng.set_remote(LegId(1), b.remote()).unwrap();
    let (_, at_b) = receive(&b.rtcp, Duration::from_millis(400)).await;
    assert!(!at_b.is_empty(), "reports follow to B's RTP port + 1");
}
