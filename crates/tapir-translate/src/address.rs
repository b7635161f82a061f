//! TAPI's address text: the canonical format
//! (`+CountryCode (AreaCode) Subscriber|Subaddress^Name`, several addresses
//! separated by CRLF) and the dialable format (anything not starting with
//! `+`). This module owns parsing, validation and formatting of both; it
//! knows nothing about locations or dialing rules.

use std::fmt;
use std::str::FromStr;

use crate::error::{AddressProblem, TranslateError};

/// True for the dial digits and dial-control characters of TAPI's dialable
/// format: `0-9 A-D * #`, hook flash `!`, pulse/tone `P p T t`, pause `,`,
/// wait for dial tone `W w`, quiet answer `@`, billing tone `$`, prompt `?`,
/// partial dialing `;` and voice detection `:`.
pub fn is_dial_character(c: char) -> bool {
    matches!(
        c,
        '0'..='9'
            | 'A'..='D'
            | '*'
            | '#'
            | '!'
            | 'P'
            | 'p'
            | 'T'
            | 't'
            | ','
            | 'W'
            | 'w'
            | '@'
            | '$'
            | '?'
            | ';'
            | ':'
    )
}

/// True for the formatting characters allowed in a canonical subscriber
/// number (space, `.`, `-`); they are kept in the displayable string and
/// stripped from the dialable one.
pub fn is_formatting_character(c: char) -> bool {
    matches!(c, ' ' | '.' | '-')
}

/// Formatting allowed in a dialable (non-canonical) number in addition to
/// [`is_formatting_character`]: `( ) /`, and `+` (fully qualified number).
fn is_dialable_extra(c: char) -> bool {
    matches!(c, '(' | ')' | '/' | '+')
}

/// One address in TAPI's canonical format:
/// `+CountryCode (AreaCode) SubscriberNumber|Subaddress^Name`.
///
/// The fields keep the text as written (the subscriber with its
/// formatting), so that formatting a parsed address gives the same text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalAddress {
    /// Country calling code (1 to 3 digits, no leading zero).
    pub country_code: u16,
    /// Area (city) code: `None` when the address has no parentheses,
    /// `Some("")` for an explicit empty `()`.
    pub area_code: Option<String>,
    /// Subscriber number as written, with formatting and dial-control
    /// characters.
    pub subscriber: String,
    /// ISDN subaddress (or e-mail address) after `|`.
    pub subaddress: Option<String>,
    /// ISDN name after `^`.
    pub name: Option<String>,
}

impl CanonicalAddress {
    /// Parses exactly one canonical address (no CRLF).
    pub fn parse(text: &str) -> Result<Self, TranslateError> {
        match parse_one(text, text, 0)? {
            Address::Canonical(address) => Ok(address),
            Address::Dialable(_) => Err(TranslateError::address(
                AddressProblem::CountryCodeMissing,
                text,
                0,
            )),
        }
    }

    /// The area code's digits, empty when there is none.
    pub fn area_code_digits(&self) -> &str {
        self.area_code.as_deref().unwrap_or("")
    }

    /// The subscriber number with its formatting characters removed, as it
    /// goes into a dialable string.
    pub fn dialable_subscriber(&self) -> String {
        self.subscriber
            .chars()
            .filter(|c| !is_formatting_character(*c))
            .collect()
    }
}

impl fmt::Display for CanonicalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{} ", self.country_code)?;
        if let Some(area) = &self.area_code {
            write!(f, "({area}) ")?;
        }
        f.write_str(&self.subscriber)?;
        write_tail(f, self.subaddress.as_deref(), self.name.as_deref())
    }
}

impl FromStr for CanonicalAddress {
    type Err = TranslateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One address in TAPI's dialable format: `DialableNumber|Subaddress^Name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialableAddress {
    /// The number as written, with formatting and dial-control characters.
    pub number: String,
    /// ISDN subaddress after `|`.
    pub subaddress: Option<String>,
    /// ISDN name after `^`.
    pub name: Option<String>,
}

impl fmt::Display for DialableAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)?;
        write_tail(f, self.subaddress.as_deref(), self.name.as_deref())
    }
}

fn write_tail(f: &mut fmt::Formatter<'_>, sub: Option<&str>, name: Option<&str>) -> fmt::Result {
    if let Some(sub) = sub {
        write!(f, "|{sub}")?;
    }
    if let Some(name) = name {
        write!(f, "^{name}")?;
    }
    Ok(())
}

