//! SDP unit tests: offers shaped like real softphones', hold forms, and
//! malformed input.

use super::*;

const PJSIP: &str = "v=0\r\n\
o=- 3912345678 3912345678 IN IP4 192.168.1.20\r\n\
s=pjmedia\r\n\
b=AS:84\r\n\
t=0 0\r\n\
a=X-nat:0\r\n\
m=audio 4000 RTP/AVP 96 9 8 0 101\r\n\
c=IN IP4 192.168.1.20\r\n\
b=TIAS:64000\r\n\
a=rtcp:4001 IN IP4 192.168.1.20\r\n\
a=sendrecv\r\n\
a=rtpmap:96 speex/16000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ssrc:123456 cname:abc\r\n";

const BARESIP: &str = "v=0\r\n\
o=- 1234 5678 IN IP4 10.0.0.5\r\n\
s=-\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 10390 RTP/AVP 0 8 101\r\n\
b=AS:93\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:2866212286 cname:e1c7\r\n\
a=mid:1\r\n";

// Linphone: opus first, dynamic telephone-event PTs, a video line, LF only.
const LINPHONE: &str = "v=0\n\
o=alice 2741 3184 IN IP6 2001:db8::10\n\
s=Talk\n\
c=IN IP6 2001:db8::10\n\
t=0 0\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 99 100 101\n\
a=rtpmap:96 opus/48000/2\n\
a=fmtp:96 useinbandfec=1\n\
a=rtpmap:97 speex/16000\n\
a=rtpmap:98 speex/8000\n\
a=rtpmap:99 telephone-event/48000\n\
a=rtpmap:100 telephone-event/16000\n\
a=rtpmap:101 telephone-event/8000\n\
a=rtcp-fb:* trr-int 1000\n\
m=video 9078 RTP/AVP 102\n\
a=rtpmap:102 VP8/90000\n";

fn local() -> SocketAddr {
    "127.0.0.1:20000".parse().expect("addr")
}

