//! The mass-mailing worker: claims recipients from the database (see `db::mass`), sends each one
//! its own message through the provider's two-step send, and records the result.
//!
//! Exactly once: the claim records the intent (`sending`, a lease, the recipient's Message-ID
//! fixed at creation) before the provider hears of the message; the result is written after.
//! A recipient found `sending` with a lapsed lease (the process died, or the provider left it
//! open whether it took the message) is first looked up at the provider by its Message-ID
//! (`find_sent`): found → sent; not found → sent now. Leases are renewed while a send is in
//! flight, so a slow provider call is never taken over.
//!
//! Pace: one send per interval per account (the settings' rate, or a job's lower `rate`), kept
//! in the database so every job and replica of the account share it. A 429 holds the account
//! back for its `Retry-After` and halves the rate (won back gradually); the recipient goes back
//! to the queue without counting a try. A quota error pauses the job with the reason.

pub mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web;

use crate::api::mail_general_settings::effective;
use crate::crypto::SecretString;
use crate::db::mass::{self as store, job_status, AccountSlots, Claimed, JobRow, Outcome};
use crate::db::{self, now_millis};
use crate::providers::{MailProvider, OutgoingSend, ProviderError};
use crate::send::address::{EmailAddress, Mailbox};
use crate::send::mime::Attachment;
use crate::send::template::UserValues;
use crate::state::AppState;
use crate::sync::tokens::{self, TokenError};
use render::{JobTemplate, RecipientInput};

/// How often the database is asked for work when nothing wakes the worker.
const POLL: Duration = Duration::from_millis(250);
/// How often the queue-depth gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(1);
/// The wait after a 429 without `Retry-After`.
const DEFAULT_RETRY_AFTER_MS: i64 = 2_000;
/// The longest a 429 holds an account back.
const MAX_RETRY_AFTER_MS: i64 = 15 * 60 * 1000;

/// The worker's state in this process.
#[derive(Default)]
pub struct MassState {
    /// Wakes the worker: a job created or resumed, a send finished, the rate changed.
    pub wake: tokio::sync::Notify,
    /// Sends in flight per account in this process.
    inflight: Mutex<HashMap<i64, usize>>,
    /// What every recipient of a job shares (sender, template, attachment bytes).
    jobs: Mutex<HashMap<i64, Arc<Prepared>>>,
}

impl MassState {
    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn job_cache(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Prepared>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what was loaded for a job (it ended).
    pub fn forget(&self, job_id: i64) {
        self.job_cache().remove(&job_id);
    }
}

/// A job's shared parts, loaded once per process.
struct Prepared {
    template: JobTemplate,
    attachments: Vec<Attachment>,
}

pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut gauge_at: Option<Instant> = None;
        loop {
            let wait = match pass(&state).await {
                Ok(wait) => wait,
                Err(e) => {
                    log::error!("mass mailing: claiming recipients failed: {e}");
                    POLL
                }
            };
            if gauge_at.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
                gauge_at = Some(Instant::now());
                resolve_stopped(&state).await;
                match state.db.run(store::queue_depth).await {
                    Ok(n) => state.metrics.set_gauge("email_manager_send_queue_depth", n),
                    Err(e) => log::warn!("mass mailing: reading the queue depth failed: {e}"),
                }
            }
            let _ = tokio::time::timeout(wait, state.mass.wake.notified()).await;
        }
    });
}

