//! Locations and calling cards: TAPI's `LINELOCATIONENTRY` /
//! `ITLocationInfo` and `LINECARDENTRY` / `ITCallingCard`, with the JSON
//! shapes of the HTTP API, and `TranslateCaps` (what
//! `lineGetTranslateCaps` returns) tying them together. This module owns
//! the data and its validation, not the translation itself.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::TranslateError;
use crate::rules::{CallClass, CountryDefaults, DialingRules, country_defaults};

fn yes() -> bool {
    true
}

/// A dialing location (TAPI's `LINELOCATIONENTRY`): where the calls are
/// placed from and how to reach the outside network there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Permanent location id.
    pub id: String,
    /// Friendly name.
    #[serde(default)]
    pub name: String,
    /// Country calling code of the location (1 for the US, 44 for GB).
    pub country_code: u16,
    /// Area (city) code of the location, empty where the country has none.
    #[serde(default)]
    pub area_code: String,
    /// Access code dialed before calls within the local calling area
    /// (an outside-line prefix such as `9`).
    #[serde(default)]
    pub local_access: String,
    /// Access code dialed before long-distance and international calls.
    #[serde(default)]
    pub long_distance_access: String,
    /// Code that disables call waiting (such as `*70,`), dialed first when
    /// the `cancelcallwaiting` option is given.
    #[serde(default)]
    pub cancel_call_waiting: String,
    /// Tone dialing (`T`) when true, pulse dialing (`P`,
    /// `LINELOCATIONOPTION_PULSEDIAL`) when false.
    #[serde(default = "yes")]
    pub tone_dialing: bool,
    /// Toll prefix list: subscriber-number prefixes of the local area that
    /// are dialed as long distance.
    #[serde(default)]
    pub toll_prefixes: Vec<String>,
    /// Direct-dial rules overriding the country's defaults, rule by rule.
    #[serde(default, skip_serializing_if = "DialingRules::is_empty")]
    pub rules: DialingRules,
    /// Preferred calling card id, if calls from here use one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Long-distance carrier code for the rule letters `L` and `N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_distance_carrier: Option<String>,
    /// International carrier code for the rule letters `M` and `S`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub international_carrier: Option<String>,
}

impl Location {
    /// A location with a country and area code and everything else empty
    /// (tone dialing, no access codes, country default rules).
    pub fn new(id: impl Into<String>, country_code: u16, area_code: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: String::new(),
            country_code,
            area_code: area_code.into(),
            local_access: String::new(),
            long_distance_access: String::new(),
            cancel_call_waiting: String::new(),
            tone_dialing: true,
            toll_prefixes: Vec::new(),
            rules: DialingRules::default(),
            card: None,
            long_distance_carrier: None,
            international_carrier: None,
        }
    }

    /// The country's defaults from libphonenumber, if it has any.
    pub fn country_defaults(&self) -> Option<&'static CountryDefaults> {
        country_defaults(self.country_code)
    }

    /// The rule for a class of call: the location's own, else the
    /// country's default.
    pub fn rule(&self, class: CallClass) -> Result<&str, TranslateError> {
        if let Some(rule) = self.rules.get(class) {
            return Ok(rule);
        }
        self.country_defaults()
            .and_then(|d| d.rules.get(class))
            .ok_or(TranslateError::InvalCountryCode {
                country_code: self.country_code,
            })
    }

    /// The three rules in force (own rules completed with the country's
    /// defaults).
    pub fn effective_rules(&self) -> Result<DialingRules, TranslateError> {
        Ok(DialingRules::new(
            self.rule(CallClass::SameArea)?,
            self.rule(CallClass::LongDistance)?,
            self.rule(CallClass::International)?,
        ))
    }

    /// True when the toll-prefix concept applies here: the location lists
    /// toll prefixes, or it is in the North American Numbering Plan
    /// (country code 1), where TAPI shows toll lists.
    pub fn has_toll_list(&self) -> bool {
        self.country_code == 1 || !self.toll_prefixes.is_empty()
    }

    /// Checks the location's data: a country code of 1 to 999, digit-only
    /// area code and toll prefixes, valid rule letters, and rules for
    /// every class (own or the country's).
    pub fn validate(&self) -> Result<(), TranslateError> {
        if !(1..=999).contains(&self.country_code) {
            return Err(TranslateError::InvalCountryCode {
                country_code: self.country_code,
            });
        }
        if !self.area_code.chars().all(|c| c.is_ascii_digit()) {
            return Err(TranslateError::location(format!(
                "the area code {:?} of location {:?} holds something other than digits",
                self.area_code, self.id
            )));
        }
        if let Some(p) = self
            .toll_prefixes
            .iter()
            .find(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(TranslateError::location(format!(
                "the toll prefix {p:?} of location {:?} is not a string of digits",
                self.id
            )));
        }
        for (what, code) in [
            ("local access code", &self.local_access),
            ("long-distance access code", &self.long_distance_access),
            ("cancel-call-waiting code", &self.cancel_call_waiting),
        ] {
            if code.chars().any(|c| !crate::address::is_dial_character(c)) {
                return Err(TranslateError::location(format!(
                    "the {what} {code:?} of location {:?} holds characters that cannot be dialed",
                    self.id
                )));
            }
        }
        let rules = self.effective_rules()?;
        rules.check().map_err(|(class, c)| {
            TranslateError::location(format!(
                "the {class} rule of location {:?} holds {c:?}, which is not a dialing-rule letter",
                self.id
            ))
        })
    }
}

