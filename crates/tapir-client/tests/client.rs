//! tapir-client against a real tapir server on 127.0.0.1 port 0 (started in
//! this process): every method of the client reaches the server, errors
//! carry TAPI's code, and the event stream resumes after a dropped socket.
//! Route points need no SIP phones. Every wait is bounded.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tapir_client::wire::DialingRules;
use tapir_client::{
    CallState, CallingCard, Client, ClientError, CompletionMode, Event, EventKind, EventStream,
    EventsOptions, ForwardRule, HandoffTarget, LineKind, Location, Locations, MakeCall, MediaMode,
    PickupTarget, Privilege, TransferMode, TranslateRequest,
};
use tapir_server::{Config, RunningServer};

const WAIT: Duration = Duration::from_secs(5);

const CONFIG: &str = r#"
[sip]
listen = []
[http]
listen = "127.0.0.1:0"
admin_token = "admin-secret"
[[lines]]
address = "2001"
kind = "routepoint"
name = "Queue A"
[[lines]]
address = "2002"
kind = "routepoint"
name = "Queue B"
pickup_group = "sales"
[[lines]]
address = "2003"
kind = "routepoint"
[[lines]]
address = "2004"
kind = "routepoint"
pickup_group = "sales"
[[apps]]
name = "alpha"
token = "tok-alpha"
lines = ["2001", "2003"]
privileges = ["owner", "monitor"]
permissions = ["make_call", "forward", "settings"]
[[apps]]
name = "beta"
token = "tok-beta"
lines = ["2002", "2004"]
[park]
slots = "7001-7005"
"#;

async fn server_with(change: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config::from_toml(CONFIG).unwrap();
    config.data_dir = std::env::temp_dir().join("tapir-client-tests");
    // Each server its own store (the tests of a binary run at once).
    config.store.url = Some("sqlite::memory:".into());
    change(&mut config);
    tokio::time::timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap()
}

async fn server() -> RunningServer {
    server_with(|_| {}).await
}

fn base(s: &RunningServer) -> String {
    format!("http://{}", s.http_addr)
}

async fn client(s: &RunningServer, token: &str) -> Client {
    tokio::time::timeout(WAIT, Client::connect(base(s), token))
        .await
        .unwrap()
        .unwrap()
}

/// alpha with 2001 and 2003 open, beta with 2002 and 2004, and beta's events.
async fn two_apps(s: &RunningServer) -> (Client, Client, EventStream) {
    let alpha = client(s, "tok-alpha").await;
    let beta = client(s, "tok-beta").await;
    for mut l in alpha.lines().await.unwrap() {
        l.open(&[Privilege::Owner], &[]).await.unwrap();
    }
    for mut l in beta.lines().await.unwrap() {
        l.open(&[Privilege::Owner], &[]).await.unwrap();
    }
    let events = beta.events(0);
    (alpha, beta, events)
}

/// Read events until one matches.
async fn until(events: &mut EventStream, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(e))) if pred(&e) => return e,
            Ok(Some(Ok(e))) => seen.push(e.event_type),
            Ok(Some(Err(e))) => panic!("stream error waiting for {what}: {e}"),
            Ok(None) => panic!("stream ended waiting for {what}; seen {seen:?}"),
            Err(_) => panic!("no {what} within the bound; seen {seen:?}"),
        }
    }
}

/// The call that arrives at `address` (as the app of `events` sees it).
async fn arriving(events: &mut EventStream, app: &Client, address: &str) -> tapir_client::Call {
    let e = until(
        events,
        &format!("call.new at {address}"),
        |e| matches!(&e.kind, EventKind::CallNew { address: a, .. } if a == address),
    )
    .await;
    app.call(e.kind.call().unwrap()).await.unwrap()
}

/// 2001 (alpha) calls `to` (beta's), beta answers; returns both calls.
async fn connected(
    alpha: &Client,
    beta: &Client,
    ev_b: &mut EventStream,
    to: &str,
) -> (tapir_client::Call, tapir_client::Call) {
    let a = alpha.address("2001").create_call(to).await.unwrap();
    let mut b = arriving(ev_b, beta, to).await;
    b.answer().await.unwrap();
    assert_eq!(b.state(), CallState::Connected);
    (a, b)
}

