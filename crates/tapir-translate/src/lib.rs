#![cfg_attr(test, allow(clippy::unwrap_used))]
//! TAPI address translation (`lineTranslateAddress` /
//! `ITAddressTranslation`) as a pure library: no I/O, no clock.
//!
//! * [`address`] parses and formats TAPI's canonical
//!   (`+1 (425) 882-8080|sub^Name`) and dialable address formats.
//! * [`rules`] holds the dialing-rule letters and each country's default
//!   rules, derived from libphonenumber's metadata.
//! * [`location`] holds locations, calling cards and [`TranslateCaps`].
//! * [`translate`] turns an address into a dialable string, a displayable
//!   string, a destination country code and the result flags.
//! * [`dialled`] tells whether a dialled string leaves the location's
//!   country (the outbound permission of a line).
//! * [`incoming`] goes the other way: a caller number received on a trunk
//!   becomes a canonical address for display.
//!
//! The PIN of a calling card never leaves the dialable string: it is not
//! serialized, not shown by `Debug`, and the displayable string shows the
//! card's name in brackets (`[AT&T]`) where the card number and PIN are
//! dialed, as TAPI does.
//!
//! ```
//! use tapir_translate::{Location, TranslateOptions, translate_address};
//!
//! let seattle = Location::new("home", 1, "206");
//! let out = translate_address("+1 (425) 882-8080", &seattle, None, TranslateOptions::NONE)?;
//! assert_eq!(out.dialable, "T14258828080");
//! assert_eq!(out.displayable, "T1425882-8080");
//! # Ok::<(), tapir_translate::TranslateError>(())
//! ```

pub mod address;
pub mod dialled;
pub mod error;
pub mod incoming;
pub mod location;
pub mod rules;
pub mod translate;

#[cfg(test)]
mod tests;

pub use address::{Address, AddressList, CanonicalAddress, DialableAddress};
pub use dialled::{emergency_numbers, is_international};
pub use error::{AddressProblem, TranslateError};
pub use incoming::normalize_caller;
pub use location::{AccessNumbers, CallingCard, Location, TranslateCaps};
pub use rules::{CallClass, CountryDefaults, DialingRules, country_defaults};
pub use translate::{
    TranslateOption, TranslateOptions, TranslateOutput, TranslateResult, TranslateResults,
    translate_address,
};
