//! Dialing rules: TAPI's rule strings for same-area, long-distance and
//! international calls, the rule letters they may hold, and each
//! country's default rules derived from libphonenumber's metadata (its
//! national and international prefixes). This module owns the rule
//! vocabulary; assembling a whole dialable string is in `translate`.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The class of a call relative to a location, which picks the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallClass {
    /// Same country and area code (TAPI's SameAreaRule).
    SameArea,
    /// Same country, other area code (TAPI's LongDistanceRule).
    LongDistance,
    /// Other country (TAPI's InternationalRule).
    International,
}

impl fmt::Display for CallClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SameArea => "same-area",
            Self::LongDistance => "long-distance",
            Self::International => "international",
        })
    }
}

/// The three rule strings of a location, calling card or country, in
/// TAPI's rule letters. A rule left out (`None`) falls back to the
/// country's default.
///
/// Rule letters (TAPI, KB 167220 and KB 820886):
///
/// | letter | meaning |
/// |---|---|
/// | `0-9 A-D * #` | dialed literally (`A-D * #` tone only) |
/// | `E` | destination country code |
/// | `F` | destination area (city) code |
/// | `G` | destination subscriber number |
/// | `H` | calling-card number: the card's number followed by its PIN |
/// | `J` | the calling card's access number for this class of call (tapir extension) |
/// | `T` / `P` | tone / pulse for what follows |
/// | `,` | pause |
/// | `!` | hook flash |
/// | `W` | wait for a second dial tone |
/// | `@` | wait for quiet answer |
/// | `$` | wait for the calling-card prompt tone |
/// | `?` | stop and let the user continue |
/// | `L` / `M` | mandatory long-distance / international carrier code (the location's) |
/// | `N` / `S` | optional long-distance / international carrier code (the location's, if any) |
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DialingRules {
    /// Rule for calls within the same area code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_area: Option<String>,
    /// Rule for long-distance calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_distance: Option<String>,
    /// Rule for international calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub international: Option<String>,
}

impl DialingRules {
    /// Rules with all three strings given.
    pub fn new(
        same_area: impl Into<String>,
        long_distance: impl Into<String>,
        international: impl Into<String>,
    ) -> Self {
        Self {
            same_area: Some(same_area.into()),
            long_distance: Some(long_distance.into()),
            international: Some(international.into()),
        }
    }

    /// True when no rule is given (serialization leaves `rules` out then).
    pub fn is_empty(&self) -> bool {
        self.same_area.is_none() && self.long_distance.is_none() && self.international.is_none()
    }

    /// True when all three rules are given.
    pub fn is_complete(&self) -> bool {
        self.same_area.is_some() && self.long_distance.is_some() && self.international.is_some()
    }

    /// The rule for a class of call, if given.
    pub fn get(&self, class: CallClass) -> Option<&str> {
        match class {
            CallClass::SameArea => self.same_area.as_deref(),
            CallClass::LongDistance => self.long_distance.as_deref(),
            CallClass::International => self.international.as_deref(),
        }
    }

    /// Checks every given rule; on error returns the class and the first
    /// character that is not a rule letter.
    pub fn check(&self) -> Result<(), (CallClass, char)> {
        for class in [
            CallClass::SameArea,
            CallClass::LongDistance,
            CallClass::International,
        ] {
            if let Some(rule) = self.get(class) {
                check_rule(rule).map_err(|c| (class, c))?;
            }
        }
        Ok(())
    }
}

/// True for a character allowed in a dialing rule (see [`DialingRules`]).
pub fn is_rule_letter(c: char) -> bool {
    matches!(
        c,
        '0'..='9'
            | 'A'..='D'
            | '*'
            | '#'
            | 'E'
            | 'F'
            | 'G'
            | 'H'
            | 'J'
            | 'T'
            | 'P'
            | ','
            | '!'
            | 'W'
            | '@'
            | '$'
            | '?'
            | 'L'
            | 'M'
            | 'N'
            | 'S'
    )
}

/// Checks one rule string, returning the first character that is not a
/// rule letter.
pub fn check_rule(rule: &str) -> Result<(), char> {
    match rule.chars().find(|c| !is_rule_letter(*c)) {
        Some(c) => Err(c),
        None => Ok(()),
    }
}

