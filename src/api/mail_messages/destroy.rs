//! `mailMessages:destroy`: to the provider's trash (Gmail `messages.trash`, Graph move to
//! `deleteditems`), marked `folder = trash` here at once; the next sync confirms it. Nothing is
//! deleted for good.

use actix_web::HttpResponse;

use super::message_ids;
use super::update::apply_change;
use crate::api::ActionCtx;
use crate::db::message_changes::LocalChange;
use crate::error::ApiResult;
use crate::providers::folder;
use crate::state::AppState;

pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (ids, many) = message_ids(ctx)?;
    let change = LocalChange {
        folder: Some(folder::TRASH.to_string()),
        ..LocalChange::default()
    };
    apply_change(state, ctx.identity.user_id, ids, many, change).await
}
