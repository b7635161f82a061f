//! Dialog security against a real server (issue 12, findings 1, 2 and 5),
//! the way a stranger on the network would try it: raw SIP over UDP and TCP
//! from sockets that are not the dialog's peer.
//!
//! The calls under attack come in from a trunk's carrier (a UDP socket on
//! loopback, admitted by its address) to phone 1001 (a UDP socket that
//! registered with its digest credentials), both answering like real SIP
//! user agents. A stranger knows a dialog's Call-ID (it is in every message
//! of the call) but not its tags.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use support::sip::{Peer, digest, header, register, sdp, sdp_port, status, tag_of, wire};
use support::{WAIT, server_with};
use tapir_server::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// tapir with UDP and TCP on loopback, phone 1001 (password `pw`, one call
/// at a time), phone 1002 (password `pw2`) and a trunk whose carrier is at
/// 127.0.0.1:`carrier_port` on line 9000.
async fn tapir(carrier_port: u16, change: impl FnOnce(&mut Config)) -> RunningServer {
    server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()];
        let extra = Config::from_toml(&format!(
            "[[lines]]\naddress = \"1002\"\nkind = \"phone\"\npassword = \"pw2\"\n\
             [[lines]]\naddress = \"9000\"\nkind = \"trunk\"\n\
             [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {carrier_port}\n\
             address = \"9000\"\n"
        ))
        .unwrap();
        c.lines.extend(extra.lines);
        c.trunks.extend(extra.trunks);
        if let Some(l) = c.lines.iter_mut().find(|l| l.address == "1001") {
            l.max_calls = Some(1);
        }
        change(c);
    })
    .await
}

/// One side of a call as its peer sees it.
struct Side {
    call_id: String,
    /// The peer's own tag.
    mine: String,
    /// tapir's tag.
    tapir: String,
    /// tapir's RTP port on this leg.
    tapir_rtp: u16,
}

/// A call from the carrier to phone 1001, answered and ACKed on both legs.
struct Call {
    carrier: Side,
    phone: Side,
}

/// The carrier calls `to` (carrier RTP at `carrier_rtp`); the phone rings
/// and answers with RTP at `phone_rtp`. `n` tells the calls apart.
async fn call(carrier: &Peer, phone: &Peer, n: u32, carrier_rtp: u16, phone_rtp: u16) -> Call {
    let local = carrier.addr();
    let call_id = format!("carrier-call-{n}@carrier.test");
    let body = sdp(carrier_rtp);
    carrier
        .send(&format!(
            "INVITE sip:1001@127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-carrier-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:+4930555123@carrier.test>;tag=carrier-{n}\n\
             To: <sip:1001@127.0.0.1>\n\
             Call-ID: {call_id}\n\
             CSeq: 1 INVITE\n\
             Contact: <sip:gw@{local}>\n\
             Content-Type: application/sdp\n\n{body}"
        ))
        .await;
    let invite = phone
        .next("tapir's INVITE", |t| t.starts_with("INVITE "))
        .await;
    let phone_tag = format!("phone-{n}");
    phone
        .respond(
            &invite,
            200,
            &phone_tag,
            &format!(
                "Contact: <sip:1001@{}>\nContent-Type: application/sdp\n\n{}",
                phone.addr(),
                sdp(phone_rtp)
            ),
        )
        .await;
    phone.next("tapir's ACK", |t| t.starts_with("ACK ")).await;
    let ok = carrier
        .next("tapir's 200", |t| {
            status(t) == 200 && header(t, "Call-ID") == call_id
        })
        .await;
    let carrier_side = Side {
        call_id: call_id.clone(),
        mine: format!("carrier-{n}"),
        tapir: tag_of(&header(&ok, "To")),
        tapir_rtp: sdp_port(&ok),
    };
    carrier
        .send(&format!(
            "ACK sip:tapir@{server} SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-carrier-ack-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:+4930555123@carrier.test>;tag=carrier-{n}\n\
             To: <sip:1001@127.0.0.1>;tag={tag}\n\
             Call-ID: {call_id}\n\
             CSeq: 1 ACK\n\n",
            server = carrier.server,
            tag = carrier_side.tapir,
        ))
        .await;
    Call {
        carrier: carrier_side,
        phone: Side {
            call_id: header(&invite, "Call-ID"),
            mine: phone_tag,
            tapir: tag_of(&header(&invite, "From")),
            tapir_rtp: sdp_port(&invite),
        },
    }
}

