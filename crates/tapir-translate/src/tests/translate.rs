use crate::{
    CallingCard, DialingRules, Location, TranslateCaps, TranslateError, TranslateOption,
    TranslateOptions, TranslateOutput, TranslateResult as R, translate_address,
};

fn redmond() -> Location {
    let mut l = Location::new("redmond", 1, "425");
    l.name = "Redmond office".into();
    l
}

fn london() -> Location {
    Location::new("london", 44, "20")
}

fn berlin() -> Location {
    Location::new("berlin", 49, "30")
}

fn tr(address: &str, location: &Location) -> TranslateOutput {
    translate_address(address, location, None, TranslateOptions::NONE)
        .unwrap_or_else(|e| panic!("{address}: {e}"))
}

fn tr_with(address: &str, location: &Location, options: &[TranslateOption]) -> TranslateOutput {
    let options = options.iter().copied().collect();
    translate_address(address, location, None, options).unwrap_or_else(|e| panic!("{address}: {e}"))
}

fn flags(out: &TranslateOutput) -> Vec<R> {
    out.results.iter().collect()
}

fn mci() -> CallingCard {
    let mut card = CallingCard::new(
        "mci",
        "MCI",
        DialingRules::new(
            "18006747000,,,,,,TH,,G",
            "18006747000,,,,,,TH,,FG",
            "18006747000,,,,,,TH,,011EFG",
        ),
    );
    card.card_number = "4255550000".into();
    card.pin = "8642".into();
    card
}

// ---- same area / long distance / international: US, GB, DE

#[test]
fn us_same_area_long_distance_international() {
    let l = redmond();
    let out = tr("+1 (425) 882-8080", &l);
    assert_eq!(out.dialable, "T8828080");
    assert_eq!(out.displayable, "T882-8080");
    assert_eq!(out.country_code, 1);
    assert_eq!(out.current_country_code, 1);
    assert_eq!(flags(&out), [R::Local, R::NotInTollList]);

    let out = tr("+1 (206) 555-1234", &l);
    assert_eq!(out.dialable, "T12065551234");
    assert_eq!(out.displayable, "T1206555-1234");
    assert_eq!(flags(&out), [R::LongDistance]);

    let out = tr("+44 (20) 7946 0000", &l);
    assert_eq!(out.dialable, "T011442079460000");
    assert_eq!(out.displayable, "T01144207946 0000");
    assert_eq!(out.country_code, 44);
    assert_eq!(flags(&out), [R::International]);
}

#[test]
fn gb_same_area_long_distance_international() {
    let l = london();
    let out = tr("+44 (20) 7946 0958", &l);
    assert_eq!(out.dialable, "T79460958");
    assert_eq!(flags(&out), [R::Local], "no toll-list concept outside NANP");
    let out = tr("+44 (161) 496 0000", &l);
    assert_eq!(out.dialable, "T01614960000");
    assert_eq!(flags(&out), [R::LongDistance]);
    let out = tr("+1 (425) 882-8080", &l);
    assert_eq!(out.dialable, "T0014258828080");
    assert_eq!(out.country_code, 1);
    assert_eq!(out.current_country_code, 44);
    assert_eq!(flags(&out), [R::International]);
}

#[test]
fn de_same_area_long_distance_international() {
    let l = berlin();
    assert_eq!(tr("+49 (30) 123456", &l).dialable, "T123456");
    assert_eq!(tr("+49 (89) 1234567", &l).dialable, "T0891234567");
    let out = tr("+33 (1) 42 68 53 00", &l);
    assert_eq!(out.dialable, "T0033142685300");
    assert_eq!(out.displayable, "T0033142 68 53 00");
    assert_eq!(flags(&out), [R::International]);
}

