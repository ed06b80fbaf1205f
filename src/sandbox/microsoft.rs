//! Microsoft identity platform v2.0 (login.microsoftonline.com) and Graph `/me`, under
//! `/microsoft`; Graph mail is in `graph`. There is deliberately no revocation endpoint: Microsoft has none.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::pages::{self, Account};
use super::{
    bearer, check_pkce, client_credentials, form, found, guid, has_scope, json_response, mailbox,
    mailboxes, now, pkce_from, query, random_string, sign_id_token, token_response, AuthCode, Kind,
    Pkce, Provider, Shared, Token, MS_TENANT_ID,
};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/microsoft/graph/v1.0/me", web::get().to(me))
        .route(
            "/microsoft/{tenant}/oauth2/v2.0/authorize",
            web::get().to(authorize),
        )
        .route(
            "/microsoft/{tenant}/oauth2/v2.0/authorize/approve",
            web::get().to(approve),
        )
        .route(
            "/microsoft/{tenant}/oauth2/v2.0/authorize/deny",
            web::get().to(deny),
        )
        .route(
            "/microsoft/{tenant}/oauth2/v2.0/token",
            web::post().to(token),
        );
}

/// The tenants the seeded mailboxes can sign in through: the multi-tenant aliases and their own
/// directory (by id or domain).
fn known_tenant(tenant: &str) -> bool {
    [
        "common",
        "organizations",
        "consumers",
        MS_TENANT_ID,
        "contoso.test",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(tenant))
}

fn tenant_not_found(tenant: &str) -> String {
    format!(
        "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
    )
}

fn missing(param: &str) -> String {
    format!("AADSTS900144: The request body must contain the following parameter: '{param}'.")
}

struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    response_mode: String,
    pkce: Option<Pkce>,
    nonce: Option<String>,
}