/// One claiming pass; answers how long to sleep.
async fn pass(state: &web::Data<AppState>) -> Result<Duration, db::DbError> {
    let settings = effective(state).await;
    let accounts = state.db.run(store::active_accounts).await?;
    if accounts.is_empty() {
        return Ok(POLL);
    }
    let max = state.settings.mail.mass_concurrency;
    let slots: Vec<AccountSlots> = {
        let inflight = state.mass.inflight();
        accounts
            .iter()
            .map(|&account_id| AccountSlots {
                account_id,
                free: max.saturating_sub(inflight.get(&account_id).copied().unwrap_or(0)),
                account_rate: settings.mass_rate_per_minute,
            })
            .filter(|s| s.free > 0)
            .collect()
    };
    if slots.is_empty() {
        return Ok(POLL);
    }
    let now = now_millis();
    let lease_until = now + lease_ms(state);
    let owner = state.sync.owner.clone();
    let pass = state
        .db
        .run(move |c| store::claim(c, &owner, now, lease_until, &slots))
        .await?;
    for c in pass.claimed {
        *state
            .mass
            .inflight()
            .entry(c.recipient.account_id)
            .or_default() += 1;
        let state = state.clone();
        actix_web::rt::spawn(async move {
            let account_id = c.recipient.account_id;
            run_one(&state, c).await;
            if let Some(n) = state.mass.inflight().get_mut(&account_id) {
                *n = n.saturating_sub(1);
            }
            state.mass.wake.notify_one();
        });
    }
    let wait = pass
        .next_wake
        .map(|at| {
            Duration::from_millis((at - now_millis()).clamp(1, POLL.as_millis() as i64) as u64)
        })
        .unwrap_or(POLL);
    Ok(wait)
}

/// Recipients of paused or cancelled jobs that a dead process left `sending`: looked up at the
/// provider by Message-ID (found → sent, not found → queued), never sent from here.
async fn resolve_stopped(state: &web::Data<AppState>) {
    let now = now_millis();
    let (owner, until) = (state.sync.owner.clone(), now + lease_ms(state));
    let claimed = match state
        .db
        .run(move |c| store::claim_stopped_unsure(c, &owner, now, until, 20))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            log::warn!("mass mailing: looking for interrupted sends failed: {e}");
            return;
        }
    };
    for c in claimed {
        let state = state.clone();
        actix_web::rt::spawn(async move {
            let outcome = resolve_only(&state, &c).await;
            let (id, job_id, owner, now) = (
                c.recipient.id,
                c.recipient.job_id,
                state.sync.owner.clone(),
                now_millis(),
            );
            if let Err(e) = state
                .db
                .run(move |db| store::finish(db, id, &owner, &outcome, now).map(|_| ()))
                .await
            {
                log::warn!("mass mailing {job_id}: recording recipient {id} failed: {e}");
            }
        });
    }
}

async fn resolve_only(state: &AppState, c: &Claimed) -> Outcome {
    let r = &c.recipient;
    let account_id = r.account_id;
    let later = |error: String| Outcome::Unsure {
        retry_at: now_millis() + backoff_ms(r.attempts.max(3)),
        error,
    };
    let account = match state
        .db
        .run(move |db| db::accounts::get(db, account_id))
        .await
    {
        Ok(a) => a,
        Err(e) => return later(e.to_string()),
    };
    let Ok(provider) = state.registry.get(&account.provider) else {
        return later(format!("unknown provider {}", account.provider));
    };
    let token = match token(state, provider.as_ref(), account_id, false).await {
        Ok(t) => t,
        Err(NoToken::Reauth(why) | NoToken::Later(why)) => return later(why),
    };
    match provider.find_sent(&token, &r.message_id).await {
        Ok(Some(sent)) => Outcome::Sent {
            provider_message_id: sent.provider_message_id,
        },
        Ok(None) => Outcome::Requeue {
            not_before: now_millis(),
            error: None,
            counted: false,
        },
        Err(e) => later(format!("could not check whether it was sent: {e}")),
    }
}

fn lease_ms(state: &AppState) -> i64 {
    state.settings.mail.mass_lease_secs as i64 * 1000
}

/// What a send did besides its recipient's outcome.
enum Effect {
    None,
    /// Sent: win back part of a lowered rate.
    SpeedUp,
    /// A 429: hold the account back until then.
    SlowDown(i64),
    /// Pause the job with this reason (quota used up, mailbox to re-link).
    Pause(String),
}

