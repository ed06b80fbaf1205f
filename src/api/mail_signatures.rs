//! `mailSignatures`: the user's HTML signatures, one of them the default. The HTML is cleaned
//! with the composing allow-list on save; what is stored (and answered) is the cleaned HTML.

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{data, iso, list as list_response, ActionCtx};
use crate::db::compose::{self as store, NewSignature, SignatureChanges, SignatureRow};
use crate::db::{now_millis, DbConnection, DbError};
use crate::error::{ApiError, ApiResult};
use crate::send::signature::{sanitize_html, SignatureChoice};
use crate::state::AppState;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_HTML_BYTES: usize = 256 * 1024;

fn signature_json(s: &SignatureRow) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "html": s.html,
        "isDefault": s.is_default,
        "createdAt": iso(s.created_at),
        "updatedAt": iso(s.updated_at),
    })
}

fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Signature"),
        other => other.into(),
    }
}

/// A record name: trimmed, not empty, one line, bounded.
pub fn clean_name(field: &str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid(format!("{field} must not be empty")));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{field} must be one line without control characters"
        )));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(format!(
            "{field} is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

fn clean_html(html: &str) -> ApiResult<String> {
    if html.len() > MAX_HTML_BYTES {
        return Err(ApiError::invalid(format!(
            "html is larger than {} KiB",
            MAX_HTML_BYTES / 1024
        )));
    }
    Ok(sanitize_html(html))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateValues {
    name: String,
    html: String,
    #[serde(default)]
    is_default: bool,
}

/// Read-only fields of `get` are accepted and ignored, so a page may send back what it read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateValues {
    name: Option<String>,
    html: Option<String>,
    is_default: Option<bool>,
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "createdAt")]
    _created_at: Option<Value>,
    #[serde(default, rename = "updatedAt")]
    _updated_at: Option<Value>,
}

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (page, page_size) = ctx.paging()?;
    let user_id = ctx.identity.user_id;
    let rows = state
        .db
        .run(move |conn| store::list_signatures(conn, user_id))
        .await?;
    let count = rows.len() as i64;
    let items: Vec<Value> = rows
        .iter()
        .skip(((page - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(signature_json)
        .collect();
    Ok(list_response(items, count, page, page_size))
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |conn| store::get_signature(conn, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(signature_json(&row)))
}

pub async fn create(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let v: CreateValues = ctx.values_as()?;
    let now = now_millis();
    let new = NewSignature {
        user_id: ctx.identity.user_id,
        name: clean_name("name", &v.name)?,
        html: clean_html(&v.html)?,
        is_default: v.is_default,
        created_at: now,
        updated_at: now,
    };
    let row = state
        .db
        .run(move |conn| store::create_signature(conn, &new))
        .await?;
    Ok(data(signature_json(&row)))
}

pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let v: UpdateValues = ctx.values_as()?;
    let changes = SignatureChanges {
        name: v
            .name
            .as_deref()
            .map(|n| clean_name("name", n))
            .transpose()?,
        html: v.html.as_deref().map(clean_html).transpose()?,
        is_default: v.is_default,
    };
    let user_id = ctx.identity.user_id;
    let now = now_millis();
    let row = state
        .db
        .run(move |conn| store::update_signature(conn, user_id, id, &changes, now))
        .await
        .map_err(not_found)?;
    Ok(data(signature_json(&row)))
}

pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    state
        .db
        .run(move |conn| store::delete_signature(conn, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(json!({ "id": id })))
}

/// The signature a send inserts for `choice`: the default (none when the user has none), none,
/// or the one named — which must be the user's own (`NotFound` otherwise).
pub fn resolve_for_send(
    conn: &mut DbConnection,
    user_id: i64,
    choice: SignatureChoice,
) -> Result<Option<SignatureRow>, DbError> {
    match choice {
        SignatureChoice::None => Ok(None),
        SignatureChoice::Default => store::default_signature(conn, user_id),
        SignatureChoice::Id(id) => store::get_signature(conn, user_id, id).map(Some),
    }
}
