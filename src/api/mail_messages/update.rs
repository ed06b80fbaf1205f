//! `mailMessages:update`: read/unread, star, move, to-do, labels for one or many messages.
//! Applied here first, then written through to the provider (see `writeback` and
//! `label_writeback`): a provider that fails for a while leaves the change here and in the
//! outbox, retried later; one that refuses a read/star/move/to-do change for good gets that
//! change undone and the answer is 502 `PROVIDER_ERROR` naming what was refused. Labels are
//! never undone: a refusal is recorded on the label instead.

use std::collections::{BTreeSet, HashSet};

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{append_local, message_ids, message_json, not_found};
use crate::api::{parse_instant, ActionCtx};
use crate::db::labels::{self, LabelEdit};
use crate::db::message_changes::{self as changes, LocalChange};
use crate::db::message_list;
use crate::db::WriteTransaction;
use crate::db::{now_millis, DbError};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::label_writeback::{self, LabelDelivery};
use crate::providers::folder;
use crate::state::AppState;
use crate::writeback::{self, Delivery};

/// Where a message can be moved: not into sent or drafts, which providers fill themselves.
pub const MOVE_TARGETS: &[&str] = &[folder::INBOX, folder::ARCHIVE, folder::SPAM, folder::TRASH];
/// How long the request holds its outbox rows while it talks to the provider.
const INLINE_LOCK_MS: i64 = 120_000;

/// Most label ids one update names.
pub const MAX_LABEL_IDS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateValues {
    #[serde(default)]
    unread: Option<bool>,
    #[serde(default)]
    starred: Option<bool>,
    #[serde(default)]
    folder: Option<String>,
    #[serde(default)]
    todo: Option<bool>,
    /// Absent: unchanged; `null`: removed.
    #[serde(default, deserialize_with = "present")]
    todo_due_at: Option<Value>,
    #[serde(default)]
    labels: Option<Vec<Value>>,
    #[serde(default)]
    add_labels: Option<Vec<Value>>,
    #[serde(default)]
    remove_labels: Option<Vec<Value>>,
    /// The ids may come in the body too (read by `message_ids`).
    #[serde(default, rename = "filterByTk")]
    _filter_by_tk: Option<Value>,
}

