//! `mailMessages:update`: read/unread, star, move, to-do for one or many messages. Applied here
//! first, then written through to the provider (see `writeback`): a provider that fails for a
//! while leaves the change here and in the outbox, retried later; one that refuses for good gets
//! the change undone and the answer is 502 `PROVIDER_ERROR` naming what was refused.

use std::collections::BTreeSet;

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{message_ids, message_json, not_found};
use crate::api::ActionCtx;
use crate::db::message_changes::{self as changes, LocalChange};
use crate::db::message_list;
use crate::db::now_millis;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::providers::folder;
use crate::state::AppState;
use crate::writeback::{self, Delivery};

/// Where a message can be moved: not into sent or drafts, which providers fill themselves.
pub const MOVE_TARGETS: &[&str] = &[folder::INBOX, folder::ARCHIVE, folder::SPAM, folder::TRASH];
/// How long the request holds its outbox rows while it talks to the provider.
const INLINE_LOCK_MS: i64 = 120_000;

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
    /// The ids may come in the body too (read by `message_ids`).
    #[serde(default, rename = "filterByTk")]
    _filter_by_tk: Option<Value>,
}

pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (ids, many) = message_ids(ctx)?;
    let v: UpdateValues = ctx.values_as()?;
    let change = LocalChange {
        unread: v.unread,
        starred: v.starred,
        folder: v.folder.map(|f| f.trim().to_string()),
        todo: v.todo,
    };
    if change == LocalChange::default() {
        return Err(ApiError::invalid(
            "Nothing to update: send one of unread, starred, folder, todo",
        ));
    }
    apply_change(state, ctx.identity.user_id, ids, many, change).await
}

/// Applies `change` to the user's messages `ids` and delivers it; shared with `destroy`.
pub(crate) async fn apply_change(
    state: &AppState,
    user_id: i64,
    ids: Vec<i64>,
    many: bool,
    change: LocalChange,
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
    if let Some(target) = &change.folder {
        let accounts: Vec<i64> = rows
            .iter()
            .map(|r| r.account_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        check_folder(state, target, accounts).await?;
    }

    let lock = writeback::lock_name(state);
    let now = now_millis();
    let outbox = {
        let ids = ids.clone();
        let change = change.clone();
        let lock = lock.clone();
        state
            .db
            .run(move |c| {
                changes::apply(c, user_id, &ids, &change, &lock, now + INLINE_LOCK_MS, now)
            })
            .await
            .map_err(not_found)?
    };
    let delivery = if outbox.is_empty() {
        Delivery::default()
    } else {
        writeback::deliver(state, outbox, &lock).await?
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

    let rows = {
        let ids = ids.clone();
        state
            .db
            .run(move |c| message_list::rows_for_user(c, user_id, &ids))
            .await?
    };
    let items: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(message_json(r)))
        .collect();
    let data = if many {
        Value::Array(items)
    } else {
        items.into_iter().next().unwrap_or(Value::Null)
    };
    Ok(HttpResponse::Ok().json(json!({
        "data": data,
        "meta": { "pending": delivery.pending },
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
            todo: None,
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