fn code(e: &ClientError) -> &str {
    e.code()
        .unwrap_or_else(|| panic!("not an API error: {e:?}"))
}

#[tokio::test]
async fn lines_open_close_and_address_status() {
    let s = server().await;
    let alpha = client(&s, "tok-alpha").await;
    let lines = alpha.lines().await.unwrap();
    let addresses: Vec<_> = lines.iter().map(|l| l.address().to_string()).collect();
    assert_eq!(addresses, ["2001", "2003"]);
    assert_eq!(lines[0].info().kind, LineKind::RoutePoint);
    assert_eq!(lines[0].info().name.as_deref(), Some("Queue A"));
    assert!(lines[0].id().starts_with("line-"));
    assert_eq!(lines[0].info().open, None);

    let mut line = alpha.line("2003").await.unwrap();
    let info = line
        .open(
            &[Privilege::Owner, Privilege::Monitor],
            &[MediaMode::InteractiveVoice],
        )
        .await
        .unwrap();
    assert_eq!(
        info.open.as_deref(),
        Some(&[Privilege::Owner, Privilege::Monitor][..])
    );
    let again = alpha.line(line.id()).await.unwrap();
    assert!(again.info().open.is_some());
    line.close().await.unwrap();
    assert_eq!(alpha.line("2003").await.unwrap().info().open, None);
    let e = line.close().await.unwrap_err();
    assert_eq!(code(&e), "invallinehandle", "{e}");
    let e = alpha.line("2002").await.unwrap_err();
    assert_eq!(code(&e), "invallinehandle");

    let st = line.first_address().status().await.unwrap();
    assert_eq!(st.address, "2003");
    assert_eq!(st.line, line.id());
    assert!(st.calls.is_empty());
    let e = alpha.address("2002").status().await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(403), "noprivilege"));
    s.shutdown().await;
}

