//! Integration tests of the provider sandbox, driven over HTTP exactly as the adapters and the
//! lead's tests drive it.

use std::collections::HashMap;
use std::net::TcpListener;

use base64::Engine as _;
use email_manager::sandbox::{Sandbox, SandboxConfig};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const REDIRECT: &str = "http://127.0.0.1:9/admin/settings/mail/oauth2";
const TENANT: &str = "7d1c5a2e-5f1b-4c3e-9a7d-2b1f0c9e8a11";

async fn start() -> (Sandbox, Client, SandboxConfig) {
    let config = SandboxConfig::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sandbox = Sandbox::start(config.clone(), listener).unwrap();
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (sandbox, client, config)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn pkce(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn location_params(res: &reqwest::Response) -> HashMap<String, String> {
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The payload of a JWT, unverified (the sandbox signs id_tokens with a random key).
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn body(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    (status, res.json().await.unwrap())
}

fn google_authorize_url(sb: &Sandbox, cfg: &SandboxConfig, challenge: &str) -> String {
    format!(
        "{}?client_id={}&redirect_uri={}&response_type=code&scope={}&state=st-123&code_challenge={challenge}&code_challenge_method=S256&access_type=offline&prompt=consent",
        sb.google_auth_url(),
        enc(&cfg.google_client_id),
        enc(REDIRECT),
        enc("openid email profile https://www.googleapis.com/auth/gmail.modify"),
    )
}

/// Consent as `account` the way tests do: the authorize URL with `/approve` and `&account=`.
async fn google_code(
    sb: &Sandbox,
    c: &Client,
    cfg: &SandboxConfig,
    verifier: &str,
    account: &str,
) -> String {
    let url =
        google_authorize_url(sb, cfg, &pkce(verifier)).replacen("/auth?", "/auth/approve?", 1)
            + &format!("&account={}", enc(account));
    let res = c.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let params = location_params(&res);
    assert_eq!(params["state"], "st-123");
    assert_eq!(params["authuser"], "0");
    assert_eq!(params["prompt"], "consent");
    assert!(params["scope"].contains("gmail.modify"));
    assert!(params["code"].starts_with("4/0Sandbox"));
    params["code"].clone()
}

/// Code exchange with HTTP Basic client auth (url-encoded id:secret, as the oauth2 crate does).
async fn google_exchange(
    sb: &Sandbox,
    c: &Client,
    cfg: &SandboxConfig,
    code: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let res = c
        .post(sb.google_token_url())
        .basic_auth(
            enc(&cfg.google_client_id),
            Some(enc(&cfg.google_client_secret)),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    body(res).await
}

async fn google_tokens(sb: &Sandbox, c: &Client, cfg: &SandboxConfig, account: &str) -> Value {
    let verifier = "v".repeat(50);
    let code = google_code(sb, c, cfg, &verifier, account).await;
    let (status, tokens) = google_exchange(sb, c, cfg, &code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

#[tokio::test]
async fn google_code_flow_with_pkce() {
    let (sb, c, cfg) = start().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-sandbox";

    let page = c
        .get(google_authorize_url(&sb, &cfg, &pkce(verifier)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("wants to access your Google Account"));
    assert!(html.contains("data-account=\"alice@gmail.test\""));
    assert!(html.contains("Continue as bob@gmail.test"));
    assert!(html.contains("id=\"deny\""));

    let code = google_code(&sb, &c, &cfg, verifier, "alice@gmail.test").await;
    let (status, tokens) = google_exchange(&sb, &c, &cfg, &code, Some(verifier)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3599);
    assert!(tokens["access_token"]
        .as_str()
        .unwrap()
        .starts_with("ya29."));
    assert!(tokens["refresh_token"].as_str().unwrap().starts_with("1//"));
    assert!(tokens["scope"].as_str().unwrap().contains("openid"));
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["iss"], "https://accounts.google.com");
    assert_eq!(claims["aud"], cfg.google_client_id.as_str());
    assert_eq!(claims["sub"], "109000000000000000001");
    assert_eq!(claims["email"], "alice@gmail.test");
    assert_eq!(claims["email_verified"], true);

    // Codes are single-use.
    let (status, err) = google_exchange(&sb, &c, &cfg, &code, Some(verifier)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err,
        json!({"error": "invalid_grant", "error_description": "Bad Request"})
    );

    let access = tokens["access_token"].as_str().unwrap();
    let (status, info) = body(
        c.get(sb.google_userinfo_url())
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["email"], "alice@gmail.test");
    assert_eq!(info["name"], "Alice Example");
    assert_eq!(info["sub"], "109000000000000000001");

    let profile_url = format!("{}/gmail/v1/users/me/profile", sb.gmail_api_base());
    let (status, profile) = body(
        c.get(&profile_url)
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        profile,
        json!({"emailAddress": "alice@gmail.test", "messagesTotal": 0, "threadsTotal": 0, "historyId": "1000"})
    );

    // The request log lets tests check what the client sent.
    let (_, log) = body(
        c.get(format!(
            "{}/__sandbox/requests?path_prefix=/google/token",
            sb.base_url
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let first = &log["requests"][0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["form"]["code_verifier"], verifier);
    assert!(first["headers"]["authorization"]
        .as_str()
        .unwrap()
        .starts_with("Basic "));
    let (_, log) = body(
        c.get(format!(
            "{}/__sandbox/requests?path_prefix=/google/o/oauth2",
            sb.base_url
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(log["requests"][0]["query"]["access_type"], "offline");
    assert_eq!(log["requests"][0]["query"]["code_challenge_method"], "S256");
    sb.stop().await;
}

#[tokio::test]
async fn google_pkce_errors() {
    let (sb, c, cfg) = start().await;
    let verifier = "a".repeat(43);
    let code = google_code(&sb, &c, &cfg, &verifier, "bob@gmail.test").await;
    let (status, err) = google_exchange(&sb, &c, &cfg, &code, Some(&"b".repeat(43))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err,
        json!({"error": "invalid_grant", "error_description": "Invalid code verifier."})
    );

    let code = google_code(&sb, &c, &cfg, &verifier, "bob@gmail.test").await;
    let (status, err) = google_exchange(&sb, &c, &cfg, &code, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err,
        json!({"error": "invalid_grant", "error_description": "Missing code verifier."})
    );

    // A redirect_uri other than the authorize one: Google's own error code for it.
    let code = google_code(&sb, &c, &cfg, &verifier, "bob@gmail.test").await;
    let res = c
        .post(sb.google_token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("code_verifier", verifier.as_str()),
            ("client_id", cfg.google_client_id.as_str()),
            ("client_secret", cfg.google_client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(res).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "redirect_uri_mismatch", "error_description": "Bad Request"})
        )
    );
    sb.stop().await;
}

#[tokio::test]
async fn google_refresh_and_revoke() {
    let (sb, c, cfg) = start().await;
    let tokens = google_tokens(&sb, &c, &cfg, "alice@gmail.test").await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let first_access = tokens["access_token"].as_str().unwrap();

    // Client credentials in the body this time.
    let refresh = || {
        c.post(sb.google_token_url())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", cfg.google_client_id.as_str()),
                ("client_secret", cfg.google_client_secret.as_str()),
            ])
            .send()
    };
    let (status, refreshed) = body(refresh().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed.get("refresh_token").is_none());
    let second_access = refreshed["access_token"].as_str().unwrap();
    assert_ne!(second_access, first_access);

    let res = c
        .post(sb.google_revoke_url())
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(body(res).await, (StatusCode::OK, json!({})));

    let (status, err) = body(refresh().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
    // Access tokens minted from the revoked refresh token go with it.
    for access in [first_access, second_access] {
        let res = c
            .get(sb.google_userinfo_url())
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = c
        .post(sb.google_revoke_url())
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(res).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_token", "error_description": "Token expired or revoked"})
        )
    );
    sb.stop().await;
}

#[tokio::test]
async fn google_client_and_request_errors() {
    let (sb, c, cfg) = start().await;
    let res = c
        .post(sb.google_token_url())
        .basic_auth(&cfg.google_client_id, Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(res).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "Unauthorized"})
        )
    );

    let res = c
        .post(sb.google_token_url())
        .basic_auth(&cfg.google_client_id, Some(&cfg.google_client_secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(res).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: password"})
        )
    );

    let res = c
        .post(sb.google_token_url())
        .basic_auth(&cfg.google_client_id, Some(&cfg.google_client_secret))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    let (status, err) = body(res).await;
    assert_eq!(
        (status, &err["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request"))
    );

    let res = c
        .get(format!(
            "{}?client_id=nope&redirect_uri={}&response_type=code&scope=openid",
            sb.google_auth_url(),
            enc(REDIRECT)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Error 401: invalid_client"));

    let res = c
        .get(format!(
            "{}?client_id={}&response_type=code&scope=openid",
            sb.google_auth_url(),
            enc(&cfg.google_client_id)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Error 400: invalid_request"));

    let deny = google_authorize_url(&sb, &cfg, "c").replacen("/auth?", "/auth/deny?", 1);
    let res = c.get(deny).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let params = location_params(&res);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "st-123");

    // Garbage never panics the sandbox: bad bearer, binary body.
    let res = c
        .post(sb.google_token_url())
        .body(vec![0xff, 0x00, 0x25])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = c
        .get(sb.google_userinfo_url())
        .header("authorization", "Bearer \u{1}")
        .send()
        .await;
    assert!(res.is_err() || res.unwrap().status() == StatusCode::UNAUTHORIZED);
    sb.stop().await;
}

fn ms_authorize_url(sb: &Sandbox, cfg: &SandboxConfig, tenant: &str, challenge: &str) -> String {
    format!(
        "{}/{tenant}/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri={}&response_mode=query&scope={}&state=ms-state&code_challenge={challenge}&code_challenge_method=S256&prompt=select_account",
        sb.microsoft_authority(),
        cfg.microsoft_client_id,
        enc(REDIRECT),
        enc("openid profile email offline_access https://graph.microsoft.com/Mail.ReadWrite"),
    )
}

async fn ms_token(
    sb: &Sandbox,
    c: &Client,
    cfg: &SandboxConfig,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![
        ("client_id", cfg.microsoft_client_id.as_str()),
        ("client_secret", cfg.microsoft_client_secret.as_str()),
    ];
    form.extend_from_slice(extra);
    let url = format!("{}/{TENANT}/oauth2/v2.0/token", sb.microsoft_authority());
    body(c.post(url).form(&form).send().await.unwrap()).await
}

async fn ms_tokens(sb: &Sandbox, c: &Client, cfg: &SandboxConfig, account: &str) -> Value {
    let verifier = "m".repeat(60);
    let url = ms_authorize_url(sb, cfg, TENANT, &pkce(&verifier)).replacen(
        "/authorize?",
        "/authorize/approve?",
        1,
    ) + &format!("&account={}", enc(account));
    let res = c.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let params = location_params(&res);
    assert_eq!(params["state"], "ms-state");
    assert_eq!(params["session_state"].len(), 36);
    let code = params["code"].clone();
    assert!(code.starts_with("0.Sandbox"));
    let (status, tokens) = ms_token(
        sb,
        c,
        cfg,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

#[tokio::test]
async fn microsoft_code_flow_and_rotating_refresh() {
    let (sb, c, cfg) = start().await;
    let page = c
        .get(ms_authorize_url(&sb, &cfg, "common", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("data-account=\"carol@contoso.test\"") && html.contains("class=\"account\"")
    );

    let tokens = ms_tokens(&sb, &c, &cfg, "carol@contoso.test").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["ext_expires_in"], 3599);
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["oid"], "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    assert_eq!(claims["preferred_username"], "carol@contoso.test");
    assert_eq!(
        claims["iss"],
        format!("https://login.microsoftonline.com/{TENANT}/v2.0")
    );
    assert_eq!(claims["ver"], "2.0");

    let (status, me) = body(
        c.get(format!("{}/me", sb.graph_api_base()))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    assert_eq!(me["mail"], "carol@contoso.test");
    assert_eq!(me["displayName"], "Carol Contoso");
    assert_eq!(
        me["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
    );

    let rt1 = tokens["refresh_token"].as_str().unwrap();
    let (status, err) = ms_token(
        &sb,
        &c,
        &cfg,
        &[("grant_type", "refresh_token"), ("refresh_token", rt1)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_request");
    assert_eq!(err["error_codes"], json!([900144]));
    assert!(err["error_description"].as_str().unwrap().starts_with(
        "AADSTS900144: The request body must contain the following parameter: 'scope'."
    ));

    let scope = "offline_access https://graph.microsoft.com/Mail.ReadWrite";
    let (status, r2) = ms_token(
        &sb,
        &c,
        &cfg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt1),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r2}");
    let rt2 = r2["refresh_token"].as_str().unwrap();
    assert_ne!(rt2, rt1);
    // The old refresh token keeps working, and each refresh rotates again.
    let (status, r3) = ms_token(
        &sb,
        &c,
        &cfg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt1),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(r3["refresh_token"], r2["refresh_token"]);

    let res = c
        .post(format!("{}/__sandbox/tokens/revoke", sb.base_url))
        .json(&json!({"email": "carol@contoso.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, err) = ms_token(
        &sb,
        &c,
        &cfg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt2),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_codes"], json!([50173]));
    assert!(err["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS50173:"));
    for key in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(err[key].is_string(), "{key} missing in {err}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn microsoft_errors() {
    let (sb, c, cfg) = start().await;
    let verifier = "q".repeat(50);
    let approve = ms_authorize_url(&sb, &cfg, "organizations", &pkce(&verifier)).replacen(
        "/authorize?",
        "/authorize/approve?",
        1,
    ) + "&account=dave%40contoso.test";
    let res = c.get(&approve).send().await.unwrap();
    let code = location_params(&res)["code"].clone();
    let (status, err) = ms_token(
        &sb,
        &c,
        &cfg,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_codes"], json!([501481]));

    let url = format!("{}/common/oauth2/v2.0/token", sb.microsoft_authority());
    let res = c
        .post(url)
        .form(&[
            ("client_id", cfg.microsoft_client_id.as_str()),
            ("client_secret", "nope"),
            ("grant_type", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    let (status, err) = body(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"], "invalid_client");
    assert_eq!(err["error_codes"], json!([7000215]));

    let res = c
        .get(ms_authorize_url(&sb, &cfg, "common", "x").replace(
            &cfg.microsoft_client_id,
            "11111111-2222-3333-4444-555555555555",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("AADSTS700016: Application with identifier '11111111-2222-3333-4444-555555555555' was not found"));

    let deny =
        ms_authorize_url(&sb, &cfg, "common", "x").replacen("/authorize?", "/authorize/deny?", 1);
    let res = c.get(deny).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("{REDIRECT}?error=access_denied&error_description=AADSTS65004%3a+User+declined+to+consent+to+access+the+app.&state=ms-state")
    );

    let (status, err) = body(
        c.get(format!("{}/me", sb.graph_api_base()))
            .bearer_auth("EwBnope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["code"], "InvalidAuthenticationToken");
    sb.stop().await;
}

#[tokio::test]
async fn expired_tokens_answer_401_and_refresh_still_works() {
    let (sb, c, cfg) = start().await;
    let google = google_tokens(&sb, &c, &cfg, "alice@gmail.test").await;
    let ms = ms_tokens(&sb, &c, &cfg, "dave@contoso.test").await;
    let g_access = google["access_token"].as_str().unwrap();
    let m_access = ms["access_token"].as_str().unwrap();
    let me_url = format!("{}/me", sb.graph_api_base());
    let profile_url = format!("{}/gmail/v1/users/me/profile", sb.gmail_api_base());

    let res = c
        .post(format!("{}/__sandbox/tokens/expire", sb.base_url))
        .json(&json!({"email": "alice@gmail.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = c
        .get(sb.google_userinfo_url())
        .bearer_auth(g_access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(
        body(res).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_request", "error_description": "Invalid Credentials"})
        )
    );

    let (status, err) = body(
        c.get(&profile_url)
            .bearer_auth(g_access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        err,
        json!({"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.","errors":[{"message":"Invalid Credentials","domain":"global","reason":"authError","location":"Authorization","locationType":"header"}],"status":"UNAUTHENTICATED"}})
    );
    // Only alice's tokens expired.
    assert_eq!(
        c.get(&me_url)
            .bearer_auth(m_access)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    c.post(format!("{}/__sandbox/tokens/expire", sb.base_url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, err) = body(c.get(&me_url).bearer_auth(m_access).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        err["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    assert!(err["error"]["innerError"]["request-id"].is_string());

    let (_, list) = body(
        c.get(format!("{}/__sandbox/tokens", sb.base_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let list = list["tokens"].as_array().unwrap();
    assert!(list
        .iter()
        .filter(|t| t["kind"] == "access")
        .all(|t| t["expired"] == true));
    assert!(list
        .iter()
        .filter(|t| t["kind"] == "refresh")
        .all(|t| t["expired"] == false && t["revoked"] == false));
    assert!(list.iter().all(|t| t.get("value").is_none()));

    // A refresh gives a working access token again.
    let res = c
        .post(sb.google_token_url())
        .basic_auth(&cfg.google_client_id, Some(&cfg.google_client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", google["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let (status, fresh) = body(res).await;
    assert_eq!(status, StatusCode::OK);
    let res = c
        .get(&profile_url)
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    sb.stop().await;
}

fn host_jwt(cfg: &SandboxConfig, user_id: i64, exp_in: i64, jti: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"userId": user_id, "temp": true, "iat": now, "signInTime": now * 1000, "jti": jti, "exp": now + exp_in});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&cfg.jwt_secret),
    )
    .unwrap()
}

#[tokio::test]
async fn host_roles_check_and_register() {
    let (sb, c, cfg) = start().await;
    let url = format!("{}/api/roles:check", sb.host_api_url());
    let check = |jwt: String, role: Option<&'static str>| {
        let mut req = c.get(&url).bearer_auth(jwt);
        if let Some(role) = role {
            req = req.header("X-Role", role);
        }
        async move { body(req.send().await.unwrap()).await }
    };

    let (status, root) = check(host_jwt(&cfg, 1, 600, "j1"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(root["data"]["role"], "root");
    assert_eq!(root["data"]["roles"], json!(["root", "admin", "member"]));
    assert_eq!(root["data"]["allowAll"], true);
    assert_eq!(root["data"]["snippets"], json!(["pm", "pm.*", "ui.*"]));
    assert_eq!(root["meta"], json!({}));

    let (_, admin) = check(host_jwt(&cfg, 4, 600, "j4"), Some("admin")).await;
    assert_eq!(admin["data"]["role"], "admin");
    assert_eq!(admin["data"]["allowAll"], false);
    assert_eq!(admin["data"]["snippets"], json!(["pm", "pm.*", "ui.*"]));

    let (_, member) = check(host_jwt(&cfg, 2, 600, "j2"), None).await;
    assert_eq!(member["data"]["role"], "member");
    assert_eq!(member["data"]["allowAll"], false);
    assert_eq!(member["data"]["snippets"], json!(["!pm", "!pm.*", "!ui.*"]));

    // POST is accepted too (NocoBase actions take both verbs).
    let res = c
        .post(&url)
        .bearer_auth(host_jwt(&cfg, 1, 600, "j1b"))
        .header("X-Role", "member")
        .send()
        .await
        .unwrap();
    assert_eq!(body(res).await.1["data"]["role"], "member");

    let role_not_found = json!({"errors":[{"message":"The role does not belong to the user","code":"ROLE_NOT_FOUND_FOR_USER"}]});
    assert_eq!(
        check(host_jwt(&cfg, 3, 600, "j3"), Some("admin")).await,
        (StatusCode::UNAUTHORIZED, role_not_found)
    );

    let invalid = (
        StatusCode::UNAUTHORIZED,
        json!({"errors":[{"message":"Your session has expired. Please sign in again.","code":"INVALID_TOKEN"}]}),
    );
    assert_eq!(check(host_jwt(&cfg, 1, -5, "old"), None).await, invalid);
    assert_eq!(check(host_jwt(&cfg, 99, 600, "ghost"), None).await, invalid);
    assert_eq!(check("not.a.jwt".into(), None).await, invalid);
    let other_secret = SandboxConfig {
        jwt_secret: b"another-secret-another-secret-32".to_vec(),
        ..cfg.clone()
    };
    assert_eq!(
        check(host_jwt(&other_secret, 1, 600, "forged"), None).await,
        invalid
    );
    assert_eq!(body(c.get(&url).send().await.unwrap()).await, invalid);

    let jwt = host_jwt(&cfg, 2, 600, "signed-out");
    assert_eq!(check(jwt.clone(), None).await.0, StatusCode::OK);
    c.post(format!("{}/__sandbox/host/revoke-jti", sb.base_url))
        .json(&json!({"jti": "signed-out"}))
        .send()
        .await
        .unwrap();
    assert_eq!(check(jwt, None).await, invalid);

    let manifest =
        json!({"name": "email-manager", "displayName": "Email manager", "version": "0.1.0"});
    let res = c
        .post(format!("{}/api/emailManager:register", sb.host_api_url()))
        .json(&manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(res).await,
        (StatusCode::OK, json!({"data": {"registered": true}}))
    );
    let (_, regs) = body(
        c.get(format!("{}/__sandbox/registrations", sb.base_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(regs, json!({"registrations": [manifest]}));
    sb.stop().await;
}

#[tokio::test]
async fn fault_injection() {
    let (sb, c, cfg) = start().await;
    let tokens = google_tokens(&sb, &c, &cfg, "bob@gmail.test").await;
    let refresh = || {
        c.post(sb.google_token_url())
            .basic_auth(&cfg.google_client_id, Some(&cfg.google_client_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ])
            .send()
    };
    let fault = json!({"method": "POST", "path_prefix": "/google/token", "status": 503, "count": 2, "retry_after": 7, "body": null});
    let res = c
        .post(format!("{}/__sandbox/faults", sb.base_url))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for _ in 0..2 {
        let res = refresh().await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "7");
        assert_eq!(body(res).await.1["error"], "internal_failure");
    }
    assert_eq!(refresh().await.unwrap().status(), StatusCode::OK);

    // Gmail-shaped default body, and a given body is sent as is.
    let profile_url = format!("{}/gmail/v1/users/me/profile", sb.gmail_api_base());
    let fault = json!({"method": "GET", "path_prefix": "/google/gmail/", "status": 429, "count": 1, "retry_after": "3"});
    c.post(format!("{}/__sandbox/faults", sb.base_url))
        .json(&fault)
        .send()
        .await
        .unwrap();
    let res = c
        .get(&profile_url)
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["retry-after"], "3");
    let (status, err) = body(res).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(err["error"]["errors"][0]["reason"], "rateLimitExceeded");

    let fault = json!({"path_prefix": "/microsoft/graph", "status": 500, "body": {"custom": true}});
    c.post(format!("{}/__sandbox/faults", sb.base_url))
        .json(&fault)
        .send()
        .await
        .unwrap();
    let res = c
        .get(format!("{}/me", sb.graph_api_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(res).await,
        (StatusCode::INTERNAL_SERVER_ERROR, json!({"custom": true}))
    );

    // Faulted requests are logged with the status they got.
    let (_, log) = body(
        c.get(format!(
            "{}/__sandbox/requests?path_prefix=/google/token",
            sb.base_url
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let statuses: Vec<u64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200, 503, 503, 200]);

    let res = c
        .post(format!("{}/__sandbox/faults", sb.base_url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    sb.stop().await;
}

/// The sidecar talks to the sandbox through the oauth2 crate: its defaults (Basic auth for
/// Google, body auth for Microsoft, PKCE, RFC 7009 revocation) must work unchanged.
#[tokio::test]
async fn oauth2_crate_compatibility() {
    use oauth2::basic::{BasicClient, BasicErrorResponseType};
    use oauth2::{
        AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
        RedirectUrl, RequestTokenError, RevocationUrl, Scope, StandardRevocableToken,
        TokenResponse, TokenUrl,
    };
    let (sb, c, cfg) = start().await;

    let google = BasicClient::new(ClientId::new(cfg.google_client_id.clone()))
        .set_client_secret(ClientSecret::new(cfg.google_client_secret.clone()))
        .set_auth_uri(AuthUrl::new(sb.google_auth_url()).unwrap())
        .set_token_uri(TokenUrl::new(sb.google_token_url()).unwrap())
        .set_revocation_url(RevocationUrl::new(sb.google_revoke_url()).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = google
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new(
            "https://www.googleapis.com/auth/gmail.modify".into(),
        ))
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .set_pkce_challenge(challenge)
        .url();
    let approve =
        url.as_str().replacen("/auth?", "/auth/approve?", 1) + "&account=alice%40gmail.test";
    let params = location_params(&c.get(approve).send().await.unwrap());
    assert_eq!(&params["state"], csrf.secret());
    let token = google
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&c)
        .await
        .unwrap();
    let refresh = token.refresh_token().unwrap().clone();
    assert_eq!(token.expires_in().unwrap().as_secs(), 3599);
    let refreshed = google
        .exchange_refresh_token(&refresh)
        .request_async(&c)
        .await
        .unwrap();
    assert!(refreshed.refresh_token().is_none());
    // oauth2 refuses a plain-http revocation URL (ConfigurationError::InsecureUrl), so against the
    // sandbox the revoke has to be a direct POST.
    assert!(google
        .revoke_token(StandardRevocableToken::RefreshToken(refresh.clone()))
        .is_err());
    let res = c
        .post(sb.google_revoke_url())
        .form(&[("token", refresh.secret().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    match google
        .exchange_refresh_token(&refresh)
        .request_async(&c)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }

    let authority = sb.microsoft_authority();
    let microsoft = BasicClient::new(ClientId::new(cfg.microsoft_client_id.clone()))
        .set_client_secret(ClientSecret::new(cfg.microsoft_client_secret.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(AuthUrl::new(format!("{authority}/common/oauth2/v2.0/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{authority}/common/oauth2/v2.0/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let scopes = [
        "offline_access",
        "https://graph.microsoft.com/Mail.ReadWrite",
    ]
    .map(|s| Scope::new(s.into()));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _csrf) = microsoft
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.clone())
        .set_pkce_challenge(challenge)
        .url();
    let approve = url
        .as_str()
        .replacen("/authorize?", "/authorize/approve?", 1)
        + "&account=carol%40contoso.test";
    let params = location_params(&c.get(approve).send().await.unwrap());
    let token = microsoft
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&c)
        .await
        .unwrap();
    let refresh = token.refresh_token().unwrap();
    let rotated = microsoft
        .exchange_refresh_token(refresh)
        .add_scopes(scopes)
        .request_async(&c)
        .await
        .unwrap();
    assert_ne!(rotated.refresh_token().unwrap().secret(), refresh.secret());
    let (_, log) = body(
        c.get(format!(
            "{}/__sandbox/requests?path_prefix=/microsoft/common/oauth2/v2.0/token",
            sb.base_url
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let last = &log["requests"][1];
    assert_eq!(
        last["form"]["client_secret"],
        cfg.microsoft_client_secret.as_str()
    );
    assert!(last["headers"]["authorization"].is_null());
    sb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Mail: the Gmail and Graph mail endpoints and the mailbox controls

async fn control(
    c: &Client,
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c.request(
        method,
        format!("{}/__sandbox/mailboxes/{path}", sb.base_url),
    );
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn b64url(data: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE
        .decode(data)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(data))
        .unwrap()
}

#[tokio::test]
async fn gmail_lists_gets_modifies_and_reports_history() {
    let (sb, c, cfg) = start().await;
    let tokens = google_tokens(&sb, &c, &cfg, "alice@gmail.test").await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let gmail = format!("{}/gmail/v1/users/me", sb.gmail_api_base());
    let get = |path: String| c.get(format!("{gmail}/{path}")).bearer_auth(&token).send();

    let (_, profile) = body(get("profile".into()).await.unwrap()).await;
    let start_history: u64 = profile["historyId"].as_str().unwrap().parse().unwrap();
    let (status, generated) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "alice@gmail.test/generate",
        Some(json!({"count": 150, "seed": 5, "days": 10})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{generated}");
    assert_eq!(generated["ids"].as_array().unwrap().len(), 150);
    let (_, mailbox) = control(&c, &sb, reqwest::Method::GET, "alice@gmail.test", None).await;
    let all = mailbox["messages"].as_array().unwrap().clone();
    assert_eq!(all.len(), 150);
    let (_, profile) = body(get("profile".into()).await.unwrap()).await;
    assert_eq!(profile["messagesTotal"], 150);
    assert!(
        profile["historyId"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= start_history + 150
    );

    // Paging, newest first, spam and trash only when asked.
    let mut listed = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut path = "messages?maxResults=40&includeSpamTrash=true".to_string();
        if let Some(t) = &page_token {
            path.push_str(&format!("&pageToken={}", enc(t)));
        }
        let (status, page) = body(get(path).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["resultSizeEstimate"], 150);
        for m in page["messages"].as_array().unwrap() {
            listed.push(m["id"].as_str().unwrap().to_string());
        }
        match page["nextPageToken"].as_str() {
            Some(t) => page_token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(listed.len(), 150);
    let unique: std::collections::HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), 150, "no message listed twice");
    let spam_or_trash = all
        .iter()
        .filter(|m| m["folder"] == "spam" || m["folder"] == "trash")
        .count();
    let (_, page) = body(get("messages?maxResults=500".into()).await.unwrap()).await;
    assert_eq!(page["resultSizeEstimate"], 150 - spam_or_trash);
    let (_, page) = body(
        get("messages?maxResults=500&labelIds=INBOX&labelIds=UNREAD".into())
            .await
            .unwrap(),
    )
    .await;
    let unread_inbox = all
        .iter()
        .filter(|m| m["folder"] == "inbox" && m["unread"] == true)
        .count();
    assert_eq!(page["resultSizeEstimate"], unread_inbox);
    let future = chrono::Utc::now().timestamp() + 60;
    let (_, page) = body(get(format!("messages?q=after:{future}")).await.unwrap()).await;
    assert_eq!(page["resultSizeEstimate"], 0);
    assert!(page.get("messages").is_none());

    // One message in every format.
    let newest = &listed[0];
    let (status, raw) = body(get(format!("messages/{newest}?format=raw")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, detail) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!("alice@gmail.test/messages/{newest}"),
        None,
    )
    .await;
    let control_raw = base64::engine::general_purpose::STANDARD
        .decode(detail["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(b64url(raw["raw"].as_str().unwrap()), control_raw);
    assert_eq!(raw["threadId"], detail["threadId"]);
    assert!(raw["internalDate"].as_str().unwrap().parse::<i64>().is_ok());
    let (_, minimal) = body(
        get(format!("messages/{newest}?format=minimal"))
            .await
            .unwrap(),
    )
    .await;
    assert!(minimal.get("payload").is_none() && minimal.get("raw").is_none());
    assert!(minimal["labelIds"].is_array() && minimal["historyId"].is_string());
    let (_, meta) = body(
        get(format!(
            "messages/{newest}?format=metadata&metadataHeaders=Subject&metadataHeaders=From"
        ))
        .await
        .unwrap(),
    )
    .await;
    let names: Vec<&str> = meta["payload"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // An attachment: full format names it, attachments.get serves its bytes.
    let mut found = false;
    for m in &all {
        let id = m["id"].as_str().unwrap();
        let (_, full) = body(get(format!("messages/{id}")).await.unwrap()).await;
        fn attachments(part: &Value, out: &mut Vec<Value>) {
            if part["body"]["attachmentId"].is_string() {
                out.push(part.clone());
            }
            for p in part["parts"].as_array().into_iter().flatten() {
                attachments(p, out);
            }
        }
        let mut list = Vec::new();
        attachments(&full["payload"], &mut list);
        let Some(part) = list
            .into_iter()
            .find(|p| p["filename"].as_str().is_some_and(|f| !f.is_empty()))
        else {
            continue;
        };
        let aid = part["body"]["attachmentId"].as_str().unwrap();
        let (status, a) = body(
            get(format!("messages/{id}/attachments/{aid}"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{a}");
        assert_eq!(a["size"], part["body"]["size"]);
        assert_eq!(
            b64url(a["data"].as_str().unwrap()).len() as u64,
            a["size"].as_u64().unwrap()
        );
        found = true;
        break;
    }
    assert!(found, "some generated message has an attachment");

    // Labels: the system ones and the generated user labels.
    let (_, labels) = body(get("labels".into()).await.unwrap()).await;
    let labels = labels["labels"].as_array().unwrap();
    assert!(labels
        .iter()
        .any(|l| l["id"] == "INBOX" && l["type"] == "system"));
    let projects = labels.iter().find(|l| l["name"] == "Projects").unwrap();
    assert_eq!(projects["type"], "user");
    assert!(projects["id"].as_str().unwrap().starts_with("Label_"));
    let (_, inbox) = body(get("labels/INBOX".into()).await.unwrap()).await;
    assert_eq!(
        inbox["messagesTotal"],
        all.iter().filter(|m| m["folder"] == "inbox").count()
    );

    // Changes show in history, in order, with the labels after each change.
    let (_, profile) = body(get("profile".into()).await.unwrap()).await;
    let before = profile["historyId"].as_str().unwrap().to_string();
    let target = &all
        .iter()
        .find(|m| m["unread"] == true && m["starred"] == false && m["folder"] == "inbox")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed: Vec<String> = listed.into_iter().filter(|id| id != target).collect();
    let res = c
        .post(format!("{gmail}/messages/{target}/modify"))
        .bearer_auth(&token)
        .json(&json!({"addLabelIds": ["STARRED"], "removeLabelIds": ["UNREAD"]}))
        .send()
        .await
        .unwrap();
    let (status, modified) = body(res).await;
    assert_eq!(status, StatusCode::OK, "{modified}");
    assert!(modified["labelIds"]
        .as_array()
        .unwrap()
        .contains(&json!("STARRED")));
    let res = c
        .post(format!("{gmail}/messages/batchModify"))
        .bearer_auth(&token)
        .json(&json!({"ids": [listed[2], listed[3]], "addLabelIds": [projects["id"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = c
        .post(format!("{gmail}/messages/{}/trash", listed[4]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::DELETE,
        &format!("alice@gmail.test/messages/{}", listed[5]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let res = c
        .post(format!("{gmail}/messages/{target}/modify"))
        .bearer_auth(&token)
        .json(&json!({"addLabelIds": ["Label_999"]}))
        .send()
        .await
        .unwrap();
    let (status, err) = body(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");

    let mut records = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut path = format!("history?startHistoryId={before}&maxResults=2");
        if let Some(t) = &page_token {
            path.push_str(&format!("&pageToken={}", enc(t)));
        }
        let (status, page) = body(get(path).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        records.extend(page["history"].as_array().cloned().unwrap_or_default());
        match page["nextPageToken"].as_str() {
            Some(t) => page_token = Some(t.to_string()),
            None => {
                assert!(
                    page["historyId"].as_str().unwrap().parse::<u64>().unwrap()
                        > before.parse::<u64>().unwrap()
                );
                break;
            }
        }
    }
    assert_eq!(records.len(), 5, "{records:#?}");
    assert_eq!(records[0]["labelsAdded"][0]["labelIds"], json!(["STARRED"]));
    assert_eq!(
        records[0]["labelsRemoved"][0]["labelIds"],
        json!(["UNREAD"])
    );
    assert_eq!(records[0]["labelsAdded"][0]["message"]["id"], json!(target));
    assert!(records[3]["labelsAdded"][0]["message"]["labelIds"]
        .as_array()
        .unwrap()
        .contains(&json!("TRASH")));
    assert_eq!(
        records[4]["messagesDeleted"][0]["message"]["id"],
        json!(listed[5])
    );
    let ids: Vec<u64> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // Filtered by type.
    let (_, only_deleted) = body(
        get(format!(
            "history?startHistoryId={before}&historyTypes=messageDeleted"
        ))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(only_deleted["history"].as_array().unwrap().len(), 1);
    // New mail is messageAdded.
    let (_, inserted) = control(&c, &sb, reqwest::Method::POST, "alice@gmail.test/messages", Some(json!({
        "from": "Zoë <zoe@example.se>", "to": ["alice@gmail.test"], "subject": "Re: hello", "text": "hi", "inReplyTo": target,
    }))).await;
    assert_eq!(inserted["threadId"], detail_thread(&c, &sb, target).await);
    let (_, latest) = body(
        get(format!(
            "history?startHistoryId={before}&historyTypes=messageAdded"
        ))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        latest["history"][0]["messagesAdded"][0]["message"]["id"],
        inserted["id"]
    );
    // The thread holds both, oldest first.
    let thread = inserted["threadId"].as_str().unwrap();
    let (status, t) = body(
        get(format!("threads/{thread}?format=minimal"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let in_thread: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        in_thread.contains(&target.as_str())
            && in_thread.contains(&inserted["id"].as_str().unwrap())
    );
    let (_, threads) = body(
        get("threads?maxResults=500&includeSpamTrash=true".into())
            .await
            .unwrap(),
    )
    .await;
    assert!(
        threads["threads"].as_array().unwrap().len() < 150,
        "replies share threads"
    );

    // Expired history: 404 in Google's shape; the new start point works.
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "alice@gmail.test/expire-cursors",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = body(
        get(format!("history?startHistoryId={before}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["errors"][0]["reason"], "notFound");
    assert_eq!(err["error"]["status"], "NOT_FOUND");
    let (_, profile) = body(get("profile".into()).await.unwrap()).await;
    let (status, fresh) = body(
        get(format!(
            "history?startHistoryId={}",
            profile["historyId"].as_str().unwrap()
        ))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert!(fresh.get("history").is_none());

    // Errors: unknown and malformed ids, no token, someone else's mailbox.
    let (status, err) = body(get("messages/0123456789abcdef".into()).await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!(404))
    );
    let (status, _) = body(get("messages/not-an-id".into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let res = c.get(format!("{gmail}/messages")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    let res = c
        .get(format!(
            "{}/gmail/v1/users/bob@gmail.test/messages",
            sb.gmail_api_base()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    sb.stop().await;
}

async fn detail_thread(c: &Client, sb: &Sandbox, id: &str) -> Value {
    let res = c
        .get(format!(
            "{}/__sandbox/mailboxes/alice@gmail.test/messages/{id}",
            sb.base_url
        ))
        .send()
        .await
        .unwrap();
    body(res).await.1["threadId"].clone()
}

/// All pages of one delta round from `url`: the items and the delta link.
async fn delta_round(c: &Client, token: &str, url: &str, page: usize) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = url.to_string();
    loop {
        let res = c
            .get(&next)
            .bearer_auth(token)
            .header("Prefer", "IdType=\"ImmutableId\"")
            .header("Prefer", format!("odata.maxpagesize={page}"))
            .send()
            .await
            .unwrap();
        let (status, body) = body(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let value = body["value"].as_array().unwrap();
        assert!(value.len() <= page);
        items.extend(value.iter().cloned());
        if let Some(n) = body["@odata.nextLink"].as_str() {
            assert!(body.get("@odata.deltaLink").is_none());
            next = n.to_string();
            continue;
        }
        return (
            items,
            body["@odata.deltaLink"].as_str().unwrap().to_string(),
        );
    }
}

#[tokio::test]
async fn graph_folders_delta_moves_and_attachments() {
    let (sb, c, cfg) = start().await;
    let tokens = ms_tokens(&sb, &c, &cfg, "carol@contoso.test").await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let graph = sb.graph_api_base();
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "carol@contoso.test/generate",
        Some(json!({"count": 120, "seed": 8, "days": 10})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mailbox) = control(&c, &sb, reqwest::Method::GET, "carol@contoso.test", None).await;
    let all = mailbox["messages"].as_array().unwrap().clone();

    // Folders: paged list, lookup by well-known name.
    let mut folders = Vec::new();
    let mut next = format!("{graph}/me/mailFolders?$top=3");
    loop {
        let (status, page) = body(c.get(&next).bearer_auth(&token).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        folders.extend(page["value"].as_array().unwrap().iter().cloned());
        match page["@odata.nextLink"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    let names: Vec<&str> = folders
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    for n in [
        "Inbox",
        "Sent Items",
        "Drafts",
        "Deleted Items",
        "Junk Email",
        "Archive",
        "Projects",
        "Receipts",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    let (_, inbox) = body(
        c.get(format!("{graph}/me/mailFolders/Inbox"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let in_inbox: Vec<&Value> = all.iter().filter(|m| m["folder"] == "inbox").collect();
    assert_eq!(inbox["totalItemCount"], in_inbox.len());
    let inbox_id = inbox["id"].as_str().unwrap().to_string();

    // First round: every inbox message once, only the selected properties.
    let first = format!("{graph}/me/mailFolders/inbox/messages/delta?$select=id,isRead,parentFolderId,conversationId");
    let (items, delta_link) = delta_round(&c, &token, &first, 7).await;
    let mut ids: Vec<&str> = items.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<&str> = in_inbox.iter().map(|m| m["id"].as_str().unwrap()).collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(items
        .iter()
        .all(|m| m.get("subject").is_none() && m["parentFolderId"] == json!(inbox_id)));
    // Nothing changed: an empty round.
    let (items, delta_link) = delta_round(&c, &token, &delta_link, 7).await;
    assert!(items.is_empty(), "{items:?}");

    // Move one out (immutable id kept), read one, delete one, and new mail arrives.
    let moved = in_inbox[0]["id"].as_str().unwrap();
    let res = c
        .post(format!("{graph}/me/messages/{moved}/move"))
        .bearer_auth(&token)
        .header("Prefer", "IdType=\"ImmutableId\"")
        .json(&json!({"destinationId": "archive"}))
        .send()
        .await
        .unwrap();
    let (status, m) = body(res).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["id"], json!(moved));
    let read = in_inbox[1]["id"].as_str().unwrap();
    let res = c.patch(format!("{graph}/me/messages/{read}")).bearer_auth(&token)
        .json(&json!({"isRead": !in_inbox[1]["unread"].as_bool().unwrap(), "flag": {"flagStatus": "flagged"}})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let gone = in_inbox[2]["id"].as_str().unwrap();
    let res = c
        .delete(format!("{graph}/me/messages/{gone}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, new) = control(&c, &sb, reqwest::Method::POST, "carol@contoso.test/messages", Some(json!({
        "from": "Ada <ada@example.org>", "to": ["carol@contoso.test"], "subject": "New one", "html": "<p>hello</p>",
        "attachments": [{"filename": "a.bin", "contentType": "application/octet-stream", "data": base64::engine::general_purpose::STANDARD.encode([0u8, 1, 2, 255])}],
    }))).await;
    let (items, _) = delta_round(&c, &token, &delta_link, 2).await;
    let by_id = |id: &str| {
        items
            .iter()
            .find(|m| m["id"] == json!(id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_id(moved)["@removed"]["reason"], "changed");
    assert_eq!(by_id(gone)["@removed"]["reason"], "deleted");
    assert_eq!(
        by_id(read)["isRead"],
        json!(!in_inbox[1]["unread"].as_bool().unwrap())
    );
    assert!(by_id(new["id"].as_str().unwrap())["conversationId"].is_string());
    assert_eq!(items.len(), 4, "{items:#?}");
    // The archive's own round shows the moved message there.
    let (archived, _) = delta_round(
        &c,
        &token,
        &format!("{graph}/me/mailFolders/archive/messages/delta?$select=parentFolderId"),
        50,
    )
    .await;
    assert!(archived.iter().any(|m| m["id"] == json!(moved)));

    // Without immutable ids, a move changes the id.
    let other = in_inbox[3]["id"].as_str().unwrap();
    let (_, plain) = body(
        c.get(format!("{graph}/me/messages/{other}?$select=subject"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let rest_id = plain["id"].as_str().unwrap().to_string();
    assert_ne!(rest_id, other);
    let (status, moved_plain) = body(
        c.post(format!("{graph}/me/messages/{}/move", enc(&rest_id)))
            .bearer_auth(&token)
            .json(&json!({"destinationId": "deleteditems"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(moved_plain["id"].as_str().unwrap(), rest_id);
    let (status, _) = body(
        c.get(format!("{graph}/me/messages/{}", enc(&rest_id)))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // MIME and attachments.
    let id = new["id"].as_str().unwrap();
    let res = c
        .get(format!("{graph}/me/messages/{id}/$value"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mime = res.bytes().await.unwrap();
    let (_, detail) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!("carol@contoso.test/messages/{id}"),
        None,
    )
    .await;
    assert_eq!(
        mime.to_vec(),
        base64::engine::general_purpose::STANDARD
            .decode(detail["raw"].as_str().unwrap())
            .unwrap()
    );
    let (_, full) = body(
        c.get(format!("{graph}/me/messages/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(full["subject"], "New one");
    assert_eq!(full["hasAttachments"], true);
    assert_eq!(full["body"]["contentType"], "html");
    assert_eq!(full["from"]["emailAddress"]["address"], "ada@example.org");
    let (_, list) = body(
        c.get(format!("{graph}/me/messages/{id}/attachments"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let a = &list["value"][0];
    assert_eq!(
        (a["name"].clone(), a["size"].clone(), a["isInline"].clone()),
        (json!("a.bin"), json!(4), json!(false))
    );
    assert_eq!(a["contentBytes"], "AAEC/w==");
    let aid = a["id"].as_str().unwrap();
    let res = c
        .get(format!("{graph}/me/messages/{id}/attachments/{aid}/$value"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().to_vec(), vec![0u8, 1, 2, 255]);

    // Expired delta tokens: 410 in Graph's shape.
    control(
        &c,
        &sb,
        reqwest::Method::POST,
        "carol@contoso.test/expire-cursors",
        None,
    )
    .await;
    let res = c.get(&delta_link).bearer_auth(&token).send().await.unwrap();
    let (status, err) = body(res).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(err["error"]["code"], "SyncStateNotFound");
    assert!(err["error"]["innerError"]["request-id"].is_string());

    // Errors: bad $select, unknown message, no token, PATCH of a read-only property.
    let (status, _) = body(
        c.get(format!(
            "{graph}/me/mailFolders/inbox/messages/delta?$select=nope"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, err) = body(
        c.get(format!(
            "{graph}/me/messages/AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AAAAAAAA="
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("ErrorItemNotFound"))
    );
    let res = c
        .get(format!("{graph}/me/mailFolders"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = body(
        c.patch(format!("{graph}/me/messages/{id}"))
            .bearer_auth(&token)
            .json(&json!({"subject": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sb.stop().await;
}

#[tokio::test]
async fn mailbox_controls_validate_and_slow_faults_delay() {
    let (sb, c, _) = start().await;
    let (status, _) = control(&c, &sb, reqwest::Method::GET, "nobody@example.test", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "alice@gmail.test/generate",
        Some(json!({"count": 0, "seed": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "alice@gmail.test/messages",
        Some(json!({"raw": "!!", "subject": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "alice@gmail.test/messages",
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, folder) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "dave@contoso.test/folders",
        Some(json!({"name": "Clients"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{folder}");
    let raw = "From: =?iso-8859-1?Q?Andr=E9?= <andre@example.test>\r\nSubject: =?shift_jis?B?k/qWe4zqgsyDZYNYg2c=?=\r\nMessage-ID: <raw-1@example.test>\r\n\r\nbody\r\n";
    let (status, inserted) = control(&c, &sb, reqwest::Method::POST, "dave@contoso.test/messages", Some(json!({
        "raw": base64::engine::general_purpose::STANDARD.encode(raw), "folder": "Clients", "unread": false, "starred": true,
        "receivedAt": "2026-11-20T08:00:00Z",
    }))).await;
    assert_eq!(status, StatusCode::OK, "{inserted}");
    let (_, m) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!(
            "dave@contoso.test/messages/{}",
            inserted["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(m["folder"], "Clients");
    assert_eq!(m["subject"], "日本語のテスト");
    assert_eq!(
        (m["unread"].clone(), m["starred"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(m["messageIdHeader"], "<raw-1@example.test>");
    assert_eq!(m["receivedAt"], "2026-11-20T08:00:00.000Z");
    let (status, patched) = control(
        &c,
        &sb,
        reqwest::Method::PATCH,
        &format!("dave@contoso.test/messages/{}", m["id"].as_str().unwrap()),
        Some(json!({"folder": "trash", "labels": ["Red category"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (patched["folder"].clone(), patched["labels"].clone()),
        (json!("trash"), json!(["Red category"]))
    );
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::PATCH,
        &format!("dave@contoso.test/messages/{}", m["id"].as_str().unwrap()),
        Some(json!({"folder": "Nowhere"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A slow answer: a client with a shorter timeout gives up; the fault is then spent and the
    // real answer comes.
    let res = c
        .post(format!("{}/__sandbox/faults", sb.base_url))
        .json(&json!({"path_prefix": "/microsoft/graph", "delay_ms": 3000, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let impatient = Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let err = impatient
        .get(format!("{}/me", sb.graph_api_base()))
        .send()
        .await
        .expect_err("timed out");
    assert!(err.is_timeout(), "{err}");
    let res = impatient
        .get(format!("{}/me", sb.graph_api_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the handler answered"
    );
    let res = c
        .post(format!("{}/__sandbox/faults", sb.base_url))
        .json(&json!({"path_prefix": "/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a fault needs a status or a delay"
    );
    sb.stop().await;
}

/// Starts `n` slow Graph requests (1.5 s each) for `account` and waits until the sandbox is
/// answering them all: they hold `n` of the mailbox's 4 slots until they are awaited.
async fn hold_graph_slots(
    c: &Client,
    sb: &Sandbox,
    token: &str,
    account: &str,
    n: u64,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> {
    let res = c
        .post(format!("{}/__sandbox/faults", sb.base_url))
        .json(&json!({"path_prefix": "/microsoft/graph/v1.0/me/mailFolders", "delay_ms": 1500, "count": n}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let url = format!("{}/me/mailFolders", sb.graph_api_base());
    let slow = (0..n)
        .map(|_| tokio::spawn(c.get(&url).bearer_auth(token).send()))
        .collect();
    loop {
        let (_, seen) = body(
            c.get(format!("{}/__sandbox/concurrency", sb.base_url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if seen["graphMaxInFlight"][account] == n {
            return slow;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn graph_answers_429_past_four_concurrent_requests_per_mailbox() {
    let (sb, c, cfg) = start().await;
    let tokens = ms_tokens(&sb, &c, &cfg, "dave@contoso.test").await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let slow = hold_graph_slots(&c, &sb, &token, "dave@contoso.test", 4).await;
    let url = format!("{}/me/mailFolders", sb.graph_api_base());
    let res = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    let (_, err) = body(res).await;
    assert_eq!(err["error"]["code"], "ApplicationThrottled");
    for r in slow {
        assert_eq!(r.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    // The slow ones answered: dave's slots are free again.
    let res = c.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    sb.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Labels, master categories and flags (issue 5)

/// Microsoft tokens for `account` with the given scopes.
async fn ms_tokens_with(
    sb: &Sandbox,
    c: &Client,
    cfg: &SandboxConfig,
    account: &str,
    scope: &str,
) -> Value {
    let verifier = "s".repeat(60);
    let url = ms_authorize_url(sb, cfg, TENANT, &pkce(&verifier))
        .replacen("/authorize?", "/authorize/approve?", 1)
        .replace(
            &enc("openid profile email offline_access https://graph.microsoft.com/Mail.ReadWrite"),
            &enc(scope),
        )
        + &format!("&account={}", enc(account));
    let res = c.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let code = location_params(&res)["code"].clone();
    let (status, tokens) = ms_token(
        sb,
        c,
        cfg,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

#[tokio::test]
async fn gmail_labels_are_created_changed_and_deleted_like_gmail_does() {
    let (sb, c, cfg) = start().await;
    let token = google_tokens(&sb, &c, &cfg, "alice@gmail.test").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let gmail = format!("{}/gmail/v1/users/me", sb.gmail_api_base());
    let send = |method: reqwest::Method, path: &str, b: Option<Value>| {
        let mut req = c
            .request(method, format!("{gmail}/{path}"))
            .bearer_auth(&token);
        if let Some(b) = b {
            req = req.json(&b);
        }
        req.send()
    };
    let (status, made) = body(
        send(
            reqwest::Method::POST,
            "labels",
            Some(
                json!({"name": "Clients", "labelListVisibility": "labelShowIfUnread",
                        "messageListVisibility": "hide",
                        "color": {"backgroundColor": "#4a86e8", "textColor": "#ffffff"}}),
            ),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["type"], "user");
    assert_eq!(made["color"]["backgroundColor"], "#4a86e8");
    assert_eq!(made["labelListVisibility"], "labelShowIfUnread");
    let id = made["id"].as_str().unwrap().to_string();
    for (b, code, needle) in [
        (json!({"name": "clients"}), 409, "exists"),
        (json!({"name": "inbox"}), 409, "exists"),
        (
            json!({"name": "X", "color": {"backgroundColor": "#123456", "textColor": "#ffffff"}}),
            400,
            "palette",
        ),
        (
            json!({"name": "X", "color": {"backgroundColor": "#4a86e8"}}),
            400,
            "both",
        ),
        (
            json!({"name": "X", "labelListVisibility": "sometimes"}),
            400,
            "label_list_visibility",
        ),
        (json!({"name": "X", "colour": {}}), 400, "unknown field"),
        (json!({"name": "  "}), 400, "label name"),
    ] {
        let (status, err) = body(
            send(reqwest::Method::POST, "labels", Some(b.clone()))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status.as_u16(), code, "{b}: {err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{b}: {message}");
    }

    // A message carrying it; patch renames and recolours, update replaces.
    let (_, inserted) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "alice@gmail.test/messages",
        Some(json!({"from": "a@example.test", "to": ["alice@gmail.test"], "subject": "s", "text": "t"})),
    )
    .await;
    let mid = inserted["id"].as_str().unwrap().to_string();
    let (status, _) = body(
        send(
            reqwest::Method::POST,
            &format!("messages/{mid}/modify"),
            Some(json!({"addLabelIds": [id]})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, patched) = body(
        send(
            reqwest::Method::PATCH,
            &format!("labels/{id}"),
            Some(json!({"name": "Key clients", "color": {"backgroundColor": "#16a766", "textColor": "#ffffff"}})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Key clients");
    assert_eq!(
        patched["labelListVisibility"], "labelShowIfUnread",
        "patch keeps the rest"
    );
    let (_, item) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!("alice@gmail.test/messages/{mid}"),
        None,
    )
    .await;
    assert_eq!(item["labelNames"], json!(["Key clients"]));
    let (status, _) = body(
        send(
            reqwest::Method::PUT,
            &format!("labels/{id}"),
            Some(json!({"labelListVisibility": "labelShow"})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "update needs the name");
    let (status, put) = body(
        send(
            reqwest::Method::PUT,
            &format!("labels/{id}"),
            Some(json!({"id": id, "name": "Key clients", "type": "user"})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert!(put.get("color").is_none(), "update replaced the colour");
    let (status, _) = body(
        send(
            reqwest::Method::PATCH,
            "labels/INBOX",
            Some(json!({"name": "Mine"})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "system labels cannot change"
    );

    // Deleting takes it off the message, and history says so.
    let (_, profile) = body(send(reqwest::Method::GET, "profile", None).await.unwrap()).await;
    let before = profile["historyId"].as_str().unwrap().to_string();
    let res = send(reqwest::Method::DELETE, &format!("labels/{id}"), None)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = send(reqwest::Method::DELETE, &format!("labels/{id}"), None)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (_, item) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!("alice@gmail.test/messages/{mid}"),
        None,
    )
    .await;
    assert_eq!(item["labelNames"], json!([]));
    let (_, history) = body(
        send(
            reqwest::Method::GET,
            &format!("history?startHistoryId={before}"),
            None,
        )
        .await
        .unwrap(),
    )
    .await;
    let removed = &history["history"][0]["labelsRemoved"][0];
    assert_eq!(removed["labelIds"], json!([id]), "{history}");
    sb.stop().await;
}

#[tokio::test]
async fn graph_master_categories_and_flags() {
    let (sb, c, cfg) = start().await;
    let graph = sb.graph_api_base();
    // Mail scopes alone do not reach the mailbox settings.
    let mail_only = ms_tokens(&sb, &c, &cfg, "carol@contoso.test").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = c
        .get(format!("{graph}/me/outlook/masterCategories"))
        .bearer_auth(&mail_only)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let token = ms_tokens_with(
        &sb,
        &c,
        &cfg,
        "carol@contoso.test",
        "openid offline_access https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/MailboxSettings.ReadWrite",
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let categories = format!("{graph}/me/outlook/masterCategories");
    let post = |b: Value| c.post(&categories).bearer_auth(&token).json(&b).send();
    let (status, made) = body(
        post(json!({"displayName": "Clients", "color": "preset7"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    for (b, code) in [
        (json!({"displayName": "CLIENTS", "color": "preset1"}), 409),
        (json!({"displayName": "Other", "color": "preset25"}), 400),
        (json!({"displayName": "", "color": "preset1"}), 400),
        (json!({"displayName": "Other", "colour": "preset1"}), 400),
    ] {
        let res = post(b.clone()).await.unwrap();
        assert_eq!(res.status().as_u16(), code, "{b}");
    }
    let patch = |b: Value| {
        c.patch(format!("{categories}/{id}"))
            .bearer_auth(&token)
            .json(&b)
            .send()
    };
    assert_eq!(
        patch(json!({"displayName": "Renamed"}))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    let (status, recoloured) = body(patch(json!({"color": "preset4"})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(recoloured["color"], "preset4");

    // A message with the category and a flag with dates, seen in GET and the control view.
    let (_, inserted) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "carol@contoso.test/messages",
        Some(json!({"from": "a@example.test", "to": ["carol@contoso.test"], "subject": "s", "text": "t", "labels": ["Other"]})),
    )
    .await;
    let mid = inserted["id"].as_str().unwrap().to_string();
    let message = format!("{graph}/me/messages/{mid}");
    let due = json!({"dateTime": "2030-01-02T08:00:00.0000000", "timeZone": "UTC"});
    let res = c
        .patch(&message)
        .bearer_auth(&token)
        .json(&json!({"flag": {"flagStatus": "flagged", "dueDateTime": due}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a due date needs a start date"
    );
    let res = c
        .patch(&message)
        .bearer_auth(&token)
        .json(&json!({"categories": ["Other", "Clients"],
                      "flag": {"flagStatus": "flagged", "startDateTime": due, "dueDateTime": due}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (_, got) = body(
        c.get(format!("{message}?$select=flag,categories"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got["categories"], json!(["Other", "Clients"]));
    assert_eq!(got["flag"]["dueDateTime"], due);
    let (_, item) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!("carol@contoso.test/messages/{mid}"),
        None,
    )
    .await;
    assert_eq!(item["flag"]["status"], "flagged");
    assert_eq!(item["flag"]["dueAt"], "2030-01-02T08:00:00.000Z");
    assert_eq!(item["categories"], json!(["Other", "Clients"]));
    let res = c
        .patch(&message)
        .bearer_auth(&token)
        .json(&json!({"flag": {"flagStatus": "complete"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (_, item) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!("carol@contoso.test/messages/{mid}"),
        None,
    )
    .await;
    assert_eq!(item["flag"]["status"], "complete");
    assert!(item["flag"]["completedAt"].is_string());
    let res = c
        .patch(&message)
        .bearer_auth(&token)
        .json(&json!({"flag": {"flagStatus": "flagged", "reminder": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "unknown flag property"
    );

    // Deleting the category leaves its name on the message, as Outlook does.
    let res = c
        .delete(format!("{categories}/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, mailbox) = control(&c, &sb, reqwest::Method::GET, "carol@contoso.test", None).await;
    assert_eq!(mailbox["categories"], json!([]));
    let (_, item) = control(
        &c,
        &sb,
        reqwest::Method::GET,
        &format!("carol@contoso.test/messages/{mid}"),
        None,
    )
    .await;
    assert_eq!(item["categories"], json!(["Other", "Clients"]));

    // The control PATCH: categories and the flag as another client sets them; not on Gmail.
    let (status, item) = control(
        &c,
        &sb,
        reqwest::Method::PATCH,
        &format!("carol@contoso.test/messages/{mid}"),
        Some(json!({"categories": ["Only"], "flag": {"status": "flagged", "dueAt": "2031-02-03T04:05:06Z"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["labelNames"], json!(["Only"]));
    assert_eq!(item["flag"]["dueAt"], "2031-02-03T04:05:06.000Z");
    assert_eq!(item["starred"], true);
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::PATCH,
        &format!("carol@contoso.test/messages/{mid}"),
        Some(json!({"flag": {"status": "maybe"}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, g) = control(
        &c,
        &sb,
        reqwest::Method::POST,
        "alice@gmail.test/messages",
        Some(json!({"from": "a@example.test", "to": ["alice@gmail.test"], "subject": "s", "text": "t"})),
    )
    .await;
    let (status, _) = control(
        &c,
        &sb,
        reqwest::Method::PATCH,
        &format!("alice@gmail.test/messages/{}", g["id"].as_str().unwrap()),
        Some(json!({"categories": ["x"]})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "Gmail has labels, not categories"
    );
    sb.stop().await;
}

/// Generates three messages in `account`'s mailbox and answers their ids.
async fn generate_three(c: &Client, sb: &Sandbox, account: &str) -> Vec<String> {
    let (status, generated) = control(
        c,
        sb,
        reqwest::Method::POST,
        &format!("{account}/generate"),
        Some(json!({"count": 3, "seed": 9, "days": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{generated}");
    generated["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The Gmail batch endpoint: calls in a multipart/mixed body, answers in one, matched by
/// Content-ID; a gone message answers 404 in its part; calls other than messages.get, bodies
/// that are not multipart and requests without a valid token are refused.
#[tokio::test]
async fn gmail_batch_answers_each_call_in_its_own_part() {
    use email_manager::providers::multipart::{self, Part};
    let (sb, c, cfg) = start().await;
    let token = google_tokens(&sb, &c, &cfg, "alice@gmail.test").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = generate_three(&c, &sb, "alice@gmail.test").await;
    let base = sb.gmail_api_base();
    let prefix = url::Url::parse(&base)
        .unwrap()
        .path()
        .trim_end_matches('/')
        .to_string();
    let call = |cid: &str, line: String| Part {
        headers: vec![
            ("Content-Type".into(), "application/http".into()),
            ("Content-ID".into(), format!("<{cid}>")),
        ],
        body: format!("{line}\r\n").into_bytes(),
    };
    let parts = vec![
        call(
            "a",
            format!(
                "GET {prefix}/gmail/v1/users/me/messages/{}?format=raw",
                ids[0]
            ),
        ),
        call(
            "b",
            format!("GET {prefix}/gmail/v1/users/me/messages/ffffffffffff0000"),
        ),
        call("c", format!("GET {prefix}/gmail/v1/users/me/labels")),
        call(
            "d",
            format!(
                "GET {prefix}/gmail/v1/users/me/messages/{}?format=minimal",
                ids[2]
            ),
        ),
    ];
    let send = |token: &str, content_type: &str, body: Vec<u8>| {
        c.post(format!("{base}/batch/gmail/v1"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let res = send(
        &token,
        "multipart/mixed; boundary=xyz",
        multipart::encode("xyz", &parts),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    let answer = res.bytes().await.unwrap();
    let parts = multipart::decode(multipart::boundary(&content_type).unwrap(), &answer).unwrap();
    let answers: HashMap<String, (u16, Value)> = parts
        .iter()
        .map(|p| {
            let (first, _, inner) = multipart::split_http(&p.body).unwrap();
            (
                p.header("content-id").unwrap().to_string(),
                (
                    multipart::status_of(&first).unwrap(),
                    serde_json::from_slice(inner).unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(answers.len(), 4);
    let (status, raw) = &answers["<response-a>"];
    assert_eq!(*status, 200);
    assert_eq!(raw["id"], ids[0].as_str());
    assert!(raw["raw"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(answers["<response-b>"].0, 404);
    assert_eq!(answers["<response-b>"].1["error"]["status"], "NOT_FOUND");
    assert_eq!(answers["<response-c>"].0, 400);
    let (status, minimal) = &answers["<response-d>"];
    assert_eq!(*status, 200);
    assert!(
        minimal.get("raw").is_none() && minimal.get("payload").is_none(),
        "{minimal}"
    );

    let res = send(&token, "application/json", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = send(
        "not-a-token",
        "multipart/mixed; boundary=xyz",
        multipart::encode("xyz", &[]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Graph JSON batching: each request is answered under its own id (the MIME of `$value` as
/// base64), an unknown message is 404 and an unsupported request 400 inside a 200 batch; more
/// than 20 requests or no token refuse the batch; and a batch whose mailbox has fewer than 4
/// free slots sees the requests past them throttled, wave by wave.
#[tokio::test]
async fn graph_batch_answers_each_request_and_throttles_past_the_mailbox_limit() {
    let (sb, c, cfg) = start().await;
    let token = ms_tokens(&sb, &c, &cfg, "carol@contoso.test").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = generate_three(&c, &sb, "carol@contoso.test").await;
    let graph = sb.graph_api_base();
    let mime = |id: String| {
        let (c, token, graph) = (c.clone(), token.clone(), graph.clone());
        async move {
            let res = c
                .get(format!("{graph}/me/messages/{}/$value", enc(&id)))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.bytes().await.unwrap().to_vec()
        }
    };
    let batch = |token: &str, requests: Value| {
        c.post(format!("{graph}/$batch"))
            .bearer_auth(token)
            .json(&json!({ "requests": requests }))
            .send()
    };
    let value_of = |id: &str| format!("/me/messages/{}/$value", enc(id));
    let (status, answer) = body(
        batch(
            &token,
            json!([
                {"id": "a", "method": "GET", "url": value_of(&ids[0])},
                {"id": "b", "method": "GET", "url": "/me/messages/AAMkAGVmMDEzMTM4/$value"},
                {"id": "c", "method": "GET", "url": "/me/mailFolders"},
                // Graph takes the URL with or without its leading slash.
                {"id": "d", "method": "GET", "url": value_of(&ids[1]).trim_start_matches('/')},
            ]),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let by_id: HashMap<String, Value> = answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    assert_eq!(by_id.len(), 4, "{answer}");
    let decoded = |r: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(r["body"].as_str().expect("a base64 body"))
            .unwrap()
    };
    assert_eq!(by_id["a"]["status"], 200);
    assert_eq!(decoded(&by_id["a"]), mime(ids[0].clone()).await);
    assert_eq!(by_id["b"]["status"], 404);
    assert_eq!(by_id["b"]["body"]["error"]["code"], "ErrorItemNotFound");
    assert_eq!(by_id["c"]["status"], 400);
    assert_eq!(by_id["d"]["status"], 200);
    assert_eq!(decoded(&by_id["d"]), mime(ids[1].clone()).await);

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": value_of(&ids[0])}))
        .collect();
    let res = batch(&token, json!(too_many)).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = batch("not-a-token", json!([])).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Three slow requests hold three of carol's four slots: a batch of 8 gets one request
    // through per wave of 4 (its first and fifth), the others 429.
    c.delete(format!("{}/__sandbox/concurrency", sb.base_url))
        .send()
        .await
        .unwrap();
    let slow = hold_graph_slots(&c, &sb, &token, "carol@contoso.test", 3).await;
    let eight: Vec<Value> = (0..8)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": value_of(&ids[2])}))
        .collect();
    let (status, answer) = body(batch(&token, json!(eight)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let mut statuses: Vec<(u64, u64)> = answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            if r["status"] == 429 {
                assert_eq!(r["body"]["error"]["code"], "ApplicationThrottled", "{r}");
                assert_eq!(r["headers"]["retry-after"], "1", "{r}");
            }
            (
                r["id"].as_str().unwrap().parse().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    statuses.sort();
    let expected: Vec<(u64, u64)> = (0..8)
        .map(|i| (i, if i % 4 == 0 { 200 } else { 429 }))
        .collect();
    assert_eq!(statuses, expected);
    for r in slow {
        assert_eq!(r.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    sb.stop().await;
}
