//! `mailAccounts`: linking a mailbox by OAuth (`authorize` → provider consent → `callback`),
//! listing, reading and removing the user's own mailboxes.

use std::collections::HashMap;

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::mail_settings::oauth_app;
use super::{data, iso, list as list_response, parse_instant, ActionCtx};
use crate::crypto::{sha256_hex, SecretString};
use crate::db::models::{account_status, MailAccountRow, NewMailAccount, OAuthStateRow};
use crate::db::{self, now_millis};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::web::pages::{oauth_result_page, OAuthOutcome};

fn pkce_aad(state_hash: &str) -> String {
    format!("oauth_states:{state_hash}:pkce_verifier")
}

/// Tokens are bound to the mailbox they belong to, not to a row id that does not exist yet.
pub fn token_aad(user_id: i64, provider: &str, provider_account_id: &str, kind: &str) -> String {
    format!("mail_accounts:{user_id}:{provider}:{provider_account_id}:{kind}")
}

fn account_json(a: &MailAccountRow) -> Value {
    json!({
        "id": a.id,
        "provider": a.provider,
        "email": a.email,
        "displayName": a.display_name,
        "status": a.status,
        "syncFrom": a.sync_from.and_then(iso),
        "createdAt": iso(a.created_at),
        "updatedAt": iso(a.updated_at),
        "lastSyncAt": a.last_sync_at.and_then(iso),
        "lastError": a.last_error,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AuthorizeValues {
    provider: String,
    #[serde(default)]
    sync_from: Option<Value>,
}

pub async fn authorize(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let values: AuthorizeValues = ctx.values_as()?;
    let provider = state.registry.get(values.provider.trim())?;
    let sync_from = match &values.sync_from {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_instant("syncFrom", v)?),
    };
    let app = oauth_app(state, provider.as_ref()).await?;
    let request = provider
        .authorization_url(&app, &state.settings.host.redirect_uri())
        .map_err(|e| {
            state.metrics.provider_error(provider.id(), e.kind());
            ApiError::internal(anyhow::Error::new(e).context("building the authorization URL"))
        })?;

    let now = now_millis();
    let state_hash = sha256_hex(request.state.expose().as_bytes());
    let row = OAuthStateRow {
        pkce_verifier: state
            .cipher
            .encrypt_str(&request.pkce_verifier, &pkce_aad(&state_hash))?,
        state_hash,
        user_id: ctx.identity.user_id,
        provider: provider.id().to_string(),
        sync_from,
        created_at: now,
        expires_at: now + state.settings.security.oauth_state_ttl_secs * 1000,
    };
    state
        .db
        .run(move |conn| {
            db::oauth_states::purge_expired(conn, now)?;
            db::oauth_states::insert(conn, &row)
        })
        .await?;
    Ok(data(json!({ "url": request.url })))
}

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (page, page_size) = ctx.paging()?;
    let user_id = ctx.identity.user_id;
    let rows = state
        .db
        .run(move |conn| db::accounts::list_for_user(conn, user_id))
        .await?;
    let count = rows.len() as i64;
    let items: Vec<Value> = rows
        .iter()
        .skip(((page - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(account_json)
        .collect();
    Ok(list_response(items, count, page, page_size))
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |conn| db::accounts::get_for_user(conn, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(account_json(&row)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncValues {
    /// Run now and answer with the run, instead of scheduling it.
    #[serde(default)]
    wait: bool,
}

/// `mailAccounts:sync` (incremental, or the first full listing) and `mailAccounts:resync` (a
/// full listing from scratch that keeps local state and removes what the provider no longer has).
pub async fn sync(state: &AppState, ctx: &ActionCtx, resync: bool) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let values: SyncValues = ctx.values_as()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |conn| db::accounts::get_for_user(conn, user_id, id))
        .await
        .map_err(not_found)?;
    if row.status == account_status::REAUTH_REQUIRED {
        return Err(ApiError::new(
            ErrorCode::ReauthRequired,
            format!(
                "{} must be linked again before it can sync: use Link on the Email settings page",
                row.email
            ),
        ));
    }
    if !values.wait {
        if resync {
            state
                .db
                .run(move |c| db::messages::reset_cursor(c, id))
                .await?;
        }
        crate::sync::scheduler::sync_soon(state, id).await?;
        return Ok(
            HttpResponse::Accepted().json(json!({ "data": { "id": id, "scheduled": true } }))
        );
    }
    match crate::sync::run(state, id, resync).await {
        Ok(summary) => Ok(data(json!({
            "id": id,
            "runId": summary.run_id,
            "kind": summary.kind,
            "added": summary.counts.added,
            "updated": summary.counts.updated,
            "removed": summary.counts.removed,
            "error": summary.error.map(|(kind, message)| json!({"kind": kind, "message": message})),
        }))),
        Err(crate::sync::SyncError::Busy) => Err(ApiError::new(
            ErrorCode::SyncInProgress,
            "A sync of this mailbox is already running; try again when it ends",
        )),
        Err(crate::sync::SyncError::Db(e)) => Err(e.into()),
    }
}

fn not_found(e: db::DbError) -> ApiError {
    match e {
        db::DbError::NotFound => ApiError::not_found("Mail account"),
        other => other.into(),
    }
}

/// Revokes the grant at the provider, then deletes the account. A provider that cannot be
/// reached does not keep the user from removing the mailbox: the tokens are deleted either way,
/// and the answer says whether the provider confirmed the revocation.
pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |conn| db::accounts::get_for_user(conn, user_id, id))
        .await
        .map_err(not_found)?;
    let provider = state.registry.get(&row.provider)?;

    let aad = |kind| token_aad(row.user_id, &row.provider, &row.provider_account_id, kind);
    let access = state.cipher.decrypt_str(&row.access_token, &aad("access"));
    let refresh = row
        .refresh_token
        .as_deref()
        .map(|t| state.cipher.decrypt_str(t, &aad("refresh")))
        .transpose();
    let revoked = match (access, refresh, oauth_app(state, provider.as_ref()).await) {
        (Ok(access), Ok(refresh), Ok(app)) => {
            match provider.revoke(&app, &access, refresh.as_ref()).await {
                Ok(revoked) => revoked,
                Err(e) => {
                    state.metrics.provider_error(provider.id(), e.kind());
                    log::warn!(
                        "revoking mail account {id} at {} failed: {e}",
                        provider.id()
                    );
                    false
                }
            }
        }
        (access, refresh, app) => {
            log::warn!(
                "mail account {id}: not revoked at {} (tokens readable: {}, app configured: {})",
                provider.id(),
                access.is_ok() && refresh.is_ok(),
                app.is_ok()
            );
            false
        }
    };
    state
        .db
        .run(move |conn| db::accounts::delete_for_user(conn, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(json!({ "id": id, "revoked": revoked })))
}

/// The OAuth redirect target. Answers an HTML page for the consent window in every case; stores
/// the account only when the state, the code exchange and the identity lookup all succeed.
pub async fn callback(state: &AppState, params: &HashMap<String, String>) -> HttpResponse {
    match finish_link(state, params).await {
        Ok(outcome) => oauth_result_page(&outcome),
        Err(outcome) => oauth_result_page(&outcome),
    }
}

async fn finish_link(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<OAuthOutcome, OAuthOutcome> {
    let raw_state = params
        .get("state")
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(OAuthOutcome::BadState)?;
    let state_hash = sha256_hex(raw_state.as_bytes());
    let now = now_millis();
    let hash = state_hash.clone();
    let pending = state
        .db
        .run(move |conn| db::oauth_states::take(conn, &hash, now))
        .await
        .map_err(|e| internal("reading the OAuth state", e))?
        .ok_or(OAuthOutcome::BadState)?;
    let provider = state
        .registry
        .get(&pending.provider)
        .map_err(|_| OAuthOutcome::BadState)?;

    if let Some(error) = params.get("error") {
        log::info!("{} consent ended with error={error}", provider.id());
        return Err(if error == "access_denied" {
            OAuthOutcome::Denied {
                provider: provider.display_name(),
            }
        } else {
            OAuthOutcome::ProviderFailed {
                provider: provider.display_name(),
                detail: "the provider reported an error",
            }
        });
    }
    // A valid state without a code is the provider's fault, not an expired link.
    let code =
        params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or(OAuthOutcome::ProviderFailed {
                provider: provider.display_name(),
                detail: "the provider sent no authorization code",
            })?;
    let app =
        oauth_app(state, provider.as_ref())
            .await
            .map_err(|_| OAuthOutcome::ProviderFailed {
                provider: provider.display_name(),
                detail: "the provider is no longer configured",
            })?;
    let verifier = state
        .cipher
        .decrypt_str(&pending.pkce_verifier, &pkce_aad(&state_hash))
        .map_err(|e| internal("decrypting the PKCE verifier", e))?;

    let failed = |e: crate::providers::ProviderError, step: &str| {
        state.metrics.provider_error(provider.id(), e.kind());
        log::warn!(
            "linking a {} mailbox failed while {step}: {e}",
            provider.id()
        );
        let detail = match e {
            crate::providers::ProviderError::InvalidClient(_) => {
                "the Client ID or Client Secret in Email settings was refused"
            }
            crate::providers::ProviderError::InvalidGrant(_) => {
                "the sign-in expired or was already used"
            }
            _ => "the provider could not be reached or refused the request",
        };
        OAuthOutcome::ProviderFailed {
            provider: provider.display_name(),
            detail,
        }
    };
    let tokens = provider
        .exchange_code(&app, &state.settings.host.redirect_uri(), code, &verifier)
        .await
        .map_err(|e| failed(e, "exchanging the code"))?;
    let identity = provider
        .identity(&tokens)
        .await
        .map_err(|e| failed(e, "reading the mailbox identity"))?;

    let aad = |kind| {
        token_aad(
            pending.user_id,
            provider.id(),
            &identity.provider_account_id,
            kind,
        )
    };
    let encrypt = |t: &SecretString, kind| {
        state
            .cipher
            .encrypt_str(t, &aad(kind))
            .map_err(|e| internal("encrypting tokens", e))
    };
    let new = NewMailAccount {
        user_id: pending.user_id,
        provider: provider.id().to_string(),
        provider_account_id: identity.provider_account_id.clone(),
        email: identity.email.clone(),
        display_name: identity.display_name.clone(),
        status: account_status::ACTIVE.to_string(),
        access_token: encrypt(&tokens.access_token, "access")?,
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| encrypt(t, "refresh"))
            .transpose()?,
        token_expires_at: tokens.expires_at,
        scopes: tokens.scopes.join(" "),
        sync_from: pending.sync_from,
        created_at: now,
        updated_at: now,
    };
    let (row, created) = state
        .db
        .run(move |conn| db::accounts::upsert_linked(conn, &new))
        .await
        .map_err(|e| internal("storing the mail account", e))?;
    state.metrics.inc(
        "email_manager_accounts_linked_total",
        format!("provider=\"{}\"", provider.id()),
    );
    log::info!(
        "user {} linked {} account {} ({})",
        row.user_id,
        provider.id(),
        row.id,
        if created { "new" } else { "re-linked" }
    );
    // The account is due now (next_sync_at = 0): the first page shows up within seconds.
    state.sync.wake.notify_one();
    Ok(OAuthOutcome::Linked {
        provider: provider.display_name(),
        email: row.email,
        account_id: row.id,
    })
}

fn internal(step: &str, e: impl std::fmt::Display) -> OAuthOutcome {
    log::error!("OAuth callback failed while {step}: {e}");
    OAuthOutcome::Internal
}
