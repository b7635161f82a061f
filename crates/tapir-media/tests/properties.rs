//! Property tests: parsers and decoders never panic on arbitrary input, and
//! the codecs and queues keep their invariants.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tapir_media::dtmf::{DtmfReceiver, TelephoneEvent, encode_event};
use tapir_media::g711::{Law, decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};
use tapir_media::playout::{MAX_SAMPLES, Playout};
use tapir_media::rtp::{RtpPacket, write_packet};
use tapir_media::{Direction, SdpSession, SessionDescription};

fn sdp_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v=0".to_owned()),
        Just("o=- 1 2 IN IP4 10.0.0.1".to_owned()),
        Just("c=IN IP4 10.0.0.1".to_owned()),
        Just("c=IN IP4 0.0.0.0".to_owned()),
        Just("c=IN IP6 ::1".to_owned()),
        Just("m=audio 4000 RTP/AVP 0 8 101".to_owned()),
        Just("m=video 0 RTP/AVP 31".to_owned()),
        Just("a=rtpmap:101 telephone-event/8000".to_owned()),
        Just("a=sendonly".to_owned()),
        Just("a=inactive".to_owned()),
        Just("a=ptime:30".to_owned()),
        "[a-z]=[ -~]{0,40}",
        "[ -~]{0,60}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sdp_never_panics_on_line_soup(lines in prop::collection::vec(sdp_line(), 0..20), crlf in any::<bool>()) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        if let Ok(sd) = SessionDescription::parse(&text) {
            let mut s = SdpSession::new("127.0.0.1:4000".parse().unwrap(), 1);
            if let Ok((body, _)) = s.answer(&sd, Direction::SendRecv) {
                // tapir's own answers always parse back.
                prop_assert!(SessionDescription::parse(&body).is_ok());
            }
            let _ = s.accept_answer(&sd, Direction::SendOnly);
        }
    }

    #[test]
    fn sdp_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = SessionDescription::parse_bytes(&bytes);
    }

    #[test]
    fn rtp_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = RtpPacket::parse(&bytes);
    }

    #[test]
    fn rtp_write_parse_round_trip(m in any::<bool>(), pt in 0u8..128, seq in any::<u16>(), ts in any::<u32>(), ssrc in any::<u32>(), payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut v = Vec::new();
        write_packet(&mut v, m, pt, seq, ts, ssrc, &payload);
        let p = RtpPacket::parse(&v).unwrap();
        prop_assert_eq!((p.marker, p.payload_type, p.seq, p.timestamp, p.ssrc, p.payload), (m, pt, seq, ts, ssrc, &payload[..]));
    }

    #[test]
    fn g711_is_monotonic_and_idempotent(a in any::<i16>(), b in any::<i16>()) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(decode_ulaw(encode_ulaw(lo)) <= decode_ulaw(encode_ulaw(hi)));
        prop_assert!(decode_alaw(encode_alaw(lo)) <= decode_alaw(encode_alaw(hi)));
        let u = decode_ulaw(encode_ulaw(a));
        prop_assert_eq!(decode_ulaw(encode_ulaw(u)), u);
    }

    #[test]
    fn dtmf_receiver_reports_each_event_once(events in prop::collection::vec((0u8..16, 1u16..4000), 1..10), dup in 1usize..4) {
        let mut rx = DtmfReceiver::new();
        let mut got = Vec::new();
        for (i, (ev, dur)) in events.iter().enumerate() {
            let ts = i as u32 * 10_000;
            for block in encode_event(*ev, *dur, 160) {
                for _ in 0..dup {
                    if let Some(d) = rx.on_packet(ts, &block.to_bytes()) {
                        got.push(d);
                    }
                }
            }
        }
        let want: Vec<char> = events.iter().map(|(e, _)| tapir_media::dtmf::event_to_digit(*e).unwrap()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn telephone_event_round_trip(event in any::<u8>(), end in any::<bool>(), volume in 0u8..64, duration in any::<u16>()) {
        let e = TelephoneEvent { event, end, volume, duration };
        prop_assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
    }

    #[test]
    fn srtp_unprotect_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..300), rtp_like in any::<bool>()) {
        use tapir_media::srtp::{SrtpKeys, SrtpSession, SrtpSuite};
        if rtp_like && bytes.len() >= 2 {
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
            bytes[1] &= 0x7f;
        }
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32] {
            let mut s = SrtpSession::new(&SrtpKeys { suite, local: [1; 30], remote: [2; 30] }).unwrap();
            prop_assert!(s.unprotect(&bytes).is_err());
            let _ = s.protect(&bytes);
        }
    }

    #[test]
    fn rtcp_and_srtcp_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..300), rtcp_like in any::<bool>()) {
        use tapir_media::srtp::{SrtpKeys, SrtpSession, SrtpSuite};
        if rtcp_like && bytes.len() >= 4 {
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
            bytes[1] = 200 + bytes[1] % 4;
        }
        let _ = tapir_media::rtcp::parse_compound(&bytes);
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32] {
            let mut s = SrtpSession::new(&SrtpKeys { suite, local: [1; 30], remote: [2; 30] }).unwrap();
            prop_assert!(s.unprotect_rtcp(&bytes).is_err());
            let _ = s.protect_rtcp(&bytes);
        }
    }

    #[test]
    fn rtcp_reports_round_trip(ssrc in any::<u32>(), sender in any::<Option<(u64, u32, u32, u32)>>(),
                               block in any::<Option<(u32, u8, i32, u32, u32, u32, u32)>>(), cname in "[ -~]{0,300}") {
        use tapir_media::rtcp::{RtcpItem, ReportBlock, SenderInfo, parse_compound, write_report};
        let info = sender.map(|(ntp, rtp_ts, packets, octets)| SenderInfo { ntp, rtp_ts, packets, octets });
        let block = block.map(|(ssrc, fraction_lost, lost, highest_seq, jitter, lsr, dlsr)| ReportBlock {
            ssrc, fraction_lost, cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff), highest_seq, jitter, lsr, dlsr,
        });
        let mut v = Vec::new();
        write_report(&mut v, ssrc, info.as_ref(), block.as_ref(), &cname);
        prop_assert_eq!(v.len() % 4, 0);
        let items = parse_compound(&v).unwrap();
        let blocks: Vec<ReportBlock> = block.into_iter().collect();
        match (&items[0], info) {
            (RtcpItem::SenderReport { ssrc: s, info: i, blocks: b }, Some(info)) => {
                prop_assert_eq!((*s, *i, b), (ssrc, info, &blocks));
            }
            (RtcpItem::ReceiverReport { ssrc: s, blocks: b }, None) => prop_assert_eq!((*s, b), (ssrc, &blocks)),
            (other, _) => prop_assert!(false, "unexpected {:?}", other),
        }
        let is_sdes = matches!(&items[1], RtcpItem::SourceDescription { ssrc: s, cname: Some(_) } if *s == ssrc);
        prop_assert!(is_sdes);
    }

    #[test]
    fn playout_stays_bounded(ops in prop::collection::vec((any::<bool>(), any::<u16>(), 0usize..400), 0..200)) {
        let mut p = Playout::new();
        let mut frame = [0i16; 160];
        for (pop, seq, len) in ops {
            if pop {
                let _ = p.pop_frame(&mut frame);
            } else {
                p.push(1, seq, Law::Ulaw, &vec![0x80; len]);
            }
            prop_assert!(p.buffered() <= MAX_SAMPLES);
        }
    }
}