/// A country's direct-dial defaults, derived from libphonenumber's
/// metadata for the main region of a country calling code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryDefaults {
    /// Country calling code.
    pub country_code: u16,
    /// ISO 3166 region of libphonenumber's main country for the code
    /// (`US` for 1, `RU` for 7).
    pub region: String,
    /// National (trunk) prefix dialed before the area code on
    /// long-distance calls, if the country has one (`1` in the US, `0` in
    /// GB and DE).
    pub national_prefix: Option<String>,
    /// International prefix, as a rule (`011` in the US, `00` in GB and
    /// DE; libphonenumber's `~` "wait for dial tone" becomes `W`).
    pub international_prefix: String,
    /// The default rules: same area `G`, long distance national prefix +
    /// `FG`, international international prefix + `EFG`.
    pub rules: DialingRules,
}

/// Default rules for a country calling code, or `None` when
/// libphonenumber has no dialing data for it. Computed once for all
/// countries on first use.
pub fn country_defaults(country_code: u16) -> Option<&'static CountryDefaults> {
    static TABLE: OnceLock<HashMap<u16, CountryDefaults>> = OnceLock::new();
    TABLE.get_or_init(build_defaults).get(&country_code)
}

fn build_defaults() -> HashMap<u16, CountryDefaults> {
    use phonenumber::metadata::DATABASE;
    let mut table = HashMap::new();
    for meta in DATABASE.iter() {
        let code = meta.country_code();
        if table.contains_key(&code) {
            continue;
        }
        // The main country for the code comes first.
        let Some(main) = DATABASE.by_code(&code).and_then(|v| v.first().copied()) else {
            continue;
        };
        let Some(international_prefix) = international_prefix(main) else {
            continue;
        };
        let national_prefix = main
            .national_prefix()
            .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned);
        let rules = DialingRules::new(
            "G",
            format!("{}FG", national_prefix.as_deref().unwrap_or("")),
            format!("{international_prefix}EFG"),
        );
        table.insert(
            code,
            CountryDefaults {
                country_code: code,
                region: main.id().to_owned(),
                national_prefix,
                international_prefix,
                rules,
            },
        );
    }
    table
}

/// The preferred international prefix, else the prefix when it is a plain
/// digit string, else the first string its pattern matches (first
/// alternative, first character of each class, optional groups left out),
/// else `00` (ITU-T E.164's recommended prefix).
fn international_prefix(meta: &phonenumber::Metadata) -> Option<String> {
    let as_rule = |p: &str| -> Option<String> {
        let rule: String = p.chars().map(|c| if c == '~' { 'W' } else { c }).collect();
        (!rule.is_empty() && rule.chars().all(|c| c.is_ascii_digit() || c == 'W')).then_some(rule)
    };
    if let Some(rule) = meta.preferred_international_prefix().and_then(as_rule) {
        return Some(rule);
    }
    let pattern = meta.international_prefix()?.as_str();
    Some(
        as_rule(pattern)
            .or_else(|| first_match(pattern))
            .unwrap_or_else(|| "00".to_owned()),
    )
}

/// The first digit string matched by a small regular expression made of
/// digits, `[…]` classes, `\d`, `(?:…|…)` groups (optionally `?`) and `|`;
/// `None` for anything else.
fn first_match(pattern: &str) -> Option<String> {
    let p: Vec<char> = pattern.chars().collect();
    let closing = |open: usize| -> Option<usize> {
        let mut depth = 0usize;
        for (k, c) in p.iter().enumerate().skip(open) {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(k);
                    }
                }
                _ => {}
            }
        }
        None
    };
    let mut out = String::new();
    let mut groups: Vec<usize> = Vec::new();
    let mut i = 0;
    while let Some(&c) = p.get(i) {
        match c {
            '0'..='9' => {
                out.push(c);
                i += 1;
            }
            '[' => {
                out.push(*p.get(i + 1).filter(|d| d.is_ascii_digit())?);
                i += p.iter().skip(i).position(|&d| d == ']')? + 1;
            }
            '\\' if p.get(i + 1) == Some(&'d') => {
                out.push('1');
                i += 2;
            }
            '(' => {
                let end = closing(i)?;
                if p.get(end + 1) == Some(&'?') {
                    i = end + 2;
                } else {
                    groups.push(end);
                    i += if p.get(i + 1) == Some(&'?') { 3 } else { 1 };
                }
            }
            '|' => match groups.last() {
                Some(&end) => i = end,
                None => break,
            },
            ')' => {
                groups.pop();
                i += 1;
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}
