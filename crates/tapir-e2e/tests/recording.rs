//! Call recording (`POST /v1/calls/{call}/record`, `/v1/recordings`) end
//! to end with pjsua2 phones: each phone plays its own tone, and the WAV
//! file the app downloads holds each party's tone on its channel (stereo:
//! channel 1 what the call's address hears, channel 2 what it says), both
//! in a mixed one, every party of a conference, and a call that ends while
//! it is recorded leaves a valid file. Checked with a Goertzel filter.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::json;
use std::time::Duration;
use tapir_client::{CallState, Client, RecordAction, RecordChannels, Recording};
use tapir_e2e::wav::Recording as Heard;
use tapir_e2e::{Tapir, consult_answered, error_code, make_answered_call};
use tokio::time::Instant;

/// The channels of a WAV file tapir wrote (8 kHz PCM16), after checking
/// its header names the whole file; the second half of each.
fn channels(wav: &[u8], want: u16) -> Vec<Heard> {
    let u32_at = |at: usize| u32::from_le_bytes([wav[at], wav[at + 1], wav[at + 2], wav[at + 3]]);
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), want, "channels");
    assert_eq!(u32_at(24), 8000);
    assert_eq!(u32_at(40) as usize, wav.len() - 44, "data length");
    assert_eq!(u32_at(4) as usize, wav.len() - 8, "RIFF length");
    let n = usize::from(want);
    let mut out = vec![Vec::new(); n];
    for (i, s) in wav[44..].chunks_exact(2).enumerate() {
        out[i % n].push(i16::from_le_bytes([s[0], s[1]]));
    }
    out.into_iter()
        .map(|c| Heard {
            rate: 8000,
            samples: c[c.len() / 2..].to_vec(),
        })
        .collect()
}

/// The recording once `pred` holds (bounded).
async fn recording_when(app: &Client, id: &str, pred: impl Fn(&Recording) -> bool) -> Recording {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.recording(id).await.unwrap();
        if pred(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "recording never got there: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_holds_each_partys_tone_on_its_channel() {
    let tapir = Tapir::start().await;
    let (app, _ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;
    let mut call = make_answered_call(&app, &mut a, &mut b).await;
    a.send(json!({"cmd": "tone", "hz": 600})).await;
    b.send(json!({"cmd": "tone", "hz": 1000})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Stereo: the call is 1001's: channel 1 is what 1001 hears (1002's
    // 1000 Hz), channel 2 what it says (600 Hz).
    let id = call.record(RecordAction::Start, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(call.record(RecordAction::Stop, None).await.unwrap(), id);
    let meta = app.recording(&id).await.unwrap();
    assert_eq!(
        (meta.state.as_str(), meta.channels.as_str()),
        ("stopped", "stereo")
    );
    assert!(meta.duration_ms >= 1500, "{meta:?}");
    let wav = app.recording_audio(&id).await.unwrap();
    assert_eq!(meta.size, wav.len() as u64);
    let ch = channels(&wav, 2);
    assert!(
        ch[0].hears(1000) && !ch[0].hears(600),
        "channel 1 is what 1001 hears (1002's 1000 Hz): {:?}",
        ch[0].levels(&[600, 1000])
    );
    assert!(
        ch[1].hears(600) && !ch[1].hears(1000),
        "channel 2 is what 1001 says (600 Hz): {:?}",
        ch[1].levels(&[600, 1000])
    );

    // Mixed: both in one channel.
    let mixed = call
        .record(RecordAction::Start, Some(RecordChannels::Mixed))
        .await
        .unwrap();
    assert_ne!(mixed, id);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    call.record(RecordAction::Stop, None).await.unwrap();
    let ch = channels(&app.recording_audio(&mixed).await.unwrap(), 1);
    assert!(
        ch[0].hears(600) && ch[0].hears(1000),
        "mixed holds both parties: {:?}",
        ch[0].levels(&[600, 1000])
    );

    // The call ends while it is recorded: the recording ends with it, and
    // its file is valid and as long as its metadata says.
    let last = call.record(RecordAction::Start, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.send(json!({"cmd": "hangup"})).await;
    let meta = recording_when(&app, &last, |r| r.state == "stopped").await;
    assert_eq!(meta.end_reason.as_deref(), Some("call_ended"), "{meta:?}");
    let wav = app.recording_audio(&last).await.unwrap();
    assert_eq!(meta.size, wav.len() as u64);
    let ch = channels(&wav, 2);
    assert!(ch[0].energy() > 0.0 || ch[1].energy() > 0.0, "audio kept");
    let (code, message) = error_code(call.record(RecordAction::Start, None).await);
    assert!(
        code == "invalcallstate" || code == "invalcallhandle",
        "{code}: {message}"
    );
    let _ = call.refresh().await;

    // Every recording is listed; deleting removes it.
    let all: Vec<String> = app
        .recordings()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    for r in [&id, &mixed, &last] {
        assert!(all.contains(r), "{r} in {all:?}");
    }
    app.delete_recording(&id).await.unwrap();
    let (code, _) = error_code(app.recording(&id).await);
    assert_eq!(code, "invalparam");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_recording_holds_every_party() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c] = tapir.phones(["1001", "1002", "1003"]).await;
    let call = make_answered_call(&app, &mut a, &mut b).await;
    let mut call = app.call(call.id()).await.unwrap();
    let conf = call.setup_conference(None).await.unwrap();
    let (mut conference, mut consult) = (conf.conference, conf.consult);
    consult_answered(&app, &mut consult, &mut a, &mut c).await;
    conference.add(&consult).await.unwrap();
    ev.state(conference.id(), CallState::Connected).await;
    b.send(json!({"cmd": "play", "hz": 600})).await;
    c.send(json!({"cmd": "play", "hz": 800})).await;
    a.send(json!({"cmd": "play", "hz": 1400})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let id = conference
        .record(RecordAction::Start, Some(RecordChannels::Mixed))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    conference.record(RecordAction::Stop, None).await.unwrap();
    let ch = channels(&app.recording_audio(&id).await.unwrap(), 1);
    assert!(
        [600, 800, 1400].iter().all(|&f| ch[0].hears(f)),
        "the conference's recording holds every party: {:?}",
        ch[0].levels(&[600, 800, 1400])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_points_recording_ends_when_it_transfers_the_caller_to_an_agent() {
    // An IVR on a route point records its caller, then blind-transfers it
    // to an agent's phone: the caller's leg lives on in the new call, but
    // the route point's call is over, and so is its recording (it must not
    // go on recording the caller with the agent).
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut agent] = tapir.phones(["1002", "1003"]).await;
    a.dial(tapir_e2e::ROUTE_POINT).await;
    let at_rp = ev.new_call_at(tapir_e2e::ROUTE_POINT).await;
    ev.state(&at_rp, CallState::Offering).await;
    let mut call = app.call(&at_rp).await.unwrap();
    call.answer().await.unwrap();
    a.call_state("CONFIRMED").await;
    ev.state(&at_rp, CallState::Connected).await;
    let id = call.record(RecordAction::Start, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    call.blind_transfer(&agent.address).await.unwrap();
    agent.ring_and_answer().await;
    let meta = recording_when(&app, &id, |r| r.state == "stopped").await;
    assert_eq!(meta.end_reason.as_deref(), Some("call_ended"), "{meta:?}");
    assert!(meta.duration_ms < 8000, "{meta:?}");
}
