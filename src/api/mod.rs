//! NocoBase-style actions: `GET|POST /api/<resource>:<action>`, `filterByTk` for the key, the POST
//! body as the action's `values`, answers in `{"data": …}` (lists add `meta`), errors in
//! `{"errors": [{"message", "code"}]}`. One file per resource.

pub mod mail_accounts;
pub mod mail_settings;
pub mod mail_signatures;
pub mod mail_sync_runs;
pub mod mail_templates;
pub mod mail_uploads;

pub mod filter;
pub mod mail_attachments;
pub mod mail_messages;

pub mod mail_aliases;
pub mod mail_drafts;
pub mod mail_message_labels;
pub mod mail_message_notes;

pub mod mail_general_settings;
pub mod mail_mass_messages;

use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 200;

/// One action call, parsed at the edge.
pub struct ActionCtx {
    pub identity: Identity,
    pub params: HashMap<String, String>,
    pub values: Value,
}

impl ActionCtx {
    /// The record key. NocoBase sends it as `filterByTk` in the query (or in the body).
    pub fn filter_by_tk(&self) -> ApiResult<i64> {
        let raw = self
            .params
            .get("filterByTk")
            .cloned()
            .or_else(|| {
                self.values
                    .get("filterByTk")
                    .map(|v| v.to_string().trim_matches('"').to_string())
            })
            .ok_or_else(|| ApiError::invalid("filterByTk is required"))?;
        raw.parse::<i64>()
            .map_err(|_| ApiError::invalid(format!("filterByTk must be a record id, got {raw:?}")))
    }

    /// The body as a typed value; unknown fields and bad types answer 400 naming the problem.
    pub fn values_as<T: DeserializeOwned>(&self) -> ApiResult<T> {
        let v = if self.values.is_null() {
            json!({})
        } else {
            self.values.clone()
        };
        serde_json::from_value(v).map_err(|e| ApiError::invalid(format!("Invalid values: {e}")))
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.identity.is_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "Only administrators can change Email settings.",
            ))
        }
    }

    /// `page` and `pageSize` with NocoBase's defaults, the size capped.
    pub fn paging(&self) -> ApiResult<(i64, i64)> {
        let num =
            |k: &str, default: i64| -> ApiResult<i64> {
                match self.params.get(k) {
                    None => Ok(default),
                    Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        ApiError::invalid(format!("{k} must be a positive integer"))
                    }),
                }
            };
        Ok((
            num("page", 1)?,
            num("pageSize", DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE),
        ))
    }
}

pub fn data(value: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": value }))
}

pub fn list(items: impl serde::Serialize, count: i64, page: i64, page_size: i64) -> HttpResponse {
    HttpResponse::Ok().json(json!({"data": items, "meta": list_meta(count, page, page_size)}))
}

/// A list answer's `meta`: `count`, `page`, `pageSize`, `totalPage`.
pub fn list_meta(count: i64, page: i64, page_size: i64) -> serde_json::Map<String, Value> {
    let total_page = if count == 0 {
        0
    } else {
        (count + page_size - 1) / page_size
    };
    let mut meta = serde_json::Map::new();
    meta.insert("count".into(), count.into());
    meta.insert("page".into(), page.into());
    meta.insert("pageSize".into(), page_size.into());
    meta.insert("totalPage".into(), total_page.into());
    meta
}

/// Reads the body up to the configured limit: a larger one answers 413 before it is parsed.
pub(crate) async fn read_body(mut payload: web::Payload, limit: usize) -> ApiResult<web::Bytes> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid("Could not read the request body").with_cause(anyhow::anyhow!("{e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("Request body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(crate) fn parse_values(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("Request body is not valid JSON: {e}"),
        )
    })
}

