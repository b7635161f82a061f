//! Fuzz target: any datagram through the parser, every typed accessor, the
//! stateless rejection and a serialise → parse round trip.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tapir_sip::msg::{HeaderName, Message, check_request, stateless_rejection};

fuzz_target!(|data: &[u8]| {
    let datagram = Bytes::copy_from_slice(data);
    match Message::parse_datagram(datagram.clone()) {
        Ok(message) => {
            let _ = message.request_uri();
            let _ = message.vias();
            let _ = message.from_header();
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
            if let Ok(auth) = message.auth_headers(&HeaderName::Authorization) {
                for header in auth {
                    let _ = header.params();
                }
            }
            let _ = message.refer_to();
            let _ = message.replaces();
            let _ = message.event();
            let _ = message.option_tags(&HeaderName::Require);
            let _ = check_request(&message);
            let written = message.to_bytes();
            assert_eq!(written.len(), message.encoded_len());
            let again =
                Message::parse_datagram(written.clone()).expect("serialised message parses");
            assert_eq!(again.to_bytes(), written);
        }
        Err(error) => {
            let _ = stateless_rejection(data, &error, "fuzz");
        }
    }
});
