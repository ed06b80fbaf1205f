//! The HTTP client every adapter uses: no redirects, a timeout, and a fixed list of origins taken
//! from configuration, so a provider answer can never point the sidecar somewhere else.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::ProviderError;
use crate::config::Settings;
use crate::crypto::SecretString;

/// The longest `Retry-After` honoured inside one call; longer waits fail the call and the caller
/// (sync scheduling) comes back later.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct ProviderHttp {
    client: reqwest::Client,
    allowed: Vec<url::Origin>,
    retries: u32,
    timeout: Duration,
}

/// The body of a [`ProviderHttp::request`].
#[derive(Debug, Clone)]
pub enum RequestBody<'a> {
    Empty,
    Json(&'a serde_json::Value),
    /// Bytes with their Content-Type (MIME, uploads); cheap to clone for a retry.
    Bytes {
        content_type: &'a str,
        bytes: bytes::Bytes,
    },
}

impl ProviderHttp {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let g = &settings.providers.google;
        let m = &settings.providers.microsoft;
        let allowed = [
            &g.auth_url,
            &g.token_url,
            &g.revoke_url,
            &g.userinfo_url,
            &g.gmail_api_base,
            &m.authority,
            &m.graph_api_base,
        ]
        .iter()
        .map(|u| u.origin())
        // Graph hands out attachment upload URLs on Outlook's own host.
        .chain(m.upload_origins.iter().map(|u| u.origin()))
        .collect();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.providers.request_timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("email-manager/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            allowed,
            retries: settings.providers.retries,
            timeout: Duration::from_secs(settings.providers.request_timeout_secs),
        })
    }

    /// The raw client, for the `oauth2` crate (its URLs come from configuration too).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn check(&self, url: &Url) -> Result<(), ProviderError> {
        if self.allowed.contains(&url.origin()) {
            Ok(())
        } else {
            Err(ProviderError::Permanent(format!(
                "refusing to call {} (not a configured provider endpoint)",
                url.origin().ascii_serialization()
            )))
        }
    }

    /// GET a JSON resource with a bearer token, retried like [`send`](Self::send); errors are
    /// classified for the caller.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        token: &SecretString,
        classify: Classifier,
    ) -> Result<T, ProviderError> {
        self.send_json(Method::GET, url, token, None, &[], classify)
            .await
    }

    /// A bearer request with an optional JSON body, retried on 429/5xx/timeouts: `Retry-After` is
    /// honoured (up to [`MAX_WAIT`]), otherwise exponential backoff with jitter. Answers the body
    /// of the success (empty for 204).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: &SecretString,
        json: Option<&serde_json::Value>,
        headers: &[(&'static str, &str)],
        classify: Classifier,
    ) -> Result<bytes::Bytes, ProviderError> {
        let url = Url::parse(url)
            .map_err(|e| ProviderError::Permanent(format!("bad provider URL: {e}")))?;
        self.check(&url)?;
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose());
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            if let Some(body) = json {
                req = req.json(body);
            }
            let err = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let wait = retry_after(resp.headers());
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => return Ok(body),
                        Ok(body) => {
                            classify_status(status, wait, &String::from_utf8_lossy(&body), classify)
                        }
                        Err(e) => transport_error(e),
                    }
                }
                Err(e) => transport_error(e),
            };
            if !err.is_retryable() || attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt, &err)).await;
        }
    }

    /// GET with a bearer whose body the caller reads as a stream (attachments): the status is
    /// checked and retried like [`send`](Self::send), and `timeout` replaces the client's whole-
    /// request timeout, since a large body takes longer than an API answer.
    pub async fn get_stream(
        &self,
        url: &str,
        token: &SecretString,
        headers: &[(&'static str, &str)],
        timeout: Duration,
        classify: Classifier,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = Url::parse(url)
            .map_err(|e| ProviderError::Permanent(format!("bad provider URL: {e}")))?;
        self.check(&url)?;
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .client
                .get(url.clone())
                .bearer_auth(token.expose())
                .timeout(timeout);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let err = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let wait = retry_after(resp.headers());
                    let body = resp.text().await.unwrap_or_default();
                    classify_status(status, wait, &body, classify)
                }
                Err(e) => transport_error(e),
            };
            if !err.is_retryable() || attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt, &err)).await;
        }
    }

    /// [`send`](Self::send) and parse the JSON answer.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        token: &SecretString,
        json: Option<&serde_json::Value>,
        headers: &[(&'static str, &str)],
        classify: Classifier,
    ) -> Result<T, ProviderError> {
        let body = self
            .send(method, url, token, json, headers, classify)
            .await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Permanent(format!("unexpected provider response: {e}")))
    }

    /// One request with any body, answering the status, headers and body of a success.
    /// `token: None` sends no bearer (Graph's pre-authenticated upload URLs refuse one).
    /// `retry: false` makes it exactly once, for calls that must not run twice (a send): the
    /// caller decides what a failure means. Large bodies get more time than an API answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        token: Option<&SecretString>,
        body: RequestBody<'_>,
        headers: &[(&'static str, &str)],
        classify: Classifier,
        retry: bool,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), ProviderError> {
        let url = Url::parse(url)
            .map_err(|e| ProviderError::Permanent(format!("bad provider URL: {e}")))?;
        self.check(&url)?;
        let body_len = match &body {
            RequestBody::Bytes { bytes, .. } => bytes.len(),
            RequestBody::Json(_) | RequestBody::Empty => 0,
        };
        // At least 256 KiB/s on top of the usual answer time.
        let timeout = self.timeout + Duration::from_secs((body_len / (256 << 10)) as u64);
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .timeout(timeout);
            if let Some(token) = token {
                req = req.bearer_auth(token.expose());
            }
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            req = match &body {
                RequestBody::Empty => req,
                RequestBody::Json(v) => req.json(v),
                RequestBody::Bytes {
                    content_type,
                    bytes,
                } => req
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(bytes.clone()),
            };
            let err = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let resp_headers = resp.headers().clone();
                    let wait = retry_after(&resp_headers);
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => return Ok((status, resp_headers, body)),
                        Ok(body) => {
                            classify_status(status, wait, &String::from_utf8_lossy(&body), classify)
                        }
                        Err(e) => transport_error(e),
                    }
                }
                Err(e) => transport_error(e),
            };
            if !retry || !err.is_retryable() || attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt, &err)).await;
        }
    }

    /// POST a form without a bearer (token revocation).
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, String), ProviderError> {
        let url = Url::parse(url)
            .map_err(|e| ProviderError::Permanent(format!("bad provider URL: {e}")))?;
        self.check(&url)?;
        let resp = self
            .client
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        let body = resp.text().await.map_err(transport_error)?;
        Ok((status, body))
    }
}

