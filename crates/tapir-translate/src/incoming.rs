//! The reverse direction, for incoming calls: a caller number as a trunk
//! delivers it (national, international with the location's prefix, or
//! E.164) becomes a canonical address for display, given the trunk's
//! location. libphonenumber (the `phonenumber` crate) does the parsing;
//! this module only splits its international format into TAPI's area
//! code and subscriber number.

use std::fmt::Write as _;

use phonenumber::Mode;

use crate::address::{Address, CanonicalAddress, DialableAddress};
use crate::error::TranslateError;
use crate::location::Location;

/// Normalises a caller number received at `location` to a canonical
/// address (`+44 (20) 7946 0958`), the area code being the first group of
/// libphonenumber's international format. Input already in canonical form
/// is returned as it is; E.164 (`+442079460958`) is accepted.
///
/// Numbers libphonenumber does not take as valid in the location's country
/// (internal extensions such as `1001`, feature codes) are tried once more
/// with the location's national prefix and area code in front (a local
/// number without its area code); failing that they are returned as they
/// are, as a dialable address. Text that is not even valid dialable text is
/// `invaladdress`.
pub fn normalize_caller(number: &str, location: &Location) -> Result<Address, TranslateError> {
    // E.164 ("+14258828080") is not canonical (no space after the country
    // code): read it as dialable text after its "+".
    let (address, plus) = match (Address::parse(number), number.strip_prefix('+')) {
        (Ok(Address::Canonical(c)), _) => return Ok(Address::Canonical(c)),
        (Ok(address), _) => (address, ""),
        (Err(e), Some(rest)) => match Address::parse(rest) {
            Ok(Address::Dialable(d)) => (
                Address::Dialable(DialableAddress {
                    number: format!("+{}", d.number),
                    ..d
                }),
                "+",
            ),
            _ => return Err(e),
        },
        (Err(e), None) => return Err(e),
    };
    let Address::Dialable(DialableAddress {
        number: text,
        subaddress,
        name,
    }) = &address
    else {
        return Ok(address);
    };
    let digits: String = plus
        .chars()
        .chain(text.chars().filter(char::is_ascii_digit))
        .collect();
    if digits.len() < 2 {
        return Ok(address);
    }
    let defaults = location.country_defaults();
    let region = defaults.and_then(|d| d.region.parse::<phonenumber::country::Id>().ok());
    let parse = |s: &str| {
        phonenumber::parse(region, s)
            .ok()
            .filter(phonenumber::PhoneNumber::is_valid)
    };
    let found = parse(&digits).or_else(|| {
        if digits.starts_with('+') || location.area_code.is_empty() {
            return None;
        }
        let national_prefix = defaults
            .and_then(|d| d.national_prefix.as_deref())
            .unwrap_or("");
        parse(&format!("{national_prefix}{}{digits}", location.area_code))
    });
    let Some(found) = found else {
        return Ok(address);
    };
    let mut international = String::new();
    if write!(
        international,
        "{}",
        found.format().mode(Mode::International)
    )
    .is_err()
    {
        return Ok(address);
    }
    let country_code = found.code().value();
    let prefix = format!("+{country_code} ");
    let rest = international
        .strip_prefix(&prefix)
        .unwrap_or(&international);
    let (area_code, subscriber) = match rest.split_once([' ', '-']) {
        Some((area, subscriber)) if area.chars().all(|c| c.is_ascii_digit()) => {
            (Some(area.to_owned()), subscriber.to_owned())
        }
        _ => (None, found.national().to_string()),
    };
    let canonical = CanonicalAddress {
        country_code,
        area_code,
        subscriber,
        subaddress: subaddress.clone(),
        name: name.clone(),
    };
    // Only hand out what the canonical parser accepts.
    match CanonicalAddress::parse(&canonical.to_string()) {
        Ok(_) => Ok(Address::Canonical(canonical)),
        Err(_) => Ok(Address::Dialable(DialableAddress {
            number: text.clone(),
            subaddress: subaddress.clone(),
            name: name.clone(),
        })),
    }
}
