//! Admission control over real sockets (issue 11, item 4; issue 12, "fds
//! reserved for RTP"): near one of its limits tapir refuses a NEW call at
//! once with `503 Service Unavailable` and `Retry-After`, before any
//! challenge and before any RTP port is taken, while the calls it already
//! accepted keep working and complete; once they are gone, new calls are
//! taken again.
//!
//! The calls come in from a trunk's carrier (a UDP socket on loopback,
//! admitted by its address) to phones (UDP sockets that registered with
//! their digest credentials): each call holds two dialogs and two RTP port
//! pairs (the carrier's leg and the phone's).

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;
use support::sip::{Peer, header, register, sdp, sdp_port, status, tag_of};
use support::{Api, WAIT, server_with};
use tapir_server::{Config, RunningServer};
use tokio::net::UdpSocket;

/// tapir on UDP with phones 1001, 1002 and 1003 (password `pw`) and a trunk
/// whose carrier is at 127.0.0.1:`carrier_port` on line 9000.
async fn tapir(carrier_port: u16, change: impl FnOnce(&mut Config)) -> RunningServer {
    server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()];
        let extra = Config::from_toml(&format!(
            "[[lines]]\naddress = \"1002\"\nkind = \"phone\"\npassword = \"pw\"\n\
             [[lines]]\naddress = \"1003\"\nkind = \"phone\"\npassword = \"pw\"\n\
             [[lines]]\naddress = \"9000\"\nkind = \"trunk\"\n\
             [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {carrier_port}\n\
             address = \"9000\"\n"
        ))
        .unwrap();
        c.lines.extend(extra.lines);
        c.trunks.extend(extra.trunks);
        change(c);
    })
    .await
}

/// The carrier, three registered phones and tapir.
struct Rig {
    server: RunningServer,
    carrier: Peer,
    phones: Vec<Peer>,
}

async fn rig(change: impl FnOnce(&mut Config)) -> Rig {
    let carrier_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let carrier_port = carrier_socket.local_addr().unwrap().port();
    let server = tapir(carrier_port, change).await;
    let sip = server.sip_addr.unwrap();
    let mut phones = Vec::new();
    for user in ["1001", "1002", "1003"] {
        let phone = Peer::bind(sip).await;
        register(&phone, user, "pw").await;
        phones.push(phone);
    }
    Rig {
        server,
        carrier: Peer {
            socket: carrier_socket,
            server: sip,
        },
        phones,
    }
}

/// One accepted call: the carrier's and the phone's dialog.
struct Call {
    n: u32,
    call_id: String,
    /// tapir's tag towards the carrier.
    carrier_tapir_tag: String,
    /// The phone's dialog: Call-ID, tapir's tag, the phone's tag.
    phone_dialog: (String, String, String),
}

/// The carrier's INVITE number `n` to `to`.
fn carrier_invite(rig: &Rig, n: u32, to: &str) -> String {
    let local = rig.carrier.addr();
    format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-carrier-{n}\n\
         Max-Forwards: 70\n\
         From: <sip:+4930555123@carrier.test>;tag=carrier-{n}\n\
         To: <sip:{to}@127.0.0.1>\n\
         Call-ID: carrier-call-{n}@carrier.test\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:gw@{local}>\n\
         Content-Type: application/sdp\n\n{}",
        sdp(40_000 + u16::try_from(n).unwrap() * 2)
    )
}

/// The carrier calls phone `i` (1001 + i); the phone answers; both ACK.
async fn call(rig: &Rig, n: u32, i: usize) -> Call {
    let phone = &rig.phones[i];
    let user = format!("100{}", i + 1);
    rig.carrier.send(&carrier_invite(rig, n, &user)).await;
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
                "Contact: <sip:{user}@{}>\nContent-Type: application/sdp\n\n{}",
                phone.addr(),
                sdp(41_000 + u16::try_from(n).unwrap() * 2)
            ),
        )
        .await;
    phone.next("tapir's ACK", |t| t.starts_with("ACK ")).await;
    let call_id = format!("carrier-call-{n}@carrier.test");
    let ok = rig
        .carrier
        .next("tapir's 200", |t| {
            status(t) == 200 && header(t, "Call-ID") == call_id
        })
        .await;
    assert!(sdp_port(&ok) > 0);
    let carrier_tapir_tag = tag_of(&header(&ok, "To"));
    rig.carrier
        .send(&format!(
            "ACK sip:tapir@{server} SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-carrier-ack-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:+4930555123@carrier.test>;tag=carrier-{n}\n\
             To: <sip:{user}@127.0.0.1>;tag={carrier_tapir_tag}\n\
             Call-ID: {call_id}\n\
             CSeq: 1 ACK\n\n",
            server = rig.carrier.server,
            local = rig.carrier.addr(),
        ))
        .await;
    Call {
        n,
        call_id,
        carrier_tapir_tag,
        phone_dialog: (
            header(&invite, "Call-ID"),
            tag_of(&header(&invite, "From")),
            phone_tag,
        ),
    }
}

