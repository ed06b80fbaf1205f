//! `mailSettings:get` / `mailSettings:update`: the OAuth apps an admin registers per provider.
//! The client secret is write-only: stored encrypted, shown back only as `hasClientSecret` and a
//! hint of its last characters.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{data, ActionCtx};
use crate::crypto::{Cipher, SecretString};
use crate::db::models::MailSettingsRow;
use crate::db::WriteTransaction;
use crate::db::{self, now_millis};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::providers::microsoft::{valid_tenant, DEFAULT_TENANT};
use crate::providers::{MailProvider, OAuthApp};
use crate::state::AppState;

/// Associated data for a provider's encrypted client secret.
fn secret_aad(provider: &str) -> String {
    format!("mail_settings:{provider}:client_secret")
}

/// One provider's part of `update`. Read-only fields of `get` are accepted and ignored so a
/// page may send back what it read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProviderValues {
    client_id: Option<String>,
    client_secret: Option<String>,
    enabled: Option<bool>,
    tenant: Option<String>,
    #[serde(default, rename = "hasClientSecret")]
    _has_client_secret: Option<Value>,
    #[serde(default, rename = "clientSecretHint")]
    _client_secret_hint: Option<Value>,
}

fn empty_row(provider: &str) -> MailSettingsRow {
    MailSettingsRow {
        provider: provider.to_string(),
        client_id: String::new(),
        client_secret: None,
        client_secret_hint: None,
        tenant: None,
        enabled: false,
        updated_at: 0,
    }
}

fn view(provider: &dyn MailProvider, row: Option<&MailSettingsRow>) -> Value {
    let empty = empty_row(provider.id());
    let row = row.unwrap_or(&empty);
    let mut v = json!({
        "clientId": row.client_id,
        "enabled": row.enabled,
        "hasClientSecret": row.client_secret.is_some(),
        "clientSecretHint": row.client_secret_hint,
    });
    if provider.uses_tenant() {
        v["tenant"] = json!(row
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_string()));
    }
    v
}

async fn render(state: &AppState) -> ApiResult<HttpResponse> {
    let rows = state.db.run(db::settings::list).await?;
    let mut out = Map::new();
    out.insert(
        "redirectUri".into(),
        json!(state.settings.host.redirect_uri()),
    );
    for p in state.registry.all() {
        out.insert(
            p.id().to_string(),
            view(p.as_ref(), rows.iter().find(|r| r.provider == p.id())),
        );
    }
    Ok(data(Value::Object(out)))
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    render(state).await
}

fn clean_text(field: &str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.trim();
    if v.len() > max {
        return Err(ApiError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::invalid(format!(
            "{field} must not contain spaces or control characters"
        )));
    }
    Ok(v.to_string())
}

/// Validates every provider's values first and writes them all in one transaction, so a bad
/// value anywhere changes nothing.
pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let Value::Object(values) = &ctx.values else {
        return Err(ApiError::invalid(
            "values must be an object such as {\"google\": {\"clientId\": \"…\"}}",
        ));
    };
    let mut updates: BTreeMap<&'static str, ProviderValues> = BTreeMap::new();
    for (key, v) in values {
        if key == "redirectUri" {
            continue; // read-only; sent back by pages that round-trip `get`
        }
        let provider = state.registry.get(key)?;
        let parsed: ProviderValues = serde_json::from_value(v.clone())
            .map_err(|e| ApiError::invalid(format!("Invalid values for {key}: {e}")))?;
        updates.insert(provider.id(), parsed);
    }
    if updates.is_empty() {
        return Err(ApiError::invalid(format!(
            "Nothing to update: send one of {}",
            state.registry.ids().join(", ")
        )));
    }

    let existing = state.db.run(db::settings::list).await?;
    let now = now_millis();
    let mut rows = Vec::new();
    for (id, v) in updates {
        let provider = state.registry.get(id)?;
        let mut row = existing
            .iter()
            .find(|r| r.provider == id)
            .cloned()
            .unwrap_or_else(|| empty_row(id));
        if let Some(client_id) = &v.client_id {
            row.client_id = clean_text(&format!("{id}.clientId"), client_id, 512)?;
        }
        if let Some(secret) = v
            .client_secret
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let secret =
                SecretString::new(clean_text(&format!("{id}.clientSecret"), secret, 1024)?);
            row.client_secret = Some(state.cipher.encrypt_str(&secret, &secret_aad(id))?);
            row.client_secret_hint = Some(secret.hint());
        }
        if let Some(tenant) = &v.tenant {
            if !provider.uses_tenant() {
                return Err(ApiError::invalid(format!("{id} has no tenant setting")));
            }
            let tenant = tenant.trim();
            if !valid_tenant(tenant) {
                return Err(ApiError::invalid(format!(
                    "{id}.tenant must be common, organizations, consumers, a tenant id or a verified domain"
                )));
            }
            row.tenant = Some(tenant.to_string());
        }
        if let Some(enabled) = v.enabled {
            row.enabled = enabled;
        }
        if row.enabled && (row.client_id.is_empty() || row.client_secret.is_none()) {
            return Err(ApiError::invalid(format!(
                "{} cannot be enabled without a Client ID and a Client Secret",
                provider.display_name()
            )));
        }
        row.updated_at = now;
        rows.push(row);
    }
    state
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| rows.iter().try_for_each(|r| db::settings::save(conn, r)))
        })
        .await?;
    render(state).await
}

/// The provider's OAuth app, if an admin configured and enabled it.
pub async fn oauth_app(state: &AppState, provider: &dyn MailProvider) -> ApiResult<OAuthApp> {
    let id = provider.id();
    let row = state
        .db
        .run(move |conn| db::settings::get(conn, id))
        .await?;
    let not_ready = |why: &str| {
        ApiError::new(
            ErrorCode::ProviderNotConfigured,
            format!(
                "{} {why}: an administrator must set it up in Settings → Email settings",
                provider.display_name()
            ),
        )
    };
    let row = row.ok_or_else(|| not_ready("is not configured"))?;
    if !row.enabled {
        return Err(not_ready("is disabled"));
    }
    let secret = row
        .client_secret
        .as_deref()
        .ok_or_else(|| not_ready("has no Client Secret"))?;
    if row.client_id.is_empty() {
        return Err(not_ready("has no Client ID"));
    }
    Ok(OAuthApp {
        client_id: row.client_id,
        client_secret: decrypt_secret(&state.cipher, id, secret)?,
        tenant: row.tenant,
    })
}

/// Start-up check that `security.encryption_key` is the key the stored secrets were written with:
/// a replaced key would otherwise surface much later as a failed mailbox link.
pub fn check_encryption_key(db: &crate::db::Db, cipher: &Cipher) -> anyhow::Result<()> {
    let rows = db.run_now(crate::db::settings::list)?;
    for row in rows {
        if let Some(secret) = &row.client_secret {
            if decrypt_secret(cipher, &row.provider, secret).is_err() {
                anyhow::bail!(
                    "security.encryption_key: it does not decrypt the {} Client Secret stored in this \
                     database; start with the key the database was written with (every replica \
                     needs the same key)",
                    row.provider
                );
            }
        }
    }
    Ok(())
}

fn decrypt_secret(cipher: &Cipher, provider: &str, stored: &[u8]) -> ApiResult<SecretString> {
    Ok(cipher.decrypt_str(stored, &secret_aad(provider))?)
}
