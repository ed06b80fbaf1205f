//! Tables of composing: signatures, templates, uploads, and the send/draft/alias bookkeeping the
//! send and draft actions use. Every query for a request is scoped by its owner, so another
//! user's id behaves exactly like one that does not exist.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::{
    mail_accounts, mail_aliases, mail_drafts, mail_outgoing, mail_signatures, mail_templates,
    mail_uploads,
};
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;

// ---- signatures ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_signatures)]
pub struct SignatureRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub html: String,
    pub is_default: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_signatures)]
pub struct NewSignature {
    pub user_id: i64,
    pub name: String,
    pub html: String,
    pub is_default: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct SignatureChanges {
    pub name: Option<String>,
    pub html: Option<String>,
    pub is_default: Option<bool>,
}

/// Serialises writes to one user's signatures for the rest of the transaction, so two
/// concurrent "make this the default" end with exactly one default. PostgreSQL: a transaction
/// advisory lock keyed by the user (read committed would otherwise let two transactions each
/// clear the default they saw and both set theirs). SQLite: a write as the first statement takes
/// the database write lock (busy_timeout waits for it) before anything is read.
fn lock_user_signatures(conn: &mut DbConnection, user_id: i64) -> Result<(), DbError> {
    match conn {
        DbConnection::Pg(pg) => {
            // Two-key form: a fixed class for signatures and the user (folded into 31 bits;
            // a collision only makes two users wait for each other briefly).
            diesel::sql_query("SELECT pg_advisory_xact_lock(4733001, $1)")
                .bind::<diesel::sql_types::Integer, _>((user_id & 0x7fff_ffff) as i32)
                .execute(pg)?;
        }
        DbConnection::Sqlite(c) => {
            diesel::sql_query("UPDATE mail_signatures SET user_id = user_id WHERE 0").execute(c)?;
        }
    }
    Ok(())
}

/// Makes `id` the user's only default (inside the caller's transaction, after the lock).
fn set_only_default(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(
        mail_signatures::table
            .filter(mail_signatures::user_id.eq(user_id))
            .filter(mail_signatures::is_default.eq(true))
            .filter(mail_signatures::id.ne(id)),
    )
    .set((
        mail_signatures::is_default.eq(false),
        mail_signatures::updated_at.eq(now),
    ))
    .execute(conn)?;
    diesel::update(
        mail_signatures::table
            .filter(mail_signatures::id.eq(id))
            .filter(mail_signatures::user_id.eq(user_id)),
    )
    .set(mail_signatures::is_default.eq(true))
    .execute(conn)?;
    Ok(())
}

pub fn list_signatures(
    conn: &mut DbConnection,
    user_id: i64,
) -> Result<Vec<SignatureRow>, DbError> {
    Ok(mail_signatures::table
        .filter(mail_signatures::user_id.eq(user_id))
        .order((mail_signatures::name.asc(), mail_signatures::id.asc()))
        .select(SignatureRow::as_select())
        .load(conn)?)
}

pub fn get_signature(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
) -> Result<SignatureRow, DbError> {
    Ok(mail_signatures::table
        .filter(mail_signatures::id.eq(id))
        .filter(mail_signatures::user_id.eq(user_id))
        .select(SignatureRow::as_select())
        .first(conn)?)
}

pub fn default_signature(
    conn: &mut DbConnection,
    user_id: i64,
) -> Result<Option<SignatureRow>, DbError> {
    Ok(mail_signatures::table
        .filter(mail_signatures::user_id.eq(user_id))
        .filter(mail_signatures::is_default.eq(true))
        .select(SignatureRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn create_signature(
    conn: &mut DbConnection,
    new: &NewSignature,
) -> Result<SignatureRow, DbError> {
    conn.write_transaction(|conn| {
        lock_user_signatures(conn, new.user_id)?;
        let mut row = new.clone();
        let make_default = row.is_default;
        row.is_default = false;
        diesel::insert_into(mail_signatures::table)
            .values(&row)
            .execute(conn)?;
        let id: i64 = mail_signatures::table
            .filter(mail_signatures::user_id.eq(new.user_id))
            .order(mail_signatures::id.desc())
            .select(mail_signatures::id)
            .first(conn)?;
        if make_default {
            set_only_default(conn, new.user_id, id, new.updated_at)?;
        }
        get_signature(conn, new.user_id, id)
    })
}

pub fn update_signature(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    changes: &SignatureChanges,
    now: i64,
) -> Result<SignatureRow, DbError> {
    conn.write_transaction(|conn| {
        lock_user_signatures(conn, user_id)?;
        let current = get_signature(conn, user_id, id)?;
        diesel::update(mail_signatures::table.find(current.id))
            .set((
                mail_signatures::name.eq(changes.name.as_ref().unwrap_or(&current.name)),
                mail_signatures::html.eq(changes.html.as_ref().unwrap_or(&current.html)),
                mail_signatures::updated_at.eq(now),
            ))
            .execute(conn)?;
        match changes.is_default {
            Some(true) => set_only_default(conn, user_id, id, now)?,
            Some(false) => {
                diesel::update(mail_signatures::table.find(id))
                    .set(mail_signatures::is_default.eq(false))
                    .execute(conn)?;
            }
            None => {}
        }
        get_signature(conn, user_id, id)
    })
}

pub fn delete_signature(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<(), DbError> {
    let n = diesel::delete(
        mail_signatures::table
            .filter(mail_signatures::id.eq(id))
            .filter(mail_signatures::user_id.eq(user_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

// ---- templates ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_templates)]
pub struct TemplateRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub subject: String,
    pub html: String,
    pub text_body: Option<String>,
    pub shared: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_templates)]
pub struct NewTemplate {
    pub user_id: i64,
    pub name: String,
    pub subject: String,
    pub html: String,
    pub text_body: Option<String>,
    pub shared: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `None` leaves a column; `text_body: Some(None)` clears the text.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = mail_templates)]
pub struct TemplateChanges {
    pub name: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text_body: Option<Option<String>>,
    pub shared: Option<bool>,
    pub updated_at: Option<i64>,
}

/// The user's own templates and the ones others shared.
pub fn list_visible_templates(
    conn: &mut DbConnection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<TemplateRow>, i64), DbError> {
    let visible = mail_templates::user_id
        .eq(user_id)
        .or(mail_templates::shared.eq(true));
    let rows = mail_templates::table
        .filter(visible)
        .order((mail_templates::name.asc(), mail_templates::id.asc()))
        .limit(limit)
        .offset(offset)
        .select(TemplateRow::as_select())
        .load(conn)?;
    let count = mail_templates::table
        .filter(visible)
        .count()
        .get_result(conn)?;
    Ok((rows, count))
}

/// A template the user may read: their own, or shared.
pub fn get_visible_template(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
) -> Result<TemplateRow, DbError> {
    Ok(mail_templates::table
        .filter(mail_templates::id.eq(id))
        .filter(
            mail_templates::user_id
                .eq(user_id)
                .or(mail_templates::shared.eq(true)),
        )
        .select(TemplateRow::as_select())
        .first(conn)?)
}

pub fn create_template(conn: &mut DbConnection, new: &NewTemplate) -> Result<TemplateRow, DbError> {
    conn.write_transaction(|conn| {
        diesel::insert_into(mail_templates::table)
            .values(new)
            .execute(conn)?;
        Ok(mail_templates::table
            .filter(mail_templates::user_id.eq(new.user_id))
            .order(mail_templates::id.desc())
            .select(TemplateRow::as_select())
            .first(conn)?)
    })
}

/// Only the owner writes; a shared template of someone else is `NotFound` here.
pub fn update_template(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    changes: &TemplateChanges,
) -> Result<TemplateRow, DbError> {
    let n = diesel::update(
        mail_templates::table
            .filter(mail_templates::id.eq(id))
            .filter(mail_templates::user_id.eq(user_id)),
    )
    .set(changes)
    .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    get_visible_template(conn, user_id, id)
}

pub fn delete_template(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<(), DbError> {
    let n = diesel::delete(
        mail_templates::table
            .filter(mail_templates::id.eq(id))
            .filter(mail_templates::user_id.eq(user_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

// ---- uploads ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_uploads)]
pub struct UploadRow {
    pub id: i64,
    pub user_id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_name: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_uploads)]
pub struct NewUpload {
    pub user_id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_name: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn insert_upload(conn: &mut DbConnection, new: &NewUpload) -> Result<UploadRow, DbError> {
    diesel::insert_into(mail_uploads::table)
        .values(new)
        .execute(conn)?;
    Ok(mail_uploads::table
        .filter(mail_uploads::storage_name.eq(&new.storage_name))
        .select(UploadRow::as_select())
        .first(conn)?)
}

/// An upload of this user that has not expired.
pub fn get_upload(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    now: i64,
) -> Result<UploadRow, DbError> {
    Ok(mail_uploads::table
        .filter(mail_uploads::id.eq(id))
        .filter(mail_uploads::user_id.eq(user_id))
        .filter(mail_uploads::expires_at.gt(now))
        .select(UploadRow::as_select())
        .first(conn)?)
}

/// Removes the row and returns it, so the caller can remove the file.
pub fn delete_upload(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<UploadRow, DbError> {
    conn.write_transaction(|conn| {
        let row: UploadRow = mail_uploads::table
            .filter(mail_uploads::id.eq(id))
            .filter(mail_uploads::user_id.eq(user_id))
            .select(UploadRow::as_select())
            .first(conn)?;
        diesel::delete(mail_uploads::table.find(row.id)).execute(conn)?;
        Ok(row)
    })
}

/// Removes expired rows (at most `limit`) and returns them, so the caller removes the files.
pub fn take_expired_uploads(
    conn: &mut DbConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<UploadRow>, DbError> {
    conn.write_transaction(|conn| {
        let rows: Vec<UploadRow> = mail_uploads::table
            .filter(mail_uploads::expires_at.le(now))
            .order(mail_uploads::expires_at.asc())
            .limit(limit)
            .select(UploadRow::as_select())
            .load(conn)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        if !ids.is_empty() {
            diesel::delete(mail_uploads::table.filter(mail_uploads::id.eq_any(&ids)))
                .execute(conn)?;
        }
        Ok(rows)
    })
}

// ---- outgoing (send requests) ----

pub mod outgoing_status {
    pub const QUEUED: &str = "queued";
    pub const SENDING: &str = "sending";
    pub const SENT: &str = "sent";
    /// Failed in a way a retry may fix (the provider was unavailable): the same key tries again,
    /// after checking the provider did not take it after all.
    pub const FAILED: &str = "failed";
    /// Refused by the provider for good: the same key answers the same refusal.
    pub const REJECTED: &str = "rejected";
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_outgoing)]
pub struct OutgoingRow {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub idempotency_key: String,
    pub status: String,
    pub mode: String,
    pub request_json: String,
    pub message_id: Option<String>,
    pub provider_message_id: Option<String>,
    pub provider_thread_id: Option<String>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_outgoing)]
pub struct NewOutgoing {
    pub user_id: i64,
    pub account_id: i64,
    pub idempotency_key: String,
    pub status: String,
    pub mode: String,
    pub request_json: String,
    pub message_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn find_outgoing_by_key(
    conn: &mut DbConnection,
    user_id: i64,
    key: &str,
) -> Result<Option<OutgoingRow>, DbError> {
    Ok(mail_outgoing::table
        .filter(mail_outgoing::user_id.eq(user_id))
        .filter(mail_outgoing::idempotency_key.eq(key))
        .select(OutgoingRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records a send request, or returns the one already recorded under the same key (and
/// `false`). Two requests racing with one key both get the one row.
pub fn create_or_get_outgoing(
    conn: &mut DbConnection,
    new: &NewOutgoing,
) -> Result<(OutgoingRow, bool), DbError> {
    if let Some(row) = find_outgoing_by_key(conn, new.user_id, &new.idempotency_key)? {
        return Ok((row, false));
    }
    // No surrounding transaction: on PostgreSQL a failed statement would poison it.
    match diesel::insert_into(mail_outgoing::table)
        .values(new)
        .execute(conn)
    {
        Ok(_) => {}
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            let row = find_outgoing_by_key(conn, new.user_id, &new.idempotency_key)?
                .ok_or(DbError::NotFound)?;
            return Ok((row, false));
        }
        Err(e) => return Err(e.into()),
    }
    let row =
        find_outgoing_by_key(conn, new.user_id, &new.idempotency_key)?.ok_or(DbError::NotFound)?;
    Ok((row, true))
}

pub fn get_outgoing(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
) -> Result<OutgoingRow, DbError> {
    Ok(mail_outgoing::table
        .filter(mail_outgoing::id.eq(id))
        .filter(mail_outgoing::user_id.eq(user_id))
        .select(OutgoingRow::as_select())
        .first(conn)?)
}

/// Moves a queued (or failed, for a retry) request to `sending`; false when another worker
/// has it or it was sent. One conditional UPDATE, so only one caller wins.
pub fn claim_outgoing(conn: &mut DbConnection, id: i64, now: i64) -> Result<bool, DbError> {
    let n =
        diesel::update(mail_outgoing::table.find(id).filter(
            mail_outgoing::status.eq_any([outgoing_status::QUEUED, outgoing_status::FAILED]),
        ))
        .set((
            mail_outgoing::status.eq(outgoing_status::SENDING),
            mail_outgoing::attempts.eq(mail_outgoing::attempts + 1),
            mail_outgoing::error.eq(None::<String>),
            mail_outgoing::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn mark_outgoing_sent(
    conn: &mut DbConnection,
    id: i64,
    provider_message_id: Option<&str>,
    provider_thread_id: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(mail_outgoing::table.find(id))
        .set((
            mail_outgoing::status.eq(outgoing_status::SENT),
            mail_outgoing::provider_message_id.eq(provider_message_id),
            mail_outgoing::provider_thread_id.eq(provider_thread_id),
            mail_outgoing::error.eq(None::<String>),
            mail_outgoing::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_outgoing_failed(
    conn: &mut DbConnection,
    id: i64,
    error: &str,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(mail_outgoing::table.find(id))
        .set((
            mail_outgoing::status.eq(outgoing_status::FAILED),
            mail_outgoing::error.eq(Some(error)),
            mail_outgoing::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_outgoing_rejected(
    conn: &mut DbConnection,
    id: i64,
    error: &str,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(mail_outgoing::table.find(id))
        .set((
            mail_outgoing::status.eq(outgoing_status::REJECTED),
            mail_outgoing::error.eq(Some(error)),
            mail_outgoing::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The Message-ID the provider will send (Graph assigns its own to a draft).
pub fn set_outgoing_message_id(
    conn: &mut DbConnection,
    id: i64,
    message_id: &str,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(mail_outgoing::table.find(id))
        .set((
            mail_outgoing::message_id.eq(Some(message_id)),
            mail_outgoing::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes over a request left in `sending` since before `before` (the process that had it
/// died); false when it moved meanwhile. The caller checks the provider before sending again.
pub fn claim_stale_sending(
    conn: &mut DbConnection,
    id: i64,
    before: i64,
    now: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        mail_outgoing::table
            .find(id)
            .filter(mail_outgoing::status.eq(outgoing_status::SENDING))
            .filter(mail_outgoing::updated_at.lt(before)),
    )
    .set((
        mail_outgoing::attempts.eq(mail_outgoing::attempts + 1),
        mail_outgoing::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Keeps a running send from looking abandoned.
pub fn touch_outgoing(conn: &mut DbConnection, id: i64, now: i64) -> Result<(), DbError> {
    diesel::update(
        mail_outgoing::table
            .find(id)
            .filter(mail_outgoing::status.eq(outgoing_status::SENDING)),
    )
    .set(mail_outgoing::updated_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// Requests left in `sending` since before `before` (the process died mid-send): the send
/// task must check the provider's sent mail for their Message-ID before trying again.
pub fn stale_sending(
    conn: &mut DbConnection,
    before: i64,
    limit: i64,
) -> Result<Vec<OutgoingRow>, DbError> {
    Ok(mail_outgoing::table
        .filter(mail_outgoing::status.eq(outgoing_status::SENDING))
        .filter(mail_outgoing::updated_at.lt(before))
        .order(mail_outgoing::updated_at.asc())
        .limit(limit)
        .select(OutgoingRow::as_select())
        .load(conn)?)
}

// ---- drafts ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_drafts)]
pub struct DraftRow {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub revision: i64,
    pub provider_draft_id: Option<String>,
    pub fields_json: String,
    pub provider_synced_revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub mirror_attempts: i32,
    pub mirror_error: Option<String>,
    /// Deleted (or sent) here; the row stays until the provider's copy is gone.
    pub deleted_at: Option<i64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_drafts)]
pub struct NewDraft {
    pub user_id: i64,
    pub account_id: i64,
    pub revision: i64,
    pub fields_json: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an auto-save did.
#[derive(Debug, Clone)]
pub enum DraftSave {
    /// Stored: the revision was newer than the one stored.
    Saved(DraftRow),
    /// Not stored: the stored revision is the same or newer (a late or repeated save).
    Stale(DraftRow),
}

pub fn create_draft(conn: &mut DbConnection, new: &NewDraft) -> Result<DraftRow, DbError> {
    conn.write_transaction(|conn| {
        diesel::insert_into(mail_drafts::table)
            .values(new)
            .execute(conn)?;
        Ok(mail_drafts::table
            .filter(mail_drafts::user_id.eq(new.user_id))
            .order(mail_drafts::id.desc())
            .select(DraftRow::as_select())
            .first(conn)?)
    })
}

/// A draft of the user that is not deleted.
pub fn get_draft(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<DraftRow, DbError> {
    Ok(mail_drafts::table
        .filter(mail_drafts::id.eq(id))
        .filter(mail_drafts::user_id.eq(user_id))
        .filter(mail_drafts::deleted_at.is_null())
        .select(DraftRow::as_select())
        .first(conn)?)
}

/// Any draft row by id, deleted ones included (the mirror's view).
pub fn draft_row(conn: &mut DbConnection, id: i64) -> Result<DraftRow, DbError> {
    Ok(mail_drafts::table
        .find(id)
        .select(DraftRow::as_select())
        .first(conn)?)
}

/// The user's drafts, newest first, optionally of one account.
pub fn list_drafts(
    conn: &mut DbConnection,
    user_id: i64,
    account_id: Option<i64>,
) -> Result<Vec<DraftRow>, DbError> {
    let mut q = mail_drafts::table
        .filter(mail_drafts::user_id.eq(user_id))
        .filter(mail_drafts::deleted_at.is_null())
        .into_boxed();
    if let Some(a) = account_id {
        q = q.filter(mail_drafts::account_id.eq(a));
    }
    Ok(
        q.order((mail_drafts::updated_at.desc(), mail_drafts::id.desc()))
            .select(DraftRow::as_select())
            .load(conn)?,
    )
}

/// Last write wins by revision: one conditional UPDATE, so a late save cannot overwrite a newer
/// one, and saving the same revision twice changes nothing.
pub fn save_draft(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    revision: i64,
    fields_json: &str,
    now: i64,
) -> Result<DraftSave, DbError> {
    let n = diesel::update(
        mail_drafts::table
            .filter(mail_drafts::id.eq(id))
            .filter(mail_drafts::user_id.eq(user_id))
            .filter(mail_drafts::deleted_at.is_null())
            .filter(mail_drafts::revision.lt(revision)),
    )
    .set((
        mail_drafts::revision.eq(revision),
        mail_drafts::fields_json.eq(fields_json),
        mail_drafts::updated_at.eq(now),
    ))
    .execute(conn)?;
    let row = get_draft(conn, user_id, id)?;
    Ok(if n == 1 {
        DraftSave::Saved(row)
    } else {
        DraftSave::Stale(row)
    })
}

/// After mirroring `revision` to the provider: remembers the provider's id and the revision,
/// never moving the synced revision backwards.
pub fn mark_draft_synced(
    conn: &mut DbConnection,
    id: i64,
    provider_draft_id: &str,
    revision: i64,
) -> Result<(), DbError> {
    diesel::update(
        mail_drafts::table
            .find(id)
            .filter(mail_drafts::provider_synced_revision.lt(revision)),
    )
    .set((
        mail_drafts::provider_draft_id.eq(Some(provider_draft_id)),
        mail_drafts::provider_synced_revision.eq(revision),
    ))
    .execute(conn)?;
    Ok(())
}

/// Drafts whose latest revision the provider does not have yet, oldest change first.
pub fn drafts_to_mirror(
    conn: &mut DbConnection,
    updated_before: i64,
    limit: i64,
) -> Result<Vec<DraftRow>, DbError> {
    Ok(mail_drafts::table
        .filter(mail_drafts::provider_synced_revision.lt(mail_drafts::revision))
        .filter(mail_drafts::deleted_at.is_null())
        .filter(mail_drafts::updated_at.le(updated_before))
        .order(mail_drafts::updated_at.asc())
        .limit(limit)
        .select(DraftRow::as_select())
        .load(conn)?)
}

/// Removes the draft and returns it (the caller deletes the provider's copy).
pub fn delete_draft(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<DraftRow, DbError> {
    conn.write_transaction(|conn| {
        let row = get_draft(conn, user_id, id)?;
        diesel::delete(mail_drafts::table.find(row.id)).execute(conn)?;
        Ok(row)
    })
}

/// Claims drafts the provider's copy must catch up with: changed and quiet since
/// `quiet_before`, or deleted here. Each is locked until `lock_until` by one conditional update,
/// so of several workers (replicas) exactly one takes a draft.
pub fn claim_drafts_to_mirror(
    conn: &mut DbConnection,
    now: i64,
    quiet_before: i64,
    lock_until: i64,
    limit: i64,
) -> Result<Vec<DraftRow>, DbError> {
    let dirty = mail_drafts::deleted_at.is_null().and(
        mail_drafts::provider_synced_revision
            .lt(mail_drafts::revision)
            .and(mail_drafts::updated_at.le(quiet_before)),
    );
    let candidates: Vec<i64> = mail_drafts::table
        .filter(mail_drafts::mirror_locked_until.lt(now))
        .filter(mail_drafts::mirror_next_at.le(now))
        .filter(dirty.or(mail_drafts::deleted_at.is_not_null()))
        .order(mail_drafts::updated_at.asc())
        .limit(limit)
        .select(mail_drafts::id)
        .load(conn)?;
    let mut out = Vec::with_capacity(candidates.len());
    for id in candidates {
        if claim_draft(conn, id, now, lock_until)? {
            out.push(draft_row(conn, id)?);
        }
    }
    Ok(out)
}

/// Locks one draft for provider work (an inline delete, the mirror); false when another has it.
pub fn claim_draft(
    conn: &mut DbConnection,
    id: i64,
    now: i64,
    lock_until: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        mail_drafts::table
            .find(id)
            .filter(mail_drafts::mirror_locked_until.lt(now)),
    )
    .set(mail_drafts::mirror_locked_until.eq(lock_until))
    .execute(conn)?;
    Ok(n == 1)
}

/// Unlocks a draft after provider work: `error` set means it failed (counted, retried from
/// `next_at`), `None` means it worked.
pub fn release_draft(
    conn: &mut DbConnection,
    id: i64,
    next_at: i64,
    error: Option<&str>,
) -> Result<(), DbError> {
    let target = mail_drafts::table.find(id);
    match error {
        Some(_) => diesel::update(target)
            .set((
                mail_drafts::mirror_locked_until.eq(0),
                mail_drafts::mirror_next_at.eq(next_at),
                mail_drafts::mirror_error.eq(error),
                mail_drafts::mirror_attempts.eq(mail_drafts::mirror_attempts + 1),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                mail_drafts::mirror_locked_until.eq(0),
                mail_drafts::mirror_next_at.eq(next_at),
                mail_drafts::mirror_error.eq(None::<String>),
                mail_drafts::mirror_attempts.eq(0),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// Deletes a draft here: it disappears from `get`/`list` at once, its row stays until the
/// provider's copy is gone ([`purge_draft`]).
pub fn tombstone_draft(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    now: i64,
) -> Result<DraftRow, DbError> {
    let n = diesel::update(
        mail_drafts::table
            .filter(mail_drafts::id.eq(id))
            .filter(mail_drafts::user_id.eq(user_id))
            .filter(mail_drafts::deleted_at.is_null()),
    )
    .set((
        mail_drafts::deleted_at.eq(Some(now)),
        mail_drafts::mirror_next_at.eq(0),
    ))
    .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    draft_row(conn, id)
}

pub fn purge_draft(conn: &mut DbConnection, id: i64) -> Result<(), DbError> {
    diesel::delete(mail_drafts::table.find(id)).execute(conn)?;
    Ok(())
}

// ---- aliases ----

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_aliases)]
pub struct AliasRow {
    pub id: i64,
    pub account_id: i64,
    pub address: String,
    pub name: String,
    pub is_default: bool,
    pub verified: bool,
    pub updated_at: i64,
}

/// An alias as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasInput {
    pub address: String,
    pub name: String,
    pub is_default: bool,
    pub verified: bool,
}

/// Replaces the account's aliases with `aliases` in one transaction: new ones inserted, known
/// ones updated (ids kept), the rest removed. Addresses compare case-insensitively.
pub fn replace_aliases(
    conn: &mut DbConnection,
    account_id: i64,
    aliases: &[AliasInput],
    now: i64,
) -> Result<Vec<AliasRow>, DbError> {
    conn.write_transaction(|conn| {
        let existing = list_aliases(conn, account_id)?;
        let key = |s: &str| s.to_ascii_lowercase();
        for row in &existing {
            if !aliases.iter().any(|a| key(&a.address) == key(&row.address)) {
                diesel::delete(mail_aliases::table.find(row.id)).execute(conn)?;
            }
        }
        for a in aliases {
            match existing.iter().find(|r| key(&r.address) == key(&a.address)) {
                Some(row) => {
                    diesel::update(mail_aliases::table.find(row.id))
                        .set((
                            mail_aliases::address.eq(&a.address),
                            mail_aliases::name.eq(&a.name),
                            mail_aliases::is_default.eq(a.is_default),
                            mail_aliases::verified.eq(a.verified),
                            mail_aliases::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
                None => {
                    diesel::insert_into(mail_aliases::table)
                        .values((
                            mail_aliases::account_id.eq(account_id),
                            mail_aliases::address.eq(&a.address),
                            mail_aliases::name.eq(&a.name),
                            mail_aliases::is_default.eq(a.is_default),
                            mail_aliases::verified.eq(a.verified),
                            mail_aliases::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
            }
        }
        list_aliases(conn, account_id)
    })
}

pub fn list_aliases(conn: &mut DbConnection, account_id: i64) -> Result<Vec<AliasRow>, DbError> {
    Ok(mail_aliases::table
        .filter(mail_aliases::account_id.eq(account_id))
        .order((mail_aliases::is_default.desc(), mail_aliases::address.asc()))
        .select(AliasRow::as_select())
        .load(conn)?)
}

/// Every alias of every account of the user.
pub fn list_aliases_for_user(
    conn: &mut DbConnection,
    user_id: i64,
) -> Result<Vec<AliasRow>, DbError> {
    Ok(mail_aliases::table
        .inner_join(mail_accounts::table)
        .filter(mail_accounts::user_id.eq(user_id))
        .order((
            mail_aliases::account_id.asc(),
            mail_aliases::is_default.desc(),
            mail_aliases::address.asc(),
        ))
        .select(AliasRow::as_select())
        .load(conn)?)
}