/// A new call from the carrier to phone `i` is refused with 503 and the
/// `Retry-After` of `retry_after`, and the phone hears nothing of it.
async fn refused(rig: &Rig, n: u32, i: usize, retry_after: &str) {
    let user = format!("100{}", i + 1);
    let answer = rig.carrier.request(&carrier_invite(rig, n, &user)).await;
    assert_eq!(status(&answer), 503, "{answer}");
    assert_eq!(header(&answer, "Retry-After"), retry_after, "{answer}");
    // The carrier acknowledges the 503 (its INVITE transaction ends).
    rig.carrier
        .send(&format!(
            "ACK sip:{user}@127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-carrier-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:+4930555123@carrier.test>;tag=carrier-{n}\n\
             To: {to}\n\
             Call-ID: carrier-call-{n}@carrier.test\n\
             CSeq: 1 ACK\n\n",
            local = rig.carrier.addr(),
            to = header(&answer, "To"),
        ))
        .await;
    let rung = rig.phones[i]
        .next_within(Duration::from_millis(300), |t| t.starts_with("INVITE "))
        .await;
    assert!(rung.is_none(), "the phone was invited to a refused call");
}

/// The carrier hangs `call` up: tapir answers 200 (the call was still up)
/// and sends the phone a BYE, which it answers.
async fn carrier_hangs_up(rig: &Rig, call: &Call, i: usize) {
    let n = call.n;
    let user = format!("100{}", i + 1);
    let ok = rig
        .carrier
        .request(&format!(
            "BYE sip:tapir@{server} SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-carrier-bye-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:+4930555123@carrier.test>;tag=carrier-{n}\n\
             To: <sip:{user}@127.0.0.1>;tag={tag}\n\
             Call-ID: {call_id}\n\
             CSeq: 2 BYE\n\n",
            server = rig.carrier.server,
            local = rig.carrier.addr(),
            tag = call.carrier_tapir_tag,
            call_id = call.call_id,
        ))
        .await;
    assert_eq!(status(&ok), 200, "the accepted call was still up: {ok}");
    let phone = &rig.phones[i];
    let (call_id, _, _) = &call.phone_dialog;
    let bye = phone
        .next("the BYE to the phone", |t| {
            t.starts_with("BYE ") && header(t, "Call-ID") == *call_id
        })
        .await;
    phone.respond(&bye, 200, "", "").await;
}

/// The phone of `call` sends an OPTIONS inside its dialog and tapir
/// answers it 200: the dialog is alive.
async fn phone_dialog_answers(rig: &Rig, call: &Call, i: usize) {
    let phone = &rig.phones[i];
    let (call_id, tapir_tag, phone_tag) = &call.phone_dialog;
    let user = format!("100{}", i + 1);
    let answer = phone
        .request(&format!(
            "OPTIONS sip:tapir@127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-options-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:{user}@127.0.0.1>;tag={phone_tag}\n\
             To: <sip:+4930555123@127.0.0.1>;tag={tapir_tag}\n\
             Call-ID: {call_id}\n\
             CSeq: 5 OPTIONS\n\n",
            local = phone.addr(),
            n = call.n,
        ))
        .await;
    assert_eq!(status(&answer), 200, "the accepted call's dialog: {answer}");
}

/// The value of `tapir_calls_refused_total{reason}` in `/metrics` (0 when
/// absent).
async fn refused_metric(server: &RunningServer, reason: &str) -> u64 {
    let api = Api::new(server, None);
    let text = reqwest::get(format!("{}/metrics", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wanted = format!("tapir_calls_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Ten free UDP ports in a row from an even port, for the RTP range.
fn free_port_range() -> u16 {
    let start = 20_000 + u16::try_from(std::process::id() % 2_000).unwrap() * 10;
    for base in (start..60_000).step_by(10) {
        let all = (base..base + 10)
            .map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)))
            .collect::<Result<Vec<_>, _>>();
        if all.is_ok() {
            return base;
        }
    }
    panic!("no ten free UDP ports in a row");
}

/// Whether every port of `base..base + 10` can be bound (tapir holds none).
fn range_free(base: u16) -> bool {
    (base..base + 10)
        .map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)))
        .collect::<Result<Vec<_>, _>>()
        .is_ok()
}

