//! Provider sandbox: a local stand-in for Google OAuth + Gmail, Microsoft identity + Graph and the
//! NocoBase host, speaking the real paths, parameters and JSON (including the error bodies), so
//! the adapters can be tested offline without knowing they are not talking to the real services.
//!
//! Everything lives in one `Arc<Mutex<State>>`: the sandbox is a test tool, serves one worker and
//! small volumes, so a single lock keeps the behaviour easy to reason about. Each seeded mailbox
//! has a mail store (`store`) that the Gmail (`gmail`) and Graph (`graph`) endpoints serve and
//! the control endpoints (`mailboxes`) fill and change.

// Request parsers return the ready-made error response as their `Err`; the size is irrelevant for a
// test server and boxing every early return would only add noise.
#![allow(clippy::result_large_err)]

mod control;
mod generate;
mod gmail;
mod google;
mod graph;
mod host;
mod mailboxes;
mod microsoft;
mod mime;
mod outgoing;
mod pages;
mod quota;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use rand::Rng as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The NocoBase host stub verifies JWTs (HS256) with this.
    pub jwt_secret: Vec<u8>,
    pub google_client_id: String,
    pub google_client_secret: String,
    pub microsoft_client_id: String,
    pub microsoft_client_secret: String,
    pub access_token_ttl_secs: i64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            jwt_secret: b"sandbox-nocobase-jwt-secret-32by".to_vec(),
            google_client_id: "sandbox-google-client.apps.googleusercontent.com".into(),
            google_client_secret: "GOCSPX-sandbox-google-secret".into(),
            microsoft_client_id: "00000000-0000-4000-8000-00000000a11c".into(),
            microsoft_client_secret: "sandbox~microsoft~secret".into(),
            access_token_ttl_secs: 3599,
        }
    }
}

pub struct Sandbox {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    handle: ServerHandle,
    shared: web::Data<Shared>,
}

