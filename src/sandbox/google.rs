//! Google: OAuth 2.0 (accounts.google.com, oauth2.googleapis.com) and OpenID userinfo, under
//! `/google`; the Gmail API is in `gmail`.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::pages::{self, Account};
use super::{
    bearer, check_pkce, client_credentials, form, found, has_scope, json_response, mailbox,
    mailboxes, now, pkce_from, query, random_string, redirect_to, sign_id_token, token_response,
    AuthCode, Kind, Pkce, PkceError, Provider, Shared, Token,
};

const AUTH: &str = "/google/o/oauth2/v2/auth";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(AUTH, web::get().to(authorize))
        .route("/google/o/oauth2/v2/auth/approve", web::get().to(approve))
        .route("/google/o/oauth2/v2/auth/deny", web::get().to(deny))
        .route("/google/token", web::post().to(token))
        // Google still honours the old GET form of revoke.
        .route("/google/revoke", web::route().to(revoke))
        .route("/google/v1/userinfo", web::route().to(userinfo));
}

/// An authorization request that passed Google's checks.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    pkce: Option<Pkce>,
    offline: bool,
    nonce: Option<String>,
}

/// Google shows an error page (no redirect) when the client or the redirect URI is wrong.
fn check_auth_request(
    shared: &Shared,
    q: &HashMap<String, String>,
) -> Result<AuthRequest, HttpResponse> {
    let bad = |detail: &str| Err(pages::error_page(400, "Error 400: invalid_request", detail));
    let Some(client_id) = q.get("client_id").filter(|c| !c.is_empty()) else {
        return bad("Missing required parameter: client_id");
    };
    if *client_id != shared.config.google_client_id {
        return Err(pages::error_page(
            401,
            "Error 401: invalid_client",
            "The OAuth client was not found.",
        ));
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| url::Url::parse(r).is_ok()) else {
        return bad("Missing required parameter: redirect_uri");
    };
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(other) => return bad(&format!("Invalid response_type: {other}")),
        None => return bad("Missing required parameter: response_type"),
    }
    let Some(scope) = q.get("scope").filter(|s| !s.trim().is_empty()) else {
        return bad("Missing required parameter: scope");
    };
    let pkce = match pkce_from(q) {
        Ok(p) => p,
        Err(detail) => return bad(&detail),
    };
    Ok(AuthRequest {
        client_id: client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope: scope.split_whitespace().collect::<Vec<_>>().join(" "),
        state: q.get("state").cloned(),
        pkce,
        offline: q.get("access_type").is_some_and(|a| a == "offline"),
        nonce: q.get("nonce").cloned(),
    })
}

async fn authorize(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let q = query(&req);
    let auth = match check_auth_request(&data, &q) {
        Ok(a) => a,
        Err(page) => return page,
    };
    let qs = req.query_string();
    let accounts: Vec<Account> = mailboxes(Provider::Google)
        .map(|m| Account {
            email: m.email.into(),
            name: m.name(),
            approve_href: format!("{AUTH}/approve?{qs}&account={}", enc(m.email)),
        })
        .collect();
    pages::consent_page(
        "Google",
        &auth.client_id,
        &auth.scope,
        &accounts,
        &format!("{AUTH}/deny?{qs}"),
    )
}

async fn approve(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let q = query(&req);
    let auth = match check_auth_request(&data, &q) {
        Ok(a) => a,
        Err(page) => return page,
    };
    let chosen = q
        .get("account")
        .or(q.get("login_hint"))
        .and_then(|e| mailbox(Provider::Google, e));
    let Some(account) = chosen else {
        return pages::error_page(400, "Error 400: invalid_request", "Unknown account.");
    };
    let code = format!("4/0Sandbox{}", random_string(40));
    data.state().add_code(
        code.clone(),
        AuthCode {
            provider: Provider::Google,
            client_id: auth.client_id,
            redirect_uri: auth.redirect_uri.clone(),
            scope: auth.scope.clone(),
            pkce: auth.pkce,
            offline: auth.offline,
            nonce: auth.nonce,
            email: account.email,
            // Google's codes are short-lived; 5 minutes is what the brief asks for.
            expires_at: now() + 300,
            used: false,
        },
    );
    let mut params = Vec::new();
    if let Some(state) = &auth.state {
        params.push(("state", state.as_str()));
    }
    params.extend([
        ("code", code.as_str()),
        ("scope", auth.scope.as_str()),
        ("authuser", "0"),
        ("prompt", "consent"),
    ]);
    match redirect_to(&auth.redirect_uri, &params) {
        Some(location) => found(&location),
        None => pages::error_page(400, "Error 400: invalid_request", "Invalid redirect_uri"),
    }
}

