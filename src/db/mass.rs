//! Mass mailing: jobs (`mail_mass_jobs`), one row per recipient (`mail_mass_recipients`) and each
//! account's sending pace (`mail_mass_throttle`).
//!
//! A recipient is claimed by one process at a time: on PostgreSQL the candidate rows are read
//! with `FOR UPDATE SKIP LOCKED`, so replicas polling together take different recipients, and the
//! claim itself is a conditional UPDATE on the state it was read in, which decides on both
//! backends. The pace is one row per account updated by compare-and-set, so every replica and
//! every job of an account share one rate.

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::{mail_mass_jobs, mail_mass_recipients, mail_mass_throttle};
use super::{DbConnection, DbError};

pub mod job_status {
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const CANCELLED: &str = "cancelled";
    pub const COMPLETED: &str = "completed";
}

pub mod recipient_status {
    pub const QUEUED: &str = "queued";
    pub const SENDING: &str = "sending";
    pub const SENT: &str = "sent";
    pub const FAILED: &str = "failed";
}

use crate::db::WriteTransaction;
use job_status as js;
use recipient_status as rs;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_mass_jobs)]
pub struct JobRow {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub from_name: Option<String>,
    pub from_address: String,
    pub subject: String,
    pub html: Option<String>,
    pub text_body: Option<String>,
    pub attachments: String,
    pub rate: Option<i64>,
    pub status: String,
    pub pause_reason: Option<String>,
    pub total: i64,
    pub rejected: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_mass_jobs)]
pub struct NewJob {
    pub user_id: i64,
    pub account_id: i64,
    pub from_name: Option<String>,
    pub from_address: String,
    pub subject: String,
    pub html: Option<String>,
    pub text_body: Option<String>,
    pub attachments: String,
    pub rate: Option<i64>,
    pub status: String,
    pub total: i64,
    pub rejected: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_mass_recipients)]
pub struct RecipientRow {
    pub id: i64,
    pub job_id: i64,
    pub account_id: i64,
    pub position: i64,
    pub email: String,
    pub name: Option<String>,
    pub variables: Option<String>,
    pub status: String,
    pub message_id: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub not_before: i64,
    pub sent_at: Option<i64>,
    pub provider_message_id: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_mass_recipients)]
pub struct NewRecipient {
    pub job_id: i64,
    pub account_id: i64,
    pub position: i64,
    pub email: String,
    pub name: Option<String>,
    pub variables: Option<String>,
    pub status: String,
    pub message_id: String,
    pub updated_at: i64,
}

/// Recipients per status of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
}

/// Rows per INSERT: 9 columns each stays far below SQLite's and PostgreSQL's bind limits.
const INSERT_CHUNK: usize = 500;

/// Creates the job and its recipients (their `job_id` is filled in here) in one transaction.
pub fn create_job(
    conn: &mut DbConnection,
    job: &NewJob,
    mut recipients: Vec<NewRecipient>,
) -> Result<JobRow, DbError> {
    conn.write_transaction(|conn| {
        diesel::insert_into(mail_mass_jobs::table)
            .values(job)
            .execute(conn)?;
        let row: JobRow = mail_mass_jobs::table
            .filter(mail_mass_jobs::user_id.eq(job.user_id))
            .order(mail_mass_jobs::id.desc())
            .select(JobRow::as_select())
            .first(conn)?;
        for r in recipients.iter_mut() {
            r.job_id = row.id;
        }
        // Batch inserts are backend-specific in diesel: one per backend.
        for chunk in recipients.chunks(INSERT_CHUNK) {
            let insert = diesel::insert_into(mail_mass_recipients::table).values(chunk);
            match conn {
                DbConnection::Pg(pg) => insert.execute(pg)?,
                DbConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
            };
        }
        Ok(row)
    })
}

pub fn get_job(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<JobRow, DbError> {
    Ok(mail_mass_jobs::table
        .filter(mail_mass_jobs::id.eq(id))
        .filter(mail_mass_jobs::user_id.eq(user_id))
        .select(JobRow::as_select())
        .first(conn)?)
}

pub fn job_by_id(conn: &mut DbConnection, id: i64) -> Result<JobRow, DbError> {
    Ok(mail_mass_jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)?)
}

