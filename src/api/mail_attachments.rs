//! `mailAttachments`: `get` (metadata) and `download` (the bytes, streamed from the provider with
//! the stored type and name, within `mail.max_attachment_bytes`). Another user's attachment
//! answers 404 like one that does not exist.

use actix_web::HttpResponse;
use futures_util::StreamExt;

use super::mail_messages::{attachment_json, bool_param};
use super::{data, ActionCtx};
use crate::db::{self, message_list, DbError};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::providers::{AttachmentRef, ProviderError};
use crate::state::AppState;
use crate::sync::tokens::{self, TokenError};

/// Types a browser may show inline from the sidecar's origin; anything else downloads.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/avif",
    "application/pdf",
    "text/plain",
];

/// Even shown inline, an attachment runs nothing and loads nothing.
const DOWNLOAD_CSP: &str =
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'";

fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Mail attachment"),
        other => other.into(),
    }
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let (attachment, _) = state
        .db
        .run(move |c| message_list::attachment_for_user(c, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(attachment_json(&attachment)))
}

pub async fn download(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let inline = bool_param(ctx, "inline")?;
    let user_id = ctx.identity.user_id;
    let (attachment, message, siblings, account) = state
        .db
        .run(move |c| {
            let (a, m) = message_list::attachment_for_user(c, user_id, id)?;
            let siblings = message_list::attachments_for(c, user_id, &[m.id])?
                .remove(&m.id)
                .unwrap_or_default();
            let account = db::accounts::get(c, m.account_id)?;
            Ok((a, m, siblings, account))
        })
        .await
        .map_err(not_found)?;
    let max = crate::api::mail_general_settings::effective(state)
        .await
        .max_attachment_bytes;
    if attachment.size.max(0) as u64 > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "The attachment is {} bytes, more than the {max} bytes this sidecar serves (mail.max_attachment_bytes)",
                attachment.size
            ),
        ));
    }
    let wanted = AttachmentRef {
        filename: attachment.filename.clone(),
        content_type: attachment.content_type.clone(),
        content_id: attachment.content_id.clone(),
        size: attachment.size,
        ordinal: siblings
            .iter()
            .filter(|s| {
                s.filename == attachment.filename
                    && s.content_type == attachment.content_type
                    && s.part_index < attachment.part_index
            })
            .count(),
        index: siblings
            .iter()
            .filter(|s| s.part_index < attachment.part_index)
            .count(),
    };

    let provider = state.registry.get(&account.provider)?;
    let failed = |e: ProviderError| {
        state.metrics.provider_error(provider.id(), e.kind());
        match e {
            ProviderError::NotFound => ApiError::not_found("Mail attachment").with_cause(
                anyhow::anyhow!("{} no longer has attachment {id}", provider.id()),
            ),
            other => ApiError::new(
                ErrorCode::ProviderError,
                format!(
                    "Could not download the attachment from {}",
                    provider.display_name()
                ),
            )
            .with_cause(other),
        }
    };
    let token_error = |e: TokenError| match e {
        TokenError::Reauth(_) => ApiError::new(
            ErrorCode::ReauthRequired,
            format!(
                "{} must be linked again before its attachments can be downloaded",
                account.email
            ),
        ),
        TokenError::Provider(p) => failed(p),
        TokenError::Internal(why) => ApiError::internal(anyhow::anyhow!(why)),
    };
    let token = tokens::access_token(state, provider.as_ref(), account.id, false)
        .await
        .map_err(token_error)?;
    let stream = match provider
        .attachment_stream(&token, &message.provider_message_id, &wanted, max)
        .await
    {
        Err(ProviderError::Unauthorized) => {
            let token = tokens::access_token(state, provider.as_ref(), account.id, true)
                .await
                .map_err(token_error)?;
            provider
                .attachment_stream(&token, &message.provider_message_id, &wanted, max)
                .await
        }
        other => other,
    }
    .map_err(failed)?;

    let content_type = safe_content_type(&attachment.content_type);
    let disposition = if inline && INLINE_TYPES.contains(&content_type.as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let provider_id = provider.id();
    let body = stream.body.map(move |chunk| {
        chunk.map_err(|e| {
            // The headers are out: the connection is cut, and the log says why.
            log::warn!("attachment {id} from {provider_id} broke off: {e}");
            actix_web::error::ErrorBadGateway("attachment download failed")
        })
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "Content-Disposition",
            content_disposition(disposition, &attachment.filename),
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", DOWNLOAD_CSP))
        .insert_header(("Cache-Control", "private, no-store"))
        .streaming(body))
}

/// The stored type when it is a plain `type/subtype`, else `application/octet-stream`.
pub fn safe_content_type(ct: &str) -> String {
    let ct = ct.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match ct.split_once('/') {
        Some((t, s)) if token(t) && token(s) => ct,
        _ => "application/octet-stream".into(),
    }
}

/// `Content-Disposition` per RFC 6266: a quoted ASCII `filename` (quotes and backslashes
/// escaped, anything else replaced), plus `filename*=UTF-8''…` (RFC 5987) when the name is not
/// plain ASCII. Control characters and path separators never reach the header.
pub fn content_disposition(kind: &str, filename: &str) -> String {
    let clean: String = filename
        .chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim();
    let clean = if clean.is_empty() {
        "attachment"
    } else {
        clean
    };
    let plain = clean.chars().all(|c| c.is_ascii() && c != '%');
    let fallback: String = clean
        .chars()
        .map(|c| if c.is_ascii() && c != '%' { c } else { '_' })
        .collect();
    let quoted = fallback.replace('\\', "\\\\").replace('"', "\\\"");
    if plain {
        return format!("{kind}; filename=\"{quoted}\"");
    }
    let mut encoded = String::new();
    for b in clean.as_bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(b) {
            encoded.push(*b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{quoted}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_names_are_quoted_and_escaped() {
        assert_eq!(
            content_disposition("attachment", "report.pdf"),
            "attachment; filename=\"report.pdf\""
        );
        assert_eq!(
            content_disposition("inline", "say \"hi\".txt"),
            "inline; filename=\"say \\\"hi\\\".txt\""
        );
        assert_eq!(
            content_disposition("attachment", "a\\b/../c\r\nSet-Cookie: x"),
            "attachment; filename=\"a_b_.._c__Set-Cookie: x\""
        );
        assert_eq!(
            content_disposition("attachment", "  "),
            "attachment; filename=\"attachment\""
        );
    }

    #[test]
    fn other_names_get_an_rfc5987_form() {
        assert_eq!(
            content_disposition("attachment", "résumé 2026.pdf"),
            "attachment; filename=\"r_sum_ 2026.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202026.pdf"
        );
        assert_eq!(
            content_disposition("attachment", "报告.docx"),
            "attachment; filename=\"__.docx\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.docx"
        );
        assert_eq!(
            content_disposition("attachment", "100%.txt"),
            "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"
        );
        assert_eq!(
            content_disposition("attachment", "it's \"ok\".txt"),
            "attachment; filename=\"it's \\\"ok\\\".txt\""
        );
    }

    #[test]
    fn content_types_are_checked() {
        assert_eq!(safe_content_type("Image/PNG"), "image/png");
        assert_eq!(
            safe_content_type(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            ),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(
            safe_content_type("text/html\r\nX: y"),
            "application/octet-stream"
        );
        assert_eq!(safe_content_type("nonsense"), "application/octet-stream");
        assert_eq!(
            safe_content_type("a/b; charset=x"),
            "application/octet-stream"
        );
    }
}