async fn deny(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let q = query(&req);
    let auth = match check_auth_request(&data, &q) {
        Ok(a) => a,
        Err(page) => return page,
    };
    let mut params = vec![("error", "access_denied")];
    if let Some(state) = &auth.state {
        params.push(("state", state.as_str()));
    }
    match redirect_to(&auth.redirect_uri, &params) {
        Some(location) => found(&location),
        None => pages::error_page(400, "Error 400: invalid_request", "Invalid redirect_uri"),
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Google's OAuth error body (`{"error","error_description"}`).
fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    token_response(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

async fn token(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let f = form(&body);
    let (client_id, secret) = client_credentials(&req, &f);
    let Some(client_id) = client_id else {
        return oauth_error(
            400,
            "invalid_request",
            "Could not determine client ID from request.",
        );
    };
    let cfg = &data.config;
    if client_id != cfg.google_client_id {
        return oauth_error(401, "invalid_client", "Unauthorized");
    }
    match secret {
        None => return oauth_error(400, "invalid_request", "client_secret is missing."),
        Some(s) if s != cfg.google_client_secret => {
            return oauth_error(401, "invalid_client", "Unauthorized")
        }
        Some(_) => {}
    }
    match f.get("grant_type").map(String::as_str).unwrap_or("") {
        "authorization_code" => exchange_code(&data, &f, &client_id),
        "refresh_token" => refresh(&data, &f, &client_id),
        other => oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
    }
}

fn exchange_code(data: &Shared, f: &HashMap<String, String>, client_id: &str) -> HttpResponse {
    let Some(code) = f.get("code").filter(|c| !c.is_empty()) else {
        return oauth_error(400, "invalid_request", "Missing required parameter: code");
    };
    let Some(redirect_uri) = f.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: redirect_uri",
        );
    };
    let mut state = data.state();
    let Some(rec) = state
        .codes
        .get_mut(code)
        .filter(|c| c.provider == Provider::Google)
    else {
        return oauth_error(400, "invalid_grant", "Bad Request");
    };
    // A code is spent by its first redemption attempt, successful or not (RFC 6749 §4.1.2).
    let reused = std::mem::replace(&mut rec.used, true);
    if reused || rec.expires_at <= now() || rec.client_id != client_id {
        return oauth_error(400, "invalid_grant", "Bad Request");
    }
    if rec.redirect_uri != *redirect_uri {
        // What Google really answers for a redirect URI that differs from the authorize one.
        return oauth_error(400, "redirect_uri_mismatch", "Bad Request");
    }
    match check_pkce(&rec.pkce, f.get("code_verifier")) {
        Ok(()) => {}
        Err(PkceError::Missing) => {
            return oauth_error(400, "invalid_grant", "Missing code verifier.")
        }
        Err(PkceError::Mismatch) => {
            return oauth_error(400, "invalid_grant", "Invalid code verifier.")
        }
    }
    let rec = rec.clone();
    let grant = state.new_grant();
    let template = Token {
        value: String::new(),
        provider: Provider::Google,
        email: rec.email,
        kind: Kind::Access,
        client_id: rec.client_id.clone(),
        scope: rec.scope.clone(),
        nonce: rec.nonce.clone(),
        grant,
        issued_at: 0,
        expires_at: None,
        forced_expired: false,
        revoked: false,
    };
    let issued = state.issue(&template, rec.offline, data.config.access_token_ttl_secs);
    drop(state);
    token_json(data, &template, issued.access, issued.refresh)
}

fn refresh(data: &Shared, f: &HashMap<String, String>, client_id: &str) -> HttpResponse {
    let Some(refresh_token) = f.get("refresh_token").filter(|r| !r.is_empty()) else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: refresh_token",
        );
    };
    let mut state = data.state();
    let Some(rt) = state
        .find(Provider::Google, Kind::Refresh, refresh_token)
        .cloned()
    else {
        return oauth_error(400, "invalid_grant", "Bad Request");
    };
    if rt.revoked {
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
    }
    if rt.client_id != client_id {
        return oauth_error(401, "unauthorized_client", "Unauthorized");
    }
    let issued = state.issue(&rt, false, data.config.access_token_ttl_secs);
    drop(state);
    // Google does not rotate refresh tokens: no refresh_token in the answer.
    token_json(data, &rt, issued.access, None)
}

