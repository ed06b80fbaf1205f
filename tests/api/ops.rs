use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[actix_web::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    assert_eq!(
        get("/healthz").await.expect("healthz").status(),
        StatusCode::OK
    );
    let ready = get("/readyz").await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.expect("json")["status"],
        "ready"
    );
    let text = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("# TYPE email_manager_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("email_manager_http_requests_total{status=\"2xx\"}"),
        "{text}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn the_manifest_describes_this_instance_and_is_registered() {
    let app = TestApp::spawn().await;
    let register = format!("{}/api/emailManager:register", app.sandbox.host_api_url());
    let other = TestApp::spawn_with(&[("EMAIL_MANAGER__HOST__REGISTER_URL", &register)]).await;
    let m: Value = app
        .client
        .get(format!("{}/plugin-manifest.json", app.address))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(m["displayName"], "Email manager");
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        m["oauth"]["redirectUri"],
        format!("{}/admin/settings/mail/oauth2", app.address)
    );
    assert_eq!(m["settings"]["path"], "/admin/settings/mail");
    assert!(m["resources"]["mailSettings"]["actions"]
        .as_array()
        .expect("actions")
        .contains(&Value::from("update")));
    assert!(m["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .any(|r| r["path"] == "/admin/settings/mail/oauth2"));

    // The second instance posts its manifest to the first one's host on its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let regs: Value = app
            .client
            .get(format!("{}/__sandbox/registrations", app.sandbox.base_url))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if let Some(first) = regs["registrations"].as_array().and_then(|a| a.first()) {
            assert_eq!(first["displayName"], "Email manager");
            assert_eq!(first["sidecar"]["url"], other.address);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the manifest was never registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
    other.stop().await;
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_email-manager"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let base = [
        ("EMAIL_MANAGER__HOST__PUBLIC_URL", "http://localhost:13000"),
        ("EMAIL_MANAGER__HOST__JWT_SECRET", JWT_SECRET),
        ("EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY", ENCRYPTION_KEY),
    ];
    let db = format!("sqlite://{}/x.db", dir.path().display());
    let cases = [
        (
            "EMAIL_MANAGER__SERVER__BIND",
            "not-an-address",
            "server.bind",
        ),
        (
            "EMAIL_MANAGER__HOST__PUBLIC_URL",
            "nocobase",
            "host.public_url",
        ),
        (
            "EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY",
            "dG9vIHNob3J0",
            "security.encryption_key",
        ),
        (
            "EMAIL_MANAGER__PROVIDERS__GOOGLE__TOKEN_URL",
            "::",
            "providers.google.token_url",
        ),
        (
            "EMAIL_MANAGER__HOST__JWT_SECRET_FILE",
            "/nonexistent/jwt_secret.dat",
            "host.jwt_secret_file",
        ),
    ];
    for (key, value, named) in cases {
        let mut cmd = binary();
        for (k, v) in base
            .iter()
            .filter(|(k, _)| *k != key && !(key.contains("JWT_SECRET") && k.contains("JWT_SECRET")))
        {
            cmd.env(k, v);
        }
        let out = cmd
            .env("EMAIL_MANAGER__DATABASE__URL", &db)
            .env(key, value)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{key}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(named), "{named} named in: {stderr}");
    }
    // Without any encryption key outside development.
    let out = binary()
        .env("EMAIL_MANAGER__HOST__PUBLIC_URL", "http://localhost:13000")
        .env("EMAIL_MANAGER__HOST__JWT_SECRET", JWT_SECRET)
        .env("EMAIL_MANAGER__DATABASE__URL", &db)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("security.encryption_key"));
}

