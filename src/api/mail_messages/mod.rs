//! `mailMessages`: the mail center's messages. `list` (filters, search, sort, threads), `get`
//! (bodies, safe HTML, attachments), `update` (read, star, move, to-do; written through to the
//! provider), `destroy` (to the provider's trash). A user only ever reaches messages of their own
//! mailboxes: another user's id answers 404 like one that does not exist.

pub mod destroy;
pub mod get;
pub mod list;
pub mod send;
pub mod unread_count;
pub mod update;

use serde_json::{json, Map, Value};

use super::{iso, ActionCtx};
use std::collections::HashMap;

use crate::db::labels::LabelRow;
use crate::db::message_list::ListRow;
use crate::db::models::MailAttachmentRow;
use crate::db::notes::NoteRow;
use crate::db::DbError;
use crate::error::{ApiError, ApiResult};

pub use destroy::destroy;
pub use get::get;
pub use list::list;
pub use unread_count::unread_count;
pub use update::update;

/// Most ids one `update` / `destroy` takes.
pub const MAX_IDS: usize = 1000;

/// The keys of a message in lists (and in `get`, which adds `textBody`, `html`,
/// `remoteImagesBlocked` and `attachments`).
pub const LIST_FIELDS: &[&str] = &[
    "id",
    "accountId",
    "providerMessageId",
    "threadId",
    "messageId",
    "inReplyTo",
    "references",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "snippet",
    "date",
    "folder",
    "providerLabels",
    "unread",
    "starred",
    "todo",
    "draft",
    "hasAttachments",
    "size",
    "todoDueAt",
];

fn stored_json(text: &str) -> Value {
    // Written by sync from serde_json; an unreadable value shows as empty rather than failing.
    serde_json::from_str(text).unwrap_or_else(|_| json!([]))
}

/// A message as lists show it.
pub fn message_json(r: &ListRow) -> Map<String, Value> {
    let v = json!({
        "id": r.id,
        "accountId": r.account_id,
        "providerMessageId": r.provider_message_id,
        "threadId": r.thread_id,
        "messageId": r.message_id.as_ref().map(|m| format!("<{m}>")),
        "inReplyTo": r.in_reply_to,
        "references": r.references_header,
        "from": {"name": r.from_name, "address": r.from_address},
        "to": stored_json(&r.to_json),
        "cc": stored_json(&r.cc_json),
        "bcc": stored_json(&r.bcc_json),
        "replyTo": stored_json(&r.reply_to_json),
        "subject": r.subject,
        "snippet": r.snippet,
        "date": iso(r.date),
        "folder": r.folder,
        "providerLabels": stored_json(&r.provider_labels),
        "unread": r.unread,
        "starred": r.starred,
        "todo": r.todo,
        "draft": r.draft,
        "hasAttachments": r.has_attachments,
        "size": r.size,
        "todoDueAt": r.todo_due_at.and_then(iso),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The URL the page loads an attachment from (the sidecar's own download action).
pub fn download_url(attachment_id: i64, inline: bool) -> String {
    if inline {
        format!("/api/mailAttachments:download?filterByTk={attachment_id}&inline=1")
    } else {
        format!("/api/mailAttachments:download?filterByTk={attachment_id}")
    }
}

pub fn attachment_json(a: &MailAttachmentRow) -> Value {
    json!({
        "id": a.id,
        "messageId": a.message_id,
        "filename": a.filename,
        "contentType": a.content_type,
        "size": a.size,
        "inline": a.inline,
        "contentId": a.content_id,
        "url": download_url(a.id, false),
    })
}

/// A label as messages show it (`appends=labels`).
pub fn label_ref_json(l: &LabelRow) -> Value {
    json!({ "id": l.id, "name": l.name, "color": l.color })
}

/// Adds the appended associations `labels` and `notes` to messages `items` (by id).
pub(crate) fn append_local(
    items: &mut [Map<String, Value>],
    labels: Option<&HashMap<i64, Vec<LabelRow>>>,
    notes: Option<&HashMap<i64, Vec<NoteRow>>>,
) {
    for m in items.iter_mut() {
        let Some(id) = m.get("id").and_then(Value::as_i64) else {
            continue;
        };
        if let Some(labels) = labels {
            let list = labels
                .get(&id)
                .map(|l| l.iter().map(label_ref_json).collect())
                .unwrap_or_default();
            m.insert("labels".into(), Value::Array(list));
        }
        if let Some(notes) = notes {
            let list = notes
                .get(&id)
                .map(|n| {
                    n.iter()
                        .map(crate::api::mail_message_notes::note_json)
                        .collect()
                })
                .unwrap_or_default();
            m.insert("notes".into(), Value::Array(list));
        }
    }
}

pub(crate) fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Mail message"),
        other => other.into(),
    }
}

/// A list parameter: `name=a,b`, `name[]=a&name[]=b`, or an array or string under `name` in the
/// body.
pub(crate) fn list_param(ctx: &ActionCtx, name: &str) -> Vec<String> {
    let from_query = ctx
        .params
        .get(&format!("{name}[]"))
        .or_else(|| ctx.params.get(name))
        .map(|s| {
            s.split(',')
                .map(|p| p.trim().to_string())
                .collect::<Vec<_>>()
        });
    let from_body = || match ctx.values.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    from_query
        .unwrap_or_else(from_body)
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
}

/// A text parameter from the query, else from the body.
pub(crate) fn text_param(ctx: &ActionCtx, name: &str) -> Option<String> {
    ctx.params
        .get(name)
        .cloned()
        .or_else(|| match ctx.values.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        })
}

/// A boolean parameter (`true`/`false`/`1`/`0`), 400 for anything else.
pub(crate) fn bool_param(ctx: &ActionCtx, name: &str) -> ApiResult<bool> {
    match text_param(ctx, name).as_deref() {
        None | Some("") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ApiError::invalid(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

/// The message ids of `update` / `destroy`: `filterByTk=5`, `filterByTk[]=5&filterByTk[]=6`, or
/// `filterByTk` in the body (an id or an array of ids). `many` tells whether a list was sent
/// (the answer is then a list too).
pub(crate) fn message_ids(ctx: &ActionCtx) -> ApiResult<(Vec<i64>, bool)> {
    let bad = |raw: &str| ApiError::invalid(format!("filterByTk must be record ids, got {raw:?}"));
    let parse = |raw: &str| -> ApiResult<i64> {
        raw.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(raw))
    };
    let (raw, many): (Vec<String>, bool) = if let Some(list) = ctx.params.get("filterByTk[]") {
        (list.split(',').map(str::to_string).collect(), true)
    } else if let Some(one) = ctx.params.get("filterByTk") {
        (vec![one.clone()], false)
    } else {
        match ctx.values.get("filterByTk") {
            Some(Value::Array(items)) => (
                items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
                true,
            ),
            Some(Value::Number(n)) => (vec![n.to_string()], false),
            Some(Value::String(s)) => (vec![s.clone()], false),
            Some(other) => return Err(bad(&other.to_string())),
            None => return Err(ApiError::invalid("filterByTk is required")),
        }
    };
    let mut ids = Vec::with_capacity(raw.len());
    for r in &raw {
        let id = parse(r)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(ApiError::invalid("filterByTk is required"));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid(format!(
            "At most {MAX_IDS} messages can be changed at once"
        )));
    }
    Ok((ids, many))
}