#[tokio::test]
async fn make_answer_hold_drop_deallocate_and_dial() {
    let s = server().await;
    let (alpha, beta, mut ev_b) = two_apps(&s).await;
    let (mut a, mut b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    assert_eq!(a.info().address, "2001");
    assert_eq!(a.info().privilege, Privilege::Owner);
    assert_eq!(a.refresh().await.unwrap().state, CallState::Connected);

    a.hold(true).await.unwrap();
    assert_eq!(a.state(), CallState::OnHold);
    a.hold(true).await.unwrap();
    assert_eq!(a.state(), CallState::OnHold);
    a.hold(false).await.unwrap();
    assert_eq!(a.state(), CallState::Connected);
    b.generate_digits("12#").await.unwrap();
    b.secure().await.unwrap();
    assert!(b.info().secure);
    a.drop().await.unwrap();
    assert_eq!(a.state(), CallState::Idle);
    until(&mut ev_b, "2002 disconnected", |e| {
        matches!(&e.kind, EventKind::CallState { call, state: CallState::Disconnected, .. } if call == b.id())
    })
    .await;
    let id = a.id().to_string();
    a.deallocate().await.unwrap();
    let e = alpha.call(&id).await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(404), "invalcallhandle"));

    // Dial tone, then dial.
    let mut d = alpha.address("2001").dialtone().await.unwrap();
    assert_eq!(d.state(), CallState::Dialtone);
    d.dial("2004").await.unwrap();
    let mut at = arriving(&mut ev_b, &beta, "2004").await;
    assert_eq!(at.state(), CallState::Offering);
    // Accept, then redirect the offered call to 2002.
    at.accept().await.unwrap();
    assert_eq!(at.state(), CallState::Accepted);
    at.redirect("2002").await.unwrap();
    let r = arriving(&mut ev_b, &beta, "2002").await;
    assert_eq!(
        r.info().reason,
        tapir_client::CallReason::Redirect,
        "{:?}",
        r.info()
    );

    // A full make_call with every field.
    let (seq, calls) = alpha.calls().await.unwrap();
    assert!(seq > 0);
    assert!(calls.iter().any(|c| c.id() == d.id()));
    let mut c = alpha
        .make_call(&MakeCall {
            from: "2003".into(),
            to: Some("2004".into()),
            location: None,
        })
        .await
        .unwrap();
    assert_eq!(c.info().address, "2003");
    c.drop().await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn transfers_blind_consultation_and_finish() {
    let s = server().await;
    let (alpha, beta, mut ev_b) = two_apps(&s).await;

    // Blind transfer of beta's call to 2004.
    let (_a, mut b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    b.blind_transfer("2004").await.unwrap();
    let mut t = arriving(&mut ev_b, &beta, "2004").await;
    assert_eq!(t.info().reason, tapir_client::CallReason::Transfer);
    t.drop().await.unwrap();

    // Consultation transfer (TAPI 2): setup, dial, complete.
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let mut x = a.setup_transfer().await.unwrap();
    assert_eq!(x.state(), CallState::Dialtone);
    a.refresh().await.unwrap();
    assert_eq!(a.state(), CallState::OnHoldPendTransfer);
    x.dial("2004").await.unwrap();
    let mut y = arriving(&mut ev_b, &beta, "2004").await;
    y.answer().await.unwrap();
    a.complete_transfer(&x, TransferMode::Transfer)
        .await
        .unwrap();
    a.refresh().await.unwrap();
    assert_eq!(a.state(), CallState::Idle);
    y.refresh().await.unwrap();
    assert_eq!(y.state(), CallState::Connected);
    y.drop().await.unwrap();

    // TAPI 3: "Call transfer involves setting up a consultation call in
    // preparation for the transfer. ... ITBasicCallControl::Finish
    // (FM_ASTRANSFER) completes the transfer." Transfer leaves it pending.
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let mut x = a.transfer("2004").await.unwrap();
    assert_ne!(x.state(), CallState::Dialtone);
    let mut y = arriving(&mut ev_b, &beta, "2004").await;
    y.answer().await.unwrap();
    // The consultation phase: the transfer is still pending.
    a.refresh().await.unwrap();
    assert_eq!(a.state(), CallState::OnHoldPendTransfer);
    x.refresh().await.unwrap();
    assert_eq!(x.state(), CallState::Connected);
    assert!(x.finish(TransferMode::Transfer).await.unwrap().is_none());
    a.refresh().await.unwrap();
    assert_eq!(a.state(), CallState::Idle);
    y.refresh().await.unwrap();
    assert_eq!(y.state(), CallState::Connected);
    y.drop().await.unwrap();

    // TAPI 3 Conference, then Finish(FM_ASCONFERENCE) adds the party.
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let mut x = a.conference("2004").await.unwrap();
    arriving(&mut ev_b, &beta, "2004")
        .await
        .answer()
        .await
        .unwrap();
    assert_eq!(a.state(), CallState::Conferenced);
    assert!(x.finish(TransferMode::Conference).await.unwrap().is_none());
    x.refresh().await.unwrap();
    assert_eq!(x.state(), CallState::Conferenced);
    let related = a.related().await.unwrap();
    assert!(related.len() >= 3, "{related:?}");
    assert!(related.contains(&x.id().to_string()), "{related:?}");
    let mut conf = alpha.call(&related[0]).await.unwrap();
    conf.drop().await.unwrap();

    // Consultation finished as a conference.
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let mut x = a.setup_transfer().await.unwrap();
    x.dial("2004").await.unwrap();
    arriving(&mut ev_b, &beta, "2004")
        .await
        .answer()
        .await
        .unwrap();
    let conf = x.finish(TransferMode::Conference).await.unwrap().unwrap();
    assert_eq!(conf.info().origin, tapir_client::CallOrigin::Conference);
    let related = conf.related().await.unwrap();
    assert_eq!(related[0], conf.id());
    assert!(related.len() >= 3, "{related:?}");

    // complete_transfer in conference mode from the held call.
    let mut a2 = alpha.address("2003").create_call("2002").await.unwrap();
    arriving(&mut ev_b, &beta, "2002")
        .await
        .answer()
        .await
        .unwrap();
    let mut x2 = a2.setup_transfer().await.unwrap();
    x2.dial("2004").await.unwrap();
    arriving(&mut ev_b, &beta, "2004")
        .await
        .answer()
        .await
        .unwrap();
    let conf2 = a2
        .complete_transfer(&x2, TransferMode::Conference)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conf2.info().address, "2003");
    s.shutdown().await;
}

