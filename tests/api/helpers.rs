//! Test harness: the real sidecar on port 0 with its own database (a fresh SQLite file, or a fresh
//! PostgreSQL database when `TEST_DATABASE_URL` is set), pointed at a fresh provider sandbox that
//! also plays the NocoBase host.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use actix_web::web;
use email_manager::config::Settings;
use email_manager::sandbox::{Sandbox, SandboxConfig};
use email_manager::startup::Application;
use email_manager::state::AppState;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const JWT_SECRET: &str = "test-nocobase-app-key-0123456789";
pub const ENCRYPTION_KEY: &str = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="; // 32 bytes
pub const ADMIN: i64 = 1; // root
pub const MEMBER: i64 = 2;
pub const OTHER_MEMBER: i64 = 3;
pub const ADMIN_ROLE_USER: i64 = 4; // holds "admin"

pub const GOOGLE_CLIENT_ID: &str = "sandbox-google-client.apps.googleusercontent.com";
pub const GOOGLE_CLIENT_SECRET: &str = "GOCSPX-sandbox-google-secret";
pub const MICROSOFT_CLIENT_ID: &str = "00000000-0000-4000-8000-00000000a11c";
pub const MICROSOFT_CLIENT_SECRET: &str = "sandbox~microsoft~secret";

pub struct TestApp {
    pub address: String,
    pub sandbox: Sandbox,
    pub client: reqwest::Client,
    pub database_url: String,
    /// The SQLite file, when on SQLite (for raw-byte checks).
    pub sqlite_path: Option<std::path::PathBuf>,
    pub state: web::Data<AppState>,
    /// The configuration the in-process service runs with, for starting the binary beside it.
    pub env: Vec<(String, String)>,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

pub fn quiet_logs() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .is_test(true)
        .try_init();
}

