use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn a_user_links_google_and_microsoft_mailboxes_end_to_end() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;

    let google = app.link(MEMBER, "google", "alice@gmail.test").await;
    let microsoft = app.link(MEMBER, "microsoft", "carol@contoso.test").await;
    for (account, provider) in [(&google, "google"), (&microsoft, "microsoft")] {
        assert_eq!(account["provider"], provider);
        assert_eq!(account["status"], "active");
        assert!(account["id"].as_i64().is_some());
        assert!(account["createdAt"].as_str().is_some());
        assert!(account["lastSyncAt"].is_null());
    }
    assert_eq!(app.accounts(MEMBER).await.len(), 2);

    // The consent requests carried PKCE S256, a state and the right offline-access parameters.
    let authorize = app
        .sandbox_requests("/google/o/oauth2/v2/auth/approve")
        .await;
    let q = &authorize[0]["query"];
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/admin/settings/mail/oauth2", app.address)
    );
    assert!(q["scope"]
        .as_str()
        .expect("scope")
        .contains("https://mail.google.com/"));
    let ms = app
        .sandbox_requests("/microsoft/common/oauth2/v2.0/authorize/approve")
        .await;
    let scope = ms[0]["query"]["scope"].as_str().expect("scope");
    for s in [
        "offline_access",
        "Mail.ReadWrite",
        "Mail.Send",
        "MailboxSettings.Read",
        "MailboxSettings.ReadWrite",
        "User.Read",
    ] {
        assert!(scope.contains(s), "{scope}");
    }
    // Microsoft takes the client credentials in the body; both exchanges sent the PKCE verifier.
    let ms_token = app
        .sandbox_requests("/microsoft/common/oauth2/v2.0/token")
        .await;
    assert_eq!(
        ms_token[0]["form"]["client_secret"],
        MICROSOFT_CLIENT_SECRET
    );
    assert!(ms_token[0]["form"]["code_verifier"].as_str().is_some());
    let g_token = app.sandbox_requests("/google/token").await;
    assert!(g_token[0]["form"]["code_verifier"].as_str().is_some());

    // Tokens are stored encrypted.
    if let Some(path) = &app.sqlite_path {
        for file in [path.clone(), path.with_extension("db-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for needle in ["ya29.", "1//", "0.Sandbox"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in clear in {}",
                    file.display()
                );
            }
        }
    }
    app.stop().await;
}

#[actix_web::test]
async fn another_users_accounts_are_invisible() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let google = app.link(MEMBER, "google", "alice@gmail.test").await;
    let microsoft = app.link(MEMBER, "microsoft", "carol@contoso.test").await;

    assert!(app.accounts(OTHER_MEMBER).await.is_empty());
    for account in [&google, &microsoft] {
        let id = account["id"].to_string();
        for action in ["mailAccounts:get", "mailAccounts:destroy"] {
            let (status, body) = app
                .call(OTHER_MEMBER, None, action, &[("filterByTk", &id)], None)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{action} {body}");
            assert_eq!(body["errors"][0]["code"], "NOT_FOUND");
        }
    }
    // The admin manages settings, not other people's mail.
    assert!(app.accounts(ADMIN).await.is_empty());
    assert_eq!(app.accounts(MEMBER).await.len(), 2, "nothing was removed");
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:get",
            &[("filterByTk", &google["id"].to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["email"], "alice@gmail.test");
    app.stop().await;
}

#[actix_web::test]
async fn linking_the_same_mailbox_again_updates_it() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let first = app.link(MEMBER, "microsoft", "carol@contoso.test").await;
    let again = app.link(MEMBER, "microsoft", "carol@contoso.test").await;
    assert_eq!(first["id"], again["id"]);
    let g1 = app.link(MEMBER, "google", "alice@gmail.test").await;
    let g2 = app.link(MEMBER, "google", "alice@gmail.test").await;
    assert_eq!(g1["id"], g2["id"]);
    assert_eq!(app.count("mail_accounts").await, 2);
    // A different mailbox is a different account.
    app.link(MEMBER, "google", "bob@gmail.test").await;
    assert_eq!(app.accounts(MEMBER).await.len(), 3);
    app.stop().await;
}