#[tokio::test]
async fn conference_setup_add_prepare_remove() {
    let s = server().await;
    let (alpha, beta, mut ev_b) = two_apps(&s).await;
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let tapir_client::Conference {
        mut conference,
        mut consult,
    } = a.setup_conference(Some(3)).await.unwrap();
    assert_eq!(consult.state(), CallState::Dialtone);
    consult.dial("2004").await.unwrap();
    arriving(&mut ev_b, &beta, "2004")
        .await
        .answer()
        .await
        .unwrap();
    conference.add(&consult).await.unwrap();
    let related = conference.related().await.unwrap();
    assert_eq!(related[0], conference.id());
    assert!(related.iter().any(|c| c == consult.id()), "{related:?}");
    consult.refresh().await.unwrap();
    assert_eq!(consult.state(), CallState::Conferenced);
    let mut next = conference.prepare_add().await.unwrap();
    assert_eq!(next.state(), CallState::Dialtone);
    conference.refresh().await.unwrap();
    assert_eq!(conference.state(), CallState::OnHoldPendConf);
    next.drop().await.unwrap();
    consult.remove_from_conference().await.unwrap();
    consult.refresh().await.unwrap();
    assert_ne!(consult.state(), CallState::Conferenced);
    s.shutdown().await;
}

#[tokio::test]
async fn park_unpark_pickup_forward_swap_and_handoff() {
    let s = server().await;
    let (alpha, beta, mut ev_b) = two_apps(&s).await;

    // Park: to a slot tapir picks, then unpark at 2003.
    let (mut a, b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let slot = a.park(None).await.unwrap();
    assert_eq!(slot, "7001");
    let parked = until(&mut ev_b, "park.parked", |e| {
        matches!(e.kind, EventKind::Parked { .. })
    })
    .await;
    assert_eq!(parked.kind.call(), Some(b.id()));
    let got = alpha.address("2003").unpark(&slot).await.unwrap();
    assert_eq!(got.info().reason, tapir_client::CallReason::Unpark);
    let e = alpha.address("2003").unpark("7002").await.unwrap_err();
    assert!(e.status().unwrap() >= 400, "{e}");
    // Directed park into a taken slot fails with the switch's code.
    let (mut a2, _) = connected(&alpha, &beta, &mut ev_b, "2004").await;
    a2.park(Some("7003")).await.unwrap();
    let (mut a3, _) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let e = a3.park(Some("7003")).await.unwrap_err();
    assert_eq!(code(&e), "invaladdress", "{e}");
    a3.drop().await.unwrap();
    got.deallocate().await.ok();

    // Pickup by address and by group.
    let c = alpha.address("2003").create_call("2004").await.unwrap();
    arriving(&mut ev_b, &beta, "2004").await;
    let picked = beta
        .address("2002")
        .pickup(&PickupTarget::Address("2004".into()))
        .await
        .unwrap();
    assert_eq!(picked.info().reason, tapir_client::CallReason::Pickup);
    let mut c = c;
    c.drop().await.unwrap();
    let c2 = alpha.address("2003").create_call("2004").await.unwrap();
    arriving(&mut ev_b, &beta, "2004").await;
    let picked = alpha
        .address("2001")
        .pickup(&PickupTarget::Group("sales".into()))
        .await
        .unwrap();
    assert_eq!(picked.info().reason, tapir_client::CallReason::Pickup);
    drop(c2);
    let e = alpha
        .address("2001")
        .pickup(&PickupTarget::Group("nobody".into()))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "invalgroupid", "{e}");

    // Forwarding.
    let st = beta
        .address("2004")
        .forward(&[ForwardRule::new("unconditional", "2002")], Some(3))
        .await
        .unwrap();
    assert_eq!(
        st.forwarding.rules,
        [ForwardRule::new("unconditional", "2002")]
    );
    assert_eq!(st.forwarding.no_answer_rings, 3);
    let fwd = until(&mut ev_b, "address.forwarding", |e| {
        matches!(e.kind, EventKind::AddressForwarding { .. })
    })
    .await;
    assert_eq!(fwd.raw["address"], "2004");
    let st = beta.address("2004").forward(&[], None).await.unwrap();
    assert!(st.forwarding.rules.is_empty());
    let e = beta
        .address("2004")
        .forward(&[ForwardRule::new("sometimes", "2002")], None)
        .await
        .unwrap_err();
    // A mode that does not exist names the mode (issue 18).
    assert_eq!((e.status(), code(&e)), (Some(400), "invalforwardmode"));

    // Swap hold between two calls of 2003.
    let (mut h1, _) = connected_from(&alpha, &beta, &mut ev_b, "2003", "2002").await;
    h1.hold(true).await.unwrap();
    let (mut h2, _) = connected_from(&alpha, &beta, &mut ev_b, "2003", "2004").await;
    h2.swap_hold(&h1).await.unwrap();
    assert_eq!(h2.state(), CallState::OnHold);
    h1.refresh().await.unwrap();
    assert_eq!(h1.state(), CallState::Connected);

    // Handoff to an unknown app, then set privilege to monitor.
    let e = h1
        .handoff(&HandoffTarget::App("nobody".into()))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "targetnotfound");
    let e = h1
        .handoff(&HandoffTarget::MediaMode(MediaMode::G3Fax))
        .await
        .unwrap_err();
    assert!(e.code().is_some(), "{e}");
    h1.set_privilege(Privilege::Owner).await.unwrap();
    assert_eq!(h1.info().privilege, Privilege::Owner);
    // lineSetMediaMode: the call object carries the media mode, and a
    // handoff by media mode does not change it.
    assert_eq!(h1.info().media_mode, MediaMode::InteractiveVoice);
    h1.set_media_mode(MediaMode::G3Fax).await.unwrap();
    assert_eq!(h1.info().media_mode, MediaMode::G3Fax);
    h1.refresh().await.unwrap();
    assert_eq!(h1.info().media_mode, MediaMode::G3Fax);
    // The only owner may not step down to monitor.
    let e = h1.set_privilege(Privilege::Monitor).await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(409), "invalcallstate"), "{e}");
    s.shutdown().await;
}

