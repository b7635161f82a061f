//! Route points as an IVR: tapir terminates a call at a route point, its app
//! answers, plays prompts to the caller (`call.media` when one ends), hears
//! the caller's digits on the route point's own call, then redirects or
//! transfers the caller. Refused requests leave the switch unchanged.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use support::{CONNECTED, Office, office};
use tapir_core::{
    AppId, CallId, CallState, Effect, ErrorCode, EventBody, LegEvent, LegId, MediaKind,
    MediaPlayState, MediaSource, OfferingMode,
};

/// 1001 calls route point 2000 and `crm` answers: (caller's call, route
/// point call, caller's leg).
fn answered(o: &mut Office) -> (CallId, CallId, LegId) {
    let crm = o.crm;
    let (a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.expect(a, CONNECTED);
    let leg = o.sim.switch.leg_of(a).unwrap();
    o.clear();
    (a, b, leg)
}

/// What the switch last told the media plane `leg` hears, since the last clear.
fn heard(o: &Office, leg: LegId) -> Option<MediaSource> {
    o.effects().iter().rev().find_map(|e| match e {
        Effect::Media { leg: l, source } if *l == leg => Some(source.clone()),
        _ => None,
    })
}

fn digits_heard(o: &Office, app: AppId) -> Vec<(CallId, String)> {
    o.sim
        .events_for(app)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::DigitsReceived { call, digits } => Some((*call, digits.clone())),
            _ => None,
        })
        .collect()
}

fn media_events(o: &Office, app: AppId) -> Vec<(CallId, MediaPlayState, String)> {
    o.sim
        .events_for(app)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::CallMedia {
                call,
                media: MediaKind::Prompt,
                state,
                prompt,
            } => Some((*call, *state, prompt.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_callers_digits_reach_the_route_point_call_once_answered() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "2000");
    o.clear();
    // While the route point only offers, the caller's digits are its own.
    o.sim.phone("1001").report(LegEvent::Digits("5".into()));
    assert_eq!(digits_heard(&o, crm), vec![(a, "5".to_string())]);
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.clear();
    o.sim.phone("1001").report(LegEvent::Digits("1#".into()));
    // The caller's call as before, and the route point call it talks to.
    let crm_heard = digits_heard(&o, crm);
    assert!(crm_heard.contains(&(a, "1#".to_string())), "{crm_heard:?}");
    assert!(crm_heard.contains(&(b, "1#".to_string())), "{crm_heard:?}");
    assert!(digits_heard(&o, mon).contains(&(b, "1#".to_string())));
    // Digits change nothing about the calls.
    o.expect(a, CONNECTED);
    o.expect(b, CONNECTED);
    o.consistent();
}

#[test]
fn digits_do_not_reach_a_route_point_call_that_held_its_caller() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, _) = answered(&mut o);
    o.ok(crm, |s, now| s.hold(now, crm, b));
    o.clear();
    o.sim.phone("1001").report(LegEvent::Digits("7".into()));
    assert_eq!(digits_heard(&o, crm), vec![(a, "7".to_string())]);
}

#[test]
fn a_prompt_plays_to_the_caller_and_reports_its_end() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, leg) = answered(&mut o);
    // Answered, the caller hears the route point's (silent) bridge.
    o.ok(crm, |s, now| s.play_prompt(now, crm, b, "welcome", false));
    let Some(MediaSource::Prompt(p)) = heard(&o, leg) else {
        panic!("the caller hears the prompt: {:?}", o.effects());
    };
    assert_eq!(&*p.name, "welcome");
    assert!(!p.looping);
    assert_eq!(o.sim.switch.prompt_of(b), Some(&p));
    // Nothing about the calls' states changes.
    o.expect(a, CONNECTED);
    o.expect(b, CONNECTED);
    assert!(media_events(&o, crm).is_empty());
    o.clear();
    // A report of some other playing is ignored.
    o.sim
        .phone("1001")
        .report_on(leg, LegEvent::PromptDone(p.play + 1000));
    assert!(media_events(&o, crm).is_empty());
    assert!(o.effects().is_empty());
    // The media plane reports the end: back to the bridge, apps told.
    o.sim
        .phone("1001")
        .report_on(leg, LegEvent::PromptDone(p.play));
    let done = vec![(b, MediaPlayState::Done, "welcome".to_string())];
    assert_eq!(media_events(&o, crm), done);
    assert_eq!(media_events(&o, mon), done);
    assert!(matches!(heard(&o, leg), Some(MediaSource::Bridge(_))));
    assert_eq!(o.sim.switch.prompt_of(b), None);
    // A second report of the same end changes nothing.
    o.clear();
    o.sim
        .phone("1001")
        .report_on(leg, LegEvent::PromptDone(p.play));
    assert!(o.sim.events.is_empty());
    assert!(o.effects().is_empty());
    o.consistent();
}

