//! Writes that sync makes to `mail_messages`, `mail_attachments`, `mail_folders`, and the sync
//! columns of `mail_accounts`. Reads for the API live in `message_list`.

use std::collections::HashMap;

use diesel::prelude::*;

use super::message_list::folder_code;
use super::models::{MailFolderRow, NewMailAttachment, NewMailMessage};
use super::schema::{
    mail_accounts, mail_attachments, mail_folders, mail_label_outbox, mail_message_labels,
    mail_message_notes, mail_messages,
};
use super::{DbConnection, DbError};

/// What sync needs to know about a stored message to decide between insert, update and nothing.
#[derive(Debug, Clone, Queryable)]
pub struct Known {
    pub id: i64,
    pub provider_message_id: String,
    pub folder: String,
    pub provider_labels: String,
    pub unread: bool,
    pub starred: bool,
    pub draft: bool,
    pub thread_id: String,
    pub sync_gen: i64,
    pub todo: bool,
    pub todo_due_at: Option<i64>,
}

pub fn known(
    conn: &mut DbConnection,
    account_id: i64,
    provider_ids: &[String],
) -> Result<HashMap<String, Known>, DbError> {
    let mut out = HashMap::with_capacity(provider_ids.len());
    // Bounded IN lists: SQLite's default limit on bound parameters is far above this.
    for chunk in provider_ids.chunks(500) {
        let rows: Vec<Known> = mail_messages::table
            .filter(mail_messages::account_id.eq(account_id))
            .filter(mail_messages::provider_message_id.eq_any(chunk))
            .select((
                mail_messages::id,
                mail_messages::provider_message_id,
                mail_messages::folder,
                mail_messages::provider_labels,
                mail_messages::unread,
                mail_messages::starred,
                mail_messages::draft,
                mail_messages::thread_id,
                mail_messages::sync_gen,
                mail_messages::todo,
                mail_messages::todo_due_at,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().map(|k| (k.provider_message_id.clone(), k)));
    }
    Ok(out)
}

/// Inserts a message with its attachments; returns its id.
pub fn insert(
    conn: &mut DbConnection,
    new: &NewMailMessage,
    attachments: &[NewMailAttachment],
) -> Result<i64, DbError> {
    diesel::insert_into(mail_messages::table)
        .values(new)
        .execute(conn)?;
    let id: i64 = mail_messages::table
        .filter(mail_messages::account_id.eq(new.account_id))
        .filter(mail_messages::provider_message_id.eq(&new.provider_message_id))
        .select(mail_messages::id)
        .first(conn)?;
    if !attachments.is_empty() {
        // One row at a time: batch inserts are not in the SQL both backends share.
        for a in attachments {
            let mut row = a.clone();
            row.message_id = id;
            diesel::insert_into(mail_attachments::table)
                .values(&row)
                .execute(conn)?;
        }
    }
    Ok(id)
}

/// Rows per multi-row INSERT: 30 columns each stays far under SQLite's 32,766 bound parameters
/// (and PostgreSQL's 65,535).
const INSERT_BATCH: usize = 200;

/// Inserts new messages with their attachments, a few hundred rows per INSERT statement (a
/// page of sync is one or two statements instead of one per message and attachment); answers
/// their ids, in order.
///
/// Rows go in by account and folder: the ids they get then grow with their search keys
/// (migration 12), and FTS5, which flushes its pending terms whenever a key is smaller than the
/// last, writes each page's terms once.
pub fn insert_many(
    conn: &mut DbConnection,
    items: &[(NewMailMessage, Vec<NewMailAttachment>)],
) -> Result<Vec<i64>, DbError> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].0.account_id, folder_code(&items[i].0.folder)));
    let sorted: Vec<&(NewMailMessage, Vec<NewMailAttachment>)> =
        order.iter().map(|&i| &items[i]).collect();
    let mut ids = vec![0; items.len()];
    for (chunk, places) in sorted.chunks(INSERT_BATCH).zip(order.chunks(INSERT_BATCH)) {
        let rows: Vec<&NewMailMessage> = chunk.iter().map(|item| &item.0).collect();
        // Batch inserts are per backend in Diesel (SQLite's has its own statement shape).
        match conn {
            DbConnection::Sqlite(c) => diesel::insert_into(mail_messages::table)
                .values(rows)
                .execute(c)?,
            DbConnection::Pg(c) => diesel::insert_into(mail_messages::table)
                .values(rows)
                .execute(c)?,
        };
        // Ids by (account, provider id), the unique key: no reliance on RETURNING's order.
        let mut by_account: HashMap<i64, Vec<&str>> = HashMap::new();
        for (m, _) in chunk.iter().copied() {
            by_account
                .entry(m.account_id)
                .or_default()
                .push(m.provider_message_id.as_str());
        }
        let mut found: HashMap<(i64, String), i64> = HashMap::with_capacity(chunk.len());
        for (account_id, pids) in by_account {
            let rows: Vec<(i64, String)> = mail_messages::table
                .filter(mail_messages::account_id.eq(account_id))
                .filter(mail_messages::provider_message_id.eq_any(pids))
                .select((mail_messages::id, mail_messages::provider_message_id))
                .load(conn)?;
            found.extend(rows.into_iter().map(|(id, p)| ((account_id, p), id)));
        }
        let mut attachments: Vec<NewMailAttachment> = Vec::new();
        for ((m, atts), &at) in chunk.iter().copied().zip(places) {
            let id = found
                .get(&(m.account_id, m.provider_message_id.clone()))
                .copied()
                .ok_or(DbError::NotFound)?;
            ids[at] = id;
            attachments.extend(atts.iter().cloned().map(|mut a| {
                a.message_id = id;
                a
            }));
        }
        for batch in attachments.chunks(INSERT_BATCH) {
            match conn {
                DbConnection::Sqlite(c) => diesel::insert_into(mail_attachments::table)
                    .values(batch)
                    .execute(c)?,
                DbConnection::Pg(c) => diesel::insert_into(mail_attachments::table)
                    .values(batch)
                    .execute(c)?,
            };
        }
    }
    Ok(ids)
}