/// Tells a field sent as `null` from one not sent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn label_ids(field: &str, items: &[Value]) -> ApiResult<Vec<i64>> {
    if items.len() > MAX_LABEL_IDS {
        return Err(ApiError::invalid(format!(
            "{field} takes at most {MAX_LABEL_IDS} label ids"
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for v in items {
        let id = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid(format!("{field} must be label ids, got {v}")))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (ids, many) = message_ids(ctx)?;
    let v: UpdateValues = ctx.values_as()?;
    let todo_due_at = match &v.todo_due_at {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.trim().is_empty() => Some(None),
        Some(other) => Some(Some(parse_instant("todoDueAt", other)?)),
    };
    let change = LocalChange {
        unread: v.unread,
        starred: v.starred,
        folder: v.folder.map(|f| f.trim().to_string()),
        todo: v.todo,
        todo_due_at,
    };
    if v.labels.is_some() && (v.add_labels.is_some() || v.remove_labels.is_some()) {
        return Err(ApiError::invalid(
            "Send either labels (the whole set) or addLabels/removeLabels, not both",
        ));
    }
    let edit = LabelEdit {
        set: v
            .labels
            .as_deref()
            .map(|l| label_ids("labels", l))
            .transpose()?,
        add: label_ids("addLabels", v.add_labels.as_deref().unwrap_or_default())?,
        remove: label_ids(
            "removeLabels",
            v.remove_labels.as_deref().unwrap_or_default(),
        )?,
    };
    if edit.add.iter().any(|a| edit.remove.contains(a)) {
        return Err(ApiError::invalid(
            "A label cannot be in both addLabels and removeLabels",
        ));
    }
    if change == LocalChange::default() && edit.is_empty() {
        return Err(ApiError::invalid(
            "Nothing to update: send one of unread, starred, folder, todo, todoDueAt, labels, addLabels, removeLabels",
        ));
    }
    if change.todo == Some(false) && matches!(change.todo_due_at, Some(Some(_))) {
        return Err(ApiError::invalid(
            "todoDueAt needs an open to-do: send it with todo: true, or alone",
        ));
    }
    // Another user's (or no) label: 404, and nothing changes.
    let wanted: Vec<i64> = edit.ids().into_iter().collect();
    if !wanted.is_empty() {
        let user_id = ctx.identity.user_id;
        let n = wanted.len();
        let found = state
            .db
            .run(move |c| labels::get_many(c, user_id, &wanted))
            .await?;
        if found.len() != n {
            return Err(ApiError::not_found("Mail message label"));
        }
    }
    apply_change_with_labels(state, ctx.identity.user_id, ids, many, change, edit).await
}

/// Applies `change` to the user's messages `ids` and delivers it; shared with `destroy`.
pub(crate) async fn apply_change(
    state: &AppState,
    user_id: i64,
    ids: Vec<i64>,
    many: bool,
    change: LocalChange,
) -> ApiResult<HttpResponse> {
    apply_change_with_labels(state, user_id, ids, many, change, LabelEdit::default()).await
}

/// The mailboxes among `accounts` whose to-do is their star or flag.
async fn coupled_accounts(state: &AppState, accounts: Vec<i64>) -> ApiResult<HashSet<i64>> {
    let rows = state
        .db
        .run(move |c| {
            accounts
                .iter()
                .map(|a| crate::db::accounts::get(c, *a))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter(|a| {
            state
                .registry
                .get(&a.provider)
                .is_ok_and(|p| p.todo_mirror().is_on())
        })
        .map(|a| a.id)
        .collect())
}

async fn apply_change_with_labels(
    state: &AppState,
    user_id: i64,
    ids: Vec<i64>,
    many: bool,
    change: LocalChange,
    edit: LabelEdit,
) -> ApiResult<HttpResponse> {
    let rows = {
        let ids = ids.clone();
        state
            .db
            .run(move |c| message_list::rows_for_user(c, user_id, &ids))
            .await?
    };
    if rows.len() != ids.len() {
        return Err(ApiError::not_found("Mail message"));
    }
    let accounts: Vec<i64> = rows
        .iter()
        .map(|r| r.account_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(target) = &change.folder {
        check_folder(state, target, accounts.clone()).await?;
    }
    let coupled =
        if change.todo.is_some() || change.starred.is_some() || change.todo_due_at.is_some() {
            coupled_accounts(state, accounts).await?
        } else {
            HashSet::new()
        };
    if let (Some(s), Some(t)) = (change.starred, change.todo) {
        if s != t && rows.iter().any(|r| coupled.contains(&r.account_id)) {
            return Err(ApiError::invalid(
                "In this mailbox the to-do is the star (or flag): starred and todo must agree",
            ));
        }
    }

    let lock = writeback::lock_name(state);
    let now = now_millis();
    let mirror = state.settings.mail.mirror_labels;
    let messages: Vec<(i64, i64)> = rows.iter().map(|r| (r.id, r.account_id)).collect();
    let (outbox, label_rows) = {
        let ids = ids.clone();
        let change = change.clone();
        let lock = lock.clone();
        state
            .db
            .run(move |c| {
                c.write_transaction(|c| {
                    let outbox = if change == LocalChange::default() {
                        Vec::new()
                    } else {
                        changes::apply(
                            c,
                            user_id,
                            &ids,
                            &change,
                            &coupled,
                            &lock,
                            now + INLINE_LOCK_MS,
                            now,
                        )?
                    };
                    let label_rows = labels::edit_messages(
                        c,
                        user_id,
                        &messages,
                        &edit,
                        mirror,
                        &lock,
                        now + INLINE_LOCK_MS,
                        now,
                    )?;
                    Ok::<_, DbError>((outbox, label_rows))
                })
            })
            .await
            .map_err(not_found)?
    };
    let delivery = if outbox.is_empty() {
        Delivery::default()
    } else {
        writeback::deliver(state, outbox, &lock).await?
    };
    let label_delivery = if label_rows.is_empty() {
        LabelDelivery::default()
    } else {
        label_writeback::deliver(state, label_rows, &lock).await?
    };
    if !delivery.refused.is_empty() {
        let provider = delivery.refused[0].1;
        return Err(ApiError::new(
            ErrorCode::ProviderError,
            format!(
                "{provider} refused to {} {} of {} message(s); the change was undone for {}",
                describe(&change),
                delivery.refused.len(),
                ids.len(),
                if delivery.refused.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            ),
        ));
    }

    let (rows, attached) = {
        let ids = ids.clone();
        state
            .db
            .run(move |c| {
                Ok((
                    message_list::rows_for_user(c, user_id, &ids)?,
                    labels::for_messages(c, user_id, &ids)?,
                ))
            })
            .await?
    };
    let mut maps: Vec<_> = rows.iter().map(message_json).collect();
    append_local(&mut maps, Some(&attached), None);
    let items: Vec<Value> = maps.into_iter().map(Value::Object).collect();
    let data = if many {
        Value::Array(items)
    } else {
        items.into_iter().next().unwrap_or(Value::Null)
    };
    let mut pending: Vec<i64> = delivery
        .pending
        .iter()
        .chain(&label_delivery.pending)
        .copied()
        .collect();
    pending.sort_unstable();
    pending.dedup();
    Ok(HttpResponse::Ok().json(json!({
        "data": data,
        "meta": { "pending": pending },
    })))
}

/// A folder key the messages' mailboxes have: a well-known move target or one of their user
/// folders (`user:<id>` as `mail_folders` lists them).
async fn check_folder(state: &AppState, target: &str, accounts: Vec<i64>) -> ApiResult<()> {
    if MOVE_TARGETS.contains(&target) {
        return Ok(());
    }
    let bad = || {
        ApiError::invalid(format!(
            "folder must be one of {} or a user folder of the mailbox (user:<id>), got {target:?}",
            MOVE_TARGETS.join(", ")
        ))
    };
    if !target.starts_with("user:") {
        return Err(bad());
    }
    let ids = accounts.clone();
    let known = state
        .db
        .run(move |c| changes::user_folders(c, &ids))
        .await?;
    if accounts
        .iter()
        .all(|a| known.get(a).is_some_and(|f| f.contains(target)))
    {
        Ok(())
    } else {
        Err(bad())
    }
}

/// What the change does, in words, for error messages.
pub fn describe(change: &LocalChange) -> String {
    let mut parts = Vec::new();
    match change.unread {
        Some(false) => parts.push("mark as read".to_string()),
        Some(true) => parts.push("mark as unread".to_string()),
        None => {}
    }
    match change.starred {
        Some(true) => parts.push("star".to_string()),
        Some(false) => parts.push("unstar".to_string()),
        None => {}
    }
    if let Some(f) = &change.folder {
        parts.push(format!("move to {f}"));
    }
    match change.todo {
        Some(true) => parts.push("flag as a to-do".to_string()),
        Some(false) => parts.push("complete the to-do".to_string()),
        None if change.todo_due_at.is_some() => {
            parts.push("change the to-do's due date".to_string())
        }
        None => {}
    }
    if parts.is_empty() {
        parts.push("change".to_string());
    }
    parts.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_described_in_words() {
        let c = LocalChange {
            unread: Some(false),
            starred: Some(true),
            folder: Some("archive".into()),
            ..Default::default()
        };
        assert_eq!(describe(&c), "mark as read and star and move to archive");
        assert_eq!(
            describe(&LocalChange {
                folder: Some("trash".into()),
                ..Default::default()
            }),
            "move to trash"
        );
    }
}