#[test]
fn documented_rule_expansions() {
    // reference §5.5: +1 (206) 555-1234 with 1FG, +44 (20) 7946 0000 with 011EFG.
    let l = redmond();
    assert_eq!(tr("+1 (206) 555-1234", &l).dialable, "T12065551234");
    assert_eq!(tr("+44 (20) 7946 0000", &l).dialable, "T011442079460000");
}

#[test]
fn address_without_area_code_is_same_area() {
    let mut l = Location::new("cph", 45, "");
    assert_eq!(tr("+45 12 34 56 78", &l).dialable, "T12345678");
    l = redmond();
    let out = tr("+1 5551212", &l);
    assert_eq!(out.dialable, "T5551212");
    assert!(out.results.contains(R::Local));
    let out = tr_with("+1 5551212", &l, &[TranslateOption::ForceLd]);
    assert_eq!(
        out.dialable, "T14255551212",
        "F falls back to the location's area code"
    );
}

#[test]
fn access_codes_pulse_and_rule_overrides() {
    let mut l = redmond();
    l.local_access = "9".into();
    l.long_distance_access = "8,".into();
    l.tone_dialing = false;
    assert_eq!(tr("+1 (425) 882-8080", &l).dialable, "P98828080");
    assert_eq!(tr("+1 (206) 555-1234", &l).dialable, "P8,12065551234");
    assert_eq!(tr("+49 (30) 123456", &l).dialable, "P8,0114930123456");

    l.rules.international = Some("00EFG".into());
    assert_eq!(tr("+49 (30) 123456", &l).dialable, "P8,004930123456");
    assert_eq!(
        tr("+1 (206) 555-1234", &l).dialable,
        "P8,12065551234",
        "other rules stay"
    );
    l.rules.same_area = Some("1FG".into());
    assert_eq!(tr("+1 (425) 882-8080", &l).dialable, "P914258828080");
}

#[test]
fn carrier_codes() {
    let mut l = redmond();
    l.rules = DialingRules::new("G", "N1FG", "S011EFG");
    assert_eq!(
        tr("+1 (206) 555-1234", &l).dialable,
        "T12065551234",
        "N is optional"
    );
    l.long_distance_carrier = Some("10288".into());
    l.international_carrier = Some("101".into());
    assert_eq!(tr("+1 (206) 555-1234", &l).dialable, "T1028812065551234");
    assert_eq!(tr("+44 (20) 7946 0000", &l).dialable, "T101011442079460000");
    l.rules.long_distance = Some("L1FG".into());
    l.long_distance_carrier = None;
    let err = translate_address("+1 (206) 555-1234", &l, None, TranslateOptions::NONE).unwrap_err();
    assert_eq!(err.code(), "invallocation");
    assert!(err.to_string().contains("carrier"), "{err}");
}

// ---- toll list

#[test]
fn toll_list() {
    let mut l = redmond();
    l.toll_prefixes = vec!["882".into(), "936".into()];
    let out = tr("+1 (425) 882-8080", &l);
    assert_eq!(out.dialable, "T14258828080");
    assert_eq!(flags(&out), [R::LongDistance, R::InTollList]);
    let out = tr("+1 (425) 555-1212", &l);
    assert_eq!(out.dialable, "T5551212");
    assert_eq!(flags(&out), [R::Local, R::NotInTollList]);
    // only same-area numbers are looked up
    let out = tr("+1 (206) 882-1212", &l);
    assert_eq!(flags(&out), [R::LongDistance]);
}

#[test]
fn toll_list_outside_nanp() {
    let mut l = berlin();
    l.toll_prefixes = vec!["12".into()];
    let out = tr("+49 (30) 123456", &l);
    assert_eq!(out.dialable, "T030123456");
    assert_eq!(flags(&out), [R::LongDistance, R::InTollList]);
    assert_eq!(
        flags(&tr("+49 (30) 223456", &l)),
        [R::Local, R::NotInTollList]
    );
}

// ---- options