/// The provider-side state of a stored message.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = mail_messages)]
pub struct StateUpdate {
    pub folder: String,
    pub provider_labels: String,
    pub unread: bool,
    pub starred: bool,
    pub draft: bool,
    pub thread_id: String,
    pub sync_gen: i64,
    /// Set only when the state really changed (a listing that re-sees a message is no update).
    pub updated_at: Option<i64>,
}

pub fn update_state(conn: &mut DbConnection, id: i64, update: &StateUpdate) -> Result<(), DbError> {
    diesel::update(mail_messages::table.find(id))
        .set(update)
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, id: i64) -> Result<(), DbError> {
    // Attachments go by ON DELETE CASCADE on PostgreSQL; SQLite needs foreign_keys = ON, which
    // every connection sets, but deleting them here keeps it independent of that.
    diesel::delete(mail_attachments::table.filter(mail_attachments::message_id.eq(id)))
        .execute(conn)?;
    delete_local_state(conn, &[id])?;
    diesel::delete(mail_messages::table.find(id)).execute(conn)?;
    Ok(())
}

/// Labels, notes and label work of messages that are gone (the foreign keys cascade too; this
/// keeps it independent of them, like attachments).
fn delete_local_state(conn: &mut DbConnection, ids: &[i64]) -> Result<(), DbError> {
    diesel::delete(mail_message_labels::table.filter(mail_message_labels::message_id.eq_any(ids)))
        .execute(conn)?;
    diesel::delete(mail_message_notes::table.filter(mail_message_notes::message_id.eq_any(ids)))
        .execute(conn)?;
    diesel::delete(mail_label_outbox::table.filter(mail_label_outbox::message_id.eq_any(ids)))
        .execute(conn)?;
    Ok(())
}

/// Sets the to-do state sync reads from the provider's star or flag.
pub fn set_todo(
    conn: &mut DbConnection,
    id: i64,
    todo: bool,
    due: Option<i64>,
) -> Result<(), DbError> {
    diesel::update(mail_messages::table.find(id))
        .set((
            mail_messages::todo.eq(todo),
            mail_messages::todo_due_at.eq(due),
        ))
        .execute(conn)?;
    Ok(())
}

/// After a full listing of generation `gen`: messages it did not see, received inside the
/// listing's window, are gone at the provider.
pub fn sweep(
    conn: &mut DbConnection,
    account_id: i64,
    gen: i64,
    since: Option<i64>,
) -> Result<usize, DbError> {
    let stale = mail_messages::table
        .filter(mail_messages::account_id.eq(account_id))
        .filter(mail_messages::sync_gen.lt(gen))
        .filter(mail_messages::date.ge(since.unwrap_or(i64::MIN)))
        .select(mail_messages::id);
    let ids: Vec<i64> = stale.load(conn)?;
    for chunk in ids.chunks(500) {
        diesel::delete(mail_attachments::table.filter(mail_attachments::message_id.eq_any(chunk)))
            .execute(conn)?;
        delete_local_state(conn, chunk)?;
        diesel::delete(mail_messages::table.filter(mail_messages::id.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok(ids.len())
}

pub fn upsert_folders(conn: &mut DbConnection, rows: &[MailFolderRow]) -> Result<(), DbError> {
    for row in rows {
        let updated = diesel::update(
            mail_folders::table
                .filter(mail_folders::account_id.eq(row.account_id))
                .filter(mail_folders::folder.eq(&row.folder)),
        )
        .set((
            mail_folders::name.eq(&row.name),
            mail_folders::provider_folder_id.eq(&row.provider_folder_id),
        ))
        .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(mail_folders::table)
                .values(row)
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Stores the cursor that covers what was just committed, and the listing generation.
pub fn save_cursor(
    conn: &mut DbConnection,
    account_id: i64,
    cursor: &str,
    gen: i64,
) -> Result<(), DbError> {
    diesel::update(mail_accounts::table.find(account_id))
        .set((
            mail_accounts::sync_cursor.eq(Some(cursor)),
            mail_accounts::sync_gen.eq(gen),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets the cursor: the next run starts a full listing (resync).
pub fn reset_cursor(conn: &mut DbConnection, account_id: i64) -> Result<(), DbError> {
    diesel::update(mail_accounts::table.find(account_id))
        .set(mail_accounts::sync_cursor.eq(None::<String>))
        .execute(conn)?;
    Ok(())
}
