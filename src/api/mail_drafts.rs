//! `mailDrafts`: `create`, `update` (auto-save), `get`, `list`, `send`, `destroy`.
//!
//! A draft is the values of a future `mailMessages:send` (from, to, cc, bcc, replyTo, subject,
//! html, text, attachments, mode, sourceMessageId, signature, templateId, variables), checked
//! like a send's on every save — except that it may have nobody to send to yet. Saves are local
//! and cheap: `update` carries the client's `revision`, and one that is not newer than the
//! stored one changes nothing and answers the stored draft (last write wins, repeats are
//! harmless). The provider's copy is updated by `draft_mirror` once the draft has been quiet for
//! `mail.draft_mirror_delay_ms`. A draft keeps the identity (`from`) it was created with.
//! `send` goes through `mailMessages:send` and then removes the draft here and at the provider.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::mail_messages::send::{self as sending, load, Purpose};
use super::mail_messages::text_param;
use super::{data, iso, list as list_response, ActionCtx};
use crate::auth::Identity;
use crate::db::compose::{self as store, DraftRow, DraftSave, NewDraft};
use crate::db::{now_millis, DbError};
use crate::error::{ApiError, ApiResult};
use crate::send::address::parse_field;
use crate::send::request;
use crate::state::AppState;

/// The values a draft keeps.
pub const FIELDS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "html",
    "text",
    "attachments",
    "mode",
    "sourceMessageId",
    "signature",
    "templateId",
    "variables",
    "allowMissingVariables",
];

/// Keys `get` answers that may come back unchanged in an `update` (ignored).
const READ_ONLY: &[&str] = &[
    "id",
    "providerDraftId",
    "mirrored",
    "mirrorError",
    "createdAt",
    "updatedAt",
];

fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Draft"),
        other => other.into(),
    }
}

pub fn draft_json(row: &DraftRow) -> Value {
    let fields: Map<String, Value> = serde_json::from_str(&row.fields_json).unwrap_or_default();
    let mut v = json!({
        "id": row.id,
        "accountId": row.account_id,
        "revision": row.revision,
        "providerDraftId": row.provider_draft_id,
        "mirrored": row.provider_synced_revision >= row.revision,
        "mirrorError": row.mirror_error,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    });
    for (k, val) in fields {
        v[k] = match (k.as_str(), val) {
            // Stored as a one-item list (what a send takes); shown as the mailbox itself.
            ("from", Value::Array(mut list)) if list.len() == 1 => list.remove(0),
            (_, val) => val,
        };
    }
    v
}

/// What a create or update sent.
struct Given {
    account_id: Option<Value>,
    revision: Option<i64>,
    fields: Map<String, Value>,
}

fn given(values: &Value, allow_read_only: bool) -> ApiResult<Given> {
    let map = match values {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(ApiError::invalid("values must be a JSON object")),
    };
    let mut g = Given {
        account_id: None,
        revision: None,
        fields: Map::new(),
    };
    for (k, v) in map {
        match k.as_str() {
            "accountId" => g.account_id = Some(v),
            "revision" => {
                g.revision = Some(
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                        .filter(|r| *r > 0)
                        .ok_or_else(|| {
                            ApiError::invalid(format!(
                                "revision must be a positive integer, got {v}"
                            ))
                        })?,
                )
            }
            "filterByTk" => {}
            "from" => {
                let v = match v {
                    Value::Object(_) => Value::Array(vec![v]),
                    other => other,
                };
                g.fields.insert("from".into(), v);
            }
            k if FIELDS.contains(&k) => {
                g.fields.insert(k.to_string(), v);
            }
            k if allow_read_only && READ_ONLY.contains(&k) => {}
            other => {
                return Err(ApiError::invalid(format!(
                "Invalid values: unknown field `{other}`, expected one of accountId, revision, {}",
                FIELDS.join(", ")
            )))
            }
        }
    }
    Ok(g)
}

/// Checks a draft's fields as a send would (every address, every id the user's), except that
/// recipients may be missing. Answers the fields with `from` fixed to the identity it resolved.
async fn checked(
    state: &AppState,
    user_id: i64,
    account_id: i64,
    mut fields: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let mut values = fields.clone();
    values.insert("accountId".into(), Value::from(account_id));
    let req = request::parse(&Value::Object(values))?;
    let loaded = load(state, user_id, &req, Default::default(), Purpose::Validate).await?;
    if fields.get("from").is_none_or(Value::is_null) {
        if let Some(from) = &loaded.inputs.from {
            fields.insert(
                "from".into(),
                json!([{"name": from.name, "address": from.address.as_str()}]),
            );
        }
    }
    Ok(fields)
}

pub async fn create(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let g = given(&ctx.values, false)?;
    let account_id = match &g.account_id {
        None | Some(Value::Null) => return Err(ApiError::invalid("accountId is required")),
        Some(v) => super::mail_templates::record_id("accountId", v)?,
    };
    let user_id = ctx.identity.user_id;
    let fields = checked(state, user_id, account_id, g.fields).await?;
    let now = now_millis();
    let new = NewDraft {
        user_id,
        account_id,
        revision: g.revision.unwrap_or(1),
        fields_json: Value::Object(fields).to_string(),
        created_at: now,
        updated_at: now,
    };
    let row = state.db.run(move |c| store::create_draft(c, &new)).await?;
    state.drafts.wake.notify_one();
    Ok(data(draft_json(&row)))
}

