//! Dialog tests: creation (UAC, UAS, early, forked), request building
//! with loose and strict route sets, matching, 481/500, target refresh,
//! Replaces.

use bytes::Bytes;

use super::*;
use crate::msg::{HeaderName, Message, Method};

const LOCAL_CONTACT: &str = "<sip:tapir@192.0.2.1:5060>";
const VIA: &str = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnew1";

fn parse(text: &str) -> Message {
    Message::parse_datagram(Bytes::from(
        text.replace("\r\n", "\n").replace('\n', "\r\n"),
    ))
    .unwrap()
}

/// The INVITE tapir sends to bob.
fn outgoing_invite() -> Message {
    parse(
        "INVITE sip:bob@192.0.2.20:5062 SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1\n\
         Max-Forwards: 70\n\
         From: <sip:1001@192.0.2.1>;tag=tapir-a\n\
         To: <sip:1002@192.0.2.1>\n\
         Call-ID: call-out@192.0.2.1\n\
         CSeq: 7 INVITE\n\
         Contact: <sip:tapir@192.0.2.1:5060>\n\
         Content-Length: 0\n\n",
    )
}

fn response_to(request: &Message, code: u16, to_tag: &str, extra: &str) -> Message {
    let built = request.response_builder(code, None, Some(to_tag)).build();
    let text = String::from_utf8(built.to_bytes().to_vec()).unwrap();
    let text = text.replacen(
        "Content-Length: 0\r\n",
        &format!("{extra}Content-Length: 0\r\n"),
        1,
    );
    Message::parse_datagram(Bytes::from(text)).unwrap()
}

/// An INVITE a phone sends to tapir.
fn incoming_invite(extra: &str) -> Message {
    parse(&format!(
        "INVITE sip:1002@192.0.2.1 SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKph1\n\
         Max-Forwards: 70\n\
         From: \"Alice\" <sip:1001@192.0.2.1>;tag=alice-1\n\
         To: <sip:1002@192.0.2.1>\n\
         Call-ID: call-in@192.0.2.10\n\
         CSeq: 101 INVITE\n\
         Contact: <sip:1001@192.0.2.10:5070>\n\
         {extra}Content-Length: 0\n\n"
    ))
}

/// A request the phone sends inside the dialog created by `incoming_invite`.
fn phone_request(method: &str, cseq: u32, to_tag: &str, extra: &str) -> Message {
    parse(&format!(
        "{method} sip:tapir@192.0.2.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKph{cseq}\n\
         Max-Forwards: 70\n\
         From: \"Alice\" <sip:1001@192.0.2.1>;tag=alice-1\n\
         To: <sip:1002@192.0.2.1>;tag={to_tag}\n\
         Call-ID: call-in@192.0.2.10\n\
         CSeq: {cseq} {method}\n\
         {extra}Content-Length: 0\n\n"
    ))
}

fn uas_dialog(dialogs: &mut Dialogs, state: DialogState) -> DialogId {
    let invite = incoming_invite("");
    let dialog = Dialog::from_request(&invite, "tapir-b", LOCAL_CONTACT, state).unwrap();
    dialogs.insert(dialog)
}

#[test]
fn uac_dialog_from_2xx() {
    let invite = outgoing_invite();
    let ok = response_to(
        &invite,
        200,
        "bob-1",
        "Contact: <sip:bob@192.0.2.20:5062;transport=udp>\r\n",
    );
    let dialog = Dialog::from_response(&invite, &ok, LOCAL_CONTACT).unwrap();
    assert_eq!(
        dialog.id(),
        &DialogId {
            call_id: "call-out@192.0.2.1".to_owned(),
            local_tag: "tapir-a".to_owned(),
            remote_tag: "bob-1".to_owned(),
        }
    );
    assert_eq!(dialog.role(), DialogRole::Uac);
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert_eq!(dialog.local_cseq(), 7);
    assert_eq!(dialog.remote_cseq(), None);
    assert_eq!(
        dialog.remote_target(),
        "sip:bob@192.0.2.20:5062;transport=udp"
    );
    assert!(dialog.route_set().is_empty());
    assert!(!dialog.is_secure());
}

