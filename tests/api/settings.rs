use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn admin_saves_both_providers_and_never_reads_a_secret_back() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;

    let (status, body) = app.call(ADMIN, None, "mailSettings:get", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(
        data["redirectUri"],
        format!("{}/admin/settings/mail/oauth2", app.address)
    );
    assert_eq!(data["google"]["clientId"], GOOGLE_CLIENT_ID);
    assert_eq!(data["google"]["enabled"], true);
    assert_eq!(data["google"]["hasClientSecret"], true);
    assert_eq!(data["google"]["clientSecretHint"], "••••cret");
    assert_eq!(data["microsoft"]["tenant"], "common");
    assert_eq!(data["microsoft"]["hasClientSecret"], true);
    let text = body.to_string();
    assert!(
        !text.contains(GOOGLE_CLIENT_SECRET) && !text.contains(MICROSOFT_CLIENT_SECRET),
        "{text}"
    );
    assert!(data["google"].get("clientSecret").is_none());

    // At rest: ciphertext only, and it decrypts to what the admin typed.
    let state = app.state.clone();
    let rows = state
        .db
        .run(email_manager::db::settings::list)
        .await
        .expect("rows");
    for row in rows {
        let stored = row.client_secret.expect("secret stored");
        let expected = if row.provider == "google" {
            GOOGLE_CLIENT_SECRET
        } else {
            MICROSOFT_CLIENT_SECRET
        };
        assert!(!stored
            .windows(expected.len())
            .any(|w| w == expected.as_bytes()));
        let aad = format!("mail_settings:{}:client_secret", row.provider);
        assert_eq!(
            state
                .cipher
                .decrypt_str(&stored, &aad)
                .expect("decrypts")
                .expose(),
            expected
        );
    }
    if let Some(path) = &app.sqlite_path {
        for file in [path.clone(), path.with_extension("db-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for secret in [GOOGLE_CLIENT_SECRET, MICROSOFT_CLIENT_SECRET] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in clear in {}",
                    file.display()
                );
            }
        }
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_secret_left_out_keeps_the_stored_one() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let (status, body) = app
        .call(
            ADMIN,
            None,
            "mailSettings:update",
            &[],
            Some(json!({"google": {"clientId": "changed-id", "clientSecret": ""}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["google"]["clientId"], "changed-id");
    assert_eq!(body["data"]["google"]["hasClientSecret"], true);
    assert_eq!(body["data"]["google"]["clientSecretHint"], "••••cret");
    let state = app.state.clone();
    let row = state
        .db
        .run(|c| email_manager::db::settings::get(c, "google"))
        .await
        .expect("row")
        .expect("exists");
    let secret = state
        .cipher
        .decrypt_str(
            &row.client_secret.expect("kept"),
            "mail_settings:google:client_secret",
        )
        .expect("dec");
    assert_eq!(secret.expose(), GOOGLE_CLIENT_SECRET);
    // Microsoft was not part of the update and is untouched.
    assert_eq!(body["data"]["microsoft"]["clientId"], MICROSOFT_CLIENT_ID);
    app.stop().await;
}

#[actix_web::test]
async fn members_cannot_read_or_change_settings() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let (status, body) = app.call(MEMBER, None, "mailSettings:get", &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errors"][0]["code"], "FORBIDDEN");
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailSettings:update",
            &[],
            Some(json!({"google": {"enabled": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // root acting with its member role is not an admin either (snippets deny pm.*).
    let (status, _) = app
        .call(ADMIN, Some("member"), "mailSettings:get", &[], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body) = app.call(ADMIN, None, "mailSettings:get", &[], None).await;
    assert_eq!(body["data"]["google"]["enabled"], true, "nothing changed");
    app.stop().await;
}

#[actix_web::test]
async fn admin_role_is_recognised_by_name_or_by_settings_snippets() {
    // Only "root" is listed as admin: the "admin" role still qualifies through its pm.* snippets.
    let app = TestApp::spawn_with(&[("EMAIL_MANAGER__HOST__ADMIN_ROLES", "root")]).await;
    let (status, body) = app
        .call(
            ADMIN_ROLE_USER,
            Some("admin"),
            "mailSettings:get",
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .call(
            ADMIN_ROLE_USER,
            Some("member"),
            "mailSettings:get",
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[actix_web::test]
async fn bad_settings_input_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let (_, before) = app.call(ADMIN, None, "mailSettings:get", &[], None).await;

    let cases = [
        (json!({"yahoo": {"clientId": "x"}}), "UNKNOWN_PROVIDER"),
        (json!({"google": {"clientID": "typo"}}), "INVALID_INPUT"),
        (json!({"google": {"enabled": "yes"}}), "INVALID_INPUT"),
        (
            json!({"google": {"clientId": "has space"}}),
            "INVALID_INPUT",
        ),
        (json!({"google": {"tenant": "common"}}), "INVALID_INPUT"),
        (
            json!({"microsoft": {"tenant": "../../evil"}}),
            "INVALID_INPUT",
        ),
        (
            json!({"microsoft": {"clientId": "", "enabled": true}}),
            "INVALID_INPUT",
        ),
        // A valid part beside an invalid one is not applied either.
        (
            json!({"google": {"clientId": "would-change"}, "microsoft": {"tenant": "bad/tenant"}}),
            "INVALID_INPUT",
        ),
        (json!([1, 2]), "INVALID_INPUT"),
        (json!({}), "INVALID_INPUT"),
    ];
    for (values, code) in cases {
        let (status, body) = app
            .call(
                ADMIN,
                None,
                "mailSettings:update",
                &[],
                Some(values.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{values} → {body}");
        assert_eq!(body["errors"][0]["code"], code, "{values} → {body}");
    }
    let (status, body) = app
        .call(
            ADMIN,
            None,
            "mailSettings:update",
            &[],
            Some(json!({"yahoo": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(
        message.contains("google") && message.contains("microsoft"),
        "{message}"
    );

    let resp = app
        .client
        .post(format!("{}/api/mailSettings:update", app.address))
        .bearer_auth(app.token(ADMIN))
        .header("content-type", "application/json")
        .body("{\"google\": {")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "INVALID_JSON");

    let huge = "x".repeat(2 << 20);
    let resp = app
        .client
        .post(format!("{}/api/mailSettings:update", app.address))
        .bearer_auth(app.token(ADMIN))
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (_, after) = app.call(ADMIN, None, "mailSettings:get", &[], None).await;
    assert_eq!(before, after, "no bad request changed anything");
    app.stop().await;
}