/// Sends one claimed recipient, renewing its lease meanwhile, and records the result.
async fn run_one(state: &web::Data<AppState>, c: Claimed) {
    let r = &c.recipient;
    let (id, job_id, account_id) = (r.id, r.job_id, r.account_id);
    let owner = state.sync.owner.clone();
    let job = match state.db.run(move |db| store::job_by_id(db, job_id)).await {
        Ok(j) => j,
        Err(e) => {
            log::warn!("mass mailing {job_id}: reading the job failed: {e}");
            give_back(state, &c).await;
            return;
        }
    };
    // Paused or cancelled since the claim: nothing new starts.
    if job.status != job_status::RUNNING {
        give_back(state, &c).await;
        return;
    }

    let send = deliver(state, &job, &c);
    tokio::pin!(send);
    let every = Duration::from_millis((lease_ms(state) / 3).max(100) as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let (outcome, effect) = loop {
        tokio::select! {
            done = &mut send => break done,
            _ = tick.tick() => {
                let (o, until) = (owner.clone(), now_millis() + lease_ms(state));
                if let Err(e) = state.db.run(move |db| store::renew(db, &[id], &o, until)).await {
                    log::warn!("mass mailing {job_id}: renewing recipient {id}'s claim failed: {e}");
                }
            }
        }
    };

    let provider = state
        .db
        .run(move |db| db::accounts::get(db, account_id))
        .await
        .map(|a| a.provider)
        .unwrap_or_default();
    let now = now_millis();
    let o = owner.clone();
    let out = outcome.clone();
    let recorded = state
        .db
        .run(move |db| {
            let mine = store::finish(db, id, &o, &out, now)?;
            match &effect {
                Effect::None => {}
                Effect::SpeedUp => store::speed_up(db, account_id, now)?,
                Effect::SlowDown(until) => store::slow_down(db, account_id, *until, now)?,
                Effect::Pause(reason) => {
                    store::set_job_status(
                        db,
                        job_id,
                        &[job_status::RUNNING],
                        job_status::PAUSED,
                        Some(reason),
                        now,
                    )?;
                }
            }
            let done = store::complete_if_done(db, job_id, now)?;
            Ok((mine, done))
        })
        .await;
    match recorded {
        Ok((mine, done)) => {
            if !mine {
                log::warn!(
                    "mass mailing {job_id}: recipient {id} was taken over before its result was recorded"
                );
            }
            match &outcome {
                Outcome::Sent { .. } => state.metrics.inc(
                    "email_manager_mass_messages_sent_total",
                    format!("provider=\"{provider}\""),
                ),
                Outcome::Failed { error } => {
                    log::info!("mass mailing {job_id}: recipient {id} failed: {error}");
                    state.metrics.inc(
                        "email_manager_mass_messages_failed_total",
                        format!("provider=\"{provider}\""),
                    )
                }
                _ => {}
            }
            if done {
                log::info!("mass mailing {job_id} completed");
                state.mass.forget(job_id);
            }
        }
        // The claim lapses and the next one resolves the recipient by its Message-ID.
        Err(e) => log::error!("mass mailing {job_id}: recording recipient {id} failed: {e}"),
    }
}

async fn give_back(state: &AppState, c: &Claimed) {
    let (c2, owner, now) = (c.clone(), state.sync.owner.clone(), now_millis());
    if let Err(e) = state
        .db
        .run(move |db| store::release(db, &c2, &owner, now))
        .await
    {
        log::warn!(
            "mass mailing {}: giving back recipient {} failed: {e}",
            c.recipient.job_id,
            c.recipient.id
        );
    }
}

/// The job's shared parts, from the cache or loaded now.
async fn prepared(state: &AppState, job: &JobRow) -> Result<Arc<Prepared>, String> {
    if let Some(p) = state.mass.job_cache().get(&job.id) {
        return Ok(p.clone());
    }
    let address = EmailAddress::parse(&job.from_address)
        .map_err(|e| format!("the sender {} is not usable: {e}", job.from_address))?;
    let from = Mailbox::new(job.from_name.as_deref(), address);
    let ids: Vec<i64> = serde_json::from_str(&job.attachments).unwrap_or_default();
    let mut attachments = Vec::with_capacity(ids.len());
    for upload_id in ids {
        let (row, path) = crate::api::mail_uploads::open_upload(state, job.user_id, upload_id)
            .await
            .map_err(|e| format!("attachment upload {upload_id}: {}", e.message))?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("attachment upload {upload_id} could not be read: {e}"))?;
        attachments.push(Attachment {
            filename: row.filename,
            content_type: row.content_type,
            bytes,
        });
    }
    let p = Arc::new(Prepared {
        template: JobTemplate {
            user: UserValues {
                nickname: from.name.clone(),
                email: Some(from.address.to_unicode()),
            },
            from,
            subject: job.subject.clone(),
            html: job.html.clone(),
            text: job.text_body.clone(),
        },
        attachments,
    });
    let mut cache = state.mass.job_cache();
    if cache.len() >= 64 {
        cache.clear();
    }
    cache.insert(job.id, p.clone());
    Ok(p)
}

