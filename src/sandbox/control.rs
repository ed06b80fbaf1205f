//! Test controls under `/__sandbox`: expire/revoke tokens, inject faults (error answers, slow
//! answers), revoke host JWTs and look at what the sandbox saw; the mailbox controls are in
//! `mailboxes`. Not part of any real provider.

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::google::gmail_error;
use super::microsoft::{graph_error, ms_error_body};
use super::{json_response, now, query, Fault, Kind, Shared};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let scope = super::mailboxes::routes(web::scope("/__sandbox"));
    let scope = super::quota::routes(scope);
    cfg.service(
        scope
            .route("/tokens", web::get().to(tokens))
            .route("/tokens/expire", web::post().to(expire))
            .route("/tokens/revoke", web::post().to(revoke))
            .route("/faults", web::post().to(add_fault))
            .route("/faults", web::delete().to(clear_faults))
            .route("/host/revoke-jti", web::post().to(revoke_jti))
            .route("/requests", web::get().to(requests))
            .route("/requests", web::delete().to(clear_requests))
            .route("/concurrency", web::get().to(concurrency))
            .route("/concurrency", web::delete().to(clear_concurrency))
            .route("/registrations", web::get().to(registrations))
            .route("/outbox", web::get().to(super::outgoing::outbox))
            .route("/outbox", web::delete().to(super::outgoing::clear_outbox)),
    );
}

fn bad(message: String) -> HttpResponse {
    json_response(400, json!({ "error": message }))
}

/// An empty body counts as `{}`.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, HttpResponse> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
struct EmailFilter {
    email: Option<String>,
}

fn matches(filter: &Option<String>, email: &str) -> bool {
    filter
        .as_deref()
        .is_none_or(|f| f.eq_ignore_ascii_case(email))
}

/// Every (or one mailbox's) current access token answers 401 from now on; refresh still works.
async fn expire(body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let filter = match parse::<EmailFilter>(&body) {
        Ok(f) => f.email,
        Err(res) => return res,
    };
    let mut state = data.state();
    let mut count = 0;
    for t in state
        .tokens
        .iter_mut()
        .filter(|t| t.kind == Kind::Access && matches(&filter, t.email))
    {
        t.forced_expired = true;
        count += 1;
    }
    json_response(200, json!({ "expired": count }))
}

/// Revokes all of one mailbox's tokens, as when the user removes the app's access.
async fn revoke(body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let email = match parse::<EmailFilter>(&body) {
        Ok(EmailFilter { email: Some(e) }) if !e.trim().is_empty() => e,
        Ok(_) => return bad("\"email\" is required".into()),
        Err(res) => return res,
    };
    let mut state = data.state();
    let mut count = 0;
    for t in state
        .tokens
        .iter_mut()
        .filter(|t| t.email.eq_ignore_ascii_case(email.trim()))
    {
        t.revoked = true;
        count += 1;
    }
    json_response(200, json!({ "revoked": count }))
}

async fn tokens(data: web::Data<Shared>) -> HttpResponse {
    let now = now();
    let list: Vec<Value> = data
        .state()
        .tokens
        .iter()
        .map(|t| {
            json!({
                "provider": t.provider,
                "email": t.email,
                "kind": t.kind,
                "revoked": t.revoked,
                "expired": t.expired(now),
            })
        })
        .collect();
    json_response(200, json!({ "tokens": list }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    method: Option<String>,
    path_prefix: String,
    /// Absent with `delay_ms`: the real answer, late.
    status: Option<u16>,
    count: Option<u64>,
    retry_after: Option<Value>,
    body: Option<Value>,
    delay_ms: Option<u64>,
    #[serde(default)]
    after: bool,
}

async fn add_fault(body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let spec = match parse::<FaultSpec>(&body) {
        Ok(s) => s,
        Err(res) => return res,
    };
    match (spec.status, spec.delay_ms) {
        (None, None) => return bad("a fault needs a status, a delay_ms or both".into()),
        (None, _) if spec.after => return bad("\"after\" needs a status".into()),
        (Some(status), _) if !(100..=599).contains(&status) => {
            return bad(format!("status {status} is not an HTTP status"))
        }
        (_, Some(ms)) if ms > 600_000 => return bad("delay_ms is at most 600000".into()),
        _ => {}
    }
    let retry_after = match spec.retry_after {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if HeaderValue::from_str(&s).is_ok() => Some(s),
        Some(other) => {
            return bad(format!(
                "retry_after must be seconds or an HTTP date, not {other}"
            ))
        }
    };
    let fault = Fault {
        method: spec.method,
        path_prefix: spec.path_prefix,
        status: spec.status,
        remaining: spec.count.unwrap_or(1),
        retry_after,
        body: spec.body.filter(|b| !b.is_null()),
        delay_ms: spec.delay_ms,
        after: spec.after,
    };
    data.state().faults.push(fault);
    json_response(200, json!({ "ok": true }))
}

async fn clear_faults(data: web::Data<Shared>) -> HttpResponse {
    data.state().faults.clear();
    json_response(200, json!({ "ok": true }))
}

#[derive(Deserialize)]
struct Jti {
    jti: String,
}

async fn revoke_jti(body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    match parse::<Jti>(&body) {
        Ok(Jti { jti }) => {
            data.state().revoked_jtis.insert(jti);
            json_response(200, json!({ "ok": true }))
        }
        Err(res) => res,
    }
}

async fn requests(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let prefix = query(&req).remove("path_prefix").unwrap_or_default();
    let list: Vec<Value> = data
        .state()
        .requests
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(&prefix)))
        .cloned()
        .collect();
    json_response(200, json!({ "requests": list }))
}

