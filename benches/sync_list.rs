//! `make bench`: first-sync throughput and `mailMessages:list` latency, each beside its limit.
//!
//! - Sync: a generated sandbox mailbox (`BENCH_SYNC_MESSAGES`, default 50,000) is linked and
//!   synced to completion through the real service; the limit is a bare bulk insert of the very
//!   rows it stored (one transaction, prepared 500-row INSERTs, same schema, indexes, triggers
//!   and FTS) into a fresh database that first gets, untimed, the rows the sync's database held
//!   before the sync (the Gmail account's, for the Outlook sync that follows it).
//! - List: an account of `BENCH_LIST_MESSAGES` (default 100,000) messages, filled by syncing a
//!   generated sandbox mailbox; p50/p99 of `mailMessages:list` over HTTP for the usual views,
//!   beside the bare SQL query for the same page on a direct connection.
//!
//! SQLite by default (a file in a temporary folder); PostgreSQL when `BENCH_DATABASE_URL` names a
//! server (a fresh database is created on it for each run). Figures: docs/benchmarks.md.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;
use email_manager::config::Settings;
use email_manager::db::message_list::{folder_code, key_ranges, ListRow, KEY_ID_MASK};
use email_manager::db::models::{MailAttachmentRow, MailMessageRow};
use email_manager::db::schema::{
    mail_attachments, mail_labels, mail_message_labels, mail_messages,
};
use email_manager::db::DbConnection;
use email_manager::sandbox::{Sandbox, SandboxConfig};
use email_manager::startup::Application;
use email_manager::state::AppState;
use serde_json::{json, Value};

const JWT_SECRET: &str = "bench-nocobase-app-key-0123456789";
const ENCRYPTION_KEY: &str = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="; // 32 bytes
const ADMIN: i64 = 1;
const SYNC_USER: i64 = 2;
const LIST_USER: i64 = 3;
const GOOGLE_CLIENT_ID: &str = "sandbox-google-client.apps.googleusercontent.com";
const GOOGLE_CLIENT_SECRET: &str = "GOCSPX-sandbox-google-secret";
const MICROSOFT_CLIENT_ID: &str = "00000000-0000-4000-8000-00000000a11c";
const MICROSOFT_CLIENT_SECRET: &str = "sandbox~microsoft~secret";
/// Rows per INSERT statement of the bare bulk insert (33 columns: under SQLite's 32,766 binds).
const BULK_ROWS: usize = 500;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

// ---- the service under test ----

struct Bench {
    address: String,
    sandbox: Sandbox,
    client: reqwest::Client,
    state: web::Data<AppState>,
    database_url: String,
    handle: ServerHandle,
    /// One session token per user, as a browser keeps its sign-in: the sidecar confirms a
    /// token's role with the host once and then from its cache.
    tokens: std::sync::Mutex<std::collections::HashMap<i64, String>>,
    _dir: tempfile::TempDir,
}

/// A direct connection, set up as the service's pool sets up its own.
fn connect(url: &str) -> Res<DbConnection> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut c = SqliteConnection::establish(path)?;
        c.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;",
        )?;
        Ok(DbConnection::Sqlite(c))
    } else {
        Ok(DbConnection::Pg(diesel::pg::PgConnection::establish(url)?))
    }
}

/// BENCH_KEEP_DIR=1 leaves the databases behind for a look at their query plans.
fn keep() -> bool {
    std::env::var("BENCH_KEEP_DIR").is_ok_and(|v| v == "1")
}

