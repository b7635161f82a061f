use crate::{Address, AddressList, AddressProblem, CanonicalAddress, TranslateError};

fn canonical(text: &str) -> CanonicalAddress {
    match Address::parse(text) {
        Ok(Address::Canonical(c)) => c,
        other => panic!("{text:?} should be canonical, got {other:?}"),
    }
}

fn problem(text: &str) -> (AddressProblem, usize) {
    match AddressList::parse(text) {
        Err(TranslateError::InvalAddress { problem, position }) => (problem, position),
        other => panic!("{text:?} should be invaladdress, got {other:?}"),
    }
}

#[test]
fn documented_example() {
    let c = canonical("+1 (425) 882-8080");
    assert_eq!(c.country_code, 1);
    assert_eq!(c.area_code.as_deref(), Some("425"));
    assert_eq!(c.subscriber, "882-8080");
    assert_eq!(c.dialable_subscriber(), "8828080");
    assert_eq!(c.subaddress, None);
    assert_eq!(c.name, None);
    assert_eq!(c.to_string(), "+1 (425) 882-8080");
}

#[test]
fn every_canonical_form() {
    // (text, country, area, subscriber, subaddress, name)
    type Case<'a> = (
        &'a str,
        u16,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        ("+1 (425) 882-8080", 1, Some("425"), "882-8080", None, None),
        ("+1 4258828080", 1, None, "4258828080", None, None),
        ("+45 12345678", 45, None, "12345678", None, None),
        ("+1 () 5551212", 1, Some(""), "5551212", None, None),
        (
            "+44 (20) 7946 0958",
            44,
            Some("20"),
            "7946 0958",
            None,
            None,
        ),
        ("+353 (1) 555.1234", 353, Some("1"), "555.1234", None, None),
        (
            "+1 (425) 555-1212 ",
            1,
            Some("425"),
            "555-1212 ",
            None,
            None,
        ),
        (
            "+1 (425) 555-1212|4321",
            1,
            Some("425"),
            "555-1212",
            Some("4321"),
            None,
        ),
        (
            "+1 (425) 555-1212^Alice Smith",
            1,
            Some("425"),
            "555-1212",
            None,
            Some("Alice Smith"),
        ),
        (
            "+1 (425) 555-1212|bob@example.com^Bob",
            1,
            Some("425"),
            "555-1212",
            Some("bob@example.com"),
            Some("Bob"),
        ),
        (
            "+49 (30) 123456^Zoë Müller",
            49,
            Some("30"),
            "123456",
            None,
            Some("Zoë Müller"),
        ),
        (
            "+1 (425) 555-1212^a^b|c",
            1,
            Some("425"),
            "555-1212",
            None,
            Some("a^b|c"),
        ),
        (
            "+1 (425) 555-1212W123",
            1,
            Some("425"),
            "555-1212W123",
            None,
            None,
        ),
        (
            "+1 (425) 555,,1212!*#ABCD",
            1,
            Some("425"),
            "555,,1212!*#ABCD",
            None,
            None,
        ),
        (
            "+1 (425) 555-1212$@?:",
            1,
            Some("425"),
            "555-1212$@?:",
            None,
            None,
        ),
        (
            "+1 (425) T555P1212tpw",
            1,
            Some("425"),
            "T555P1212tpw",
            None,
            None,
        ),
        ("+1 (425) 555;", 1, Some("425"), "555;", None, None),
        ("+999 1", 999, None, "1", None, None),
    ];
    for &(text, cc, area, sub, subaddress, name) in cases {
        let c = canonical(text);
        assert_eq!(c.country_code, cc, "{text}");
        assert_eq!(c.area_code.as_deref(), area, "{text}");
        assert_eq!(c.subscriber, sub, "{text}");
        assert_eq!(c.subaddress.as_deref(), subaddress, "{text}");
        assert_eq!(c.name.as_deref(), name, "{text}");
        assert_eq!(c.to_string(), text, "formatting gives the text back");
        assert_eq!(text.parse::<CanonicalAddress>().unwrap(), c);
    }
}

#[test]
fn several_addresses_separated_by_crlf() {
    let text = "+1 (425) 555-1212\r\n+1 (206) 555-1234|99\r\n9,5551212";
    let list = AddressList::parse(text).unwrap();
    assert_eq!(list.len(), 3);
    assert!(!list.is_empty());
    assert!(list.first().is_canonical());
    let all: Vec<_> = list.iter().collect();
    assert_eq!(all[1].subaddress(), Some("99"));
    assert!(!all[2].is_canonical());
    assert_eq!(list.to_string(), text);
}

