//! Changes users make to messages here (`mailMessages:update` / `destroy`): the local write, and
//! the outbox rows (`mail_outbox`) that carry the provider part until the provider confirmed it.
//!
//! The local change and its outbox rows are one transaction, so a change is never applied here
//! without its way to the provider being recorded. While an outbox row exists for a message, sync
//! keeps the local value of the fields it carries ([`Held`]): the provider's copy is stale until
//! the change reaches it.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::messages::Known;
use super::schema::{mail_messages, mail_outbox};
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;
use crate::providers::MessageState;

/// What a user asked to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalChange {
    pub unread: Option<bool>,
    pub starred: Option<bool>,
    pub folder: Option<String>,
    /// Local only, except in mailboxes whose to-do is the star or flag (`coupled` in [`apply`]).
    pub todo: Option<bool>,
    /// `Some(None)` removes the due date.
    pub todo_due_at: Option<Option<i64>>,
}

impl LocalChange {
    /// Whether the provider has to hear about it.
    pub fn reaches_provider(&self) -> bool {
        self.unread.is_some() || self.starred.is_some() || self.folder.is_some()
    }

    /// The change in a mailbox whose to-do is the star (or flag): one sets the other.
    pub fn coupled(&self) -> LocalChange {
        LocalChange {
            starred: self.starred.or(self.todo),
            todo: self.todo.or(self.starred),
            ..self.clone()
        }
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = mail_messages)]
struct MessageUpdate {
    unread: Option<bool>,
    starred: Option<bool>,
    folder: Option<String>,
    todo: Option<bool>,
    todo_due_at: Option<Option<i64>>,
    updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub message_id: i64,
    pub provider_message_id: String,
    pub unread: Option<bool>,
    pub starred: Option<bool>,
    pub folder: Option<String>,
    pub prev_unread: Option<bool>,
    pub prev_starred: Option<bool>,
    pub prev_folder: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub todo: Option<bool>,
    pub todo_due_at: Option<i64>,
    pub prev_todo: Option<bool>,
    pub prev_todo_due_at: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = mail_outbox)]
struct NewOutbox<'a> {
    user_id: i64,
    account_id: i64,
    message_id: i64,
    provider_message_id: &'a str,
    unread: Option<bool>,
    starred: Option<bool>,
    folder: Option<&'a str>,
    prev_unread: Option<bool>,
    prev_starred: Option<bool>,
    prev_folder: Option<&'a str>,
    attempts: i32,
    next_attempt_at: i64,
    locked_by: Option<&'a str>,
    locked_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
    todo: Option<bool>,
    todo_due_at: Option<i64>,
    prev_todo: Option<bool>,
    prev_todo_due_at: Option<i64>,
}