/// Backoff for a retry after `attempts` tries: 1 s doubling, at most a minute.
fn backoff_ms(attempts: i32) -> i64 {
    1000i64 * (1i64 << (attempts.clamp(1, 7) - 1)).min(60)
}

fn retry_after_ms(e: &ProviderError) -> i64 {
    match e {
        ProviderError::RateLimited {
            retry_after: Some(d),
        } => (d.as_millis() as i64).clamp(100, MAX_RETRY_AFTER_MS),
        _ => DEFAULT_RETRY_AFTER_MS,
    }
}

fn quota_reason(provider: &dyn MailProvider, e: &ProviderError) -> String {
    let detail = match e {
        ProviderError::QuotaExceeded(m) => m.as_str(),
        _ => "",
    };
    format!(
        "{}'s sending limit for this mailbox was reached ({}); resume the job once the limit resets",
        provider.display_name(),
        crate::providers::http::truncate(detail, 200)
    )
}

/// Sends (or resolves) one recipient; answers its outcome and what it means for the job and the
/// account. Never sends a recipient whose earlier try may have gone out without asking the
/// provider first.
async fn deliver(state: &AppState, job: &JobRow, c: &Claimed) -> (Outcome, Effect) {
    let r = &c.recipient;
    let now = now_millis();
    let max_attempts = state.settings.mail.mass_max_attempts as i32;
    let account_id = job.account_id;
    let account = match state
        .db
        .run(move |db| db::accounts::get(db, account_id))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            return (
                unsure_or_requeue(c, now + backoff_ms(r.attempts), format!("{e}")),
                Effect::None,
            )
        }
    };
    let provider = match state.registry.get(&account.provider) {
        Ok(p) => p,
        Err(e) => {
            return (
                Outcome::Failed {
                    error: e.message.clone(),
                },
                Effect::None,
            )
        }
    };
    let provider = provider.as_ref();
    let mut token = match token(state, provider, account_id, false).await {
        Ok(t) => t,
        Err(failed) => return failed.into_result(c, r.attempts),
    };
    let mut refreshed = false;

    // An earlier try may have gone out: the provider decides.
    if c.resume {
        loop {
            match provider.find_sent(&token, &r.message_id).await {
                Ok(Some(sent)) => {
                    log::info!(
                        "mass mailing {}: recipient {} had been sent already",
                        job.id,
                        r.id
                    );
                    return (
                        Outcome::Sent {
                            provider_message_id: sent.provider_message_id,
                        },
                        Effect::SpeedUp,
                    );
                }
                Ok(None) => break,
                Err(ProviderError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    match self::token(state, provider, account_id, true).await {
                        Ok(t) => token = t,
                        Err(failed) => return failed.into_result(c, r.attempts),
                    }
                }
                Err(e) => {
                    state.metrics.provider_error(provider.id(), e.kind());
                    let effect = match &e {
                        ProviderError::RateLimited { .. } => {
                            Effect::SlowDown(now_millis() + retry_after_ms(&e))
                        }
                        _ => Effect::None,
                    };
                    // Still unknown: ask again later, never send blindly.
                    return (
                        Outcome::Unsure {
                            retry_at: now_millis() + backoff_ms(r.attempts),
                            error: format!("could not check whether it was sent: {e}"),
                        },
                        effect,
                    );
                }
            }
        }
        if r.attempts > max_attempts {
            return (
                Outcome::Failed {
                    error: r
                        .error
                        .clone()
                        .unwrap_or_else(|| "not sent after the allowed tries".into()),
                },
                Effect::None,
            );
        }
    }

    let shared = match prepared(state, job).await {
        Ok(p) => p,
        Err(why) => return (Outcome::Failed { error: why }, Effect::None),
    };
    let to = match EmailAddress::parse(&r.email) {
        Ok(a) => Mailbox::new(r.name.as_deref(), a),
        Err(e) => {
            return (
                Outcome::Failed {
                    error: e.to_string(),
                },
                Effect::None,
            )
        }
    };
    let vars: Option<serde_json::Map<String, serde_json::Value>> = r
        .variables
        .as_deref()
        .and_then(|v| serde_json::from_str(v).ok());
    let rendered = render::render_for(
        &shared.template,
        &RecipientInput {
            email: &r.email,
            name: r.name.as_deref(),
            variables: vars.as_ref(),
        },
    );
    let message = render::message(
        &shared.template,
        to,
        rendered,
        &r.message_id,
        &shared.attachments,
    );
    let raw = match message.build(true) {
        Ok(raw) => raw,
        Err(e) => {
            return (
                Outcome::Failed {
                    error: e.to_string(),
                },
                Effect::None,
            )
        }
    };
    let send = OutgoingSend {
        message: &message,
        raw: &raw,
        reply: None,
    };

    let prepared = loop {
        match provider.prepare_send(&token, &send).await {
            Ok(p) => break p,
            Err(ProviderError::Unauthorized) if !refreshed => {
                refreshed = true;
                match self::token(state, provider, account_id, true).await {
                    Ok(t) => token = t,
                    Err(failed) => return failed.into_result(c, r.attempts),
                }
            }
            // Nothing was sent: whatever happened, the recipient can go again.
            Err(e) => return refused_before_send(state, provider, c, e),
        }
    };
    loop {
        match provider.commit_send(&token, &send, &prepared).await {
            Ok(sent) => {
                return (
                    Outcome::Sent {
                        provider_message_id: sent.provider_message_id,
                    },
                    Effect::SpeedUp,
                )
            }
            // Refused before it was taken: the same prepared message may go again.
            Err(ProviderError::Unauthorized) if !refreshed => {
                refreshed = true;
                match self::token(state, provider, account_id, true).await {
                    Ok(t) => token = t,
                    Err(failed) => {
                        abandon(provider, &token, &prepared).await;
                        return failed.into_result(c, r.attempts);
                    }
                }
            }
            // The provider may have taken it: only a lookup by Message-ID may tell.
            Err(e @ (ProviderError::Transient(_) | ProviderError::NotFound)) => {
                state.metrics.provider_error(provider.id(), e.kind());
                return (
                    Outcome::Unsure {
                        retry_at: now_millis() + backoff_ms(r.attempts),
                        error: format!("{} did not confirm the send: {e}", provider.display_name()),
                    },
                    Effect::None,
                );
            }
            Err(e) => {
                abandon(provider, &token, &prepared).await;
                return refused_before_send(state, provider, c, e);
            }
        }
    }
}

