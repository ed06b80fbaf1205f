//! `mailSyncRuns:list`: a mailbox's sync history, newest first (`filter[accountId]` or
//! `accountId` required; another user's account answers 404).

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{iso, list as list_response, ActionCtx};
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let raw = ctx
        .params
        .get("filter[accountId]")
        .or_else(|| ctx.params.get("accountId"))
        .cloned()
        .or_else(|| {
            ctx.params
                .get("filter")
                .and_then(|f| serde_json::from_str::<Value>(f).ok())
                .and_then(|f| {
                    f.get("accountId")
                        .map(|v| v.to_string().trim_matches('"').to_string())
                })
        })
        .ok_or_else(|| ApiError::invalid("filter[accountId] is required"))?;
    let account_id: i64 = raw
        .parse()
        .map_err(|_| ApiError::invalid(format!("accountId must be a record id, got {raw:?}")))?;
    let (page, page_size) = ctx.paging()?;
    let user_id = ctx.identity.user_id;
    let (rows, count) = state
        .db
        .run(move |c| {
            db::accounts::get_for_user(c, user_id, account_id)?;
            db::sync::list_runs(c, account_id, page_size, (page - 1) * page_size)
        })
        .await
        .map_err(|e| match e {
            db::DbError::NotFound => ApiError::not_found("Mail account"),
            other => other.into(),
        })?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "accountId": r.account_id,
                "kind": r.kind,
                "startedAt": iso(r.started_at),
                "finishedAt": r.finished_at.and_then(iso),
                "added": r.added,
                "updated": r.updated,
                "removed": r.removed,
                "error": r.error_kind.as_ref().map(|k| json!({"kind": k, "message": r.error_message})),
            })
        })
        .collect();
    Ok(list_response(items, count, page, page_size))
}
