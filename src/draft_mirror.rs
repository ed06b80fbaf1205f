//! Keeps the provider's copy of each draft (Gmail drafts, Outlook's Drafts folder) in step with
//! the local one, cheaply.
//!
//! `mailDrafts:update` only writes the database. A draft is dirty while its `revision` is ahead
//! of `provider_synced_revision`; this worker waits until a dirty draft has been quiet for
//! `mail.draft_mirror_delay_ms`, then makes one provider create or update with its latest
//! revision — a burst of auto-saves costs one or two provider calls. Drafts deleted or sent
//! here keep their row (`deleted_at`) until the provider's copy is deleted too. Everything is in
//! the database, so a restart resumes where it was; drafts are claimed with a conditional update,
//! so replicas never work on one draft at once; failures back off per draft.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web;
use serde_json::{Map, Value};

use crate::api::mail_messages::send::{build_message, load, Purpose};
use crate::db::compose::{self as store, DraftRow};
use crate::db::{self, now_millis, DbError};
use crate::providers::{DraftContent, MailProvider, ProviderError};
use crate::send::compose::QuoteOptions;
use crate::send::request;
use crate::state::AppState;
use crate::sync::tokens::{self, TokenError};

/// How long a worker holds a claimed draft before another may take it (a crash mid-call).
const LOCK_MS: i64 = 120_000;
const BATCH: i64 = 20;
const MAX_BACKOFF_MS: i64 = 3_600_000;

#[derive(Default)]
pub struct DraftMirror {
    /// Wakes the worker (a draft was saved or deleted).
    pub wake: tokio::sync::Notify,
    stopped: AtomicBool,
}

impl DraftMirror {
    /// Ends the worker after the draft in hand (the server is stopping).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// The request a draft's fields make (for `accountId`'s mailbox).
pub fn draft_values(row: &DraftRow) -> Value {
    let mut fields: Map<String, Value> = serde_json::from_str(&row.fields_json).unwrap_or_default();
    fields.insert("accountId".into(), Value::from(row.account_id));
    Value::Object(fields)
}

fn backoff_ms(attempts: i32) -> i64 {
    let exp = attempts.clamp(0, 12) as u32;
    (1000i64 << exp).min(MAX_BACKOFF_MS)
}

/// Starts the worker; it stops with [`DraftMirror::stop`].
pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let delay = state.settings.mail.draft_mirror_delay_ms as i64;
        let poll = Duration::from_millis((delay / 2).clamp(100, 1000) as u64);
        while !state.drafts.stopped() {
            let now = now_millis();
            let claimed = state
                .db
                .run(move |c| {
                    store::claim_drafts_to_mirror(c, now, now - delay, now + LOCK_MS, BATCH)
                })
                .await;
            match claimed {
                Ok(rows) if !rows.is_empty() => {
                    for row in rows {
                        if state.drafts.stopped() {
                            // Hand the rest back at once rather than at the lock's end.
                            let id = row.id;
                            let _ = state
                                .db
                                .run(move |c| store::release_draft(c, id, 0, None))
                                .await;
                            continue;
                        }
                        work(&state, row).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => log::error!("draft mirror: looking for drafts failed: {e}"),
            }
            let _ = tokio::time::timeout(poll, state.drafts.wake.notified()).await;
        }
    });
}

/// One claimed draft: mirrored, or deleted at the provider; released either way.
async fn work(state: &AppState, row: DraftRow) {
    let id = row.id;
    let attempts = row.mirror_attempts;
    let result = if row.deleted_at.is_some() {
        remove_at_provider(state, &row).await.map(|_| None)
    } else {
        mirror(state, &row).await.map(Some)
    };
    let now = now_millis();
    let outcome = state
        .db
        .run(move |c| match result {
            Ok(None) => store::purge_draft(c, id),
            Ok(Some(())) => store::release_draft(c, id, 0, None),
            Err(why) => store::release_draft(c, id, now + backoff_ms(attempts), Some(why.as_str())),
        })
        .await;
    if let Err(e) = outcome {
        log::error!("draft {id}: recording the mirror's result failed: {e}");
    }
}