/// An in-dialog request from `from` (its address in Via and Contact) on
/// the dialog `call_id`, with these From and To tags.
fn in_dialog(
    method: &str,
    from: SocketAddr,
    transport: &str,
    (call_id, from_tag, to_tag): (&str, &str, &str),
    cseq: u32,
    extra: &str,
) -> String {
    format!(
        "{method} sip:tapir@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/{transport} {from};branch=z9hG4bK-{method}-{cseq}-{from_tag}\n\
         Max-Forwards: 70\n\
         From: <sip:1001@127.0.0.1>;tag={from_tag}\n\
         To: <sip:tapir@127.0.0.1>;tag={to_tag}\n\
         Call-ID: {call_id}\n\
         CSeq: {cseq} {method}\n\
         Contact: <sip:x@{from}>\n{extra}\n"
    )
}

/// Send a request over a fresh TCP connection and read its final response.
async fn tcp_request(server: SocketAddr, text: &str) -> String {
    let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(server))
        .await
        .unwrap()
        .unwrap();
    stream.write_all(wire(text).as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("no response over TCP")
            .unwrap();
        assert!(n > 0, "tapir closed the connection: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        // Responses one after another; the last final one is complete once
        // its headers are in (no body in tapir's error responses).
        let finals: Vec<&str> = got
            .split("SIP/2.0 ")
            .filter(|r| r.get(..3).and_then(|c| c.parse::<u16>().ok()) >= Some(200))
            .collect();
        if let Some(last) = finals.last()
            && last.contains("\r\n\r\n")
        {
            return format!("SIP/2.0 {last}");
        }
    }
}

/// A phone that registered, the carrier, and tapir.
struct Rig {
    server: RunningServer,
    sip: SocketAddr,
    carrier: Peer,
    phone: Peer,
}

async fn rig() -> Rig {
    let carrier_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let carrier_port = carrier_socket.local_addr().unwrap().port();
    let server = tapir(carrier_port, |_| {}).await;
    let sip = server.sip_addr.unwrap();
    let phone = Peer::bind(sip).await;
    register(&phone, "1001", "pw").await;
    Rig {
        server,
        sip,
        carrier: Peer::on(carrier_socket, sip),
        phone,
    }
}

/// The phone hangs up `call` with the right tags: 200 proves the call was
/// still up, and the carrier is told with a BYE.
async fn phone_hangs_up(rig: &Rig, call: &Call) {
    let bye = in_dialog(
        "BYE",
        rig.phone.addr(),
        "UDP",
        (&call.phone.call_id, &call.phone.mine, &call.phone.tapir),
        2,
        "",
    );
    let ok = rig.phone.request(&bye).await;
    assert_eq!(status(&ok), 200, "the call was still up: {ok}");
    let bye = rig
        .carrier
        .next("BYE to the carrier", |t| t.starts_with("BYE "))
        .await;
    rig.carrier.respond(&bye, 200, "", "").await;
}

#[tokio::test]
async fn call_ids_and_tags_tapir_makes_cannot_be_guessed() {
    let rig = rig().await;
    let first = call(&rig.carrier, &rig.phone, 1, 40_000, 40_002).await;
    phone_hangs_up(&rig, &first).await;
    let second = call(&rig.carrier, &rig.phone, 2, 40_000, 40_002).await;
    let ids = [&first.phone.call_id, &second.phone.call_id];
    for side in [&first.phone, &second.phone] {
        let random = side.call_id.split('@').next().unwrap();
        assert!(
            random.len() >= 32 && random.bytes().all(|c| c.is_ascii_hexdigit()),
            "Call-ID {} has 128 random bits in hex",
            side.call_id
        );
        let tag = side.tapir.trim_start_matches("tp");
        assert!(tag.len() >= 32, "tag {}", side.tapir);
    }
    let common = ids[0]
        .bytes()
        .zip(ids[1].bytes())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common < 8, "two calls' Call-IDs share a prefix: {ids:?}");
    phone_hangs_up(&rig, &second).await;
    rig.server.shutdown().await;
}