/// The user's jobs, newest first.
pub fn list_jobs(
    conn: &mut DbConnection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<JobRow>, i64), DbError> {
    let rows = mail_mass_jobs::table
        .filter(mail_mass_jobs::user_id.eq(user_id))
        .order(mail_mass_jobs::id.desc())
        .limit(limit)
        .offset(offset)
        .select(JobRow::as_select())
        .load(conn)?;
    let count = mail_mass_jobs::table
        .filter(mail_mass_jobs::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok((rows, count))
}

pub fn counts(conn: &mut DbConnection, job_ids: &[i64]) -> Result<HashMap<i64, Counts>, DbError> {
    let rows: Vec<(i64, String, i64)> = mail_mass_recipients::table
        .filter(mail_mass_recipients::job_id.eq_any(job_ids))
        .group_by((mail_mass_recipients::job_id, mail_mass_recipients::status))
        .select((
            mail_mass_recipients::job_id,
            mail_mass_recipients::status,
            diesel::dsl::count_star(),
        ))
        .load(conn)?;
    let mut out: HashMap<i64, Counts> = HashMap::new();
    for (job, status, n) in rows {
        let c = out.entry(job).or_default();
        match status.as_str() {
            rs::QUEUED => c.queued += n,
            rs::SENDING => c.sending += n,
            rs::SENT => c.sent += n,
            rs::FAILED => c.failed += n,
            _ => {}
        }
    }
    Ok(out)
}

/// The first `limit` failed recipients of a job, in list order.
pub fn failures(
    conn: &mut DbConnection,
    job_id: i64,
    limit: i64,
) -> Result<Vec<RecipientRow>, DbError> {
    Ok(mail_mass_recipients::table
        .filter(mail_mass_recipients::job_id.eq(job_id))
        .filter(mail_mass_recipients::status.eq(rs::FAILED))
        .order(mail_mass_recipients::id.asc())
        .limit(limit)
        .select(RecipientRow::as_select())
        .load(conn)?)
}

/// A job's recipients in list order, optionally of one status.
pub fn recipients(
    conn: &mut DbConnection,
    job_id: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<RecipientRow>, i64), DbError> {
    let mut q = mail_mass_recipients::table
        .filter(mail_mass_recipients::job_id.eq(job_id))
        .into_boxed();
    let mut c = mail_mass_recipients::table
        .filter(mail_mass_recipients::job_id.eq(job_id))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(mail_mass_recipients::status.eq(s.to_string()));
        c = c.filter(mail_mass_recipients::status.eq(s.to_string()));
    }
    let rows = q
        .order(mail_mass_recipients::id.asc())
        .limit(limit)
        .offset(offset)
        .select(RecipientRow::as_select())
        .load(conn)?;
    let count = c.count().get_result(conn)?;
    Ok((rows, count))
}

