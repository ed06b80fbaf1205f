//! Notes on messages (`mail_message_notes`). A note is its author's only: every query is scoped
//! by the author, so another user's note behaves exactly like one that does not exist.

use diesel::prelude::*;

use super::schema::{mail_message_notes, mail_messages};
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_message_notes)]
pub struct NoteRow {
    pub id: i64,
    pub message_id: i64,
    pub user_id: i64,
    pub format: String,
    pub content: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The notes of `message_id` by `user_id`, oldest first; `NotFound` when the message is not the
/// user's.
pub fn list(
    conn: &mut DbConnection,
    user_id: i64,
    message_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<NoteRow>, i64), DbError> {
    own_message(conn, user_id, message_id)?;
    let mine = mail_message_notes::table
        .filter(mail_message_notes::message_id.eq(message_id))
        .filter(mail_message_notes::user_id.eq(user_id));
    let rows = mine
        .order((
            mail_message_notes::created_at.asc(),
            mail_message_notes::id.asc(),
        ))
        .limit(limit)
        .offset(offset)
        .select(NoteRow::as_select())
        .load(conn)?;
    let count = mine.count().get_result(conn)?;
    Ok((rows, count))
}

/// The notes of each of `message_ids` by `user_id`, oldest first.
pub fn for_messages(
    conn: &mut DbConnection,
    user_id: i64,
    message_ids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<NoteRow>>, DbError> {
    let mut out: std::collections::HashMap<i64, Vec<NoteRow>> = Default::default();
    for chunk in message_ids.chunks(500) {
        let rows: Vec<NoteRow> = mail_message_notes::table
            .filter(mail_message_notes::user_id.eq(user_id))
            .filter(mail_message_notes::message_id.eq_any(chunk))
            .order((
                mail_message_notes::created_at.asc(),
                mail_message_notes::id.asc(),
            ))
            .select(NoteRow::as_select())
            .load(conn)?;
        for r in rows {
            out.entry(r.message_id).or_default().push(r);
        }
    }
    Ok(out)
}

pub fn get(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<NoteRow, DbError> {
    Ok(mail_message_notes::table
        .filter(mail_message_notes::id.eq(id))
        .filter(mail_message_notes::user_id.eq(user_id))
        .select(NoteRow::as_select())
        .first(conn)?)
}

fn own_message(conn: &mut DbConnection, user_id: i64, message_id: i64) -> Result<(), DbError> {
    mail_messages::table
        .filter(mail_messages::id.eq(message_id))
        .filter(mail_messages::user_id.eq(user_id))
        .select(mail_messages::id)
        .first::<i64>(conn)?;
    Ok(())
}

/// Adds a note to a message of `user_id`; `NotFound` for anyone else's message.
pub fn create(
    conn: &mut DbConnection,
    user_id: i64,
    message_id: i64,
    format: &str,
    content: &str,
    now: i64,
) -> Result<NoteRow, DbError> {
    conn.write_transaction(|conn| {
        own_message(conn, user_id, message_id)?;
        diesel::insert_into(mail_message_notes::table)
            .values((
                mail_message_notes::message_id.eq(message_id),
                mail_message_notes::user_id.eq(user_id),
                mail_message_notes::format.eq(format),
                mail_message_notes::content.eq(content),
                mail_message_notes::created_at.eq(now),
                mail_message_notes::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(mail_message_notes::table
            .filter(mail_message_notes::user_id.eq(user_id))
            .filter(mail_message_notes::message_id.eq(message_id))
            .order(mail_message_notes::id.desc())
            .select(NoteRow::as_select())
            .first(conn)?)
    })
}

pub fn update(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    format: &str,
    content: &str,
    now: i64,
) -> Result<NoteRow, DbError> {
    let n = diesel::update(
        mail_message_notes::table
            .filter(mail_message_notes::id.eq(id))
            .filter(mail_message_notes::user_id.eq(user_id)),
    )
    .set((
        mail_message_notes::format.eq(format),
        mail_message_notes::content.eq(content),
        mail_message_notes::updated_at.eq(now),
    ))
    .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    get(conn, user_id, id)
}

pub fn delete(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<(), DbError> {
    let n = diesel::delete(
        mail_message_notes::table
            .filter(mail_message_notes::id.eq(id))
            .filter(mail_message_notes::user_id.eq(user_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
