//! Address translation: `POST /v1/translate`, `GET/PUT /v1/locations`,
//! `GET/PUT /v1/cards`, on `tapir-translate`.

use super::{AnyToken, ApiJson, AppState};
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tapir_core::AppPermission;
use tapir_translate::{CallingCard, Location, TranslateCaps, TranslateOption, TranslateOutput};
use utoipa::ToSchema;

/// Body of `POST /v1/translate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranslateBody {
    /// Canonical (`+1 (425) 555-1212`) or dialable address.
    pub address: String,
    /// Location id (the current location when absent).
    #[serde(default)]
    pub location: Option<String>,
    /// Calling card id (used with `cardoverride`).
    #[serde(default)]
    pub card: Option<String>,
    /// `cardoverride`, `cancelcallwaiting`, `forcelocal`, `forceld`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub options: Vec<TranslateOption>,
}

/// `lineTranslateAddress`'s output.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranslateResponse {
    /// What to dial.
    pub dialable: String,
    /// What to show (card numbers and PINs hidden).
    pub displayable: String,
    /// Destination country code.
    pub country_code: u16,
    /// The location's country code.
    pub current_country_code: u16,
    /// Result flags: `international`, `longdistance`, `local`, …
    pub results: Vec<String>,
}

impl From<TranslateOutput> for TranslateResponse {
    fn from(o: TranslateOutput) -> TranslateResponse {
        TranslateResponse {
            results: o
                .results
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            dialable: o.dialable,
            displayable: o.displayable,
            country_code: o.country_code,
            current_country_code: o.current_country_code,
        }
    }
}

fn caps(st: &AppState) -> TranslateCaps {
    st.provisioning.translate()
}

/// `lineTranslateAddress`.
#[utoipa::path(post, path = "/v1/translate", tag = "translate",
    request_body = TranslateBody,
    responses((status = 200, description = "the translation", body = TranslateResponse),
              (status = 400, description = "invaladdress, invallocation, invalcard, invalcountrycode, invalparam", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn translate(
    State(st): State<AppState>,
    _token: AnyToken,
    ApiJson(b): ApiJson<TranslateBody>,
) -> Result<Json<TranslateResponse>, ApiError> {
    let options = b.options.into_iter().collect();
    let out = caps(&st).translate_address(
        &b.address,
        b.location.as_deref(),
        b.card.as_deref(),
        options,
    )?;
    Ok(Json(out.into()))
}

/// The locations: `{"current","locations"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Locations {
    /// Id of the current location.
    pub current: String,
    /// Every location.
    #[schema(value_type = Vec<Object>)]
    pub locations: Vec<Location>,
}

/// `lineGetTranslateCaps`: the locations.
#[utoipa::path(get, path = "/v1/locations", tag = "translate",
    responses((status = 200, description = "locations", body = Locations)),
    security(("bearer" = [])))]
pub async fn get_locations(State(st): State<AppState>, _token: AnyToken) -> Json<Locations> {
    let c = caps(&st);
    Json(Locations {
        current: c.current,
        locations: c.locations,
    })
}

/// Replace the locations (validated with the cards in force).
#[utoipa::path(put, path = "/v1/locations", tag = "translate",
    request_body = Locations,
    responses((status = 200, description = "locations now in force", body = Locations),
              (status = 400, description = "invallocation, invalcard, …", body = ErrorBody),
              (status = 403, description = "noprivilege: the app lacks the `settings` permission", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_locations(
    State(st): State<AppState>,
    token: AnyToken,
    ApiJson(b): ApiJson<Locations>,
) -> Result<Json<Locations>, ApiError> {
    token.require(AppPermission::Settings, "change the locations")?;
    let next = st
        .provisioning
        .set_locations(b.current, b.locations)
        .await?;
    Ok(Json(Locations {
        current: next.current,
        locations: next.locations,
    }))
}

/// The calling cards: `{"cards":[…]}` (PINs are write-only).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cards {
    /// Every card.
    #[schema(value_type = Vec<Object>)]
    pub cards: Vec<CallingCard>,
}

/// `lineGetTranslateCaps`: the calling cards.
#[utoipa::path(get, path = "/v1/cards", tag = "translate",
    responses((status = 200, description = "cards", body = Cards)),
    security(("bearer" = [])))]
pub async fn get_cards(State(st): State<AppState>, _token: AnyToken) -> Json<Cards> {
    Json(Cards {
        cards: caps(&st).cards,
    })
}

/// Replace the calling cards (validated with the locations in force).
#[utoipa::path(put, path = "/v1/cards", tag = "translate",
    request_body = Cards,
    responses((status = 200, description = "cards now in force", body = Cards),
              (status = 400, description = "invalcard, …", body = ErrorBody),
              (status = 403, description = "noprivilege: the app lacks the `settings` permission", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_cards(
    State(st): State<AppState>,
    token: AnyToken,
    ApiJson(b): ApiJson<Cards>,
) -> Result<Json<Cards>, ApiError> {
    token.require(AppPermission::Settings, "change the calling cards")?;
    let next = st.provisioning.set_cards(b.cards).await?;
    Ok(Json(Cards { cards: next.cards }))
}
