//! Pending OAuth authorisations: created by `mailAccounts:authorize`, consumed once by the callback.

use diesel::prelude::*;

use super::models::OAuthStateRow;
use super::schema::oauth_states::dsl;
use super::{DbConnection, DbError};

pub fn insert(conn: &mut DbConnection, row: &OAuthStateRow) -> Result<(), DbError> {
    diesel::insert_into(dsl::oauth_states)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Removes and returns the state if it exists and has not expired. Only the caller whose delete
/// removed the row gets it, so two callbacks racing with one state cannot both succeed.
pub fn take(
    conn: &mut DbConnection,
    state_hash: &str,
    now: i64,
) -> Result<Option<OAuthStateRow>, DbError> {
    let row = dsl::oauth_states
        .find(state_hash)
        .select(OAuthStateRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let deleted = diesel::delete(dsl::oauth_states.find(state_hash)).execute(conn)?;
    if deleted != 1 || row.expires_at <= now {
        return Ok(None);
    }
    Ok(Some(row))
}

pub fn purge_expired(conn: &mut DbConnection, now: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(dsl::oauth_states.filter(dsl::expires_at.le(now))).execute(conn)?)
}
