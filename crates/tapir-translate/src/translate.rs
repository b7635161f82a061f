//! `lineTranslateAddress` / `ITAddressTranslation::TranslateAddress`:
//! options, result flags, the output, and the assembly of the dialable and
//! displayable strings from an address, a location and a calling card.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::address::{Address, AddressList, CanonicalAddress, DialableAddress};
use crate::error::TranslateError;
use crate::location::{CallingCard, Location, TranslateCaps};
use crate::rules::{CallClass, is_rule_letter};

/// One `LINETRANSLATEOPTION_*` flag; serialized in lower case as in the
/// HTTP API (`"cardoverride"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranslateOption {
    /// `LINETRANSLATEOPTION_CARDOVERRIDE` (0x1): use the card given with
    /// the request instead of the location's preferred card (no card means
    /// direct dialing).
    CardOverride,
    /// `LINETRANSLATEOPTION_CANCELCALLWAITING` (0x2): dial the location's
    /// cancel-call-waiting code first.
    CancelCallWaiting,
    /// `LINETRANSLATEOPTION_FORCELOCAL` (0x4): dial a same-area number
    /// whose prefix is in the toll list as local.
    ForceLocal,
    /// `LINETRANSLATEOPTION_FORCELD` (0x8): dial a same-area number as long
    /// distance.
    ForceLd,
}

impl TranslateOption {
    /// The `LINETRANSLATEOPTION_*` value.
    pub fn bit(self) -> u32 {
        match self {
            Self::CardOverride => 0x1,
            Self::CancelCallWaiting => 0x2,
            Self::ForceLocal => 0x4,
            Self::ForceLd => 0x8,
        }
    }

    /// The lower-case name used by the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::CardOverride => "cardoverride",
            Self::CancelCallWaiting => "cancelcallwaiting",
            Self::ForceLocal => "forcelocal",
            Self::ForceLd => "forceld",
        }
    }

    const ALL: [Self; 4] = [
        Self::CardOverride,
        Self::CancelCallWaiting,
        Self::ForceLocal,
        Self::ForceLd,
    ];
}

impl std::str::FromStr for TranslateOption {
    type Err = TranslateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| TranslateError::param(format!("{s:?} is not a translate option")))
    }
}

/// A set of [`TranslateOption`]s (TAPI's `dwTranslateOptions`);
/// serialized as a list of names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<TranslateOption>", into = "Vec<TranslateOption>")]
pub struct TranslateOptions(u32);

impl TranslateOptions {
    /// No option.
    pub const NONE: Self = Self(0);

    /// The set from TAPI's bits; unknown bits are `invalparam`.
    pub fn from_bits(bits: u32) -> Result<Self, TranslateError> {
        if bits & !0xF != 0 {
            return Err(TranslateError::param(format!(
                "the translate options 0x{bits:x} hold unknown bits"
            )));
        }
        Ok(Self(bits))
    }

    /// TAPI's bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// This set plus one option.
    #[must_use]
    pub fn with(self, option: TranslateOption) -> Self {
        Self(self.0 | option.bit())
    }

    /// True when the option is in the set.
    pub fn contains(self, option: TranslateOption) -> bool {
        self.0 & option.bit() != 0
    }

    /// The options in the set, in TAPI's bit order.
    pub fn iter(self) -> impl Iterator<Item = TranslateOption> {
        TranslateOption::ALL
            .into_iter()
            .filter(move |o| self.contains(*o))
    }

    /// `forcelocal` and `forceld` together are `invalparam`.
    pub fn check(self) -> Result<(), TranslateError> {
        if self.contains(TranslateOption::ForceLocal) && self.contains(TranslateOption::ForceLd) {
            return Err(TranslateError::param(
                "the options forcelocal and forceld cannot be given together",
            ));
        }
        Ok(())
    }
}

impl From<Vec<TranslateOption>> for TranslateOptions {
    fn from(v: Vec<TranslateOption>) -> Self {
        v.into_iter().fold(Self::NONE, Self::with)
    }
}

impl From<TranslateOptions> for Vec<TranslateOption> {
    fn from(o: TranslateOptions) -> Self {
        o.iter().collect()
    }
}