async fn connected_from(
    alpha: &Client,
    beta: &Client,
    ev_b: &mut EventStream,
    from: &str,
    to: &str,
) -> (tapir_client::Call, tapir_client::Call) {
    let a = alpha.address(from).create_call(to).await.unwrap();
    let mut b = arriving(ev_b, beta, to).await;
    b.answer().await.unwrap();
    (a, b)
}

#[tokio::test]
async fn completion_request_and_cancel() {
    let s = server().await;
    let (alpha, beta, mut ev_b) = two_apps(&s).await;
    let mut a = alpha.address("2001").create_call("2002").await.unwrap();
    arriving(&mut ev_b, &beta, "2002").await;
    let completion = a.complete(CompletionMode::Callback, None).await.unwrap();
    assert!(completion.id().starts_with("compl-"));
    let id = completion.id().to_string();
    completion.cancel().await.unwrap();
    let e = alpha.uncomplete(&id).await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(404), "invalcompletionid"));
    let e = a.complete(CompletionMode::Message, Some(1)).await;
    // Message mode either succeeds or says why with a TAPI code.
    if let Err(e) = e {
        assert!(e.code().is_some(), "{e}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn translation_locations_and_cards() {
    let s = server().await;
    let alpha = client(&s, "tok-alpha").await;
    let t = alpha.translate("+1 (206) 555-1212").await.unwrap();
    assert_eq!(t.dialable, "T12065551212", "{t:?}");
    assert!(t.results.iter().any(|r| r == "longdistance"), "{t:?}");
    let e = alpha.translate("+1 (2").await.unwrap_err();
    assert_eq!(code(&e), "invaladdress");
    let e = alpha
        .translate_with(&TranslateRequest {
            address: "+1 (206) 555-1212".into(),
            location: Some("nowhere".into()),
            ..TranslateRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), "invallocation");

    let mut office = Location::new("office", 1, "206");
    office.name = "Office".into();
    office.local_access = "9".into();
    let locs = Locations {
        current: "office".into(),
        locations: vec![office],
    };
    let now = alpha.set_locations(&locs).await.unwrap();
    assert_eq!(now, locs);
    assert_eq!(alpha.locations().await.unwrap(), locs);
    let t = alpha.translate("+1 (206) 555-1212").await.unwrap();
    assert!(t.results.iter().any(|r| r == "local"), "{t:?}");
    assert_eq!(t.dialable, "T95551212", "{t:?}");

    let card = CallingCard {
        id: "c1".into(),
        name: "Card".into(),
        pin: Some("1234".into()),
        rules: DialingRules {
            international: Some("0W1234HEFG".into()),
            ..DialingRules::default()
        },
        ..CallingCard::default()
    };
    let cards = alpha.set_cards(&[card]).await.unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].pin, None, "the PIN is write-only");
    assert_eq!(alpha.cards().await.unwrap(), cards);
    let bad = Locations {
        current: "missing".into(),
        locations: vec![Location::new("x", 1, "206")],
    };
    let e = alpha.set_locations(&bad).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    s.shutdown().await;
}

