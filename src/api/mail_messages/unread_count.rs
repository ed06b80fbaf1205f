//! `mailMessages:unreadCount`: unread messages per account and folder, and in total, for the
//! mail center's counters and the host's top-bar badge (polled every 30 s). Only the caller's
//! mailboxes are counted; it reads counters, never the messages themselves.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use super::super::ActionCtx;
use crate::db;
use crate::error::ApiResult;
use crate::state::AppState;

/// Folders whose unread mail counts towards an account's `unread` and the `total`: the inbox
/// only, as Gmail's and Outlook's own badges count (spam, trash, drafts and sent never light it).
const BADGE_FOLDERS: &[&str] = &["inbox"];

/// One account's answer being built.
#[derive(Default)]
struct AccountCounts {
    unread: i64,
    folders: Map<String, Value>,
    folder_names: Map<String, Value>,
}

pub async fn unread_count(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let user_id = ctx.identity.user_id;
    let counts = state
        .db
        .run(move |c| db::unread::for_user(c, user_id))
        .await?;
    let mut per_account: BTreeMap<i64, AccountCounts> = counts
        .accounts
        .iter()
        .map(|id| (*id, AccountCounts::default()))
        .collect();
    for (account_id, folder, unread) in &counts.folders {
        let Some(entry) = per_account.get_mut(account_id) else {
            continue;
        };
        // Counters are kept by triggers; never show a negative number if one drifted.
        let n = (*unread).max(0);
        if BADGE_FOLDERS.contains(&folder.as_str()) {
            entry.unread += n;
        }
        entry.folders.insert(folder.clone(), json!(n));
    }
    for (account_id, folder, name) in &counts.folder_names {
        if let Some(entry) = per_account.get_mut(account_id) {
            entry.folder_names.insert(folder.clone(), json!(name));
        }
    }
    let total: i64 = per_account.values().map(|e| e.unread).sum();
    let accounts: Vec<Value> = counts
        .accounts
        .iter()
        .filter_map(|id| {
            per_account.remove(id).map(|a| {
                json!({"accountId": id, "unread": a.unread, "folders": a.folders, "folderNames": a.folder_names})
            })
        })
        .collect();
    let labels: Map<String, Value> = counts
        .labels
        .iter()
        .map(|(id, n)| (id.to_string(), json!(n)))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"data": {"total": total, "accounts": accounts, "labels": labels}})))
}