fn token_json(
    data: &Shared,
    grant: &Token,
    access: String,
    refresh: Option<String>,
) -> HttpResponse {
    let mut body = json!({
        "access_token": access,
        "expires_in": data.config.access_token_ttl_secs,
        "scope": grant.scope,
        "token_type": "Bearer",
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    if has_scope(&grant.scope, "openid") {
        let Some(id_token) =
            mailbox(Provider::Google, grant.email).and_then(|m| id_token(data, grant, m))
        else {
            return oauth_error(500, "internal_failure", "Backend Error");
        };
        body["id_token"] = json!(id_token);
    }
    token_response(200, body)
}

fn id_token(data: &Shared, grant: &Token, m: &super::Mailbox) -> Option<String> {
    let iat = now();
    let mut claims = json!({
        "iss": "https://accounts.google.com",
        "azp": grant.client_id,
        "aud": grant.client_id,
        "sub": m.id,
        "email": m.email,
        "email_verified": true,
        "name": m.name(),
        "given_name": m.given,
        "family_name": m.family,
        "iat": iat,
        "exp": iat + 3600,
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    sign_id_token(data, &claims)
}

/// Revoking any token of a grant revokes the whole grant: Google documents that revoking an
/// access token also revokes its refresh token, and a refresh token takes its access tokens.
async fn revoke(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let token = form(&body)
        .remove("token")
        .or_else(|| query(&req).remove("token"))
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return oauth_error(400, "invalid_request", "Missing required parameter: token");
    };
    let mut state = data.state();
    let found = state
        .tokens
        .iter()
        .find(|t| {
            t.provider == Provider::Google && t.value == token && !t.revoked && !t.expired(now())
        })
        .map(|t| t.grant);
    match found {
        Some(grant) => {
            state.revoke_grant(grant);
            json_response(200, json!({}))
        }
        None => oauth_error(400, "invalid_token", "Token expired or revoked"),
    }
}

async fn userinfo(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let owner = data.state().access_owner(Provider::Google, bearer(&req));
    let Some(m) = owner else {
        let mut res = json_response(
            401,
            json!({ "error": "invalid_request", "error_description": "Invalid Credentials" }),
        );
        res.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            actix_web::http::header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return res;
    };
    json_response(
        200,
        json!({
            "sub": m.id,
            "name": m.name(),
            "given_name": m.given,
            "family_name": m.family,
            "picture": format!("https://lh3.googleusercontent.com/a/sandbox-{}=s96-c", m.id),
            "email": m.email,
            "email_verified": true,
        }),
    )
}

/// Gmail API error body (`{"error":{"code","message","errors":[...],"status"}}`).
pub(crate) fn gmail_error(code: u16, message: &str, reason: &str, status: &str) -> Value {
    json!({ "error": {
        "code": code,
        "message": message,
        "errors": [{ "message": message, "domain": "global", "reason": reason }],
        "status": status,
    }})
}
