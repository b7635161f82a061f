//! Every [`Command`] names itself: its TAPI name and the short label of the
//! call detail records and metrics, each distinct across the operations.

use tapir_core::{
    CallId, Command, CompletionId, CompletionMode, HandoffTarget, ParkMode, PickupTarget,
    Privilege, TransferMode,
};

fn every_command() -> Vec<Command> {
    let c = CallId(1);
    let x = CallId(2);
    vec![
        Command::MakeCall {
            from: "1001".into(),
            to: None,
        },
        Command::Answer(c),
        Command::Accept(c),
        Command::Dial(c, "1".into()),
        Command::Drop(c),
        Command::Deallocate(c),
        Command::Hold(c),
        Command::Unhold(c),
        Command::SwapHold(c, x),
        Command::BlindTransfer(c, "1002".into()),
        Command::SetupTransfer(c),
        Command::CompleteTransfer(c, x, TransferMode::Transfer),
        Command::Finish(x, TransferMode::Transfer),
        Command::SetupConference(c, None),
        Command::PrepareAddToConference(c),
        Command::AddToConference(c, x),
        Command::RemoveFromConference(c),
        Command::ConfRelatedCalls(c),
        Command::Redirect(c, "1002".into()),
        Command::Park(c, ParkMode::NonDirected),
        Command::Unpark("1001".into(), "7001".into()),
        Command::Pickup("1001".into(), PickupTarget::Address("1002".into())),
        Command::Forward("1001".into(), Vec::new(), None),
        Command::CompleteCall(c, CompletionMode::Callback, None),
        Command::UncompleteCall(CompletionId(3)),
        Command::SecureCall(c),
        Command::Handoff(c, HandoffTarget::App("ivr".into())),
        Command::GenerateDigits(c, "1".into()),
        Command::SetCallPrivilege(c, Privilege::Monitor),
        Command::PlayPrompt(c, "welcome".into(), false),
        Command::StopMedia(c),
    ]
}

#[test]
fn commands_know_their_tapi_names() {
    let named = |cmd: Command| cmd.tapi_name();
    assert_eq!(
        named(Command::MakeCall {
            from: "1001".into(),
            to: Some("1002".into())
        }),
        "lineMakeCall"
    );
    assert_eq!(named(Command::Deallocate(CallId(1))), "lineDeallocateCall");
    assert_eq!(
        named(Command::ConfRelatedCalls(CallId(1))),
        "lineGetConfRelatedCalls"
    );
    assert_eq!(
        named(Command::Finish(CallId(1), TransferMode::Conference)),
        "Finish"
    );
    // Labels are what the CDRs and `tapir_operations_total` already show.
    assert_eq!(
        Command::MakeCall {
            from: "1001".into(),
            to: None
        }
        .label(),
        "makecall"
    );
    assert_eq!(Command::Deallocate(CallId(1)).label(), "deallocate");
    assert_eq!(
        Command::PlayPrompt(CallId(1), "p".into(), true).label(),
        "play"
    );
    // lineForward with bAllAddresses TRUE is still lineForward.
    let all_addresses = Command::ForwardLine(tapir_core::LineId(1), Vec::new(), None);
    assert_eq!(all_addresses.tapi_name(), "lineForward");
    assert_eq!(all_addresses.label(), "forward");
}

#[test]
fn no_two_operations_share_a_name_or_a_label() {
    let all = every_command();
    let mut names: Vec<_> = all.iter().map(Command::tapi_name).collect();
    let mut labels: Vec<_> = all.iter().map(Command::label).collect();
    names.sort_unstable();
    names.dedup();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(names.len(), all.len(), "{names:?}");
    assert_eq!(labels.len(), all.len(), "{labels:?}");
    for c in &all {
        let (name, label) = (c.tapi_name(), c.label());
        assert!(
            name.starts_with("line") || name.chars().next().is_some_and(char::is_uppercase),
            "{name}"
        );
        assert!(label.chars().all(|ch| ch.is_ascii_lowercase()), "{label}");
    }
}