#[test]
fn option_forcelocal() {
    let mut l = redmond();
    l.toll_prefixes = vec!["882".into()];
    let out = tr_with("+1 (425) 882-8080", &l, &[TranslateOption::ForceLocal]);
    assert_eq!(out.dialable, "T8828080");
    assert_eq!(flags(&out), [R::Local, R::InTollList]);
    // no effect on other areas and other countries
    let out = tr_with("+1 (206) 555-1234", &l, &[TranslateOption::ForceLocal]);
    assert_eq!(out.dialable, "T12065551234");
    let out = tr_with("+44 (20) 7946 0000", &l, &[TranslateOption::ForceLocal]);
    assert_eq!(flags(&out), [R::International]);
}

#[test]
fn option_forceld() {
    let l = redmond();
    let out = tr_with("+1 (425) 555-1212", &l, &[TranslateOption::ForceLd]);
    assert_eq!(out.dialable, "T14255551212");
    assert_eq!(flags(&out), [R::LongDistance, R::NotInTollList]);
    let out = tr_with("+49 (30) 123456", &berlin(), &[TranslateOption::ForceLd]);
    assert_eq!(out.dialable, "T030123456");
    assert_eq!(flags(&out), [R::LongDistance]);
    let out = tr_with("+44 (20) 7946 0000", &l, &[TranslateOption::ForceLd]);
    assert_eq!(flags(&out), [R::International]);
}

#[test]
fn forcelocal_and_forceld_together_are_invalparam() {
    let options: TranslateOptions = [TranslateOption::ForceLocal, TranslateOption::ForceLd]
        .into_iter()
        .collect();
    let err = translate_address("+1 (425) 555-1212", &redmond(), None, options).unwrap_err();
    assert_eq!(err.code(), "invalparam");
    assert!(err.to_string().contains("forcelocal and forceld"), "{err}");
    assert_eq!(
        TranslateOptions::from_bits(0x10).unwrap_err().code(),
        "invalparam"
    );
    assert_eq!(TranslateOptions::from_bits(0xF).unwrap().bits(), 0xF);
    assert_eq!(
        "nope".parse::<TranslateOption>().unwrap_err().code(),
        "invalparam"
    );
    assert_eq!(
        "forceld".parse::<TranslateOption>().unwrap(),
        TranslateOption::ForceLd
    );
}

#[test]
fn option_cancelcallwaiting() {
    let mut l = redmond();
    l.local_access = "9".into();
    l.cancel_call_waiting = "*70,".into();
    let out = tr_with(
        "+1 (425) 882-8080",
        &l,
        &[TranslateOption::CancelCallWaiting],
    );
    assert_eq!(out.dialable, "T*70,98828080");
    assert_eq!(out.displayable, "T*70,9882-8080");
    assert_eq!(
        tr("+1 (425) 882-8080", &l).dialable,
        "T98828080",
        "only with the option"
    );
    l.cancel_call_waiting.clear();
    let out = tr_with(
        "+1 (425) 882-8080",
        &l,
        &[TranslateOption::CancelCallWaiting],
    );
    assert_eq!(out.dialable, "T98828080", "nothing to dial without a code");
}

