//! Configuration: built-in defaults ← optional TOML file ← `EMAIL_MANAGER__SECTION__KEY`.
//!
//! Loading never panics; every problem becomes one [`ConfigError`] line naming the key, so an
//! operator sees exactly what to fix.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use url::Url;

use crate::crypto::{SecretBytes, KEY_LEN};

pub const ENV_PREFIX: &str = "EMAIL_MANAGER";
pub const CONFIG_PATH_ENV: &str = "EMAIL_MANAGER_CONFIG";
pub const OAUTH_CALLBACK_PATH: &str = "/admin/settings/mail/oauth2";

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// The validated settings the service runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub host: HostSettings,
    pub database: DatabaseSettings,
    pub security: SecuritySettings,
    pub providers: ProviderSettings,
    pub sync: SyncSettings,
    pub dev: DevSettings,
    pub mail: MailSettings,
}

/// Composing, sending and the read side's limits.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Where `mailAttachments:upload` keeps files until they are sent or expire.
    pub upload_dir: PathBuf,
    /// Largest upload; a larger one answers 413 before its body is read to the end.
    pub upload_max_bytes: u64,
    /// How long an upload stays usable.
    pub upload_ttl_secs: u64,
    /// Largest attachment `mailAttachments:download` serves; a larger one answers 413.
    pub max_attachment_bytes: u64,
    /// Delay before the first retry of a change the provider did not take; doubles per attempt
    /// up to an hour.
    pub outbox_retry_secs: u64,
    /// Attempts after which a change the provider keeps failing is given up and undone here.
    pub outbox_max_attempts: u32,
    /// Mirror labels to Gmail labels / Outlook categories, and take provider labels in by sync.
    pub mirror_labels: bool,
    /// How long a draft must stay unchanged before its provider copy is updated, so a burst of
    /// auto-saves makes one provider call.
    pub draft_mirror_delay_ms: u64,
    /// Mass mailing (issue 5): most recipients in one `mailMassMessages:create`.
    pub mass_max_recipients: usize,
    /// Default messages per minute per account (`mailGeneralSettings.massRatePerMinute`
    /// overrides it).
    pub mass_rate_per_minute: u64,
    /// Largest `mailMassMessages:create` body (a recipient list is larger than other requests).
    pub mass_max_body_bytes: usize,
    /// Run the mass-mailing worker in this process.
    pub mass_worker: bool,
    /// How long a process holds a recipient it is sending without renewing the claim.
    pub mass_lease_secs: u64,
    /// Sends in flight at once per account in one process.
    pub mass_concurrency: usize,
    /// Tries per recipient before it is reported failed.
    pub mass_max_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Run the background scheduler (off: only `mailAccounts:sync` / `resync` start a sync).
    pub enabled: bool,
    pub interval_secs: u64,
    /// How far back the first sync reaches when the account was linked without `syncFrom`.
    pub initial_window_days: u64,
    /// How long one process holds an account's sync lease without renewing it.
    pub lease_secs: u64,
    /// Concurrent message downloads per mailbox (Graph allows 4 concurrent requests per mailbox).
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    pub max_json_bytes: usize,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct HostSettings {
    pub public_url: Url,
    pub api_url: Url,
    pub jwt_secret: SecretBytes,
    pub admin_roles: Vec<String>,
    pub role_cache_secs: u64,
    pub request_timeout_secs: u64,
    pub register_url: Option<Url>,
    pub register_token: Option<SecretBytes>,
    /// Where the host can reach this sidecar (used in the manifest); defaults to `http://{bind}`.
    pub sidecar_url: Url,
}

