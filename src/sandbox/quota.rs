//! Sending limits per mailbox, set by tests through `/__sandbox/sending-limits`: a daily quota
//! (after N sends, the provider's quota error) and a rate limit (N sends per window, then 429
//! with `Retry-After`). Without a limit set, sends are unlimited.
//!
//! The answers are the providers' own: Gmail's sending limit is a 429 "User-rate limit exceeded.
//! Retry after <time> (Mail sending)" with reason `rateLimitExceeded`, its per-user rate limit a
//! 429 `rateLimitExceeded` with `Retry-After`; Exchange's submission quota is a 403
//! `ErrorQuotaExceeded`, its throttling a 429 `ApplicationThrottled` with `Retry-After`.

use std::collections::{HashMap, VecDeque};

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::google::gmail_error;
use super::microsoft::graph_error;
use super::{json_response, Mailbox, Provider, Shared, State, MAILBOXES};

#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    /// Sends accepted before the quota error; `None`: no quota.
    pub daily_limit: Option<u64>,
    /// At most `rate_count` sends within `rate_window_ms`.
    pub rate_count: Option<u64>,
    pub rate_window_ms: u64,
    /// Sends accepted since the limits were set.
    pub sent: u64,
    /// Sends refused (quota or rate) since the limits were set.
    pub refused: u64,
    /// When the sends within the window were accepted (ms).
    recent: VecDeque<i64>,
}

pub(crate) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/sending-limits", web::post().to(set))
        .route("/sending-limits", web::get().to(show))
        .route("/sending-limits", web::delete().to(clear))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLimits {
    email: String,
    #[serde(default)]
    daily_limit: Option<u64>,
    #[serde(default)]
    rate_count: Option<u64>,
    #[serde(default)]
    rate_window_ms: Option<u64>,
}

fn bad(message: String) -> HttpResponse {
    json_response(400, json!({ "error": message }))
}

fn view(email: &str, l: &Limits) -> Value {
    json!({
        "email": email,
        "daily_limit": l.daily_limit,
        "rate_count": l.rate_count,
        "rate_window_ms": l.rate_window_ms,
        "sent": l.sent,
        "refused": l.refused,
    })
}

/// `POST /__sandbox/sending-limits {"email", "daily_limit"?, "rate_count"?, "rate_window_ms"?}`:
/// sets (replaces) the mailbox's limits and starts counting from zero.
async fn set(body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let v: SetLimits = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("invalid JSON body: {e}")),
    };
    let Some(m) = MAILBOXES
        .iter()
        .find(|m| m.email.eq_ignore_ascii_case(&v.email))
    else {
        return json_response(
            404,
            json!({"error": format!("no seeded mailbox {}", v.email)}),
        );
    };
    if v.rate_count.is_some() != v.rate_window_ms.is_some() {
        return bad("rate_count and rate_window_ms go together".into());
    }
    if v.rate_count == Some(0) || v.rate_window_ms == Some(0) {
        return bad("rate_count and rate_window_ms must be positive".into());
    }
    let limits = Limits {
        daily_limit: v.daily_limit,
        rate_count: v.rate_count,
        rate_window_ms: v.rate_window_ms.unwrap_or(0),
        ..Default::default()
    };
    let answer = view(m.email, &limits);
    data.state().sending_limits.insert(m.email, limits);
    json_response(200, answer)
}

/// `GET /__sandbox/sending-limits`: every mailbox's limits and counts.
async fn show(data: web::Data<Shared>) -> HttpResponse {
    let state = data.state();
    let list: Vec<Value> = state
        .sending_limits
        .iter()
        .map(|(email, l)| view(email, l))
        .collect();
    json_response(200, json!({ "limits": list }))
}

async fn clear(data: web::Data<Shared>) -> HttpResponse {
    data.state().sending_limits.clear();
    json_response(200, json!({ "ok": true }))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether `mailbox` may send now; the provider's refusal otherwise.
pub(crate) fn admit(state: &mut State, mailbox: &'static Mailbox) -> Result<(), HttpResponse> {
    let Some(l) = state.sending_limits.get_mut(mailbox.email) else {
        return Ok(());
    };
    let now = now();
    if l.daily_limit.is_some_and(|max| l.sent >= max) {
        l.refused += 1;
        return Err(quota_error(mailbox.provider, now));
    }
    if let Some(max) = l.rate_count {
        while l
            .recent
            .front()
            .is_some_and(|t| *t + l.rate_window_ms as i64 <= now)
        {
            l.recent.pop_front();
        }
        if l.recent.len() as u64 >= max {
            l.refused += 1;
            let oldest = l.recent.front().copied().unwrap_or(now);
            let wait_ms = (oldest + l.rate_window_ms as i64 - now).max(1);
            return Err(rate_error(mailbox.provider, (wait_ms + 999) / 1000));
        }
    }
    Ok(())
}

/// Counts an accepted send.
pub(crate) fn record(limits: &mut HashMap<&'static str, Limits>, mailbox: &'static Mailbox) {
    if let Some(l) = limits.get_mut(mailbox.email) {
        l.sent += 1;
        if l.rate_count.is_some() {
            l.recent.push_back(now());
        }
    }
}

fn with_retry_after(mut res: HttpResponse, secs: i64) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        res.headers_mut().insert(RETRY_AFTER, v);
    }
    res
}

fn quota_error(provider: Provider, now: i64) -> HttpResponse {
    match provider {
        Provider::Google => {
            // Gmail names the time the limit lifts in the message (the next day here).
            let at = chrono::DateTime::from_timestamp_millis(now + 86_400_000)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let message = format!("User-rate limit exceeded.  Retry after {at} (Mail sending)");
            let mut body = gmail_error(429, &message, "rateLimitExceeded", "RESOURCE_EXHAUSTED");
            body["error"]["errors"][0]["domain"] = json!("usageLimits");
            json_response(429, body)
        }
        Provider::Microsoft => json_response(
            403,
            graph_error(
                "ErrorQuotaExceeded",
                "The sender has exceeded the number of messages it may send per day.",
            ),
        ),
    }
}

fn rate_error(provider: Provider, retry_after_secs: i64) -> HttpResponse {
    let res = match provider {
        Provider::Google => {
            let mut body = gmail_error(
                429,
                "User-rate limit exceeded.",
                "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
            );
            body["error"]["errors"][0]["domain"] = json!("usageLimits");
            json_response(429, body)
        }
        Provider::Microsoft => json_response(
            429,
            graph_error(
                "ApplicationThrottled",
                "Application is over its send rate limit for this mailbox.",
            ),
        ),
    };
    with_retry_after(res, retry_after_secs)
}