/// Runs the real binary against the sandbox and reads its log while a mailbox is linked: the
/// OAuth code, the state and the tokens never appear; the request lines do.
#[actix_web::test]
async fn logs_never_contain_secrets_and_sigterm_stops_cleanly() {
    let app = TestApp::spawn().await; // for its sandbox and helpers
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let address = format!("http://127.0.0.1:{port}");
    let s = &app.sandbox;
    let mut child = binary()
        .env("RUST_LOG", "debug")
        .env("EMAIL_MANAGER__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("EMAIL_MANAGER__HOST__PUBLIC_URL", &address)
        .env("EMAIL_MANAGER__HOST__API_URL", s.host_api_url())
        .env("EMAIL_MANAGER__HOST__JWT_SECRET", JWT_SECRET)
        .env("EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env(
            "EMAIL_MANAGER__DATABASE__URL",
            fresh_database_url(dir.path()).0,
        )
        .env(
            "EMAIL_MANAGER__PROVIDERS__GOOGLE__AUTH_URL",
            s.google_auth_url(),
        )
        .env(
            "EMAIL_MANAGER__PROVIDERS__GOOGLE__TOKEN_URL",
            s.google_token_url(),
        )
        .env(
            "EMAIL_MANAGER__PROVIDERS__GOOGLE__REVOKE_URL",
            s.google_revoke_url(),
        )
        .env(
            "EMAIL_MANAGER__PROVIDERS__GOOGLE__USERINFO_URL",
            s.google_userinfo_url(),
        )
        .env(
            "EMAIL_MANAGER__PROVIDERS__GOOGLE__GMAIL_API_BASE",
            s.gmail_api_base(),
        )
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().expect("log").push_str(&(line + "\n"));
        }
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(format!("{address}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the binary did not start: {}",
            log.lock().expect("log")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = app.token(ADMIN);
    let resp = client
        .post(format!("{address}/api/mailSettings:update"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"google": {"clientId": GOOGLE_CLIENT_ID, "clientSecret": GOOGLE_CLIENT_SECRET, "enabled": true}}))
        .send()
        .await
        .expect("update");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = client
        .post(format!("{address}/api/mailAccounts:authorize"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"provider": "google"}))
        .send()
        .await
        .expect("authorize")
        .json()
        .await
        .expect("json");
    let back = app
        .consent(
            body["data"]["url"].as_str().expect("url"),
            Some("alice@gmail.test"),
        )
        .await;
    let callback = url::Url::parse(&back).expect("url");
    let pairs: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
    let resp = client.get(&back).send().await.expect("callback");
    assert_eq!(resp.status(), StatusCode::OK);
    // SIGTERM: the service stops by itself and exits cleanly.
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let log = log.lock().expect("log").clone();
    assert!(log.contains("stopped"), "shutdown is logged: {log}");
    assert!(
        log.contains("GET /admin/settings/mail/oauth2 200"),
        "request lines are logged: {log}"
    );
    let jwt_signature = token.rsplit('.').next().expect("sig");
    for secret in [
        pairs["code"].as_str(),
        pairs["state"].as_str(),
        GOOGLE_CLIENT_SECRET,
        jwt_signature,
        "ya29.",
        "1//",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
    app.stop().await;
}

/// Two instances on one database (replicas): the second sees the settings and mailboxes the first
/// stored and can use the stored secrets; an instance with another encryption key refuses to start.
#[actix_web::test]
async fn replicas_share_the_database_and_must_share_the_key() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let linked = app.link(MEMBER, "google", "alice@gmail.test").await;

    let other = TestApp::spawn_with(&[("EMAIL_MANAGER__DATABASE__URL", &app.database_url)]).await;
    let accounts = other.accounts(MEMBER).await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["id"], linked["id"]);
    let (status, body) = other.call(ADMIN, None, "mailSettings:get", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["google"]["clientId"], GOOGLE_CLIENT_ID);
    // The Microsoft secret written by the first instance decrypts in the second: the token
    // exchange at the second sandbox carries it.
    other.link(MEMBER, "microsoft", "carol@contoso.test").await;
    let exchange = other
        .sandbox_requests("/microsoft/common/oauth2/v2.0/token")
        .await;
    assert_eq!(
        exchange[0]["form"]["client_secret"],
        MICROSOFT_CLIENT_SECRET
    );
    assert_eq!(app.accounts(MEMBER).await.len(), 2);

    let out = binary()
        .env("EMAIL_MANAGER__SERVER__BIND", "127.0.0.1:0")
        .env("EMAIL_MANAGER__HOST__PUBLIC_URL", "http://localhost:13000")
        .env("EMAIL_MANAGER__HOST__JWT_SECRET", JWT_SECRET)
        .env("EMAIL_MANAGER__DATABASE__URL", &app.database_url)
        .env(
            "EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        )
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("email-manager: security.encryption_key:"),
        "{stderr}"
    );
    other.stop().await;
    app.stop().await;
}

/// The host forwards what the manifest lists and nothing else, so every advertised action must
/// exist here, and every resource must have a forwarded route.
#[actix_web::test]
async fn every_action_the_manifest_lists_exists_and_is_routed() {
    let app = TestApp::spawn().await;
    let m: Value = app
        .client
        .get(format!("{}/plugin-manifest.json", app.address))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let routes: Vec<&str> = m["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    let mut unique = routes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        routes.len(),
        "a route is listed twice: {routes:?}"
    );
    let resources = m["resources"].as_object().expect("resources");
    assert!(resources.len() >= 12, "{resources:?}");
    let mut checked = 0;
    for (resource, spec) in resources {
        assert!(
            routes.contains(&format!("/api/{resource}:*").as_str()),
            "no route forwards {resource}"
        );
        for action in spec["actions"].as_array().expect("actions") {
            let action = action.as_str().expect("action name");
            // Empty input: a real action refuses it or answers; only a missing one says UNKNOWN_ACTION.
            let (status, body) = app
                .call(
                    ADMIN,
                    Some("root"),
                    &format!("{resource}:{action}"),
                    &[],
                    None,
                )
                .await;
            assert_ne!(
                body["errors"][0]["code"], "UNKNOWN_ACTION",
                "{resource}:{action} is listed but answers {status} {body}"
            );
            checked += 1;
        }
    }
    // The check itself must be able to fail.
    let (_, body) = app
        .call(ADMIN, Some("root"), "mailMessages:nonexistent", &[], None)
        .await;
    assert_eq!(body["errors"][0]["code"], "UNKNOWN_ACTION");
    assert!(checked > 40, "only {checked} actions checked");
}
