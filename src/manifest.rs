//! `plugin-manifest.json`: how the host learns what to forward here. The repository file is the
//! template; the running instance fills in its own URL, redirect URI and version.

use std::time::Duration;

use serde_json::Value;

use crate::config::Settings;

const TEMPLATE: &str = include_str!("../plugin-manifest.json");

/// The manifest with this instance's values.
pub fn build(settings: &Settings) -> anyhow::Result<Value> {
    let mut m: Value = serde_json::from_str(TEMPLATE)?;
    m["version"] = Value::from(env!("CARGO_PKG_VERSION"));
    m["sidecar"]["url"] = Value::from(settings.host.sidecar_url.as_str().trim_end_matches('/'));
    m["oauth"]["redirectUri"] = Value::from(settings.host.redirect_uri());
    Ok(m)
}

/// Posts the manifest to `host.register_url` until the host accepts it, backing off from 1 s to
/// 5 min. Runs beside the server so start-up never waits on the host.
pub async fn register_until_accepted(settings: std::sync::Arc<Settings>) {
    let Some(url) = settings.host.register_url.clone() else {
        return;
    };
    let manifest = match build(&settings) {
        Ok(m) => m,
        Err(e) => {
            log::error!("cannot build the plugin manifest: {e:#}");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(settings.host.request_timeout_secs))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log::error!("cannot build the registration client: {e:#}");
            return;
        }
    };
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1u32;
    loop {
        let mut req = client.post(url.clone()).json(&manifest);
        if let Some(token) = &settings.host.register_token {
            req = req.bearer_auth(String::from_utf8_lossy(token.expose()).trim());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                log::info!(
                    "registered with the host at {} (attempt {attempt})",
                    url.origin().ascii_serialization()
                );
                return;
            }
            Ok(resp) => log::warn!(
                "host registration answered HTTP {} (attempt {attempt}); retrying in {delay:?}",
                resp.status()
            ),
            Err(e) => log::warn!(
                "host registration failed: {e} (attempt {attempt}); retrying in {delay:?}"
            ),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(300));
        attempt += 1;
    }
}