/// Turns a provider's error body into a loggable message (never shown to clients).
pub type Classifier = fn(StatusCode, &str) -> Option<ProviderError>;

pub fn transport_error(e: reqwest::Error) -> ProviderError {
    ProviderError::Transient(if e.is_timeout() {
        "request timed out".into()
    } else {
        format!("request failed: {e}")
    })
}

/// How long to wait before retry `attempt` (1-based): the provider's `Retry-After` when given,
/// else 0.5 s doubling, capped, with ±50 % jitter so retrying clients spread out.
pub fn backoff(attempt: u32, err: &ProviderError) -> Duration {
    if let ProviderError::RateLimited {
        retry_after: Some(wait),
    } = err
    {
        return (*wait).min(MAX_WAIT);
    }
    let base = Duration::from_millis(500) * 2u32.saturating_pow(attempt.saturating_sub(1).min(6));
    let base = base.min(MAX_WAIT);
    base.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..1.5))
}

/// `Retry-After` in seconds or as an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// The common part of error classification; `specific` handles each provider's quirks first
/// (Gmail's 403 quota errors, Graph's `syncStateNotFound`).
pub fn classify_status(
    status: StatusCode,
    wait: Option<Duration>,
    body: &str,
    specific: Classifier,
) -> ProviderError {
    if let Some(e) = specific(status, body) {
        return match e {
            ProviderError::RateLimited { retry_after: None } => {
                ProviderError::RateLimited { retry_after: wait }
            }
            other => other,
        };
    }
    match status {
        StatusCode::UNAUTHORIZED => ProviderError::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited { retry_after: wait },
        StatusCode::SERVICE_UNAVAILABLE if wait.is_some() => {
            ProviderError::RateLimited { retry_after: wait }
        }
        StatusCode::NOT_FOUND => ProviderError::NotFound,
        StatusCode::GONE => ProviderError::CursorExpired,
        s if s.is_server_error() => ProviderError::Transient(format!("HTTP {s}")),
        s => ProviderError::Permanent(format!("HTTP {s}: {}", truncate(body, 300))),
    }
}

pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: StatusCode, _: &str) -> Option<ProviderError> {
        None
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn statuses_map_to_actions() {
        let w = Some(Duration::from_secs(7));
        assert!(matches!(
            classify_status(StatusCode::UNAUTHORIZED, None, "", none),
            ProviderError::Unauthorized
        ));
        assert!(matches!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, w, "", none),
            ProviderError::RateLimited { retry_after: Some(d) } if d.as_secs() == 7
        ));
        assert!(matches!(
            classify_status(StatusCode::GONE, None, "", none),
            ProviderError::CursorExpired
        ));
        assert!(matches!(
            classify_status(StatusCode::BAD_GATEWAY, None, "", none),
            ProviderError::Transient(_)
        ));
        assert!(matches!(
            classify_status(StatusCode::BAD_REQUEST, None, "x", none),
            ProviderError::Permanent(_)
        ));
    }
}