#[actix_web::test]
async fn destroy_revokes_at_the_provider_then_deletes() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let google = app.link(MEMBER, "google", "alice@gmail.test").await;
    let id = google["id"].to_string();
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:destroy",
            &[("filterByTk", &id)],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revoked"], true);
    let revokes = app.sandbox_requests("/google/revoke").await;
    assert_eq!(revokes.len(), 1);
    let tokens: serde_json::Value = app
        .client
        .get(format!("{}/__sandbox/tokens", app.sandbox.base_url))
        .send()
        .await
        .expect("tokens")
        .json()
        .await
        .expect("json");
    let alice_refresh: Vec<_> = tokens["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter(|t| t["email"] == "alice@gmail.test" && t["kind"] == "refresh")
        .collect();
    assert!(
        !alice_refresh.is_empty() && alice_refresh.iter().all(|t| t["revoked"] == true),
        "{tokens}"
    );
    assert!(app.accounts(MEMBER).await.is_empty());
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:destroy",
            &[("filterByTk", &id)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Microsoft offers no per-app revocation: the account goes, and the answer says it was not
    // revoked rather than pretending.
    let outlook = app.link(MEMBER, "microsoft", "carol@contoso.test").await;
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:destroy",
            &[("filterByTk", &outlook["id"].to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revoked"], false);
    assert!(app.accounts(MEMBER).await.is_empty());
    assert_eq!(app.count("mail_accounts").await, 0);
    app.stop().await;
}

#[actix_web::test]
async fn bad_states_store_nothing() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let callback = format!("{}/admin/settings/mail/oauth2", app.address);

    // Unknown state, and no state at all.
    for url in [
        format!("{callback}?code=abc&state=forged"),
        format!("{callback}?code=abc"),
    ] {
        let (status, page) = app.follow_callback(&url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("expired or was already used"), "{page}");
    }

    // A state used once cannot be used again.
    let consent = app.authorize(MEMBER, "google").await;
    let back = app.consent(&consent, Some("alice@gmail.test")).await;
    let (status, _) = app.follow_callback(&back).await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = app.follow_callback(&back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert_eq!(app.count("mail_accounts").await, 1);

    // An expired state is refused (the clock is moved by ageing the stored row).
    let consent = app.authorize(MEMBER, "microsoft").await;
    let back = app.consent(&consent, Some("carol@contoso.test")).await;
    app.state
        .db
        .run(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query("UPDATE oauth_states SET expires_at = 0").execute(conn)?;
            Ok(())
        })
        .await
        .expect("age");
    let (status, page) = app.follow_callback(&back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert_eq!(app.count("mail_accounts").await, 1);
    assert!(
        app.sandbox_requests("/microsoft/common/oauth2/v2.0/token")
            .await
            .is_empty(),
        "no exchange for a dead state"
    );

    // A live state that comes back without a code blames the provider, and uses up the state.
    let consent = app.authorize(MEMBER, "google").await;
    let back = app.consent(&consent, Some("alice@gmail.test")).await;
    let url = reqwest::Url::parse(&back).expect("url");
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let (status, page) = app
        .follow_callback(&format!("{callback}?state={state}"))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("sent no authorization code"), "{page}");
    let (status, _) = app.follow_callback(&back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("mail_accounts").await, 1);

    // The callback is also served under /api/mailAccounts:callback.
    let consent = app.authorize(MEMBER, "microsoft").await;
    let back = app.consent(&consent, Some("carol@contoso.test")).await;
    let api_callback = back.replace("/admin/settings/mail/oauth2", "/api/mailAccounts:callback");
    let (status, page) = app.follow_callback(&api_callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(app.count("mail_accounts").await, 2);
    app.stop().await;
}

#[actix_web::test]
async fn a_user_who_declines_consent_links_nothing() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for provider in ["google", "microsoft"] {
        let consent = app.authorize(MEMBER, provider).await;
        let back = app.consent(&consent, None).await;
        assert!(back.contains("error=access_denied"), "{back}");
        let (status, page) = app.follow_callback(&back).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("did not grant access"), "{page}");
        // The state was consumed: replaying the URL says so.
        let (_, page) = app.follow_callback(&back).await;
        assert!(page.contains("expired or was already used"), "{page}");
    }
    assert_eq!(app.count("mail_accounts").await, 0);
    assert!(app.sandbox_requests("/google/token").await.is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn a_failed_token_exchange_stores_nothing() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;

    // Wrong client secret: the provider refuses the exchange with invalid_client.
    let (status, _) = app
        .call(
            ADMIN,
            None,
            "mailSettings:update",
            &[],
            Some(json!({"google": {"clientSecret": "wrong-secret"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let consent = app.authorize(MEMBER, "google").await;
    let back = app.consent(&consent, Some("alice@gmail.test")).await;
    let (status, page) = app.follow_callback(&back).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("Client ID or Client Secret"), "{page}");
    assert_eq!(app.count("mail_accounts").await, 0);

    // A provider outage during the exchange.
    let consent = app.authorize(MEMBER, "microsoft").await;
    let back = app.consent(&consent, Some("carol@contoso.test")).await;
    app.sandbox_post(
        "/__sandbox/faults",
        json!({"method": "POST", "path_prefix": "/microsoft/common/oauth2/v2.0/token", "status": 500, "count": 1}),
    )
    .await;
    let (status, page) = app.follow_callback(&back).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("Nothing was saved"), "{page}");
    assert_eq!(app.count("mail_accounts").await, 0);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "email_manager_provider_errors_total{provider=\"google\",kind=\"invalid_client\"} 1"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn authorize_checks_the_provider_first() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:authorize",
            &[],
            Some(json!({"provider": "yahoo"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "UNKNOWN_PROVIDER");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(
        message.contains("google") && message.contains("microsoft"),
        "{message}"
    );

    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:authorize",
            &[],
            Some(json!({"provider": "google"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "PROVIDER_NOT_CONFIGURED");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("m")
        .contains("not configured"));

    app.configure_providers().await;
    app.call(
        ADMIN,
        None,
        "mailSettings:update",
        &[],
        Some(json!({"microsoft": {"enabled": false}})),
    )
    .await;
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:authorize",
            &[],
            Some(json!({"provider": "microsoft"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "PROVIDER_NOT_CONFIGURED");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("m")
        .contains("disabled"));

    for values in [
        json!({"provider": "google", "syncFrom": "last tuesday"}),
        json!({"provider": "google", "extra": 1}),
        json!({}),
    ] {
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailAccounts:authorize",
                &[],
                Some(values.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{values}: {body}");
    }
    assert_eq!(
        app.count("oauth_states").await,
        0,
        "no state was stored for a refused request"
    );

    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:authorize",
            &[],
            Some(json!({"provider": "google", "syncFrom": "2026-01-01"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let back = app
        .consent(
            body["data"]["url"].as_str().expect("url"),
            Some("alice@gmail.test"),
        )
        .await;
    app.follow_callback(&back).await;
    let accounts = app.accounts(MEMBER).await;
    assert_eq!(accounts[0]["syncFrom"], "2026-01-01T00:00:00.000Z");
    app.stop().await;
}
