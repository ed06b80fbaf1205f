//! `mailMessageNotes`: notes on a message, seen and changed by their author only. A note is
//! plain text, or HTML cleaned with the composing allow-list on save. Notes hang on the local
//! message id, which a resync keeps, so they survive it.

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{data, iso, list as list_response, ActionCtx};
use crate::db::notes::{self as store, NoteRow};
use crate::db::{now_millis, DbError};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::send::signature::sanitize_html;
use crate::state::AppState;

/// The largest note (bytes of `content` as sent).
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
const FORMATS: [&str; 2] = ["text", "html"];

pub fn note_json(n: &NoteRow) -> Value {
    json!({
        "id": n.id,
        "messageId": n.message_id,
        "authorId": n.user_id,
        "format": n.format,
        "content": n.content,
        "createdAt": iso(n.created_at),
        "updatedAt": iso(n.updated_at),
    })
}

fn note_not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Mail message note"),
        other => other.into(),
    }
}

fn message_not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Mail message"),
        other => other.into(),
    }
}

/// The stored form of a note: its format and content (HTML cleaned), bounded.
fn clean(format: Option<&str>, content: &str) -> ApiResult<(String, String)> {
    let format = format.unwrap_or("text");
    if !FORMATS.contains(&format) {
        return Err(ApiError::invalid(format!(
            "format must be text or html, got {format:?}"
        )));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("content is larger than {} KiB", MAX_CONTENT_BYTES / 1024),
        ));
    }
    let content = if format == "html" {
        sanitize_html(content)
    } else {
        content.to_string()
    };
    if content.trim().is_empty() {
        return Err(ApiError::invalid("content must not be empty"));
    }
    Ok((format.to_string(), content))
}

fn positive_id(field: &str, v: &Value) -> ApiResult<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
    .ok_or_else(|| ApiError::invalid(format!("{field} must be a record id, got {v}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateValues {
    message_id: Value,
    content: String,
    format: Option<String>,
}

/// Read-only fields are accepted and ignored, so a page may send back what it read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateValues {
    content: Option<String>,
    format: Option<String>,
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "filterByTk")]
    _filter_by_tk: Option<Value>,
    #[serde(default, rename = "messageId")]
    _message_id: Option<Value>,
    #[serde(default, rename = "authorId")]
    _author_id: Option<Value>,
    #[serde(default, rename = "createdAt")]
    _created_at: Option<Value>,
    #[serde(default, rename = "updatedAt")]
    _updated_at: Option<Value>,
}

/// `filter[messageId]=5`, `messageId=5`, `filter={"messageId":5}`, or the same in the body.
fn message_id_param(ctx: &ActionCtx) -> ApiResult<i64> {
    let from_query = ctx
        .params
        .get("filter[messageId]")
        .or_else(|| ctx.params.get("messageId"))
        .map(|s| Value::String(s.clone()));
    let from_filter = || {
        let f = match ctx.params.get("filter") {
            Some(text) => serde_json::from_str::<Value>(text).ok(),
            None => ctx.values.get("filter").cloned(),
        };
        let f = match f {
            Some(Value::String(text)) => serde_json::from_str::<Value>(&text).ok(),
            other => other,
        };
        f.and_then(|f| f.get("messageId").cloned())
            .map(|v| v.get("$eq").cloned().unwrap_or(v))
    };
    let raw = from_query
        .or_else(from_filter)
        .or_else(|| ctx.values.get("messageId").cloned())
        .ok_or_else(|| ApiError::invalid("filter[messageId] is required"))?;
    positive_id("messageId", &raw)
}

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let message_id = message_id_param(ctx)?;
    let (page, page_size) = ctx.paging()?;
    let user_id = ctx.identity.user_id;
    let (rows, count) = state
        .db
        .run(move |c| store::list(c, user_id, message_id, page_size, (page - 1) * page_size))
        .await
        .map_err(message_not_found)?;
    let items: Vec<Value> = rows.iter().map(note_json).collect();
    Ok(list_response(items, count, page, page_size))
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |c| store::get(c, user_id, id))
        .await
        .map_err(note_not_found)?;
    Ok(data(note_json(&row)))
}

pub async fn create(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let v: CreateValues = ctx.values_as()?;
    let message_id = positive_id("messageId", &v.message_id)?;
    let (format, content) = clean(v.format.as_deref(), &v.content)?;
    let user_id = ctx.identity.user_id;
    let now = now_millis();
    let row = state
        .db
        .run(move |c| store::create(c, user_id, message_id, &format, &content, now))
        .await
        .map_err(message_not_found)?;
    Ok(data(note_json(&row)))
}

pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let v: UpdateValues = ctx.values_as()?;
    if v.content.is_none() && v.format.is_none() {
        return Err(ApiError::invalid(
            "Nothing to update: send content or format",
        ));
    }
    let user_id = ctx.identity.user_id;
    let current = state
        .db
        .run(move |c| store::get(c, user_id, id))
        .await
        .map_err(note_not_found)?;
    let (format, content) = clean(
        Some(v.format.as_deref().unwrap_or(&current.format)),
        v.content.as_deref().unwrap_or(&current.content),
    )?;
    let now = now_millis();
    let row = state
        .db
        .run(move |c| store::update(c, user_id, id, &format, &content, now))
        .await
        .map_err(note_not_found)?;
    Ok(data(note_json(&row)))
}

pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    state
        .db
        .run(move |c| store::delete(c, user_id, id))
        .await
        .map_err(note_not_found)?;
    Ok(data(json!({ "id": id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cleaned_and_bounded() {
        let (f, c) = clean(None, "call back").expect("text");
        assert_eq!((f.as_str(), c.as_str()), ("text", "call back"));
        let (_, c) = clean(
            Some("html"),
            "<p onclick=\"x()\">hi<script>bad()</script></p>",
        )
        .expect("html");
        assert!(
            c.contains("hi") && !c.contains("onclick") && !c.contains("script"),
            "{c}"
        );
        assert!(clean(Some("markdown"), "x").is_err());
        assert!(clean(None, "  ").is_err());
        let e = clean(None, &"x".repeat(MAX_CONTENT_BYTES + 1)).expect_err("big");
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    }
}