impl Sandbox {
    /// Serves on `listener` (binding is the caller's job, so tests can use port 0) and spawns the
    /// server on the current tokio runtime; returns at once. Outside a runtime: an error, not a panic.
    pub fn start(
        config: SandboxConfig,
        listener: std::net::TcpListener,
    ) -> std::io::Result<Sandbox> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let addr = listener.local_addr()?;
        let shared = web::Data::new(Shared::new(config));
        let app_shared = shared.clone();
        let server = HttpServer::new(move || {
            let shared = app_shared.clone();
            App::new()
                .app_data(shared.clone())
                // Gmail uploads go up to 35 MB; the default 256 kB would answer 413 too early.
                .app_data(web::PayloadConfig::new(40 << 20))
                .wrap(from_fn(intercept))
                // Mail data first: a request is matched against routes in order (a regex
                // each), and sync calls these tens of thousands of times.
                .configure(gmail::routes)
                .configure(graph::routes)
                .configure(google::routes)
                .configure(outgoing::routes)
                .configure(microsoft::routes)
                .configure(host::routes)
                .configure(control::routes)
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        .workers(1)
        .disable_signals()
        // Idle keep-alive connections from test clients must not hold `stop` for 30 s.
        .shutdown_timeout(1)
        .run();
        let handle = server.handle();
        runtime.spawn(server);
        Ok(Sandbox {
            base_url: format!("http://{addr}"),
            handle,
            shared,
        })
    }

    /// Fills every seeded mailbox with `count` generated messages (as `POST …/generate` does),
    /// seeded by the mailbox so a restart makes the same mail.
    pub fn generate_mail(&self, count: usize, days: u32) {
        let now = chrono::Utc::now().timestamp_millis();
        let mut state = self.shared.state();
        for (i, mailbox) in MAILBOXES.iter().enumerate() {
            let store = state.store(mailbox);
            // Only unknown folder names fail, and the generator creates its own.
            let _ = generate::generate(store, count, 1000 + i as u64, days, now);
        }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }

    pub fn google_auth_url(&self) -> String {
        format!("{}/google/o/oauth2/v2/auth", self.base_url)
    }
    pub fn google_token_url(&self) -> String {
        format!("{}/google/token", self.base_url)
    }
    pub fn google_revoke_url(&self) -> String {
        format!("{}/google/revoke", self.base_url)
    }
    pub fn google_userinfo_url(&self) -> String {
        format!("{}/google/v1/userinfo", self.base_url)
    }
    /// Gmail paths hang below this: `/gmail/v1/users/me/...`.
    pub fn gmail_api_base(&self) -> String {
        format!("{}/google", self.base_url)
    }
    /// Then `/{tenant}/oauth2/v2.0/authorize|token`.
    pub fn microsoft_authority(&self) -> String {
        format!("{}/microsoft", self.base_url)
    }
    pub fn graph_api_base(&self) -> String {
        format!("{}/microsoft/graph/v1.0", self.base_url)
    }
    /// The sidecar configuration (`EMAIL_MANAGER__…` variables) that points every provider
    /// endpoint at this sandbox, as the tests and benchmarks start the service.
    pub fn provider_env(&self) -> Vec<(String, String)> {
        [
            ("GOOGLE__AUTH_URL", self.google_auth_url()),
            ("GOOGLE__TOKEN_URL", self.google_token_url()),
            ("GOOGLE__REVOKE_URL", self.google_revoke_url()),
            ("GOOGLE__USERINFO_URL", self.google_userinfo_url()),
            ("GOOGLE__GMAIL_API_BASE", self.gmail_api_base()),
            ("MICROSOFT__AUTHORITY", self.microsoft_authority()),
            ("MICROSOFT__GRAPH_API_BASE", self.graph_api_base()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("EMAIL_MANAGER__PROVIDERS__{k}"), v))
        .collect()
    }
    /// Then `/api/roles:check`.
    pub fn host_api_url(&self) -> String {
        format!("{}/nocobase", self.base_url)
    }
}

// ---------------------------------------------------------------------------------------------
// Seeded identities

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Provider {
    Google,
    Microsoft,
}

pub(crate) struct Mailbox {
    pub provider: Provider,
    /// Google `sub` / Microsoft `oid`.
    pub id: &'static str,
    pub email: &'static str,
    pub given: &'static str,
    pub family: &'static str,
}

impl Mailbox {
    pub fn name(&self) -> String {
        format!("{} {}", self.given, self.family)
    }
}

pub(crate) const MS_TENANT_ID: &str = "7d1c5a2e-5f1b-4c3e-9a7d-2b1f0c9e8a11";

pub(crate) const MAILBOXES: &[Mailbox] = &[
    Mailbox {
        provider: Provider::Google,
        id: "109000000000000000001",
        email: "alice@gmail.test",
        given: "Alice",
        family: "Example",
    },
    Mailbox {
        provider: Provider::Google,
        id: "109000000000000000002",
        email: "bob@gmail.test",
        given: "Bob",
        family: "Example",
    },
    Mailbox {
        provider: Provider::Microsoft,
        id: "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        email: "carol@contoso.test",
        given: "Carol",
        family: "Contoso",
    },
    Mailbox {
        provider: Provider::Microsoft,
        id: "3f2504e0-4f89-41d3-9a0c-0305e82c3302",
        email: "dave@contoso.test",
        given: "Dave",
        family: "Contoso",
    },
];

pub(crate) fn mailbox(provider: Provider, email: &str) -> Option<&'static Mailbox> {
    MAILBOXES
        .iter()
        .find(|m| m.provider == provider && m.email.eq_ignore_ascii_case(email.trim()))
}

pub(crate) fn mailboxes(provider: Provider) -> impl Iterator<Item = &'static Mailbox> {
    MAILBOXES.iter().filter(move |m| m.provider == provider)
}

// ---------------------------------------------------------------------------------------------
// State

pub(crate) struct Shared {
    pub config: SandboxConfig,
    /// Signs the id_tokens. Random per sandbox: nobody should verify them against a real key.
    pub id_token_key: [u8; 32],
    state: Mutex<State>,
}

impl Shared {
    fn new(config: SandboxConfig) -> Self {
        Shared {
            config,
            id_token_key: rand::random(),
            state: Mutex::new(State::default()),
        }
    }

