//! Access tokens for a linked mailbox: decrypted on use, refreshed shortly before they expire,
//! one refresh per account at a time (Microsoft rotates the refresh token on every refresh, so two
//! concurrent refreshes would race to store it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::api::mail_accounts::token_aad;
use crate::crypto::SecretString;
use crate::db::models::{account_status, MailAccountRow};
use crate::db::{self, now_millis};
use crate::providers::{MailProvider, ProviderError};
use crate::state::AppState;

/// Refresh when less than this is left, so a token does not expire in the middle of a page.
const REFRESH_MARGIN_MS: i64 = 120_000;

#[derive(Default)]
pub struct TokenLocks {
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenLocks {
    fn for_account(&self, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id).or_default().clone()
    }
}

/// Why an account cannot be used now.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant is gone: the account is now `reauth_required` and the user must link again.
    #[error("the mailbox must be linked again: {0}")]
    Reauth(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Internal(String),
}

/// A usable access token for `account`, refreshed first when it is about to expire (or when
/// `force`, after the provider refused the current one).
pub async fn access_token(
    state: &AppState,
    provider: &dyn MailProvider,
    account_id: i64,
    force: bool,
) -> Result<SecretString, TokenError> {
    let lock = state.sync.tokens.for_account(account_id);
    let _guard = lock.lock().await;
    // Read under the lock: another task may have just refreshed.
    let row = state
        .db
        .run(move |conn| db::accounts::get(conn, account_id))
        .await
        .map_err(|e| TokenError::Internal(format!("reading account {account_id}: {e}")))?;
    if row.status == account_status::REAUTH_REQUIRED {
        return Err(TokenError::Reauth(
            row.last_error.unwrap_or_else(|| "re-link required".into()),
        ));
    }
    let aad = |kind| token_aad(row.user_id, &row.provider, &row.provider_account_id, kind);
    let access = state
        .cipher
        .decrypt_str(&row.access_token, &aad("access"))
        .map_err(|e| TokenError::Internal(format!("account {account_id} access token: {e}")))?;
    let fresh = row
        .token_expires_at
        .is_none_or(|at| at - now_millis() > REFRESH_MARGIN_MS);
    if fresh && !force {
        return Ok(access);
    }
    refresh(state, provider, &row, &aad("refresh"), &aad("access")).await
}

async fn refresh(
    state: &AppState,
    provider: &dyn MailProvider,
    row: &MailAccountRow,
    refresh_aad: &str,
    access_aad: &str,
) -> Result<SecretString, TokenError> {
    let id = row.id;
    let Some(stored) = &row.refresh_token else {
        return Err(mark_reauth(state, id, "no refresh token was granted").await);
    };
    let refresh_token = state
        .cipher
        .decrypt_str(stored, refresh_aad)
        .map_err(|e| TokenError::Internal(format!("account {id} refresh token: {e}")))?;
    let app = crate::api::mail_settings::oauth_app(state, provider)
        .await
        .map_err(|e| TokenError::Internal(format!("{} is not usable: {e}", provider.id())))?;
    let tokens = match provider.refresh(&app, &refresh_token).await {
        Ok(t) => t,
        Err(ProviderError::InvalidGrant(why)) => {
            return Err(
                mark_reauth(state, id, &format!("the provider refused the grant: {why}")).await,
            )
        }
        Err(e) => return Err(e.into()),
    };
    let enc = |s: &SecretString, aad: &str| {
        state
            .cipher
            .encrypt_str(s, aad)
            .map_err(|e| TokenError::Internal(format!("encrypting a token: {e}")))
    };
    let access = enc(&tokens.access_token, access_aad)?;
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(|r| enc(r, refresh_aad))
        .transpose()?;
    let expires = tokens.expires_at;
    state
        .db
        .run(move |conn| db::accounts::store_refreshed(conn, id, access, refresh, expires))
        .await
        .map_err(|e| TokenError::Internal(format!("storing refreshed tokens: {e}")))?;
    Ok(tokens.access_token)
}

async fn mark_reauth(state: &AppState, id: i64, why: &str) -> TokenError {
    log::warn!("mail account {id} needs to be linked again: {why}");
    let reason = why.to_string();
    if let Err(e) = state
        .db
        .run(move |conn| db::accounts::mark_reauth_required(conn, id, &reason))
        .await
    {
        log::error!("marking mail account {id} reauth_required failed: {e}");
    }
    TokenError::Reauth(why.to_string())
}