/// A failure that leaves the recipient unsent for sure.
fn refused_before_send(
    state: &AppState,
    provider: &dyn MailProvider,
    c: &Claimed,
    e: ProviderError,
) -> (Outcome, Effect) {
    state.metrics.provider_error(provider.id(), e.kind());
    let r = &c.recipient;
    let now = now_millis();
    let max_attempts = state.settings.mail.mass_max_attempts as i32;
    match &e {
        ProviderError::RateLimited { .. } => {
            let until = now + retry_after_ms(&e);
            (
                Outcome::Requeue {
                    not_before: until,
                    error: None,
                    counted: false,
                },
                Effect::SlowDown(until),
            )
        }
        ProviderError::QuotaExceeded(_) => (
            Outcome::Requeue {
                not_before: now,
                error: None,
                counted: false,
            },
            Effect::Pause(quota_reason(provider, &e)),
        ),
        ProviderError::InvalidGrant(_) | ProviderError::Unauthorized => (
            Outcome::Requeue {
                not_before: now,
                error: None,
                counted: false,
            },
            Effect::Pause(format!(
                "{} refused the mailbox's sign-in; link the mailbox again, then resume",
                provider.display_name()
            )),
        ),
        ProviderError::Transient(_) if r.attempts < max_attempts => (
            Outcome::Requeue {
                not_before: now + backoff_ms(r.attempts),
                error: Some(e.to_string()),
                counted: true,
            },
            Effect::None,
        ),
        _ => (
            Outcome::Failed {
                error: format!("{} refused the message: {e}", provider.display_name()),
            },
            Effect::None,
        ),
    }
}

