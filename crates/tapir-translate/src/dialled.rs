//! Where a dialled string leads from a location: inside the location's
//! country or abroad. The switch uses it for the outbound permission of a
//! line (`national` lines may not reach another country).
//!
//! The definition follows TAPI's own classification of a canonical
//! address (`lineTranslateAddress` sets `international` when the
//! destination's country code differs from the location's), applied to
//! the digits a switch routes on:
//!
//! * `+CC…` (E.164) is international when `CC` is not the location's
//!   country code, or is no country code libphonenumber knows;
//! * a string that starts with the location's international prefix (the
//!   country's, `011` in the US and `00` in most of the world, and the
//!   literal digits that open the location's own international rule),
//!   optionally after the location's local or long-distance access code
//!   (`9`), is international unless the country code after it is the
//!   location's own;
//! * anything else is dialled within the country: national.
//!
//! Countries that share a country code are one country here, as they are
//! for TAPI, with one exception that toll fraud depends on: from a location
//! in the North American Numbering Plan (`1`), a number in one of the plan's
//! other countries (the Caribbean nations and Bermuda: 1-876 Jamaica, 1-809
//! the Dominican Republic, 1-284 the British Virgin Islands, ...) is
//! international, as carriers bill it, although it is dialled like a
//! national one. The United States, Canada and the US territories stay
//! national. libphonenumber's metadata tells the region of a number.

use crate::location::Location;
use crate::rules::{CallClass, country_defaults};

/// True when `dialled` (digits, `*`, `#`, optionally a leading `+`;
/// formatting characters are skipped) reaches a country other than
/// `location`'s. See the module documentation for the rules.
pub fn is_international(dialled: &str, location: &Location) -> bool {
    let plus = dialled.trim_start().starts_with('+');
    let digits: String = dialled.chars().filter(char::is_ascii_digit).collect();
    let nanp = location.country_code == NANP;
    if plus {
        return country_code_of(&digits) != Some(location.country_code)
            || (nanp && nanp_abroad(&digits[1..]));
    }
    for prefix in international_prefixes(location) {
        if let Some(rest) = digits.strip_prefix(prefix.as_str()) {
            return country_code_of(rest) != Some(location.country_code)
                || (nanp && nanp_abroad(rest.get(1..).unwrap_or_default()));
        }
    }
    nanp && national_forms(&digits, location).any(nanp_abroad)
}

/// The emergency numbers of the country with calling code `country_code`,
/// with 112 (answered by every GSM network) for every country.
///
/// Written by hand: libphonenumber keeps emergency numbers in its short
/// number metadata, which the `phonenumber` crate does not compile in. The
/// table names the national numbers of the larger markets; a switch
/// elsewhere lists its own in the configuration.
pub fn emergency_numbers(country_code: u16) -> &'static [&'static str] {
    match country_code {
        1 => &["911", "112"],
        7 => &["112", "101", "102", "103"],
        27 => &["10111", "10177", "112"],
        33 => &["112", "15", "17", "18", "114"],
        34 => &["112", "091", "092", "061", "080"],
        39 => &["112", "113", "115", "118"],
        44 => &["999", "112"],
        49 => &["112", "110"],
        52 => &["911", "112"],
        55 => &["190", "192", "193", "112"],
        61 => &["000", "112", "106"],
        64 => &["111", "112"],
        81 => &["110", "118", "119"],
        82 => &["112", "119"],
        86 => &["110", "119", "120", "122"],
        91 => &["112", "100", "101", "102", "108"],
        _ => &["112"],
    }
}

/// The North American Numbering Plan's country calling code.
const NANP: u16 = 1;

/// The plan's regions that a North American location calls nationally: the
/// United States, Canada and the US territories.
const NANP_DOMESTIC: [&str; 7] = ["US", "CA", "PR", "VI", "GU", "AS", "MP"];

/// Whether `national` (ten digits NPA-NXX-XXXX, optionally after the
/// national prefix `1`) is a number of another NANP country.
fn nanp_abroad(national: &str) -> bool {
    let ten = match national.len() {
        11 => national.strip_prefix('1').unwrap_or(national),
        _ => national,
    };
    if ten.len() != 10 {
        return false;
    }
    let Ok(number) = phonenumber::parse(None, format!("+1{ten}")) else {
        return false;
    };
    let region = number.country().id().map(|id| id.as_ref().to_owned());
    region.is_some_and(|r| !NANP_DOMESTIC.contains(&r.as_str()))
}

/// `digits` as dialled and with each of the location's access codes (`9`)
/// removed.
fn national_forms<'a>(digits: &'a str, location: &Location) -> impl Iterator<Item = &'a str> {
    let stripped: Vec<&str> = access_codes(location)
        .iter()
        .filter_map(|a| digits.strip_prefix(a.as_str()))
        .collect();
    std::iter::once(digits).chain(stripped)
}

/// The digits of the location's local and long-distance access codes, the
/// empty ones left out.
fn access_codes(location: &Location) -> Vec<String> {
    [&location.local_access, &location.long_distance_access]
        .into_iter()
        .map(|a| a.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|a| !a.is_empty())
        .collect()
}

