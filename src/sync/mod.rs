//! Mail sync: brings a linked mailbox in step with the provider, page by page.
//!
//! Pages from the provider adapter are committed in batches (the first page alone, then a few
//! thousand changes at a time), each in one transaction together with the cursor that covers it,
//! so a crash replays the last batch at worst and never skips one; upserts are
//! keyed on (account, provider message id), so a replay changes nothing. A full listing numbers
//! itself (`sync_gen`) and, when it ends, removes what it did not see: that is how an expired
//! cursor turns into a resync that loses nothing and duplicates nothing.

pub mod parse;
pub mod scheduler;
pub mod tokens;

pub mod labels;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures_util::{stream, StreamExt};
use serde_json::json;

use crate::crypto::random_token;
use crate::db::messages::{self as store, Known, StateUpdate};
use crate::db::models::{MailFolderRow, NewMailAttachment, NewMailMessage};
use crate::db::sync::{self as book, Counts};
use crate::db::WriteTransaction;
use crate::db::{self, now_millis, DbConnection, DbError};
use crate::providers::{Change, MailProvider, MessageState, ProviderError, SyncPage, TodoMirror};
use crate::state::AppState;
use tokens::TokenError;

/// Process-wide sync state, part of `AppState`.
pub struct SyncState {
    pub tokens: tokens::TokenLocks,
    /// This process's name on leases.
    pub owner: String,
    /// Accounts this process is syncing now (the lease guards across processes).
    running: Mutex<HashSet<i64>>,
    /// Wakes the scheduler when an account becomes due (link, `mailAccounts:sync`).
    pub wake: tokio::sync::Notify,
}

impl Default for SyncState {
    fn default() -> Self {
        Self {
            tokens: Default::default(),
            owner: format!("{}-{}", std::process::id(), random_token(6).to_lowercase()),
            running: Mutex::new(HashSet::new()),
            wake: tokio::sync::Notify::new(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: i64,
    pub kind: &'static str,
    pub counts: Counts,
    pub error: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("a sync of this account is already running")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Guards `running` so an account leaves it however the run ends.
struct Running<'a>(&'a SyncState, i64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut set = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.1);
    }
}

fn start_running(sync: &SyncState, id: i64) -> Option<Running<'_>> {
    let mut set = sync.running.lock().unwrap_or_else(|e| e.into_inner());
    set.insert(id).then(|| Running(sync, id))
}

/// Syncs one account now (incremental, or a full listing when it has no cursor). `resync` drops
/// the cursor first.
pub async fn run(state: &AppState, account_id: i64, resync: bool) -> Result<RunSummary, SyncError> {
    let Some(_running) = start_running(&state.sync, account_id) else {
        return Err(SyncError::Busy);
    };
    let owner = state.sync.owner.clone();
    let lease_ms = (state.settings.sync.lease_secs * 1000) as i64;
    let now = now_millis();
    let claimed = {
        let owner = owner.clone();
        state
            .db
            .run(move |c| book::claim_lease(c, account_id, &owner, now, now + lease_ms))
            .await?
    };
    if !claimed {
        return Err(SyncError::Busy);
    }
    if resync {
        state
            .db
            .run(move |c| store::reset_cursor(c, account_id))
            .await?;
    }
    let account = state
        .db
        .run(move |c| db::accounts::get(c, account_id))
        .await?;
    let mut kind = if resync {
        "resync"
    } else if account.sync_cursor.is_none() {
        "full"
    } else {
        "incremental"
    };
    let run_id = state
        .db
        .run(move |c| book::start_run(c, account_id, kind, now))
        .await?;

    let result = sync_pages(state, account_id, run_id, &mut kind).await;
    let finished = now_millis();
    let error = result.as_ref().err().map(|e| (e.kind(), e.to_string()));
    record(state, kind, error.as_ref().map(|e| e.0));
    match (&error, &result) {
        (Some((k, message)), _) => {
            log::warn!("sync of mail account {account_id} failed ({k}): {message}")
        }
        (None, Ok(c)) => log::info!(
            "mail account {account_id}: {kind} sync done in {} ms (+{} ~{} -{})",
            now_millis() - now,
            c.added,
            c.updated,
            c.removed
        ),
        (None, Err(_)) => {}
    }
    // The admin's setting (mailGeneralSettings), else the configuration's.
    let interval = crate::api::mail_general_settings::effective(state)
        .await
        .sync_interval_secs as i64
        * 1000;
    // ±10 % so accounts linked together drift apart instead of syncing in lockstep.
    let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), -interval / 10..=interval / 10);
    let next = finished + interval + jitter;
    let err = error.clone();
    state
        .db
        .run(move |c| {
            let e = err.as_ref().map(|(k, m)| (*k, m.as_str()));
            book::finish_run(c, run_id, kind, finished, e)?;
            book::release_lease(c, account_id, &owner, finished, next, e.map(|e| e.1))
        })
        .await?;
    // A failed run still committed its pages; the run row has their counts.
    let counts = match result {
        Ok(counts) => counts,
        Err(_) => read_counts(state, run_id).await?,
    };
    Ok(RunSummary {
        run_id,
        kind,
        counts,
        error: error.map(|(k, m)| (k.to_string(), m)),
    })
}