    /// A panicking handler must not wedge the sandbox for the rest of a test run.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Pkce {
    pub method: String,
    pub challenge: String,
}

#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub provider: Provider,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub pkce: Option<Pkce>,
    pub offline: bool,
    pub nonce: Option<String>,
    pub email: &'static str,
    pub expires_at: i64,
    pub used: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Access,
    Refresh,
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub value: String,
    pub provider: Provider,
    pub email: &'static str,
    pub kind: Kind,
    pub client_id: String,
    pub scope: String,
    pub nonce: Option<String>,
    /// All tokens descending from one consent share a grant: revoking one revokes them all.
    pub grant: u64,
    pub issued_at: i64,
    /// Access tokens only; refresh tokens live until revoked.
    pub expires_at: Option<i64>,
    /// Set by `/__sandbox/tokens/expire`.
    pub forced_expired: bool,
    pub revoked: bool,
}

impl Token {
    pub fn expired(&self, now: i64) -> bool {
        self.forced_expired || self.expires_at.is_some_and(|e| e <= now)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Fault {
    pub method: Option<String>,
    pub path_prefix: String,
    /// None: the real answer, only late (`delay_ms`).
    pub status: Option<u16>,
    pub remaining: u64,
    pub retry_after: Option<String>,
    pub body: Option<Value>,
    /// Wait this long before answering (slow responses, client timeouts).
    pub delay_ms: Option<u64>,
    /// Let the request through to the real handler, then answer `status` anyway: the provider
    /// did the work but the client cannot know (a 500 after a send was accepted).
    pub after: bool,
}

#[derive(Default)]
pub(crate) struct State {
    pub codes: HashMap<String, AuthCode>,
    pub tokens: Vec<Token>,
    pub faults: Vec<Fault>,
    pub requests: Vec<Value>,
    /// How many of the oldest records were dropped to bound memory in long `make demo` runs.
    pub requests_dropped: usize,
    pub registrations: Vec<Value>,
    pub revoked_jtis: HashSet<String>,
    /// Every accepted send, oldest first (`GET /__sandbox/outbox`).
    pub outbox: Vec<Value>,
    /// Graph attachment upload sessions, by their URL's token.
    pub upload_sessions: HashMap<String, outgoing::UploadSession>,
    /// Mail of the seeded mailboxes, created on first use.
    mail: HashMap<&'static str, store::Store>,
    /// Graph requests being answered now, per mailbox, and the most seen at once.
    pub graph_in_flight: HashMap<&'static str, usize>,
    pub graph_max_in_flight: HashMap<&'static str, usize>,
    next_grant: u64,
    /// Sending quotas and rate limits per mailbox (`/__sandbox/sending-limits`).
    pub sending_limits: HashMap<&'static str, quota::Limits>,
}

/// What a successful token request hands out.
pub(crate) struct Issued {
    pub access: String,
    pub refresh: Option<String>,
}

const MAX_REQUESTS: usize = 10_000;

impl State {
    /// The mail store of a seeded mailbox.
    pub fn store(&mut self, mailbox: &'static Mailbox) -> &mut store::Store {
        self.mail.entry(mailbox.email).or_insert_with(|| {
            let tag = MAILBOXES
                .iter()
                .position(|m| m.email == mailbox.email)
                .unwrap_or_default() as u8;
            store::Store::new(mailbox, tag)
        })
    }

    /// The injected fault for a call, if one matches it (one of its `count` is used up).
    pub(crate) fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let fault = self.faults.iter_mut().find(|f| {
            f.remaining > 0
                && path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m == "*" || m.eq_ignore_ascii_case(method))
        });
        let fault = fault.map(|f| {
            f.remaining -= 1;
            f.clone()
        });
        self.faults.retain(|f| f.remaining > 0);
        fault
    }

