//! Labels (`mail_labels`), which messages carry them (`mail_message_labels`), their twins at
//! the providers (`mail_label_links`) and the label work waiting for a provider
//! (`mail_label_outbox`). Every query for a request is scoped by the user, so another user's id
//! behaves exactly like one that does not exist.
//!
//! Outbox rows name what to reconcile (a message's label, a label's name or colour in one
//! mailbox, a deleted label's twin), never what to send: delivery reads the local state at that
//! moment. A local change is therefore never overtaken by an older one, and rows for the same
//! thing can be merged freely.

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::{
    mail_label_links, mail_label_outbox, mail_labels, mail_message_labels, mail_messages,
};
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;

/// Outbox operations.
pub mod op {
    /// Bring one label of one message in line with the local state.
    pub const MESSAGE: &str = "message";
    /// The label's name changed here.
    pub const RENAME: &str = "rename";
    /// The label's colour changed here.
    pub const RECOLOR: &str = "recolor";
    /// The label was deleted here; the payload names its twin.
    pub const DELETE: &str = "delete";
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_labels)]
pub struct LabelRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub name_key: String,
    pub color: Option<String>,
    pub sync_error: Option<String>,
    pub sync_error_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mail_label_links)]
pub struct LinkRow {
    pub label_id: i64,
    pub account_id: i64,
    pub provider_label_id: String,
    pub provider_name: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_label_outbox)]
pub struct LabelOutboxRow {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub op: String,
    pub label_id: i64,
    pub message_id: Option<i64>,
    pub payload: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = mail_label_outbox)]
struct NewOutbox<'a> {
    user_id: i64,
    account_id: i64,
    op: &'a str,
    label_id: i64,
    message_id: Option<i64>,
    payload: Option<&'a str>,
    attempts: i32,
    next_attempt_at: i64,
    locked_by: Option<&'a str>,
    locked_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// What a delete op needs once the label row is gone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeletePayload {
    pub provider_label_id: String,
    pub provider_name: String,
    /// Provider ids of the account's messages that carried it (Outlook keeps a deleted
    /// category's name on messages, so they are cleaned one by one).
    pub messages: Vec<String>,
}

/// The comparison key of a label name: trimmed and lower-cased.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

// ---- labels ----

pub fn list(conn: &mut DbConnection, user_id: i64) -> Result<Vec<LabelRow>, DbError> {
    Ok(mail_labels::table
        .filter(mail_labels::user_id.eq(user_id))
        .order((mail_labels::name_key.asc(), mail_labels::id.asc()))
        .select(LabelRow::as_select())
        .load(conn)?)
}

pub fn get(conn: &mut DbConnection, user_id: i64, id: i64) -> Result<LabelRow, DbError> {
    Ok(mail_labels::table
        .filter(mail_labels::id.eq(id))
        .filter(mail_labels::user_id.eq(user_id))
        .select(LabelRow::as_select())
        .first(conn)?)
}

