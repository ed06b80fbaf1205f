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
