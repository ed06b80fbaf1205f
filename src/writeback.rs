//! Writes changes made here (read, star, move, trash) through to the provider.
//!
//! A change is applied locally first, together with its outbox rows (`db::message_changes`).
//! `mailMessages:update` then delivers it at once ([`deliver`]); what the provider could not take
//! for a while (throttling, 5xx, timeouts after the HTTP client's own retries, a mailbox waiting to
//! be re-linked) stays in the outbox and the worker started by [`spawn`] tries again with
//! exponential backoff. What the provider refuses for good is undone locally. Rows live in the
//! database, so a restart resumes them, and several replicas share them (rows are claimed with a
//! conditional update).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix_web::web;
use futures_util::{stream, StreamExt};

use crate::crypto::{random_token, SecretString};
use crate::db::message_changes::{self as changes, OutboxRow};
use crate::db::{now_millis, DbError};
use crate::providers::{folder, MailProvider, MessageChange, ProviderError};
use crate::state::AppState;
use crate::sync::tokens::{self, TokenError};

/// How long an inline delivery or a worker round may hold its rows before others may take them.
const LOCK_MS: i64 = 120_000;
const BATCH: i64 = 200;
const MAX_BACKOFF_SECS: u64 = 3600;

#[derive(Default)]
pub struct Writeback {
    /// Wakes the worker (a change was left for it).
    pub wake: tokio::sync::Notify,
}

/// A lock name unique to one delivery.
pub fn lock_name(state: &AppState) -> String {
    format!("{}:{}", state.sync.owner, random_token(6).to_lowercase())
}

/// What became of the messages of one delivery.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Message ids the provider confirmed.
    pub delivered: Vec<i64>,
    /// Message ids left in the outbox to retry.
    pub pending: Vec<i64>,
    /// Message ids the provider refused for good (their local change was undone), with the
    /// provider's name.
    pub refused: Vec<(i64, &'static str)>,
}

enum Outcome {
    Done,
    Later { reason: String, counts: bool },
    Refused(String),
}

fn outcome(e: &ProviderError, trashing: bool) -> Outcome {
    match e {
        // Trashing something the provider no longer has: it is gone either way.
        ProviderError::NotFound if trashing => Outcome::Done,
        ProviderError::NotFound => {
            Outcome::Refused("the message is no longer at the provider".into())
        }
        ProviderError::RateLimited { .. }
        | ProviderError::QuotaExceeded(_)
        | ProviderError::Transient(_)
        | ProviderError::Unauthorized => Outcome::Later {
            reason: e.to_string(),
            counts: true,
        },
        ProviderError::InvalidGrant(_) => Outcome::Later {
            reason: "the mailbox must be linked again".into(),
            counts: false,
        },
        ProviderError::InvalidClient(_)
        | ProviderError::CursorExpired
        | ProviderError::Permanent(_) => Outcome::Refused(e.to_string()),
    }
}

/// The change one message still needs: per field, the newest row that sets it.
fn wanted(rows: &[&OutboxRow]) -> MessageChange {
    let mut c = MessageChange::default();
    for r in rows {
        if r.unread.is_some() {
            c.unread = r.unread;
        }
        if r.starred.is_some() {
            c.starred = r.starred;
        }
        if r.folder.is_some() {
            c.folder = r.folder.clone();
        }
        if r.todo.is_some() {
            c.todo = r.todo;
            c.todo_due_at = r.todo_due_at;
        }
    }
    c
}

/// Sends `rows` (all held by `lock`) to their providers and settles them in the outbox.
pub async fn deliver(
    state: &AppState,
    rows: Vec<OutboxRow>,
    lock: &str,
) -> Result<Delivery, DbError> {
    let mut by_account: BTreeMap<i64, Vec<OutboxRow>> = BTreeMap::new();
    for r in rows {
        by_account.entry(r.account_id).or_default().push(r);
    }
    let mut out = Delivery::default();
    for (account_id, rows) in by_account {
        deliver_account(state, account_id, rows, lock, &mut out).await?;
    }
    Ok(out)
}

