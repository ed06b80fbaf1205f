//! `mailMessageLabels`: a user's labels, for messages of any of their mailboxes. Attached and
//! detached through `mailMessages:update` (`labels`, `addLabels`, `removeLabels`), mirrored to
//! Gmail labels and Outlook categories (`label_writeback`), taken in from them by sync.
//!
//! Renaming or recolouring a label, or deleting it, follows through to every mailbox that has
//! its twin, in the background: the answer does not wait for the providers.

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{data, iso, list as list_response, ActionCtx};
use crate::db::labels::{self as store, LabelChanges, LabelRow, MAX_NAME_CHARS};
use crate::db::{now_millis, DbError};
use crate::error::{ApiError, ApiResult};
use crate::providers::labels as palette;
use crate::state::AppState;

pub fn label_json(l: &LabelRow) -> Value {
    json!({
        "id": l.id,
        "name": l.name,
        "color": l.color,
        "syncError": l.sync_error.as_ref().map(|m| json!({
            "message": m,
            "at": l.sync_error_at.and_then(iso),
        })),
        "createdAt": iso(l.created_at),
        "updatedAt": iso(l.updated_at),
    })
}

fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Mail message label"),
        other => other.into(),
    }
}

fn duplicate(name: &str) -> ApiError {
    ApiError::invalid(format!("A label named {name:?} exists already"))
}

/// Trimmed, 1–100 characters, one line.
pub fn clean_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name must not be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name must be one line without control characters",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// A palette name or `#rrggbb`; `null` for none.
fn clean_color(v: &Value) -> ApiResult<Option<String>> {
    let bad = || {
        ApiError::invalid(format!(
            "color must be #rrggbb or one of {}",
            palette::names().join(", ")
        ))
    };
    match v {
        Value::Null => Ok(None),
        Value::String(s) => palette::normalize(s).map(Some).ok_or_else(bad),
        _ => Err(bad()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateValues {
    name: String,
    #[serde(default)]
    color: Value,
}

/// Read-only fields are accepted and ignored, so a page may send back what it read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateValues {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    color: Option<Value>,
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "filterByTk")]
    _filter_by_tk: Option<Value>,
    #[serde(default, rename = "syncError")]
    _sync_error: Option<Value>,
    #[serde(default, rename = "createdAt")]
    _created_at: Option<Value>,
    #[serde(default, rename = "updatedAt")]
    _updated_at: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (page, page_size) = ctx.paging()?;
    let user_id = ctx.identity.user_id;
    let rows = state.db.run(move |c| store::list(c, user_id)).await?;
    let count = rows.len() as i64;
    let items: Vec<Value> = rows
        .iter()
        .skip(((page - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(label_json)
        .collect();
    Ok(list_response(items, count, page, page_size))
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |c| store::get(c, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(label_json(&row)))
}

pub async fn create(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let v: CreateValues = ctx.values_as()?;
    let name = clean_name(&v.name)?;
    let color = clean_color(&v.color)?;
    let user_id = ctx.identity.user_id;
    let now = now_millis();
    let wanted = name.clone();
    let row = state
        .db
        .run(move |c| store::create(c, user_id, &wanted, color.as_deref(), now))
        .await?
        .ok_or_else(|| duplicate(&name))?;
    Ok(data(label_json(&row)))
}

pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let v: UpdateValues = ctx.values_as()?;
    let changes = LabelChanges {
        name: v.name.as_deref().map(clean_name).transpose()?,
        color: v.color.as_ref().map(clean_color).transpose()?,
    };
    let user_id = ctx.identity.user_id;
    let now = now_millis();
    let mirror = state.settings.mail.mirror_labels;
    let name = changes.name.clone().unwrap_or_default();
    let row = state
        .db
        .run(move |c| store::update(c, user_id, id, &changes, mirror, now))
        .await
        .map_err(not_found)?
        .ok_or_else(|| duplicate(&name))?;
    state.labels.wake.notify_one();
    Ok(data(label_json(&row)))
}

pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let now = now_millis();
    let mirror = state.settings.mail.mirror_labels;
    state
        .db
        .run(move |c| store::delete(c, user_id, id, mirror, now))
        .await
        .map_err(not_found)?;
    state.labels.wake.notify_one();
    Ok(data(json!({ "id": id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_colours_are_checked() {
        assert_eq!(clean_name("  Clients  ").expect("ok"), "Clients");
        assert!(clean_name("   ").is_err());
        assert!(clean_name("a\nb").is_err());
        assert!(clean_name(&"x".repeat(100)).is_ok());
        assert!(clean_name(&"é".repeat(101)).is_err());
        assert_eq!(
            clean_color(&json!("Red")).expect("ok").as_deref(),
            Some("red")
        );
        assert_eq!(
            clean_color(&json!("#00FF00")).expect("ok").as_deref(),
            Some("#00ff00")
        );
        assert_eq!(clean_color(&Value::Null).expect("ok"), None);
        assert!(clean_color(&json!("pink")).is_err());
        assert!(clean_color(&json!(3)).is_err());
    }
}