#[test]
fn option_cardoverride() {
    let mut l = redmond();
    l.card = Some("mci".into());
    let mut att = CallingCard::new(
        "att",
        "AT&T",
        DialingRules::new("G", "10288$H1FG", "10288$H011EFG"),
    );
    att.pin = "1111".into();
    let caps = TranslateCaps {
        current: "redmond".into(),
        locations: vec![l, berlin()],
        cards: vec![mci(), att],
    };
    caps.validate().unwrap();
    let addr = "+1 (206) 555-1234";
    let none = TranslateOptions::NONE;
    let over = none.with(TranslateOption::CardOverride);

    // preferred card of the location
    let out = caps.translate_address(addr, None, None, none).unwrap();
    assert_eq!(
        out.dialable,
        "T18006747000,,,,,,T42555500008642,,2065551234"
    );
    // a card given without cardoverride is ignored, as in TAPI
    let same = caps
        .translate_address(addr, None, Some("att"), none)
        .unwrap();
    assert_eq!(same, out);
    // cardoverride picks the given card
    let out = caps
        .translate_address(addr, None, Some("att"), over)
        .unwrap();
    assert_eq!(out.dialable, "T10288$111112065551234");
    assert_eq!(out.displayable, "T10288$[AT&T]1206555-1234");
    assert_eq!(flags(&out), [R::LongDistance, R::DialBilling]);
    // cardoverride without a card: direct dialing
    let out = caps.translate_address(addr, None, None, over).unwrap();
    assert_eq!(out.dialable, "T12065551234");
    // another location, by id
    let out = caps
        .translate_address("+49 (89) 1234567", Some("berlin"), None, none)
        .unwrap();
    assert_eq!(out.dialable, "T0891234567");
    // unknown ids
    let err = caps
        .translate_address(addr, None, Some("visa"), over)
        .unwrap_err();
    assert_eq!(err.code(), "invalcard");
    assert_eq!(
        err.to_string(),
        "The calling card is not usable: there is no calling card \"visa\"."
    );
    let err = caps
        .translate_address(addr, Some("paris"), None, none)
        .unwrap_err();
    assert_eq!(err.code(), "invallocation");
    assert_eq!(
        err.to_string(),
        "The location is not usable: there is no location \"paris\"."
    );
}