/// A fresh database URL for one test.
pub fn fresh_database_url(dir: &std::path::Path) -> (String, Option<std::path::PathBuf>) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            use diesel::Connection;
            use diesel::RunQueryDsl;
            let name = format!(
                "em_test_{}",
                email_manager::crypto::random_token(9)
                    .to_lowercase()
                    .replace(['-', '_'], "x")
            );
            let mut admin = diesel::pg::PgConnection::establish(&base)
                .expect("TEST_DATABASE_URL must point at a reachable PostgreSQL");
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .expect("create test database");
            let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            (url.to_string(), None)
        }
        _ => {
            let path = dir.join("email-manager.db");
            (format!("sqlite://{}", path.display()), Some(path))
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Starts the sandbox and the sidecar; `extra` adds or overrides `EMAIL_MANAGER__…` variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        quiet_logs();
        let sandbox_listener = TcpListener::bind("127.0.0.1:0").expect("bind sandbox");
        let sandbox = Sandbox::start(
            SandboxConfig {
                jwt_secret: JWT_SECRET.as_bytes().to_vec(),
                ..SandboxConfig::default()
            },
            sandbox_listener,
        )
        .expect("start sandbox");

        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, sqlite_path) = fresh_database_url(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sidecar");
        let address = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );

        let mut env: Vec<(String, String)> = vec![
            (
                "EMAIL_MANAGER__SERVER__BIND",
                address.trim_start_matches("http://").to_string(),
            ),
            ("EMAIL_MANAGER__SERVER__WORKERS", "2".into()),
            // The sidecar serves the callback path itself, so it stands in for the host origin.
            ("EMAIL_MANAGER__HOST__PUBLIC_URL", address.clone()),
            ("EMAIL_MANAGER__HOST__API_URL", sandbox.host_api_url()),
            ("EMAIL_MANAGER__HOST__JWT_SECRET", JWT_SECRET.into()),
            ("EMAIL_MANAGER__DATABASE__URL", database_url.clone()),
            ("EMAIL_MANAGER__DATABASE__MAX_CONNECTIONS", "4".into()),
            // Tests that sync turn the scheduler on; the others keep the sandbox's request log
            // to what they do themselves.
            ("EMAIL_MANAGER__SYNC__ENABLED", "false".into()),
            (
                "EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY",
                ENCRYPTION_KEY.into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(sandbox.provider_env())
        .collect();
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let settings = Settings::load_from(None, env.clone()).expect("test settings are valid");
        let app = Application::build(settings, listener).expect("build the sidecar");
        let state = app.state();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());

        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Below actix's 5 s keep-alive: a connection the server is closing is never reused.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .expect("client");
        TestApp {
            address,
            sandbox,
            client,
            database_url,
            sqlite_path,
            state,
            env,
            handle,
            _dir: dir,
        }
    }

    pub fn token(&self, user_id: i64) -> String {
        email_manager::auth::sign_dev_token(JWT_SECRET.as_bytes(), user_id, 3600).expect("sign")
    }

    /// Calls `/api/{name}` as `user` (with `role` as X-Role when given) and returns status and JSON.
    pub async fn call(
        &self,
        user: i64,
        role: Option<&str>,
        name: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with_token(&self.token(user), role, name, query, body)
            .await
    }

    pub async fn call_with_token(
        &self,
        token: &str,
        role: Option<&str>,
        name: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}/api/{name}", self.address);
        let mut req = match &body {
            Some(b) => self.client.post(url).json(b),
            None => self.client.get(url),
        };
        req = req.query(query).bearer_auth(token);
        if let Some(role) = role {
            req = req.header("X-Role", role);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The admin stores the sandbox's OAuth apps for both providers and enables them.
    pub async fn configure_providers(&self) {
        let (status, body) = self
            .call(
                ADMIN,
                None,
                "mailSettings:update",
                &[],
                Some(json!({
                    "google": {"clientId": GOOGLE_CLIENT_ID, "clientSecret": GOOGLE_CLIENT_SECRET, "enabled": true},
                    "microsoft": {"clientId": MICROSOFT_CLIENT_ID, "clientSecret": MICROSOFT_CLIENT_SECRET, "enabled": true, "tenant": "common"},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Starts linking for `user` and returns the provider consent URL.
    pub async fn authorize(&self, user: i64, provider: &str) -> String {
        let (status, body) = self
            .call(
                user,
                None,
                "mailAccounts:authorize",
                &[],
                Some(json!({ "provider": provider })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["url"].as_str().expect("url").to_string()
    }

    /// Plays the user on the sandbox consent page: approve as `account` (or deny when `None`) and
    /// returns where the provider sends the browser back (the callback URL with code and state).
    pub async fn consent(&self, consent_url: &str, account: Option<&str>) -> String {
        let mut url = url::Url::parse(consent_url).expect("consent url");
        let path = format!(
            "{}/{}",
            url.path(),
            if account.is_some() { "approve" } else { "deny" }
        );
        url.set_path(&path);
        if let Some(a) = account {
            url.query_pairs_mut().append_pair("account", a);
        }
        let resp = self.client.get(url).send().await.expect("consent");
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "the sandbox redirects back after consent"
        );
        resp.headers()["location"]
            .to_str()
            .expect("location")
            .to_string()
    }

    /// Follows the provider's redirect to the sidecar's callback; returns status and page text.
    pub async fn follow_callback(&self, location: &str) -> (StatusCode, String) {
        let resp = self.client.get(location).send().await.expect("callback");
        (resp.status(), resp.text().await.expect("page"))
    }

    /// Links `account` for `user` end to end and returns the account as `mailAccounts:list` shows it.
    pub async fn link(&self, user: i64, provider: &str, account: &str) -> Value {
        let consent = self.authorize(user, provider).await;
        let back = self.consent(&consent, Some(account)).await;
        assert!(
            back.starts_with(&self.address),
            "redirect goes to the sidecar: {back}"
        );
        let (status, page) = self.follow_callback(&back).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains(account),
            "the page names the linked mailbox: {page}"
        );
        let accounts = self.accounts(user).await;
        accounts
            .into_iter()
            .find(|a| a["email"] == account)
            .expect("account listed")
    }

    pub async fn accounts(&self, user: i64) -> Vec<Value> {
        let (status, body) = self.call(user, None, "mailAccounts:list", &[], None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().expect("list").clone()
    }

    /// Requests the sandbox saw under a path prefix.
    pub async fn sandbox_requests(&self, prefix: &str) -> Vec<Value> {
        let body: Value = self
            .client
            .get(format!("{}/__sandbox/requests", self.sandbox.base_url))
            .query(&[("path_prefix", prefix)])
            .send()
            .await
            .expect("requests")
            .json()
            .await
            .expect("json");
        body["requests"].as_array().cloned().unwrap_or_default()
    }

    pub async fn sandbox_post(&self, path: &str, body: Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.sandbox.base_url))
            .json(&body)
            .send()
            .await
            .expect("sandbox control");
        assert!(
            resp.status().is_success(),
            "sandbox control {path}: {}",
            resp.status()
        );
    }

    /// Counts rows with plain SQL through the service's own pool.
    pub async fn count(&self, table: &'static str) -> i64 {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.state
            .db
            .run(move |conn| {
                Ok(
                    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                        .get_result::<N>(conn)?
                        .n,
                )
            })
            .await
            .expect("count")
    }

    /// Starts the `email-manager` binary on this app's database and sandbox, on its own port,
    /// with `extra` configuration on top. Its log goes to `log`.
    pub fn spawn_binary(
        &self,
        extra: &[(&str, &str)],
        log: &std::path::Path,
    ) -> std::process::Child {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_email-manager"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.env("EMAIL_MANAGER__SERVER__BIND", "127.0.0.1:0");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = std::fs::File::create(log).expect("log file");
        cmd.stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start email-manager")
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.sandbox.stop().await;
    }

    /// Stops the service and builds a new one on the same database, configuration and sandbox
    /// (on a new port), as a restart of the process would: whatever it remembers must come from
    /// the database.
    pub async fn restart(self) -> TestApp {
        self.handle.stop(true).await;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sidecar");
        let address = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let mut env = self.env.clone();
        for (k, v) in env.iter_mut() {
            match k.as_str() {
                "EMAIL_MANAGER__SERVER__BIND" => *v = address.trim_start_matches("http://").into(),
                "EMAIL_MANAGER__HOST__PUBLIC_URL" => *v = address.clone(),
                _ => {}
            }
        }
        let settings = Settings::load_from(None, env.clone()).expect("test settings are valid");
        let app = Application::build(settings, listener).expect("build the sidecar again");
        let state = app.state();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address,
            state,
            env,
            handle,
            ..self
        }
    }
}

/// Polls `check` every 50 ms until it holds; fails the test naming `what` after `secs`.
pub async fn wait_for<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