async fn token(
    state: &AppState,
    provider: &dyn MailProvider,
    account_id: i64,
    force: bool,
) -> Result<crate::crypto::SecretString, String> {
    tokens::access_token(state, provider, account_id, force)
        .await
        .map_err(|e| match e {
            TokenError::Reauth(_) => "the mailbox must be linked again".to_string(),
            other => other.to_string(),
        })
}

/// Calls `f` with a token, once more with a fresh one when the provider refuses it.
async fn with_token<T, F, Fut>(
    state: &AppState,
    provider: &dyn MailProvider,
    account_id: i64,
    f: F,
) -> Result<T, String>
where
    F: Fn(crate::crypto::SecretString) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let t = token(state, provider, account_id, false).await?;
    match f(t).await {
        Err(ProviderError::Unauthorized) => {
            let t = token(state, provider, account_id, true).await?;
            f(t).await.map_err(|e| e.to_string())
        }
        other => other.map_err(|e| {
            state.metrics.provider_error(provider.id(), e.kind());
            e.to_string()
        }),
    }
}

/// Deletes the provider's copy of a draft (nothing to do when it never got one).
async fn remove_at_provider(state: &AppState, row: &DraftRow) -> Result<(), String> {
    let Some(pid) = row.provider_draft_id.clone() else {
        return Ok(());
    };
    let account_id = row.account_id;
    let account = match state
        .db
        .run(move |c| db::accounts::get(c, account_id))
        .await
    {
        Ok(a) => a,
        // The account went, and its drafts with it.
        Err(DbError::NotFound) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let provider = state
        .registry
        .get(&account.provider)
        .map_err(|e| e.message)?;
    let p = provider.as_ref();
    with_token(state, p, account.id, |t| {
        let pid = pid.clone();
        async move { p.delete_draft(&t, &pid).await }
    })
    .await
}

/// Creates or updates the provider's copy with the draft's current revision.
async fn mirror(state: &AppState, row: &DraftRow) -> Result<(), String> {
    let mut req = request::parse(&draft_values(row)).map_err(|e| e.to_string())?;
    // An unfinished draft may still have unknown variables or nobody to send to.
    req.allow_missing_variables = true;
    let loaded = load(
        state,
        row.user_id,
        &req,
        QuoteOptions::default(),
        Purpose::Mirror,
    )
    .await
    .map_err(|e| e.message)?;
    let (message, _) = build_message(&req, &loaded, false).map_err(|e| e.message)?;
    let raw = message.build(true).map_err(|e| e.to_string())?;
    let thread_id = loaded.source.as_ref().map(|s| s.thread_id.clone());
    let p = loaded.provider.as_ref();
    let existing = row.provider_draft_id.clone();
    let content = DraftContent {
        message: &message,
        raw: &raw,
        thread_id: thread_id.as_deref(),
    };
    let content = &content;
    let provider_id = with_token(state, p, loaded.account.id, |t| {
        let existing = existing.clone();
        async move { p.save_draft(&t, existing.as_deref(), content).await }
    })
    .await?;
    let (id, revision) = (row.id, row.revision);
    state
        .db
        .run(move |c| store::mark_draft_synced(c, id, &provider_id, revision))
        .await
        .map_err(|e| e.to_string())?;
    log::debug!("draft {id}: revision {revision} mirrored");
    Ok(())
}

/// Deletes a draft here at once and at the provider as soon as it can (now, when no worker has
/// it; else the worker does). `NotFound` when the user has no such draft.
pub async fn discard(state: &AppState, user_id: i64, draft_id: i64) -> Result<(), DbError> {
    let now = now_millis();
    let row = state
        .db
        .run(move |c| store::tombstone_draft(c, user_id, draft_id, now))
        .await?;
    let claimed = state
        .db
        .run(move |c| store::claim_draft(c, draft_id, now, now + LOCK_MS))
        .await
        .unwrap_or(false);
    if claimed {
        work(state, row).await;
    } else {
        state.drafts.wake.notify_one();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_an_hour() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
    }
}
