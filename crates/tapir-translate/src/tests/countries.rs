//! Same-area, long-distance and international translations from locations
//! in 30 countries with the country defaults from libphonenumber. The
//! prefixes are written out by hand here, so this also checks what the
//! metadata gives.

use crate::{
    Location, TranslateOptions, TranslateResult as R, country_defaults, translate_address,
};

/// (country code, region, national prefix, international prefix, location
/// area code, other area code)
const COUNTRIES: &[(u16, &str, &str, &str, &str, &str)] = &[
    (1, "US", "1", "011", "425", "206"),
    (44, "GB", "0", "00", "20", "161"),
    (49, "DE", "0", "00", "30", "89"),
    (33, "FR", "0", "00", "1", "4"),
    (39, "IT", "", "00", "06", "02"),
    (34, "ES", "", "00", "91", "93"),
    (7, "RU", "8", "8W10", "495", "812"),
    (81, "JP", "0", "010", "3", "6"),
    (86, "CN", "0", "00", "10", "21"),
    (61, "AU", "0", "0011", "2", "3"),
    (52, "MX", "", "00", "55", "33"),
    (91, "IN", "0", "00", "11", "22"),
    (27, "ZA", "0", "00", "11", "21"),
    (31, "NL", "0", "00", "20", "10"),
    (41, "CH", "0", "00", "44", "31"),
    (43, "AT", "0", "00", "1", "316"),
    (45, "DK", "", "00", "", "33"),
    (46, "SE", "0", "00", "8", "31"),
    (47, "NO", "", "00", "", "22"),
    (48, "PL", "", "00", "22", "12"),
    (353, "IE", "0", "00", "1", "21"),
    (351, "PT", "", "00", "21", "22"),
    (30, "GR", "", "00", "21", "231"),
    (90, "TR", "0", "00", "212", "312"),
    (82, "KR", "0", "001", "2", "51"),
    (64, "NZ", "0", "00", "9", "4"),
    (54, "AR", "0", "00", "11", "351"),
    (972, "IL", "0", "00", "3", "2"),
    (36, "HU", "06", "00", "1", "62"),
    (65, "SG", "", "001", "", "6"),
];

#[test]
fn country_defaults_from_libphonenumber() {
    assert!(COUNTRIES.len() >= 20);
    for &(cc, region, np, ip, _, _) in COUNTRIES {
        let d = country_defaults(cc).unwrap_or_else(|| panic!("no defaults for {cc}"));
        assert_eq!(d.region, region, "{cc}");
        assert_eq!(
            d.national_prefix.as_deref().unwrap_or(""),
            np,
            "{cc} national prefix"
        );
        assert_eq!(d.international_prefix, ip, "{cc} international prefix");
        assert_eq!(d.rules.same_area.as_deref(), Some("G"));
        assert_eq!(
            d.rules.long_distance.as_deref(),
            Some(format!("{np}FG").as_str())
        );
        assert_eq!(
            d.rules.international.as_deref(),
            Some(format!("{ip}EFG").as_str())
        );
    }
}

#[test]
fn same_area_long_distance_international_from_each_country() {
    for &(cc, _, np, ip, area, other) in COUNTRIES {
        let l = Location::new(format!("loc{cc}"), cc, area);
        let t = |a: &str| {
            translate_address(a, &l, None, TranslateOptions::NONE)
                .unwrap_or_else(|e| panic!("{cc} {a}: {e}"))
        };
        let same = if area.is_empty() {
            format!("+{cc} 555 0123")
        } else {
            format!("+{cc} ({area}) 555 0123")
        };
        let out = t(&same);
        assert_eq!(out.dialable, "T5550123", "{cc} same area");
        assert!(out.results.contains(R::Local), "{cc}");

        let out = t(&format!("+{cc} ({other}) 555 0123"));
        assert_eq!(
            out.dialable,
            format!("T{np}{other}5550123"),
            "{cc} long distance"
        );
        assert!(out.results.contains(R::LongDistance), "{cc}");

        let (foreign, digits) = if cc == 1 {
            ("+44 (20) 7946 0958", "442079460958")
        } else {
            ("+1 (425) 882-8080", "14258828080")
        };
        let out = t(foreign);
        assert_eq!(out.dialable, format!("T{ip}{digits}"), "{cc} international");
        let mut expected = vec![R::International];
        if ip.contains('W') {
            expected.push(R::DialDialTone);
        }
        assert_eq!(out.results.iter().collect::<Vec<_>>(), expected, "{cc}");
        assert_eq!(out.current_country_code, cc);
    }
}

#[test]
fn most_country_codes_have_defaults() {
    let known = (1..=999u16)
        .filter(|cc| country_defaults(*cc).is_some())
        .count();
    assert!(known > 200, "{known}");
    assert!(country_defaults(0).is_none());
    assert!(country_defaults(999).is_none());
}
