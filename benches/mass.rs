//! Mass-mailing benchmark (`cargo bench --bench mass`), against the provider sandbox on loopback:
//!
//! 1. time to accepted of a 10,000-recipient `mailMassMessages:create` (the worker off, so only
//!    the request is measured: parsing, checking and rendering every recipient, the inserts);
//! 2. the send rate of a job with no rate limit of ours (`massRatePerMinute` at its maximum),
//!    Gmail and Graph;
//! 3. beside it, the sandbox's own maximum: `messages.send` / `sendMail` hammered directly with
//!    the same concurrency (the limit any sidecar could reach here).
//!
//! `MASS_BENCH_SENDS` sets how many messages (2) and (3) send (default 2,000).

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::Engine;
use email_manager::config::Settings;
use email_manager::sandbox::{Sandbox, SandboxConfig};
use email_manager::startup::Application;
use serde_json::{json, Value};

const JWT_SECRET: &str = "bench-nocobase-app-key-0123456789";
const ENCRYPTION_KEY: &str = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE=";
const ADMIN: i64 = 1;
const MEMBER: i64 = 2;
/// Sends in flight at once per account (the worker's default, Graph's per-mailbox limit).
const CONCURRENCY: usize = 4;

struct Bench {
    address: String,
    sandbox: Sandbox,
    client: reqwest::Client,
    app: actix_web::web::Data<email_manager::state::AppState>,
    _dir: tempfile::TempDir,
}

fn env(sandbox: &Sandbox, address: &str, db: &str, worker: bool) -> Vec<(String, String)> {
    [
        (
            "EMAIL_MANAGER__SERVER__BIND",
            address.trim_start_matches("http://").to_string(),
        ),
        ("EMAIL_MANAGER__SERVER__WORKERS", "2".into()),
        ("EMAIL_MANAGER__HOST__PUBLIC_URL", address.to_string()),
        ("EMAIL_MANAGER__HOST__API_URL", sandbox.host_api_url()),
        ("EMAIL_MANAGER__HOST__JWT_SECRET", JWT_SECRET.into()),
        ("EMAIL_MANAGER__DATABASE__URL", db.to_string()),
        ("EMAIL_MANAGER__DATABASE__MAX_CONNECTIONS", "8".into()),
        ("EMAIL_MANAGER__SYNC__ENABLED", "false".into()),
        (
            "EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY",
            ENCRYPTION_KEY.into(),
        ),
        ("EMAIL_MANAGER__MAIL__MASS_WORKER", worker.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(sandbox.provider_env())
    .collect()
}

impl Bench {
    fn start(worker: bool) -> anyhow::Result<Bench> {
        let sandbox = Sandbox::start(
            SandboxConfig {
                jwt_secret: JWT_SECRET.as_bytes().to_vec(),
                ..SandboxConfig::default()
            },
            TcpListener::bind("127.0.0.1:0")?,
        )?;
        let dir = tempfile::tempdir()?;
        // Each part its own database: the create runs leave 50,000 recipients queued, which a
        // shared PostgreSQL database would hand to the next part's worker.
        let db = common::fresh_database(dir.path(), "mass")?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let settings = Settings::load_from(None, env(&sandbox, &address, &db, worker))?;
        let app = Application::build(settings, listener)?;
        let state = app.state();
        actix_web::rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Bench {
            address,
            sandbox,
            client,
            app: state,
            _dir: dir,
        })
    }

    async fn call(&self, user: i64, name: &str, body: Value) -> anyhow::Result<Value> {
        let token = email_manager::auth::sign_dev_token(JWT_SECRET.as_bytes(), user, 3600)?;
        let resp = self
            .client
            .post(format!("{}/api/{name}", self.address))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        anyhow::ensure!(status.is_success(), "{name}: {status} {v}");
        Ok(v["data"].clone())
    }

    /// Links a sandbox mailbox for MEMBER, as the OAuth flow does; answers the account id.
    async fn link(&self, provider: &str, email: &str) -> anyhow::Result<i64> {
        let auth = self
            .call(
                MEMBER,
                "mailAccounts:authorize",
                json!({"provider": provider}),
            )
            .await?;
        let mut url = url::Url::parse(auth["url"].as_str().unwrap_or_default())?;
        let path = format!("{}/approve", url.path());
        url.set_path(&path);
        url.query_pairs_mut().append_pair("account", email);
        let back = self.client.get(url).send().await?;
        let location = back
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.client.get(location).send().await?;
        let token = email_manager::auth::sign_dev_token(JWT_SECRET.as_bytes(), MEMBER, 3600)?;
        let list: Value = self
            .client
            .get(format!("{}/api/mailAccounts:list", self.address))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["email"] == email)
            .and_then(|a| a["id"].as_i64())
            .ok_or_else(|| anyhow::anyhow!("{email} not linked"))
    }

    async fn configure(&self) -> anyhow::Result<()> {
        self.call(
            ADMIN,
            "mailSettings:update",
            json!({
                "google": {"clientId": "sandbox-google-client.apps.googleusercontent.com", "clientSecret": "GOCSPX-sandbox-google-secret", "enabled": true},
                "microsoft": {"clientId": "00000000-0000-4000-8000-00000000a11c", "clientSecret": "sandbox~microsoft~secret", "enabled": true, "tenant": "common"},
            }),
        )
        .await?;
        self.call(
            ADMIN,
            "mailGeneralSettings:update",
            json!({"massRatePerMinute": email_manager::config::MAX_MASS_RATE_PER_MINUTE}),
        )
        .await?;
        Ok(())
    }

    async fn outbox_len(&self) -> anyhow::Result<usize> {
        let v: Value = self
            .client
            .get(format!("{}/__sandbox/outbox", self.sandbox.base_url))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["messages"].as_array().map(Vec::len).unwrap_or(0))
    }
}