    /// Records a call made inside a batch request as if it had come alone (marked
    /// `"batch": true`), so tests see each call either way. Its headers are the batch's, in the
    /// batch's own record: copying them into each call's was the sandbox's largest cost in a
    /// bench sync (a few µs a call, under the state lock, on Graph's one-batch-at-a-time path).
    pub(crate) fn record_batched(&mut self, method: &str, path: &str, query: &str) -> usize {
        self.record(json!({
            "method": method,
            "path": path,
            "query": pairs_object(query.as_bytes()),
            "form": {},
            "headers": {},
            "batch": true,
        }))
    }

    /// Sets the answered status of a recorded request.
    pub(crate) fn record_mut_status(&mut self, seq: usize, status: u16) {
        if let Some(r) = self.record_mut(seq) {
            r["status"] = json!(status);
        }
    }

    /// Appends a request record and returns its sequence number (stable across trimming).
    fn record(&mut self, record: Value) -> usize {
        if self.requests.len() >= MAX_REQUESTS {
            let drop = MAX_REQUESTS / 10;
            self.requests.drain(..drop);
            self.requests_dropped += drop;
        }
        self.requests.push(record);
        self.requests_dropped + self.requests.len() - 1
    }

    fn record_mut(&mut self, seq: usize) -> Option<&mut Value> {
        let index = seq.checked_sub(self.requests_dropped)?;
        self.requests.get_mut(index)
    }

    /// Stores a fresh authorization code, forgetting codes long past use (an hour after expiry,
    /// so a late redemption still gets the "expired" answer rather than "unknown").
    pub fn add_code(&mut self, code: String, rec: AuthCode) {
        let horizon = now() - 3600;
        self.codes.retain(|_, c| c.expires_at > horizon);
        self.codes.insert(code, rec);
    }

    pub fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    /// Mints an access token (and a refresh token when asked) inside `grant`.
    pub fn issue(&mut self, from: &Token, with_refresh: bool, ttl: i64) -> Issued {
        let now = now();
        let (access_prefix, refresh_prefix) = match from.provider {
            Provider::Google => ("ya29.sandbox-", "1//sandbox-"),
            Provider::Microsoft => ("EwBsandbox-", "0.ASandbox-"),
        };
        let access = format!("{access_prefix}{}", random_string(48));
        self.tokens.push(Token {
            value: access.clone(),
            kind: Kind::Access,
            issued_at: now,
            expires_at: Some(now + ttl),
            forced_expired: false,
            revoked: false,
            ..from.clone()
        });
        let refresh = with_refresh.then(|| {
            let refresh = format!("{refresh_prefix}{}", random_string(64));
            self.tokens.push(Token {
                value: refresh.clone(),
                kind: Kind::Refresh,
                issued_at: now,
                expires_at: None,
                forced_expired: false,
                revoked: false,
                ..from.clone()
            });
            refresh
        });
        Issued { access, refresh }
    }

    pub fn find(&self, provider: Provider, kind: Kind, value: &str) -> Option<&Token> {
        self.tokens
            .iter()
            .find(|t| t.provider == provider && t.kind == kind && t.value == value)
    }

    /// The mailbox behind a bearer access token, if the token is still good.
    pub fn access_owner(
        &self,
        provider: Provider,
        bearer: Option<&str>,
    ) -> Option<&'static Mailbox> {
        let token = self.find(provider, Kind::Access, bearer?)?;
        if token.revoked || token.expired(now()) {
            return None;
        }
        mailbox(provider, token.email)
    }

    pub fn revoke_grant(&mut self, grant: u64) {
        self.tokens
            .iter_mut()
            .filter(|t| t.grant == grant)
            .for_each(|t| t.revoked = true);
    }
}

// ---------------------------------------------------------------------------------------------
// Request recording and fault injection