/// The user's labels among `ids`.
pub fn get_many(
    conn: &mut DbConnection,
    user_id: i64,
    ids: &[i64],
) -> Result<Vec<LabelRow>, DbError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        out.extend(
            mail_labels::table
                .filter(mail_labels::user_id.eq(user_id))
                .filter(mail_labels::id.eq_any(chunk))
                .select(LabelRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

fn by_key(conn: &mut DbConnection, user_id: i64, key: &str) -> Result<Option<LabelRow>, DbError> {
    Ok(mail_labels::table
        .filter(mail_labels::user_id.eq(user_id))
        .filter(mail_labels::name_key.eq(key))
        .select(LabelRow::as_select())
        .first(conn)
        .optional()?)
}

/// Creates a label; `None` when the user has one of that name (any case) already.
pub fn create(
    conn: &mut DbConnection,
    user_id: i64,
    name: &str,
    color: Option<&str>,
    now: i64,
) -> Result<Option<LabelRow>, DbError> {
    conn.write_transaction(|conn| {
        let key = name_key(name);
        if by_key(conn, user_id, &key)?.is_some() {
            return Ok(None);
        }
        diesel::insert_into(mail_labels::table)
            .values((
                mail_labels::user_id.eq(user_id),
                mail_labels::name.eq(name),
                mail_labels::name_key.eq(&key),
                mail_labels::color.eq(color),
                mail_labels::created_at.eq(now),
                mail_labels::updated_at.eq(now),
            ))
            .execute(conn)?;
        by_key(conn, user_id, &key)
    })
}

/// What `mailMessageLabels:update` changes.
#[derive(Debug, Clone, Default)]
pub struct LabelChanges {
    pub name: Option<String>,
    /// `Some(None)` removes the colour.
    pub color: Option<Option<String>>,
}

/// Renames and/or recolours a label of `user_id`, and (when `mirror`) records the follow-up for
/// each mailbox that has its twin. `None` when the new name is another label's.
pub fn update(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    changes: &LabelChanges,
    mirror: bool,
    now: i64,
) -> Result<Option<LabelRow>, DbError> {
    conn.write_transaction(|conn| {
        let current = get(conn, user_id, id)?;
        let mut renamed = false;
        if let Some(name) = &changes.name {
            let key = name_key(name);
            if let Some(other) = by_key(conn, user_id, &key)? {
                if other.id != id {
                    return Ok(None);
                }
            }
            renamed = *name != current.name;
            diesel::update(mail_labels::table.find(id))
                .set((mail_labels::name.eq(name), mail_labels::name_key.eq(&key)))
                .execute(conn)?;
        }
        let mut recoloured = false;
        if let Some(color) = &changes.color {
            recoloured = *color != current.color;
            diesel::update(mail_labels::table.find(id))
                .set(mail_labels::color.eq(color.as_deref()))
                .execute(conn)?;
        }
        diesel::update(mail_labels::table.find(id))
            .set(mail_labels::updated_at.eq(now))
            .execute(conn)?;
        if mirror {
            for link in links_of_label(conn, id)? {
                for (wanted, what) in [(renamed, op::RENAME), (recoloured, op::RECOLOR)] {
                    if wanted {
                        queue(
                            conn,
                            user_id,
                            link.account_id,
                            what,
                            id,
                            None,
                            None,
                            None,
                            now,
                        )?;
                    }
                }
            }
        }
        get(conn, user_id, id).map(Some)
    })
}

/// Deletes a label of `user_id` (taking it off every message) and, when `mirror`, records the
/// deletion of each twin with what the provider will need.
pub fn delete(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
    mirror: bool,
    now: i64,
) -> Result<(), DbError> {
    conn.write_transaction(|conn| {
        get(conn, user_id, id)?;
        if mirror {
            for link in links_of_label(conn, id)? {
                let messages: Vec<String> = mail_message_labels::table
                    .inner_join(
                        mail_messages::table
                            .on(mail_messages::id.eq(mail_message_labels::message_id)),
                    )
                    .filter(mail_message_labels::label_id.eq(id))
                    .filter(mail_messages::account_id.eq(link.account_id))
                    .select(mail_messages::provider_message_id)
                    .load(conn)?;
                let payload = serde_json::to_string(&DeletePayload {
                    provider_label_id: link.provider_label_id.clone(),
                    provider_name: link.provider_name.clone(),
                    messages,
                })
                .map_err(|e| DbError::Invalid(format!("label delete payload: {e}")))?;
                queue(
                    conn,
                    user_id,
                    link.account_id,
                    op::DELETE,
                    id,
                    None,
                    Some(&payload),
                    None,
                    now,
                )?;
            }
        }
        // Pending work for the label itself is moot now; the delete rows carry what is left.
        diesel::delete(
            mail_label_outbox::table
                .filter(mail_label_outbox::label_id.eq(id))
                .filter(mail_label_outbox::op.ne(op::DELETE))
                .filter(mail_label_outbox::locked_by.is_null()),
        )
        .execute(conn)?;
        diesel::delete(mail_message_labels::table.filter(mail_message_labels::label_id.eq(id)))
            .execute(conn)?;
        diesel::delete(mail_label_links::table.filter(mail_label_links::label_id.eq(id)))
            .execute(conn)?;
        diesel::delete(mail_labels::table.find(id)).execute(conn)?;
        Ok(())
    })
}

/// Records (or clears, with `None`) the last refusal of a provider for a label.
pub fn set_error(
    conn: &mut DbConnection,
    label_id: i64,
    error: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    diesel::update(mail_labels::table.find(label_id))
        .set((
            mail_labels::sync_error.eq(error),
            mail_labels::sync_error_at.eq(error.map(|_| now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Clears the errors of labels whose provider work just went through.
pub fn clear_errors(conn: &mut DbConnection, label_ids: &[i64]) -> Result<(), DbError> {
    for chunk in label_ids.chunks(500) {
        diesel::update(
            mail_labels::table
                .filter(mail_labels::id.eq_any(chunk))
                .filter(mail_labels::sync_error.is_not_null()),
        )
        .set((
            mail_labels::sync_error.eq(None::<String>),
            mail_labels::sync_error_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    }
    Ok(())
}

// ---- which message carries which label ----

/// The labels of each of `message_ids` (of `user_id`), by name.
pub fn for_messages(
    conn: &mut DbConnection,
    user_id: i64,
    message_ids: &[i64],
) -> Result<HashMap<i64, Vec<LabelRow>>, DbError> {
    let mut out: HashMap<i64, Vec<LabelRow>> = HashMap::new();
    for chunk in message_ids.chunks(500) {
        let rows: Vec<(i64, LabelRow)> = mail_message_labels::table
            .inner_join(mail_labels::table.on(mail_labels::id.eq(mail_message_labels::label_id)))
            .filter(mail_message_labels::user_id.eq(user_id))
            .filter(mail_message_labels::message_id.eq_any(chunk))
            .order(mail_labels::name_key.asc())
            .select((mail_message_labels::message_id, LabelRow::as_select()))
            .load(conn)?;
        for (m, l) in rows {
            out.entry(m).or_default().push(l);
        }
    }
    Ok(out)
}

/// What `mailMessages:update` does to labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelEdit {
    /// The whole set (`labels`); `add`/`remove` are then empty.
    pub set: Option<Vec<i64>>,
    pub add: Vec<i64>,
    pub remove: Vec<i64>,
}

impl LabelEdit {
    pub fn is_empty(&self) -> bool {
        self.set.is_none() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Every label id named.
    pub fn ids(&self) -> BTreeSet<i64> {
        self.set
            .iter()
            .flatten()
            .chain(&self.add)
            .chain(&self.remove)
            .copied()
            .collect()
    }
}

/// Applies `edit` to `messages` (`(id, account_id)`, all of `user_id`, labels already checked
/// to be the user's). With `mirror`, each label that came or went gets an outbox row, held by
/// `lock` until `lock_until` when given (the caller delivers them at once). Answers those rows.
#[allow(clippy::too_many_arguments)]
pub fn edit_messages(
    conn: &mut DbConnection,
    user_id: i64,
    messages: &[(i64, i64)],
    edit: &LabelEdit,
    mirror: bool,
    lock: &str,
    lock_until: i64,
    now: i64,
) -> Result<Vec<LabelOutboxRow>, DbError> {
    if edit.is_empty() {
        return Ok(Vec::new());
    }
    conn.write_transaction(|conn| {
        let ids: Vec<i64> = messages.iter().map(|(id, _)| *id).collect();
        let mut current: HashMap<i64, HashSet<i64>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(i64, i64)> = mail_message_labels::table
                .filter(mail_message_labels::message_id.eq_any(chunk))
                .select((
                    mail_message_labels::message_id,
                    mail_message_labels::label_id,
                ))
                .load(conn)?;
            for (m, l) in rows {
                current.entry(m).or_default().insert(l);
            }
        }
        for (message_id, account_id) in messages {
            let have = current.remove(message_id).unwrap_or_default();
            let want: HashSet<i64> = match &edit.set {
                Some(set) => set.iter().copied().collect(),
                None => have
                    .iter()
                    .copied()
                    .chain(edit.add.iter().copied())
                    .filter(|l| !edit.remove.contains(l))
                    .collect(),
            };
            let mut changed: Vec<i64> = Vec::new();
            for l in want.difference(&have) {
                diesel::insert_into(mail_message_labels::table)
                    .values((
                        mail_message_labels::message_id.eq(message_id),
                        mail_message_labels::label_id.eq(l),
                        mail_message_labels::user_id.eq(user_id),
                        mail_message_labels::created_at.eq(now),
                    ))
                    .execute(conn)?;
                changed.push(*l);
            }
            let gone: Vec<i64> = have.difference(&want).copied().collect();
            if !gone.is_empty() {
                diesel::delete(
                    mail_message_labels::table
                        .filter(mail_message_labels::message_id.eq(message_id))
                        .filter(mail_message_labels::label_id.eq_any(&gone)),
                )
                .execute(conn)?;
                changed.extend(gone);
            }
            if mirror {
                for l in changed {
                    queue(
                        conn,
                        user_id,
                        *account_id,
                        op::MESSAGE,
                        l,
                        Some(*message_id),
                        None,
                        Some((lock, lock_until)),
                        now,
                    )?;
                }
            }
        }
        Ok(mail_label_outbox::table
            .filter(mail_label_outbox::locked_by.eq(lock))
            .order(mail_label_outbox::id.asc())
            .select(LabelOutboxRow::as_select())
            .load(conn)?)
    })
}

/// Attaches (sync: the provider has it). No outbox row: the provider is where it came from.
pub fn attach_from_provider(
    conn: &mut DbConnection,
    user_id: i64,
    message_id: i64,
    label_id: i64,
    now: i64,
) -> Result<bool, DbError> {
    let exists = mail_message_labels::table
        .find((message_id, label_id))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        return Ok(false);
    }
    diesel::insert_into(mail_message_labels::table)
        .values((
            mail_message_labels::message_id.eq(message_id),
            mail_message_labels::label_id.eq(label_id),
            mail_message_labels::user_id.eq(user_id),
            mail_message_labels::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

pub fn detach_from_provider(
    conn: &mut DbConnection,
    message_id: i64,
    label_id: i64,
) -> Result<bool, DbError> {
    Ok(diesel::delete(mail_message_labels::table.find((message_id, label_id))).execute(conn)? > 0)
}

/// Provider ids of the messages of `account_id` that carry `label_id`.
pub fn provider_messages_with(
    conn: &mut DbConnection,
    account_id: i64,
    label_id: i64,
) -> Result<Vec<String>, DbError> {
    Ok(mail_message_labels::table
        .inner_join(mail_messages::table.on(mail_messages::id.eq(mail_message_labels::message_id)))
        .filter(mail_message_labels::label_id.eq(label_id))
        .filter(mail_messages::account_id.eq(account_id))
        .select(mail_messages::provider_message_id)
        .load(conn)?)
}

/// Which of the `(message, label)` pairs are attached here now.
pub fn attached(
    conn: &mut DbConnection,
    pairs: &[(i64, i64)],
) -> Result<HashSet<(i64, i64)>, DbError> {
    let wanted: HashSet<(i64, i64)> = pairs.iter().copied().collect();
    let ids: BTreeSet<i64> = pairs.iter().map(|(m, _)| *m).collect();
    let ids: Vec<i64> = ids.into_iter().collect();
    let mut out = HashSet::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(i64, i64)> = mail_message_labels::table
            .filter(mail_message_labels::message_id.eq_any(chunk))
            .select((
                mail_message_labels::message_id,
                mail_message_labels::label_id,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().filter(|p| wanted.contains(p)));
    }
    Ok(out)
}

// ---- twins ----

fn links_of_label(conn: &mut DbConnection, label_id: i64) -> Result<Vec<LinkRow>, DbError> {
    Ok(mail_label_links::table
        .filter(mail_label_links::label_id.eq(label_id))
        .select(LinkRow::as_select())
        .load(conn)?)
}

pub fn links_of_account(conn: &mut DbConnection, account_id: i64) -> Result<Vec<LinkRow>, DbError> {
    Ok(mail_label_links::table
        .filter(mail_label_links::account_id.eq(account_id))
        .select(LinkRow::as_select())
        .load(conn)?)
}

/// Records (or moves) a label's twin in a mailbox; a twin another label had is taken from it.
pub fn set_link(conn: &mut DbConnection, link: &LinkRow) -> Result<(), DbError> {
    diesel::delete(
        mail_label_links::table
            .filter(mail_label_links::account_id.eq(link.account_id))
            .filter(
                mail_label_links::label_id.eq(link.label_id).or(
                    mail_label_links::provider_label_id
                        .eq(&link.provider_label_id)
                        .and(mail_label_links::provider_label_id.ne("")),
                ),
            ),
    )
    .execute(conn)?;
    diesel::insert_into(mail_label_links::table)
        .values(link)
        .execute(conn)?;
    Ok(())
}

// ---- outbox ----

#[allow(clippy::too_many_arguments)]
pub fn queue(
    conn: &mut DbConnection,
    user_id: i64,
    account_id: i64,
    what: &str,
    label_id: i64,
    message_id: Option<i64>,
    payload: Option<&str>,
    lock: Option<(&str, i64)>,
    now: i64,
) -> Result<(), DbError> {
    diesel::insert_into(mail_label_outbox::table)
        .values(NewOutbox {
            user_id,
            account_id,
            op: what,
            label_id,
            message_id,
            payload,
            attempts: 0,
            next_attempt_at: now,
            locked_by: lock.map(|l| l.0),
            locked_until: lock.map(|l| l.1),
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    Ok(())
}

work_queue!(mail_label_outbox, LabelOutboxRow);

/// Pending label work sync must not undo.
#[derive(Debug, Default)]
pub struct HeldLabels {
    /// `(message, label)` pairs whose change is on its way.
    pairs: HashSet<(i64, i64)>,
    /// Labels being renamed in this mailbox: the provider's view of them is in flux.
    labels: HashSet<i64>,
    /// Provider labels (ids and lower-cased names) being deleted: not to be taken in again.
    tokens: HashSet<String>,
}

impl HeldLabels {
    pub fn holds(&self, message_id: i64, label_id: i64) -> bool {
        self.labels.contains(&label_id) || self.pairs.contains(&(message_id, label_id))
    }

    pub fn holds_token(&self, token: &str) -> bool {
        self.tokens.contains(&token.to_lowercase())
    }
}

pub fn held(
    conn: &mut DbConnection,
    account_id: i64,
    message_ids: &[i64],
) -> Result<HeldLabels, DbError> {
    let mut out = HeldLabels::default();
    #[allow(clippy::type_complexity)]
    let rows: Vec<(String, i64, Option<i64>, Option<String>)> = mail_label_outbox::table
        .filter(mail_label_outbox::account_id.eq(account_id))
        .filter(mail_label_outbox::op.ne(op::MESSAGE))
        .select((
            mail_label_outbox::op,
            mail_label_outbox::label_id,
            mail_label_outbox::message_id,
            mail_label_outbox::payload,
        ))
        .load(conn)?;
    for (what, label, _, payload) in rows {
        match what.as_str() {
            op::RENAME => {
                out.labels.insert(label);
            }
            op::DELETE => {
                if let Some(p) =
                    payload.and_then(|p| serde_json::from_str::<DeletePayload>(&p).ok())
                {
                    out.tokens.insert(p.provider_label_id.to_lowercase());
                    out.tokens.insert(p.provider_name.to_lowercase());
                }
            }
            _ => {}
        }
    }
    for chunk in message_ids.chunks(500) {
        let pairs: Vec<(i64, Option<i64>)> = mail_label_outbox::table
            .filter(mail_label_outbox::account_id.eq(account_id))
            .filter(mail_label_outbox::op.eq(op::MESSAGE))
            .filter(mail_label_outbox::message_id.eq_any(chunk))
            .select((mail_label_outbox::label_id, mail_label_outbox::message_id))
            .load(conn)?;
        out.pairs
            .extend(pairs.into_iter().filter_map(|(l, m)| m.map(|m| (m, l))));
    }
    out.tokens.remove("");
    Ok(out)
}

/// Looks a local label up for a provider label, creating the twin (and the label, when
/// `create`) as needed. Used by sync inside its page transaction.
pub struct Resolver {
    user_id: i64,
    account_id: i64,
    /// Gmail: label ids, with names from `mail_folders`; Outlook: category names.
    ids: bool,
    links: Vec<LinkRow>,
    folder_names: HashMap<String, String>,
}

/// The longest label name (characters).
pub const MAX_NAME_CHARS: usize = 100;

impl Resolver {
    pub fn load(
        conn: &mut DbConnection,
        user_id: i64,
        account_id: i64,
        ids: bool,
    ) -> Result<Resolver, DbError> {
        use super::schema::mail_folders;
        let folder_names: HashMap<String, String> = if ids {
            mail_folders::table
                .filter(mail_folders::account_id.eq(account_id))
                .select((mail_folders::provider_folder_id, mail_folders::name))
                .load::<(String, String)>(conn)?
                .into_iter()
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Resolver {
            user_id,
            account_id,
            ids,
            links: links_of_account(conn, account_id)?,
            folder_names,
        })
    }

    pub fn resolve(
        &mut self,
        conn: &mut DbConnection,
        token: &str,
        create: bool,
        now: i64,
    ) -> Result<Option<i64>, DbError> {
        let linked = self.links.iter().find(|l| {
            if self.ids {
                l.provider_label_id == token
            } else {
                l.provider_name.eq_ignore_ascii_case(token)
                    || name_key(&l.provider_name) == name_key(token)
            }
        });
        if let Some(l) = linked {
            return Ok(Some(l.label_id));
        }
        let name = if self.ids {
            match self.folder_names.get(token) {
                Some(n) => n.clone(),
                None => return Ok(None),
            }
        } else {
            token.to_string()
        };
        let name = name.trim().to_string();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Ok(None);
        }
        let label = match by_key(conn, self.user_id, &name_key(&name))? {
            Some(l) => l,
            None if create => match create_label_row(conn, self.user_id, &name, now)? {
                Some(l) => l,
                None => return Ok(None),
            },
            None => return Ok(None),
        };
        let link = LinkRow {
            label_id: label.id,
            account_id: self.account_id,
            // Outlook's category id is learnt when a delivery lists the master categories.
            provider_label_id: if self.ids {
                token.to_string()
            } else {
                String::new()
            },
            provider_name: name,
        };
        set_link(conn, &link)?;
        self.links.retain(|l| l.label_id != link.label_id);
        self.links.push(link);
        Ok(Some(label.id))
    }
}

fn create_label_row(
    conn: &mut DbConnection,
    user_id: i64,
    name: &str,
    now: i64,
) -> Result<Option<LabelRow>, DbError> {
    let key = name_key(name);
    diesel::insert_into(mail_labels::table)
        .values((
            mail_labels::user_id.eq(user_id),
            mail_labels::name.eq(name),
            mail_labels::name_key.eq(&key),
            mail_labels::created_at.eq(now),
            mail_labels::updated_at.eq(now),
        ))
        .execute(conn)?;
    by_key(conn, user_id, &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_trimmed_and_without_case() {
        assert_eq!(name_key("  Clients ÄÖ "), "clients äö");
        let e = LabelEdit {
            set: None,
            add: vec![3, 1],
            remove: vec![1],
        };
        assert_eq!(e.ids().into_iter().collect::<Vec<_>>(), vec![1, 3]);
        assert!(LabelEdit::default().is_empty());
    }
}