#[tokio::test]
async fn errors_carry_the_tapi_code() {
    let s = server().await;
    let (alpha, beta, mut ev_b) = two_apps(&s).await;

    // Wrong state: answering one's own outgoing call.
    let mut a = alpha.address("2001").create_call("2002").await.unwrap();
    let e = a.answer().await.unwrap_err();
    match &e {
        ClientError::Api {
            status,
            code,
            message,
            request,
        } => {
            assert_eq!((*status, code.as_str()), (409, "invalcallstate"));
            assert!(!message.is_empty());
            assert!(request.as_deref().unwrap().starts_with("req-"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("invalcallstate: "), "{e}");
    // Another app's call.
    let mut b = arriving(&mut ev_b, &beta, "2002").await;
    let mut foreign = alpha.call(b.id()).await.map(|_| ()).unwrap_err();
    assert_eq!(code(&foreign), "invalcallhandle");
    b.answer().await.unwrap();
    foreign = alpha
        .address("2002")
        .create_call("2001")
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        ["noprivilege", "notowner", "invaladdress", "invallinehandle"].contains(&code(&foreign)),
        "{foreign}"
    );

    // Tokens.
    let nobody = Client::new(base(&s), "wrong").unwrap();
    let e = nobody.lines().await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(401), "unauthorized"));
    let e = alpha.admin().lines().await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(403), "noprivilege"));
    let mut events = nobody.events(0);
    let first = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap();
    let e = first.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(401), "unauthorized"), "{e}");
    assert!(
        tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .is_none()
    );

    // Transport and arguments.
    let e = Client::new("ftp://example.invalid", "t").unwrap_err();
    assert!(matches!(e, ClientError::Invalid(_)), "{e}");
    let e = Client::new("not a url", "t").unwrap_err();
    assert!(matches!(e, ClientError::Invalid(_)), "{e}");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = Client::connect(format!("http://{closed}"), "t")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Http(_)), "{e:?}");
    let e = Client::builder("http://127.0.0.1:1")
        .root_certificate_pem("not pem")
        .build()
        .unwrap_err();
    assert!(matches!(e, ClientError::Invalid(_)), "{e}");
    s.shutdown().await;
}