async fn deliver_account(
    state: &AppState,
    account_id: i64,
    rows: Vec<OutboxRow>,
    lock: &str,
    out: &mut Delivery,
) -> Result<(), DbError> {
    let now = now_millis();
    let account = state
        .db
        .run(move |c| crate::db::accounts::get(c, account_id))
        .await?;
    let provider = match state.registry.get(&account.provider) {
        Ok(p) => p,
        Err(_) => {
            // An account of a provider this build does not serve: nothing can ever deliver it.
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            out.pending.extend(rows.iter().map(|r| r.message_id));
            let next = now + MAX_BACKOFF_SECS as i64 * 1000;
            state
                .db
                .run(move |c| changes::postpone(c, &ids, next, "unknown provider", false, now))
                .await?;
            return Ok(());
        }
    };

    // An older change of the same message still on its way must land first: leave these to the
    // worker, which sends the newest wanted state once the older one is settled.
    let max_id = rows.iter().map(|r| r.id).max().unwrap_or(0);
    let message_ids: Vec<i64> = rows.iter().map(|r| r.message_id).collect();
    let busy = {
        let lock = lock.to_string();
        state
            .db
            .run(move |c| changes::busy_messages(c, &message_ids, max_id, &lock))
            .await?
    };
    let (waiting, rows): (Vec<OutboxRow>, Vec<OutboxRow>) =
        rows.into_iter().partition(|r| busy.contains(&r.message_id));
    if !waiting.is_empty() {
        out.pending.extend(waiting.iter().map(|r| r.message_id));
        let ids: Vec<i64> = waiting.iter().map(|r| r.id).collect();
        state
            .db
            .run(move |c| {
                changes::postpone(
                    c,
                    &ids,
                    now + 1000,
                    "waiting for an earlier change",
                    false,
                    now,
                )
            })
            .await?;
        state.writeback.wake.notify_one();
    }

    // One provider call per group of messages that need the same change.
    let mut per_message: BTreeMap<i64, Vec<&OutboxRow>> = BTreeMap::new();
    for r in &rows {
        per_message.entry(r.message_id).or_default().push(r);
    }
    let mut groups: Vec<(MessageChange, Vec<i64>)> = Vec::new();
    for (message_id, rs) in &per_message {
        let want = wanted(rs);
        match groups.iter_mut().find(|(c, _)| *c == want) {
            Some((_, ids)) => ids.push(*message_id),
            None => groups.push((want, vec![*message_id])),
        }
    }
    let provider_ids: HashMap<i64, String> = rows
        .iter()
        .map(|r| (r.message_id, r.provider_message_id.clone()))
        .collect();
    let mut calls = Vec::new();
    for (change, ids) in &groups {
        for chunk in ids.chunks(provider.modify_batch_size().max(1)) {
            calls.push((change.clone(), chunk.to_vec()));
        }
    }
    let token = match tokens::access_token(state, provider.as_ref(), account_id, false).await {
        Ok(t) => Some(t),
        Err(e) => {
            log::info!("mail account {account_id}: changes wait for the provider: {e}");
            None
        }
    };
    let results: Vec<(Vec<i64>, Outcome)> = match &token {
        None => calls
            .into_iter()
            .map(|(_, ids)| {
                (
                    ids,
                    Outcome::Later {
                        reason: "no usable access token".into(),
                        counts: false,
                    },
                )
            })
            .collect(),
        Some(token) => {
            let provider = provider.as_ref();
            let provider_ids = &provider_ids;
            stream::iter(calls)
                .map(|(change, ids)| async move {
                    let pids: Vec<String> = ids
                        .iter()
                        .filter_map(|id| provider_ids.get(id).cloned())
                        .collect();
                    let result = modify(state, provider, account_id, token, &pids, &change).await;
                    let trashing = change.folder.as_deref() == Some(folder::TRASH);
                    let o = match result {
                        Ok(()) => Outcome::Done,
                        Err(e) => {
                            state.metrics.provider_error(provider.id(), e.kind());
                            outcome(&e, trashing)
                        }
                    };
                    (ids, o)
                })
                .buffer_unordered(state.settings.sync.concurrency.max(1))
                .collect()
                .await
        }
    };

    let max_attempts = state.settings.mail.outbox_max_attempts as i32;
    let mut done_rows = Vec::new();
    let mut refused_rows = Vec::new();
    let mut later: Vec<(Vec<i64>, i64, String, bool)> = Vec::new();
    for (ids, o) in results {
        let rows_of = |id: &i64| per_message.get(id).cloned().unwrap_or_default();
        match o {
            Outcome::Done => {
                out.delivered.extend(&ids);
                done_rows.extend(ids.iter().flat_map(rows_of).map(|r| r.id));
            }
            Outcome::Refused(reason) => {
                log::warn!(
                    "mail account {account_id}: {} refused a change of {} message(s) for good, undone here: {reason}",
                    provider.id(),
                    ids.len()
                );
                out.refused
                    .extend(ids.iter().map(|id| (*id, provider.display_name())));
                refused_rows.extend(ids.iter().flat_map(rows_of).cloned());
            }
            Outcome::Later { reason, counts } => {
                for id in &ids {
                    let rs = rows_of(id);
                    let attempts =
                        rs.iter().map(|r| r.attempts).max().unwrap_or(0) + i32::from(counts);
                    if counts && attempts >= max_attempts {
                        log::warn!(
                            "mail account {account_id}: giving up a change of message {id} after {attempts} attempts ({reason})"
                        );
                        out.refused.push((*id, provider.display_name()));
                        refused_rows.extend(rs.into_iter().cloned());
                        continue;
                    }
                    out.pending.push(*id);
                    let next =
                        now + backoff_ms(state.settings.mail.outbox_retry_secs, attempts.max(1));
                    later.push((
                        rs.iter().map(|r| r.id).collect(),
                        next,
                        reason.clone(),
                        counts,
                    ));
                }
            }
        }
    }
    state
        .db
        .run(move |c| {
            changes::complete(c, &done_rows)?;
            for (ids, next, reason, counts) in &later {
                changes::postpone(c, ids, *next, reason, *counts, now)?;
            }
            changes::revert(c, &refused_rows, now)
        })
        .await?;
    Ok(())
}