/// One address: canonical when the text starts with `+`, dialable
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// Canonical format (`+…`).
    Canonical(CanonicalAddress),
    /// Dialable (non-canonical) format, passed through by translation.
    Dialable(DialableAddress),
}

impl Address {
    /// Parses exactly one address (no CRLF).
    pub fn parse(text: &str) -> Result<Self, TranslateError> {
        if let Some(i) = text.find(['\r', '\n']) {
            return Err(TranslateError::address(
                AddressProblem::LoneLineBreak,
                text,
                i,
            ));
        }
        parse_one(text, text, 0)
    }

    /// True when the address is in canonical format.
    pub fn is_canonical(&self) -> bool {
        matches!(self, Self::Canonical(_))
    }

    /// The subaddress, if any.
    pub fn subaddress(&self) -> Option<&str> {
        match self {
            Self::Canonical(a) => a.subaddress.as_deref(),
            Self::Dialable(a) => a.subaddress.as_deref(),
        }
    }

    /// The name, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Canonical(a) => a.name.as_deref(),
            Self::Dialable(a) => a.name.as_deref(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Canonical(a) => a.fmt(f),
            Self::Dialable(a) => a.fmt(f),
        }
    }
}

impl FromStr for Address {
    type Err = TranslateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The addresses of one string, separated by CRLF (TAPI's inverse
/// multiplexing). Never empty; each address is parsed on its own, so
/// canonical and dialable ones may be mixed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressList {
    first: Address,
    rest: Vec<Address>,
}

impl AddressList {
    /// Parses a string of one or more CRLF-separated addresses. Every
    /// address must be valid; a lone CR or LF, or an empty address, is an
    /// error.
    pub fn parse(text: &str) -> Result<Self, TranslateError> {
        let mut offset = 0;
        let mut parts = text.split("\r\n").map(|part| {
            let base = offset;
            offset += part.len() + 2;
            if let Some(i) = part.find(['\r', '\n']) {
                return Err(TranslateError::address(
                    AddressProblem::LoneLineBreak,
                    text,
                    base + i,
                ));
            }
            parse_one(text, part, base)
        });
        let first = match parts.next() {
            Some(first) => first?,
            None => return Err(TranslateError::address(AddressProblem::Empty, text, 0)),
        };
        let rest = parts.collect::<Result<Vec<_>, _>>()?;
        Ok(Self { first, rest })
    }

    /// The first address, the one that `lineTranslateAddress` translates.
    pub fn first(&self) -> &Address {
        &self.first
    }