/// `/api/{resource}:{action}` for every resource.
pub async fn dispatch(
    req: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "Use GET or POST",
        ));
    }
    let name = name.into_inner();
    let (resource, action) = name.split_once(':').ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownAction,
            format!("Unknown action {name:?}: expected <resource>:<action>"),
        )
    })?;

    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| ApiError::invalid("The query string is malformed"))?;
    let params = collect_params(pairs);

    // The OAuth callback arrives from the user's browser without a bearer: the state binds it.
    if resource == "mailAccounts" && action == "callback" {
        return Ok(mail_accounts::callback(&state, &params).await);
    }
    if !is_known(resource, action) {
        return Err(ApiError::new(
            ErrorCode::UnknownAction,
            format!("Unknown action {resource}:{action}"),
        ));
    }

    let identity = match state.auth.authenticate(&req).await {
        Ok(id) => id,
        Err(e) => {
            state.metrics.inc(
                "email_manager_auth_failures_total",
                format!("code=\"{}\"", e.code.as_str()),
            );
            return Err(e);
        }
    };
    // Uploads stream to disk under their own limit instead of being read as JSON.
    if resource == "mailAttachments" && action == "upload" {
        return mail_uploads::upload(&state, identity, params, &req, payload).await;
    }
    // Sends read headers (Idempotency-Key, X-Timezone) and may come as multipart forms.
    if resource == "mailMessages" && action == "send" {
        return mail_messages::send::action(&state, identity, &req, payload).await;
    }
    if resource == "mailDrafts" && action == "send" {
        return mail_drafts::send(&state, identity, params, &req, payload).await;
    }
    // A recipient list is larger than other bodies: read under its own limit.
    if resource == "mailMassMessages" && action == "create" {
        return mail_mass_messages::create_action(&state, identity, params, payload).await;
    }
    let body = read_body(payload, state.settings.server.max_json_bytes).await?;
    let ctx = ActionCtx {
        identity,
        params,
        values: parse_values(&body)?,
    };

    match (resource, action) {
        ("mailSettings", "get") => mail_settings::get(&state, &ctx).await,
        ("mailSettings", "update") => mail_settings::update(&state, &ctx).await,
        ("mailAccounts", "authorize") => mail_accounts::authorize(&state, &ctx).await,
        ("mailAccounts", "list") => mail_accounts::list(&state, &ctx).await,
        ("mailAccounts", "get") => mail_accounts::get(&state, &ctx).await,
        ("mailAccounts", "destroy") => mail_accounts::destroy(&state, &ctx).await,
        ("mailAccounts", "sync") => mail_accounts::sync(&state, &ctx, false).await,
        ("mailAccounts", "resync") => mail_accounts::sync(&state, &ctx, true).await,
        ("mailSyncRuns", "list") => mail_sync_runs::list(&state, &ctx).await,
        ("mailSignatures", "list") => mail_signatures::list(&state, &ctx).await,
        ("mailSignatures", "get") => mail_signatures::get(&state, &ctx).await,
        ("mailSignatures", "create") => mail_signatures::create(&state, &ctx).await,
        ("mailSignatures", "update") => mail_signatures::update(&state, &ctx).await,
        ("mailSignatures", "destroy") => mail_signatures::destroy(&state, &ctx).await,
        ("mailTemplates", "list") => mail_templates::list(&state, &ctx).await,
        ("mailTemplates", "get") => mail_templates::get(&state, &ctx).await,
        ("mailTemplates", "create") => mail_templates::create(&state, &ctx).await,
        ("mailTemplates", "update") => mail_templates::update(&state, &ctx).await,
        ("mailTemplates", "destroy") => mail_templates::destroy(&state, &ctx).await,
        ("mailTemplates", "preview") => mail_templates::preview(&state, &ctx).await,
        ("mailUploads", "get") => mail_uploads::get(&state, &ctx).await,
        ("mailUploads", "destroy") => mail_uploads::destroy(&state, &ctx).await,
        ("mailMessages", "list") => mail_messages::list(&state, &ctx).await,
        ("mailMessages", "get") => mail_messages::get(&state, &ctx).await,
        ("mailMessages", "update") => mail_messages::update(&state, &ctx).await,
        ("mailMessages", "destroy") => mail_messages::destroy(&state, &ctx).await,
        ("mailMessages", "unreadCount") => mail_messages::unread_count(&state, &ctx).await,
        ("mailAttachments", "get") => mail_attachments::get(&state, &ctx).await,
        ("mailAttachments", "download") => mail_attachments::download(&state, &ctx).await,
        ("mailMessageLabels", "list") => mail_message_labels::list(&state, &ctx).await,
        ("mailMessageLabels", "get") => mail_message_labels::get(&state, &ctx).await,
        ("mailMessageLabels", "create") => mail_message_labels::create(&state, &ctx).await,
        ("mailMessageLabels", "update") => mail_message_labels::update(&state, &ctx).await,
        ("mailMessageLabels", "destroy") => mail_message_labels::destroy(&state, &ctx).await,
        ("mailMessageNotes", "list") => mail_message_notes::list(&state, &ctx).await,
        ("mailMessageNotes", "get") => mail_message_notes::get(&state, &ctx).await,
        ("mailMessageNotes", "create") => mail_message_notes::create(&state, &ctx).await,
        ("mailMessageNotes", "update") => mail_message_notes::update(&state, &ctx).await,
        ("mailMessageNotes", "destroy") => mail_message_notes::destroy(&state, &ctx).await,
        ("mailDrafts", "create") => mail_drafts::create(&state, &ctx).await,
        ("mailDrafts", "update") => mail_drafts::update(&state, &ctx).await,
        ("mailDrafts", "get") => mail_drafts::get(&state, &ctx).await,
        ("mailDrafts", "list") => mail_drafts::list(&state, &ctx).await,
        ("mailDrafts", "destroy") => mail_drafts::destroy(&state, &ctx).await,
        ("mailAliases", "list") => mail_aliases::list(&state, &ctx).await,
        ("mailAliases", "sync") => mail_aliases::sync(&state, &ctx).await,
        ("mailGeneralSettings", "get") => mail_general_settings::get(&state, &ctx).await,
        ("mailGeneralSettings", "update") => mail_general_settings::update(&state, &ctx).await,
        ("mailMassMessages", "get") => mail_mass_messages::get(&state, &ctx).await,
        ("mailMassMessages", "list") => mail_mass_messages::list(&state, &ctx).await,
        ("mailMassMessages", "pause") => mail_mass_messages::pause(&state, &ctx).await,
        ("mailMassMessages", "resume") => mail_mass_messages::resume(&state, &ctx).await,
        ("mailMassMessages", "cancel") => mail_mass_messages::cancel(&state, &ctx).await,
        ("mailMassMessages", "recipients") => mail_mass_messages::recipients(&state, &ctx).await,
        _ => Err(ApiError::new(
            ErrorCode::UnknownAction,
            format!("Unknown action {resource}:{action}"),
        )),
    }
}

