//! Pages the host forwards: the Email settings page and the OAuth result page. Everything they
//! need is compiled into the binary; nothing comes from a CDN.

pub mod mail;
pub mod pages;
pub mod sanitize;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const SETTINGS_PAGE: &str = include_str!("settings.html");

pub async fn settings_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", pages::PAGE_CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "no-store"))
        .body(SETTINGS_PAGE)
}

/// Tells the page whether the development sign-in exists (`make demo`).
pub async fn dev_config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": { "devSignIn": state.settings.dev.enabled } }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DevSignIn {
    user_id: i64,
}

/// Development only: mints a NocoBase-shaped token for a sandbox user, so the demo can be
/// clicked through without a NocoBase server. Absent (404) unless `dev.enabled`.
pub async fn dev_sign_in(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<HttpResponse> {
    // Checked before the body is read, so a production instance does not even hint it exists.
    if !state.settings.dev.enabled {
        return Err(ApiError::not_found("Development sign-in"));
    }
    let body: DevSignIn = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            crate::error::ErrorCode::InvalidJson,
            format!("Expected {{\"userId\": <number>}}: {e}"),
        )
    })?;
    if body.user_id <= 0 {
        return Err(ApiError::invalid("userId must be positive"));
    }
    let token = crate::auth::sign_dev_token(
        state.settings.host.jwt_secret.expose(),
        body.user_id,
        24 * 3600,
    )
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "data": { "token": token, "userId": body.user_id } })))
}