    /// All addresses in order.
    pub fn iter(&self) -> impl Iterator<Item = &Address> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    /// Number of addresses (at least one).
    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// Always false: a list holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for AddressList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.first.fmt(f)?;
        for address in &self.rest {
            f.write_str("\r\n")?;
            address.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for AddressList {
    type Err = TranslateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Parses one CRLF-free `part` of `full` that starts at byte `base`.
fn parse_one(full: &str, part: &str, base: usize) -> Result<Address, TranslateError> {
    let err = |problem, i: usize| TranslateError::address(problem, full, base + i);
    if part.is_empty() {
        return Err(err(AddressProblem::Empty, 0));
    }
    if part.starts_with('+') {
        parse_canonical(part)
            .map_err(|(p, i)| err(p, i))
            .map(Address::Canonical)
    } else {
        let end = part.find(['|', '^']).unwrap_or(part.len());
        let number = part.get(..end).unwrap_or(part);
        check_number(number, false).map_err(|(p, i)| err(p, i))?;
        let (subaddress, name) = parse_tail(part, end).map_err(|(p, i)| err(p, i))?;
        Ok(Address::Dialable(DialableAddress {
            number: number.to_owned(),
            subaddress,
            name,
        }))
    }
}

type PartResult<T> = Result<T, (AddressProblem, usize)>;

fn parse_canonical(part: &str) -> PartResult<CanonicalAddress> {
    let b = part.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let mut i = 1;
    while at(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    let cc = part.get(1..i).unwrap_or("");
    if cc.is_empty() {
        return Err((AddressProblem::CountryCodeMissing, i));
    }
    if cc.len() > 3 {
        return Err((AddressProblem::CountryCodeTooLong, 1));
    }
    if cc.starts_with('0') {
        return Err((AddressProblem::CountryCodeLeadingZero, 1));
    }
    let country_code: u16 = cc
        .parse()
        .map_err(|_| (AddressProblem::CountryCodeTooLong, 1))?;
    if at(i) != Some(b' ') {
        return Err((AddressProblem::SpaceAfterCountryCode, i));
    }
    i += 1;
    if at(i) == Some(b' ') {
        return Err((AddressProblem::SpaceAfterCountryCode, i));
    }
    let area_code = if at(i) == Some(b'(') {
        let start = i + 1;
        let mut j = start;
        loop {
            match part.get(j..).and_then(|s| s.chars().next()) {
                None => return Err((AddressProblem::AreaCodeUnclosed, i)),
                Some(')') => break,
                Some(c) if c.is_ascii_digit() => j += 1,
                Some(c) => return Err((AddressProblem::AreaCodeCharacter(c), j)),
            }
        }
        let area = part.get(start..j).unwrap_or("").to_owned();
        i = j + 1;
        if at(i) != Some(b' ') {
            return Err((AddressProblem::SpaceAfterAreaCode, i));
        }
        i += 1;
        if at(i) == Some(b' ') {
            return Err((AddressProblem::SpaceAfterAreaCode, i));
        }
        Some(area)
    } else {
        None
    };
    let rest = part.get(i..).unwrap_or("");
    let end = i + rest.find(['|', '^']).unwrap_or(rest.len());
    let subscriber = part.get(i..end).unwrap_or("");
    check_number(subscriber, true).map_err(|(p, k)| (p, i + k))?;
    let (subaddress, name) = parse_tail(part, end)?;
    Ok(CanonicalAddress {
        country_code,
        area_code,
        subscriber: subscriber.to_owned(),
        subaddress,
        name,
    })
}

/// Checks a subscriber (canonical) or dialable number; offsets are
/// relative to `number`.
fn check_number(number: &str, canonical: bool) -> PartResult<()> {
    let mut has_digit = false;
    let mut has_dial = false;
    for (i, c) in number.char_indices() {
        if c == ';' && i + 1 != number.len() {
            return Err((AddressProblem::SemicolonNotLast, i));
        }
        if is_dial_character(c) {
            has_dial = true;
            has_digit |= c.is_ascii_digit();
        } else if !(is_formatting_character(c) || (!canonical && is_dialable_extra(c))) {
            return Err((AddressProblem::NumberCharacter(c), i));
        }
    }
    if number.is_empty() || (!canonical && !has_dial) {
        return Err((AddressProblem::NumberMissing, 0));
    }
    if canonical && !has_digit {
        return Err((AddressProblem::SubscriberWithoutDigit, 0));
    }
    Ok(())
}

/// Parses `|Subaddress^Name` starting at byte `i` of `part` (which is at
/// `|`, `^` or the end).
fn parse_tail(part: &str, mut i: usize) -> PartResult<(Option<String>, Option<String>)> {
    let check_controls = |s: &str, start: usize| match s.find(char::is_control) {
        Some(k) => Err((AddressProblem::ControlCharacter, start + k)),
        None => Ok(()),
    };
    let mut subaddress = None;
    let mut name = None;
    if part.get(i..).is_some_and(|s| s.starts_with('|')) {
        let start = i + 1;
        let rest = part.get(start..).unwrap_or("");
        let len = rest.find(['|', '^', '+']).unwrap_or(rest.len());
        let sub = rest.get(..len).unwrap_or("");
        if sub.is_empty() {
            return Err((AddressProblem::SubaddressEmpty, i));
        }
        check_controls(sub, start)?;
        i = start + len;
        if let Some(c @ ('|' | '+')) = part.get(i..).and_then(|s| s.chars().next()) {
            return Err((AddressProblem::AfterSubaddress(c), i));
        }
        subaddress = Some(sub.to_owned());
    }
    if part.get(i..).is_some_and(|s| s.starts_with('^')) {
        let text = part.get(i + 1..).unwrap_or("");
        if text.is_empty() {
            return Err((AddressProblem::NameEmpty, i));
        }
        check_controls(text, i + 1)?;
        name = Some(text.to_owned());
    }
    Ok((subaddress, name))
}