/// Query pairs by name. A repeated `name[]` (NocoBase's array form: `filterByTk[]=1&filterByTk[]=2`,
/// `fields[]=a&fields[]=b`) keeps every value, joined with commas; other names keep the last.
fn collect_params(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        match params.get_mut(&k) {
            Some(existing) if k.ends_with("[]") => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                params.insert(k, v);
            }
        }
    }
    params
}

/// Checked before authentication so a typo answers 404 rather than a sign-in error.
fn is_known(resource: &str, action: &str) -> bool {
    matches!(
        (resource, action),
        ("mailSettings", "get" | "update")
            | (
                "mailAccounts",
                "authorize" | "list" | "get" | "destroy" | "sync" | "resync"
            )
            | ("mailSyncRuns", "list")
            | (
                "mailSignatures",
                "list" | "get" | "create" | "update" | "destroy"
            )
            | (
                "mailTemplates",
                "list" | "get" | "create" | "update" | "destroy" | "preview"
            )
            | ("mailAttachments", "upload")
            | ("mailUploads", "get" | "destroy")
            | ("mailMessages", "list" | "get" | "update" | "destroy")
            | ("mailAttachments", "get" | "download")
            | (
                "mailMessageLabels" | "mailMessageNotes",
                "list" | "get" | "create" | "update" | "destroy"
            )
            | ("mailMessages", "send")
            | ("mailMessages", "unreadCount")
            | (
                "mailDrafts",
                "create" | "update" | "get" | "list" | "send" | "destroy"
            )
            | ("mailAliases", "list" | "sync")
            | ("mailGeneralSettings", "get" | "update")
            | (
                "mailMassMessages",
                "create" | "get" | "list" | "pause" | "resume" | "cancel" | "recipients"
            )
    )
}

/// Parses a date the way NocoBase pages send them: ISO 8601 date or date-time, or Unix millis.
pub fn parse_instant(field: &str, v: &Value) -> ApiResult<i64> {
    let bad = || {
        ApiError::invalid(format!(
            "{field} must be a date (YYYY-MM-DD or ISO 8601 date-time)"
        ))
    };
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => {
            if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
                return Ok(dt.timestamp_millis());
            }
            let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
            Ok(date
                .and_hms_opt(0, 0, 0)
                .ok_or_else(bad)?
                .and_utc()
                .timestamp_millis())
        }
        _ => Err(bad()),
    }
}

pub fn iso(millis: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