/// A stranger's UDP socket and the three spoofed tag sets it tries on a
/// dialog whose Call-ID it knows: made-up tags, and the dialog's own tags
/// in the wrong places.
fn bogus_tags(side: &Side) -> Vec<(String, String)> {
    vec![
        ("evil-from".into(), "evil-to".into()),
        (side.tapir.clone(), side.mine.clone()),
        (side.mine.clone(), "evil-to".into()),
    ]
}

#[tokio::test]
async fn a_spoofed_bye_over_udp_or_tcp_gets_481_and_the_call_stays_up() {
    let rig = rig().await;
    let call = call(&rig.carrier, &rig.phone, 1, 40_010, 40_012).await;
    let eve = Peer::bind(rig.sip).await;
    let mut cseq = 10;
    for side in [&call.phone, &call.carrier] {
        for (from, to) in bogus_tags(side) {
            cseq += 1;
            let bye = in_dialog(
                "BYE",
                eve.addr(),
                "UDP",
                (&side.call_id, &from, &to),
                cseq,
                "",
            );
            let answer = eve.request(&bye).await;
            assert_eq!(status(&answer), 481, "spoofed BYE over UDP: {answer}");
        }
    }
    // The same over TCP.
    let tcp = rig.server.sip_tcp_addr.unwrap();
    for (from, to) in bogus_tags(&call.phone) {
        cseq += 1;
        let bye = in_dialog(
            "BYE",
            "127.0.0.1:9".parse().unwrap(),
            "TCP",
            (&call.phone.call_id, &from, &to),
            cseq,
            "",
        );
        let answer = tcp_request(tcp, &bye).await;
        assert_eq!(status(&answer), 481, "spoofed BYE over TCP: {answer}");
    }
    // The dialog's own tags, from the stranger's address: refused.
    let tags = (
        call.phone.call_id.as_str(),
        call.phone.mine.as_str(),
        call.phone.tapir.as_str(),
    );
    let bye = in_dialog("BYE", eve.addr(), "UDP", tags, 40, "");
    let answer = eve.request(&bye).await;
    assert_eq!(
        status(&answer),
        403,
        "BYE from outside the dialog: {answer}"
    );
    let bye = in_dialog("BYE", "127.0.0.1:9".parse().unwrap(), "TCP", tags, 41, "");
    let answer = tcp_request(tcp, &bye).await;
    assert_eq!(status(&answer), 403, "BYE over another transport: {answer}");
    phone_hangs_up(&rig, &call).await;
    rig.server.shutdown().await;
}

/// An RTP packet (PCMU, 20 ms of silence) with sequence number `seq`.
fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend(std::iter::repeat_n(0xff, 160));
    p
}

#[tokio::test]
async fn a_spoofed_reinvite_does_not_move_the_media_and_a_spoofed_refer_is_refused() {
    let rig = rig().await;
    let carrier_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let eve_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    let call = call(
        &rig.carrier,
        &rig.phone,
        1,
        port(&carrier_rtp),
        port(&phone_rtp),
    )
    .await;
    let eve = Peer::bind(rig.sip).await;
    let offer = format!("Content-Type: application/sdp\n\n{}", sdp(port(&eve_rtp)));
    let side = &call.phone;
    let mut tags = bogus_tags(side);
    tags.push((side.mine.clone(), side.tapir.clone()));
    for (n, (from, to)) in tags.iter().enumerate() {
        let n = n as u32;
        let own = from == &side.mine && to == &side.tapir;
        let expected = if own { 403 } else { 481 };
        let reinvite = in_dialog(
            "INVITE",
            eve.addr(),
            "UDP",
            (&side.call_id, from, to),
            20 + n,
            &offer,
        );
        let answer = eve.request(&reinvite).await;
        assert_eq!(status(&answer), expected, "spoofed re-INVITE: {answer}");
        let refer = in_dialog(
            "REFER",
            eve.addr(),
            "UDP",
            (&side.call_id, from, to),
            30 + n,
            "Refer-To: <sip:0301234567@127.0.0.1>\n",
        );
        let answer = eve.request(&refer).await;
        assert_eq!(status(&answer), expected, "spoofed REFER: {answer}");
    }
    // The carrier's audio still reaches the phone, and none the stranger.
    let tapir_rtp: SocketAddr = ([127, 0, 0, 1], call.carrier.tapir_rtp).into();
    let mut buf = [0u8; 2048];
    let mut reached = false;
    for seq in 0..200u16 {
        carrier_rtp.send_to(&rtp(seq), tapir_rtp).await.unwrap();
        let got = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            phone_rtp.recv_from(&mut buf),
        )
        .await;
        if got.is_ok() {
            reached = true;
            break;
        }
    }
    assert!(reached, "the carrier's audio reaches the phone");
    assert!(
        eve_rtp.try_recv_from(&mut buf).is_err(),
        "the stranger got the call's audio"
    );
    // No transfer reached the carrier: its next message is the BYE.
    phone_hangs_up(&rig, &call).await;
    rig.server.shutdown().await;
}

