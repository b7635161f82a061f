//! setup conference (`lineSetupConference`), add (`lineAddToConference`),
//! prepare add (`linePrepareAddToConference`), remove
//! (`lineRemoveFromConference`), related calls (`lineGetConfRelatedCalls`)
//! and finish as conference (`Finish(FM_ASCONFERENCE)`, `lineCompleteTransfer`
//! conference mode) end to end: tapir mixes, each party hears the others.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::{CallState, TransferMode};
use tapir_e2e::{
    Tapir, assert_hear_each_other, consult_answered, listen, make_answered_call, wait_call_state,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_grows_to_four_and_shrinks_by_removal() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c, mut d] = tapir.phones(["1001", "1002", "1003", "1004"]).await;
    let mut call = make_answered_call(&app, &mut a, &mut b).await;

    let conf = call.setup_conference(None).await.unwrap();
    let (mut conference, mut consult) = (conf.conference, conf.consult);
    assert_eq!(conference.state(), CallState::OnHoldPendConf);
    assert_eq!(consult.state(), CallState::Dialtone);
    ev.state(call.id(), CallState::Conferenced).await;
    // The controller's phone is brought off hook for the consultation call.
    consult_answered(&app, &mut consult, &mut a, &mut c).await;
    conference.add(&consult).await.unwrap();
    ev.state(consult.id(), CallState::Conferenced).await;
    ev.state(conference.id(), CallState::Connected).await;

    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "three").await;

    // A fourth party: prepare-add, dial, add.
    let mut consult2 = conference.prepare_add().await.unwrap();
    ev.state(conference.id(), CallState::OnHoldPendConf).await;
    consult_answered(&app, &mut consult2, &mut a, &mut d).await;
    conference.add(&consult2).await.unwrap();
    ev.state(consult2.id(), CallState::Conferenced).await;
    d.tone(1400);
    let heard = listen(&mut [&mut b, &mut c, &mut d], tapir.dir(), "four").await;
    for (i, (me, others)) in [(600, [800, 1400]), (800, [600, 1400]), (1400, [600, 800])]
        .into_iter()
        .enumerate()
    {
        let levels = heard[i].levels(&[600, 800, 1400]);
        assert!(
            others.iter().all(|&f| heard[i].hears(f)) && !heard[i].hears(me),
            "party {i} hears the two others and not itself: {levels:?}"
        );
    }

    // lineGetConfRelatedCalls: the conference call first, then its members.
    let related = conference.related().await.unwrap();
    assert_eq!(related[0], conference.id());
    for member in [call.id(), consult.id(), consult2.id()] {
        assert!(
            related.iter().any(|r| r == member),
            "{member} in {related:?}"
        );
    }
    assert_eq!(related.len(), 4, "{related:?}");

    // Remove 1003: its phone gets a BYE, the others go on.
    consult.remove_from_conference().await.unwrap();
    c.call_state("DISCONNECTED").await;
    ev.state(consult.id(), CallState::Idle).await;
    let heard = listen(&mut [&mut b, &mut d], tapir.dir(), "after-removal").await;
    assert!(
        heard[0].hears(1400) && !heard[0].hears(800),
        "{:?}",
        heard[0].levels(&[800, 1400])
    );
    assert!(
        heard[1].hears(600) && !heard[1].hears(800),
        "{:?}",
        heard[1].levels(&[600, 800])
    );
    b.expect_no_event("a BYE at 1002", Duration::from_millis(200), |e| {
        e["event"] == "call" && e["state"] == "DISCONNECTED"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_as_conference_mixes_three_and_removal_collapses_it() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c] = tapir.phones(["1001", "1002", "1003"]).await;
    let mut call = make_answered_call(&app, &mut a, &mut b).await;
    let mut consult = call.setup_transfer().await.unwrap();
    consult_answered(&app, &mut consult, &mut a, &mut c).await;

    let conference = consult
        .finish(TransferMode::Conference)
        .await
        .unwrap()
        .expect("finish as conference answers the conference call");
    ev.state(conference.id(), CallState::Connected).await;
    ev.state(call.id(), CallState::Conferenced).await;
    ev.state(consult.id(), CallState::Conferenced).await;
    b.media("active").await;
    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "mixed").await;

    // Removing 1002 leaves one member: the conference collapses into the
    // two-party call between 1001 and 1003.
    call.remove_from_conference().await.unwrap();
    b.call_state("DISCONNECTED").await;
    ev.state(conference.id(), CallState::Idle).await;
    let info = wait_call_state(&app, consult.id(), CallState::Connected).await;
    assert_eq!(info.connected.unwrap().address, "1003");
    c.expect_no_event("a BYE at 1003", Duration::from_millis(300), |e| {
        e["event"] == "call" && e["state"] == "DISCONNECTED"
    })
    .await;
}

/// TAPI 3 through the client: `ITBasicCallControl::Conference` sets up the
/// conference and dials the consultation call, leaving the addition
/// pending ("Finish ... FM_ASCONFERENCE" adds it), and `Finish` on the
/// consultation call joins the three parties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tapi3_conference_stays_pending_until_finish_as_conference() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c] = tapir.phones(["1001", "1002", "1003"]).await;
    let mut call = make_answered_call(&app, &mut a, &mut b).await;

    let mut consult = call.conference("1003").await.unwrap();
    // The controller's phone is brought off hook for the consultation
    // call, which rings 1003; its user answers.
    a.rings().await;
    c.ring_and_answer().await;
    wait_call_state(&app, consult.id(), CallState::Connected).await;
    // Pending: 1002's call is a member, the consultation call not yet.
    assert_eq!(call.state(), CallState::Conferenced);
    let conference = call.related().await.unwrap()[0].clone();
    assert_ne!(&conference, call.id());
    let pending = app
        .call(&conference)
        .await
        .unwrap()
        .related()
        .await
        .unwrap();
    assert!(
        !pending.iter().any(|r| r == consult.id()),
        "{} is not in the conference before Finish: {pending:?}",
        consult.id()
    );

    assert!(
        consult
            .finish(TransferMode::Conference)
            .await
            .unwrap()
            .is_none(),
        "Finish on a conference's consultation call answers no new call"
    );
    ev.state(consult.id(), CallState::Conferenced).await;
    let related = app
        .call(&conference)
        .await
        .unwrap()
        .related()
        .await
        .unwrap();
    assert_eq!(related[0], conference, "the conference call first");
    for member in [call.id(), consult.id()] {
        assert!(
            related.iter().any(|r| r == member),
            "{member} in {related:?}"
        );
    }
    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "tapi3-conference").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_transfer_in_conference_mode_makes_a_three_way_call() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c] = tapir.phones(["1001", "1002", "1003"]).await;
    let mut call = make_answered_call(&app, &mut a, &mut b).await;
    let mut consult = call.setup_transfer().await.unwrap();
    consult_answered(&app, &mut consult, &mut a, &mut c).await;

    let conference = call
        .complete_transfer(&consult, TransferMode::Conference)
        .await
        .unwrap()
        .expect("conference mode answers the conference call");
    ev.state(conference.id(), CallState::Connected).await;
    ev.state(call.id(), CallState::Conferenced).await;
    ev.state(consult.id(), CallState::Conferenced).await;
    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "mixed").await;
    // Dropping the conference call ends every member and every party.
    app.call(conference.id())
        .await
        .unwrap()
        .drop()
        .await
        .unwrap();
    b.call_state("DISCONNECTED").await;
    c.call_state("DISCONNECTED").await;
    ev.state(call.id(), CallState::Idle).await;
    ev.state(consult.id(), CallState::Idle).await;
}