#[tokio::test]
async fn a_nearly_exhausted_rtp_range_refuses_new_calls_and_the_accepted_ones_complete() {
    let base = free_port_range();
    // Five RTP port pairs: two calls (four legs) fit, a third does not
    // (a new call needs two free pairs, none kept in reserve here).
    let rig = rig(|c| {
        c.media.rtp_port_min = base;
        c.media.rtp_port_max = base + 9;
        c.sip.admission_margin_rtp_ports = 0;
        c.sip.retry_after = 7;
    })
    .await;
    let first = call(&rig, 1, 0).await;
    let second = call(&rig, 2, 1).await;
    refused(&rig, 3, 2, "7").await;
    assert!(refused_metric(&rig.server, "rtp_ports").await >= 1);
    // The accepted calls work on, and end normally.
    phone_dialog_answers(&rig, &first, 0).await;
    phone_dialog_answers(&rig, &second, 1).await;
    carrier_hangs_up(&rig, &first, 0).await;
    carrier_hangs_up(&rig, &second, 1).await;
    // Their legs are released (the media engine keeps their socket pairs
    // open for a while, for the next legs).
    let mut released = false;
    for _ in 0..50 {
        if gauge(&rig.server, "tapir_legs").await == Some(0) {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(released, "the legs were released");
    // Measured again (at most every 100 ms): a new call is taken, on the
    // ports the ended calls gave back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = call(&rig, 4, 2).await;
    carrier_hangs_up(&rig, &again, 2).await;
    rig.server.shutdown().await;
    // Once the server is gone, so is every socket of the range.
    let mut freed = false;
    for _ in 0..50 {
        if range_free(base) {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the media ports were given back");
}

/// A gauge's value in `/metrics`, if shown.
async fn gauge(server: &RunningServer, name: &str) -> Option<u64> {
    let api = Api::new(server, None);
    let text = reqwest::get(format!("{}/metrics", api.base))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let wanted = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn the_dialog_limit_refuses_new_calls_and_the_accepted_ones_complete() {
    // Two calls hold four dialogs; a third would need two more than five.
    let rig = rig(|c| c.sip.max_dialogs = Some(5)).await;
    let first = call(&rig, 1, 0).await;
    let second = call(&rig, 2, 1).await;
    refused(&rig, 3, 2, "5").await;
    assert!(refused_metric(&rig.server, "dialogs").await >= 1);
    phone_dialog_answers(&rig, &first, 0).await;
    phone_dialog_answers(&rig, &second, 1).await;
    carrier_hangs_up(&rig, &first, 0).await;
    carrier_hangs_up(&rig, &second, 1).await;
    let again = call(&rig, 4, 2).await;
    carrier_hangs_up(&rig, &again, 2).await;
    rig.server.shutdown().await;
}

#[tokio::test]
async fn without_room_in_the_descriptor_margin_calls_are_refused_before_any_challenge() {
    // A margin larger than any limit: no descriptor is ever left for a call.
    let rig = rig(|c| c.sip.admission_margin_fds = usize::MAX / 4).await;
    // A phone's own INVITE, unauthenticated: 503 at once, not a challenge.
    let phone = &rig.phones[0];
    let local = phone.addr();
    let answer = phone
        .request(&format!(
            "INVITE sip:1002@127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-phone-invite\n\
             Max-Forwards: 70\n\
             From: <sip:1001@127.0.0.1>;tag=p1\n\
             To: <sip:1002@127.0.0.1>\n\
             Call-ID: phone-call@127.0.0.1\n\
             CSeq: 1 INVITE\n\
             Contact: <sip:1001@{local}>\n\
             Content-Type: application/sdp\n\n{}",
            sdp(40_100)
        ))
        .await;
    assert_eq!(status(&answer), 503, "{answer}");
    assert_eq!(header(&answer, "Retry-After"), "5");
    refused(&rig, 1, 1, "5").await;
    assert!(refused_metric(&rig.server, "fds").await >= 2);
    // A SIP TCP connection is not kept either: only the reserve is left.
    let tcp = rig.server.sip_tcp_addr.unwrap();
    let mut stream = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(tcp))
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut stream, &mut buf))
        .await
        .expect("tapir closes the connection at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    rig.server.shutdown().await;
}