/// Microsoft shows its error page (no redirect) for a bad tenant, client or redirect URI.
fn check_auth_request(
    shared: &Shared,
    tenant: &str,
    q: &HashMap<String, String>,
) -> Result<AuthRequest, HttpResponse> {
    let bad = |detail: String| Err(pages::error_page(400, "Sign in to your account", &detail));
    if !known_tenant(tenant) {
        return bad(tenant_not_found(tenant));
    }
    let Some(client_id) = q.get("client_id").filter(|c| !c.is_empty()) else {
        return bad(missing("client_id"));
    };
    if *client_id != shared.config.microsoft_client_id {
        return bad(format!(
            "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ));
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| url::Url::parse(r).is_ok()) else {
        return bad(missing("redirect_uri"));
    };
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(other) => {
            return bad(format!(
                "AADSTS700054: response_type '{other}' is not enabled for the application."
            ))
        }
        None => return bad(missing("response_type")),
    }
    let Some(scope) = q.get("scope").filter(|s| !s.trim().is_empty()) else {
        return bad(missing("scope"));
    };
    let response_mode = q
        .get("response_mode")
        .cloned()
        .unwrap_or_else(|| "query".into());
    if !["query", "fragment", "form_post"].contains(&response_mode.as_str()) {
        return bad(format!(
            "AADSTS900144: Invalid response_mode '{response_mode}'."
        ));
    }
    let pkce = match pkce_from(q) {
        Ok(p) => p,
        Err(detail) => return bad(format!("AADSTS501491: {detail}")),
    };
    Ok(AuthRequest {
        client_id: client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope: scope.split_whitespace().collect::<Vec<_>>().join(" "),
        state: q.get("state").cloned(),
        response_mode,
        pkce,
        nonce: q.get("nonce").cloned(),
    })
}

async fn authorize(
    req: HttpRequest,
    tenant: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let q = query(&req);
    let auth = match check_auth_request(&data, &tenant, &q) {
        Ok(a) => a,
        Err(page) => return page,
    };
    let (path, qs) = (req.path(), req.query_string());
    let accounts: Vec<Account> = mailboxes(Provider::Microsoft)
        .map(|m| Account {
            email: m.email.into(),
            name: m.name(),
            approve_href: format!("{path}/approve?{qs}&account={}", enc(m.email)),
        })
        .collect();
    pages::consent_page(
        "Microsoft",
        &auth.client_id,
        &auth.scope,
        &accounts,
        &format!("{path}/deny?{qs}"),
    )
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Delivers the authorization response as `response_mode` asks. `raw` is an already-encoded
/// query string, so Microsoft's exact encoding (e.g. `%3a`, `+`) survives.
fn respond(auth: &AuthRequest, raw: String) -> HttpResponse {
    match auth.response_mode.as_str() {
        "form_post" => {
            let fields: Vec<(String, String)> = form(raw.as_bytes()).into_iter().collect();
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            pages::form_post(&auth.redirect_uri, &fields)
        }
        "fragment" => found(&format!(
            "{}#{raw}",
            auth.redirect_uri.split('#').next().unwrap_or_default()
        )),
        _ => {
            let sep = if auth.redirect_uri.contains('?') {
                '&'
            } else {
                '?'
            };
            found(&format!("{}{sep}{raw}", auth.redirect_uri))
        }
    }
}

async fn approve(
    req: HttpRequest,
    tenant: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let q = query(&req);
    let auth = match check_auth_request(&data, &tenant, &q) {
        Ok(a) => a,
        Err(page) => return page,
    };
    let chosen = q
        .get("account")
        .or(q.get("login_hint"))
        .and_then(|e| mailbox(Provider::Microsoft, e));
    let Some(account) = chosen else {
        return pages::error_page(
            400,
            "Sign in to your account",
            "AADSTS50034: The user account does not exist in this directory.",
        );
    };
    let code = format!("0.Sandbox{}", random_string(60));
    data.state().add_code(
        code.clone(),
        AuthCode {
            provider: Provider::Microsoft,
            client_id: auth.client_id.clone(),
            redirect_uri: auth.redirect_uri.clone(),
            scope: auth.scope.clone(),
            pkce: auth.pkce.clone(),
            offline: has_scope(&auth.scope, "offline_access"),
            nonce: auth.nonce.clone(),
            email: account.email,
            expires_at: now() + 300,
            used: false,
        },
    );
    let mut raw = format!("code={}", enc(&code));
    if let Some(state) = &auth.state {
        raw.push_str(&format!("&state={}", enc(state)));
    }
    raw.push_str(&format!("&session_state={}", guid()));
    respond(&auth, raw)
}

async fn deny(
    req: HttpRequest,
    tenant: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let q = query(&req);
    let auth = match check_auth_request(&data, &tenant, &q) {
        Ok(a) => a,
        Err(page) => return page,
    };
    let mut raw =
        "error=access_denied&error_description=AADSTS65004%3a+User+declined+to+consent+to+access+the+app.".to_string();
    if let Some(state) = &auth.state {
        raw.push_str(&format!("&state={}", enc(state)));
    }
    respond(&auth, raw)
}

/// Microsoft's token error body; the description carries the trace trailer as the real one does.
fn ms_error(status: u16, error: &str, code: u32, description: &str) -> HttpResponse {
    token_response(status, ms_error_body(error, code, description))
}

pub(crate) fn ms_error_body(error: &str, code: u32, description: &str) -> Value {
    let (trace, correlation) = (guid(), guid());
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    json!({
            "error": error,
            "error_description": format!("{description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    })
}

fn invalid_request_missing(param: &str) -> HttpResponse {
    ms_error(400, "invalid_request", 900144, &missing(param))
}

const EXPIRED: &str = "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.";
const MALFORMED: &str = "AADSTS9002313: Invalid request. Request is malformed or invalid.";

async fn token(
    req: HttpRequest,
    tenant: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    if !known_tenant(&tenant) {
        return ms_error(400, "invalid_request", 90002, &tenant_not_found(&tenant));
    }
    let f = form(&body);
    let (client_id, secret) = client_credentials(&req, &f);
    let Some(client_id) = client_id else {
        return invalid_request_missing("client_id");
    };
    let cfg = &data.config;
    if client_id != cfg.microsoft_client_id {
        return ms_error(
            400,
            "unauthorized_client",
            700016,
            &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        );
    }
    let Some(grant_type) = f.get("grant_type").filter(|g| !g.is_empty()) else {
        return invalid_request_missing("grant_type");
    };
    match secret {
        None => {
            return ms_error(
                401,
                "invalid_client",
                7000218,
                "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
        Some(s) if s != cfg.microsoft_client_secret => {
            return ms_error(
                401,
                "invalid_client",
                7000215,
                &format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            )
        }
        Some(_) => {}
    }
    match grant_type.as_str() {
        "authorization_code" => exchange_code(&data, &f, &client_id),
        "refresh_token" => refresh(&data, &f, &client_id),
        other => ms_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("AADSTS70003: The app requested an unsupported grant type '{other}'."),
        ),
    }
}

fn exchange_code(data: &Shared, f: &HashMap<String, String>, client_id: &str) -> HttpResponse {
    let Some(code) = f.get("code").filter(|c| !c.is_empty()) else {
        return invalid_request_missing("code");
    };
    let Some(redirect_uri) = f.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return invalid_request_missing("redirect_uri");
    };
    let mut state = data.state();
    let Some(rec) = state
        .codes
        .get_mut(code)
        .filter(|c| c.provider == Provider::Microsoft)
    else {
        return ms_error(400, "invalid_grant", 9002313, MALFORMED);
    };
    let reused = std::mem::replace(&mut rec.used, true);
    if reused {
        return ms_error(
            400,
            "invalid_grant",
            54005,
            "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        );
    }
    if rec.expires_at <= now() {
        return ms_error(400, "invalid_grant", 70008, EXPIRED);
    }
    if rec.client_id != client_id {
        return ms_error(
            400,
            "invalid_grant",
            70000,
            "AADSTS70000: Provided grant is invalid or malformed.",
        );
    }
    if rec.redirect_uri != *redirect_uri {
        return ms_error(
            400,
            "invalid_grant",
            70000,
            "AADSTS70000: The provided value for the 'redirect_uri' is not valid. The value must exactly match the redirect URI used to obtain the authorization code.",
        );
    }
    // Microsoft answers the same for a missing and a wrong verifier.
    if check_pkce(&rec.pkce, f.get("code_verifier")).is_err() {
        return ms_error(
            400,
            "invalid_grant",
            501481,
            "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        );
    }
    let rec = rec.clone();
    let grant = state.new_grant();
    let template = Token {
        value: String::new(),
        provider: Provider::Microsoft,
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
    // Microsoft only hands out a refresh token when offline_access was consented.
    let issued = state.issue(&template, rec.offline, data.config.access_token_ttl_secs);
    drop(state);
    token_json(data, &template, issued.access, issued.refresh)
}

fn refresh(data: &Shared, f: &HashMap<String, String>, client_id: &str) -> HttpResponse {
    let Some(refresh_token) = f.get("refresh_token").filter(|r| !r.is_empty()) else {
        return invalid_request_missing("refresh_token");
    };
    // Microsoft wants the scopes repeated on every refresh.
    let Some(scope) = f.get("scope").filter(|s| !s.trim().is_empty()) else {
        return invalid_request_missing("scope");
    };
    let mut state = data.state();
    let Some(rt) = state
        .find(Provider::Microsoft, Kind::Refresh, refresh_token)
        .cloned()
    else {
        return ms_error(400, "invalid_grant", 9002313, MALFORMED);
    };
    if rt.revoked {
        let issued = chrono::DateTime::from_timestamp(rt.issued_at, 0)
            .unwrap_or_default()
            .format("%m/%d/%Y %H:%M:%S");
        let valid_from = chrono::Utc::now().format("%m/%d/%Y %H:%M:%S");
        return ms_error(
            400,
            "invalid_grant",
            50173,
            &format!("AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{valid_from}'."),
        );
    }
    if rt.client_id != client_id {
        return ms_error(
            400,
            "invalid_grant",
            70000,
            "AADSTS70000: Provided grant is invalid or malformed.",
        );
    }
    let template = Token {
        scope: scope.split_whitespace().collect::<Vec<_>>().join(" "),
        ..rt
    };
    // Every refresh rotates: a new refresh token, while the old one keeps working.
    let issued = state.issue(&template, true, data.config.access_token_ttl_secs);
    drop(state);
    token_json(data, &template, issued.access, issued.refresh)
}

fn token_json(
    data: &Shared,
    grant: &Token,
    access: String,
    refresh: Option<String>,
) -> HttpResponse {
    let ttl = data.config.access_token_ttl_secs;
    let mut body = json!({
        "token_type": "Bearer",
        "scope": grant.scope,
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": access,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    if has_scope(&grant.scope, "openid") {
        let Some(id_token) =
            mailbox(Provider::Microsoft, grant.email).and_then(|m| id_token(data, grant, m))
        else {
            return ms_error(
                500,
                "server_error",
                50000,
                "AADSTS50000: There was an error issuing a token.",
            );
        };
        body["id_token"] = json!(id_token);
    }
    token_response(200, body)
}

fn id_token(data: &Shared, grant: &Token, m: &super::Mailbox) -> Option<String> {
    let iat = now();
    let mut claims = json!({
        "aud": grant.client_id,
        "iss": format!("https://login.microsoftonline.com/{MS_TENANT_ID}/v2.0"),
        "iat": iat,
        "nbf": iat,
        "exp": iat + 3600,
        "name": m.name(),
        "oid": m.id,
        // The pairwise subject Microsoft gives each app; stable per user here.
        "sub": format!("sandbox-sub-{}", m.id),
        "preferred_username": m.email,
        "email": m.email,
        "tid": MS_TENANT_ID,
        "ver": "2.0",
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    sign_id_token(data, &claims)
}

/// Graph's error body (`{"error":{"code","message","innerError":{...}}}`).
pub(crate) fn graph_error(code: &str, message: &str) -> Value {
    json!({ "error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": guid(),
            "client-request-id": guid(),
        },
    }})
}

async fn me(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let token = bearer(&req);
    let owner = data.state().access_owner(Provider::Microsoft, token);
    let Some(m) = owner else {
        return super::graph::unauthenticated(token.is_some());
    };
    json_response(
        200,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "businessPhones": [],
            "displayName": m.name(),
            "givenName": m.given,
            "jobTitle": null,
            "mail": m.email,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": null,
            "surname": m.family,
            "userPrincipalName": m.email,
            "id": m.id,
        }),
    )
}