async fn read_counts(state: &AppState, run_id: i64) -> Result<Counts, DbError> {
    state
        .db
        .run(move |c| {
            use crate::db::schema::mail_sync_runs::dsl;
            use diesel::prelude::*;
            let (added, updated, removed) = dsl::mail_sync_runs
                .find(run_id)
                .select((dsl::added, dsl::updated, dsl::removed))
                .first::<(i64, i64, i64)>(c)?;
            Ok(Counts {
                added,
                updated,
                removed,
            })
        })
        .await
}

fn record(state: &AppState, kind: &str, error: Option<&str>) {
    state.metrics.inc(
        "email_manager_sync_runs_total",
        format!("kind=\"{kind}\",result=\"{}\"", error.unwrap_or("ok")),
    );
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the sync lease was taken over by another process")]
    LeaseLost,
}

impl RunError {
    fn kind(&self) -> &'static str {
        match self {
            RunError::Token(TokenError::Reauth(_)) => "reauth_required",
            RunError::Token(TokenError::Provider(e)) | RunError::Provider(e) => e.kind(),
            RunError::Token(TokenError::Internal(_)) => "internal",
            RunError::Db(_) => "database",
            RunError::LeaseLost => "lease_lost",
        }
    }
}

async fn sync_pages(
    state: &AppState,
    account_id: i64,
    run_id: i64,
    kind: &mut &'static str,
) -> Result<Counts, RunError> {
    let account = state
        .db
        .run(move |c| db::accounts::get(c, account_id))
        .await?;
    let provider = state
        .registry
        .get(&account.provider)
        .map_err(|e| ProviderError::Permanent(e.message.clone()))?;
    let window_days = crate::api::mail_general_settings::effective(state)
        .await
        .initial_window_days as i64;
    let since = Some(
        account
            .sync_from
            .unwrap_or_else(|| now_millis() - window_days * 86_400_000),
    );
    let mut cursor = account.sync_cursor.clone();
    // A new listing gets a new generation; resuming one keeps it.
    let mut gen = if cursor.is_none() {
        account.sync_gen + 1
    } else {
        account.sync_gen
    };
    let mut total = Counts::default();
    let mut refreshed = false;
    let mut expired_once = false;
    let lease_ms = (state.settings.sync.lease_secs * 1000) as i64;
    // The next batch, gathered while the current one was being committed, with its cursor.
    let mut prefetched: Option<(String, Result<Gathered, ProviderError>)> = None;
    // Batches gathered after the first with changes: each may hold more than the one before.
    let mut batches: u32 = 0;
    loop {
        let token = tokens::access_token(state, provider.as_ref(), account_id, false).await?;
        let mut leftover = None;
        let fetched = match prefetched.take() {
            Some((from, result)) if cursor.as_deref() == Some(from.as_str()) => result.map(|g| {
                leftover = g.leftover;
                g.batch
            }),
            _ => provider
                .sync_page(&token, cursor.as_deref(), since)
                .await
                .map(Ahead::listing),
        };
        let ahead = match fetched {
            Ok(p) => p,
            Err(ProviderError::Unauthorized) if !refreshed => {
                refreshed = true;
                tokens::access_token(state, provider.as_ref(), account_id, true).await?;
                continue;
            }
            Err(ProviderError::CursorExpired) if !expired_once && cursor.is_some() => {
                log::info!("mail account {account_id}: sync cursor expired, resyncing");
                expired_once = true;
                *kind = "resync";
                cursor = None;
                gen += 1;
                continue;
            }
            Err(e) => {
                state.metrics.provider_error(provider.id(), e.kind());
                return Err(e.into());
            }
        };
        let caught_up = ahead.page.caught_up;
        let new_cursor = ahead.page.cursor.clone();
        // While this batch is written, the next one is already listed, and its new messages
        // downloaded and parsed (unless this batch said there is none); a failed commit drops it.
        let next = (!caught_up).then(|| {
            // This batch's messages are stored (or settled) by the time the next one is applied.
            let committing: HashSet<String> = ahead
                .page
                .changes
                .iter()
                .map(change_id)
                .map(str::to_string)
                .collect();
            // Until a page with changes has been applied (Graph's first page only names the
            // folders), the next batch is one page, so a new mailbox shows its newest mail at
            // once; then batches grow.
            let target = if ahead.page.changes.is_empty() && batches == 0 {
                1
            } else {
                let t = BATCH_FIRST.checked_shl(batches).unwrap_or(BATCH_MAX);
                batches = batches.saturating_add(1);
                t.min(BATCH_MAX)
            };
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_millis(lease_ms as u64 / 4);
            Box::pin(gather(
                state,
                provider.as_ref(),
                token.clone(),
                &account,
                gen,
                since,
                new_cursor.clone(),
                leftover.take(),
                committing,
                (target, deadline),
            )) as NextPage<'_>
        });
        let counts = match apply_page(
            state,
            provider.as_ref(),
            &token,
            &account,
            run_id,
            gen,
            since,
            ahead,
            next,
        )
        .await
        {
            Ok((c, next)) => {
                prefetched = next.map(|n| (new_cursor.clone(), n));
                c
            }
            // The token was refused while downloading (expired or revoked meanwhile): refresh
            // once and fetch the same page again; nothing of it was committed.
            Err(RunError::Provider(ProviderError::Unauthorized)) if !refreshed => {
                refreshed = true;
                tokens::access_token(state, provider.as_ref(), account_id, true).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        refreshed = false;
        total += counts;
        cursor = Some(new_cursor);
        let owner = state.sync.owner.clone();
        let until = now_millis() + lease_ms;
        if !state
            .db
            .run(move |c| book::renew_lease(c, account_id, &owner, until))
            .await?
        {
            return Err(RunError::LeaseLost);
        }
        if caught_up {
            return Ok(total);
        }
    }
}

/// The gathering of the batch after the one being applied.
type NextPage<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Gathered, ProviderError>> + 'a>>;

/// Write batches after the first (which is one provider page, so a new mailbox shows mail within
/// seconds) hold this many changes, then twice as many each time up to [`BATCH_MAX`]: one
/// transaction per few thousand rows costs a quarter less than one per page
/// (docs/benchmarks.md, seventh round).
const BATCH_FIRST: usize = 1000;
const BATCH_MAX: usize = 4000;
/// A batch stops growing once its parsed mail holds this many bytes of bodies in memory.
const BATCH_BYTES: usize = 32 << 20;

/// The next write batch, and a page listed for it but left to the batch after, because it names
/// a message the batch has already: applied together, the two could not keep their order (a
/// Graph move is a removal from one folder and an addition to another).
struct Gathered {
    batch: Ahead,
    leftover: Option<SyncPage>,
}

/// Lists pages from `cursor` (starting with `start`, a page listed already) into one batch,
/// downloading and parsing each page's new messages, until it holds `limits.0` changes or
/// [`BATCH_BYTES`], the listing is caught up or done, or `limits.1` has passed (the lease is
/// renewed only between batches). `committing` names the messages of the batch being committed
/// meanwhile: read from before that commit, the stored snapshot misses them.
#[allow(clippy::too_many_arguments)]
async fn gather(
    state: &AppState,
    provider: &dyn MailProvider,
    token: crate::crypto::SecretString,
    account: &crate::db::models::MailAccountRow,
    gen: i64,
    since: Option<i64>,
    cursor: String,
    mut start: Option<SyncPage>,
    committing: HashSet<String>,
    limits: (usize, std::time::Instant),
) -> Result<Gathered, ProviderError> {
    let (target, deadline) = limits;
    let mut batch: Option<Batch> = None;
    loop {
        let mut page = match start.take() {
            Some(page) => page,
            None => {
                // After the batch's last page, or from where the batch before ended.
                let from = batch.as_ref().map_or(&cursor, |b| &b.ahead.page.cursor);
                provider.sync_page(&token, Some(from), since).await?
            }
        };
        if let Some(b) = batch.take_if(|b| !b.takes(&page)) {
            return Ok(b.done(Some(page)));
        }
        // Read while the batch before is being committed: a snapshot from before that commit,
        // which is why that batch's messages are skipped too.
        let unseen: Vec<String> = page
            .changes
            .iter()
            .map(change_id)
            .filter(|id| !committing.contains(*id))
            .map(str::to_string)
            .collect();
        let account_id = account.id;
        let stored = state
            .db
            .run(move |c| store::known(c, account_id, &unseen))
            .await
            .map_err(|e| ProviderError::Transient(format!("reading stored messages: {e}")))?;
        let skip: HashSet<String> = stored
            .into_keys()
            .chain(committing.iter().cloned())
            .collect();
        let parsed = download_new(
            state,
            provider,
            &token,
            account,
            gen,
            &mut page.changes,
            &skip,
        )
        .await?;
        let bytes = parsed.values().map(|(m, _)| held_bytes(m)).sum();
        let b = match batch.take() {
            None => Batch::new(page, parsed, bytes),
            Some(mut b) => {
                b.add(page, parsed, bytes);
                b
            }
        };
        if b.full(target) || std::time::Instant::now() >= deadline {
            return Ok(b.done(None));
        }
        batch = Some(b);
    }
}

/// A write batch being gathered: listed pages merged in order.
struct Batch {
    ahead: Ahead,
    /// The messages its pages name.
    names: HashSet<String>,
    /// What its parsed messages hold ([`held_bytes`]).
    bytes: usize,
}

impl Batch {
    fn new(page: SyncPage, parsed: HashMap<String, Parsed>, bytes: usize) -> Batch {
        let names = page
            .changes
            .iter()
            .map(change_id)
            .map(str::to_string)
            .collect();
        Batch {
            ahead: Ahead { page, parsed },
            names,
            bytes,
        }
    }

    /// Whether `page` may join: it names no message the batch names already, so applying the
    /// batch at once is applying its pages one after the other.
    fn takes(&self, page: &SyncPage) -> bool {
        !page
            .changes
            .iter()
            .any(|c| self.names.contains(change_id(c)))
    }

    fn add(&mut self, page: SyncPage, parsed: HashMap<String, Parsed>, bytes: usize) {
        self.names
            .extend(page.changes.iter().map(change_id).map(str::to_string));
        self.bytes += bytes;
        let b = &mut self.ahead;
        b.page.changes.extend(page.changes);
        b.page.folders.extend(page.folders);
        b.page.cursor = page.cursor;
        b.page.caught_up = page.caught_up;
        b.page.full_listing_done = page.full_listing_done;
        b.parsed.extend(parsed);
    }

    /// Nothing more may join: the listing is caught up or done, or the batch is big enough.
    fn full(&self, target: usize) -> bool {
        let page = &self.ahead.page;
        page.caught_up
            || page.full_listing_done
            || page.changes.len() >= target
            || self.bytes >= BATCH_BYTES
    }

    /// The batch, with the page listed for it that could not join.
    fn done(self, leftover: Option<SyncPage>) -> Gathered {
        Gathered {
            batch: self.ahead,
            leftover,
        }
    }
}

/// Roughly what a parsed message holds in memory until it is written.
fn held_bytes(m: &NewMailMessage) -> usize {
    let text = |v: &Option<String>| v.as_ref().map_or(0, String::len);
    1024 + text(&m.text_body) + text(&m.html_body) + m.search_text.len()
}

/// A new message as sync stores it: the message row and its attachments' rows.
type Parsed = (NewMailMessage, Vec<NewMailAttachment>);

/// A listed page, with the new messages already downloaded and parsed when it was fetched ahead.
struct Ahead {
    page: SyncPage,
    /// By provider message id. Only a cache: what is stored is decided when the page is applied.
    parsed: HashMap<String, Parsed>,
}

impl Ahead {
    fn listing(page: SyncPage) -> Ahead {
        Ahead {
            page,
            parsed: HashMap::new(),
        }
    }
}

/// Downloaded batches handled (parsed) at once by [`download_mime`]: the two cores' worth.
const HANDLING: usize = 2;

/// The MIME of the messages of `states`, downloaded in the provider's batches with as many in
/// flight as `sync.concurrency` and the provider's limit per mailbox allow (Graph: 4 concurrent
/// requests). A message gone since it was listed is left out: the next changes will say so.
/// Each batch is handed to `then` as soon as it arrives (up to [`HANDLING`] at once, while the
/// next ones download) and its answers are collected: parsing there keeps only the batches in
/// flight as raw MIME, not a whole page of messages with their attachments.
pub async fn download_mime<T, F, Fut>(
    settings: &crate::config::Settings,
    provider: &dyn MailProvider,
    token: &crate::crypto::SecretString,
    states: &[&MessageState],
    then: F,
) -> Result<Vec<T>, ProviderError>
where
    F: Fn(Vec<(MessageState, Vec<u8>)>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, ProviderError>>,
{
    let limit = provider
        .max_concurrency()
        .map_or(settings.sync.concurrency, |max| {
            settings.sync.concurrency.min(max)
        });
    let plan = provider.fetch_plan();
    let in_flight = plan.in_flight.unwrap_or(limit).clamp(1, limit.max(1));
    let then = &then;
    let done: Vec<Result<Vec<T>, ProviderError>> =
        stream::iter(states.chunks(plan.per_call.max(1)))
            .map(|chunk| async move {
                let ids: Vec<String> = chunk
                    .iter()
                    .map(|st| st.provider_message_id.clone())
                    .collect();
                let got = provider.fetch_raw_many(token, &ids).await?;
                Ok::<Vec<(MessageState, Vec<u8>)>, ProviderError>(
                    chunk
                        .iter()
                        .zip(got)
                        .filter_map(|(st, raw)| raw.map(|raw| ((*st).clone(), raw)))
                        .collect(),
                )
            })
            .buffer_unordered(in_flight)
            .map(|raws| async move { then(raws?).await })
            .buffer_unordered(HANDLING)
            .collect()
            .await;
    let mut out = Vec::with_capacity(states.len());
    for r in done {
        out.extend(r?);
    }
    Ok(out)
}

/// Parses MIME into the rows sync writes, on a blocking thread (CPU work, off the async
/// workers, beside the database's own thread).
async fn parse_all(
    account: (i64, i64),
    gen: i64,
    raws: Vec<(MessageState, Vec<u8>)>,
) -> Result<Vec<(String, Parsed)>, ProviderError> {
    let (account_id, user_id) = account;
    actix_web::rt::task::spawn_blocking(move || {
        let now = now_millis();
        raws.into_iter()
            .map(|(st, raw)| {
                let parsed = new_message(account_id, user_id, gen, now, &st, &raw);
                (st.provider_message_id, parsed)
            })
            .collect()
    })
    .await
    .map_err(|_| ProviderError::Transient("parsing was cancelled".into()))
}

/// Downloads ([`download_mime`]) and parses, on a blocking thread, the messages of `changes`
/// not in `skip` (those stored, or parsed already).
async fn download_new(
    state: &AppState,
    provider: &dyn MailProvider,
    token: &crate::crypto::SecretString,
    account: &crate::db::models::MailAccountRow,
    gen: i64,
    changes: &mut [Change],
    skip: &HashSet<String>,
) -> Result<HashMap<String, Parsed>, ProviderError> {
    // The MIME a listing sent along (Gmail) is taken, not copied: it is parsed here only.
    let wanted: Vec<(&MessageState, Option<Vec<u8>>)> = changes
        .iter_mut()
        .filter_map(|c| match c {
            Change::Present { state, raw } if !skip.contains(&state.provider_message_id) => {
                Some((&*state, raw.take()))
            }
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let owner = (account.id, account.user_id);
    let mut raws: Vec<(MessageState, Vec<u8>)> = Vec::with_capacity(wanted.len());
    let mut missing: Vec<&MessageState> = Vec::new();
    for (st, raw) in wanted {
        match raw {
            Some(raw) => raws.push((st.clone(), raw)),
            None => missing.push(st),
        }
    }
    // The MIME a listing brought along (Gmail's first sync); none for the others.
    let mut parsed: HashMap<String, Parsed> = if raws.is_empty() {
        HashMap::new()
    } else {
        parse_all(owner, gen, raws).await?.into_iter().collect()
    };
    let downloaded = download_mime(&state.settings, provider, token, &missing, |raws| {
        parse_all(owner, gen, raws)
    })
    .await?;
    parsed.extend(downloaded);
    Ok(parsed)
}

/// Fetches what the page needs (MIME of messages not stored yet), then commits the page and its
/// cursor in one transaction, running `next` meanwhile (after the downloads, so a mailbox's
/// concurrency limit is not exceeded); answers the counts and what `next` answered.
#[allow(clippy::too_many_arguments)]
async fn apply_page<'a>(
    state: &AppState,
    provider: &dyn MailProvider,
    token: &crate::crypto::SecretString,
    account: &crate::db::models::MailAccountRow,
    run_id: i64,
    gen: i64,
    since: Option<i64>,
    ahead: Ahead,
    next: Option<NextPage<'a>>,
) -> Result<(Counts, Option<Result<Gathered, ProviderError>>), RunError> {
    let account_id = account.id;
    let user_id = account.user_id;
    let Ahead {
        mut page,
        mut parsed,
    } = ahead;
    page.changes = last_change_per_message(page.changes);
    let ids: Vec<String> = page
        .changes
        .iter()
        .map(|c| change_id(c).to_string())
        .collect();
    let known = {
        let ids = ids.clone();
        state
            .db
            .run(move |c| store::known(c, account_id, &ids))
            .await?
    };
    // New messages not fetched ahead: all of them on a page that was not, and any that the
    // page before deleted after the look-ahead saw them stored (a Graph move, say).
    let skip: HashSet<String> = known.keys().chain(parsed.keys()).cloned().collect();
    match download_new(
        state,
        provider,
        token,
        account,
        gen,
        &mut page.changes,
        &skip,
    )
    .await
    {
        Ok(more) => parsed.extend(more),
        Err(e) => {
            state.metrics.provider_error(provider.id(), e.kind());
            return Err(e.into());
        }
    }
    let now = now_millis();
    let user_labels = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|l| provider.is_user_label(l))
            .cloned()
            .collect()
    };
    let mut writes = Vec::with_capacity(page.changes.len());
    for change in page.changes {
        match change {
            Change::Present { state: st, .. } => match known.get(&st.provider_message_id) {
                Some(k) => {
                    let before: Vec<String> =
                        serde_json::from_str(&k.provider_labels).unwrap_or_default();
                    let extra = Extra {
                        before: user_labels(&before),
                        after: user_labels(&st.labels),
                        todo_due_at: st.todo_due_at,
                    };
                    writes.push(Write::Update(Box::new((k.clone(), st, extra))))
                }
                None => {
                    if let Some((mut m, a)) = parsed.remove(&st.provider_message_id) {
                        // Parsed ahead under the same listing; the generation is this page's.
                        m.sync_gen = gen;
                        let extra = Extra {
                            before: Vec::new(),
                            after: user_labels(&st.labels),
                            todo_due_at: st.todo_due_at,
                        };
                        writes.push(Write::Insert(Box::new((m, a, extra))));
                    }
                }
            },
            Change::Removed {
                provider_message_id,
                folder,
            } => {
                if let Some(k) = known.get(&provider_message_id) {
                    // A move shows as removed from the old folder; only that folder's copy goes.
                    if folder.as_deref().is_none_or(|f| f == k.folder) {
                        writes.push(Write::Delete(k.id));
                    }
                }
            }
        }
    }
    let folders: Vec<MailFolderRow> = page
        .folders
        .into_iter()
        .map(|f| MailFolderRow {
            account_id,
            folder: f.folder,
            name: f.name,
            provider_folder_id: f.provider_folder_id,
        })
        .collect();
    let cursor = page.cursor;
    let done = page.full_listing_done;
    let page_labels = labels::PageLabels {
        account_id,
        user_id,
        enabled: state.settings.mail.mirror_labels,
        ids: provider.labels_are_ids(),
        todo: provider.todo_mirror(),
    };
    let write = state.db.run(move |c| {
        c.write_transaction(|c| {
            // Folders first: Gmail's user labels are named there for the labels below.
            store::upsert_folders(c, &folders)?;
            let mut counts = commit(c, writes, gen, now, &page_labels)?;
            if done {
                counts.removed += store::sweep(c, account_id, gen, since)? as i64;
            }
            store::save_cursor(c, account_id, &cursor, gen)?;
            book::add_counts(c, run_id, counts)?;
            Ok::<_, DbError>(counts)
        })
    });
    let (counts, next) = match next {
        Some(next) => {
            let (counts, next) = futures_util::future::join(write, next).await;
            (counts?, Some(next))
        }
        None => (write.await?, None),
    };
    for (change, n) in [
        ("added", counts.added),
        ("updated", counts.updated),
        ("removed", counts.removed),
    ] {
        if n > 0 {
            state.metrics.add(
                "email_manager_sync_messages_total",
                format!("provider=\"{}\",change=\"{change}\"", provider.id()),
                n as u64,
            );
        }
    }
    Ok((counts, next))
}

fn change_id(c: &Change) -> &str {
    match c {
        Change::Present { state, .. } => &state.provider_message_id,
        Change::Removed {
            provider_message_id,
            ..
        } => provider_message_id,
    }
}

/// A page may name a message twice (moved and changed, say): its last word stands, in place.
fn last_change_per_message(changes: Vec<Change>) -> Vec<Change> {
    let mut last: std::collections::HashMap<String, usize> = Default::default();
    for (i, c) in changes.iter().enumerate() {
        last.insert(change_id(c).to_string(), i);
    }
    changes
        .into_iter()
        .enumerate()
        .filter(|(i, c)| last.get(change_id(c)) == Some(i))
        .map(|(_, c)| c)
        .collect()
}

enum Write {
    Insert(Box<(NewMailMessage, Vec<NewMailAttachment>, Extra)>),
    Update(Box<(Known, MessageState, Extra)>),
    Delete(i64),
}

/// What a write carries for labels and to-do: the message's user labels before and after.
struct Extra {
    before: Vec<String>,
    after: Vec<String>,
    todo_due_at: Option<i64>,
}

fn commit(
    c: &mut DbConnection,
    writes: Vec<Write>,
    gen: i64,
    now: i64,
    page: &labels::PageLabels,
) -> Result<Counts, DbError> {
    let mut counts = Counts::default();
    // Fields with a change made here still on its way to the provider keep their local value.
    let updates: Vec<i64> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Update(u) => Some(u.0.id),
            _ => None,
        })
        .collect();
    let held = crate::db::message_changes::held(c, &updates)?;
    let mut diffs: Vec<labels::LabelDiff> = Vec::new();
    // New messages first, in multi-row INSERTs (a page names each message once, so the order
    // against its updates and deletes does not matter).
    let (inserts, writes): (Vec<Write>, Vec<Write>) = writes
        .into_iter()
        .partition(|w| matches!(w, Write::Insert(_)));
    let mut rows = Vec::with_capacity(inserts.len());
    let mut extras = Vec::with_capacity(inserts.len());
    for w in inserts {
        if let Write::Insert(m) = w {
            let (mut message, attachments, extra) = *m;
            // In a mailbox whose to-do is the star or flag, a starred message is a to-do.
            if page.todo.is_on() && message.starred {
                message.todo = true;
                message.todo_due_at = (page.todo == TodoMirror::Flag)
                    .then_some(extra.todo_due_at)
                    .flatten();
            }
            rows.push((message, attachments));
            extras.push(extra);
        }
    }
    let ids = store::insert_many(c, &rows)?;
    for (id, extra) in ids.into_iter().zip(extras) {
        counts.added += 1;
        diffs.push(labels::LabelDiff {
            message_id: id,
            before: extra.before,
            after: extra.after,
        });
    }
    for w in writes {
        match w {
            Write::Insert(_) => {}
            Write::Update(update) => {
                let (k, st, extra) = *update;
                let st = held.keep_local(&k, st);
                let mut todo_changed = false;
                if page.todo.is_on() && !held.holds_todo(k.id) {
                    let due = match page.todo {
                        TodoMirror::Flag => extra.todo_due_at.filter(|_| st.starred),
                        _ => k.todo_due_at,
                    };
                    if k.todo != st.starred || k.todo_due_at != due {
                        store::set_todo(c, k.id, st.starred, due)?;
                        todo_changed = true;
                    }
                }
                diffs.push(labels::LabelDiff {
                    message_id: k.id,
                    before: extra.before,
                    after: extra.after,
                });
                let labels = json!(st.labels).to_string();
                let thread = st.thread_id.clone().unwrap_or_else(|| k.thread_id.clone());
                let changed = k.folder != st.folder
                    || k.provider_labels != labels
                    || k.unread != st.unread
                    || k.starred != st.starred
                    || k.draft != st.draft
                    || k.thread_id != thread;
                if changed || k.sync_gen != gen {
                    store::update_state(
                        c,
                        k.id,
                        &StateUpdate {
                            folder: st.folder,
                            provider_labels: labels,
                            unread: st.unread,
                            starred: st.starred,
                            draft: st.draft,
                            thread_id: thread,
                            sync_gen: gen,
                            updated_at: changed.then_some(now),
                        },
                    )?;
                }
                if changed || todo_changed {
                    counts.updated += 1;
                }
            }
            Write::Delete(id) => {
                store::delete(c, id)?;
                counts.removed += 1;
            }
        }
    }
    labels::reconcile(c, page, &diffs, now)?;
    Ok(counts)
}