impl FromIterator<TranslateOption> for TranslateOptions {
    fn from_iter<I: IntoIterator<Item = TranslateOption>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

/// One `LINETRANSLATERESULT_*` flag; serialized in lower case as in the
/// HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranslateResult {
    /// Destination country differs from the location's (0x2).
    International,
    /// Same country, other area code, or dialed as long distance (0x4).
    LongDistance,
    /// Same country and area code, dialed locally (0x8).
    Local,
    /// The same-area number's prefix is in the location's toll list
    /// (0x10).
    InTollList,
    /// The location has a toll list but the prefix is not in it (0x20).
    NotInTollList,
    /// The dialable string holds `$` (0x40).
    DialBilling,
    /// The dialable string holds `@` (0x80).
    DialQuiet,
    /// The dialable string holds `W` (0x100).
    DialDialTone,
    /// The dialable string holds `?` (0x200).
    DialPrompt,
    /// The dialable string holds `:` (0x400, TAPI 2.0+).
    VoiceDetect,
}

impl TranslateResult {
    /// The `LINETRANSLATERESULT_*` value.
    pub fn bit(self) -> u32 {
        match self {
            Self::International => 0x2,
            Self::LongDistance => 0x4,
            Self::Local => 0x8,
            Self::InTollList => 0x10,
            Self::NotInTollList => 0x20,
            Self::DialBilling => 0x40,
            Self::DialQuiet => 0x80,
            Self::DialDialTone => 0x100,
            Self::DialPrompt => 0x200,
            Self::VoiceDetect => 0x400,
        }
    }

    const ALL: [Self; 10] = [
        Self::International,
        Self::LongDistance,
        Self::Local,
        Self::InTollList,
        Self::NotInTollList,
        Self::DialBilling,
        Self::DialQuiet,
        Self::DialDialTone,
        Self::DialPrompt,
        Self::VoiceDetect,
    ];
}

/// A set of [`TranslateResult`]s (TAPI's `dwTranslateResults`, without
/// `CANONICAL`, which [`TranslateOutput::country_code`] being non-zero
/// tells); serialized as a list of names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<TranslateResult>", into = "Vec<TranslateResult>")]
pub struct TranslateResults(u32);

impl TranslateResults {
    /// TAPI's bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// True when the flag is set.
    pub fn contains(self, flag: TranslateResult) -> bool {
        self.0 & flag.bit() != 0
    }

    /// The flags set, in TAPI's bit order.
    pub fn iter(self) -> impl Iterator<Item = TranslateResult> {
        TranslateResult::ALL
            .into_iter()
            .filter(move |r| self.contains(*r))
    }

    fn set(&mut self, flag: TranslateResult) {
        self.0 |= flag.bit();
    }

    /// Sets the dial-modifier flags for the characters in `dialable`.
    fn scan(&mut self, dialable: &str) {
        for c in dialable.bytes() {
            match c {
                b'$' => self.set(TranslateResult::DialBilling),
                b'@' => self.set(TranslateResult::DialQuiet),
                b'W' | b'w' => self.set(TranslateResult::DialDialTone),
                b'?' => self.set(TranslateResult::DialPrompt),
                b':' => self.set(TranslateResult::VoiceDetect),
                _ => {}
            }
        }
    }
}

impl From<Vec<TranslateResult>> for TranslateResults {
    fn from(v: Vec<TranslateResult>) -> Self {
        Self(v.into_iter().fold(0, |bits, r| bits | r.bit()))
    }
}

impl From<TranslateResults> for Vec<TranslateResult> {
    fn from(r: TranslateResults) -> Self {
        r.iter().collect()
    }
}

/// The result of a translation (TAPI's `LINETRANSLATEOUTPUT` /
/// `ITAddressTranslationInfo`), in the JSON shape of `POST /v1/translate`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranslateOutput {
    /// The string to dial (may hold the calling-card number and PIN: never
    /// show or log it), with the subaddress and name carried over.
    pub dialable: String,
    /// The same string for people: formatting kept, the card number and
    /// PIN replaced by `[card name]`, subaddress and name removed.
    pub displayable: String,
    /// Destination country code; 0 when the input was not canonical.
    pub country_code: u16,
    /// Country code of the location used.
    pub current_country_code: u16,
    /// The `LINETRANSLATERESULT_*` flags.
    pub results: TranslateResults,
}