fn recipients(n: usize, prefix: &str) -> Value {
    (0..n)
        .map(|i| {
            json!({"email": format!("{prefix}{i}@example.test"), "name": format!("Person {i}"),
                        "variables": {"plan": if i % 2 == 0 { "gold" } else { "basic" }}})
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_to_accepted() -> anyhow::Result<()> {
    let b = Bench::start(false)?;
    b.configure().await?;
    let account = b.link("google", "alice@gmail.test").await?;
    let body = json!({
        "accountId": account,
        "subject": "Hello {{recipient.name}}",
        "html": "<p>Dear {{recipient.name}}, your plan is {{plan}}.</p>",
        "recipients": recipients(10_000, "a"),
    });
    let bytes = serde_json::to_vec(&body)?.len();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let job = b
            .call(MEMBER, "mailMassMessages:create", body.clone())
            .await?;
        times.push(t.elapsed());
        anyhow::ensure!(job["total"] == 10_000, "{job}");
    }
    println!(
        "create 10,000 recipients ({:.1} MB body): median {:.0} ms (min {:.0}, max {:.0}) over {} runs",
        bytes as f64 / 1e6,
        median(times.clone()).as_secs_f64() * 1000.0,
        times.iter().min().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        times.iter().max().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        times.len()
    );
    Ok(())
}

async fn send_rate(provider: &str, email: &str, n: usize) -> anyhow::Result<f64> {
    let b = Bench::start(true)?;
    b.configure().await?;
    let account = b.link(provider, email).await?;
    let t = Instant::now();
    let job = b
        .call(
            MEMBER,
            "mailMassMessages:create",
            json!({"accountId": account, "subject": "Hi {{recipient.name}}",
                   "text": "Your plan: {{plan}}", "recipients": recipients(n, "s")}),
        )
        .await?;
    let id = job["id"].as_i64().unwrap_or_default();
    let token = email_manager::auth::sign_dev_token(JWT_SECRET.as_bytes(), MEMBER, 3600)?;
    loop {
        let j: Value = b
            .client
            .get(format!("{}/api/mailMassMessages:get", b.address))
            .query(&[("filterByTk", id.to_string())])
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if j["data"]["status"] == "completed" {
            anyhow::ensure!(j["data"]["sent"] == n, "{j}");
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "too slow: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(b.outbox_len().await? == n);
    let rate = n as f64 / secs;
    println!("{provider}: a {n}-recipient job with no rate limit sent {rate:.0} messages/s ({secs:.1} s)");

    // The sandbox's own limit: the same sends straight at it, CONCURRENCY at a time.
    let state = b.app.clone();
    let p = state
        .registry
        .get(provider)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let access = email_manager::sync::tokens::access_token(&state, p.as_ref(), account, false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (url, gmail) = if provider == "google" {
        (
            format!(
                "{}/gmail/v1/users/me/messages/send",
                b.sandbox.gmail_api_base()
            ),
            true,
        )
    } else {
        (format!("{}/me/sendMail", b.sandbox.graph_api_base()), false)
    };
    let t = Instant::now();
    let per = n / CONCURRENCY;
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (client, url, token) = (b.client.clone(), url.clone(), access.expose().to_string());
        tasks.push(actix_web::rt::spawn(async move {
            for i in 0..per {
                let raw = format!(
                    "From: {email_from}\r\nTo: direct{w}x{i}@example.test\r\nSubject: direct\r\nMessage-ID: <d{w}x{i}@bench.test>\r\n\r\nbody\r\n",
                    email_from = "sender@example.test"
                );
                let req = client.post(&url).bearer_auth(&token);
                let req = if gmail {
                    req.json(&json!({"raw": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)}))
                } else {
                    req.header("Content-Type", "text/plain")
                        .body(base64::engine::general_purpose::STANDARD.encode(raw))
                };
                let resp = req.send().await?;
                anyhow::ensure!(resp.status().is_success(), "direct send: {}", resp.status());
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{provider}: the sandbox itself takes {:.0} sends/s ({} direct sends, {CONCURRENCY} at a time, {secs:.1} s)",
        (per * CONCURRENCY) as f64 / secs,
        per * CONCURRENCY
    );
    b.sandbox.stop().await;
    Ok(rate)
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: measure nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benchmark: run it with `make bench` (cargo bench); nothing measured under cargo test"
        );
        return Ok(());
    }
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
        .try_init();
    let n: usize = std::env::var("MASS_BENCH_SENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let _cleanup = common::Cleanup { keep: false };
    actix_web::rt::System::new().block_on(async move {
        time_to_accepted().await?;
        send_rate("google", "alice@gmail.test", n).await?;
        send_rate("microsoft", "carol@contoso.test", n).await?;
        Ok(())
    })
}
