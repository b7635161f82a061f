use proptest::prelude::*;

use crate::{
    AddressList, CanonicalAddress, Location, TranslateOptions, normalize_caller, translate_address,
};

const ALPHABET: &str = "[-+()0-9 |^\r\n.,;:A-Dabcxé$@?Ww*#!TPtp/]{0,40}";

proptest! {
    #[test]
    fn parser_never_panics(s in "\\PC*") {
        let _ = AddressList::parse(&s);
    }

    #[test]
    fn parser_never_panics_on_address_characters(s in ALPHABET) {
        if let Ok(list) = AddressList::parse(&s) {
            // parse -> format gives the text back, and parses to the same
            let text = list.to_string();
            prop_assert_eq!(&text, &s);
            prop_assert_eq!(AddressList::parse(&text).expect("reparse"), list);
        }
    }

    #[test]
    fn translation_never_panics(s in ALPHABET, bits in 0u32..16) {
        let l = Location::new("l", 1, "425");
        if let Ok(options) = TranslateOptions::from_bits(bits) {
            let _ = translate_address(&s, &l, None, options);
        }
        let _ = normalize_caller(&s, &l);
    }

    #[test]
    fn canonical_round_trip(
        country_code in 1u16..=999,
        area_code in proptest::option::of("[0-9]{0,5}"),
        subscriber in "[0-9][-0-9 .,W*#A-D!$@?]{0,14}",
        subaddress in proptest::option::of("[a-z0-9@.]{1,8}"),
        name in proptest::option::of("[A-Za-z ]{1,10}"),
    ) {
        let c = CanonicalAddress { country_code, area_code, subscriber, subaddress, name };
        let text = c.to_string();
        let parsed = CanonicalAddress::parse(&text).expect("generated address parses");
        prop_assert_eq!(&parsed, &c);
        prop_assert_eq!(parsed.to_string(), text);
    }
}