/// Applies `change` to the messages `ids` of `user_id` and records the provider part, locked by
/// `lock` until `lock_until` (the caller delivers it right away). Answers the outbox rows.
/// Messages of the accounts in `coupled` mirror their to-do as the star or flag: there the
/// change sets both ([`LocalChange::coupled`]) and the to-do goes to the provider too.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    conn: &mut DbConnection,
    user_id: i64,
    ids: &[i64],
    change: &LocalChange,
    coupled: &HashSet<i64>,
    lock: &str,
    lock_until: i64,
    now: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    conn.write_transaction(|conn| {
        #[allow(clippy::type_complexity)]
        let before: Vec<(i64, i64, String, bool, bool, String, bool, Option<i64>)> =
            mail_messages::table
                .filter(mail_messages::user_id.eq(user_id))
                .filter(mail_messages::id.eq_any(ids))
                .select((
                    mail_messages::id,
                    mail_messages::account_id,
                    mail_messages::provider_message_id,
                    mail_messages::unread,
                    mail_messages::starred,
                    mail_messages::folder,
                    mail_messages::todo,
                    mail_messages::todo_due_at,
                ))
                .load(conn)?;
        if before.len() != ids.len() {
            return Err(DbError::NotFound);
        }
        let tied: Vec<i64> = before
            .iter()
            .filter(|b| coupled.contains(&b.1))
            .map(|b| b.0)
            .collect();
        let plain: Vec<i64> = before
            .iter()
            .filter(|b| !coupled.contains(&b.1))
            .map(|b| b.0)
            .collect();
        let tied_change = change.coupled();
        for (group, c) in [(&plain, change), (&tied, &tied_change)] {
            if group.is_empty() {
                continue;
            }
            diesel::update(
                mail_messages::table
                    .filter(mail_messages::user_id.eq(user_id))
                    .filter(mail_messages::id.eq_any(group)),
            )
            .set(&MessageUpdate {
                unread: c.unread,
                starred: c.starred,
                folder: c.folder.clone(),
                todo: c.todo,
                todo_due_at: c.todo_due_at,
                updated_at: now,
            })
            .execute(conn)?;
        }
        for (id, account_id, provider_id, unread, starred, folder, todo, due) in &before {
            let is_tied = coupled.contains(account_id);
            let c = if is_tied { &tied_change } else { change };
            // The to-do reaches the provider in coupled mailboxes when it is opened or closed,
            // or the due date of an open one moves. A star alone goes as the star (Outlook: a
            // cleared flag rather than a completed one).
            let todo_now = c.todo.unwrap_or(*todo);
            let todo_out = if !is_tied {
                None
            } else if change.todo.is_some() {
                change.todo
            } else if change.todo_due_at.is_some() && todo_now && change.starred != Some(false) {
                Some(true)
            } else {
                None
            };
            if !c.reaches_provider() && todo_out.is_none() {
                continue;
            }
            let due_now = c.todo_due_at.unwrap_or(*due);
            diesel::insert_into(mail_outbox::table)
                .values(NewOutbox {
                    user_id,
                    account_id: *account_id,
                    message_id: *id,
                    provider_message_id: provider_id,
                    unread: c.unread,
                    starred: c.starred,
                    folder: c.folder.as_deref(),
                    prev_unread: c.unread.map(|_| *unread),
                    prev_starred: c.starred.map(|_| *starred),
                    prev_folder: c.folder.as_ref().map(|_| folder.as_str()),
                    attempts: 0,
                    next_attempt_at: now,
                    locked_by: Some(lock),
                    locked_until: Some(lock_until),
                    created_at: now,
                    updated_at: now,
                    todo: todo_out,
                    todo_due_at: todo_out.filter(|t| *t).and(due_now),
                    prev_todo: todo_out.map(|_| *todo),
                    prev_todo_due_at: todo_out.and(*due),
                })
                .execute(conn)?;
        }
        Ok(mail_outbox::table
            .filter(mail_outbox::locked_by.eq(lock))
            .order(mail_outbox::id.asc())
            .select(OutboxRow::as_select())
            .load(conn)?)
    })
}

work_queue!(mail_outbox, OutboxRow);

/// Messages among `message_ids` with an outbox row older than `before_id` that `lock` does not
/// hold: a change still on its way, which a newer one must not overtake.
pub fn busy_messages(
    conn: &mut DbConnection,
    message_ids: &[i64],
    before_id: i64,
    lock: &str,
) -> Result<HashSet<i64>, DbError> {
    let mut out = HashSet::new();
    for chunk in message_ids.chunks(500) {
        let ids: Vec<i64> = mail_outbox::table
            .filter(mail_outbox::message_id.eq_any(chunk))
            .filter(mail_outbox::id.lt(before_id))
            .filter(
                mail_outbox::locked_by
                    .is_null()
                    .or(mail_outbox::locked_by.ne(lock)),
            )
            .select(mail_outbox::message_id)
            .load(conn)?;
        out.extend(ids);
    }
    Ok(out)
}