fn unsure_or_requeue(c: &Claimed, at: i64, error: String) -> Outcome {
    if c.resume {
        Outcome::Unsure {
            retry_at: at,
            error,
        }
    } else {
        Outcome::Requeue {
            not_before: at,
            error: Some(error),
            counted: true,
        }
    }
}

/// Why no token could be had.
enum NoToken {
    Reauth(String),
    Later(String),
}

impl NoToken {
    fn into_result(self, c: &Claimed, attempts: i32) -> (Outcome, Effect) {
        let now = now_millis();
        match self {
            NoToken::Reauth(why) => (
                if c.resume {
                    Outcome::Unsure {
                        retry_at: now,
                        error: why.clone(),
                    }
                } else {
                    Outcome::Requeue {
                        not_before: now,
                        error: None,
                        counted: false,
                    }
                },
                Effect::Pause(format!(
                    "the mailbox must be linked again before the job can go on ({why})"
                )),
            ),
            NoToken::Later(why) => (
                unsure_or_requeue(c, now + backoff_ms(attempts), why),
                Effect::None,
            ),
        }
    }
}

async fn token(
    state: &AppState,
    provider: &dyn MailProvider,
    account_id: i64,
    force: bool,
) -> Result<SecretString, NoToken> {
    tokens::access_token(state, provider, account_id, force)
        .await
        .map_err(|e| match e {
            TokenError::Reauth(why) => NoToken::Reauth(why),
            other => NoToken::Later(other.to_string()),
        })
}

async fn abandon(
    provider: &dyn MailProvider,
    token: &SecretString,
    p: &crate::providers::PreparedSend,
) {
    if let Err(e) = provider.abandon_send(token, p).await {
        log::warn!("removing an unsent draft at {} failed: {e}", provider.id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 2000);
        assert_eq!(backoff_ms(4), 8000);
        assert_eq!(backoff_ms(30), 60_000);
    }

    #[test]
    fn quota_answers_are_told_from_rate_limits() {
        use reqwest::StatusCode;
        let gmail_quota = r#"{"error":{"code":429,"message":"User-rate limit exceeded.  Retry after 2026-12-02T10:00:00.000Z (Mail sending)","errors":[{"message":"x","domain":"usageLimits","reason":"rateLimitExceeded"}],"status":"RESOURCE_EXHAUSTED"}}"#;
        let gmail_rate = r#"{"error":{"code":429,"message":"User-rate limit exceeded.","errors":[{"message":"x","domain":"usageLimits","reason":"rateLimitExceeded"}],"status":"RESOURCE_EXHAUSTED"}}"#;
        let gmail_daily = r#"{"error":{"code":403,"message":"Daily Limit Exceeded","errors":[{"domain":"usageLimits","reason":"dailyLimitExceeded"}]}}"#;
        let google = crate::providers::google::classify;
        assert!(matches!(
            google(StatusCode::TOO_MANY_REQUESTS, gmail_quota),
            Some(ProviderError::QuotaExceeded(m)) if m.contains("Mail sending")
        ));
        assert!(google(StatusCode::TOO_MANY_REQUESTS, gmail_rate).is_none());
        assert!(matches!(
            google(StatusCode::FORBIDDEN, gmail_daily),
            Some(ProviderError::QuotaExceeded(_))
        ));
        let graph = crate::providers::microsoft::classify;
        let exchange = r#"{"error":{"code":"ErrorQuotaExceeded","message":"The sender has exceeded the quota."}}"#;
        assert!(matches!(
            graph(StatusCode::FORBIDDEN, exchange),
            Some(ProviderError::QuotaExceeded(m)) if m.contains("exceeded the quota")
        ));
        let throttled = r#"{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}"#;
        assert!(graph(StatusCode::TOO_MANY_REQUESTS, throttled).is_none());
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let e = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(retry_after_ms(&e), 3000);
        let e = ProviderError::RateLimited { retry_after: None };
        assert_eq!(retry_after_ms(&e), DEFAULT_RETRY_AFTER_MS);
    }
}