/// Moves a job from one of `from` to `to`; false when it was in none of them.
pub fn set_job_status(
    conn: &mut DbConnection,
    job_id: i64,
    from: &[&str],
    to: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    let finished = (to == js::CANCELLED || to == js::COMPLETED).then_some(now);
    let n = diesel::update(
        mail_mass_jobs::table
            .find(job_id)
            .filter(mail_mass_jobs::status.eq_any(from)),
    )
    .set((
        mail_mass_jobs::status.eq(to),
        mail_mass_jobs::pause_reason.eq(reason),
        mail_mass_jobs::finished_at.eq(finished),
        mail_mass_jobs::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Completes a running job once none of its recipients is queued or sending.
pub fn complete_if_done(conn: &mut DbConnection, job_id: i64, now: i64) -> Result<bool, DbError> {
    let open: i64 = mail_mass_recipients::table
        .filter(mail_mass_recipients::job_id.eq(job_id))
        .filter(mail_mass_recipients::status.eq_any([rs::QUEUED, rs::SENDING]))
        .count()
        .get_result(conn)?;
    if open > 0 {
        return Ok(false);
    }
    set_job_status(conn, job_id, &[js::RUNNING], js::COMPLETED, None, now)
}

/// Recipients waiting in running jobs (the send queue depth).
pub fn queue_depth(conn: &mut DbConnection) -> Result<i64, DbError> {
    let running = mail_mass_jobs::table
        .filter(mail_mass_jobs::status.eq(js::RUNNING))
        .select(mail_mass_jobs::id);
    Ok(mail_mass_recipients::table
        .filter(mail_mass_recipients::job_id.eq_any(running))
        .filter(mail_mass_recipients::status.eq(rs::QUEUED))
        .count()
        .get_result(conn)?)
}

/// An account's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = mail_mass_throttle)]
pub struct Throttle {
    pub account_id: i64,
    pub next_at: i64,
    pub blocked_until: i64,
    pub rate_permille: i64,
    pub updated_at: i64,
}

pub const FULL_RATE: i64 = 1000;
/// A run of 429s lowers the rate to no less than this (an eighth).
pub const MIN_RATE_PERMILLE: i64 = 125;

fn throttle(conn: &mut DbConnection, account_id: i64, now: i64) -> Result<Throttle, DbError> {
    if let Some(t) = mail_mass_throttle::table
        .find(account_id)
        .select(Throttle::as_select())
        .first(conn)
        .optional()?
    {
        return Ok(t);
    }
    let t = Throttle {
        account_id,
        next_at: 0,
        blocked_until: 0,
        rate_permille: FULL_RATE,
        updated_at: now,
    };
    // Another process may insert it at the same moment: then read theirs.
    let insert = diesel::insert_into(mail_mass_throttle::table)
        .values(&t)
        .on_conflict_do_nothing();
    match conn {
        DbConnection::Pg(pg) => insert.execute(pg)?,
        DbConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
    };
    Ok(mail_mass_throttle::table
        .find(account_id)
        .select(Throttle::as_select())
        .first(conn)?)
}

/// A 429: nothing before `until`, and the rate halved (down to [`MIN_RATE_PERMILLE`]).
pub fn slow_down(
    conn: &mut DbConnection,
    account_id: i64,
    until: i64,
    now: i64,
) -> Result<(), DbError> {
    let t = throttle(conn, account_id, now)?;
    diesel::update(mail_mass_throttle::table.find(account_id))
        .set((
            mail_mass_throttle::blocked_until.eq(t.blocked_until.max(until)),
            mail_mass_throttle::rate_permille.eq((t.rate_permille / 2).max(MIN_RATE_PERMILLE)),
            mail_mass_throttle::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A success after a slow-down wins back part of the rate (about 20 successes from half).
pub fn speed_up(conn: &mut DbConnection, account_id: i64, now: i64) -> Result<(), DbError> {
    diesel::update(
        mail_mass_throttle::table
            .find(account_id)
            .filter(mail_mass_throttle::rate_permille.lt(FULL_RATE)),
    )
    .set((
        mail_mass_throttle::rate_permille.eq(mail_mass_throttle::rate_permille + 25),
        mail_mass_throttle::updated_at.eq(now),
    ))
    .execute(conn)?;
    diesel::update(
        mail_mass_throttle::table
            .find(account_id)
            .filter(mail_mass_throttle::rate_permille.gt(FULL_RATE)),
    )
    .set(mail_mass_throttle::rate_permille.eq(FULL_RATE))
    .execute(conn)?;
    Ok(())
}

/// A recipient this process now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub recipient: RecipientRow,
    /// It was left `sending` by an earlier try (a crash, an unanswered call): the provider is
    /// asked for its Message-ID before anything is sent.
    pub resume: bool,
}

/// What one claiming pass found.
#[derive(Debug, Default)]
pub struct ClaimPass {
    pub claimed: Vec<Claimed>,
    /// When the earliest account held back by its pace may send again.
    pub next_wake: Option<i64>,
    /// Jobs whose first recipient was claimed now.
    pub started: Vec<i64>,
}

/// Per-account input to a claiming pass.
#[derive(Debug, Clone, Copy)]
pub struct AccountSlots {
    pub account_id: i64,
    /// Sends this process may still start for the account now.
    pub free: usize,
    /// Messages per minute allowed for the account (the settings), before 429 slow-downs.
    pub account_rate: u64,
}

/// The running jobs' accounts.
pub fn active_accounts(conn: &mut DbConnection) -> Result<Vec<i64>, DbError> {
    Ok(mail_mass_jobs::table
        .filter(mail_mass_jobs::status.eq(js::RUNNING))
        .select(mail_mass_jobs::account_id)
        .distinct()
        .load(conn)?)
}

/// The gap between two sends at `per_minute` lowered to `permille`.
pub fn interval_ms(per_minute: u64, permille: i64) -> i64 {
    let rate = per_minute.max(1) as f64 * (permille.clamp(1, FULL_RATE) as f64 / 1000.0);
    (60_000.0 / rate).ceil() as i64
}

/// Claims, for each account, up to its free slots of recipients whose turn has come, within the
/// account's pace, oldest job first. Each claim records the intent: `sending`, this owner, a
/// lease until `lease_until`, one more attempt.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    now: i64,
    lease_until: i64,
    accounts: &[AccountSlots],
) -> Result<ClaimPass, DbError> {
    let mut pass = ClaimPass::default();
    for a in accounts {
        let mut free = a.free;
        while free > 0 {
            let got = conn.write_transaction(|conn| claim_one(conn, owner, now, lease_until, a))?;
            match got {
                ClaimOne::Claimed(c, first) => {
                    if first {
                        pass.started.push(c.recipient.job_id);
                    }
                    pass.claimed.push(*c);
                    free -= 1;
                }
                ClaimOne::Wait(at) => {
                    pass.next_wake = Some(pass.next_wake.map_or(at, |w: i64| w.min(at)));
                    break;
                }
                ClaimOne::Nothing => break,
            }
        }
    }
    Ok(pass)
}

enum ClaimOne {
    /// The recipient, and whether it is its job's first.
    Claimed(Box<Claimed>, bool),
    /// The account's pace holds it back until then.
    Wait(i64),
    Nothing,
}

fn claim_one(
    conn: &mut DbConnection,
    owner: &str,
    now: i64,
    lease_until: i64,
    a: &AccountSlots,
) -> Result<ClaimOne, DbError> {
    let t = throttle(conn, a.account_id, now)?;
    let gate = t.next_at.max(t.blocked_until);
    if gate > now {
        return Ok(ClaimOne::Wait(gate));
    }
    let jobs: Vec<(i64, Option<i64>, Option<i64>, i64)> = mail_mass_jobs::table
        .filter(mail_mass_jobs::account_id.eq(a.account_id))
        .filter(mail_mass_jobs::status.eq(js::RUNNING))
        .order(mail_mass_jobs::id.asc())
        .select((
            mail_mass_jobs::id,
            mail_mass_jobs::rate,
            mail_mass_jobs::started_at,
            mail_mass_jobs::pace_next_at,
        ))
        .load(conn)?;
    // The earliest time a job held back by its own rate may send again.
    let mut job_wait: Option<i64> = None;
    for (job_id, job_rate, started_at, pace_next_at) in jobs {
        // A job slower than the account waits on its own clock, so it never slows the others.
        let own_rate = job_rate
            .map(|j| j.max(1) as u64)
            .filter(|j| *j < a.account_rate);
        if own_rate.is_some() && pace_next_at > now {
            job_wait = Some(job_wait.map_or(pace_next_at, |w| w.min(pace_next_at)));
            continue;
        }
        macro_rules! candidates {
            () => {
                mail_mass_recipients::table
                    .filter(mail_mass_recipients::job_id.eq(job_id))
                    .filter(
                        mail_mass_recipients::status
                            .eq(rs::QUEUED)
                            .and(mail_mass_recipients::not_before.le(now))
                            .or(mail_mass_recipients::status
                                .eq(rs::SENDING)
                                .and(mail_mass_recipients::lease_until.lt(now))),
                    )
                    .order(mail_mass_recipients::id.asc())
                    .limit(1)
                    .select(RecipientRow::as_select())
            };
        }
        let found: Option<RecipientRow> = match conn {
            DbConnection::Pg(pg) => candidates!()
                .for_update()
                .skip_locked()
                .first(pg)
                .optional()?,
            DbConnection::Sqlite(sqlite) => candidates!().first(sqlite).optional()?,
        };
        let Some(r) = found else { continue };
        // The pace first: a replica that moved it meanwhile wins, and this one waits.
        let next = t.next_at.max(now) + interval_ms(a.account_rate, t.rate_permille);
        let paced = diesel::update(
            mail_mass_throttle::table
                .find(a.account_id)
                .filter(mail_mass_throttle::next_at.eq(t.next_at)),
        )
        .set((
            mail_mass_throttle::next_at.eq(next),
            mail_mass_throttle::updated_at.eq(now),
        ))
        .execute(conn)?;
        if paced == 0 {
            return Ok(ClaimOne::Wait(now + 1));
        }
        if let Some(rate) = own_rate {
            diesel::update(mail_mass_jobs::table.find(job_id))
                .set(mail_mass_jobs::pace_next_at.eq(now + interval_ms(rate, t.rate_permille)))
                .execute(conn)?;
        }
        let resume = r.status == rs::SENDING;
        let n = diesel::update(
            mail_mass_recipients::table
                .find(r.id)
                .filter(mail_mass_recipients::status.eq(&r.status))
                .filter(mail_mass_recipients::updated_at.eq(r.updated_at))
                .filter(mail_mass_recipients::lease_until.eq(r.lease_until)),
        )
        .set((
            mail_mass_recipients::status.eq(rs::SENDING),
            mail_mass_recipients::lease_owner.eq(owner),
            mail_mass_recipients::lease_until.eq(lease_until),
            mail_mass_recipients::attempts.eq(mail_mass_recipients::attempts + 1),
            mail_mass_recipients::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 0 {
            // Taken by another process between the read and the update (SQLite has no row lock).
            return Ok(ClaimOne::Wait(now + 1));
        }
        let first = started_at.is_none();
        if first {
            diesel::update(
                mail_mass_jobs::table
                    .find(job_id)
                    .filter(mail_mass_jobs::started_at.is_null()),
            )
            .set(mail_mass_jobs::started_at.eq(Some(now)))
            .execute(conn)?;
        }
        let recipient = RecipientRow {
            status: rs::SENDING.into(),
            lease_owner: Some(owner.into()),
            lease_until,
            attempts: r.attempts + 1,
            updated_at: now,
            ..r
        };
        return Ok(ClaimOne::Claimed(
            Box::new(Claimed { recipient, resume }),
            first,
        ));
    }
    Ok(job_wait.map_or(ClaimOne::Nothing, ClaimOne::Wait))
}

/// Extends the leases of recipients this process is sending.
pub fn renew(conn: &mut DbConnection, ids: &[i64], owner: &str, until: i64) -> Result<(), DbError> {
    diesel::update(
        mail_mass_recipients::table
            .filter(mail_mass_recipients::id.eq_any(ids))
            .filter(mail_mass_recipients::status.eq(rs::SENDING))
            .filter(mail_mass_recipients::lease_owner.eq(owner)),
    )
    .set(mail_mass_recipients::lease_until.eq(until))
    .execute(conn)?;
    Ok(())
}

/// How a send this process held ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        provider_message_id: Option<String>,
    },
    Failed {
        error: String,
    },
    /// Not sent (refused before it was taken: 429, quota, a transient failure before the send):
    /// back in the queue, not before `not_before`.
    Requeue {
        not_before: i64,
        error: Option<String>,
        /// False for a refusal that says nothing about the message (429, quota): the try is not
        /// counted against `mail.mass_max_attempts`.
        counted: bool,
    },
    /// Possibly sent and nobody can say yet: stays `sending`, released so the next claim (after
    /// `retry_at`) asks the provider for its Message-ID first.
    Unsure {
        retry_at: i64,
        error: String,
    },
}

/// Records the end of a send, as long as this process still held the recipient. Answers false
/// when it did not (the lease lapsed and another process took it over).
pub fn finish(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    outcome: &Outcome,
    now: i64,
) -> Result<bool, DbError> {
    let mine = mail_mass_recipients::table
        .find(id)
        .filter(mail_mass_recipients::status.eq(rs::SENDING))
        .filter(mail_mass_recipients::lease_owner.eq(owner));
    let n = match outcome {
        Outcome::Sent {
            provider_message_id,
        } => diesel::update(mine)
            .set((
                mail_mass_recipients::status.eq(rs::SENT),
                mail_mass_recipients::sent_at.eq(Some(now)),
                mail_mass_recipients::provider_message_id.eq(provider_message_id),
                mail_mass_recipients::error.eq(None::<String>),
                mail_mass_recipients::lease_owner.eq(None::<String>),
                mail_mass_recipients::updated_at.eq(now),
            ))
            .execute(conn)?,
        Outcome::Failed { error } => diesel::update(mine)
            .set((
                mail_mass_recipients::status.eq(rs::FAILED),
                mail_mass_recipients::error.eq(Some(error)),
                mail_mass_recipients::lease_owner.eq(None::<String>),
                mail_mass_recipients::updated_at.eq(now),
            ))
            .execute(conn)?,
        Outcome::Requeue {
            not_before,
            error,
            counted,
        } => diesel::update(mine)
            .set((
                mail_mass_recipients::attempts
                    .eq(mail_mass_recipients::attempts - if *counted { 0 } else { 1 }),
                mail_mass_recipients::status.eq(rs::QUEUED),
                mail_mass_recipients::not_before.eq(*not_before),
                mail_mass_recipients::error.eq(error),
                mail_mass_recipients::lease_owner.eq(None::<String>),
                mail_mass_recipients::updated_at.eq(now),
            ))
            .execute(conn)?,
        Outcome::Unsure { retry_at, error } => diesel::update(mine)
            .set((
                mail_mass_recipients::error.eq(Some(error)),
                mail_mass_recipients::lease_owner.eq(None::<String>),
                mail_mass_recipients::lease_until.eq(*retry_at),
                mail_mass_recipients::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Gives back a claim unused (the job was paused or cancelled before the send started): the
/// recipient is as it was, `sending` ones stay unsure.
pub fn release(conn: &mut DbConnection, c: &Claimed, owner: &str, now: i64) -> Result<(), DbError> {
    let mine = mail_mass_recipients::table
        .find(c.recipient.id)
        .filter(mail_mass_recipients::status.eq(rs::SENDING))
        .filter(mail_mass_recipients::lease_owner.eq(owner));
    if c.resume {
        diesel::update(mine)
            .set((
                mail_mass_recipients::lease_owner.eq(None::<String>),
                mail_mass_recipients::lease_until.eq(0),
                mail_mass_recipients::attempts.eq(mail_mass_recipients::attempts - 1),
                mail_mass_recipients::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        diesel::update(mine)
            .set((
                mail_mass_recipients::status.eq(rs::QUEUED),
                mail_mass_recipients::lease_owner.eq(None::<String>),
                mail_mass_recipients::attempts.eq(mail_mass_recipients::attempts - 1),
                mail_mass_recipients::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Claims up to `limit` recipients of paused or cancelled jobs left `sending` with a lapsed lease
/// (a process died mid-send): they are only looked up at the provider, never sent, so the job's
/// counts end up true.
pub fn claim_stopped_unsure(
    conn: &mut DbConnection,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Claimed>, DbError> {
    let stopped = mail_mass_jobs::table
        .filter(mail_mass_jobs::status.eq_any([js::PAUSED, js::CANCELLED]))
        .select(mail_mass_jobs::id);
    let rows: Vec<RecipientRow> = mail_mass_recipients::table
        .filter(mail_mass_recipients::job_id.eq_any(stopped))
        .filter(mail_mass_recipients::status.eq(rs::SENDING))
        .filter(mail_mass_recipients::lease_until.lt(now))
        .order(mail_mass_recipients::id.asc())
        .limit(limit)
        .select(RecipientRow::as_select())
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n = diesel::update(
            mail_mass_recipients::table
                .find(r.id)
                .filter(mail_mass_recipients::status.eq(rs::SENDING))
                .filter(mail_mass_recipients::lease_until.eq(r.lease_until)),
        )
        .set((
            mail_mass_recipients::lease_owner.eq(owner),
            mail_mass_recipients::lease_until.eq(lease_until),
            mail_mass_recipients::attempts.eq(mail_mass_recipients::attempts + 1),
            mail_mass_recipients::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 1 {
            out.push(Claimed {
                recipient: RecipientRow {
                    attempts: r.attempts + 1,
                    lease_owner: Some(owner.into()),
                    lease_until,
                    updated_at: now,
                    ..r
                },
                resume: true,
            });
        }
    }
    Ok(out)
}