/// Records every provider/host request (tests assert on PKCE, scopes, client auth style) and
/// answers with an injected fault instead of the real handler when one matches.
async fn intercept(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.path().starts_with("/__sandbox") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let Some(shared) = req.app_data::<web::Data<Shared>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // Read the body once for the record, then put it back for the handler.
    let body = match req.extract::<web::Bytes>().await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    req.set_payload(Payload::from(body.clone()));

    let record = record_of(req.request(), &body);
    let (seq, fault, slot) = {
        let mut state = shared.state();
        let seq = state.record(record);
        // Graph's own limit comes before any injected fault.
        // A `$batch` takes its slots itself, for the requests it holds.
        let mut slot = None;
        if req.path().starts_with("/microsoft/graph/") && req.path() != GRAPH_BATCH_PATH {
            if let Some(m) = state.access_owner(Provider::Microsoft, bearer(req.request())) {
                let Some(taken) = state.graph_slot(&shared, m.email) else {
                    drop(state);
                    let res = graph_throttled();
                    shared.state().record_mut_status(seq, res.status().as_u16());
                    return Ok(req.into_response(res));
                };
                slot = Some(taken);
            }
        }
        let fault = state.take_fault(req.method().as_str(), req.path());
        (seq, fault, slot)
    };

    if let Some(ms) = fault.as_ref().and_then(|f| f.delay_ms) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let res = match fault.as_ref().and_then(|f| f.status.map(|s| (f, s))) {
        Some((fault, status)) if fault.after => {
            // The real work happens; the answer is lost.
            let path = req.path().to_string();
            let done = next.call(req).await?;
            let response = control::fault_response(&path, fault, status);
            done.into_response(response)
        }
        Some((fault, status)) => {
            let response = control::fault_response(req.path(), fault, status);
            req.into_response(response)
        }
        None => next.call(req).await?.map_into_boxed_body(),
    };
    drop(slot);
    shared.state().record_mut_status(seq, res.status().as_u16());
    Ok(res)
}

/// One call of a batch request, as if it had come alone: recorded (`"batch": true`, with the
/// status it was answered), answered `refused` when given (Graph: no mailbox slot free), else
/// delayed or failed by an injected fault matching it, else answered by `answer`.
pub(crate) async fn batched_call(
    data: &Shared,
    (method, path, query): (&str, &str, &str),
    refused: Option<HttpResponse>,
    answer: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    let (seq, fault) = {
        let mut state = data.state();
        let seq = state.record_batched(method, path, query);
        let fault = match refused {
            None => state.take_fault(method, path),
            Some(_) => None,
        };
        (seq, fault)
    };
    let res = match refused {
        Some(res) => res,
        None => {
            if let Some(ms) = fault.as_ref().and_then(|f| f.delay_ms) {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            match fault.as_ref().and_then(|f| f.status.map(|s| (f, s))) {
                Some((fault, status)) => control::fault_response(path, fault, status),
                None => answer(),
            }
        }
    };
    data.state().record_mut_status(seq, res.status().as_u16());
    res
}

/// Graph answers at most this many concurrent requests per mailbox; more get 429.
pub(crate) const GRAPH_MAILBOX_CONCURRENCY: usize = 4;

/// Graph's JSON batching endpoint.
const GRAPH_BATCH_PATH: &str = "/microsoft/graph/v1.0/$batch";

impl State {
    /// Takes one of the mailbox's Graph request slots, or `None` when all are in use.
    pub(crate) fn graph_slot(
        &mut self,
        shared: &web::Data<Shared>,
        email: &'static str,
    ) -> Option<InFlight> {
        let n = self.graph_in_flight.entry(email).or_default();
        if *n >= GRAPH_MAILBOX_CONCURRENCY {
            return None;
        }
        *n += 1;
        let now = *n;
        let max = self.graph_max_in_flight.entry(email).or_default();
        *max = (*max).max(now);
        Some(InFlight {
            shared: shared.clone(),
            email,
        })
    }
}

/// Holds one of a mailbox's Graph request slots until the answer is made (or the request is
/// dropped).
pub(crate) struct InFlight {
    shared: web::Data<Shared>,
    email: &'static str,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = self.shared.state().graph_in_flight.get_mut(self.email) {
            *n = n.saturating_sub(1);
        }
    }
}

pub(crate) fn graph_throttled() -> HttpResponse {
    let mut res = json_response(
        429,
        microsoft::graph_error(
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        ),
    );
    res.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static("1"),
    );
    res
}

