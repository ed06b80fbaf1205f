//! Sync bookkeeping: the per-account lease that keeps one process (of several replicas) on an
//! account at a time, the schedule, and the run history.

use diesel::prelude::*;

use super::models::{account_status, MailSyncRunRow};
use super::schema::{mail_accounts, mail_sync_runs};
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;

/// Takes the account's lease for `owner` until `until` when it is free, lapsed, or already
/// `owner`'s. One conditional UPDATE, so two processes cannot both win.
pub fn claim_lease(
    conn: &mut DbConnection,
    account_id: i64,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        mail_accounts::table.find(account_id).filter(
            mail_accounts::lease_owner
                .is_null()
                .or(mail_accounts::lease_until.lt(now))
                .or(mail_accounts::lease_owner.eq(owner)),
        ),
    )
    .set((
        mail_accounts::lease_owner.eq(Some(owner)),
        mail_accounts::lease_until.eq(Some(until)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Extends a lease still held by `owner`; false when it was lost (lapsed and taken over).
pub fn renew_lease(
    conn: &mut DbConnection,
    account_id: i64,
    owner: &str,
    until: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        mail_accounts::table
            .find(account_id)
            .filter(mail_accounts::lease_owner.eq(owner)),
    )
    .set(mail_accounts::lease_until.eq(Some(until)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Ends a run: frees the lease and schedules the next one.
pub fn release_lease(
    conn: &mut DbConnection,
    account_id: i64,
    owner: &str,
    finished_at: i64,
    next_sync_at: i64,
    error: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(
        mail_accounts::table
            .find(account_id)
            .filter(mail_accounts::lease_owner.eq(owner)),
    )
    .set((
        mail_accounts::lease_owner.eq(None::<String>),
        mail_accounts::lease_until.eq(None::<i64>),
        mail_accounts::last_sync_at.eq(Some(finished_at)),
        mail_accounts::next_sync_at.eq(next_sync_at),
        mail_accounts::last_error.eq(error),
    ))
    .execute(conn)?;
    Ok(())
}

/// Claims the leases of up to `limit` accounts whose next sync is due, oldest first, and returns
/// them. On PostgreSQL the due rows are locked with `FOR UPDATE SKIP LOCKED` inside the claiming
/// transaction, so replicas polling at the same moment take different accounts instead of queueing
/// on the same rows; the conditional lease update decides in the end on both backends.
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    conn.write_transaction(|conn| {
        let query = mail_accounts::table
            .filter(mail_accounts::status.eq(account_status::ACTIVE))
            .filter(mail_accounts::next_sync_at.le(now))
            .filter(
                mail_accounts::lease_owner
                    .is_null()
                    .or(mail_accounts::lease_until.lt(now)),
            )
            .order(mail_accounts::next_sync_at.asc())
            .limit(limit)
            .select(mail_accounts::id);
        let due: Vec<i64> = match conn {
            DbConnection::Pg(pg) => query.for_update().skip_locked().load(pg)?,
            DbConnection::Sqlite(sqlite) => query.load(sqlite)?,
        };
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            if claim_lease(conn, id, owner, now, until)? {
                claimed.push(id);
            }
        }
        Ok(claimed)
    })
}

/// Makes the account due now (`mailAccounts:sync`, a fresh link).
pub fn schedule_now(conn: &mut DbConnection, account_id: i64) -> Result<(), DbError> {
    diesel::update(mail_accounts::table.find(account_id))
        .set(mail_accounts::next_sync_at.eq(0))
        .execute(conn)?;
    Ok(())
}

pub fn start_run(
    conn: &mut DbConnection,
    account_id: i64,
    kind: &str,
    now: i64,
) -> Result<i64, DbError> {
    diesel::insert_into(mail_sync_runs::table)
        .values((
            mail_sync_runs::account_id.eq(account_id),
            mail_sync_runs::kind.eq(kind),
            mail_sync_runs::started_at.eq(now),
        ))
        .execute(conn)?;
    Ok(mail_sync_runs::table
        .filter(mail_sync_runs::account_id.eq(account_id))
        .order(mail_sync_runs::id.desc())
        .select(mail_sync_runs::id)
        .first(conn)?)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: i64,
    pub updated: i64,
    pub removed: i64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.added += o.added;
        self.updated += o.updated;
        self.removed += o.removed;
    }
}

/// Adds a page's counts to the run as it goes, so a run cut short still shows what it did.
pub fn add_counts(conn: &mut DbConnection, run_id: i64, c: Counts) -> Result<(), DbError> {
    diesel::update(mail_sync_runs::table.find(run_id))
        .set((
            mail_sync_runs::added.eq(mail_sync_runs::added + c.added),
            mail_sync_runs::updated.eq(mail_sync_runs::updated + c.updated),
            mail_sync_runs::removed.eq(mail_sync_runs::removed + c.removed),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn finish_run(
    conn: &mut DbConnection,
    run_id: i64,
    kind: &str,
    finished_at: i64,
    error: Option<(&str, &str)>,
) -> Result<(), DbError> {
    diesel::update(mail_sync_runs::table.find(run_id))
        .set((
            mail_sync_runs::kind.eq(kind),
            mail_sync_runs::finished_at.eq(Some(finished_at)),
            mail_sync_runs::error_kind.eq(error.map(|e| e.0)),
            mail_sync_runs::error_message.eq(error.map(|e| e.1)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn list_runs(
    conn: &mut DbConnection,
    account_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<MailSyncRunRow>, i64), DbError> {
    let rows = mail_sync_runs::table
        .filter(mail_sync_runs::account_id.eq(account_id))
        .order(mail_sync_runs::id.desc())
        .limit(limit)
        .offset(offset)
        .select(MailSyncRunRow::as_select())
        .load(conn)?;
    let count = mail_sync_runs::table
        .filter(mail_sync_runs::account_id.eq(account_id))
        .count()
        .get_result(conn)?;
    Ok((rows, count))
}
