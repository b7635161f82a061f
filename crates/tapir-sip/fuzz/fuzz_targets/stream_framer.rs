//! Fuzz target: a byte stream cut into messages by the stream framer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_sip::msg::StreamFramer;

fuzz_target!(|data: &[u8]| {
    let mut framer = StreamFramer::default();
    for chunk in data.chunks(97) {
        framer.push(chunk);
        loop {
            match framer.next_message() {
                Ok(Some(message)) => {
                    let _ = message.vias();
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
});
