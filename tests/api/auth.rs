use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn sign(secret: &[u8], claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

#[actix_web::test]
async fn tokens_are_checked_on_every_request() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();

    let resp = app
        .client
        .get(format!("{}/api/mailAccounts:list", app.address))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "INVALID_TOKEN");

    let forged = sign(
        b"not-the-host-secret",
        json!({"userId": MEMBER, "temp": true, "iat": now, "exp": now + 600, "jti": "a"}),
    );
    let expired = sign(
        JWT_SECRET.as_bytes(),
        json!({"userId": MEMBER, "temp": true, "iat": now - 7200, "exp": now - 3600, "jti": "b"}),
    );
    let no_expiry = sign(
        JWT_SECRET.as_bytes(),
        json!({"userId": MEMBER, "temp": true, "iat": now, "jti": "c"}),
    );
    let no_user = sign(
        JWT_SECRET.as_bytes(),
        json!({"temp": true, "iat": now, "exp": now + 600, "jti": "d"}),
    );
    for token in [
        forged.as_str(),
        expired.as_str(),
        no_expiry.as_str(),
        no_user.as_str(),
        "garbage",
    ] {
        let (status, body) = app
            .call_with_token(token, None, "mailAccounts:list", &[], None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}: {body}");
        assert_eq!(body["errors"][0]["code"], "INVALID_TOKEN");
    }
    // None of those reached the host.
    assert!(app
        .sandbox_requests("/nocobase/api/roles:check")
        .await
        .is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn the_host_decides_roles_and_revocations() {
    let app = TestApp::spawn().await;
    // A member asking to act as admin: the host says the role is not theirs.
    let (status, body) = app
        .call(MEMBER, Some("admin"), "mailAccounts:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errors"][0]["code"], "ROLE_NOT_FOUND_FOR_USER");

    // A token signed out at the host (its jti blacklisted) is refused.
    let token = app.token(MEMBER);
    let claims = email_manager::providers::oauth::decode_jwt_claims(&token).expect("claims");
    app.sandbox_post("/__sandbox/host/revoke-jti", json!({"jti": claims["jti"]}))
        .await;
    let (status, body) = app
        .call_with_token(&token, None, "mailAccounts:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errors"][0]["code"], "INVALID_TOKEN");

    // The bearer and X-Role reach the host as sent.
    let checks = app.sandbox_requests("/nocobase/api/roles:check").await;
    assert_eq!(checks[0]["headers"]["x-role"], "admin");
    assert!(checks[0]["headers"]["authorization"]
        .as_str()
        .expect("auth")
        .starts_with("Bearer "));
    app.stop().await;
}

#[actix_web::test]
async fn confirmed_roles_are_cached_briefly() {
    let app = TestApp::spawn().await;
    let token = app.token(MEMBER);
    for _ in 0..3 {
        let (status, _) = app
            .call_with_token(&token, None, "mailAccounts:list", &[], None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        app.sandbox_requests("/nocobase/api/roles:check")
            .await
            .len(),
        1,
        "one host call for one token and role"
    );
    let (status, _) = app
        .call_with_token(&token, Some("member"), "mailAccounts:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.sandbox_requests("/nocobase/api/roles:check")
            .await
            .len(),
        2,
        "another role is checked again"
    );
    app.stop().await;
}

#[actix_web::test]
async fn an_unreachable_host_fails_closed() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let app = TestApp::spawn_with(&[("EMAIL_MANAGER__HOST__API_URL", &dead)]).await;
    let (status, body) = app
        .call(
            ADMIN,
            None,
            "mailSettings:update",
            &[],
            Some(json!({"google": {"clientId": "x", "clientSecret": "y", "enabled": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["errors"][0]["code"], "HOST_UNAVAILABLE");
    assert_eq!(app.count("mail_settings").await, 0, "nothing stored");
    let (status, _) = app.call(MEMBER, None, "mailAccounts:list", &[], None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await;
}

#[actix_web::test]
async fn unknown_actions_and_methods() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .call(MEMBER, None, "mailAccounts:explode", &[], None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errors"][0]["code"], "UNKNOWN_ACTION");
    let resp = app
        .client
        .put(format!("{}/api/mailAccounts:list", app.address))
        .bearer_auth(app.token(MEMBER))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Both verbs reach the same action.
    let (get_status, _) = app.call(MEMBER, None, "mailAccounts:list", &[], None).await;
    let (post_status, _) = app
        .call(MEMBER, None, "mailAccounts:list", &[], Some(json!({})))
        .await;
    assert_eq!((get_status, post_status), (StatusCode::OK, StatusCode::OK));
    app.stop().await;
}

/// The development sign-in of `make demo` exists only with `dev.enabled`; its token is an ordinary
/// host-shaped token that the host (here the sandbox) still has to confirm.
#[actix_web::test]
async fn development_sign_in_exists_only_in_development() {
    let app = TestApp::spawn().await;
    let url = format!("{}/admin/dev/sign-in", app.address);
    let resp = app
        .client
        .post(&url)
        .json(&json!({"userId": MEMBER}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "NOT_FOUND");
    let config: Value = app
        .client
        .get(format!("{}/admin/dev/config", app.address))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(config["data"]["devSignIn"], false);
    app.stop().await;

    let dev = TestApp::spawn_with(&[("EMAIL_MANAGER__DEV__ENABLED", "true")]).await;
    let url = format!("{}/admin/dev/sign-in", dev.address);
    let bad = dev.client.post(&url).body("{").send().await.expect("post");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "INVALID_JSON");
    let signed: Value = dev
        .client
        .post(&url)
        .json(&json!({"userId": MEMBER}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let token = signed["data"]["token"].as_str().expect("token");
    let (status, body) = dev
        .call_with_token(token, None, "mailAccounts:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([]));
    dev.stop().await;
}