impl Bench {
    async fn spawn() -> Res<Bench> {
        let sandbox = Sandbox::start(
            SandboxConfig {
                jwt_secret: JWT_SECRET.as_bytes().to_vec(),
                ..SandboxConfig::default()
            },
            TcpListener::bind("127.0.0.1:0")?,
        )?;
        let keep = keep();
        let dir = tempfile::Builder::new().disable_cleanup(keep).tempdir()?;
        if keep {
            eprintln!("bench databases kept in {}", dir.path().display());
        }
        let database_url = common::fresh_database(dir.path(), "service")?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let env: Vec<(String, String)> = vec![
            (
                "EMAIL_MANAGER__SERVER__BIND",
                address.trim_start_matches("http://").to_string(),
            ),
            ("EMAIL_MANAGER__SERVER__WORKERS", "2".into()),
            ("EMAIL_MANAGER__HOST__PUBLIC_URL", address.clone()),
            ("EMAIL_MANAGER__HOST__API_URL", sandbox.host_api_url()),
            ("EMAIL_MANAGER__HOST__JWT_SECRET", JWT_SECRET.into()),
            ("EMAIL_MANAGER__DATABASE__URL", database_url.clone()),
            ("EMAIL_MANAGER__DATABASE__MAX_CONNECTIONS", "4".into()),
            // Runs are started by the bench, timed from start to end.
            ("EMAIL_MANAGER__SYNC__ENABLED", "false".into()),
            // Generated mail is spread over the last 25 days.
            ("EMAIL_MANAGER__SYNC__INITIAL_WINDOW_DAYS", "30".into()),
            (
                "EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY",
                ENCRYPTION_KEY.into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(sandbox.provider_env())
        .collect();
        let settings = Settings::load_from(None, env)?;
        let app = Application::build(settings, listener)?;
        let state = app.state();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        let bench = Bench {
            address,
            sandbox,
            client,
            state,
            database_url,
            handle,
            tokens: Default::default(),
            _dir: dir,
        };
        bench.configure_providers().await?;
        Ok(bench)
    }

    fn token(&self, user: i64) -> Res<String> {
        let mut tokens = self.tokens.lock().map_err(|e| e.to_string())?;
        if let Some(t) = tokens.get(&user) {
            return Ok(t.clone());
        }
        let t = email_manager::auth::sign_dev_token(JWT_SECRET.as_bytes(), user, 3600)?;
        tokens.insert(user, t.clone());
        Ok(t)
    }

    async fn call(
        &self,
        user: i64,
        name: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Res<Value> {
        let url = format!("{}/api/{name}", self.address);
        let req = match &body {
            Some(b) => self.client.post(url).json(b),
            None => self.client.get(url),
        };
        let resp = req
            .query(query)
            .bearer_auth(self.token(user)?)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(format!("{name}: {status} {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn configure_providers(&self) -> Res<()> {
        self.call(
            ADMIN,
            "mailSettings:update",
            &[],
            Some(json!({
                "google": {"clientId": GOOGLE_CLIENT_ID, "clientSecret": GOOGLE_CLIENT_SECRET, "enabled": true},
                "microsoft": {"clientId": MICROSOFT_CLIENT_ID, "clientSecret": MICROSOFT_CLIENT_SECRET, "enabled": true, "tenant": "common"},
            })),
        )
        .await?;
        Ok(())
    }

    /// Links `email` for `user` through the OAuth flow against the sandbox; the account id.
    async fn link(&self, user: i64, provider: &str, email: &str) -> Res<i64> {
        let body = self
            .call(
                user,
                "mailAccounts:authorize",
                &[],
                Some(json!({ "provider": provider })),
            )
            .await?;
        let consent = body["data"]["url"].as_str().ok_or("no consent url")?;
        let mut url = url::Url::parse(consent)?;
        let path = format!("{}/approve", url.path());
        url.set_path(&path);
        url.query_pairs_mut().append_pair("account", email);
        let resp = self.client.get(url).send().await?;
        let back = resp
            .headers()
            .get("location")
            .ok_or("no redirect from consent")?
            .to_str()?
            .to_string();
        let resp = self.client.get(&back).send().await?;
        if !resp.status().is_success() {
            return Err(format!("callback: {}", resp.status()).into());
        }
        let accounts = self.call(user, "mailAccounts:list", &[], None).await?;
        accounts["data"]
            .as_array()
            .and_then(|list| list.iter().find(|a| a["email"] == email))
            .and_then(|a| a["id"].as_i64())
            .ok_or_else(|| "linked account not listed".into())
    }

    /// Appends `count` generated messages to a sandbox mailbox (within the last 25 days).
    async fn generate(&self, email: &str, count: usize, seed: u64) -> Res<()> {
        // In slices: the answer lists every id, and one lock hold per slice keeps it responsive.
        let mut left = count;
        let mut part = 0;
        while left > 0 {
            let n = left.min(10_000);
            let resp = self
                .client
                .post(format!(
                    "{}/__sandbox/mailboxes/{email}/generate",
                    self.sandbox.base_url
                ))
                .json(&json!({"count": n, "seed": seed * 1000 + part, "days": 25}))
                .timeout(Duration::from_secs(600))
                .send()
                .await?;
            if !resp.status().is_success() {
                return Err(format!("generate: {}", resp.status()).into());
            }
            left -= n;
            part += 1;
        }
        Ok(())
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.sandbox.stop().await;
    }
}

// ---- sync against the bare bulk insert ----

/// A stored message, id included, for the bare insert.
#[derive(Insertable)]
#[diesel(table_name = mail_messages)]
#[diesel(treat_none_as_default_value = false)]
struct FullMessage {
    id: i64,
    account_id: i64,
    user_id: i64,
    provider_message_id: String,
    thread_id: String,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    references_header: Option<String>,
    from_address: String,
    from_name: String,
    to_json: String,
    cc_json: String,
    bcc_json: String,
    reply_to_json: String,
    subject: String,
    snippet: String,
    date: i64,
    folder: String,
    provider_labels: String,
    unread: bool,
    starred: bool,
    todo: bool,
    draft: bool,
    has_attachments: bool,
    size: i64,
    text_body: Option<String>,
    html_body: Option<String>,
    search_text: String,
    sync_gen: i64,
    created_at: i64,
    updated_at: i64,
    todo_due_at: Option<i64>,
}

impl From<MailMessageRow> for FullMessage {
    fn from(m: MailMessageRow) -> Self {
        FullMessage {
            id: m.id,
            account_id: m.account_id,
            user_id: m.user_id,
            provider_message_id: m.provider_message_id,
            thread_id: m.thread_id,
            message_id: m.message_id,
            in_reply_to: m.in_reply_to,
            references_header: m.references_header,
            from_address: m.from_address,
            from_name: m.from_name,
            to_json: m.to_json,
            cc_json: m.cc_json,
            bcc_json: m.bcc_json,
            reply_to_json: m.reply_to_json,
            subject: m.subject,
            snippet: m.snippet,
            date: m.date,
            folder: m.folder,
            provider_labels: m.provider_labels,
            unread: m.unread,
            starred: m.starred,
            todo: m.todo,
            draft: m.draft,
            has_attachments: m.has_attachments,
            size: m.size,
            text_body: m.text_body,
            html_body: m.html_body,
            search_text: m.search_text,
            sync_gen: m.sync_gen,
            created_at: m.created_at,
            updated_at: m.updated_at,
            todo_due_at: m.todo_due_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = mail_attachments)]
#[diesel(treat_none_as_default_value = false)]
struct FullAttachment {
    id: i64,
    message_id: i64,
    user_id: i64,
    part_index: i32,
    filename: String,
    content_type: String,
    size: i64,
    content_id: Option<String>,
    inline: bool,
}

impl From<MailAttachmentRow> for FullAttachment {
    fn from(a: MailAttachmentRow) -> Self {
        FullAttachment {
            id: a.id,
            message_id: a.message_id,
            user_id: a.user_id,
            part_index: a.part_index,
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            content_id: a.content_id,
            inline: a.inline,
        }
    }
}

#[derive(Insertable, Queryable)]
#[diesel(table_name = mail_message_labels)]
struct MessageLabel {
    message_id: i64,
    label_id: i64,
    user_id: i64,
    created_at: i64,
}

#[derive(Insertable, Queryable)]
#[diesel(table_name = mail_labels)]
#[diesel(treat_none_as_default_value = false)]
struct Label {
    id: i64,
    user_id: i64,
    name: String,
    name_key: String,
    color: Option<String>,
    sync_error: Option<String>,
    sync_error_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// What one account's sync stored.
struct Stored {
    messages: Vec<FullMessage>,
    attachments: Vec<FullAttachment>,
    labels: Vec<Label>,
    message_labels: Vec<MessageLabel>,
}

fn read_stored(conn: &mut DbConnection, account_id: i64) -> Res<Stored> {
    let messages: Vec<MailMessageRow> = mail_messages::table
        .filter(mail_messages::account_id.eq(account_id))
        .order(mail_messages::id)
        .select(MailMessageRow::as_select())
        .load(conn)?;
    let attachments: Vec<MailAttachmentRow> = mail_attachments::table
        .inner_join(mail_messages::table.on(mail_messages::id.eq(mail_attachments::message_id)))
        .filter(mail_messages::account_id.eq(account_id))
        .order(mail_attachments::id)
        .select(MailAttachmentRow::as_select())
        .load(conn)?;
    let labels: Vec<Label> = mail_labels::table.order(mail_labels::id).load(conn)?;
    let message_labels: Vec<MessageLabel> = mail_message_labels::table
        .inner_join(mail_messages::table.on(mail_messages::id.eq(mail_message_labels::message_id)))
        .filter(mail_messages::account_id.eq(account_id))
        .select((
            mail_message_labels::message_id,
            mail_message_labels::label_id,
            mail_message_labels::user_id,
            mail_message_labels::created_at,
        ))
        .load(conn)?;
    // In search-key order (account, folder, id), as the sync inserts each page: the full-text
    // indexes then receive ascending keys (migration 12).
    let mut messages: Vec<FullMessage> = messages.into_iter().map(FullMessage::from).collect();
    messages.sort_by_key(|m| (folder_code(&m.folder), m.id));
    Ok(Stored {
        messages,
        attachments: attachments.into_iter().map(FullAttachment::from).collect(),
        labels,
        message_labels,
    })
}

/// The limit: the stored rows into a fresh database of the same schema, one transaction,
/// multi-row INSERTs of `BULK_ROWS`. Answers the seconds the transaction took. The database
/// first gets what the sync's held before it (`prior`, inserted untimed the same way): an
/// Outlook sync after the Gmail one writes into indexes of 50k messages, and so does its bare
/// insert.
fn bare_insert(url: &str, account_id: i64, stored: &Stored, prior: &[(i64, Stored)]) -> Res<f64> {
    let mut conn = connect(url)?;
    match &mut conn {
        DbConnection::Sqlite(c) => {
            c.run_pending_migrations(email_manager::db::SQLITE_MIGRATIONS)
                .map_err(|e| e.to_string())?;
        }
        DbConnection::Pg(c) => {
            c.run_pending_migrations(email_manager::db::POSTGRES_MIGRATIONS)
                .map_err(|e| e.to_string())?;
        }
    }
    // The account (foreign key of every row) and the label names: set-up, not timed.
    let account_sql = match &conn {
        DbConnection::Sqlite(_) => {
            "INSERT INTO mail_accounts (id, user_id, provider, provider_account_id, email, status, \
             access_token, scopes, created_at, updated_at) \
             VALUES (?1, 2, 'google', 'bench' || ?1, 'bench@example.test', 'active', X'', '', 0, 0)"
        }
        DbConnection::Pg(_) => {
            "INSERT INTO mail_accounts (id, user_id, provider, provider_account_id, email, status, \
             access_token, scopes, created_at, updated_at) \
             VALUES ($1, 2, 'google', 'bench' || $1, 'bench@example.test', 'active', ''::bytea, '', 0, 0)"
        }
    };
    macro_rules! bulk {
        ($c:expr, $stored:expr) => {{
            let (c, stored): (_, &Stored) = ($c, $stored);
            let start = Instant::now();
            c.transaction::<_, diesel::result::Error, _>(|c| {
                for chunk in stored.messages.chunks(BULK_ROWS) {
                    diesel::insert_into(mail_messages::table)
                        .values(chunk)
                        .execute(c)?;
                }
                for chunk in stored.attachments.chunks(BULK_ROWS) {
                    diesel::insert_into(mail_attachments::table)
                        .values(chunk)
                        .execute(c)?;
                }
                for chunk in stored.message_labels.chunks(BULK_ROWS) {
                    diesel::insert_into(mail_message_labels::table)
                        .values(chunk)
                        .execute(c)?;
                }
                Ok(())
            })?;
            start.elapsed().as_secs_f64()
        }};
    }
    // The user's labels (read after the last sync: all of them), set-up as well.
    for chunk in stored.labels.chunks(BULK_ROWS) {
        let insert = diesel::insert_into(mail_labels::table).values(chunk);
        match &mut conn {
            DbConnection::Sqlite(c) => insert.execute(c)?,
            DbConnection::Pg(c) => insert.execute(c)?,
        };
    }
    // An account row, then its rows in one timed transaction.
    let mut load = |id: i64, rows: &Stored| -> Res<f64> {
        diesel::sql_query(account_sql)
            .bind::<BigInt, _>(id)
            .execute(&mut conn)?;
        Ok(match &mut conn {
            DbConnection::Sqlite(c) => bulk!(c, rows),
            DbConnection::Pg(c) => bulk!(c, rows),
        })
    };
    for (id, rows) in prior {
        load(*id, rows)?;
    }
    let secs = load(account_id, stored)?;
    let n: i64 = mail_messages::table
        .filter(mail_messages::account_id.eq(account_id))
        .count()
        .get_result(&mut conn)?;
    if n as usize != stored.messages.len() {
        return Err(format!("bare insert stored {n} of {}", stored.messages.len()).into());
    }
    Ok(secs)
}

struct SyncFigures {
    account_id: i64,
    provider: &'static str,
    messages: usize,
    sync_secs: f64,
    bare_secs: f64,
    /// The same listing read from the provider and parsed, nothing written: what the provider
    /// side (sandbox, HTTP, MIME parsing) costs on this machine.
    fetch_secs: f64,
}

/// Lists the whole mailbox again through the provider adapter (pages and MIME downloads as
/// sync makes them) and parses every message as sync does, without writing anything.
async fn fetch_and_parse_only(bench: &Bench, provider: &str, account_id: i64) -> Res<(f64, usize)> {
    use email_manager::providers::Change;
    let adapter = bench
        .state
        .registry
        .get(provider)
        .map_err(|e| e.message.clone())?;
    let token = email_manager::sync::tokens::access_token(
        &bench.state,
        adapter.as_ref(),
        account_id,
        false,
    )
    .await
    .map_err(|e| e.to_string())?;
    let since = Some(chrono::Utc::now().timestamp_millis() - 30 * 86_400_000);
    let start = Instant::now();
    let mut cursor: Option<String> = None;
    let mut parsed = 0;
    loop {
        let page = adapter
            .sync_page(&token, cursor.as_deref(), since)
            .await
            .map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        let mut missing = Vec::new();
        for change in &page.changes {
            if let Change::Present { state, raw } = change {
                match raw {
                    Some(raw) => rows.push(email_manager::sync::new_message(
                        account_id, SYNC_USER, 1, 0, state, raw,
                    )),
                    None => missing.push(state),
                }
            }
        }
        // Downloads as sync makes them: the adapter's batches, as many in flight as it allows.
        let fetched = email_manager::sync::download_mime(
            &bench.state.settings,
            adapter.as_ref(),
            &token,
            &missing,
            |raws| async move {
                Ok(raws
                    .iter()
                    .map(|(state, raw)| {
                        email_manager::sync::new_message(account_id, SYNC_USER, 1, 0, state, raw)
                    })
                    .collect())
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        rows.extend(fetched);
        parsed += rows.len();
        cursor = Some(page.cursor);
        if page.caught_up || page.full_listing_done {
            break;
        }
    }
    Ok((start.elapsed().as_secs_f64(), parsed))
}

/// Syncs a generated mailbox of `count` into the bench's database, where the accounts `prior`
/// were synced before, and times the bare insert of the same rows beside the same prior rows.
async fn bench_sync(
    bench: &Bench,
    provider: &'static str,
    email: &str,
    count: usize,
    prior: &[i64],
) -> Res<SyncFigures> {
    bench.generate(email, count, 7).await?;
    let account_id = bench.link(SYNC_USER, provider, email).await?;
    let start = Instant::now();
    let run = email_manager::sync::run(&bench.state, account_id, false)
        .await
        .map_err(|e| e.to_string())?;
    let sync_secs = start.elapsed().as_secs_f64();
    if let Some((kind, message)) = &run.error {
        return Err(format!("sync failed ({kind}): {message}").into());
    }
    let url = bench.database_url.clone();
    let prior = prior.to_vec();
    let (stored, prior) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let mut conn = connect(&url).map_err(|e| e.to_string())?;
        let stored = read_stored(&mut conn, account_id).map_err(|e| e.to_string())?;
        let prior = prior
            .into_iter()
            .map(|id| Ok((id, read_stored(&mut conn, id).map_err(|e| e.to_string())?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok((stored, prior))
    })
    .await??;
    if stored.messages.len() != count {
        return Err(format!("synced {} of {count} messages", stored.messages.len()).into());
    }
    let (fetch_secs, parsed) = fetch_and_parse_only(bench, provider, account_id).await?;
    if parsed != count {
        eprintln!("note: the fetch-only pass parsed {parsed} of {count} messages");
    }
    let bare_url = common::fresh_database(bench._dir.path(), &format!("bare_{provider}"))?;
    let bare_secs = tokio::task::spawn_blocking(move || {
        bare_insert(&bare_url, account_id, &stored, &prior).map_err(|e| e.to_string())
    })
    .await??;
    Ok(SyncFigures {
        account_id,
        provider,
        messages: count,
        sync_secs,
        bare_secs,
        fetch_secs,
    })
}

// ---- list latency against the bare query ----

struct Case {
    name: &'static str,
    query: Vec<(&'static str, String)>,
    /// The bare SQL for the same page: SQLite text, PostgreSQL text (`?`/`$n` for the user id).
    bare: (String, String),
}

const COLS: &str = "m.id, m.account_id, m.provider_message_id, m.thread_id, m.message_id, \
    m.in_reply_to, m.references_header, m.from_address, m.from_name, m.to_json, m.cc_json, \
    m.bcc_json, m.reply_to_json, m.subject, m.snippet, m.date, m.folder, m.provider_labels, \
    m.unread, m.starred, m.todo, m.draft, m.has_attachments, m.size, m.todo_due_at";
const PAGE: i64 = 20;

fn cases(now_ms: i64, account_id: i64) -> Vec<Case> {
    let day = 86_400_000;
    let (from, to) = (now_ms - 12 * day, now_ms - 10 * day);
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let both = |where_: &str, order: &str| {
        let s = format!(
            "SELECT {COLS} FROM mail_messages m WHERE m.user_id = ?1 AND {where_} ORDER BY {order} LIMIT {PAGE}"
        );
        (s.clone(), s.replace("?1", "$1"))
    };
    let newest = "m.date DESC, m.id DESC";
    // A thread's latest message, each backend's way (as db::message_list writes it).
    let thread_latest = |outer: &str, inner: &str| {
        let (sqlite, _) = both(
            &format!(
                "{outer} AND NOT EXISTS (SELECT 1 FROM mail_messages n WHERE \
                 n.user_id = m.user_id AND n.account_id = m.account_id AND n.thread_id = m.thread_id \
                 AND {inner} AND (n.date > m.date OR (n.date = m.date AND n.id > m.id)))"
            ),
            newest,
        );
        let (_, pg) = both(
            &format!(
                "{outer} AND m.id = (SELECT n.id FROM mail_messages n WHERE \
                 n.user_id = m.user_id AND n.account_id = m.account_id AND n.thread_id = m.thread_id \
                 AND {inner} ORDER BY n.date DESC, n.id DESC LIMIT 1)"
            ),
            newest,
        );
        (sqlite, pg)
    };
    let pg_doc = "m.search_tsv";
    // SQLite's word index is keyed by account, folder and id (migration 12): the account's key
    // range, or its folder's, is the scope.
    let search = |word: &str, folder: Option<&str>| {
        let scope = folder.map(|f| vec![f.to_string()]);
        let (from, to) = key_ranges(&[account_id], scope.as_deref())
            .first()
            .copied()
            .unwrap_or_default();
        let folder_sql = folder
            .map(|f| format!(" AND m.folder = '{f}'"))
            .unwrap_or_default();
        (
            format!(
                "SELECT {COLS} FROM mail_messages m WHERE m.user_id = ?1{folder_sql} AND +m.id IN \
                 (SELECT rowid & {mask} FROM mail_messages_fts WHERE mail_messages_fts MATCH '\"{word}\"*' \
                 AND rowid >= {from} AND rowid < {to}) ORDER BY {newest} LIMIT {PAGE}",
                mask = KEY_ID_MASK
            ),
            format!(
                "SELECT {COLS} FROM mail_messages m WHERE m.user_id = $1{folder_sql} AND {pg_doc} @@ \
                 to_tsquery('simple'::regconfig, '{word}:*') ORDER BY {newest} LIMIT {PAGE}"
            ),
        )
    };
    let f = |v: Value| ("filter", v.to_string());
    vec![
        Case {
            name: "inbox page",
            query: vec![f(json!({"folder": "inbox"}))],
            bare: both("m.folder = 'inbox'", newest),
        },
        Case {
            name: "inbox page 10",
            query: vec![f(json!({"folder": "inbox"})), ("page", "10".into())],
            bare: {
                let (s, p) = both("m.folder = 'inbox'", newest);
                (format!("{s} OFFSET 180"), format!("{p} OFFSET 180"))
            },
        },
        Case {
            name: "unread",
            query: vec![f(json!({"unread": true}))],
            bare: both("m.unread", newest),
        },
        Case {
            name: "inbox unread",
            query: vec![f(json!({"folder": "inbox", "unread": true}))],
            bare: both("m.folder = 'inbox' AND m.unread", newest),
        },
        Case {
            name: "starred",
            query: vec![f(json!({"starred": true}))],
            bare: both("m.starred", newest),
        },
        Case {
            name: "date range (2 days)",
            query: vec![f(
                json!({"date": {"$gte": iso(from), "$lt": iso(to)}}),
            )],
            bare: both(&format!("m.date >= {from} AND m.date < {to}"), newest),
        },
        Case {
            name: "from $includes",
            query: vec![f(json!({"from": {"$includes": "hopper"}}))],
            bare: both(
                "(LOWER(m.from_address) LIKE '%hopper%' OR LOWER(m.from_name) LIKE '%hopper%')",
                newest,
            ),
        },
        Case {
            name: "to $includes",
            query: vec![f(json!({"to": {"$includes": "hopper"}}))],
            // PostgreSQL compares the stored lower-cased copy (migration 15).
            bare: (
                both("LOWER(m.to_json) LIKE '%hopper%'", newest).0,
                both("m.to_lower LIKE '%hopper%'", newest).1,
            ),
        },
        Case {
            name: "search (common word)",
            query: vec![("search", "invoice".into())],
            bare: search("invoice", None),
        },
        Case {
            name: "search (common word), exactCount",
            query: vec![("search", "invoice".into()), ("exactCount", "true".into())],
            bare: search("invoice", None),
        },
        Case {
            name: "search in inbox",
            query: vec![f(json!({"folder": "inbox"})), ("search", "report".into())],
            bare: search("report", Some("inbox")),
        },
        Case {
            name: "search (two words)",
            query: vec![("search", "build failed".into())],
            bare: {
                let (s, p) = search("build", None);
                (
                    s.replace("\"build\"*", "\"build\"* AND \"failed\"*"),
                    p.replace("build:*", "build:* & failed:*"),
                )
            },
        },
        Case {
            name: "groupBy=thread inbox",
            query: vec![f(json!({"folder": "inbox"})), ("groupBy", "thread".into())],
            bare: thread_latest("m.folder = 'inbox'", "n.folder = 'inbox'"),
        },
        Case {
            name: "groupBy=thread all",
            query: vec![("groupBy", "thread".into())],
            bare: thread_latest("1 = 1", "1 = 1"),
        },
        Case {
            name: "sort=subject",
            query: vec![("sort", "subject".into())],
            bare: both("1 = 1", "LOWER(m.subject) ASC, m.id ASC"),
        },
        Case {
            name: "inbox sort=-from",
            query: vec![f(json!({"folder": "inbox"})), ("sort", "-from".into())],
            bare: both(
                "m.folder = 'inbox'",
                "LOWER(CASE WHEN m.from_name <> '' THEN m.from_name ELSE m.from_address END) DESC, m.id DESC",
            ),
        },
    ]
}

struct Latency {
    n: usize,
    p50: f64,
    p99: f64,
}

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    Latency {
        n: ms.len(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Runs `one` (answering how long it took, in ms) after a warm-up until `iterations` runs or
/// `budget` is spent, at least 30 runs.
async fn measure<F, Fut>(iterations: usize, budget: Duration, mut one: F) -> Res<Latency>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Res<f64>>,
{
    for _ in 0..10 {
        one().await?;
    }
    let start = Instant::now();
    let mut ms = Vec::with_capacity(iterations);
    while ms.len() < iterations && (ms.len() < 30 || start.elapsed() < budget) {
        ms.push(one().await?);
    }
    Ok(latency(ms))
}

struct ListFigures {
    name: &'static str,
    rows: usize,
    /// `meta.count`, `~` first when it is an estimate (`countExact: false`).
    count: String,
    api: Latency,
    bare: Latency,
}

/// Copies the messages (and attachments) of account `from` into account `to` (of `LIST_USER`)
/// round after round, each copy with its own provider and thread ids, until `to` holds `want`.
/// `db::message_list::folder_code` in SQL: copies go in by folder, as the sync inserts a page.
const FOLDER_CODE: &str =
    "CASE folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 \
    WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END";

fn fill_list_account(c: &mut DbConnection, from: i64, to: i64, want: i64) -> Res<i64> {
    let cols = "thread_id, message_id, in_reply_to, references_header, from_address, from_name,         to_json, cc_json, bcc_json, reply_to_json, subject, snippet, date, folder, provider_labels,         unread, starred, todo, draft, has_attachments, size, text_body, html_body, search_text,         sync_gen, created_at, updated_at, todo_due_at";
    let (one, cat) = match c {
        DbConnection::Sqlite(_) => ("?1", "||"),
        DbConnection::Pg(_) => ("$1", "||"),
    };
    let mut have: i64 = mail_messages::table
        .filter(mail_messages::account_id.eq(to))
        .count()
        .get_result(c)?;
    let mut round = 0;
    while have < want {
        round += 1;
        let take = want - have;
        let tag = format!("'~{round}'");
        let sql = format!(
            "INSERT INTO mail_messages (account_id, user_id, provider_message_id, {cols})              SELECT {to}, {LIST_USER}, provider_message_id {cat} {tag}, thread_id {cat} {tag},              {rest} FROM (SELECT * FROM mail_messages WHERE account_id = {one} ORDER BY id LIMIT {take}) src              ORDER BY {FOLDER_CODE}, id",
            rest = cols
                .split(", ")
                .skip(1)
                .collect::<Vec<_>>()
                .join(", ")
        );
        c.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query(&sql).bind::<BigInt, _>(from).execute(c)?;
            diesel::sql_query(format!(
                "INSERT INTO mail_attachments (message_id, user_id, part_index, filename,                  content_type, size, content_id, inline)                  SELECT n.id, {LIST_USER}, a.part_index, a.filename, a.content_type, a.size,                  a.content_id, a.inline FROM mail_attachments a                  JOIN mail_messages o ON o.id = a.message_id                  JOIN mail_messages n ON n.account_id = {to}                  AND n.provider_message_id = o.provider_message_id {cat} {tag}                  WHERE o.account_id = {one}"
            ))
            .bind::<BigInt, _>(from)
            .execute(c)?;
            Ok(())
        })?;
        have = mail_messages::table
            .filter(mail_messages::account_id.eq(to))
            .count()
            .get_result(c)?;
    }
    Ok(have)
}

async fn bench_list(bench: &Bench, messages: usize, synced: Option<i64>) -> Res<Vec<ListFigures>> {
    let iterations = env_num("BENCH_ITERATIONS", 1000);
    let budget = Duration::from_secs(env_num("BENCH_CASE_SECS", 8) as u64);
    // The list account: the messages a sync stored, copied (INSERT … SELECT, so every trigger
    // and index does its work as for synced rows) until it holds `messages`. Syncing 100k from
    // the sandbox takes many minutes (its listing sorts the whole mailbox for every page).
    let source = match synced {
        Some(id) => id,
        None => {
            let n = messages.min(50_000);
            bench.generate("alice@gmail.test", n, 7).await?;
            let id = bench.link(SYNC_USER, "google", "alice@gmail.test").await?;
            let run = email_manager::sync::run(&bench.state, id, false)
                .await
                .map_err(|e| e.to_string())?;
            if let Some((kind, message)) = &run.error {
                return Err(format!("sync failed ({kind}): {message}").into());
            }
            id
        }
    };
    let account_id = bench.link(LIST_USER, "google", "bob@gmail.test").await?;
    let start = Instant::now();
    let url = bench.database_url.clone();
    let filled = tokio::task::spawn_blocking(move || -> Result<i64, String> {
        let mut c = connect(&url).map_err(|e| e.to_string())?;
        fill_list_account(&mut c, source, account_id, messages as i64).map_err(|e| e.to_string())
    })
    .await??;
    eprintln!(
        "list account: {filled} messages copied from the synced account in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    // Statistics for the planners, as a deployment would have them after its first analyse.
    // PostgreSQL is vacuumed too: autovacuum does so within a minute of a fill this size (its
    // insert threshold), and would otherwise start in the middle of the measurements; it sets
    // the visibility map index-only counts rely on and empties the GIN pending lists.
    let url = bench.database_url.clone();
    let conn = tokio::task::spawn_blocking(move || -> Result<DbConnection, String> {
        let mut c = connect(&url).map_err(|e| e.to_string())?;
        let sql = match &c {
            DbConnection::Sqlite(_) => "ANALYZE; PRAGMA optimize;",
            DbConnection::Pg(_) => "VACUUM ANALYZE;",
        };
        c.batch_execute(sql).map_err(|e| e.to_string())?;
        Ok(c)
    })
    .await??;
    let conn = std::sync::Arc::new(std::sync::Mutex::new(conn));

    let mut out = Vec::new();
    // BENCH_CASES=a,b measures only the cases whose names contain one of them.
    let only: Vec<String> = std::env::var("BENCH_CASES")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    for case in cases(chrono::Utc::now().timestamp_millis(), account_id)
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| c.name.contains(o.as_str())))
    {
        let mut query = case.query.clone();
        query.push(("pageSize", PAGE.to_string()));
        let first = bench
            .call(LIST_USER, "mailMessages:list", &query, None)
            .await?;
        let rows = first["data"].as_array().map_or(0, |a| a.len());
        let count = format!(
            "{}{}",
            if first["meta"]["countExact"] == false {
                "~"
            } else {
                ""
            },
            first["meta"]["count"].as_i64().unwrap_or(-1)
        );
        let api = measure(iterations, budget, || {
            let query = query.clone();
            async move {
                let t = Instant::now();
                let body = bench
                    .call(LIST_USER, "mailMessages:list", &query, None)
                    .await?;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                if body["data"].as_array().map_or(0, |a| a.len()) != rows {
                    return Err("the page changed between runs".into());
                }
                Ok(ms)
            }
        })
        .await?;
        let (sqlite, pg) = case.bare.clone();
        let bare_rows = {
            let conn = conn.clone();
            let (sqlite, pg) = (sqlite.clone(), pg.clone());
            tokio::task::spawn_blocking(move || bare_page(&conn, &sqlite, &pg).map(|(n, _)| n))
                .await??
        };
        if bare_rows != rows {
            eprintln!(
                "note: {}: the bare query gives {bare_rows} rows, the API {rows}",
                case.name
            );
        }
        let conn2 = conn.clone();
        let bare = tokio::task::spawn_blocking(move || -> Result<Latency, String> {
            let mut ms = Vec::new();
            for _ in 0..10 {
                bare_page(&conn2, &sqlite, &pg)?;
            }
            let start = Instant::now();
            while ms.len() < iterations && (ms.len() < 30 || start.elapsed() < budget) {
                ms.push(bare_page(&conn2, &sqlite, &pg)?.1);
            }
            Ok(latency(ms))
        })
        .await??;
        eprintln!(
            "  {:<24} api p50 {:>8.2} p99 {:>8.2} | bare p50 {:>8.2} p99 {:>8.2} ms (n={})",
            case.name, api.p50, api.p99, bare.p50, bare.p99, api.n
        );
        out.push(ListFigures {
            name: case.name,
            rows,
            count,
            api,
            bare,
        });
    }
    Ok(out)
}

/// One bare page: rows and milliseconds.
fn bare_page(
    conn: &std::sync::Mutex<DbConnection>,
    sqlite: &str,
    pg: &str,
) -> Result<(usize, f64), String> {
    let mut conn = conn.lock().map_err(|e| e.to_string())?;
    let sql = match &*conn {
        DbConnection::Sqlite(_) => sqlite,
        DbConnection::Pg(_) => pg,
    };
    let t = Instant::now();
    let rows: Vec<ListRow> = diesel::sql_query(sql)
        .bind::<BigInt, _>(LIST_USER)
        .load(&mut *conn)
        .map_err(|e| format!("{e}: {sql}"))?;
    Ok((rows.len(), t.elapsed().as_secs_f64() * 1000.0))
}

#[derive(QueryableByName)]
#[allow(dead_code)]
struct Version {
    #[diesel(sql_type = Text)]
    v: String,
}

fn main() -> Res<()> {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: measure nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "benchmark: run it with `make bench` (cargo bench); nothing measured under cargo test"
        );
        return Ok(());
    }
    // `cargo bench` passes `--bench`; a filter argument picks parts ("sync", "list").
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |part: &str| args.is_empty() || args.iter().any(|a| part.contains(a.as_str()));
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let _cleanup = common::Cleanup { keep: keep() };
    actix_web::rt::System::new().block_on(async move {
        let bench = Bench::spawn().await?;
        let backend = if bench.database_url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        println!(
            "email-manager bench on {backend}, {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let mut sync = Vec::new();
        if wants("sync") {
            let n = env_num("BENCH_SYNC_MESSAGES", 50_000);
            eprintln!("sync: generating and syncing {n} Gmail messages…");
            let gmail = bench_sync(&bench, "google", "alice@gmail.test", n, &[]).await?;
            let gmail_account = gmail.account_id;
            sync.push(gmail);
            if std::env::var("BENCH_SYNC_GRAPH").is_ok_and(|v| v == "1") {
                eprintln!("sync: generating and syncing {n} Outlook messages…");
                sync.push(
                    bench_sync(&bench, "microsoft", "carol@contoso.test", n, &[gmail_account])
                        .await?,
                );
            }
        }
        let mut list = Vec::new();
        let list_n = env_num("BENCH_LIST_MESSAGES", 100_000);
        if wants("list") {
            eprintln!("list: filling an account of {list_n} messages…");
            let synced = sync.first().map(|s| s.account_id);
            list = bench_list(&bench, list_n, synced).await?;
        }
        bench.stop().await;

        if !sync.is_empty() {
            println!("\n## First sync ({backend})\n");
            println!("| provider | messages | sync s | sync msg/s | bare insert s | bare msg/s | ratio | fetch+parse only s |");
            println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            for s in &sync {
                println!(
                    "| {} | {} | {:.1} | {:.0} | {:.2} | {:.0} | {:.1}x | {:.1} |",
                    s.provider,
                    s.messages,
                    s.sync_secs,
                    s.messages as f64 / s.sync_secs,
                    s.bare_secs,
                    s.messages as f64 / s.bare_secs,
                    s.sync_secs / s.bare_secs,
                    s.fetch_secs
                );
            }
        }
        if !list.is_empty() {
            println!("\n## mailMessages:list at {list_n} messages ({backend}, page of {PAGE})\n");
            println!("| view | rows | count | API p50 ms | API p99 ms | bare p50 ms | bare p99 ms | n |");
            println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            for l in &list {
                println!(
                    "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                    l.name, l.rows, l.count, l.api.p50, l.api.p99, l.bare.p50, l.bare.p99, l.api.n
                );
            }
        }
        Ok(())
    })
}