#[test]
fn options_serialize_as_lower_case_names() {
    let o: TranslateOptions =
        serde_json::from_str(r#"["cardoverride","cancelcallwaiting","forcelocal","forceld"]"#)
            .unwrap();
    assert_eq!(o.bits(), 0xF);
    assert_eq!(
        serde_json::to_string(&o).unwrap(),
        r#"["cardoverride","cancelcallwaiting","forcelocal","forceld"]"#
    );
    assert!(serde_json::from_str::<TranslateOptions>(r#"["forcelong"]"#).is_err());
    let names: Vec<_> = o.iter().map(TranslateOption::name).collect();
    assert_eq!(
        names,
        ["cardoverride", "cancelcallwaiting", "forcelocal", "forceld"]
    );
}

// ---- calling cards

#[test]
fn calling_card_rules_and_pin_never_displayed() {
    let card = mci();
    let l = redmond();
    for (addr, dialable, displayable) in [
        (
            "+1 (206) 555-1234",
            "T18006747000,,,,,,T42555500008642,,2065551234",
            "T18006747000,,,,,,T[MCI],,206555-1234",
        ),
        (
            "+1 (425) 882-8080",
            "T18006747000,,,,,,T42555500008642,,8828080",
            "T18006747000,,,,,,T[MCI],,882-8080",
        ),
        (
            "+44 (20) 7946 0958",
            "T18006747000,,,,,,T42555500008642,,011442079460958",
            "T18006747000,,,,,,T[MCI],,01144207946 0958",
        ),
    ] {
        let out = translate_address(addr, &l, Some(&card), TranslateOptions::NONE).unwrap();
        assert_eq!(out.dialable, dialable);
        assert_eq!(out.displayable, displayable);
        assert!(!out.displayable.contains("8642"), "PIN shown");
        assert!(!out.displayable.contains("4255550000"), "card number shown");
        assert!(
            !format!("{out:?}").contains("8642"),
            "PIN in Debug of the output"
        );
    }
    assert!(
        !format!("{card:?}").contains("8642"),
        "PIN in Debug of the card"
    );
    assert_eq!(card.card_number_digits(), 14);
}

#[test]
fn card_without_name_and_missing_rules() {
    let mut card = CallingCard::new(
        "c",
        "",
        DialingRules {
            long_distance: Some("$H,1FG".into()),
            ..DialingRules::default()
        },
    );
    card.pin = "99".into();
    let l = redmond();
    let out =
        translate_address("+1 (206) 555-1234", &l, Some(&card), TranslateOptions::NONE).unwrap();
    assert_eq!(out.displayable, "T$[calling card],1206555-1234");
    // rules the card leaves out are the location's
    let out =
        translate_address("+1 (425) 555-1234", &l, Some(&card), TranslateOptions::NONE).unwrap();
    assert_eq!(out.dialable, "T5551234");
}

#[test]
fn card_access_numbers() {
    let mut card = CallingCard::new(
        "bt",
        "BT",
        DialingRules::new("G", "J,,$H,0FG", "J,,$H,00EFG"),
    );
    card.access_numbers.long_distance = "144".into();
    card.access_numbers.international = "0800800144".into();
    card.card_number = "123".into();
    let l = london();
    let out = translate_address(
        "+44 (161) 496 0000",
        &l,
        Some(&card),
        TranslateOptions::NONE,
    )
    .unwrap();
    assert_eq!(out.dialable, "T144,,$123,01614960000");
    assert_eq!(out.displayable, "T144,,$[BT],0161496 0000");
    let out =
        translate_address("+1 (425) 882-8080", &l, Some(&card), TranslateOptions::NONE).unwrap();
    assert_eq!(out.dialable, "T0800800144,,$123,0014258828080");
}

#[test]
fn wait_and_prompt_flags() {
    let l = redmond();
    for (rule, flag) in [
        ("$H1FG", R::DialBilling),
        ("@1FG", R::DialQuiet),
        ("W1FG", R::DialDialTone),
        ("?1FG", R::DialPrompt),
    ] {
        let card = CallingCard::new("k", "K", DialingRules::new("G", rule, "011EFG"));
        let out = translate_address("+1 (206) 555-1234", &l, Some(&card), TranslateOptions::NONE)
            .unwrap();
        assert_eq!(flags(&out), [R::LongDistance, flag], "{rule}");
    }
    let out = tr("+1 (425) 555-1234W99:", &l);
    assert_eq!(
        flags(&out),
        [R::Local, R::NotInTollList, R::DialDialTone, R::VoiceDetect]
    );
}

#[test]
fn card_errors() {
    let l = redmond();
    let card = CallingCard::new("k", "K", DialingRules::new("G", "1FGX", "011EFG"));
    let err = translate_address("+1 (206) 555-1234", &l, Some(&card), TranslateOptions::NONE)
        .unwrap_err();
    assert_eq!(err.code(), "invalcard");
    assert!(err.to_string().contains("'X'"), "{err}");
    assert_eq!(card.validate().unwrap_err().code(), "invalcard");
    let mut card = mci();
    card.pin = "12x".into();
    assert_eq!(card.validate().unwrap_err().code(), "invalcard");
    // H in a location rule without a card
    let mut l = redmond();
    l.rules.long_distance = Some("H1FG".into());
    let err = translate_address("+1 (206) 555-1234", &l, None, TranslateOptions::NONE).unwrap_err();
    assert_eq!(err.code(), "invallocation");
    assert!(err.to_string().contains("no calling card applies"), "{err}");
}

// ---- locations

#[test]
fn location_errors() {
    let mut l = redmond();
    l.rules.international = Some("011EFG+".into());
    assert_eq!(l.validate().unwrap_err().code(), "invallocation");
    let err =
        translate_address("+44 (20) 7946 0000", &l, None, TranslateOptions::NONE).unwrap_err();
    assert_eq!(err.code(), "invallocation");

    let l = Location::new("nowhere", 0, "");
    let err = translate_address("+1 (425) 555-1212", &l, None, TranslateOptions::NONE).unwrap_err();
    assert_eq!(err.code(), "invalcountrycode");

    // a country code without libphonenumber data needs its own rules
    let mut l = Location::new("x", 999, "");
    assert!(l.country_defaults().is_none());
    let err = translate_address("+1 (425) 555-1212", &l, None, TranslateOptions::NONE).unwrap_err();
    assert_eq!(err.code(), "invalcountrycode");
    assert_eq!(
        err.to_string(),
        "Country code 999 is not a known country calling code, and the location does not give its own dialing rules."
    );
    l.rules = DialingRules::new("G", "0FG", "00EFG");
    assert_eq!(tr("+1 (425) 555-1212", &l).dialable, "T0014255551212");
    l.validate().unwrap();

    for bad in [
        Location {
            area_code: "4x".into(),
            ..redmond()
        },
        Location {
            toll_prefixes: vec!["8 8".into()],
            ..redmond()
        },
        Location {
            local_access: "9x".into(),
            ..redmond()
        },
    ] {
        assert_eq!(bad.validate().unwrap_err().code(), "invallocation");
    }
    let caps = TranslateCaps {
        current: "a".into(),
        locations: vec![Location::new("a", 1, "425"), Location::new("a", 1, "206")],
        cards: vec![],
    };
    assert_eq!(caps.validate().unwrap_err().code(), "invallocation");
    let caps = TranslateCaps {
        current: "a".into(),
        locations: vec![Location {
            card: Some("none".into()),
            ..Location::new("a", 1, "425")
        }],
        cards: vec![],
    };
    assert_eq!(caps.validate().unwrap_err().code(), "invalcard");
}

#[test]
fn effective_rules_come_from_country_unless_overridden() {
    let mut l = redmond();
    assert_eq!(
        l.effective_rules().unwrap(),
        DialingRules::new("G", "1FG", "011EFG")
    );
    l.rules.long_distance = Some("N1FG".into());
    assert_eq!(
        l.effective_rules().unwrap(),
        DialingRules::new("G", "N1FG", "011EFG")
    );
    assert_eq!(
        london().effective_rules().unwrap(),
        DialingRules::new("G", "0FG", "00EFG")
    );
    assert_eq!(
        berlin().effective_rules().unwrap(),
        DialingRules::new("G", "0FG", "00EFG")
    );
}

// ---- pass-through, subaddress, several addresses, errors

#[test]
fn non_canonical_passes_through() {
    let mut l = redmond();
    l.local_access = "9".into();
    let options = TranslateOptions::NONE
        .with(TranslateOption::CancelCallWaiting)
        .with(TranslateOption::ForceLd);
    let out = translate_address("9,W555-1212$|12^Ann", &l, None, options).unwrap();
    assert_eq!(out.dialable, "9,W555-1212$|12^Ann");
    assert_eq!(out.displayable, "9,W555-1212$");
    assert_eq!(out.country_code, 0);
    assert_eq!(out.current_country_code, 1);
    assert_eq!(flags(&out), [R::DialBilling, R::DialDialTone]);
    let out = tr("1001", &l);
    assert_eq!((out.dialable.as_str(), flags(&out).len()), ("1001", 0));
}

#[test]
fn subaddress_and_name_go_to_dialable_only() {
    let out = tr("+1 (206) 555-1234|4711^Pat Doe", &redmond());
    assert_eq!(out.dialable, "T12065551234|4711^Pat Doe");
    assert_eq!(out.displayable, "T1206555-1234");
    // `$` in a name is not a billing wait
    let out = tr("+1 (206) 555-1234^$ave", &redmond());
    assert_eq!(flags(&out), [R::LongDistance]);
}

#[test]
fn only_the_first_of_several_addresses_is_translated() {
    let out = tr("+1 (206) 555-1234\r\n+1 (425) 555-1212", &redmond());
    assert_eq!(out.dialable, "T12065551234");
    let err = translate_address(
        "+1 (206) 555-1234\r\n+1 (",
        &redmond(),
        None,
        TranslateOptions::NONE,
    )
    .unwrap_err();
    assert_eq!(err.code(), "invaladdress", "the others must be valid too");
}

#[test]
fn malformed_address_is_invaladdress() {
    let err = translate_address("+1 (425", &redmond(), None, TranslateOptions::NONE).unwrap_err();
    assert_eq!(err.code(), "invaladdress");
    assert_eq!(
        err.to_string(),
        "The address is not valid: the area code's \"(\" has no closing \")\" (at character 4)."
    );
    let err: TranslateError =
        translate_address("", &redmond(), None, TranslateOptions::NONE).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The address is not valid: the address is empty (at character 1)."
    );
}

// ---- JSON shapes of API.md

#[test]
fn location_json_as_in_api_md() {
    let json = r#"{"id":"home","name":"Home","country_code":1,"area_code":"425",
        "local_access":"9","long_distance_access":"9","cancel_call_waiting":"*70",
        "tone_dialing":true,"toll_prefixes":["882"],"rules":{"same_area":"G",
        "long_distance":"1FG","international":"011EFG"},"card":"mci"}"#;
    let l: Location = serde_json::from_str(json).unwrap();
    assert_eq!(l.country_code, 1);
    assert_eq!(l.rules, DialingRules::new("G", "1FG", "011EFG"));
    assert_eq!(l.card.as_deref(), Some("mci"));
    let back: serde_json::Value = serde_json::to_value(&l).unwrap();
    let expected: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(back, expected);

    // everything but id and country is optional; rules may be partial
    let l: Location =
        serde_json::from_str(r#"{"id":"x","country_code":44,"rules":{"international":"00EFG"}}"#)
            .unwrap();
    assert!(l.tone_dialing);
    assert_eq!(l.rules.same_area, None);
    assert_eq!(l.rule(crate::CallClass::SameArea).unwrap(), "G");
}

#[test]
fn card_json_pin_is_write_only() {
    let json = r#"{"id":"mci","name":"MCI","pin":"8642","card_number":"4255550000",
        "access_numbers":{"long_distance":"18006747000"},
        "rules":{"same_area":"G","long_distance":"J,,TH,,FG","international":"J,,TH,,011EFG"}}"#;
    let card: CallingCard = serde_json::from_str(json).unwrap();
    assert_eq!(card.pin, "8642");
    let out = serde_json::to_string(&card).unwrap();
    assert!(!out.contains("8642"), "{out}");
    assert!(!out.contains("pin"), "{out}");
    assert!(out.contains(r#""long_distance":"J,,TH,,FG""#), "{out}");
    let again: CallingCard = serde_json::from_str(&out).unwrap();
    assert_eq!(again.pin, "");
}

#[test]
fn output_json_as_in_api_md() {
    let mut l = redmond();
    l.toll_prefixes = vec!["882".into()];
    let out = tr("+1 (425) 882-8080", &l);
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v["dialable"], "T14258828080");
    assert_eq!(v["displayable"], "T1425882-8080");
    assert_eq!(v["country_code"], 1);
    assert_eq!(
        v["results"],
        serde_json::json!(["longdistance", "intolllist"])
    );
    let all: crate::TranslateResults = serde_json::from_value(serde_json::json!([
        "international",
        "longdistance",
        "local",
        "intolllist",
        "notintolllist",
        "dialbilling",
        "dialquiet",
        "dialdialtone",
        "dialprompt",
        "voicedetect"
    ]))
    .unwrap();
    assert_eq!(all.bits(), 0x7FE);
    let back: TranslateOutput = serde_json::from_value(v).unwrap();
    assert_eq!(back, out);
}

#[test]
fn caps_json() {
    let caps: TranslateCaps = serde_json::from_str(
        r#"{"current":"a","locations":[{"id":"a","country_code":49,"area_code":"30"}]}"#,
    )
    .unwrap();
    caps.validate().unwrap();
    let out = caps
        .translate_address("+49 (30) 1234", None, None, TranslateOptions::NONE)
        .unwrap();
    assert_eq!(out.dialable, "T1234");
}