#[test]
fn every_malformed_canonical_form() {
    use AddressProblem as P;
    let cases: &[(&str, AddressProblem, usize)] = &[
        ("", P::Empty, 1),
        ("+", P::CountryCodeMissing, 2),
        ("+ (425) 555", P::CountryCodeMissing, 2),
        ("+(425) 555", P::CountryCodeMissing, 2),
        ("+1234 5551212", P::CountryCodeTooLong, 2),
        ("+01 5551212", P::CountryCodeLeadingZero, 2),
        ("+1", P::SpaceAfterCountryCode, 3),
        ("+14255551212", P::CountryCodeTooLong, 2),
        ("+1(425) 5551212", P::SpaceAfterCountryCode, 3),
        ("+1  (425) 5551212", P::SpaceAfterCountryCode, 4),
        ("+1 (425 5551212", P::AreaCodeCharacter(' '), 8),
        ("+1 (425", P::AreaCodeUnclosed, 4),
        ("+1 (4a5) 5551212", P::AreaCodeCharacter('a'), 6),
        ("+1 (425)5551212", P::SpaceAfterAreaCode, 9),
        ("+1 (425)  5551212", P::SpaceAfterAreaCode, 10),
        ("+1 (425) ", P::NumberMissing, 10),
        ("+1 ", P::NumberMissing, 4),
        ("+1 (425) |12", P::NumberMissing, 10),
        ("+1 (425) ---", P::SubscriberWithoutDigit, 10),
        ("+1 (425) W", P::SubscriberWithoutDigit, 10),
        ("+1 (425) 555(1212)", P::NumberCharacter('('), 13),
        ("+1 (425) 555+1212", P::NumberCharacter('+'), 13),
        ("+1 (425) 555/1212", P::NumberCharacter('/'), 13),
        ("+1 (425) 555x1212", P::NumberCharacter('x'), 13),
        ("+1 (425) 555-1212 ext 5", P::NumberCharacter('e'), 19),
        ("+1 (425) 555-1212é", P::NumberCharacter('é'), 18),
        ("+1 (425) 555;1212", P::SemicolonNotLast, 13),
        ("+1 (425) 5551212|", P::SubaddressEmpty, 17),
        ("+1 (425) 5551212|^Bob", P::SubaddressEmpty, 17),
        ("+1 (425) 5551212^", P::NameEmpty, 17),
        ("+1 (425) 5551212|12^", P::NameEmpty, 20),
        ("+1 (425) 5551212|12|34", P::AfterSubaddress('|'), 20),
        ("+1 (425) 5551212|12+1 555", P::AfterSubaddress('+'), 20),
        ("+1 (425) 5551212|1\t2", P::ControlCharacter, 19),
        ("+1 (425) 5551212^Bo\u{7}b", P::ControlCharacter, 20),
        ("+1 5551212\r+1 5551213", P::LoneLineBreak, 11),
        ("+1 5551212\n+1 5551213", P::LoneLineBreak, 11),
        ("+1 5551212\r\n", P::Empty, 13),
        ("\r\n+1 5551212", P::Empty, 1),
        ("+1 5551212\r\n+1 (x) 5", P::AreaCodeCharacter('x'), 17),
    ];
    for (text, expected, position) in cases {
        let (got, at) = problem(text);
        assert_eq!(&got, expected, "{text:?}");
        assert_eq!(at, *position, "position in {text:?}");
        let err = AddressList::parse(text).unwrap_err();
        assert_eq!(err.code(), "invaladdress");
        let sentence = err.to_string();
        assert!(
            sentence.starts_with("The address is not valid: "),
            "{sentence}"
        );
        assert!(
            sentence.ends_with(')') || sentence.ends_with('.'),
            "{sentence}"
        );
    }
}

#[test]
fn error_sentences_say_what_is_wrong() {
    let err = AddressList::parse("+1 (425)5551212").unwrap_err();
    assert_eq!(
        err.to_string(),
        "The address is not valid: the area code's \")\" must be followed by exactly one space (at character 9)."
    );
    let err = AddressList::parse("+14255551212").unwrap_err();
    assert_eq!(
        err.to_string(),
        "The address is not valid: the country code has more than three digits (a canonical address has a space after it, as in \"+1 (425) 882-8080\") (at character 2)."
    );
}

#[test]
fn dialable_forms_pass() {
    for text in [
        "9,5551212",
        "*70,1234",
        "ABCD#",
        "T9W5551212",
        "P9,,1 (425) 555-1212",
        "9 / 555.1212",
        "011+44",
        "555;",
        "!",
        "1001|sub^Name",
        "1001^Name",
        "9$@?:w",
    ] {
        match AddressList::parse(text) {
            Ok(list) => {
                assert!(!list.first().is_canonical(), "{text}");
                assert_eq!(list.to_string(), text);
            }
            Err(e) => panic!("{text:?} should pass as dialable: {e}"),
        }
    }
    let Address::Dialable(d) = Address::parse("1001|77^Ann").unwrap() else {
        panic!("dialable expected");
    };
    assert_eq!(d.number, "1001");
    assert_eq!(d.subaddress.as_deref(), Some("77"));
    assert_eq!(d.name.as_deref(), Some("Ann"));
}

#[test]
fn malformed_dialable_forms() {
    use AddressProblem as P;
    for (text, expected) in [
        ("555x", P::NumberCharacter('x')),
        ("5a", P::NumberCharacter('a')),
        ("sip:1001@host", P::NumberCharacter('s')),
        ("5;5", P::SemicolonNotLast),
        ("|sub", P::NumberMissing),
        ("   ", P::NumberMissing),
        ("1001|", P::SubaddressEmpty),
        ("1001^", P::NameEmpty),
        ("1001\n", P::LoneLineBreak),
    ] {
        assert_eq!(problem(text).0, expected, "{text:?}");
    }
    assert!(matches!(
        Address::parse("1\r\n2"),
        Err(TranslateError::InvalAddress {
            problem: AddressProblem::LoneLineBreak,
            ..
        })
    ));
}