/// Phone `user` at `phone` sends an INVITE with these extra header lines
/// to 1001, answering tapir's challenge with `password` when given;
/// returns the final response.
async fn invite_with(phone: &Peer, user: &str, password: Option<&str>, extra: &str) -> String {
    let local = phone.addr();
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE sip:1001@127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-inv{cseq}-{user}\n\
             Max-Forwards: 70\n\
             From: <sip:{user}@127.0.0.1>;tag=i{user}\n\
             To: <sip:1001@127.0.0.1>\n\
             Call-ID: replacing-{user}-{port}\n\
             CSeq: {cseq} INVITE\n\
             Contact: <sip:{user}@{local}>\n{extra}{auth}\
             Content-Type: application/sdp\n\n{sdp}",
            port = local.port(),
            sdp = sdp(40_100),
        )
    };
    let first = phone.request(&invite(1, "")).await;
    let Some(password) = password else {
        return first;
    };
    assert_eq!(status(&first), 407, "{first}");
    let auth = digest(&first, user, password, "INVITE", "sip:1001@127.0.0.1");
    phone
        .request(&invite(2, &format!("Proxy-Authorization: {auth}\n")))
        .await
}

#[tokio::test]
async fn replaces_with_wrong_tags_is_refused_and_a_stranger_is_challenged_first() {
    let rig = rig().await;
    let call = call(&rig.carrier, &rig.phone, 1, 40_020, 40_022).await;
    // An authenticated phone names the victim's dialog with wrong tags.
    let mallory = Peer::bind(rig.sip).await;
    register(&mallory, "1002", "pw2").await;
    let side = &call.phone;
    let replaces = format!("Replaces: {};to-tag=WRONG;from-tag=WRONG\n", side.call_id);
    let answer = invite_with(&mallory, "1002", Some("pw2"), &replaces).await;
    assert_eq!(status(&answer), 481, "Replaces with wrong tags: {answer}");
    // A stranger's INVITE with Replaces is challenged before any lookup:
    // the same answer for an unknown call and for a real one.
    let eve = Peer::bind(rig.sip).await;
    for replaces in [
        "Replaces: no-such-call@x;to-tag=a;from-tag=b\n".to_string(),
        format!(
            "Replaces: {};to-tag={};from-tag={}\n",
            side.call_id, side.tapir, side.mine
        ),
    ] {
        let answer = invite_with(&eve, "1003", None, &replaces).await;
        assert_eq!(status(&answer), 407, "unauthenticated Replaces: {answer}");
    }
    phone_hangs_up(&rig, &call).await;
    rig.server.shutdown().await;
}

