//! Property tests: the codec never panics on arbitrary or mutated input,
//! every typed accessor is total, and parse → serialise → parse is stable.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use tapir_sip::msg::{
    HeaderName, Limits, Message, StreamFramer, check_request, disposition_for, frame_stream,
    stateless_rejection,
};

fn torture_files() -> Vec<Vec<u8>> {
    let index = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/torture/index.tsv"
    ))
    .unwrap();
    index
        .lines()
        .skip(1)
        .filter_map(|row| row.split('\t').next())
        .map(|file| {
            std::fs::read(format!(
                "{}/tests/torture/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        })
        .collect()
}

/// Calls every accessor; none may panic whatever the message holds.
fn exercise(message: &Message) {
    let _ = message.request_uri();
    let _ = message.vias();
    let _ = message
        .top_via()
        .map(|via| via.map(|v| (v.branch(), v.received(), v.rport())));
    let _ = message
        .from_header()
        .map(|f| f.map(|f| (f.tag(), f.display_name_unquoted())));
    let _ = message.to_header();
    let _ = message.call_id();
    let _ = message.cseq();
    let _ = message.max_forwards();
    let _ = message.contacts();
    let _ = message.routes();
    let _ = message.record_routes();
    let _ = message.content_type();
    let _ = message.accept();
    let _ = message.expires();
    for name in [
        HeaderName::Authorization,
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
        HeaderName::ProxyAuthorization,
    ] {
        if let Ok(headers) = message.auth_headers(&name) {
            for header in headers {
                let _ = header.params();
                let _ = header.param("realm");
            }
        }
    }
    let _ = message.refer_to();
    let _ = message.replaces();
    let _ = message.event();
    let _ = message.option_tags(&HeaderName::Require);
    let _ = check_request(message);
    let _ = message
        .response_builder(200, None, Some("t"))
        .build()
        .to_bytes();
}

fn parse_everything(bytes: &[u8]) {
    let datagram = Bytes::copy_from_slice(bytes);
    match Message::parse_datagram(datagram.clone()) {
        Ok(message) => {
            exercise(&message);
            let written = message.to_bytes();
            assert_eq!(written.len(), message.encoded_len());
            let reparsed =
                Message::parse_datagram(written.clone()).expect("serialised message parses again");
            assert_eq!(reparsed.to_bytes(), written, "serialisation is stable");
        }
        Err(error) => {
            let _ = disposition_for(&datagram, &error);
            if let Some(answer) = stateless_rejection(&datagram, &error, "t") {
                // Copied fields may be the malformed ones; writing must still work.
                assert!(answer.status_code().is_some_and(|code| code >= 400));
                let _ = answer.to_bytes();
            }
            let _ = error.to_string();
        }
    }
    let _ = frame_stream(bytes, &Limits::default());
    let mut framer = StreamFramer::default();
    framer.push(bytes);
    for _ in 0..4 {
        match framer.next_message() {
            Ok(Some(message)) => exercise(&message),
            _ => break,
        }
    }
}

/// One edit applied to a torture message.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        b'\r', b'\n', b' ', b'\t', b':', b';', b',', b'<', b'>', b'"', b'\\', b'[', b']', b'@',
        b'%', b'=', 0, 0xff,
    ]);
    prop_oneof![
        (
            any::<usize>(),
            prop_oneof![interesting.clone(), any::<u8>()]
        )
            .prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), prop::collection::vec(interesting, 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(mut message: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = message.len().max(1);
        match mutation {
            Mutation::Flip { at, byte } => {
                if let Some(slot) = message.get_mut(at % len) {
                    *slot = *byte;
                }
            }
            Mutation::Delete { at, len: count } => {
                let start = (at % len).min(message.len());
                let end = (start + count).min(message.len());
                message.drain(start..end);
            }
            Mutation::Insert { at, bytes } => {
                let at = (at % len).min(message.len());
                message.splice(at..at, bytes.iter().copied());
            }
            Mutation::Truncate { at } => message.truncate(at % len),
        }
    }
    message
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_everything(&bytes);
    }

    #[test]
    fn sip_shaped_text_never_panics(text in "(INVITE|SIP/2\\.0|REGISTER) [ -~]{0,40}\r\n(([A-Za-z-]{1,12}|v|f|t|m|l) ?: ?[ -~]{0,60}\r\n){0,6}\r\n[ -~]{0,20}") {
        parse_everything(text.as_bytes());
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        index in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let files = torture_files();
        let original = files[index.index(files.len())].clone();
        parse_everything(&apply(original, &mutations));
    }

    #[test]
    fn stream_framing_is_independent_of_chunking(
        index in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let files = torture_files();
        let file = &files[index.index(files.len())];
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(file);
        let whole = {
            let mut framer = StreamFramer::default();
            framer.push(&stream);
            framer.next_message()
        };
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut framer = StreamFramer::default();
        let mut previous = 0;
        let mut first = Ok(None);
        for point in points.into_iter().chain(std::iter::once(stream.len())) {
            framer.push(&stream[previous..point]);
            previous = point;
            first = framer.next_message();
            if !matches!(first, Ok(None)) {
                break;
            }
        }
        prop_assert_eq!(first, whole);
    }
}

/// Every torture message that parses survives parse → serialise → parse
/// with identical fields.
#[test]
fn round_trip_of_every_accepted_torture_message() {
    for file in torture_files() {
        let Ok(message) = Message::parse_datagram(Bytes::from(file)) else {
            continue;
        };
        let reparsed = Message::parse_datagram(message.to_bytes()).unwrap();
        assert_eq!(reparsed.start_line(), message.start_line());
        assert_eq!(reparsed.body(), message.body());
        assert_eq!(reparsed.vias().unwrap(), message.vias().unwrap());
        assert_eq!(
            reparsed.from_header().unwrap(),
            message.from_header().unwrap()
        );
        assert_eq!(reparsed.to_header().unwrap(), message.to_header().unwrap());
        assert_eq!(reparsed.cseq().unwrap(), message.cseq().unwrap());
        assert_eq!(reparsed.call_id().unwrap(), message.call_id().unwrap());
    }
}