/// A TCP relay in front of the server whose connections the test can cut,
/// and which can refuse new ones for a while.
struct Relay {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    open: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, watch) = tokio::sync::watch::channel(0u64);
        let open = Arc::new(AtomicBool::new(true));
        let active = Arc::new(AtomicUsize::new(0));
        let (open2, active2) = (open.clone(), active.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !open2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let mut watch = watch.clone();
                watch.mark_unchanged();
                let active = active2.clone();
                active.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = watch.changed() => {}
                        }
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Relay {
            addr,
            cut,
            open,
            active,
            task,
        }
    }

    /// Drop every connection open now and refuse new ones until
    /// [`Relay::reopen`]; returns once none is open.
    async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.active.load(Ordering::SeqCst) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "relay did not cut");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn event_stream_resumes_after_a_dropped_socket() {
    let s = server().await;
    let relay = Relay::start(s.http_addr).await;
    let alpha = client(&s, "tok-alpha").await;
    let beta = client(&s, "tok-beta").await;
    for mut l in alpha.lines().await.unwrap() {
        l.open(&[Privilege::Owner], &[]).await.unwrap();
    }
    for mut l in beta.lines().await.unwrap() {
        l.open(&[Privilege::Owner], &[]).await.unwrap();
    }
    let via_relay = Client::new(format!("http://{}", relay.addr), "tok-alpha").unwrap();
    let mut events = via_relay.events_with(
        0,
        EventsOptions {
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            // Refused attempts while the relay is shut must not exhaust it.
            max_retries: 100,
            ..EventsOptions::default()
        },
    );
    let mut ev_b = beta.events(0);
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let a_id = a.id().to_string();
    let connected_ev = until(&mut events, "connected", |e| {
        matches!(&e.kind, EventKind::CallState { state: CallState::Connected, call, .. } if *call == a_id)
    })
    .await;
    assert_eq!(events.connections(), 1);

    // Cut the socket, then make events while it is down.
    relay.cut().await;
    a.hold(true).await.unwrap();
    a.hold(false).await.unwrap();
    a.hold(true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    relay.reopen();
    let target = alpha.calls().await.unwrap().0;
    // Every event after the cut arrives once, in order, with no gap.
    let last_before = connected_ev.seq;
    assert!(last_before < target);
    let mut after = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while after.last() != Some(&target) {
        let e = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("events after the cut")
            .unwrap()
            .unwrap();
        after.push(e.seq);
    }
    let expected: Vec<u64> = (last_before + 1..=*after.last().unwrap()).collect();
    assert_eq!(after, expected, "no gap, no repeat across the reconnect");
    assert_eq!(events.connections(), 2, "the socket was reopened once");
    assert_eq!(events.last_seq(), *after.last().unwrap());
    s.shutdown().await;
}

#[tokio::test]
async fn a_stream_told_to_resync_takes_the_snapshot() {
    let s = server_with(|c| c.http.journal_capacity = 4).await;
    let alpha = client(&s, "tok-alpha").await;
    let beta = client(&s, "tok-beta").await;
    for mut l in alpha.lines().await.unwrap() {
        l.open(&[Privilege::Owner], &[]).await.unwrap();
    }
    for mut l in beta.lines().await.unwrap() {
        l.open(&[Privilege::Owner], &[]).await.unwrap();
    }
    let mut ev_b = beta.events(0);
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    for _ in 0..4 {
        a.hold(true).await.unwrap();
        a.hold(false).await.unwrap();
    }
    // Events from 1 fell out of a journal of 4: the stream resyncs.
    let mut events = alpha.events(1);
    let e = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match &e.kind {
        EventKind::Resync { calls, message } => {
            assert!(!message.is_empty());
            assert!(calls.iter().any(|c| c.id == a.id()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.event_type, "stream.resync");
    let snapshot_seq = e.seq;
    a.hold(true).await.unwrap();
    let next = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.seq, snapshot_seq + 1, "{next:?}");
    s.shutdown().await;
}

#[tokio::test]
async fn operator_endpoints() {
    use tapir_client::{AdminApp, AdminLine, AdminTrunk, CdrQuery};
    let s = server().await;
    let admin = client(&s, "admin-secret").await.admin();

    // Lines: list, add, show, change, refuse a duplicate, delete.
    let lines = admin.lines().await.unwrap();
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .any(|l| l.address == "2002" && l.pickup_group.as_deref() == Some("sales"))
    );
    let added = admin
        .add_line(&AdminLine {
            address: "2005".into(),
            kind: Some("routepoint".into()),
            name: Some("Queue E".into()),
            ..AdminLine::default()
        })
        .await
        .unwrap();
    assert_eq!(added.name.as_deref(), Some("Queue E"));
    let mut l = admin.line("2005").await.unwrap();
    assert_eq!(l.kind.as_deref(), Some("routepoint"));
    l.name = Some("Queue Five".into());
    assert_eq!(
        admin.set_line(&l).await.unwrap().name.as_deref(),
        Some("Queue Five")
    );
    let e = admin.add_line(&l).await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(409), "invalparam"), "{e}");
    let phone = admin
        .add_line(&AdminLine {
            address: "1009".into(),
            kind: Some("phone".into()),
            password: Some("pw".into()),
            ..AdminLine::default()
        })
        .await
        .unwrap();
    assert!(phone.has_password);
    assert_eq!(phone.password, None, "passwords are write-only");

    // Apps: a generated token works at once; deleting the app revokes it.
    let app = admin
        .add_app(&AdminApp {
            name: "gamma".into(),
            lines: vec!["2005".into()],
            ..AdminApp::default()
        })
        .await
        .unwrap();
    let token = app.token.clone().expect("a generated token, shown once");
    assert_eq!(admin.app("gamma").await.unwrap().token, None);
    let gamma = client(&s, &token).await;
    let gl = gamma.lines().await.unwrap();
    assert_eq!(gl.len(), 1);
    assert_eq!(gl[0].address(), "2005");
    let mut a = admin.app("gamma").await.unwrap();
    a.priority = 3;
    assert_eq!(admin.set_app(&a).await.unwrap().priority, 3);
    assert!(
        admin
            .apps()
            .await
            .unwrap()
            .iter()
            .any(|a| a.name == "gamma")
    );
    admin.delete_app("gamma").await.unwrap();
    let e = gamma.lines().await.unwrap_err();
    assert_eq!(code(&e), "unauthorized");
    admin.delete_line("2005").await.unwrap();
    let e = admin.line("2005").await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(404), "invallinehandle"));

    // Trunks.
    let t = admin
        .add_trunk(&AdminTrunk {
            name: "carrier".into(),
            host: "127.0.0.1".into(),
            port: Some(5080),
            transport: Some("tcp".into()),
            password: Some("secret".into()),
            prefix: Some("9".into()),
            ..AdminTrunk::default()
        })
        .await
        .unwrap();
    assert_eq!((t.port, t.transport.as_deref()), (Some(5080), Some("tcp")));
    assert!(t.has_password);
    let mut t = admin.trunk("carrier").await.unwrap();
    t.port = Some(5090);
    assert_eq!(admin.set_trunk(&t).await.unwrap().port, Some(5090));
    assert_eq!(admin.trunks().await.unwrap().len(), 1);
    admin.delete_trunk("carrier").await.unwrap();
    assert!(admin.trunks().await.unwrap().is_empty());

    // Pickup groups.
    let groups = admin.pickup_groups().await.unwrap();
    let sales = groups.iter().find(|g| g.name == "sales").unwrap();
    assert_eq!(sales.members, ["2002", "2004"]);
    let g = admin
        .set_pickup_group("support", &["2001".into(), "2003".into()])
        .await
        .unwrap();
    assert_eq!(g.members, ["2001", "2003"]);
    assert_eq!(
        admin.line("2001").await.unwrap().pickup_group.as_deref(),
        Some("support")
    );
    admin.delete_pickup_group("support").await.unwrap();
    assert!(
        !admin
            .pickup_groups()
            .await
            .unwrap()
            .iter()
            .any(|g| g.name == "support")
    );

    // Park, with a call parked.
    let (alpha, beta, mut ev_b) = two_apps(&s).await;
    let (mut a, _b) = connected(&alpha, &beta, &mut ev_b, "2002").await;
    let slot = a.park(None).await.unwrap();
    let park = admin.park().await.unwrap();
    assert_eq!(park.slots, "7001-7005");
    assert_eq!(park.parked[0].slot, slot);
    let park = admin.set_park("7001-7010", Some(60_000)).await.unwrap();
    assert_eq!(
        (park.slots.as_str(), park.reminder_ms),
        ("7001-7010", Some(60_000))
    );
    let e = admin.set_park("7010-7001", None).await.unwrap_err();
    assert_eq!((e.status(), code(&e)), (Some(400), "invalparam"));

    // Call detail records: a call made and ended.
    // (A record is written when every call of it is idle.)
    let mut c = alpha.address("2003").create_call("2004").await.unwrap();
    let mut at = arriving(&mut ev_b, &beta, "2004").await;
    at.answer().await.unwrap();
    c.hold(true).await.unwrap();
    c.drop().await.unwrap();
    at.drop().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let cdrs = loop {
        let cdrs = admin
            .cdrs(&CdrQuery {
                limit: Some(10),
                address: Some("2003".into()),
                ..CdrQuery::default()
            })
            .await
            .unwrap();
        if !cdrs.is_empty() {
            break cdrs;
        }
        assert!(tokio::time::Instant::now() < deadline, "no CDR for 2003");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cdr = admin.cdr(&cdrs[0].id).await.unwrap();
    assert_eq!(cdr, cdrs[0]);
    assert!(cdr.parties.iter().any(|p| p.address == "2003"), "{cdr:?}");
    assert!(cdr.parties.iter().any(|p| p.address == "2004"), "{cdr:?}");
    assert!(cdr.answered_at.is_some(), "{cdr:?}");
    assert!(
        cdr.operations
            .iter()
            .any(|o| o.op == "hold" && o.result == "ok"),
        "{cdr:?}"
    );
    let e = admin.cdr("cdr-999999").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    s.shutdown().await;
}
