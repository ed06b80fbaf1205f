//! The mail center page (`GET /admin/mail`) and its assets (`GET /admin/mail/assets/<name>`).
//! Everything is compiled into the binary: no CDN, no build step. The page authenticates its API
//! calls with the host's token from localStorage, like the settings page; the HTML itself holds
//! nothing private, so serving it needs no token.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// No inline script at all (`script-src 'self'`): a message's HTML, shown in a sandboxed
/// `srcdoc` frame that inherits this policy, can never run code even if the sanitizer missed
/// something. Inline style stays allowed because message HTML is styled inline. `img-src` adds
/// `http:`/`https:` because a `srcdoc` frame inherits this policy and remote images must load
/// once the user clicks "Show images"; until then the server has already removed them (see
/// docs/security.md). `blob:` carries inline (`cid:`) images fetched with the user's token.
pub const MAIL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data: blob: http: https:; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

const INDEX: &str = include_str!("mail/index.html");

/// The seven assets: ui owns index/mail.css/i18n.js/app.js, compose owns compose.js, mass.js and
/// compose.css. Every name is listed here from the start so neither side edits Rust to add one.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "mail.css",
        "text/css; charset=utf-8",
        include_str!("mail/mail.css"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("mail/i18n.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("mail/app.js"),
    ),
    (
        "compose.js",
        "text/javascript; charset=utf-8",
        include_str!("mail/compose.js"),
    ),
    (
        "mass.js",
        "text/javascript; charset=utf-8",
        include_str!("mail/mass.js"),
    ),
    (
        "compose.css",
        "text/css; charset=utf-8",
        include_str!("mail/compose.css"),
    ),
];

pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", MAIL_CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-store"))
        .body(INDEX)
}

pub async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header(("X-Content-Type-Options", "nosniff"))
            // Assets change with the binary; no-cache keeps an upgraded sidecar from serving a
            // page with yesterday's script.
            .insert_header(("Cache-Control", "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound()
            .content_type("application/json")
            .body(
                json!({"errors": [{"message": "No such asset", "code": "NOT_FOUND"}]}).to_string(),
            ),
    }
}

/// What the page needs before its first API call: where the host's sign-in is, and whether the
/// development sign-in exists.
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    // Under the host's own path when NocoBase is served below one.
    let signin = crate::config::join_url(
        &state.settings.host.public_url,
        "/signin?redirect=%2Fadmin%2Fmail",
    );
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "data": {
            "signInUrl": signin,
            "devSignIn": state.settings.dev.enabled,
        }}))
}