impl HostSettings {
    pub fn redirect_uri(&self) -> String {
        join_url(&self.public_url, OAUTH_CALLBACK_PATH)
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub encryption_key: SecretBytes,
    pub oauth_state_ttl_secs: i64,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub google: GoogleSettings,
    pub microsoft: MicrosoftSettings,
    pub request_timeout_secs: u64,
    /// Retries of one provider call on 429/5xx/timeouts before the call fails.
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub struct GoogleSettings {
    pub auth_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    pub userinfo_url: Url,
    pub gmail_api_base: Url,
    pub scopes: Vec<String>,
    /// A to-do is Gmail's star (STARRED), and the star a to-do.
    pub todo_as_star: bool,
}

#[derive(Debug, Clone)]
pub struct MicrosoftSettings {
    pub authority: Url,
    pub graph_api_base: Url,
    pub scopes: Vec<String>,
    /// A to-do is Outlook's follow-up flag (with its due date), and the flag a to-do.
    pub todo_as_flag: bool,
    /// Origins of the pre-authenticated URLs Graph hands out for attachment upload sessions
    /// (Outlook's own host, not Graph's); the HTTP client talks to these too.
    pub upload_origins: Vec<Url>,
}

#[derive(Debug, Clone)]
pub struct DevSettings {
    /// Development mode: allows a generated encryption key and the demo sign-in. Never in production.
    pub enabled: bool,
}

/// Joins a base URL and an absolute path without doubling or dropping the slash.
pub fn join_url(base: &Url, path: &str) -> String {
    format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

// ---- raw layer, as the `config` crate sees it ----

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Raw {
    server: RawServer,
    host: RawHost,
    database: RawDatabase,
    security: RawSecurity,
    providers: RawProviders,
    sync: RawSync,
    dev: RawDev,
    mail: RawMail,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawMail {
    upload_dir: Option<PathBuf>,
    upload_max_bytes: Option<u64>,
    upload_ttl_secs: Option<u64>,
    max_attachment_bytes: Option<u64>,
    outbox_retry_secs: Option<u64>,
    outbox_max_attempts: Option<u32>,
    mirror_labels: Option<bool>,
    draft_mirror_delay_ms: Option<u64>,
    mass_max_recipients: Option<usize>,
    mass_rate_per_minute: Option<u64>,
    mass_max_body_bytes: Option<usize>,
    mass_worker: Option<bool>,
    mass_lease_secs: Option<u64>,
    mass_concurrency: Option<usize>,
    mass_max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawSync {
    enabled: Option<bool>,
    interval_secs: Option<u64>,
    initial_window_days: Option<u64>,
    lease_secs: Option<u64>,
    concurrency: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawServer {
    bind: Option<String>,
    workers: Option<usize>,
    max_json_bytes: Option<usize>,
    shutdown_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawHost {
    public_url: Option<String>,
    api_url: Option<String>,
    jwt_secret: Option<String>,
    jwt_secret_file: Option<PathBuf>,
    admin_roles: Option<StringList>,
    role_cache_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    register_url: Option<String>,
    register_token: Option<String>,
    register_token_file: Option<PathBuf>,
    sidecar_url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawDatabase {
    url: Option<String>,
    max_connections: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawSecurity {
    encryption_key: Option<String>,
    encryption_key_file: Option<PathBuf>,
    oauth_state_ttl_secs: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawProviders {
    google: RawGoogle,
    microsoft: RawMicrosoft,
    request_timeout_secs: Option<u64>,
    retries: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawGoogle {
    auth_url: Option<String>,
    token_url: Option<String>,
    revoke_url: Option<String>,
    userinfo_url: Option<String>,
    gmail_api_base: Option<String>,
    scopes: Option<StringList>,
    todo_as_star: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawMicrosoft {
    authority: Option<String>,
    graph_api_base: Option<String>,
    scopes: Option<StringList>,
    todo_as_flag: Option<bool>,
    upload_origins: Option<StringList>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RawDev {
    enabled: Option<bool>,
}

/// A list given either as a TOML array or, from the environment, as a comma/space separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringList {
    List(Vec<String>),
    Text(String),
}

impl StringList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringList::List(v) => v
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            StringList::Text(s) => s
                .split(|c: char| c == ',' || c.is_whitespace())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

pub const DEFAULT_GOOGLE_SCOPES: &[&str] = &["https://mail.google.com/", "openid", "email"];
/// Where Graph's attachment upload sessions point (`uploadUrl`).
pub const DEFAULT_MICROSOFT_UPLOAD_ORIGINS: &[&str] = &[
    "https://outlook.office.com",
    "https://outlook.office365.com",
];

pub const DEFAULT_MICROSOFT_SCOPES: &[&str] = &[
    "offline_access",
    "openid",
    "email",
    "User.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "MailboxSettings.Read",
    // Outlook master categories (labels) are mailbox settings: creating one needs ReadWrite.
    "MailboxSettings.ReadWrite",
];

impl Settings {
    /// Loads from an optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, env)
    }

    /// Loads from an optional file and the given environment (tests pass their own).
    pub fn load_from(
        file: Option<&Path>,
        env: Vec<(String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let env_map: config::Map<String, String> = env.into_iter().collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(env_map)),
        );
        let cfg = builder
            .build()
            .map_err(|e| ConfigError::new(&config_error_key(&e), e.to_string()))?;
        let raw: Raw = cfg
            .try_deserialize()
            .map_err(|e| ConfigError::new(&config_error_key(&e), e.to_string()))?;
        Self::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Settings, ConfigError> {
        let dev = DevSettings {
            enabled: raw.dev.enabled.unwrap_or(false),
        };

        let bind = raw.server.bind.unwrap_or_else(|| "127.0.0.1:13050".into());
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::new(
                "server.bind",
                format!("expected host:port such as 127.0.0.1:13050, got {bind:?}"),
            ));
        }
        let server = ServerSettings {
            workers: positive("server.workers", raw.server.workers.unwrap_or(2))?,
            max_json_bytes: positive(
                "server.max_json_bytes",
                raw.server.max_json_bytes.unwrap_or(1 << 20),
            )?,
            shutdown_timeout_secs: raw.server.shutdown_timeout_secs.unwrap_or(30),
            bind: bind.clone(),
        };

        let public_url = match raw.host.public_url {
            Some(s) => http_url("host.public_url", &s)?,
            None => {
                return Err(ConfigError::new(
                    "host.public_url",
                    "missing: the NocoBase origin users see, e.g. https://nocobase.example.com",
                ))
            }
        };
        let api_url = match raw.host.api_url {
            Some(s) => http_url("host.api_url", &s)?,
            None => public_url.clone(),
        };
        let jwt_secret = match (raw.host.jwt_secret, raw.host.jwt_secret_file) {
            (Some(s), _) if !s.is_empty() => SecretBytes::new(s.into_bytes()),
            (_, Some(path)) => SecretBytes::new(read_secret_file("host.jwt_secret_file", &path)?),
            _ => {
                return Err(ConfigError::new(
                    "host.jwt_secret",
                    "missing: set host.jwt_secret (NocoBase APP_KEY) or host.jwt_secret_file (storage/apps/main/jwt_secret.dat)",
                ))
            }
        };
        let admin_roles = raw
            .host
            .admin_roles
            .map(StringList::into_vec)
            .unwrap_or_else(|| vec!["root".into(), "admin".into()]);
        let register_url = raw
            .host
            .register_url
            .filter(|s| !s.is_empty())
            .map(|s| http_url("host.register_url", &s))
            .transpose()?;
        let register_token = match (raw.host.register_token, raw.host.register_token_file) {
            (Some(s), _) if !s.is_empty() => Some(SecretBytes::new(s.into_bytes())),
            (_, Some(path)) => Some(SecretBytes::new(read_secret_file(
                "host.register_token_file",
                &path,
            )?)),
            _ => None,
        };
        let sidecar_url = match raw.host.sidecar_url {
            Some(s) => http_url("host.sidecar_url", &s)?,
            None => http_url("server.bind", &format!("http://{bind}"))?,
        };
        let host = HostSettings {
            public_url,
            api_url,
            jwt_secret,
            admin_roles,
            role_cache_secs: raw.host.role_cache_secs.unwrap_or(60).min(60),
            request_timeout_secs: positive(
                "host.request_timeout_secs",
                raw.host.request_timeout_secs.unwrap_or(5),
            )?,
            register_url,
            register_token,
            sidecar_url,
        };

        let db_url = raw
            .database
            .url
            .unwrap_or_else(|| "sqlite://data/email-manager.db".into());
        if !(db_url.starts_with("sqlite:")
            || db_url.starts_with("postgres://")
            || db_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "database.url",
                format!(
                    "expected sqlite://PATH or postgres://…, got {:?}",
                    redact_url(&db_url)
                ),
            ));
        }
        let database = DatabaseSettings {
            url: db_url,
            max_connections: positive(
                "database.max_connections",
                raw.database.max_connections.unwrap_or(8),
            )?,
        };

        let encryption_key = match (raw.security.encryption_key, raw.security.encryption_key_file) {
            (Some(s), _) if !s.is_empty() => parse_key("security.encryption_key", s.trim().as_bytes())?,
            (_, Some(path)) => parse_key("security.encryption_key_file", &read_secret_file("security.encryption_key_file", &path)?)?,
            _ if dev.enabled => SecretBytes::new(b"email-manager-dev-key-not-secret".to_vec()),
            _ => {
                return Err(ConfigError::new(
                    "security.encryption_key",
                    "missing: set security.encryption_key (base64 of 32 random bytes, e.g. `head -c32 /dev/urandom | base64`) or security.encryption_key_file",
                ))
            }
        };
        let security = SecuritySettings {
            encryption_key,
            oauth_state_ttl_secs: raw.security.oauth_state_ttl_secs.unwrap_or(600),
        };
        if security.oauth_state_ttl_secs <= 0 || security.oauth_state_ttl_secs > 3600 {
            return Err(ConfigError::new(
                "security.oauth_state_ttl_secs",
                "expected 1..=3600 seconds",
            ));
        }

        let g = raw.providers.google;
        let google = GoogleSettings {
            auth_url: http_url(
                "providers.google.auth_url",
                g.auth_url
                    .as_deref()
                    .unwrap_or("https://accounts.google.com/o/oauth2/v2/auth"),
            )?,
            token_url: http_url(
                "providers.google.token_url",
                g.token_url
                    .as_deref()
                    .unwrap_or("https://oauth2.googleapis.com/token"),
            )?,
            revoke_url: http_url(
                "providers.google.revoke_url",
                g.revoke_url
                    .as_deref()
                    .unwrap_or("https://oauth2.googleapis.com/revoke"),
            )?,
            userinfo_url: http_url(
                "providers.google.userinfo_url",
                g.userinfo_url
                    .as_deref()
                    .unwrap_or("https://openidconnect.googleapis.com/v1/userinfo"),
            )?,
            gmail_api_base: http_url(
                "providers.google.gmail_api_base",
                g.gmail_api_base
                    .as_deref()
                    .unwrap_or("https://gmail.googleapis.com"),
            )?,
            scopes: scopes("providers.google.scopes", g.scopes, DEFAULT_GOOGLE_SCOPES)?,
            todo_as_star: g.todo_as_star.unwrap_or(false),
        };
        let m = raw.providers.microsoft;
        let microsoft = MicrosoftSettings {
            authority: http_url(
                "providers.microsoft.authority",
                m.authority
                    .as_deref()
                    .unwrap_or("https://login.microsoftonline.com"),
            )?,
            graph_api_base: http_url(
                "providers.microsoft.graph_api_base",
                m.graph_api_base
                    .as_deref()
                    .unwrap_or("https://graph.microsoft.com/v1.0"),
            )?,
            scopes: scopes(
                "providers.microsoft.scopes",
                m.scopes,
                DEFAULT_MICROSOFT_SCOPES,
            )?,
            todo_as_flag: m.todo_as_flag.unwrap_or(true),
            upload_origins: m
                .upload_origins
                .map(StringList::into_vec)
                .unwrap_or_else(|| {
                    DEFAULT_MICROSOFT_UPLOAD_ORIGINS
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                })
                .iter()
                .map(|u| http_url("providers.microsoft.upload_origins", u))
                .collect::<Result<_, _>>()?,
        };
        let providers = ProviderSettings {
            google,
            microsoft,
            request_timeout_secs: positive(
                "providers.request_timeout_secs",
                raw.providers.request_timeout_secs.unwrap_or(30),
            )?,
            retries: raw.providers.retries.unwrap_or(4),
        };
        let sync = SyncSettings {
            enabled: raw.sync.enabled.unwrap_or(true),
            interval_secs: positive("sync.interval_secs", raw.sync.interval_secs.unwrap_or(300))?,
            initial_window_days: positive(
                "sync.initial_window_days",
                raw.sync.initial_window_days.unwrap_or(30),
            )?,
            lease_secs: positive("sync.lease_secs", raw.sync.lease_secs.unwrap_or(60))?,
            concurrency: positive("sync.concurrency", raw.sync.concurrency.unwrap_or(4))?,
        };

        let mail = MailSettings {
            upload_dir: match raw.mail.upload_dir {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => default_upload_dir(&database.url),
            },
            upload_max_bytes: positive(
                "mail.upload_max_bytes",
                raw.mail
                    .upload_max_bytes
                    .unwrap_or(DEFAULT_UPLOAD_MAX_BYTES),
            )?,
            upload_ttl_secs: positive(
                "mail.upload_ttl_secs",
                raw.mail.upload_ttl_secs.unwrap_or(24 * 3600),
            )?,
            max_attachment_bytes: positive(
                "mail.max_attachment_bytes",
                raw.mail.max_attachment_bytes.unwrap_or(25 << 20),
            )?,
            outbox_retry_secs: positive(
                "mail.outbox_retry_secs",
                raw.mail.outbox_retry_secs.unwrap_or(30),
            )?,
            outbox_max_attempts: positive(
                "mail.outbox_max_attempts",
                raw.mail.outbox_max_attempts.unwrap_or(12),
            )?,
            mirror_labels: raw.mail.mirror_labels.unwrap_or(true),
            draft_mirror_delay_ms: raw.mail.draft_mirror_delay_ms.unwrap_or(2000),
            mass_max_recipients: positive(
                "mail.mass_max_recipients",
                raw.mail.mass_max_recipients.unwrap_or(50_000),
            )?,
            mass_rate_per_minute: bounded(
                "mail.mass_rate_per_minute",
                raw.mail
                    .mass_rate_per_minute
                    .unwrap_or(DEFAULT_MASS_RATE_PER_MINUTE),
                1,
                MAX_MASS_RATE_PER_MINUTE,
            )?,
            mass_max_body_bytes: positive(
                "mail.mass_max_body_bytes",
                raw.mail.mass_max_body_bytes.unwrap_or(64 << 20),
            )?,
            mass_worker: raw.mail.mass_worker.unwrap_or(true),
            mass_lease_secs: positive(
                "mail.mass_lease_secs",
                raw.mail.mass_lease_secs.unwrap_or(30),
            )?,
            mass_concurrency: positive(
                "mail.mass_concurrency",
                raw.mail.mass_concurrency.unwrap_or(4),
            )?,
            mass_max_attempts: positive(
                "mail.mass_max_attempts",
                raw.mail.mass_max_attempts.unwrap_or(5),
            )?,
        };

        Ok(Settings {
            server,
            host,
            database,
            security,
            providers,
            sync,
            dev,
            mail,
        })
    }
}

/// 20 messages a minute per mailbox: under Exchange Online's 30 a minute and far under Gmail's
/// per-user API quota (15,000 units a minute, 100 per send); 28,800 a day is still above both
/// providers' daily limits, which the quota pause handles.
pub const DEFAULT_MASS_RATE_PER_MINUTE: u64 = 20;
/// The highest rate an admin can set (the benchmark uses it as "no limit").
pub const MAX_MASS_RATE_PER_MINUTE: u64 = 1_000_000;

fn bounded(key: &str, v: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::new(
            key,
            format!("must be between {min} and {max}, got {v}"),
        ));
    }
    Ok(v)
}

/// 25 MiB: base64 makes it about 34 MB on the wire, inside Gmail's 35 MB message limit.
pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 25 * 1024 * 1024;

/// `uploads/` next to the SQLite file, or `./data/uploads` on PostgreSQL.
fn default_upload_dir(database_url: &str) -> PathBuf {
    if let Ok((crate::db::Backend::Sqlite, file)) = crate::db::parse_url(database_url) {
        if let Some(dir) = Path::new(&file).parent() {
            return dir.join("uploads");
        }
    }
    PathBuf::from("data/uploads")
}

/// `config` reports errors as prose; pull the key out when it names one so the line stays useful.
fn config_error_key(e: &config::ConfigError) -> String {
    let text = e.to_string();
    if let Some(start) = text.find("for key `") {
        let rest = &text[start + 9..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_string();
        }
    }
    "configuration".to_string()
}

fn positive<T: PartialEq + Default>(key: &str, v: T) -> Result<T, ConfigError> {
    if v == T::default() {
        Err(ConfigError::new(key, "expected a positive number"))
    } else {
        Ok(v)
    }
}

fn http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|e| {
        ConfigError::new(key, format!("expected an http(s) URL, got {value:?} ({e})"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            key,
            format!("expected an http(s) URL, got {value:?}"),
        ));
    }
    Ok(url)
}

fn scopes(
    key: &str,
    given: Option<StringList>,
    default: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let list = given
        .map(StringList::into_vec)
        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
    if list.is_empty() {
        return Err(ConfigError::new(key, "expected at least one scope"));
    }
    Ok(list)
}

fn read_secret_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?;
    if bytes.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(bytes)
}

/// A key is base64 text of 32 bytes, or (from a file) the 32 raw bytes themselves.
fn parse_key(key: &str, bytes: &[u8]) -> Result<SecretBytes, ConfigError> {
    // base64 of 32 bytes is 44 characters, so exactly 32 bytes can only be the raw key.
    if bytes.len() == KEY_LEN {
        return Ok(SecretBytes::new(bytes.to_vec()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ConfigError::new(key, "expected base64 text of 32 bytes"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| {
            ConfigError::new(
                key,
                "expected base64 of 32 random bytes (head -c32 /dev/urandom | base64)",
            )
        })?;
    if decoded.len() != KEY_LEN {
        return Err(ConfigError::new(
            key,
            format!(
                "expected 32 bytes once base64-decoded, got {}",
                decoded.len()
            ),
        ));
    }
    Ok(SecretBytes::new(decoded))
}

/// Hides the password of a database URL before it reaches a message.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 ASCII bytes

    fn minimal() -> Vec<(String, String)> {
        env(&[
            (
                "EMAIL_MANAGER__HOST__PUBLIC_URL",
                "https://nocobase.example.com",
            ),
            ("EMAIL_MANAGER__HOST__JWT_SECRET", "app-key"),
            ("EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY", KEY),
        ])
    }

    #[test]
    fn defaults_fill_everything_else() {
        let s = Settings::load_from(None, minimal()).expect("valid");
        assert_eq!(s.server.bind, "127.0.0.1:13050");
        assert_eq!(s.host.api_url.as_str(), "https://nocobase.example.com/");
        assert_eq!(
            s.host.redirect_uri(),
            "https://nocobase.example.com/admin/settings/mail/oauth2"
        );
        assert_eq!(s.host.admin_roles, vec!["root", "admin"]);
        assert_eq!(s.database.url, "sqlite://data/email-manager.db");
        assert_eq!(s.mail.max_attachment_bytes, 25 * 1024 * 1024);
        assert_eq!(
            s.providers.google.token_url.as_str(),
            "https://oauth2.googleapis.com/token"
        );
        assert_eq!(
            s.providers.microsoft.authority.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert!(s
            .providers
            .microsoft
            .scopes
            .contains(&"Mail.Send".to_string()));
    }

    #[test]
    fn environment_lists_and_nested_keys() {
        let mut e = minimal();
        e.extend(env(&[
            ("EMAIL_MANAGER__HOST__ADMIN_ROLES", "root, ops"),
            (
                "EMAIL_MANAGER__PROVIDERS__GOOGLE__TOKEN_URL",
                "http://127.0.0.1:9/token",
            ),
        ]));
        let s = Settings::load_from(None, e).expect("valid");
        assert_eq!(s.host.admin_roles, vec!["root", "ops"]);
        assert_eq!(
            s.providers.google.token_url.as_str(),
            "http://127.0.0.1:9/token"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("EMAIL_MANAGER__SERVER__BIND", "nonsense", "server.bind"),
            (
                "EMAIL_MANAGER__HOST__PUBLIC_URL",
                "ftp://x",
                "host.public_url",
            ),
            (
                "EMAIL_MANAGER__SECURITY__ENCRYPTION_KEY",
                "c2hvcnQ=",
                "security.encryption_key",
            ),
            ("EMAIL_MANAGER__DATABASE__URL", "mysql://x", "database.url"),
            (
                "EMAIL_MANAGER__PROVIDERS__MICROSOFT__AUTHORITY",
                "not a url",
                "providers.microsoft.authority",
            ),
        ];
        for (k, v, key) in cases {
            let mut e: Vec<_> = minimal()
                .into_iter()
                .filter(|(name, _)| name != k)
                .collect();
            e.push((k.to_string(), v.to_string()));
            let err = Settings::load_from(None, e).expect_err(key);
            assert_eq!(err.key, *key, "{err}");
        }
    }

    #[test]
    fn mail_upload_keys() {
        let s = Settings::load_from(None, minimal()).expect("valid");
        assert_eq!(s.mail.upload_dir, PathBuf::from("data/uploads"));
        assert_eq!(s.mail.upload_max_bytes, DEFAULT_UPLOAD_MAX_BYTES);
        assert_eq!(s.mail.upload_ttl_secs, 86_400);
        let mut e = minimal();
        e.extend(env(&[
            (
                "EMAIL_MANAGER__DATABASE__URL",
                "sqlite:///var/lib/em/db.sqlite",
            ),
            ("EMAIL_MANAGER__MAIL__UPLOAD_MAX_BYTES", "1000"),
        ]));
        let s = Settings::load_from(None, e).expect("valid");
        assert_eq!(s.mail.upload_dir, PathBuf::from("/var/lib/em/uploads"));
        assert_eq!(s.mail.upload_max_bytes, 1000);
        let mut e = minimal();
        e.extend(env(&[
            ("EMAIL_MANAGER__DATABASE__URL", "postgres://u@h/db"),
            ("EMAIL_MANAGER__MAIL__UPLOAD_DIR", "/srv/uploads"),
        ]));
        let s = Settings::load_from(None, e).expect("valid");
        assert_eq!(s.mail.upload_dir, PathBuf::from("/srv/uploads"));
        let mut e = minimal();
        e.push(("EMAIL_MANAGER__MAIL__UPLOAD_TTL_SECS".into(), "0".into()));
        assert_eq!(
            Settings::load_from(None, e).expect_err("zero").key,
            "mail.upload_ttl_secs"
        );
    }

    #[test]
    fn missing_secrets_are_refused_outside_dev() {
        let e: Vec<_> = minimal()
            .into_iter()
            .filter(|(k, _)| !k.contains("ENCRYPTION"))
            .collect();
        assert_eq!(
            Settings::load_from(None, e.clone())
                .expect_err("no key")
                .key,
            "security.encryption_key"
        );
        let mut dev = e;
        dev.push(("EMAIL_MANAGER__DEV__ENABLED".into(), "true".into()));
        assert!(Settings::load_from(None, dev).is_ok());
        let e: Vec<_> = minimal()
            .into_iter()
            .filter(|(k, _)| !k.contains("JWT"))
            .collect();
        assert_eq!(
            Settings::load_from(None, e).expect_err("no jwt").key,
            "host.jwt_secret"
        );
    }
}