/// The country calling code `digits` starts with (country codes are
/// prefix-free), if libphonenumber knows one.
fn country_code_of(digits: &str) -> Option<u16> {
    (1..=3).find_map(|n| {
        let code: u16 = digits.get(..n)?.parse().ok()?;
        country_defaults(code).map(|d| d.country_code)
    })
}

/// The digit strings that open an international call from `location`,
/// longest first: the country's international prefix and the leading
/// digits of the location's international rule, each also after the
/// location's access codes.
fn international_prefixes(location: &Location) -> Vec<String> {
    let mut bare: Vec<String> = Vec::new();
    if let Some(d) = location.country_defaults() {
        bare.push(
            d.international_prefix
                .chars()
                .filter(char::is_ascii_digit)
                .collect(),
        );
    }
    if let Ok(rule) = location.rule(CallClass::International) {
        // Literal digits up to the first letter that stands for something
        // (`E`, `F`, `G`, a card, a carrier); `T`, `P` and pauses are skipped.
        let lead: String = rule
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, 'T' | 'P' | ',' | 'W'))
            .filter(char::is_ascii_digit)
            .collect();
        bare.push(lead);
    }
    let access = access_codes(location);
    let mut all: Vec<String> = Vec::new();
    for p in bare.iter().filter(|p| !p.is_empty()) {
        all.push(p.clone());
        for a in &access {
            all.push(format!("{a}{p}"));
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.len()));
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Location {
        Location::new("seattle", 1, "206")
    }

    fn gb() -> Location {
        Location::new("london", 44, "20")
    }

    #[test]
    fn e164_numbers_are_international_when_their_country_differs() {
        assert!(!is_international("+14258828080", &us()));
        assert!(!is_international("+1 (425) 882-8080", &us()));
        assert!(is_international("+442079460000", &us()));
        assert!(!is_international("+442079460000", &gb()));
        assert!(is_international("+4930123", &gb()));
        // No known country code: not national either.
        assert!(is_international("+999123", &us()));
        assert!(is_international("+", &us()));
    }

    #[test]
    fn the_international_prefix_of_the_location_opens_an_international_call() {
        assert!(is_international("011442079460000", &us()));
        assert!(is_international("0033123456789", &gb()));
        assert!(is_international("0049301234", &gb()));
        // The location's own country after the prefix stays national.
        assert!(!is_international("0044207946", &gb()));
        assert!(!is_international("0111425882", &us()));
        // `00` is not the US international prefix: a national number there.
        assert!(!is_international("0049301234", &us()));
    }

    #[test]
    fn national_numbers_and_extensions_are_not_international() {
        for n in ["4258828080", "14258828080", "5551234", "1001", "*72", "911"] {
            assert!(!is_international(n, &us()), "{n}");
        }
        for n in ["02079460000", "07700900123", "999", "112"] {
            assert!(!is_international(n, &gb()), "{n}");
        }
    }

    #[test]
    fn other_nanp_countries_are_international_from_north_america() {
        // Jamaica, the Dominican Republic, the British Virgin Islands and
        // Bermuda, in every form a US phone dials them.
        for n in [
            "18765551234",
            "8765551234",
            "+18095551234",
            "+1 (284) 555-1234",
            "0111 441 555 1234",
            "14412345678",
        ] {
            assert!(is_international(n, &us()), "{n}");
        }
        // Canada, Puerto Rico and the US stay national.
        for n in ["14165551234", "+16045551234", "17875551234", "2065551234"] {
            assert!(!is_international(n, &us()), "{n}");
        }
        // From London, Jamaica was international already; from a US
        // location behind an access code too.
        assert!(is_international("0018765551234", &gb()));
        let mut office = us();
        office.local_access = "9".into();
        assert!(is_international("918765551234", &office));
        assert!(!is_international("914165551234", &office));
    }

    #[test]
    fn every_country_has_emergency_numbers_with_112() {
        assert_eq!(emergency_numbers(1), ["911", "112"]);
        assert!(emergency_numbers(44).contains(&"999"));
        for code in [1, 7, 33, 44, 49, 61, 81, 86, 91, 998] {
            assert!(!emergency_numbers(code).is_empty(), "{code}");
        }
        assert!(emergency_numbers(998).contains(&"112"));
    }

    #[test]
    fn access_codes_and_own_rules_are_seen_through() {
        let mut office = us();
        office.local_access = "9".into();
        office.long_distance_access = "8".into();
        assert!(is_international("9011442079460000", &office));
        assert!(is_international("8011442079460000", &office));
        assert!(!is_international("914258828080", &office));
        let mut own = gb();
        own.rules.international = Some("T0,0EFG".into());
        assert!(is_international("0033123456", &own));
        let mut carrier = gb();
        carrier.rules.international = Some("1600EFG".into());
        assert!(is_international("160033123456", &carrier));
        assert!(
            is_international("0033123456", &carrier),
            "the country's prefix too"
        );
    }
}