#[tokio::test]
async fn a_2xx_never_acknowledged_is_hung_up_and_the_callee_is_free_again() {
    let rig = rig().await;
    // Phone 1002 calls 1001 (one call at a time), which answers; 1002
    // never ACKs tapir's 200.
    let caller = Peer::bind(rig.sip).await;
    register(&caller, "1002", "pw2").await;
    let local = caller.addr();
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE sip:1001@127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-noack{cseq}\n\
             Max-Forwards: 70\n\
             From: <sip:1002@127.0.0.1>;tag=noack\n\
             To: <sip:1001@127.0.0.1>\n\
             Call-ID: noack@{local}\n\
             CSeq: {cseq} INVITE\n\
             Contact: <sip:1002@{local}>\n{auth}\
             Content-Type: application/sdp\n\n{sdp}",
            sdp = sdp(40_200),
        )
    };
    let challenge = caller.request(&invite(1, "")).await;
    assert_eq!(status(&challenge), 407, "{challenge}");
    let auth = digest(&challenge, "1002", "pw2", "INVITE", "sip:1001@127.0.0.1");
    caller
        .send(&invite(2, &format!("Proxy-Authorization: {auth}\n")))
        .await;
    let ring = rig
        .phone
        .next("tapir's INVITE to 1001", |t| t.starts_with("INVITE "))
        .await;
    let answer = format!(
        "Contact: <sip:1001@{}>\nContent-Type: application/sdp\n\n{}",
        rig.phone.addr(),
        sdp(40_202)
    );
    rig.phone.respond(&ring, 200, "callee", &answer).await;
    caller
        .next("tapir's 200", |t| {
            status(t) == 200 && t.contains("CSeq: 2 INVITE")
        })
        .await;
    // 64×T1 (32 s) later tapir hangs up on the silent caller…
    let bound = std::time::Duration::from_secs(45);
    let bye = caller
        .next_within(bound, |t| t.starts_with("BYE "))
        .await
        .expect("tapir sends the caller a BYE after 64×T1 without ACK");
    caller.respond(&bye, 200, "", "").await;
    // …and releases 1001, which can take a call again.
    let bye = rig
        .phone
        .next_within(std::time::Duration::from_secs(10), |t| {
            t.starts_with("BYE ")
        })
        .await
        .expect("1001's leg is released");
    rig.phone.respond(&bye, 200, "", "").await;
    let call = call(&rig.carrier, &rig.phone, 7, 40_204, 40_206).await;
    phone_hangs_up(&rig, &call).await;
    rig.server.shutdown().await;
}

#[tokio::test]
async fn an_early_dialog_whose_cancel_got_no_487_refuses_refer() {
    let rig = rig().await;
    let local = rig.carrier.addr();
    let head = "Via: SIP/2.0/UDP {local};branch=z9hG4bK-early\n\
                Max-Forwards: 70\n\
                From: <sip:+4930555123@carrier.test>;tag=early\n\
                To: <sip:1001@127.0.0.1>\n\
                Call-ID: early@carrier.test\n"
        .replace("{local}", &local.to_string());
    rig.carrier
        .send(&format!(
            "INVITE sip:1001@127.0.0.1 SIP/2.0\n{head}CSeq: 1 INVITE\n\
             Contact: <sip:gw@{local}>\nContent-Type: application/sdp\n\n{}",
            sdp(40_300)
        ))
        .await;
    let invite = rig
        .phone
        .next("tapir's INVITE", |t| t.starts_with("INVITE "))
        .await;
    let contact = format!("Contact: <sip:1001@{}>\n", rig.phone.addr());
    rig.phone.respond(&invite, 180, "ringing", &contact).await;
    // The carrier gives up; the phone answers the CANCEL, never the INVITE.
    rig.carrier
        .send(&format!(
            "CANCEL sip:1001@127.0.0.1 SIP/2.0\n{head}CSeq: 1 CANCEL\n\n"
        ))
        .await;
    let cancel = rig
        .phone
        .next("tapir's CANCEL", |t| t.starts_with("CANCEL "))
        .await;
    rig.phone.respond(&cancel, 200, "ringing", "").await;
    // A REFER in the early dialog that tapir is cancelling: 481, no transfer.
    let refer = in_dialog(
        "REFER",
        rig.phone.addr(),
        "UDP",
        (
            &header(&invite, "Call-ID"),
            "ringing",
            &tag_of(&header(&invite, "From")),
        ),
        2,
        "Refer-To: <sip:0301234567@127.0.0.1>\n",
    );
    let answer = rig.phone.request(&refer).await;
    assert_eq!(
        status(&answer),
        481,
        "REFER in a cancelled early dialog: {answer}"
    );
    rig.server.shutdown().await;
}
