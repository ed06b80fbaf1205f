//! `mailMessages:get`: one message with its text body, its HTML made safe to show, and its
//! attachments.

use std::collections::HashMap;

use actix_web::HttpResponse;
use serde_json::Value;

use super::list::parse_appends;
use super::{
    append_local, attachment_json, bool_param, download_url, list_param, message_json, not_found,
};
use crate::api::{data, ActionCtx};
use crate::db::message_list::{self, ListRow};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::web::sanitize::{self, Options};

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let allow_remote_images = bool_param(ctx, "allowRemoteImages")?;
    // The attachments always come with `get`; labels and notes when appended.
    let appends = parse_appends(&list_param(ctx, "appends"))?;
    let with_labels = appends.iter().any(|a| a == "labels");
    let with_notes = appends.iter().any(|a| a == "notes");
    let user_id = ctx.identity.user_id;
    let (row, attachments, labels, notes) = state
        .db
        .run(move |c| {
            let row = message_list::get_for_user(c, user_id, id)?;
            let mut attachments = message_list::attachments_for(c, user_id, &[id])?;
            let labels = with_labels
                .then(|| crate::db::labels::for_messages(c, user_id, &[id]))
                .transpose()?;
            let notes = with_notes
                .then(|| crate::db::notes::for_messages(c, user_id, &[id]))
                .transpose()?;
            Ok((
                row,
                attachments.remove(&id).unwrap_or_default(),
                labels,
                notes,
            ))
        })
        .await
        .map_err(not_found)?;

    // Inline parts are shown from the sidecar: `cid:` URLs point at the download action.
    let inline_images: HashMap<String, String> = attachments
        .iter()
        .filter_map(|a| {
            a.content_id
                .clone()
                .map(|cid| (cid, download_url(a.id, true)))
        })
        .collect();
    let sanitized = match row.html_body.clone() {
        Some(html) => {
            let options = Options {
                allow_remote_images,
                inline_images,
            };
            // A big newsletter takes a while to parse: off the async workers.
            Some(
                actix_web::rt::task::spawn_blocking(move || sanitize::sanitize(&html, &options))
                    .await
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("sanitiser task: {e}")))?,
            )
        }
        None => None,
    };
    let text_body = row.text_body.clone();
    let mut m = message_json(&ListRow::from(row));
    m.insert("textBody".into(), text_body.into());
    m.insert(
        "html".into(),
        sanitized
            .as_ref()
            .map(|s| Value::String(s.html.clone()))
            .unwrap_or(Value::Null),
    );
    m.insert(
        "remoteImagesBlocked".into(),
        sanitized
            .as_ref()
            .is_some_and(|s| s.remote_images_blocked)
            .into(),
    );
    m.insert(
        "attachments".into(),
        Value::Array(attachments.iter().map(attachment_json).collect()),
    );
    let mut one = [m];
    append_local(&mut one, labels.as_ref(), notes.as_ref());
    let [m] = one;
    Ok(data(Value::Object(m)))
}