async fn clear_requests(data: web::Data<Shared>) -> HttpResponse {
    let mut state = data.state();
    state.requests_dropped += state.requests.len();
    state.requests.clear();
    json_response(200, json!({ "ok": true }))
}

/// The most Graph requests each mailbox had in flight at once (Graph allows 4).
async fn concurrency(data: web::Data<Shared>) -> HttpResponse {
    json_response(
        200,
        json!({ "graphMaxInFlight": data.state().graph_max_in_flight }),
    )
}

async fn clear_concurrency(data: web::Data<Shared>) -> HttpResponse {
    data.state().graph_max_in_flight.clear();
    json_response(200, json!({ "ok": true }))
}

async fn registrations(data: web::Data<Shared>) -> HttpResponse {
    json_response(200, json!({ "registrations": data.state().registrations }))
}

/// The injected answer: the given body, else what that service sends for that status.
pub(crate) fn fault_response(path: &str, fault: &Fault, status: u16) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = fault
        .body
        .clone()
        .unwrap_or_else(|| default_body(path, status));
    let mut res = json_response(status.as_u16(), body);
    if let Some(value) = fault
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        res.headers_mut().insert(RETRY_AFTER, value);
    }
    res
}

fn default_body(path: &str, status: StatusCode) -> Value {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    if path.starts_with("/google/gmail") || path.starts_with("/google/upload") {
        let (message, reason, grpc) = match code {
            400 => ("Invalid argument", "badRequest", "INVALID_ARGUMENT"),
            401 => (
                "Request had invalid authentication credentials.",
                "authError",
                "UNAUTHENTICATED",
            ),
            403 => (
                "User-rate limit exceeded.",
                "userRateLimitExceeded",
                "PERMISSION_DENIED",
            ),
            404 => ("Requested entity was not found.", "notFound", "NOT_FOUND"),
            429 => (
                "Resource has been exhausted (e.g. check quota).",
                "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
            ),
            503 => (
                "The service is currently unavailable.",
                "backendError",
                "UNAVAILABLE",
            ),
            _ => ("Internal error encountered.", "backendError", "INTERNAL"),
        };
        gmail_error(code, message, reason, grpc)
    } else if path.starts_with("/google") {
        match code {
            429 => {
                json!({ "error": "rate_limit_exceeded", "error_description": "Rate Limit Exceeded" })
            }
            c if c >= 500 => {
                json!({ "error": "internal_failure", "error_description": "Backend Error" })
            }
            _ => json!({ "error": "invalid_request", "error_description": reason }),
        }
    } else if path.starts_with("/microsoft/graph") {
        let (code, message) = match code {
            400 => ("BadRequest", "Invalid request."),
            401 => (
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            ),
            403 => (
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ),
            404 => (
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            ),
            410 => (
                "SyncStateNotFound",
                "The sync state is not found. Restart the sync.",
            ),
            429 => (
                "TooManyRequests",
                "Application is over its MailboxConcurrency limit.",
            ),
            503 => (
                "ServiceUnavailable",
                "Service is unavailable. Please retry later.",
            ),
            504 => ("GatewayTimeout", "The request timed out."),
            _ => ("InternalServerError", "An internal server error occurred."),
        };
        graph_error(code, message)
    } else if path.starts_with("/microsoft") {
        match code {
            c if c == 429 || c >= 500 => ms_error_body(
                "temporarily_unavailable",
                90033,
                "AADSTS90033: A transient error has occurred. Please try again.",
            ),
            _ => ms_error_body(
                "invalid_request",
                90014,
                "AADSTS90014: The request was rejected.",
            ),
        }
    } else if path.starts_with("/nocobase") {
        json!({ "errors": [{ "message": reason }] })
    } else {
        json!({ "error": reason })
    }
}
