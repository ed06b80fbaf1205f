//! `mail_accounts`: every query that reads an account for a request is scoped by its owner, so
//! another user's id behaves exactly like an id that does not exist.

use diesel::prelude::*;

use super::models::{account_status, MailAccountRow, NewMailAccount};
use super::schema::mail_accounts::dsl;
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;

pub fn list_for_user(
    conn: &mut DbConnection,
    user_id: i64,
) -> Result<Vec<MailAccountRow>, DbError> {
    Ok(dsl::mail_accounts
        .filter(dsl::user_id.eq(user_id))
        .order(dsl::id.asc())
        .select(MailAccountRow::as_select())
        .load(conn)?)
}

pub fn get_for_user(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
) -> Result<MailAccountRow, DbError> {
    Ok(dsl::mail_accounts
        .filter(dsl::id.eq(id).and(dsl::user_id.eq(user_id)))
        .select(MailAccountRow::as_select())
        .first(conn)?)
}

fn find_linked(
    conn: &mut DbConnection,
    user_id: i64,
    provider: &str,
    provider_account_id: &str,
) -> Result<Option<MailAccountRow>, DbError> {
    Ok(dsl::mail_accounts
        .filter(
            dsl::user_id
                .eq(user_id)
                .and(dsl::provider.eq(provider))
                .and(dsl::provider_account_id.eq(provider_account_id)),
        )
        .select(MailAccountRow::as_select())
        .first(conn)
        .optional()?)
}

/// Stores a freshly linked mailbox. Linking the same mailbox again refreshes its tokens and
/// address and clears `reauth_required`, keeping the id (and so all its mail).
/// Returns the row and whether it was created.
pub fn upsert_linked(
    conn: &mut DbConnection,
    new: &NewMailAccount,
) -> Result<(MailAccountRow, bool), DbError> {
    conn.write_transaction(|conn| {
        let existing = find_linked(conn, new.user_id, &new.provider, &new.provider_account_id)?;
        let created = match existing {
            Some(row) => {
                diesel::update(dsl::mail_accounts.find(row.id))
                    .set((
                        dsl::email.eq(&new.email),
                        dsl::display_name.eq(&new.display_name),
                        dsl::status.eq(account_status::ACTIVE),
                        dsl::access_token.eq(&new.access_token),
                        // Google omits the refresh token on a repeat consent now and then: keep the old one.
                        dsl::refresh_token.eq(new.refresh_token.clone().or(row.refresh_token)),
                        dsl::token_expires_at.eq(new.token_expires_at),
                        dsl::scopes.eq(&new.scopes),
                        dsl::last_error.eq(None::<String>),
                        dsl::updated_at.eq(new.updated_at),
                        // Sync right away: a re-link usually follows reauth_required.
                        dsl::next_sync_at.eq(0),
                    ))
                    .execute(conn)?;
                false
            }
            None => {
                diesel::insert_into(dsl::mail_accounts)
                    .values(new)
                    .execute(conn)?;
                true
            }
        };
        let row = find_linked(conn, new.user_id, &new.provider, &new.provider_account_id)?
            .ok_or(DbError::NotFound)?;
        Ok((row, created))
    })
}

pub fn delete_for_user(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<(), DbError> {
    let n = diesel::delete(dsl::mail_accounts.filter(dsl::id.eq(id).and(dsl::user_id.eq(user_id))))
        .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// An account by id alone: for background work, never for a user's request.
pub fn get(conn: &mut DbConnection, id: i64) -> Result<MailAccountRow, DbError> {
    Ok(dsl::mail_accounts
        .find(id)
        .select(MailAccountRow::as_select())
        .first(conn)?)
}

pub fn store_refreshed(
    conn: &mut DbConnection,
    id: i64,
    access_token: Vec<u8>,
    refresh_token: Option<Vec<u8>>,
    expires_at: Option<i64>,
) -> Result<(), DbError> {
    let now = super::now_millis();
    match refresh_token {
        // Microsoft rotates the refresh token; Google keeps the old one and sends none.
        Some(refresh) => diesel::update(dsl::mail_accounts.find(id))
            .set((
                dsl::access_token.eq(access_token),
                dsl::refresh_token.eq(Some(refresh)),
                dsl::token_expires_at.eq(expires_at),
                dsl::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(dsl::mail_accounts.find(id))
            .set((
                dsl::access_token.eq(access_token),
                dsl::token_expires_at.eq(expires_at),
                dsl::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(())
}

pub fn mark_reauth_required(conn: &mut DbConnection, id: i64, why: &str) -> Result<(), DbError> {
    diesel::update(dsl::mail_accounts.find(id))
        .set((
            dsl::status.eq(account_status::REAUTH_REQUIRED),
            dsl::last_error.eq(Some(why)),
            dsl::updated_at.eq(super::now_millis()),
        ))
        .execute(conn)?;
    Ok(())
}