#[test]
fn a_2xx_without_contact_or_a_response_without_tag_creates_nothing() {
    let invite = outgoing_invite();
    let ok = response_to(&invite, 200, "bob-1", "");
    assert_eq!(
        Dialog::from_response(&invite, &ok, LOCAL_CONTACT),
        Err(DialogError::MissingHeader("Contact"))
    );
    let trying = invite.response_builder(100, None, None).build();
    assert_eq!(
        Dialog::from_response(&invite, &trying, LOCAL_CONTACT),
        Err(DialogError::NotDialogCreating(100))
    );
    let busy = response_to(&invite, 486, "bob-1", "");
    assert_eq!(
        Dialog::from_response(&invite, &busy, LOCAL_CONTACT),
        Err(DialogError::NotDialogCreating(486))
    );
}

#[test]
fn uac_route_set_is_the_reversed_record_route() {
    let invite = outgoing_invite();
    let ok = response_to(
        &invite,
        200,
        "bob-1",
        "Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n\
         Contact: <sip:bob@192.0.2.20:5062>\r\n",
    );
    let mut dialog = Dialog::from_response(&invite, &ok, LOCAL_CONTACT).unwrap();
    assert_eq!(
        dialog.route_set(),
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    let bye = dialog.request(Method::Bye, VIA).build();
    assert_eq!(
        bye.start_line(),
        &crate::msg::StartLine::Request {
            method: Method::Bye,
            uri: "sip:bob@192.0.2.20:5062".into()
        }
    );
    let routes: Vec<_> = bye.header_values(&HeaderName::Route).collect();
    assert_eq!(
        routes,
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
}

#[test]
fn uas_dialog_from_request_keeps_record_route_order() {
    let invite =
        incoming_invite("Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n");
    let dialog =
        Dialog::from_request(&invite, "tapir-b", LOCAL_CONTACT, DialogState::Confirmed).unwrap();
    assert_eq!(dialog.role(), DialogRole::Uas);
    assert_eq!(dialog.id().local_tag, "tapir-b");
    assert_eq!(dialog.id().remote_tag, "alice-1");
    assert_eq!(dialog.remote_cseq(), Some(101));
    assert_eq!(dialog.local_cseq(), 0);
    assert_eq!(dialog.remote_target(), "sip:1001@192.0.2.10:5070");
    assert_eq!(
        dialog.route_set(),
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    // Without a From tag there is no dialog.
    let untagged = parse(
        "INVITE sip:1002@192.0.2.1 SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKph1\n\
         From: <sip:1001@192.0.2.1>\n\
         To: <sip:1002@192.0.2.1>\n\
         Call-ID: c\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:1001@192.0.2.10>\n\
         Content-Length: 0\n\n",
    );
    assert_eq!(
        Dialog::from_request(&untagged, "t", LOCAL_CONTACT, DialogState::Early),
        Err(DialogError::MissingTag("From"))
    );
}

#[test]
fn in_dialog_requests_from_the_uas_side() {
    let invite = incoming_invite("");
    let mut dialog =
        Dialog::from_request(&invite, "tapir-b", LOCAL_CONTACT, DialogState::Confirmed).unwrap();
    let bye = dialog.request(Method::Bye, VIA).build();
    let text = String::from_utf8(bye.to_bytes().to_vec()).unwrap();
    assert!(
        text.starts_with("BYE sip:1001@192.0.2.10:5070 SIP/2.0\r\n"),
        "{text}"
    );
    assert_eq!(bye.header(&HeaderName::Via), Some(VIA));
    assert_eq!(bye.header(&HeaderName::MaxForwards), Some("70"));
    let from = bye.from_header().unwrap().unwrap();
    assert_eq!(from.tag(), Some("tapir-b"));
    assert_eq!(from.uri_text, "sip:1002@192.0.2.1");
    let to = bye.to_header().unwrap().unwrap();
    assert_eq!(to.tag(), Some("alice-1"));
    assert_eq!(to.display_name, Some("\"Alice\""));
    assert_eq!(bye.call_id().unwrap(), Some("call-in@192.0.2.10"));
    assert_eq!(bye.cseq().unwrap().unwrap().number, 1);
    assert_eq!(bye.header(&HeaderName::Contact), None);
    assert_eq!(bye.header(&HeaderName::Route), None);
    // The built request parses back.
    Message::parse_datagram(bye.to_bytes()).unwrap();

    // Each method, each with the next CSeq; target refreshes carry Contact.
    for (expected_cseq, method, has_contact) in [
        (2, Method::Invite, true),
        (3, Method::Info, false),
        (4, Method::Refer, true),
        (5, Method::Notify, true),
        (6, Method::Update, true),
    ] {
        let request = dialog.request(method.clone(), VIA).build();
        let cseq = request.cseq().unwrap().unwrap();
        assert_eq!(cseq.number, expected_cseq);
        assert_eq!(cseq.method, method.as_str());
        assert_eq!(request.method(), Some(&method));
        assert_eq!(
            request.header(&HeaderName::Contact).is_some(),
            has_contact,
            "{method}"
        );
    }
    assert_eq!(dialog.local_cseq(), 6);
}

#[test]
fn ack_for_2xx_reuses_the_invite_cseq() {
    let invite = outgoing_invite();
    let ok = response_to(
        &invite,
        200,
        "bob-1",
        "Record-Route: <sip:p1.example.com;lr>\r\nContact: <sip:bob@192.0.2.20:5062>\r\n",
    );
    let mut dialog = Dialog::from_response(&invite, &ok, LOCAL_CONTACT).unwrap();
    let ack = dialog.ack(&ok, VIA).unwrap().build();
    assert_eq!(ack.method(), Some(&Method::Ack));
    let cseq = ack.cseq().unwrap().unwrap();
    assert_eq!((cseq.number, cseq.method), (7, "ACK"));
    assert_eq!(
        ack.header(&HeaderName::Route),
        Some("<sip:p1.example.com;lr>")
    );
    assert_eq!(ack.to_header().unwrap().unwrap().tag(), Some("bob-1"));
    assert_eq!(dialog.local_cseq(), 7, "ACK takes no new CSeq");
    // A re-INVITE gets 8, and its 2xx is acknowledged with 8.
    let reinvite = dialog.request(Method::Invite, VIA).build();
    assert_eq!(reinvite.cseq().unwrap().unwrap().number, 8);
    let ok8 = response_to(
        &reinvite,
        200,
        "bob-1",
        "Contact: <sip:bob@192.0.2.20:5062>\r\n",
    );
    let ack8 = dialog.ack(&ok8, VIA).unwrap().build();
    assert_eq!(ack8.cseq().unwrap().unwrap().number, 8);
    // Not for a BYE response.
    let bye = dialog.request(Method::Bye, VIA).build();
    let bye_ok = response_to(&bye, 200, "bob-1", "");
    assert!(dialog.ack(&bye_ok, VIA).is_err());
}

#[test]
fn strict_router_first_in_route_set() {
    let invite = outgoing_invite();
    let ok = response_to(
        &invite,
        200,
        "bob-1",
        "Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com>\r\n\
         Contact: <sip:bob@192.0.2.20:5062>\r\n",
    );
    let mut dialog = Dialog::from_response(&invite, &ok, LOCAL_CONTACT).unwrap();
    let (request_uri, routes) = dialog.request_target();
    assert_eq!(request_uri, "sip:p1.example.com");
    assert_eq!(
        routes,
        ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.20:5062>"]
    );
    let bye = dialog.request(Method::Bye, VIA).build();
    let text = String::from_utf8(bye.to_bytes().to_vec()).unwrap();
    assert!(text.starts_with("BYE sip:p1.example.com SIP/2.0\r\n"));
    // The strict router is also where the request goes first.
    assert_eq!(dialog.first_hop(), "sip:p1.example.com");
}

#[test]
fn first_hop_is_the_first_route_or_the_remote_target() {
    let loose = ["<sip:p1.example.com:5070;lr>".to_string()];
    assert_eq!(
        first_hop("sip:bob@192.0.2.20", &loose),
        "sip:p1.example.com:5070;lr"
    );
    assert_eq!(first_hop("sip:bob@192.0.2.20", &[]), "sip:bob@192.0.2.20");
    assert_eq!(
        request_target("sip:bob@192.0.2.20", &loose),
        ("sip:bob@192.0.2.20".to_string(), loose.to_vec())
    );
}

#[test]
fn early_dialogs_per_to_tag_then_confirmed_by_2xx() {
    let invite = outgoing_invite();
    let mut dialogs = Dialogs::new();
    // Two forks ring.
    let ringing_1 = response_to(
        &invite,
        180,
        "fork-1",
        "Contact: <sip:bob@192.0.2.20:5062>\r\n",
    );
    let ringing_2 = response_to(&invite, 183, "fork-2", "");
    let first = dialogs
        .handle_response(&invite, &ringing_1, LOCAL_CONTACT)
        .unwrap()
        .unwrap();
    let second = dialogs
        .handle_response(&invite, &ringing_2, LOCAL_CONTACT)
        .unwrap()
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(dialogs.len(), 2);
    assert_eq!(dialogs.get(&first).unwrap().state(), DialogState::Early);
    // Without Contact the early target is the Request-URI.
    assert_eq!(
        dialogs.get(&second).unwrap().remote_target(),
        "sip:bob@192.0.2.20:5062"
    );
    // 100 Trying and 1xx without tag create nothing.
    let trying = invite.response_builder(100, None, None).build();
    assert_eq!(
        dialogs.handle_response(&invite, &trying, LOCAL_CONTACT),
        Ok(None)
    );
    // The first fork answers, with a route set and a new target.
    let ok = response_to(
        &invite,
        200,
        "fork-1",
        "Record-Route: <sip:p1.example.com;lr>\r\nContact: <sip:bob@192.0.2.21:5062>\r\n",
    );
    assert_eq!(
        dialogs.handle_response(&invite, &ok, LOCAL_CONTACT),
        Ok(Some(first.clone()))
    );
    let confirmed = dialogs.get(&first).unwrap();
    assert_eq!(confirmed.state(), DialogState::Confirmed);
    assert_eq!(confirmed.remote_target(), "sip:bob@192.0.2.21:5062");
    assert_eq!(confirmed.route_set(), ["<sip:p1.example.com;lr>"]);
}

#[test]
fn final_error_ends_the_early_dialogs() {
    let invite = outgoing_invite();
    let mut dialogs = Dialogs::new();
    let ringing = response_to(
        &invite,
        180,
        "fork-1",
        "Contact: <sip:bob@192.0.2.20:5062>\r\n",
    );
    let id = dialogs
        .handle_response(&invite, &ringing, LOCAL_CONTACT)
        .unwrap()
        .unwrap();
    let busy = response_to(&invite, 486, "fork-1", "");
    assert_eq!(
        dialogs.handle_response(&invite, &busy, LOCAL_CONTACT),
        Ok(None)
    );
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Terminated);
    assert_eq!(dialogs.remove_terminated(), 1);
    assert!(dialogs.is_empty());
}

#[test]
fn matching_incoming_requests() {
    let mut dialogs = Dialogs::new();
    let id = uas_dialog(&mut dialogs, DialogState::Confirmed);
    // ACK for our 2xx.
    let ack = phone_request("ACK", 101, "tapir-b", "");
    assert_eq!(
        dialogs.handle_request(&ack),
        RequestMatch::InDialog(id.clone())
    );
    // INFO then BYE with growing CSeqs.
    let info = phone_request("INFO", 102, "tapir-b", "");
    assert_eq!(
        dialogs.handle_request(&info),
        RequestMatch::InDialog(id.clone())
    );
    assert_eq!(dialogs.get(&id).unwrap().remote_cseq(), Some(102));
    let bye = phone_request("BYE", 103, "tapir-b", "");
    assert_eq!(
        dialogs.handle_request(&bye),
        RequestMatch::InDialog(id.clone())
    );
    // An initial request is not ours to match.
    assert_eq!(
        dialogs.handle_request(&incoming_invite("")),
        RequestMatch::OutOfDialog
    );
}

#[test]
fn no_matching_dialog_gets_481_and_a_stray_ack_is_dropped() {
    let mut dialogs = Dialogs::new();
    let id = uas_dialog(&mut dialogs, DialogState::Confirmed);
    let bye = phone_request("BYE", 102, "someone-else", "");
    let RequestMatch::Reject(response) = dialogs.handle_request(&bye) else {
        panic!("expected a rejection");
    };
    assert_eq!(response.status_code(), Some(481));
    assert_eq!(
        response.to_header().unwrap().unwrap().tag(),
        Some("someone-else")
    );
    let ack = phone_request("ACK", 101, "someone-else", "");
    assert_eq!(dialogs.handle_request(&ack), RequestMatch::StrayAck);
    // An ended dialog matches nothing either.
    dialogs.get_mut(&id).unwrap().terminate();
    let bye = phone_request("BYE", 102, "tapir-b", "");
    let RequestMatch::Reject(response) = dialogs.handle_request(&bye) else {
        panic!("expected a rejection");
    };
    assert_eq!(response.status_code(), Some(481));
}

#[test]
fn a_lower_cseq_gets_500() {
    let mut dialogs = Dialogs::new();
    let id = uas_dialog(&mut dialogs, DialogState::Confirmed);
    let info = phone_request("INFO", 110, "tapir-b", "");
    assert_eq!(
        dialogs.handle_request(&info),
        RequestMatch::InDialog(id.clone())
    );
    let old = phone_request("INFO", 105, "tapir-b", "");
    let RequestMatch::Reject(response) = dialogs.handle_request(&old) else {
        panic!("expected a rejection");
    };
    assert_eq!(response.status_code(), Some(500));
    assert_eq!(dialogs.get(&id).unwrap().remote_cseq(), Some(110));
}

#[test]
fn re_invite_and_update_refresh_the_target() {
    let mut dialogs = Dialogs::new();
    let id = uas_dialog(&mut dialogs, DialogState::Confirmed);
    let reinvite = phone_request(
        "INVITE",
        102,
        "tapir-b",
        "Contact: <sip:1001@192.0.2.10:6000>\r\n",
    );
    assert_eq!(
        dialogs.handle_request(&reinvite),
        RequestMatch::InDialog(id.clone())
    );
    assert_eq!(
        dialogs.get(&id).unwrap().remote_target(),
        "sip:1001@192.0.2.10:6000"
    );
    let update = phone_request(
        "UPDATE",
        103,
        "tapir-b",
        "Contact: <sip:1001@192.0.2.10:7000>\r\n",
    );
    dialogs.handle_request(&update);
    assert_eq!(
        dialogs.get(&id).unwrap().remote_target(),
        "sip:1001@192.0.2.10:7000"
    );
    // INFO is no target refresh.
    let info = phone_request("INFO", 104, "tapir-b", "Contact: <sip:1001@192.0.2.99>\r\n");
    dialogs.handle_request(&info);
    assert_eq!(
        dialogs.get(&id).unwrap().remote_target(),
        "sip:1001@192.0.2.10:7000"
    );
    // Our own re-INVITE's 2xx refreshes it as well.
    let dialog = dialogs.get_mut(&id).unwrap();
    let reinvite = dialog.request(Method::Invite, VIA).build();
    let ok = response_to(
        &reinvite,
        200,
        "alice-1",
        "Contact: <sip:1001@192.0.2.10:8000>\r\n",
    );
    dialog.handle_response(&reinvite, &ok);
    assert_eq!(dialog.remote_target(), "sip:1001@192.0.2.10:8000");
}

#[test]
fn a_481_or_408_to_our_request_ends_the_dialog() {
    for code in [481, 408] {
        let mut dialogs = Dialogs::new();
        let id = uas_dialog(&mut dialogs, DialogState::Confirmed);
        let dialog = dialogs.get_mut(&id).unwrap();
        let info = dialog.request(Method::Info, VIA).build();
        let response = response_to(&info, code, "alice-1", "");
        dialog.handle_response(&info, &response);
        assert_eq!(dialog.state(), DialogState::Terminated, "{code}");
    }
}

#[test]
fn replaces_finds_a_confirmed_dialog() {
    let mut dialogs = Dialogs::new();
    let id = uas_dialog(&mut dialogs, DialogState::Confirmed);
    let invite =
        incoming_invite("Replaces: call-in@192.0.2.10;to-tag=tapir-b;from-tag=alice-1\r\n");
    let found = dialogs.find_replaced(&invite).unwrap().unwrap();
    assert_eq!(found.id(), &id);
    // Without the header: nothing to replace.
    assert_eq!(dialogs.find_replaced(&incoming_invite("")), Ok(None));
}

#[test]
fn replaces_errors() {
    let mut dialogs = Dialogs::new();
    let id = uas_dialog(&mut dialogs, DialogState::Confirmed);
    let cases = [
        // Tags swapped: to-tag must be ours.
        (
            "Replaces: call-in@192.0.2.10;to-tag=alice-1;from-tag=tapir-b\r\n",
            ReplacesError::NoMatch,
            481,
        ),
        (
            "Replaces: unknown@x;to-tag=tapir-b;from-tag=alice-1\r\n",
            ReplacesError::NoMatch,
            481,
        ),
        (
            "Replaces: call-in@192.0.2.10;to-tag=tapir-b\r\n",
            ReplacesError::Malformed,
            400,
        ),
        (
            "Replaces: call-in@192.0.2.10;to-tag=tapir-b;from-tag=alice-1;early-only\r\n",
            ReplacesError::AlreadyConfirmed,
            486,
        ),
    ];
    for (header, expected, status) in cases {
        let invite = incoming_invite(header);
        assert_eq!(
            dialogs
                .find_replaced(&invite)
                .map(|d| d.map(|d| d.id().clone())),
            Err(expected),
            "{header}"
        );
        assert_eq!(expected.status_code(), status);
    }
    dialogs.get_mut(&id).unwrap().terminate();
    let invite =
        incoming_invite("Replaces: call-in@192.0.2.10;to-tag=tapir-b;from-tag=alice-1\r\n");
    assert_eq!(
        dialogs.find_replaced(&invite).map(|d| d.is_some()),
        Err(ReplacesError::Terminated)
    );
    assert_eq!(ReplacesError::Terminated.status_code(), 603);
}

#[test]
fn replaces_with_early_only_for_pickup() {
    // tapir rings bob (an early dialog tapir initiated); another phone
    // picks the call up with early-only.
    let invite = outgoing_invite();
    let mut dialogs = Dialogs::new();
    let ringing = response_to(
        &invite,
        180,
        "bob-1",
        "Contact: <sip:bob@192.0.2.20:5062>\r\n",
    );
    let id = dialogs
        .handle_response(&invite, &ringing, LOCAL_CONTACT)
        .unwrap()
        .unwrap();
    let pickup = incoming_invite(
        "Replaces: call-out@192.0.2.1;to-tag=tapir-a;from-tag=bob-1;early-only\r\n",
    );
    assert_eq!(dialogs.find_replaced(&pickup).unwrap().unwrap().id(), &id);

    // An early dialog someone else initiated (a phone calling tapir,
    // still ringing) cannot be replaced.
    let mut dialogs = Dialogs::new();
    uas_dialog(&mut dialogs, DialogState::Early);
    let pickup = incoming_invite(
        "Replaces: call-in@192.0.2.10;to-tag=tapir-b;from-tag=alice-1;early-only\r\n",
    );
    assert_eq!(
        dialogs.find_replaced(&pickup).map(|d| d.is_some()),
        Err(ReplacesError::EarlyNotInitiatedHere)
    );
    assert_eq!(ReplacesError::EarlyNotInitiatedHere.status_code(), 481);
}

#[test]
fn uas_early_dialog_is_confirmed_when_answering() {
    let mut dialogs = Dialogs::new();
    let id = uas_dialog(&mut dialogs, DialogState::Early);
    let dialog = dialogs.get_mut(&id).unwrap();
    assert_eq!(dialog.state(), DialogState::Early);
    dialog.confirm();
    assert_eq!(dialog.state(), DialogState::Confirmed);
    dialog.terminate();
    dialog.confirm();
    assert_eq!(dialog.state(), DialogState::Terminated);
}

#[test]
fn tags_and_branches_are_fresh() {
    let a = new_tag();
    let b = new_tag();
    assert_ne!(a, b);
    // 128 bits: 32 hex digits.
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    let branch = new_branch();
    assert!(branch.starts_with("z9hG4bK") && branch.len() == 7 + 32);
    let call_id = new_call_id("example.com");
    let (random, host) = call_id.split_once('@').unwrap();
    assert_eq!((random.len(), host), (32, "example.com"));
    assert_ne!(call_id, new_call_id("example.com"));
}

#[test]
fn an_outgoing_dialog_takes_the_peers_tag_routes_and_target_from_its_answers() {
    let invite = outgoing_invite();
    let mut dialog = Dialog::outgoing(&invite, LOCAL_CONTACT).unwrap();
    assert_eq!(dialog.state(), DialogState::Early);
    assert_eq!(dialog.remote_tag(), None);
    assert_eq!(dialog.local_cseq(), 7);
    assert_eq!(dialog.remote_target(), "sip:bob@192.0.2.20:5062");
    assert!(dialog.is_named("call-out@192.0.2.1", "tapir-a", None));
    // A 1xx with a tag and a Record-Route: the early dialog's peer, its
    // route set (reversed) and its target.
    let ringing = response_to(
        &invite,
        180,
        "bob-1",
        "Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\n\
         Contact: <sip:bob@192.0.2.20:5070>\r\n",
    );
    dialog.handle_response_to(&Method::Invite, &ringing);
    assert_eq!(dialog.remote_tag(), Some("bob-1"));
    assert!(dialog.is_named("call-out@192.0.2.1", "tapir-a", Some("bob-1")));
    assert!(!dialog.is_named("call-out@192.0.2.1", "tapir-a", None));
    assert!(!dialog.is_named("call-out@192.0.2.1", "bob-1", Some("tapir-a")));
    assert_eq!(
        dialog.route_set(),
        ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    );
    assert_eq!(dialog.remote_target(), "sip:bob@192.0.2.20:5070");
    // The 2xx confirms it and fixes the route set.
    let ok = response_to(
        &invite,
        200,
        "bob-1",
        "Record-Route: <sip:p1.example;lr>\r\nContact: <sip:bob@192.0.2.20:5080>\r\n",
    );
    dialog.handle_response_to(&Method::Invite, &ok);
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert_eq!(dialog.route_set(), ["<sip:p1.example;lr>"]);
    // Requests in it carry the peer's tag, the route and the next CSeq.
    let bye = dialog.request(Method::Bye, VIA).build();
    assert_eq!(bye.to_header().unwrap().unwrap().tag(), Some("bob-1"));
    assert_eq!(bye.cseq().unwrap().unwrap().number, 8);
    assert_eq!(
        bye.header_values(&HeaderName::Route).collect::<Vec<_>>(),
        ["<sip:p1.example;lr>"]
    );
    assert_eq!(dialog.next_cseq(), 9);
}

#[test]
fn the_same_cseq_again_gets_500_but_ack_and_cancel_are_not_checked() {
    let invite = incoming_invite("");
    let mut dialog =
        Dialog::from_request(&invite, "tapir-b", LOCAL_CONTACT, DialogState::Confirmed).unwrap();
    // The INVITE's CSeq (101) is the mark: a BYE reusing it is out of order.
    assert_eq!(
        dialog.check_remote_cseq(&phone_request("BYE", 101, "tapir-b", "")),
        Err(CseqError::OutOfOrder {
            number: 101,
            last: 101
        })
    );
    assert_eq!(
        dialog.check_remote_cseq(&phone_request("ACK", 101, "tapir-b", "")),
        Ok(())
    );
    assert_eq!(
        dialog.check_remote_cseq(&phone_request("CANCEL", 101, "tapir-b", "")),
        Ok(())
    );
    assert_eq!(
        dialog.check_remote_cseq(&phone_request("INFO", 102, "tapir-b", "")),
        Ok(())
    );
    assert_eq!(dialog.remote_cseq(), Some(102));
    let again = dialog.check_remote_cseq(&phone_request("INFO", 102, "tapir-b", ""));
    assert_eq!(again.map_err(CseqError::status_code), Err(500));
    assert_eq!(dialog.remote_cseq(), Some(102));
}