/// The rows sync stores for a new message (`raw` is its MIME); public so tests can seed the
/// database exactly the way sync does.
pub fn new_message(
    account_id: i64,
    user_id: i64,
    gen: i64,
    now: i64,
    st: &MessageState,
    raw: &[u8],
) -> (NewMailMessage, Vec<NewMailAttachment>) {
    let p = parse::parse(raw);
    let date = st.received_at.or(p.date).unwrap_or(now);
    // Without a provider thread id, a thread is its root Message-ID (or the message itself).
    let thread_id = st.thread_id.clone().unwrap_or_else(|| {
        p.references
            .as_deref()
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string)
            .or_else(|| p.message_id.clone())
            .unwrap_or_else(|| st.provider_message_id.clone())
    });
    let body_text = p
        .text_body
        .clone()
        .or_else(|| p.html_body.as_deref().map(parse::html_to_text))
        .unwrap_or_default();
    let recipients = |v: &serde_json::Value| -> String {
        v.as_array()
            .map(|list| {
                list.iter()
                    .flat_map(|a| [&a["name"], &a["address"]])
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let search_text = crate::db::message_list::search_document(&[
        p.subject.as_str(),
        p.from_name.as_str(),
        p.from_address.as_str(),
        &recipients(&p.to),
        &recipients(&p.cc),
        &body_text,
    ]);
    let attachments = p
        .attachments
        .iter()
        .map(|a| NewMailAttachment {
            message_id: 0,
            user_id,
            part_index: a.index as i32,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            content_id: a.content_id.clone(),
            inline: a.inline,
        })
        .collect::<Vec<_>>();
    let message = NewMailMessage {
        account_id,
        user_id,
        provider_message_id: st.provider_message_id.clone(),
        thread_id,
        message_id: p.message_id,
        in_reply_to: p.in_reply_to,
        references_header: p.references,
        from_address: p.from_address,
        from_name: p.from_name,
        to_json: p.to.to_string(),
        cc_json: p.cc.to_string(),
        bcc_json: p.bcc.to_string(),
        reply_to_json: p.reply_to.to_string(),
        subject: p.subject,
        snippet: p.snippet,
        date,
        folder: st.folder.clone(),
        provider_labels: json!(st.labels).to_string(),
        unread: st.unread,
        starred: st.starred,
        draft: st.draft,
        has_attachments: attachments.iter().any(|a| !a.inline),
        size: p.size,
        text_body: p.text_body,
        html_body: p.html_body,
        search_text,
        sync_gen: gen,
        created_at: now,
        updated_at: now,
        todo: false,
        todo_due_at: None,
    };
    (message, attachments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(cursor: &str, present: &[&str], removed: &[&str], caught_up: bool) -> SyncPage {
        let present = present.iter().map(|id| Change::Present {
            state: MessageState {
                provider_message_id: id.to_string(),
                thread_id: None,
                folder: "inbox".into(),
                labels: Vec::new(),
                unread: false,
                starred: false,
                draft: false,
                received_at: None,
                todo_due_at: None,
            },
            raw: None,
        });
        let removed = removed.iter().map(|id| Change::Removed {
            provider_message_id: id.to_string(),
            folder: Some("archive".into()),
        });
        SyncPage {
            changes: present.chain(removed).collect(),
            cursor: cursor.into(),
            caught_up,
            full_listing_done: false,
            folders: Vec::new(),
        }
    }

    fn ids(batch: &Batch) -> Vec<&str> {
        batch.ahead.page.changes.iter().map(change_id).collect()
    }

    #[test]
    fn a_batch_merges_pages_in_order_and_ends_with_the_last_cursor() {
        let mut batch = Batch::new(page("c1", &["a", "b"], &[], false), HashMap::new(), 10);
        let second = page("c2", &["c"], &["d"], false);
        assert!(batch.takes(&second));
        batch.add(second, HashMap::new(), 5);
        assert_eq!(ids(&batch), ["a", "b", "c", "d"]);
        assert_eq!(batch.ahead.page.cursor, "c2");
        assert_eq!(batch.bytes, 15);
        assert!(!batch.full(5));
        assert!(batch.full(4));
        let last = page("c3", &[], &[], true);
        batch.add(last, HashMap::new(), 0);
        assert!(batch.full(1000), "a caught-up page ends the batch");
        let g = batch.done(None);
        assert_eq!(g.batch.page.cursor, "c3");
        assert!(g.batch.page.caught_up && g.leftover.is_none());
    }

    #[test]
    fn a_page_naming_a_message_of_the_batch_is_left_for_the_next() {
        // A move listed in two folders: applied together, the removal could come last.
        let batch = Batch::new(page("c1", &["a", "b"], &[], false), HashMap::new(), 0);
        let moved = page("c2", &["x"], &["b"], false);
        assert!(!batch.takes(&moved));
        let g = batch.done(Some(moved));
        assert_eq!(
            g.batch.page.cursor, "c1",
            "the batch's cursor covers only its own pages"
        );
        assert_eq!(g.leftover.map(|p| p.cursor).as_deref(), Some("c2"));
    }

    #[test]
    fn a_batch_stops_growing_at_its_memory_bound() {
        let mut batch = Batch::new(
            page("c1", &["a"], &[], false),
            HashMap::new(),
            BATCH_BYTES - 1,
        );
        assert!(!batch.full(BATCH_MAX));
        batch.add(page("c2", &["b"], &[], false), HashMap::new(), 1);
        assert!(batch.full(BATCH_MAX));
    }
}
