//! Errors of address translation: one enum whose variants are TAPI's
//! `LINEERR_` codes that `lineTranslateAddress` can return, each with a
//! human sentence saying what is wrong.

use std::fmt;

/// What is wrong with an address that is not valid canonical or dialable
/// text. Carried by [`TranslateError::InvalAddress`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressProblem {
    /// The string (or one of its CRLF-separated addresses) is empty.
    Empty,
    /// `+` is not followed by a country code.
    CountryCodeMissing,
    /// The country code has more than three digits.
    CountryCodeTooLong,
    /// The country code starts with `0`.
    CountryCodeLeadingZero,
    /// The country code is not followed by exactly one space.
    SpaceAfterCountryCode,
    /// The area code's `(` has no matching `)`.
    AreaCodeUnclosed,
    /// The area code holds something other than digits.
    AreaCodeCharacter(char),
    /// The area code's `)` is not followed by exactly one space.
    SpaceAfterAreaCode,
    /// There is no subscriber (or dialable) number before `|`, `^` or the end.
    NumberMissing,
    /// The subscriber number holds no digit.
    SubscriberWithoutDigit,
    /// A character that is not allowed in the subscriber or dialable number.
    NumberCharacter(char),
    /// `;` (more digits follow) is not at the end of the number.
    SemicolonNotLast,
    /// `|` is not followed by a subaddress.
    SubaddressEmpty,
    /// `^` is not followed by a name.
    NameEmpty,
    /// A subaddress is followed by a second `|` or by `+`.
    AfterSubaddress(char),
    /// A control character inside a subaddress or name.
    ControlCharacter,
    /// A carriage return not followed by a line feed, or a line feed
    /// without a carriage return before it.
    LoneLineBreak,
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the address is empty"),
            Self::CountryCodeMissing => f.write_str("the \"+\" must be followed by a country code"),
            Self::CountryCodeTooLong => f.write_str(
                "the country code has more than three digits (a canonical address has a space after it, as in \"+1 (425) 882-8080\")",
            ),
            Self::CountryCodeLeadingZero => f.write_str("a country code never starts with 0"),
            Self::SpaceAfterCountryCode => {
                f.write_str("the country code must be followed by exactly one space")
            }
            Self::AreaCodeUnclosed => f.write_str("the area code's \"(\" has no closing \")\""),
            Self::AreaCodeCharacter(c) => {
                write!(f, "the area code may hold only digits, not {c:?}")
            }
            Self::SpaceAfterAreaCode => {
                f.write_str("the area code's \")\" must be followed by exactly one space")
            }
            Self::NumberMissing => f.write_str("the telephone number is missing"),
            Self::SubscriberWithoutDigit => f.write_str("the subscriber number has no digit"),
            Self::NumberCharacter(c) => {
                write!(f, "{c:?} is not allowed in a telephone number")
            }
            Self::SemicolonNotLast => f.write_str("\";\" may only stand at the end of the number"),
            Self::SubaddressEmpty => f.write_str("\"|\" must be followed by a subaddress"),
            Self::NameEmpty => f.write_str("\"^\" must be followed by a name"),
            Self::AfterSubaddress(c) => {
                write!(f, "{c:?} cannot follow a subaddress")
            }
            Self::ControlCharacter => {
                f.write_str("a subaddress or name cannot hold control characters")
            }
            Self::LoneLineBreak => f.write_str(
                "addresses must be separated by a carriage return followed by a line feed",
            ),
        }
    }
}

/// Why a translation failed. [`code`](Self::code) gives the TAPI error
/// code (`LINEERR_` name in lower case, without the prefix); `Display`
/// gives a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranslateError {
    /// `LINEERR_INVALADDRESS`: the address is neither valid canonical nor
    /// valid dialable text.
    #[error("The address is not valid: {problem} (at character {position}).")]
    InvalAddress {
        /// What is wrong.
        problem: AddressProblem,
        /// 1-based character position in the input where the problem was found.
        position: usize,
    },
    /// `LINEERR_INVALCOUNTRYCODE`: a location's country code has no known
    /// dialing rules and the location does not give all of its own.
    #[error(
        "Country code {country_code} is not a known country calling code, and the location does not give its own dialing rules."
    )]
    InvalCountryCode {
        /// The country code in question.
        country_code: u16,
    },
    /// `LINEERR_INVALLOCATION`: the location is unknown or its data is
    /// not usable.
    #[error("The location is not usable: {reason}.")]
    InvalLocation {
        /// What is wrong with it.
        reason: String,
    },
    /// `LINEERR_INVALCARD`: the calling card is unknown or its data is not
    /// usable.
    #[error("The calling card is not usable: {reason}.")]
    InvalCard {
        /// What is wrong with it.
        reason: String,
    },
    /// `LINEERR_INVALPARAM`: a parameter (for instance the options) is not
    /// valid.
    #[error("A parameter is not valid: {reason}.")]
    InvalParam {
        /// What is wrong.
        reason: String,
    },
}

impl TranslateError {
    /// TAPI's error code in lower case without the `LINEERR_` prefix, as
    /// the HTTP API reports it (`invaladdress`, `invalcountrycode`,
    /// `invallocation`, `invalcard`, `invalparam`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalAddress { .. } => "invaladdress",
            Self::InvalCountryCode { .. } => "invalcountrycode",
            Self::InvalLocation { .. } => "invallocation",
            Self::InvalCard { .. } => "invalcard",
            Self::InvalParam { .. } => "invalparam",
        }
    }

    pub(crate) fn address(problem: AddressProblem, input: &str, byte_offset: usize) -> Self {
        let position = input
            .get(..byte_offset.min(input.len()))
            .map_or(byte_offset, |s| s.chars().count())
            + 1;
        Self::InvalAddress { problem, position }
    }

    pub(crate) fn location(reason: impl Into<String>) -> Self {
        Self::InvalLocation {
            reason: reason.into(),
        }
    }

    pub(crate) fn card(reason: impl Into<String>) -> Self {
        Self::InvalCard {
            reason: reason.into(),
        }
    }

    pub(crate) fn param(reason: impl Into<String>) -> Self {
        Self::InvalParam {
            reason: reason.into(),
        }
    }
}