fn record_of(req: &HttpRequest, body: &[u8]) -> Value {
    let headers: Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                json!(String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut record = json!({
        "method": req.method().as_str(),
        "path": req.path(),
        "query": pairs_object(req.query_string().as_bytes()),
        "form": if content_type.starts_with("application/x-www-form-urlencoded") { pairs_object(body) } else { json!({}) },
        "headers": headers,
    });
    if content_type.starts_with("application/json") {
        record["json"] = serde_json::from_slice(body).unwrap_or(Value::Null);
    }
    record
}

fn pairs_object(bytes: &[u8]) -> Value {
    Value::Object(
        form(bytes)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain")
        .body(format!("Not Found: {} {}", req.method(), req.path()))
}

// ---------------------------------------------------------------------------------------------
// Small helpers shared by the providers

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A random (v4) GUID, as Microsoft uses for trace ids and session state.
pub(crate) fn guid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses `application/x-www-form-urlencoded` (body or query). Lossy, never fails: a malformed
/// body then simply misses parameters and gets the provider's "missing parameter" answer.
pub(crate) fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

pub(crate) fn query(req: &HttpRequest) -> HashMap<String, String> {
    form(req.query_string().as_bytes())
}

pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = header(req, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1: each part form-url-encoded, which is
/// what the oauth2 crate sends) or else from the body.
pub(crate) fn client_credentials(
    req: &HttpRequest,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    if let Some(value) = header(req, "authorization") {
        if let Some((scheme, b64)) = value.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok();
                let text = decoded.and_then(|d| String::from_utf8(d).ok());
                if let Some((id, secret)) = text.as_deref().and_then(|t| t.split_once(':')) {
                    return (Some(percent_decode(id)), Some(percent_decode(secret)));
                }
                return (None, None);
            }
        }
    }
    let get = |k: &str| form.get(k).filter(|v| !v.is_empty()).cloned();
    (get("client_id"), get("client_secret"))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PkceError {
    Missing,
    Mismatch,
}

/// RFC 7636: S256 compares base64url(sha256(verifier)); plain compares as is.
pub(crate) fn check_pkce(pkce: &Option<Pkce>, verifier: Option<&String>) -> Result<(), PkceError> {
    let Some(pkce) = pkce else { return Ok(()) };
    let verifier = verifier
        .filter(|v| !v.is_empty())
        .ok_or(PkceError::Missing)?;
    let computed = if pkce.method == "plain" {
        verifier.clone()
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    };
    if computed == pkce.challenge {
        Ok(())
    } else {
        Err(PkceError::Mismatch)
    }
}

/// Reads the PKCE parameters of an authorization request; `Err` names what is wrong.
pub(crate) fn pkce_from(q: &HashMap<String, String>) -> Result<Option<Pkce>, String> {
    let Some(challenge) = q.get("code_challenge").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let method = q
        .get("code_challenge_method")
        .map(String::as_str)
        .unwrap_or("plain");
    if method != "S256" && method != "plain" {
        return Err(format!("Invalid code_challenge_method: {method}"));
    }
    Ok(Some(Pkce {
        method: method.into(),
        challenge: challenge.clone(),
    }))
}

/// `redirect_uri` with extra query parameters appended (keeping its own query).
pub(crate) fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in params {
            pairs.append_pair(k, v);
        }
    }
    Some(url.into())
}

pub(crate) fn found(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", location))
        .finish()
}

pub(crate) fn json_response(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .json(body)
}

/// Token endpoint answers must not be cached (RFC 6749 §5.1).
pub(crate) fn token_response(status: u16, body: Value) -> HttpResponse {
    let mut res = json_response(status, body);
    let headers = res.headers_mut();
    headers.insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        actix_web::http::header::PRAGMA,
        actix_web::http::header::HeaderValue::from_static("no-cache"),
    );
    res
}

pub(crate) fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_whitespace().any(|s| s == wanted)
}

/// Signs an id_token with the sandbox's random key (HS256).
pub(crate) fn sign_id_token(shared: &Shared, claims: &Value) -> Option<String> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("sandbox".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(&shared.id_token_key),
    )
    .ok()
}