impl std::fmt::Debug for TranslateOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The dialable string may hold a PIN: keep it out of logs.
        f.debug_struct("TranslateOutput")
            .field("dialable", &"<hidden>")
            .field("displayable", &self.displayable)
            .field("country_code", &self.country_code)
            .field("current_country_code", &self.current_country_code)
            .field("results", &self.results)
            .finish()
    }
}

/// Translates `address` (canonical or dialable, possibly several
/// CRLF-separated addresses of which the first is translated) for a call
/// placed from `location`, using `card` when one applies.
///
/// `card` is the card to use, already chosen (see
/// [`TranslateCaps::translate_address`] for TAPI's choice between the
/// location's preferred card and `cardoverride`); the `cardoverride`
/// option is therefore not looked at here.
///
/// Non-canonical input is returned unmodified as the dialable string
/// (country code 0, only dial-modifier flags). Canonical input is
/// classified (international, long distance, same area with the toll
/// list, `forcelocal` / `forceld`), and the dialable string is built as:
/// `T` or `P`, the cancel-call-waiting code (option
/// `cancelcallwaiting`), the local or long-distance access code, then the
/// rule (the card's, else the location's, else the country's default)
/// with its letters expanded.
pub fn translate_address(
    address: &str,
    location: &Location,
    card: Option<&CallingCard>,
    options: TranslateOptions,
) -> Result<TranslateOutput, TranslateError> {
    options.check()?;
    if !(1..=999).contains(&location.country_code) {
        return Err(TranslateError::InvalCountryCode {
            country_code: location.country_code,
        });
    }
    let list = AddressList::parse(address)?;
    match list.first() {
        Address::Dialable(d) => Ok(pass_through(d, location)),
        Address::Canonical(c) => translate_canonical(c, location, card, options),
    }
}

fn pass_through(d: &DialableAddress, location: &Location) -> TranslateOutput {
    let mut results = TranslateResults::default();
    results.scan(&d.number);
    TranslateOutput {
        dialable: d.to_string(),
        displayable: d.number.clone(),
        country_code: 0,
        current_country_code: location.country_code,
        results,
    }
}

/// Classifies a canonical address against a location, applying the toll
/// list and the `forcelocal` / `forceld` options.
fn classify(
    c: &CanonicalAddress,
    subscriber: &str,
    location: &Location,
    options: TranslateOptions,
    results: &mut TranslateResults,
) -> CallClass {
    if c.country_code != location.country_code {
        results.set(TranslateResult::International);
        return CallClass::International;
    }
    let area = c.area_code_digits();
    let class = if !area.is_empty() && area != location.area_code {
        CallClass::LongDistance
    } else {
        let force_ld = options.contains(TranslateOption::ForceLd);
        if location.has_toll_list() {
            let digits = subscriber.trim_start_matches(|ch: char| !ch.is_ascii_digit());
            let in_list = location
                .toll_prefixes
                .iter()
                .any(|p| !p.is_empty() && digits.starts_with(p.as_str()));
            results.set(if in_list {
                TranslateResult::InTollList
            } else {
                TranslateResult::NotInTollList
            });
            if force_ld || (in_list && !options.contains(TranslateOption::ForceLocal)) {
                CallClass::LongDistance
            } else {
                CallClass::SameArea
            }
        } else if force_ld {
            CallClass::LongDistance
        } else {
            CallClass::SameArea
        }
    };
    results.set(match class {
        CallClass::SameArea => TranslateResult::Local,
        _ => TranslateResult::LongDistance,
    });
    class
}