#[test]
fn pjsip_offer_picks_pcma_first_in_its_order() {
    let sd = SessionDescription::parse(PJSIP).expect("parse");
    let a = sd.audio().expect("audio");
    assert_eq!(a.codecs(), vec![Codec::Pcma, Codec::Pcmu]);
    assert_eq!(a.telephone_event_pt(), Some(101));
    let ra = sd.remote_audio().expect("audio");
    assert_eq!(ra.addr, Some("192.168.1.20:4000".parse().expect("addr")));
    assert_eq!(ra.direction, Direction::SendRecv);
    let mut s = SdpSession::new(local(), 42);
    let (body, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(neg.codec, Codec::Pcma);
    assert_eq!(neg.telephone_event_pt, Some(101));
    assert_eq!(neg.direction, Direction::SendRecv);
    assert!(body.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{body}");
    assert!(body.contains("a=rtpmap:8 PCMA/8000\r\n"));
    assert!(body.contains("a=sendrecv\r\n"));
    // The answer parses back.
    let back = SessionDescription::parse(&body).expect("reparse");
    assert_eq!(back.audio().expect("audio").codecs(), vec![Codec::Pcma]);
}

#[test]
fn tapir_preference_can_restrict_codecs() {
    let sd = SessionDescription::parse(PJSIP).expect("parse");
    let mut s = SdpSession::new(local(), 42);
    s.set_codecs(&[Codec::Pcmu]);
    let (_, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(neg.codec, Codec::Pcmu);
}

#[test]
fn baresip_offer() {
    let sd = SessionDescription::parse(BARESIP).expect("parse");
    let ra = sd.remote_audio().expect("audio");
    assert_eq!(ra.addr, Some("10.0.0.5:10390".parse().expect("addr")));
    assert_eq!(ra.ptime, Some(20));
    let mut s = SdpSession::new(local(), 7);
    let (_, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(neg.codec, Codec::Pcmu);
    assert_eq!(neg.ptime, Some(20));
}

#[test]
fn linphone_offer_rejects_video_and_keeps_8k_telephone_event() {
    let sd = SessionDescription::parse(LINPHONE).expect("parse");
    assert_eq!(sd.media.len(), 2);
    let a = sd.audio().expect("audio");
    assert_eq!(a.telephone_event_pt(), Some(101));
    assert_eq!(a.codecs(), vec![Codec::Pcmu, Codec::Pcma]);
    let mut s = SdpSession::new("[::1]:30000".parse().expect("addr"), 9);
    let (body, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(
        neg.remote,
        Some("[2001:db8::10]:7078".parse().expect("addr"))
    );
    assert!(body.contains("c=IN IP6 ::1\r\n"));
    assert!(body.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{body}");
    assert!(body.contains("m=video 0 RTP/AVP 102\r\n"), "{body}");
}

#[test]
fn dynamic_pt_for_pcmu_is_answered_with_that_pt() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 110\r\na=rtpmap:110 pcmu/8000\r\n";
    let sd = SessionDescription::parse(sdp).expect("parse");
    let mut s = SdpSession::new(local(), 1);
    let (body, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(neg.codec, Codec::Pcmu);
    assert_eq!(neg.telephone_event_pt, None);
    assert!(body.contains("m=audio 20000 RTP/AVP 110\r\n"), "{body}");
}

#[test]
fn hold_forms() {
    let base = "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n";
    // a=sendonly: the peer holds tapir -> tapir answers recvonly.
    let sd = SessionDescription::parse(&format!(
        "{base}c=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\na=sendonly\r\n"
    ))
    .expect("parse");
    let mut s = SdpSession::new(local(), 1);
    let (body, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(neg.direction, Direction::RecvOnly);
    assert_eq!(neg.remote_direction, Direction::SendOnly, "the phone holds");
    assert!(body.contains("a=recvonly\r\n"));
    // a=inactive at session level.
    let sd = SessionDescription::parse(&format!(
        "{base}a=inactive\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\n"
    ))
    .expect("parse");
    let (_, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(neg.direction, Direction::Inactive);
    // c=0.0.0.0 (RFC 2543): no address to send to, tapir does not send.
    let sd = SessionDescription::parse(&format!(
        "{base}c=IN IP4 0.0.0.0\r\nm=audio 5000 RTP/AVP 0\r\n"
    ))
    .expect("parse");
    let ra = sd.remote_audio().expect("audio");
    assert_eq!(ra.addr, None);
    assert_eq!(ra.direction, Direction::SendOnly);
    let (_, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(neg.direction, Direction::RecvOnly);
    assert_eq!(neg.remote, None);
    // tapir holds the peer: offers sendonly; peer answers recvonly.
    let offer = s.offer(Direction::SendOnly);
    assert!(offer.contains("a=sendonly\r\n"));
    let ans = SessionDescription::parse(&format!(
        "{base}c=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\na=recvonly\r\n"
    ))
    .expect("parse");
    let neg = s.accept_answer(&ans, Direction::SendOnly).expect("accept");
    assert_eq!(neg.direction, Direction::SendOnly);
    assert_eq!(neg.remote, Some("1.2.3.4:5000".parse().expect("addr")));
}

#[test]
fn answer_direction_table() {
    use Direction::*;
    assert_eq!(Direction::answer_to(SendRecv, SendRecv), SendRecv);
    assert_eq!(Direction::answer_to(SendOnly, SendRecv), RecvOnly);
    assert_eq!(Direction::answer_to(RecvOnly, SendRecv), SendOnly);
    assert_eq!(Direction::answer_to(Inactive, SendRecv), Inactive);
    assert_eq!(Direction::answer_to(SendRecv, SendOnly), SendOnly);
    assert_eq!(Direction::answer_to(SendOnly, SendOnly), Inactive);
    assert_eq!(Direction::answer_to(SendRecv, Inactive), Inactive);
}

#[test]
fn offer_versions_increase_and_answers_only_on_change() {
    let mut s = SdpSession::new(local(), 1000);
    let o1 = s.offer(Direction::SendRecv);
    assert!(
        o1.contains("o=tapir 1000 1000 IN IP4 127.0.0.1\r\n"),
        "{o1}"
    );
    assert!(o1.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
    assert!(o1.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    let o2 = s.offer(Direction::SendOnly);
    assert!(o2.contains("o=tapir 1000 1001 "));
    let o3 = s.offer(Direction::SendOnly);
    assert!(o3.contains("o=tapir 1000 1002 "));
    assert_eq!(s.version(), 1002);
    let sd = SessionDescription::parse(BARESIP).expect("parse");
    let mut s = SdpSession::new(local(), 5);
    let (a1, _) = s.answer(&sd, Direction::SendRecv).expect("answer");
    let (a2, _) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert_eq!(a1, a2, "an unchanged answer keeps its version");
    let (a3, _) = s.answer(&sd, Direction::SendOnly).expect("answer");
    assert!(a3.contains("o=tapir 5 6 "));
}

#[test]
fn answer_to_our_offer_with_pcma() {
    let mut s = SdpSession::new(local(), 1);
    let _ = s.offer(Direction::SendRecv);
    let ans = SessionDescription::parse(
        "v=0\r\no=- 1 1 IN IP4 5.6.7.8\r\ns=-\r\nc=IN IP4 5.6.7.8\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
    .expect("parse");
    let neg = s.accept_answer(&ans, Direction::SendRecv).expect("accept");
    assert_eq!(neg.codec, Codec::Pcma);
    assert_eq!(neg.telephone_event_pt, Some(101));
    assert_eq!(neg.direction, Direction::SendRecv);
}

#[test]
fn refusals() {
    let base = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n";
    let mut s = SdpSession::new(local(), 1);
    let g729 =
        SessionDescription::parse(&format!("{base}m=audio 5000 RTP/AVP 18\r\n")).expect("parse");
    assert_eq!(
        s.answer(&g729, Direction::SendRecv).err(),
        Some(SdpError::NoCommonCodec)
    );
    let srtp =
        SessionDescription::parse(&format!("{base}m=audio 5000 RTP/SAVP 0\r\n")).expect("parse");
    assert_eq!(
        s.answer(&srtp, Direction::SendRecv).err(),
        Some(SdpError::NoUsableCrypto)
    );
    let t38 =
        SessionDescription::parse(&format!("{base}m=image 5000 udptl t38\r\n")).expect("parse");
    assert_eq!(
        s.answer(&t38, Direction::SendRecv).err(),
        Some(SdpError::NoAudio)
    );
    let no_c = SessionDescription::parse(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
    )
    .expect("parse");
    assert_eq!(
        s.answer(&no_c, Direction::SendRecv).err(),
        Some(SdpError::NoConnection)
    );
}

#[test]
fn malformed_input_gives_errors_not_panics() {
    let cases: &[(&str, SdpError)] = &[
        ("", SdpError::Empty),
        ("\r\n\r\n", SdpError::Empty),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", SdpError::BadVersion),
        ("v=1\r\n", SdpError::BadVersion),
        ("v=0\r\ns=-\r\n", SdpError::MissingOrigin),
        (
            "v=0\r\nnonsense\r\n",
            SdpError::BadLine {
                line: 2,
                reason: "expected <type>=<value>",
            },
        ),
        (
            "v=0\r\no=- 1\r\n",
            SdpError::BadLine {
                line: 2,
                reason: "o= needs 6 fields",
            },
        ),
        (
            "v=0\r\no=- 1 x IN IP4 h\r\n",
            SdpError::BadLine {
                line: 2,
                reason: "o= session version is not a number",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n",
            SdpError::BadLine {
                line: 3,
                reason: "m= port is not a number 0-65535",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 5000 RTP/AVP 300\r\n",
            SdpError::BadLine {
                line: 3,
                reason: "m= payload type is not 0-127",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio\r\n",
            SdpError::BadLine {
                line: 3,
                reason: "m= needs a port",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 1.2.3\r\n",
            SdpError::UnresolvedHost("1.2.3".into()),
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 ::1\r\n",
            SdpError::BadLine {
                line: 3,
                reason: "c= address family mismatch",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 pbx.example.com\r\n",
            SdpError::UnresolvedHost("pbx.example.com".into()),
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN\r\n",
            SdpError::BadLine {
                line: 3,
                reason: "c= needs 3 fields",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0\r\n",
            SdpError::BadLine {
                line: 4,
                reason: "rtpmap needs '<pt> <encoding>'",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/x\r\n",
            SdpError::BadLine {
                line: 4,
                reason: "rtpmap clock rate is not a number",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=ptime:abc\r\n",
            SdpError::BadLine {
                line: 4,
                reason: "bad ptime",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 h\r\nX=1\r\n",
            SdpError::BadLine {
                line: 3,
                reason: "unknown line type",
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            SessionDescription::parse(text).as_ref().err(),
            Some(want),
            "{text:?}"
        );
    }
    assert_eq!(
        SessionDescription::parse_bytes(&[b'v', b'=', 0xff]).err(),
        Some(SdpError::NotUtf8)
    );
    let big = "a=x\r\n".repeat(20_000);
    assert!(matches!(
        SessionDescription::parse(&big),
        Err(SdpError::TooLarge(_))
    ));
    let many = format!(
        "v=0\r\no=- 1 1 IN IP4 h\r\n{}",
        "m=audio 1 RTP/AVP 0\r\n".repeat(40)
    );
    assert_eq!(
        SessionDescription::parse(&many).err(),
        Some(SdpError::TooManyMedia)
    );
}

#[test]
fn truncations_and_byte_noise_never_panic() {
    // Every prefix of the sample offers, and single-byte corruptions.
    for sample in [PJSIP, BARESIP, LINPHONE] {
        for cut in 0..sample.len() {
            if let Some(p) = sample.get(..cut) {
                let _ = SessionDescription::parse(p).map(|sd| sd.remote_audio());
            }
        }
        let bytes = sample.as_bytes();
        for i in (0..bytes.len()).step_by(3) {
            for b in [0u8, b'=', b' ', b'/', b':', 0xc3, b'9'] {
                let mut v = bytes.to_vec();
                v[i] = b;
                if let Ok(sd) = SessionDescription::parse_bytes(&v) {
                    let mut s = SdpSession::new(local(), 1);
                    let _ = s.answer(&sd, Direction::SendRecv);
                    let _ = s.accept_answer(&sd, Direction::SendRecv);
                }
            }
        }
    }
}

const SNOM_SRTP: &str = "v=0\r\n\
o=root 1 1 IN IP4 10.1.1.2\r\n\
s=call\r\n\
c=IN IP4 10.1.1.2\r\n\
t=0 0\r\n\
m=audio 62000 RTP/SAVP 8 0 101\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

#[test]
fn srtp_offer_is_answered_with_our_key_and_their_tag() {
    let sd = SessionDescription::parse(SNOM_SRTP).expect("parse");
    let audio = sd.audio().expect("audio");
    assert!(audio.is_secure());
    assert_eq!(audio.crypto.len(), 1, "the MKI line is skipped");
    let mut s = SdpSession::new(local(), 3);
    let (body, neg) = s.answer(&sd, Direction::SendRecv).expect("answer");
    assert!(body.contains("m=audio 20000 RTP/SAVP 8 101\r\n"), "{body}");
    assert!(
        body.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
        "{body}"
    );
    let keys = neg.srtp.expect("srtp");
    assert_eq!(keys.suite, crate::srtp::SrtpSuite::AesCm128HmacSha1_32);
    let ours = SessionDescription::parse(&body).expect("reparse");
    assert_eq!(ours.audio().expect("audio").crypto[0].key, keys.local);
    assert_ne!(keys.local, keys.remote);
    // The key stays the same for the session.
    let (body2, _) = s.answer(&sd, Direction::SendOnly).expect("answer");
    let again = SessionDescription::parse(&body2).expect("reparse");
    assert_eq!(again.audio().expect("audio").crypto[0].key, keys.local);
}

#[test]
fn secured_leg_offers_savp_and_refuses_plain() {
    let mut s = SdpSession::new(local(), 3);
    assert!(!s.is_secure());
    s.require_secure().expect("rng");
    assert!(s.is_secure());
    let offer = s.offer(Direction::SendRecv);
    assert!(
        offer.contains("m=audio 20000 RTP/SAVP 0 8 101\r\n"),
        "{offer}"
    );
    assert!(offer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
    let plain = SessionDescription::parse(BARESIP).expect("parse");
    assert_eq!(
        s.answer(&plain, Direction::SendRecv).err(),
        Some(SdpError::NotSecure)
    );
    assert_eq!(
        s.accept_answer(&plain, Direction::SendRecv).err(),
        Some(SdpError::NotSecure)
    );
    let answer = SessionDescription::parse(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=audio 5000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
    )
    .expect("parse");
    let neg = s
        .accept_answer(&answer, Direction::SendRecv)
        .expect("accept");
    let keys = neg.srtp.expect("srtp");
    let ours = SessionDescription::parse(&offer).expect("reparse");
    assert_eq!(ours.audio().expect("audio").crypto[0].key, keys.local);
    // A secure answer to a plain offer is refused.
    let plain_session = SdpSession::new(local(), 4);
    assert_eq!(
        plain_session
            .accept_answer(&answer, Direction::SendRecv)
            .err(),
        Some(SdpError::NoUsableCrypto)
    );
}

#[test]
fn rtcp_mux_offered_is_accepted_and_not_otherwise() {
    let with = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\na=sendrecv\r\n";
    let offer = SessionDescription::parse(with).expect("parse");
    assert!(offer.audio().expect("audio").rtcp_mux);
    let mut s = SdpSession::new(local(), 1);
    let (body, n) = s.answer(&offer, Direction::SendRecv).expect("answer");
    assert!(n.rtcp_mux);
    assert!(body.contains("a=rtcp-mux\r\n"), "{body}");
    let without = with.replace("a=rtcp-mux\r\n", "");
    let offer = SessionDescription::parse(&without).expect("parse");
    let mut s = SdpSession::new(local(), 1);
    let (body, n) = s.answer(&offer, Direction::SendRecv).expect("answer");
    assert!(!n.rtcp_mux);
    assert!(!body.contains("rtcp-mux"), "{body}");
    // tapir's own offers do not ask for it; an answer that has it is followed.
    let mut s = SdpSession::new(local(), 1);
    assert!(!s.offer(Direction::SendRecv).contains("rtcp-mux"));
    let answer = SessionDescription::parse(with).expect("parse");
    assert!(
        s.accept_answer(&answer, Direction::SendRecv)
            .expect("accept")
            .rtcp_mux
    );
}