/// The provider refused for good: undoes the local change of each row (a field only when it
/// still has the value the row set and no newer pending change sets it too), then drops the rows.
pub fn revert(conn: &mut DbConnection, rows: &[OutboxRow], now: i64) -> Result<(), DbError> {
    conn.write_transaction(|conn| {
        for row in rows {
            #[allow(clippy::type_complexity)]
            let newer: Vec<(Option<bool>, Option<bool>, Option<String>, Option<bool>)> =
                mail_outbox::table
                    .filter(mail_outbox::message_id.eq(row.message_id))
                    .filter(mail_outbox::id.gt(row.id))
                    .select((
                        mail_outbox::unread,
                        mail_outbox::starred,
                        mail_outbox::folder,
                        mail_outbox::todo,
                    ))
                    .load(conn)?;
            let target = mail_messages::table.filter(mail_messages::id.eq(row.message_id));
            if let (Some(want), Some(prev)) = (row.unread, row.prev_unread) {
                if !newer.iter().any(|n| n.0.is_some()) {
                    diesel::update(target.filter(mail_messages::unread.eq(want)))
                        .set((
                            mail_messages::unread.eq(prev),
                            mail_messages::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
            }
            if let (Some(want), Some(prev)) = (row.starred, row.prev_starred) {
                if !newer.iter().any(|n| n.1.is_some()) {
                    diesel::update(target.filter(mail_messages::starred.eq(want)))
                        .set((
                            mail_messages::starred.eq(prev),
                            mail_messages::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
            }
            if let (Some(want), Some(prev)) = (&row.folder, &row.prev_folder) {
                if !newer.iter().any(|n| n.2.is_some()) {
                    diesel::update(target.filter(mail_messages::folder.eq(want)))
                        .set((
                            mail_messages::folder.eq(prev),
                            mail_messages::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
            }
            if let (Some(want), Some(prev)) = (row.todo, row.prev_todo) {
                if !newer.iter().any(|n| n.3.is_some()) {
                    diesel::update(target.filter(mail_messages::todo.eq(want)))
                        .set((
                            mail_messages::todo.eq(prev),
                            mail_messages::todo_due_at.eq(row.prev_todo_due_at),
                            mail_messages::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
            }
            diesel::delete(mail_outbox::table.find(row.id)).execute(conn)?;
        }
        Ok(())
    })
}

/// The fields of messages that have a change on its way to the provider.
#[derive(Debug, Default)]
pub struct Held {
    unread: HashSet<i64>,
    starred: HashSet<i64>,
    folder: HashSet<i64>,
    todo: HashSet<i64>,
}

/// Which fields of `message_ids` sync must leave alone for now.
pub fn held(conn: &mut DbConnection, message_ids: &[i64]) -> Result<Held, DbError> {
    let mut held = Held::default();
    for chunk in message_ids.chunks(500) {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            i64,
            Option<bool>,
            Option<bool>,
            Option<String>,
            Option<bool>,
        )> = mail_outbox::table
            .filter(mail_outbox::message_id.eq_any(chunk))
            .select((
                mail_outbox::message_id,
                mail_outbox::unread,
                mail_outbox::starred,
                mail_outbox::folder,
                mail_outbox::todo,
            ))
            .load(conn)?;
        for (id, unread, starred, folder, todo) in rows {
            if todo.is_some() || starred.is_some() {
                held.todo.insert(id);
            }
            if unread.is_some() {
                held.unread.insert(id);
            }
            if starred.is_some() {
                held.starred.insert(id);
            }
            if folder.is_some() {
                held.folder.insert(id);
            }
        }
    }
    Ok(held)
}

impl Held {
    /// Whether the to-do of `id` (with its star or flag) has a change on its way.
    pub fn holds_todo(&self, id: i64) -> bool {
        self.todo.contains(&id)
    }

    /// The provider's state with the held fields replaced by the stored ones.
    pub fn keep_local(&self, known: &Known, mut st: MessageState) -> MessageState {
        if self.unread.contains(&known.id) {
            st.unread = known.unread;
        }
        if self.starred.contains(&known.id) {
            st.starred = known.starred;
        }
        if self.folder.contains(&known.id) {
            st.folder = known.folder.clone();
        }
        st
    }
}

/// Folder keys of user folders known for each account (`mail_folders`).
pub fn user_folders(
    conn: &mut DbConnection,
    account_ids: &[i64],
) -> Result<HashMap<i64, HashSet<String>>, DbError> {
    use super::schema::mail_folders;
    let rows: Vec<(i64, String)> = mail_folders::table
        .filter(mail_folders::account_id.eq_any(account_ids))
        .select((mail_folders::account_id, mail_folders::folder))
        .load(conn)?;
    let mut out: HashMap<i64, HashSet<String>> = HashMap::new();
    for (a, f) in rows {
        out.entry(a).or_default().insert(f);
    }
    Ok(out)
}