fn translate_canonical(
    c: &CanonicalAddress,
    location: &Location,
    card: Option<&CallingCard>,
    options: TranslateOptions,
) -> Result<TranslateOutput, TranslateError> {
    let subscriber = c.dialable_subscriber();
    let mut results = TranslateResults::default();
    let class = classify(c, &subscriber, location, options, &mut results);

    let (rule, from_card) = match card.and_then(|k| k.rules.get(class)) {
        Some(rule) => (rule, true),
        None => (location.rule(class)?, false),
    };
    let rule_error = |what: String| {
        let owner = match card {
            Some(k) if from_card => format!("the {class} rule {rule:?} of card {:?}", k.id),
            _ => format!("the {class} rule {rule:?} of location {:?}", location.id),
        };
        if from_card {
            TranslateError::card(format!("{owner} {what}"))
        } else {
            TranslateError::location(format!("{owner} {what}"))
        }
    };

    let mut dial = String::with_capacity(32 + rule.len() + subscriber.len());
    let mut show = String::with_capacity(32 + rule.len() + c.subscriber.len());
    let both = |dial: &mut String, show: &mut String, s: &str| {
        dial.push_str(s);
        show.push_str(s);
    };
    both(
        &mut dial,
        &mut show,
        if location.tone_dialing { "T" } else { "P" },
    );
    if options.contains(TranslateOption::CancelCallWaiting) {
        both(&mut dial, &mut show, &location.cancel_call_waiting);
    }
    let access = match class {
        CallClass::SameArea => &location.local_access,
        _ => &location.long_distance_access,
    };
    both(&mut dial, &mut show, access);

    // F: the address's area code, or the location's for a same-country
    // address written without one.
    let area = match c.area_code_digits() {
        "" if c.country_code == location.country_code => location.area_code.as_str(),
        a => a,
    };
    for letter in rule.chars() {
        match letter {
            'E' => {
                let _ = write!(dial, "{}", c.country_code);
                let _ = write!(show, "{}", c.country_code);
            }
            'F' => both(&mut dial, &mut show, area),
            'G' => {
                dial.push_str(&subscriber);
                show.push_str(&c.subscriber);
            }
            'H' | 'J' => {
                let Some(k) = card else {
                    return Err(rule_error(format!(
                        "uses {letter:?}, but no calling card applies"
                    )));
                };
                if letter == 'H' {
                    dial.push_str(&k.card_number);
                    dial.push_str(&k.pin);
                    show.push_str(&k.display_tag());
                } else {
                    both(&mut dial, &mut show, k.access_numbers.get(class));
                }
            }
            'L' | 'N' | 'M' | 'S' => {
                let carrier = if matches!(letter, 'L' | 'N') {
                    &location.long_distance_carrier
                } else {
                    &location.international_carrier
                };
                match carrier {
                    Some(code) => both(&mut dial, &mut show, code),
                    None if matches!(letter, 'L' | 'M') => {
                        return Err(TranslateError::location(format!(
                            "the rule {rule:?} needs a carrier code ({letter:?}), but location {:?} has none",
                            location.id
                        )));
                    }
                    None => {}
                }
            }
            l if is_rule_letter(l) => {
                dial.push(l);
                show.push(l);
            }
            l => {
                return Err(rule_error(format!(
                    "holds {l:?}, which is not a dialing-rule letter"
                )));
            }
        }
    }
    results.scan(&dial);
    if let Some(sub) = &c.subaddress {
        dial.push('|');
        dial.push_str(sub);
    }
    if let Some(name) = &c.name {
        dial.push('^');
        dial.push_str(name);
    }
    Ok(TranslateOutput {
        dialable: dial,
        displayable: show,
        country_code: c.country_code,
        current_country_code: location.country_code,
        results,
    })
}

impl TranslateCaps {
    /// `lineTranslateAddress`: translates `address` from the location
    /// `location` (the current one for `None`). The card is the location's
    /// preferred card, or, with the `cardoverride` option, the card `card`
    /// (`None` then means direct dialing without a card); `card` is ignored
    /// without `cardoverride`, as in TAPI.
    pub fn translate_address(
        &self,
        address: &str,
        location: Option<&str>,
        card: Option<&str>,
        options: TranslateOptions,
    ) -> Result<TranslateOutput, TranslateError> {
        let location = self.location(location)?;
        let card_id = if options.contains(TranslateOption::CardOverride) {
            card
        } else {
            location.card.as_deref()
        };
        let card = card_id.map(|id| self.card(id)).transpose()?;
        translate_address(address, location, card, options)
    }
}
