//! NocoBase host stub under `/nocobase`: `roles:check` (how the sidecar confirms the acting role,
//! answered as NocoBase 2.x does) and `emailManager:register` (the sidecar's manifest).

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::{bearer, header, json_response, Shared};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    // NocoBase accepts both verbs for every action.
    cfg.route("/nocobase/api/roles:check", web::route().to(roles_check))
        .route(
            "/nocobase/api/emailManager:register",
            web::post().to(register),
        );
}

/// Host users: userId → roles, the first being the default role.
fn user_roles(user_id: i64) -> Option<&'static [&'static str]> {
    match user_id {
        1 => Some(&["root", "admin", "member"]),
        2 | 3 => Some(&["member"]),
        4 => Some(&["admin", "member"]),
        _ => None,
    }
}

fn host_error(message: &str, code: &str) -> HttpResponse {
    json_response(
        401,
        json!({ "errors": [{ "message": message, "code": code }] }),
    )
}

fn invalid_token() -> HttpResponse {
    host_error(
        "Your session has expired. Please sign in again.",
        "INVALID_TOKEN",
    )
}

/// The verified claims' `userId` (a number; also accepted as a numeric string).
fn user_id(claims: &Value) -> Option<i64> {
    match &claims["userId"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

async fn roles_check(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return invalid_token();
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    // Sign-in tokens carry `exp` and it is checked; API-key tokens may never expire (no `exp`).
    validation.required_spec_claims = HashSet::new();
    let Ok(decoded) = decode::<Value>(
        token,
        &DecodingKey::from_secret(&data.config.jwt_secret),
        &validation,
    ) else {
        return invalid_token();
    };
    let claims = decoded.claims;
    if let Some(jti) = claims["jti"].as_str() {
        if data.state().revoked_jtis.contains(jti) {
            return invalid_token();
        }
    }
    let Some(roles) = user_id(&claims).and_then(user_roles) else {
        return invalid_token();
    };
    // X-Role wins; an API-key token names its role; otherwise the user's default role.
    let requested = header(&req, "x-role")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .or_else(|| claims["roleName"].as_str())
        .or_else(|| roles.first().copied())
        .unwrap_or_default();
    let Some(role) = roles.iter().find(|r| **r == requested) else {
        return host_error(
            "The role does not belong to the user",
            "ROLE_NOT_FOUND_FOR_USER",
        );
    };
    let (allow_all, snippets, actions) = match *role {
        "root" => (
            true,
            json!(["pm", "pm.*", "ui.*"]),
            json!(["create", "view", "update", "destroy"]),
        ),
        "admin" => (
            false,
            json!(["pm", "pm.*", "ui.*"]),
            json!(["create", "view", "update", "destroy"]),
        ),
        _ => (
            false,
            json!(["!pm", "!pm.*", "!ui.*"]),
            json!(["view", "update:own", "destroy:own", "create"]),
        ),
    };
    json_response(
        200,
        json!({
            "data": {
                "role": role,
                "roles": roles,
                "strategy": { "actions": actions },
                "actions": {},
                "snippets": snippets,
                "resources": [],
                "allowAll": allow_all,
                "allowConfigure": allow_all,
                "allowMenuItemIds": [],
                "uiButtonSchemasBlacklist": [],
            },
            "meta": {},
        }),
    )
}

async fn register(body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let manifest = match serde_json::from_slice::<Value>(&body) {
        Ok(m @ Value::Object(_)) => m,
        _ => {
            return json_response(
                400,
                json!({ "errors": [{ "message": "The plugin manifest must be a JSON object", "code": "INVALID_MANIFEST" }] }),
            )
        }
    };
    data.state().registrations.push(manifest);
    json_response(200, json!({ "data": { "registered": true } }))
}