/// A calling card's access numbers per class of call, dialed by the rule
/// letter `J`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessNumbers {
    /// Access number for same-area calls.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub same_area: String,
    /// Access number for long-distance calls.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub long_distance: String,
    /// Access number for international calls.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub international: String,
}

impl AccessNumbers {
    /// The access number for a class of call (empty when none).
    pub fn get(&self, class: CallClass) -> &str {
        match class {
            CallClass::SameArea => &self.same_area,
            CallClass::LongDistance => &self.long_distance,
            CallClass::International => &self.international,
        }
    }

    fn is_empty(&self) -> bool {
        self.same_area.is_empty() && self.long_distance.is_empty() && self.international.is_empty()
    }
}

/// A calling card (TAPI's `LINECARDENTRY`). The PIN is write-only: it is
/// read from JSON but never serialized, never shown by `Debug`, and never
/// put in a displayable string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingCard {
    /// Permanent card id.
    pub id: String,
    /// Friendly name; the displayable string shows `[name]` where the card
    /// number and PIN are dialed.
    #[serde(default)]
    pub name: String,
    /// The card (account) number, dialed by `H` before the PIN.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub card_number: String,
    /// Personal identification number, dialed by `H` after the card
    /// number. Write-only.
    #[serde(default, skip_serializing)]
    pub pin: String,
    /// Access numbers of the card's service, dialed by `J`.
    #[serde(default, skip_serializing_if = "AccessNumbers::is_empty")]
    pub access_numbers: AccessNumbers,
    /// The card's rules; a rule left out falls back to the location's rule
    /// in force (direct dialing).
    #[serde(default, skip_serializing_if = "DialingRules::is_empty")]
    pub rules: DialingRules,
}

impl CallingCard {
    /// A card with an id, a name and rules, without number or PIN.
    pub fn new(id: impl Into<String>, name: impl Into<String>, rules: DialingRules) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            card_number: String::new(),
            pin: String::new(),
            access_numbers: AccessNumbers::default(),
            rules,
        }
    }

    /// Number of digits dialed by `H` (TAPI's `dwCardNumberDigits`): the
    /// only thing about the secret part that is ever reported.
    pub fn card_number_digits(&self) -> usize {
        self.card_number.chars().count() + self.pin.chars().count()
    }

    /// The text shown instead of the card number and PIN: `[name]`
    /// (`[calling card]` when the card has no name).
    pub fn display_tag(&self) -> String {
        if self.name.is_empty() {
            "[calling card]".to_owned()
        } else {
            format!("[{}]", self.name)
        }
    }

    /// Checks the card's data: digits and dial characters only in number
    /// and PIN, and valid rule letters.
    pub fn validate(&self) -> Result<(), TranslateError> {
        let bad = |s: &str| s.chars().any(|c| !crate::address::is_dial_character(c));
        if bad(&self.card_number) || bad(&self.pin) {
            return Err(TranslateError::card(format!(
                "the number or PIN of card {:?} holds characters that cannot be dialed",
                self.id
            )));
        }
        for class in [
            CallClass::SameArea,
            CallClass::LongDistance,
            CallClass::International,
        ] {
            if bad(self.access_numbers.get(class)) {
                return Err(TranslateError::card(format!(
                    "the {class} access number of card {:?} holds characters that cannot be dialed",
                    self.id
                )));
            }
        }
        self.rules.check().map_err(|(class, c)| {
            TranslateError::card(format!(
                "the {class} rule of card {:?} holds {c:?}, which is not a dialing-rule letter",
                self.id
            ))
        })
    }
}

impl fmt::Debug for CallingCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallingCard")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("card_number", &"<hidden>")
            .field("pin", &"<hidden>")
            .field("access_numbers", &self.access_numbers)
            .field("rules", &self.rules)
            .finish()
    }
}

/// Locations and calling cards with the current location: what
/// `lineGetTranslateCaps` returns and `lineTranslateAddress` uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranslateCaps {
    /// Id of the current location.
    pub current: String,
    /// All locations.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// All calling cards.
    #[serde(default)]
    pub cards: Vec<CallingCard>,
}

impl TranslateCaps {
    /// The location with this id, or the current location for `None`.
    pub fn location(&self, id: Option<&str>) -> Result<&Location, TranslateError> {
        let id = id.unwrap_or(&self.current);
        self.locations
            .iter()
            .find(|l| l.id == id)
            .ok_or_else(|| TranslateError::location(format!("there is no location {id:?}")))
    }

    /// The calling card with this id.
    pub fn card(&self, id: &str) -> Result<&CallingCard, TranslateError> {
        self.cards
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| TranslateError::card(format!("there is no calling card {id:?}")))
    }

    /// Checks every location and card, that the current location exists,
    /// that ids are unique and that each preferred card exists.
    pub fn validate(&self) -> Result<(), TranslateError> {
        self.location(None)?;
        for (i, l) in self.locations.iter().enumerate() {
            if self.locations.iter().skip(i + 1).any(|m| m.id == l.id) {
                return Err(TranslateError::location(format!(
                    "the location id {:?} is used twice",
                    l.id
                )));
            }
            l.validate()?;
            if let Some(card) = &l.card {
                self.card(card)?;
            }
        }
        for (i, c) in self.cards.iter().enumerate() {
            if self.cards.iter().skip(i + 1).any(|d| d.id == c.id) {
                return Err(TranslateError::card(format!(
                    "the card id {:?} is used twice",
                    c.id
                )));
            }
            c.validate()?;
        }
        Ok(())
    }
}
