use crate::{Address, Location, normalize_caller};

fn norm(number: &str, location: &Location) -> String {
    normalize_caller(number, location)
        .unwrap_or_else(|e| panic!("{number}: {e}"))
        .to_string()
}

#[test]
fn caller_numbers_become_canonical() {
    let us = Location::new("redmond", 1, "425");
    assert_eq!(norm("4258828080", &us), "+1 (425) 882-8080");
    assert_eq!(norm("+14258828080", &us), "+1 (425) 882-8080");
    assert_eq!(
        norm("+1 425 882 8080", &us),
        "+1 425 882 8080",
        "canonical stays"
    );
    assert_eq!(
        norm("8828080", &us),
        "+1 (425) 882-8080",
        "local number gets the area code"
    );
    assert_eq!(norm("011442079460958", &us), "+44 (20) 7946 0958");
    assert_eq!(norm("+442079460958", &us), "+44 (20) 7946 0958");

    let gb = Location::new("london", 44, "20");
    assert_eq!(norm("02079460958", &gb), "+44 (20) 7946 0958");
    assert_eq!(norm("79460958", &gb), "+44 (20) 7946 0958");
    assert_eq!(norm("0014258828080", &gb), "+1 (425) 882-8080");

    let de = Location::new("berlin", 49, "30");
    assert_eq!(norm("030 901820", &de), "+49 (30) 901820");
}

#[test]
fn short_and_unknown_numbers_stay_as_they_are() {
    let us = Location::new("redmond", 1, "425");
    for n in ["1001", "*8", "9", "12"] {
        let a = normalize_caller(n, &us).unwrap();
        assert!(!a.is_canonical(), "{n} -> {a}");
        assert_eq!(a.to_string(), n);
    }
    // already canonical
    let a = normalize_caller("+1 (425) 882-8080", &us).unwrap();
    assert!(matches!(a, Address::Canonical(_)));
    // not even dialable
    assert_eq!(
        normalize_caller("sip:x", &us).unwrap_err().code(),
        "invaladdress"
    );
}