/// One provider call, with one token refresh when the provider refuses the token.
async fn modify(
    state: &AppState,
    provider: &dyn MailProvider,
    account_id: i64,
    token: &SecretString,
    ids: &[String],
    change: &MessageChange,
) -> Result<(), ProviderError> {
    match provider.modify(token, ids, change).await {
        Err(ProviderError::Unauthorized) => {
            let fresh = tokens::access_token(state, provider, account_id, true)
                .await
                .map_err(|e| match e {
                    TokenError::Provider(p) => p,
                    TokenError::Reauth(why) => ProviderError::InvalidGrant(why),
                    TokenError::Internal(why) => ProviderError::Transient(why),
                })?;
            provider.modify(&fresh, ids, change).await
        }
        other => other,
    }
}

/// `base · 2^(attempt-1)` seconds, at most an hour, ±20 % so retries spread out.
pub(crate) fn backoff_ms(base_secs: u64, attempt: i32) -> i64 {
    let exp = (attempt.max(1) - 1).min(16) as u32;
    let secs = base_secs.saturating_mul(1u64 << exp).min(MAX_BACKOFF_SECS);
    let d =
        Duration::from_secs(secs).mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.8..1.2));
    d.as_millis() as i64
}

/// Starts the worker that retries what the provider did not take at once.
pub fn spawn(state: web::Data<AppState>) {
    spawn_queue(
        state,
        "outbox",
        |s| &s.writeback.wake,
        |c, lock, now| changes::claim_due(c, lock, now, now + LOCK_MS, BATCH),
        |state, rows, lock| async move {
            let n = rows.len();
            deliver(&state, rows, &lock)
                .await
                .map(|d| {
                    format!(
                        "{n} change(s): {} delivered, {} pending, {} refused",
                        d.delivered.len(),
                        d.pending.len(),
                        d.refused.len()
                    )
                })
                .map_err(|e| e.to_string())
        },
    );
}

/// The loop of every queue worker: claim due rows, deliver them and look again at once; with
/// nothing due, sleep until woken or for the retry interval (at most 5 s).
pub(crate) fn spawn_queue<R, Fut>(
    state: web::Data<AppState>,
    what: &'static str,
    wake: fn(&AppState) -> &tokio::sync::Notify,
    claim: fn(&mut crate::db::DbConnection, &str, i64) -> Result<Vec<R>, crate::db::DbError>,
    deliver: impl Fn(web::Data<AppState>, Vec<R>, String) -> Fut + 'static,
) where
    R: Send + 'static,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    actix_web::rt::spawn(async move {
        let poll = Duration::from_secs(state.settings.mail.outbox_retry_secs.clamp(1, 5));
        loop {
            let lock = lock_name(&state);
            let now = now_millis();
            let claimed = {
                let lock = lock.clone();
                state.db.run(move |c| claim(c, &lock, now)).await
            };
            match claimed {
                Ok(rows) if !rows.is_empty() => {
                    match deliver(state.clone(), rows, lock).await {
                        Ok(summary) => log::info!("{what}: {summary}"),
                        Err(e) => log::error!("{what} delivery failed: {e}"),
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => log::error!("{what}: looking for due work failed: {e}"),
            }
            let _ = tokio::time::timeout(poll, wake(&state).notified()).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let b = |a| backoff_ms(30, a);
        assert!((24_000..=36_000).contains(&b(1)));
        assert!((48_000..=72_000).contains(&b(2)));
        assert!((2_880_000..=4_320_000).contains(&b(30)));
    }

    #[test]
    fn only_lasting_refusals_undo_a_change() {
        assert!(matches!(
            outcome(&ProviderError::Transient("503".into()), false),
            Outcome::Later { counts: true, .. }
        ));
        assert!(matches!(
            outcome(&ProviderError::RateLimited { retry_after: None }, false),
            Outcome::Later { .. }
        ));
        assert!(matches!(
            outcome(&ProviderError::InvalidGrant("x".into()), false),
            Outcome::Later { counts: false, .. }
        ));
        assert!(matches!(
            outcome(&ProviderError::Permanent("400".into()), false),
            Outcome::Refused(_)
        ));
        assert!(matches!(
            outcome(&ProviderError::NotFound, true),
            Outcome::Done
        ));
        assert!(matches!(
            outcome(&ProviderError::NotFound, false),
            Outcome::Refused(_)
        ));
    }
}