/// Auto-save: the given fields over the stored ones, stored only when `revision` is newer.
pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let g = given(&ctx.values, true)?;
    let revision = g
        .revision
        .ok_or_else(|| ApiError::invalid("revision is required: the client's save counter"))?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |c| store::get_draft(c, user_id, id))
        .await
        .map_err(not_found)?;
    if let Some(v) = g.account_id.as_ref().filter(|v| !v.is_null()) {
        if super::mail_templates::record_id("accountId", v)? != row.account_id {
            return Err(ApiError::invalid(
                "accountId cannot change: a draft stays with its mailbox",
            ));
        }
    }
    if revision <= row.revision {
        // A late or repeated save: nothing to check or store.
        return Ok(HttpResponse::Ok().json(json!({
            "data": draft_json(&row),
            "meta": {"saved": false},
        })));
    }
    let mut fields: Map<String, Value> = serde_json::from_str(&row.fields_json).unwrap_or_default();
    for (k, v) in g.fields {
        fields.insert(k, v);
    }
    let fields = checked(state, user_id, row.account_id, fields).await?;
    let json_text = Value::Object(fields).to_string();
    let now = now_millis();
    let saved = state
        .db
        .run(move |c| store::save_draft(c, user_id, id, revision, &json_text, now))
        .await
        .map_err(not_found)?;
    let (row, saved) = match saved {
        DraftSave::Saved(r) => (r, true),
        DraftSave::Stale(r) => (r, false),
    };
    if saved {
        state.drafts.wake.notify_one();
    }
    Ok(HttpResponse::Ok().json(json!({
        "data": draft_json(&row),
        "meta": {"saved": saved},
    })))
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |c| store::get_draft(c, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(draft_json(&row)))
}

/// The addresses (lower-cased, sorted) a draft field holds.
fn address_set(fields: &Map<String, Value>, key: &str) -> Vec<String> {
    let mut out: Vec<String> = parse_field(key, fields.get(key))
        .unwrap_or_default()
        .iter()
        .map(|m| m.address.key())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn param_set(ctx: &ActionCtx, key: &str) -> ApiResult<Option<Vec<String>>> {
    let Some(raw) = text_param(ctx, key) else {
        return Ok(None);
    };
    let parsed = parse_field(key, Some(&Value::String(raw))).map_err(ApiError::from)?;
    let mut out: Vec<String> = parsed.iter().map(|m| m.address.key()).collect();
    out.sort();
    out.dedup();
    Ok(Some(out))
}

/// Newest first. `accountId` narrows to one mailbox; `from`, `to`, `cc`, `bcc` (addresses,
/// comma-separated) keep drafts with exactly those addresses in that field (any order and case),
/// so compose can offer the latest draft for the same sender and recipients.
pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (page, page_size) = ctx.paging()?;
    let account = match text_param(ctx, "accountId").filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(raw) => Some(super::mail_templates::record_id(
            "accountId",
            &Value::String(raw),
        )?),
    };
    let mut wanted = Vec::new();
    for key in ["from", "to", "cc", "bcc"] {
        if let Some(set) = param_set(ctx, key)? {
            wanted.push((key, set));
        }
    }
    let user_id = ctx.identity.user_id;
    let rows = state
        .db
        .run(move |c| store::list_drafts(c, user_id, account))
        .await?;
    let matching: Vec<&DraftRow> = rows
        .iter()
        .filter(|r| {
            let fields: Map<String, Value> =
                serde_json::from_str(&r.fields_json).unwrap_or_default();
            wanted
                .iter()
                .all(|(key, set)| address_set(&fields, key) == *set)
        })
        .collect();
    let count = matching.len() as i64;
    let items: Vec<Value> = matching
        .iter()
        .skip(((page - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(|r| draft_json(r))
        .collect();
    Ok(list_response(items, count, page, page_size))
}

/// Deletes the draft here and at the provider.
pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    crate::draft_mirror::discard(state, ctx.identity.user_id, id)
        .await
        .map_err(not_found)?;
    Ok(data(json!({ "id": id })))
}

/// Sends the draft as it is stored (the path of `mailMessages:send`), then removes it. The
/// idempotency key defaults to the draft and its revision, so sending the same draft twice
/// sends once.
pub async fn send(
    state: &AppState,
    identity: Identity,
    params: std::collections::HashMap<String, String>,
    req: &HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = super::read_body(payload, state.settings.server.max_json_bytes).await?;
    let ctx = ActionCtx {
        identity,
        params,
        values: super::parse_values(&body)?,
    };
    let id = ctx.filter_by_tk()?;
    let extra = match &ctx.values {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(k) = extra
        .keys()
        .find(|k| !matches!(k.as_str(), "filterByTk" | "idempotencyKey"))
    {
        return Err(ApiError::invalid(format!(
            "Invalid values: unknown field `{k}`; a draft is sent as it is stored (update it first)"
        )));
    }
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |c| store::get_draft(c, user_id, id))
        .await
        .map_err(not_found)?;
    let mut values = match crate::draft_mirror::draft_values(&row) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    values.insert("draftId".into(), Value::from(row.id));
    let key = sending::header_text(req, "idempotency-key")
        .or_else(|| {
            extra
                .get("idempotencyKey")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("draft:{}:{}", row.id, row.revision));
    let answer = sending::send_values(
        state,
        user_id,
        Value::Object(values),
        Some(key),
        sending::quote_options(req),
        Vec::new(),
    )
    .await?;
    Ok(data(answer))
}
