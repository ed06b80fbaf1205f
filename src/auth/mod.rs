//! Who is calling: the NocoBase JWT is verified here (HS256, expiry) and the acting role is
//! confirmed with the host's `roles:check`, because only the host knows whether a token was
//! signed out and which roles a user holds. When the host cannot answer we refuse (fail closed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{join_url, HostSettings};
use crate::crypto::sha256_hex;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The caller of an API action, once the token and role are confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub role: String,
    pub is_admin: bool,
}

/// Headers the host sends that `roles:check` must see as the browser sent them.
const FORWARDED_HEADERS: &[&str] = &[
    "x-role",
    "x-app",
    "x-authenticator",
    "x-locale",
    "x-timezone",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleCheck {
    #[serde(default)]
    role: String,
    #[serde(default)]
    allow_all: bool,
    #[serde(default)]
    snippets: Vec<String>,
}

pub struct HostAuth {
    key: DecodingKey,
    validation: Validation,
    roles_check_url: String,
    admin_roles: Vec<String>,
    cache_ttl: Duration,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Identity)>>,
}

impl HostAuth {
    pub fn new(host: &HostSettings) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        // API-key tokens may carry no expiry; `verify_token` decides about those itself.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.leeway = 30;
        validation.validate_aud = false;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(host.request_timeout_secs))
            // Below the 5 s keep-alive of Node's http server (NocoBase), so an idle pooled
            // connection is dropped here before the host closes it under a request.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()?;
        Ok(Self {
            key: DecodingKey::from_secret(host.jwt_secret.expose()),
            validation,
            roles_check_url: join_url(&host.api_url, "/api/roles:check"),
            admin_roles: host.admin_roles.clone(),
            cache_ttl: Duration::from_secs(host.role_cache_secs),
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Checks the signature and expiry; returns the user id.
    pub fn verify_token(&self, token: &str) -> ApiResult<i64> {
        let data =
            jsonwebtoken::decode::<HashMap<String, Value>>(token, &self.key, &self.validation)
                .map_err(|e| {
                    let reason = match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                            "Your session has expired. Please sign in again."
                        }
                        _ => "Invalid token. Please sign in again.",
                    };
                    ApiError::invalid_token(reason)
                })?;
        let claims = data.claims;
        // A sign-in token must expire; only API-key tokens (with roleName) may live without `exp`.
        if !claims.contains_key("exp") && !claims.contains_key("roleName") {
            return Err(ApiError::invalid_token(
                "Invalid token: no expiry. Please sign in again.",
            ));
        }
        let user_id = match claims.get("userId") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        user_id
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::invalid_token("Invalid token: no user. Please sign in again."))
    }

    /// Verifies the request's bearer token and confirms its role with the host (cached briefly).
    pub async fn authenticate(&self, req: &HttpRequest) -> ApiResult<Identity> {
        let token = bearer(req)
            .ok_or_else(|| ApiError::invalid_token("Sign in required: no bearer token."))?;
        let user_id = self.verify_token(token)?;
        let forwarded: Vec<(&str, String)> = FORWARDED_HEADERS
            .iter()
            .filter_map(|h| {
                req.headers()
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (*h, v.to_string()))
            })
            .collect();
        let role_header = forwarded
            .iter()
            .find(|(h, _)| *h == "x-role")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let app_header = forwarded
            .iter()
            .find(|(h, _)| *h == "x-app")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let cache_key = sha256_hex(format!("{token}\n{role_header}\n{app_header}").as_bytes());

        if let Some(identity) = self.cached(&cache_key) {
            return Ok(identity);
        }
        let check = self.roles_check(token, &forwarded).await?;
        let identity = Identity {
            user_id,
            is_admin: self.is_admin(&check),
            role: check.role,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        cache.retain(|_, (at, _)| now.duration_since(*at) < self.cache_ttl);
        cache.insert(cache_key, (now, identity.clone()));
        Ok(identity)
    }

    fn cached(&self, key: &str) -> Option<Identity> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.cache_ttl)
            .map(|(_, id)| id.clone())
    }

    async fn roles_check(&self, token: &str, forwarded: &[(&str, String)]) -> ApiResult<RoleCheck> {
        let request = || {
            let mut req = self.http.get(&self.roles_check_url).bearer_auth(token);
            for (h, v) in forwarded {
                req = req.header(*h, v);
            }
            req
        };
        let unavailable = |e: anyhow::Error| {
            ApiError::new(
                ErrorCode::HostUnavailable,
                "NocoBase could not confirm your role; try again shortly.",
            )
            .with_cause(e)
        };
        // A pooled connection the host closed as it was reused fails before the host saw the
        // request; the check is a GET, so one immediate retry is safe. Timeouts are not retried.
        let resp = match request().send().await {
            Err(e) if !e.is_timeout() => request().send().await,
            other => other,
        }
        .map_err(|e| {
            unavailable(anyhow::Error::new(e).context("calling the host's roles:check"))
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let code = body
                .pointer("/errors/0/code")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(if code == "ROLE_NOT_FOUND_FOR_USER" {
                ApiError::new(
                    ErrorCode::RoleNotFoundForUser,
                    "The role does not belong to the user",
                )
            } else {
                ApiError::invalid_token("Your session has expired. Please sign in again.")
            });
        }
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(ApiError::forbidden("NocoBase denied this role."));
        }
        if !status.is_success() {
            return Err(unavailable(anyhow::anyhow!(
                "roles:check answered HTTP {status}"
            )));
        }
        serde_json::from_value::<RoleCheck>(body.get("data").cloned().unwrap_or(Value::Null))
            .map_err(|e| {
                unavailable(
                    anyhow::Error::new(e).context("roles:check answered an unexpected body"),
                )
            })
    }

    fn is_admin(&self, check: &RoleCheck) -> bool {
        check.allow_all
            || self.admin_roles.contains(&check.role)
            || snippets_grant_settings(&check.snippets)
    }
}

/// NocoBase grants the plugin-settings pages through the `pm` snippets; a `!` entry negates.
pub fn snippets_grant_settings(snippets: &[String]) -> bool {
    const GRANTS: &[&str] = &["pm", "pm.*", "pm.email-manager", "pm.email-manager.*"];
    let negated = snippets.iter().any(|s| {
        s.strip_prefix('!')
            .is_some_and(|rest| GRANTS.contains(&rest))
    });
    !negated && snippets.iter().any(|s| GRANTS.contains(&s.as_str()))
}

pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Signs a NocoBase-shaped sign-in token; used by the development sign-in of `make demo` and tests.
pub fn sign_dev_token(secret: &[u8], user_id: i64, ttl_secs: i64) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "userId": user_id, "temp": true, "iat": now, "signInTime": now * 1000,
        "exp": now + ttl_secs, "jti": crate::crypto::random_token(16),
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn snippets_as_nocobase_sends_them() {
        assert!(snippets_grant_settings(&s(&["pm", "pm.*", "ui.*"])));
        assert!(!snippets_grant_settings(&s(&["!pm", "!pm.*", "!ui.*"])));
        assert!(!snippets_grant_settings(&s(&["pm.*", "!pm.*"])));
        assert!(!snippets_grant_settings(&s(&["ui.*"])));
        assert!(!snippets_grant_settings(&[]));
    }
}