#[test]
fn a_looping_prompt_plays_until_stopped() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, leg) = answered(&mut o);
    o.ok(crm, |s, now| {
        s.play_prompt(now, crm, b, "queue-music", true)
    });
    let Some(MediaSource::Prompt(p)) = heard(&o, leg) else {
        panic!("the caller hears the prompt");
    };
    assert!(p.looping);
    o.clear();
    // A looping prompt has no end; a stray report does not stop it.
    o.sim
        .phone("1001")
        .report_on(leg, LegEvent::PromptDone(p.play));
    assert!(o.sim.events.is_empty());
    assert_eq!(o.sim.switch.prompt_of(b), Some(&p));
    o.ok(crm, |s, now| s.stop_media(now, crm, b));
    assert_eq!(
        media_events(&o, crm),
        vec![(b, MediaPlayState::Stopped, "queue-music".to_string())]
    );
    assert!(matches!(heard(&o, leg), Some(MediaSource::Bridge(_))));
    // Stopping with nothing playing succeeds and says nothing.
    o.ok(crm, |s, now| s.stop_media(now, crm, b));
    assert!(media_events(&o, crm).is_empty());
    assert!(o.effects().is_empty());
}

#[test]
fn a_new_prompt_replaces_the_one_playing() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, leg) = answered(&mut o);
    o.ok(crm, |s, now| s.play_prompt(now, crm, b, "first", false));
    let first = o.sim.switch.prompt_of(b).cloned().unwrap();
    o.ok(crm, |s, now| s.play_prompt(now, crm, b, "second", false));
    assert_eq!(
        media_events(&o, crm),
        vec![(b, MediaPlayState::Stopped, "first".to_string())]
    );
    let Some(MediaSource::Prompt(p)) = heard(&o, leg) else {
        panic!("the caller hears the second prompt");
    };
    assert_eq!(&*p.name, "second");
    assert_ne!(p.play, first.play);
    // The first playing's late end report is not the second's.
    o.clear();
    o.sim
        .phone("1001")
        .report_on(leg, LegEvent::PromptDone(first.play));
    assert!(o.sim.events.is_empty());
    assert_eq!(o.sim.switch.prompt_of(b), Some(&p));
}

#[test]
fn hold_music_wins_over_a_prompt_and_the_prompt_resumes() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, leg) = answered(&mut o);
    o.ok(crm, |s, now| s.play_prompt(now, crm, b, "welcome", false));
    o.ok(crm, |s, now| s.hold(now, crm, b));
    assert_eq!(
        heard(&o, leg),
        Some(MediaSource::Tone(tapir_core::Tone::HoldMusic))
    );
    o.ok(crm, |s, now| s.unhold(now, crm, b));
    assert!(matches!(heard(&o, leg), Some(MediaSource::Prompt(_))));
}

#[test]
fn after_the_prompt_and_a_digit_the_app_redirects_the_caller() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, leg) = answered(&mut o);
    o.ok(crm, |s, now| s.play_prompt(now, crm, b, "menu", false));
    o.sim.phone("1001").report(LegEvent::Digits("1".into()));
    assert!(digits_heard(&o, crm).contains(&(b, "1".to_string())));
    // Blind transfer away while the prompt still plays.
    o.ok(crm, |s, now| s.blind_transfer(now, crm, b, "1002"));
    o.expect(b, CallState::Idle);
    let c = o.only_call_at("1002");
    o.expect(c, CallState::Offering(OfferingMode::Active));
    // The caller no longer hears the prompt: ringback while 1002 rings.
    assert_eq!(
        heard(&o, leg),
        Some(MediaSource::Tone(tapir_core::Tone::Ringback))
    );
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
    assert_eq!(o.bridge(a), o.bridge(c));
    o.consistent();
}

#[test]
fn play_and_stop_preconditions_change_nothing() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "2000");
    // The route point has not answered yet.
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.play_prompt(now, crm, b, "welcome", false)
    });
    o.ok(crm, |s, now| s.answer(now, crm, b));
    // A monitor may not play; an unknown handle is refused.
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.play_prompt(now, mon, b, "welcome", false)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| s.stop_media(now, mon, b));
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.play_prompt(now, crm, CallId(999_999), "welcome", false)
    });
    // The caller's own call is a phone's: tapir does not terminate it.
    o.rejected(crm, ErrorCode::OperationUnavail, |s, now| {
        s.play_prompt(now, crm, a, "welcome", false)
    });
    o.rejected(crm, ErrorCode::OperationUnavail, |s, now| {
        s.stop_media(now, crm, a)
    });
    // Names that are not prompt names.
    for bad in ["", "../secret", "a b", "x.wav", &"n".repeat(65)] {
        o.rejected(crm, ErrorCode::InvalParam, |s, now| {
            s.play_prompt(now, crm, b, bad, false)
        });
    }
    // A route point calling out: nobody hears it until the far end answers.
    let z = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.play_prompt(now, crm, z, "welcome", false)
    });
    o.consistent();
}

#[test]
fn a_route_point_plays_to_the_phone_it_called() {
    let mut o = office();
    let crm = o.crm;
    let z = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    o.sim.phone("1002").answer();
    o.expect(z, CONNECTED);
    let c = o.only_call_at("1002");
    let leg = o.sim.switch.leg_of(c).unwrap();
    o.ok(crm, |s, now| s.play_prompt(now, crm, z, "beep", false));
    assert!(matches!(heard(&o, leg), Some(MediaSource::Prompt(_))));
    o.sim.phone("1002").report(LegEvent::Digits("9".into()));
    assert!(digits_heard(&o, crm).contains(&(z, "9".to_string())));
}
