//! `mailMessages:send`: new mail, reply, reply-all and forward, through the account's provider.
//!
//! The order of things (docs/sending.md has the long form):
//! 1. the values are checked at the edge (`send::request::parse`): every bad address named;
//! 2. a repeated idempotency key (`Idempotency-Key` header or `values.idempotencyKey`) answers
//!    the first request's result and sends nothing;
//! 3. what the request names is loaded and checked: the account, source message, draft,
//!    template, signature and files must be the user's (404 otherwise), `from` one of the
//!    mailbox's aliases (400), files within `mail.max_attachment_bytes` and the message within
//!    the provider's limit (413); the message is built;
//! 4. a `mail_outgoing` row records the intent before the provider hears of it, the result
//!    after;
//! 5. the provider gets it once: 429 and 5xx are retried with backoff, but after a failure that
//!    leaves open whether the provider took it (a timeout, a 5xx after the body went out) the
//!    message is looked up at the provider by its Message-ID first, and a hit counts as sent.
//!
//! Gmail answers with the sent copy's id and labels: it is stored at once under that id, so the
//! next sync updates the same row. Graph answers 202 without an id: the next sync brings the
//! copy from Sent Items. Either way the sent folder holds it once.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use crate::api::mail_aliases::{account_of, aliases_of, resolve_from};
use crate::api::mail_uploads::{open_upload, part_filename, store_field};
use crate::api::{data, iso};
use crate::auth::Identity;
use crate::crypto::{random_token, SecretString};
use crate::db::compose::{self as store, outgoing_status, NewOutgoing, OutgoingRow};
use crate::db::models::{MailAccountRow, MailMessageRow};
use crate::db::WriteTransaction;
use crate::db::{self, message_list, now_millis, DbError};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::providers::{
    AttachmentRef as ProviderAttachmentRef, MailProvider, MessageState, OutgoingSend, PreparedSend,
    ProviderError, ReplyTo, SentMessage,
};
use crate::send::address::EmailAddress;
use crate::send::compose::{compose, AttachmentRef, Composed, Mode, QuoteOptions};
use crate::send::mime::{Attachment, InlineImage, OutgoingMessage};
use crate::send::request::{self, Inputs, SendRequest};
use crate::send::signature::SignatureChoice;
use crate::send::template::{TemplateParts, UserValues};
use crate::state::AppState;
use crate::sync::tokens::{self, TokenError};

/// A `sending` row untouched for this long belongs to a process that died: a request with the
/// same key may take it over (after looking for it at the provider).
pub const STALE_SENDING_MS: i64 = 10 * 60 * 1000;
/// Most files in one multipart send.
const MAX_FORM_FILES: usize = 50;

/// How much of a request [`load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Check what the request names (a draft save): no file bytes, nothing from the provider.
    Validate,
    /// Everything but the forwarded files (a draft's provider copy).
    Mirror,
    /// Everything (a send).
    Send,
}

/// What a request names, loaded and checked.
pub(crate) struct Loaded {
    pub account: MailAccountRow,
    pub provider: Arc<dyn MailProvider>,
    pub source: Option<MailMessageRow>,
    pub inputs: Inputs,
    /// Forwarded files shown inline in the quoted original (`cid:`).
    pub forwarded_inline: Vec<InlineImage>,
}

fn not_found(what: &'static str) -> impl Fn(DbError) -> ApiError {
    move |e| match e {
        DbError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

fn too_large(what: String) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, what)
}

fn token_error(e: TokenError, account: &MailAccountRow) -> ApiError {
    match e {
        TokenError::Reauth(_) => ApiError::new(
            ErrorCode::ReauthRequired,
            format!("{} must be linked again before it can send", account.email),
        ),
        TokenError::Provider(p) => ApiError::new(
            ErrorCode::ProviderError,
            format!("{} is not reachable", account.email),
        )
        .with_cause(p),
        TokenError::Internal(why) => ApiError::internal(anyhow::anyhow!(why)),
    }
}

/// Loads and checks what `req` names. Another user's (or an unknown) account, source message,
/// draft, template, signature or upload answers 404; a file over `mail.max_attachment_bytes`
/// 413; a `from` that is not an alias 400.
pub(crate) async fn load(
    state: &AppState,
    user_id: i64,
    req: &SendRequest,
    quote: QuoteOptions,
    purpose: Purpose,
) -> ApiResult<Loaded> {
    let account = account_of(state, user_id, req.account_id).await?;
    let provider = state.registry.get(&account.provider)?;
    let max_file = crate::api::mail_general_settings::effective(state)
        .await
        .max_attachment_bytes;

    // The source of a reply or forward, and what composing it gives.
    let mut source = None;
    let mut composed: Option<Composed> = None;
    if let (Some(mode), Some(sid)) = (req.mode, req.source_message_id) {
        let (row, attachments) = state
            .db
            .run(move |c| {
                let row = message_list::get_for_user(c, user_id, sid)?;
                let atts = message_list::attachments_for(c, user_id, &[sid])?
                    .remove(&sid)
                    .unwrap_or_default();
                Ok((row, atts))
            })
            .await
            .map_err(not_found("Source message"))?;
        if row.account_id != account.id {
            return Err(ApiError::invalid(
                "sourceMessageId is a message of another mail account than accountId",
            ));
        }
        let mut own: Vec<EmailAddress> = aliases_of(state, &account)
            .await?
            .iter()
            .filter_map(|a| EmailAddress::parse(&a.address).ok())
            .collect();
        if let Ok(primary) = EmailAddress::parse(&account.email) {
            own.push(primary);
        }
        composed = Some(compose(mode, &row, &attachments, &own, quote));
        source = Some(row);
    }
    let from = resolve_from(
        state,
        &account,
        req.from.as_ref(),
        composed.as_ref().and_then(|c| c.identity.as_ref()),
    )
    .await?;

    if let Some(draft_id) = req.draft_id {
        let draft = state
            .db
            .run(move |c| store::get_draft(c, user_id, draft_id))
            .await
            .map_err(not_found("Draft"))?;
        if draft.account_id != account.id {
            return Err(ApiError::invalid(
                "draftId is a draft of another mail account than accountId",
            ));
        }
    }
    let template = match req.template_id {
        None => None,
        Some(id) => {
            let t = state
                .db
                .run(move |c| store::get_visible_template(c, user_id, id))
                .await
                .map_err(not_found("Template"))?;
            Some(TemplateParts {
                subject: t.subject,
                html: t.html,
                text: t.text_body,
            })
        }
    };
    let signature_html = match req.signature {
        SignatureChoice::None => None,
        SignatureChoice::Default => state
            .db
            .run(move |c| store::default_signature(c, user_id))
            .await?
            .map(|s| s.html),
        SignatureChoice::Id(id) => Some(
            state
                .db
                .run(move |c| store::get_signature(c, user_id, id))
                .await
                .map_err(not_found("Signature"))?
                .html,
        ),
    };

    let mut files = Vec::with_capacity(req.attachments.len());
    for (i, spec) in req.attachments.iter().enumerate() {
        let (row, path) = open_upload(state, user_id, spec.upload_id)
            .await
            .map_err(|e| match e.code {
                ErrorCode::NotFound => {
                    ApiError::not_found(&format!("attachments[{i}]: upload {}", spec.upload_id))
                }
                _ => e,
            })?;
        if row.size.max(0) as u64 > max_file {
            return Err(too_large(format!(
                "attachments[{i}] ({}) is {} bytes, more than the {max_file} bytes allowed (mail.max_attachment_bytes)",
                row.filename, row.size
            )));
        }
        if purpose == Purpose::Validate {
            continue;
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("reading upload {}: {e}", row.id)))?;
        files.push((
            spec.clone(),
            Attachment {
                filename: row.filename,
                content_type: row.content_type,
                bytes,
            },
        ));
    }

    let mut forwarded = Vec::new();
    let mut forwarded_inline = Vec::new();
    if let (Some(c), Some(src)) = (&composed, &source) {
        for a in &c.attachments {
            if a.size.max(0) as u64 > max_file {
                return Err(too_large(format!(
                    "the forwarded attachment {} is {} bytes, more than the {max_file} bytes allowed (mail.max_attachment_bytes)",
                    a.filename, a.size
                )));
            }
        }
        // Graph's createForward brings them itself.
        if purpose == Purpose::Send && !provider.forwards_attachments() && !c.attachments.is_empty()
        {
            for (a, bytes) in
                fetch_forwarded(state, provider.as_ref(), &account, src, &c.attachments).await?
            {
                match (&a.content_id, a.inline) {
                    (Some(cid), true) => forwarded_inline.push(InlineImage {
                        content_id: cid.clone(),
                        content_type: a.content_type.clone(),
                        bytes,
                        filename: Some(a.filename.clone()).filter(|f| !f.is_empty()),
                    }),
                    _ => forwarded.push(Attachment {
                        filename: a.filename.clone(),
                        content_type: a.content_type.clone(),
                        bytes,
                    }),
                }
            }
        }
    }

    let user = UserValues {
        nickname: from.name.clone().or_else(|| account.display_name.clone()),
        email: Some(from.address.to_unicode()),
    };
    Ok(Loaded {
        account,
        provider,
        source,
        inputs: Inputs {
            from: Some(from),
            composed,
            signature_html,
            template,
            user,
            files,
            forwarded,
        },
        forwarded_inline,
    })
}

/// The source's attachments, from the provider (their bytes are not stored here).
async fn fetch_forwarded(
    state: &AppState,
    provider: &dyn MailProvider,
    account: &MailAccountRow,
    source: &MailMessageRow,
    refs: &[AttachmentRef],
) -> ApiResult<Vec<(AttachmentRef, Vec<u8>)>> {
    let max = crate::api::mail_general_settings::effective(state)
        .await
        .max_attachment_bytes;
    let mut token = tokens::access_token(state, provider, account.id, false)
        .await
        .map_err(|e| token_error(e, account))?;
    let mut out = Vec::with_capacity(refs.len());
    for a in refs {
        let wanted = ProviderAttachmentRef {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            content_id: a.content_id.clone(),
            size: a.size,
            ordinal: refs
                .iter()
                .filter(|s| {
                    s.filename == a.filename
                        && s.content_type == a.content_type
                        && s.part_index < a.part_index
                })
                .count(),
            index: refs.iter().filter(|s| s.part_index < a.part_index).count(),
        };
        let mut refreshed = false;
        let stream = loop {
            match provider
                .attachment_stream(&token, &source.provider_message_id, &wanted, max)
                .await
            {
                Err(ProviderError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    token = tokens::access_token(state, provider, account.id, true)
                        .await
                        .map_err(|e| token_error(e, account))?;
                }
                other => break other,
            }
        };
        let fail = |e: ProviderError| {
            state.metrics.provider_error(provider.id(), e.kind());
            ApiError::new(
                ErrorCode::ProviderError,
                format!(
                    "Could not fetch the forwarded attachment {} from {}",
                    a.filename,
                    provider.display_name()
                ),
            )
            .with_cause(e)
        };
        let mut body = stream.map_err(fail)?.body;
        let mut bytes = Vec::with_capacity(a.size.max(0) as usize);
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(fail)?);
        }
        out.push((a.clone(), bytes));
    }
    Ok(out)
}

/// The message `req` and `loaded` make.
pub(crate) fn build_message(
    req: &SendRequest,
    loaded: &Loaded,
    require_recipients: bool,
) -> ApiResult<(OutgoingMessage, Vec<String>)> {
    let (mut m, missing) = request::assemble(req, loaded.inputs.clone(), require_recipients)?;
    m.inline_images
        .extend(loaded.forwarded_inline.iter().cloned());
    Ok((m, missing))
}

/// A file that came as a part of a multipart send, stored as an upload.
#[derive(Debug, Clone)]
pub(crate) struct FormFile {
    pub upload_id: i64,
    pub content_id: Option<String>,
    pub filename: String,
    pub sha256: String,
}

/// `POST /api/mailMessages:send`: a JSON body (the values), or `multipart/form-data` with a
/// `values` part (JSON) and file parts (`inline:<content id>` names an inline image).
pub async fn action(
    state: &AppState,
    identity: Identity,
    req: &HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (values, files) = if content_type.starts_with("multipart/form-data") {
        read_form(state, identity.user_id, req, payload).await?
    } else {
        let body = crate::api::read_body(payload, state.settings.server.max_json_bytes).await?;
        (crate::api::parse_values(&body)?, Vec::new())
    };
    let key = header_text(req, "idempotency-key");
    let answer = send_values(
        state,
        identity.user_id,
        values,
        key,
        quote_options(req),
        files,
    )
    .await?;
    Ok(data(answer))
}

pub(crate) fn header_text(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Dates in quoted originals follow the host's `X-Timezone`; UTC otherwise.
pub(crate) fn quote_options(req: &HttpRequest) -> QuoteOptions {
    header_text(req, "x-timezone")
        .and_then(|t| QuoteOptions::from_timezone_header(&t))
        .unwrap_or_default()
}

async fn read_form(
    state: &AppState,
    user_id: i64,
    req: &HttpRequest,
    payload: web::Payload,
) -> ApiResult<(Value, Vec<FormFile>)> {
    let mut form = actix_multipart::Multipart::new(req.headers(), payload);
    let mut values: Option<Value> = None;
    let mut files = Vec::new();
    let limit = state.settings.server.max_json_bytes;
    while let Some(field) = form.next().await {
        let mut field = field
            .map_err(|e| ApiError::invalid(format!("The multipart body is malformed: {e}")))?;
        let name = field.name().unwrap_or_default().to_string();
        match part_filename(&field) {
            None if name == "values" => {
                let mut body = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(|e| {
                        ApiError::invalid(format!("The multipart body is malformed: {e}"))
                    })?;
                    if body.len() + chunk.len() > limit {
                        return Err(too_large(format!(
                            "The values part is larger than {limit} bytes"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                values = Some(crate::api::parse_values(&body)?);
            }
            None => {
                return Err(ApiError::invalid(format!(
                    "Unknown form field {name:?}: send the values as a \"values\" part and files as file parts"
                )))
            }
            Some(filename) => {
                if files.len() >= MAX_FORM_FILES {
                    return Err(ApiError::invalid(format!(
                        "At most {MAX_FORM_FILES} files per message"
                    )));
                }
                let content_id = name
                    .strip_prefix("inline:")
                    .map(|c| c.trim().trim_matches(['<', '>']).to_string());
                if content_id
                    .as_deref()
                    .is_some_and(|c| c.is_empty() || !c.chars().all(|ch| ch.is_ascii_graphic()))
                {
                    return Err(ApiError::invalid(format!(
                        "form field {name:?}: the content id must be printable ASCII without spaces"
                    )));
                }
                let row = store_field(state, user_id, &mut field, filename).await?;
                files.push(FormFile {
                    upload_id: row.id,
                    content_id,
                    filename: row.filename,
                    sha256: row.sha256,
                });
            }
        }
    }
    let values = values.ok_or_else(|| ApiError::invalid("The form has no \"values\" part"))?;
    Ok((values, files))
}

/// The request as recorded for its idempotency key: the values without the key, the form's
/// files by content (their upload ids differ from one try to the next).
fn canonical(values: &Value, files: &[FormFile]) -> String {
    let mut v = match values {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    v.remove("idempotencyKey");
    if !files.is_empty() {
        v.insert(
            "formFiles".into(),
            files
                .iter()
                .map(|f| json!({"filename": f.filename, "sha256": f.sha256, "contentId": f.content_id}))
                .collect(),
        );
    }
    Value::Object(v).to_string()
}

fn with_form_files(values: Value, files: &[FormFile]) -> ApiResult<Value> {
    if files.is_empty() {
        return Ok(values);
    }
    let mut v = match values {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => return Err(ApiError::invalid("values must be a JSON object")),
    };
    let list = v
        .entry("attachments")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = list else {
        return Err(ApiError::invalid("attachments must be an array"));
    };
    for f in files {
        list.push(match &f.content_id {
            Some(cid) => json!({"uploadId": f.upload_id, "contentId": cid}),
            None => json!(f.upload_id),
        });
    }
    Ok(Value::Object(v))
}

/// What a send answers: the send's id, the provider's ids and our Message-ID.
pub(crate) fn answer_json(row: &OutgoingRow, missing: &[String]) -> Value {
    let mut v = json!({
        "id": row.id,
        "accountId": row.account_id,
        "status": row.status,
        "providerMessageId": row.provider_message_id,
        "threadId": row.provider_thread_id,
        "messageId": row.message_id.as_ref().map(|m| format!("<{m}>")),
        "attempts": row.attempts,
        "createdAt": iso(row.created_at),
    });
    if !missing.is_empty() {
        v["missingVariables"] = json!(missing);
    }
    v
}

enum Previous {
    /// The first request's answer, as it was.
    Answer(Value),
    /// It failed in a way a retry may fix, and this request now holds it.
    Retry(Box<OutgoingRow>),
}

fn refused(row: &OutgoingRow, provider: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ProviderError,
        format!("{provider} refused this message; it was not sent"),
    )
    .with_cause(anyhow::anyhow!(
        "send {} was refused: {}",
        row.id,
        row.error.as_deref().unwrap_or("")
    ))
}

/// What a request with a key already used gets.
async fn previous(
    state: &AppState,
    row: OutgoingRow,
    canonical: &str,
    provider: &str,
) -> ApiResult<Previous> {
    if row.request_json != canonical {
        return Err(ApiError::invalid(
            "This idempotency key was already used for a different message; use a new key",
        ));
    }
    let now = now_millis();
    match row.status.as_str() {
        outgoing_status::SENT => Ok(Previous::Answer(answer_json(&row, &[]))),
        outgoing_status::REJECTED => Err(refused(&row, provider)),
        outgoing_status::FAILED => {
            let id = row.id;
            if state
                .db
                .run(move |c| store::claim_outgoing(c, id, now))
                .await?
            {
                Ok(Previous::Retry(Box::new(row)))
            } else {
                Err(in_progress())
            }
        }
        outgoing_status::SENDING => {
            let id = row.id;
            let before = now - STALE_SENDING_MS;
            if state
                .db
                .run(move |c| store::claim_stale_sending(c, id, before, now))
                .await?
            {
                Ok(Previous::Retry(Box::new(row)))
            } else {
                Err(in_progress())
            }
        }
        _ => Err(in_progress()),
    }
}

fn in_progress() -> ApiError {
    ApiError::new(
        ErrorCode::SendInProgress,
        "A send with this idempotency key is in progress; ask again in a moment for its result",
    )
}

/// The send of `values` (plus files that came as form parts) for `user_id`; shared with
/// `mailDrafts:send`. Answers [`answer_json`].
pub(crate) async fn send_values(
    state: &AppState,
    user_id: i64,
    values: Value,
    header_key: Option<String>,
    quote: QuoteOptions,
    form_files: Vec<FormFile>,
) -> ApiResult<Value> {
    let canonical = canonical(&values, &form_files);
    let values = with_form_files(values, &form_files)?;
    let req = request::parse(&values)?;
    let key = match (header_key, req.idempotency_key.clone()) {
        (Some(h), Some(v)) if h != v => {
            return Err(ApiError::invalid(
                "The Idempotency-Key header and values.idempotencyKey differ",
            ))
        }
        (Some(h), _)
            if h.len() > request::MAX_IDEMPOTENCY_KEY || h.chars().any(char::is_control) =>
        {
            return Err(ApiError::invalid(format!(
                "Idempotency-Key must be at most {} characters without control characters",
                request::MAX_IDEMPOTENCY_KEY
            )))
        }
        (h, v) => h.or(v),
    };

    // Only what the user owns is looked at: another user's account answers 404 before any key.
    let account = account_of(state, user_id, req.account_id).await?;
    let mut resend: Option<OutgoingRow> = None;
    if let Some(k) = key.clone() {
        if let Some(row) = state
            .db
            .run(move |c| store::find_outgoing_by_key(c, user_id, &k))
            .await?
        {
            match previous(state, row, &canonical, &provider_name(state, &account)).await? {
                Previous::Answer(v) => return Ok(v),
                Previous::Retry(row) => resend = Some(*row),
            }
        }
    }

    prepare_and_send(state, user_id, &req, quote, &canonical, key, resend).await
}

fn provider_name(state: &AppState, account: &MailAccountRow) -> String {
    state
        .registry
        .get(&account.provider)
        .map(|p| p.display_name().to_string())
        .unwrap_or_else(|_| account.provider.clone())
}

async fn prepare_and_send(
    state: &AppState,
    user_id: i64,
    req: &SendRequest,
    quote: QuoteOptions,
    canonical: &str,
    key: Option<String>,
    resend: Option<OutgoingRow>,
) -> ApiResult<Value> {
    // Anything wrong with the request fails here, before a row exists; a retried row that fails
    // here goes back to `failed` so the same key can try again.
    let built = async {
        let loaded = load(state, user_id, req, quote, Purpose::Send).await?;
        let (mut message, missing) = build_message(req, &loaded, true)?;
        if let Some(row) = &resend {
            // The same message as the first try: same Message-ID, same date.
            if let Some(mid) = &row.message_id {
                message.message_id = mid.clone();
            }
            message.date = row.created_at;
        }
        let raw = message
            .build(true)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let limit = loaded.provider.max_message_bytes();
        if raw.len() as u64 > limit {
            return Err(too_large(format!(
                "The message is {} bytes with its attachments, more than the {limit} bytes {} takes",
                raw.len(),
                loaded.provider.display_name()
            )));
        }
        Ok((loaded, message, missing, raw))
    }
    .await;
    let (loaded, message, missing, raw) = match built {
        Ok(b) => b,
        Err(e) => {
            if let Some(row) = &resend {
                let (id, now, why) = (row.id, now_millis(), e.message.clone());
                state
                    .db
                    .run(move |c| store::mark_outgoing_failed(c, id, &why, now))
                    .await?;
            }
            return Err(e);
        }
    };

    // The intent, recorded before the provider hears of it.
    let (row, check_first) = match resend {
        Some(row) => (row, true),
        None => {
            let now = now_millis();
            let new = NewOutgoing {
                user_id,
                account_id: loaded.account.id,
                idempotency_key: key
                    .clone()
                    .unwrap_or_else(|| format!("auto:{}", random_token(18))),
                status: outgoing_status::QUEUED.into(),
                mode: mode_name(req.mode).into(),
                request_json: canonical.to_string(),
                message_id: Some(message.message_id.clone()),
                created_at: now,
                updated_at: now,
            };
            let (row, created) = state
                .db
                .run(move |c| store::create_or_get_outgoing(c, &new))
                .await?;
            if !created {
                // Another request with this key got there first.
                return match previous(state, row, canonical, loaded.provider.display_name()).await?
                {
                    Previous::Answer(v) => Ok(v),
                    Previous::Retry(_) => Err(in_progress()),
                };
            }
            let id = row.id;
            if !state
                .db
                .run(move |c| store::claim_outgoing(c, id, now))
                .await?
            {
                return Err(in_progress());
            }
            (row, false)
        }
    };

    let reply = match (req.mode, &loaded.source) {
        (Some(mode), Some(src)) => Some(ReplyTo {
            mode,
            provider_message_id: &src.provider_message_id,
            thread_id: &src.thread_id,
        }),
        _ => None,
    };
    let send = OutgoingSend {
        message: &message,
        raw: &raw,
        reply,
    };
    let check = if check_first {
        row.message_id.clone()
    } else {
        None
    };
    let outcome = deliver(
        state,
        loaded.provider.as_ref(),
        &loaded.account,
        row.id,
        &send,
        check,
    )
    .await;
    let now = now_millis();
    let id = row.id;
    match outcome {
        Ok(sent) => {
            let (pid, tid) = (sent.provider_message_id.clone(), sent.thread_id.clone());
            let row = state
                .db
                .run(move |c| {
                    store::mark_outgoing_sent(c, id, pid.as_deref(), tid.as_deref(), now)?;
                    store::get_outgoing(c, user_id, id)
                })
                .await?;
            state.metrics.inc(
                "email_manager_messages_sent_total",
                format!("provider=\"{}\"", loaded.provider.id()),
            );
            if let Some(st) = sent.state {
                store_sent_copy(state, &loaded.account, st, raw).await;
            }
            if let Some(draft_id) = req.draft_id {
                if let Err(e) = crate::draft_mirror::discard(state, user_id, draft_id).await {
                    log::warn!("send {id}: removing draft {draft_id} failed: {e}");
                }
            }
            Ok(answer_json(&row, &missing))
        }
        Err(failure) => {
            let provider = loaded.provider.display_name();
            let (log_text, rejected, error) = match failure {
                Failure::Rejected(e) => (
                    e.to_string(),
                    true,
                    ApiError::new(
                        ErrorCode::ProviderError,
                        format!("{provider} refused the message; it was not sent"),
                    ),
                ),
                Failure::Unavailable(e) => (
                    e.to_string(),
                    false,
                    ApiError::new(
                        ErrorCode::ProviderError,
                        format!(
                            "{provider} did not take the message; send again with the same idempotency key to retry safely"
                        ),
                    ),
                ),
                Failure::Uncertain(e) => (
                    e.to_string(),
                    false,
                    ApiError::new(
                        ErrorCode::ProviderError,
                        format!(
                            "{provider} could not confirm whether the message went out; sending again with the same idempotency key checks before it sends"
                        ),
                    ),
                ),
                Failure::Token(e) => {
                    let text = e.to_string();
                    (text, false, token_error(e, &loaded.account))
                }
            };
            log::warn!(
                "send {id} from mail account {} failed: {log_text}",
                loaded.account.id
            );
            state
                .db
                .run(move |c| {
                    if rejected {
                        store::mark_outgoing_rejected(c, id, &log_text, now)
                    } else {
                        store::mark_outgoing_failed(c, id, &log_text, now)
                    }
                })
                .await?;
            Err(error)
        }
    }
}

fn mode_name(mode: Option<Mode>) -> &'static str {
    match mode {
        None => "new",
        Some(Mode::Reply) => "reply",
        Some(Mode::ReplyAll) => "replyAll",
        Some(Mode::Forward) => "forward",
    }
}

/// Why a send did not go out.
enum Failure {
    /// Refused for good (4xx): sending again would not help.
    Rejected(ProviderError),
    /// Not taken (throttled, unavailable) after the retries: a retry may work.
    Unavailable(ProviderError),
    /// It may have been taken and the provider could not say: never sent again blindly.
    Uncertain(ProviderError),
    Token(TokenError),
}

/// Hands the message to the provider: prepared once, committed once per attempt, and after an
/// ambiguous failure looked up by Message-ID before any further attempt.
async fn deliver(
    state: &AppState,
    provider: &dyn MailProvider,
    account: &MailAccountRow,
    row_id: i64,
    send: &OutgoingSend<'_>,
    check: Option<String>,
) -> Result<SentMessage, Failure> {
    let attempts = state.settings.providers.retries + 1;
    let token_of = |force: bool| tokens::access_token(state, provider, account.id, force);
    let mut token: SecretString = token_of(false).await.map_err(Failure::Token)?;
    let mut refreshed = false;
    let mut tries = 0u32;
    let mut prepared: Option<PreparedSend> = None;
    // A Message-ID the provider may already have sent.
    let mut unsure = check;
    let mut last = ProviderError::Transient("no attempt made".into());
    loop {
        if let Some(mid) = unsure.clone() {
            match provider.find_sent(&token, &mid).await {
                Ok(Some(sent)) => {
                    log::info!("send {row_id}: the provider had it already ({mid})");
                    return Ok(with_thread(sent, prepared.as_ref()));
                }
                Ok(None) => {}
                Err(ProviderError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    token = token_of(true).await.map_err(Failure::Token)?;
                    continue;
                }
                Err(e) => {
                    state.metrics.provider_error(provider.id(), e.kind());
                    if tries >= attempts || !e.is_retryable() {
                        return Err(Failure::Uncertain(e));
                    }
                    tries += 1;
                    tokio::time::sleep(crate::providers::http::backoff(tries, &e)).await;
                    continue;
                }
            }
        }
        if tries >= attempts {
            return Err(if unsure.is_some() {
                Failure::Uncertain(last)
            } else {
                if let Some(p) = &prepared {
                    abandon(provider, &token, p).await;
                }
                Failure::Unavailable(last)
            });
        }
        tries += 1;
        let p = match &prepared {
            Some(p) => p.clone(),
            None => match provider.prepare_send(&token, send).await {
                Ok(p) => {
                    if let Some(mid) = p.message_id.clone() {
                        let now = now_millis();
                        if let Err(e) = state
                            .db
                            .run(move |c| store::set_outgoing_message_id(c, row_id, &mid, now))
                            .await
                        {
                            log::error!("send {row_id}: recording the Message-ID failed: {e}");
                        }
                    }
                    prepared = Some(p.clone());
                    p
                }
                Err(ProviderError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    token = token_of(true).await.map_err(Failure::Token)?;
                    continue;
                }
                Err(e) if e.is_retryable() => {
                    state.metrics.provider_error(provider.id(), e.kind());
                    let wait = crate::providers::http::backoff(tries, &e);
                    last = e;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    state.metrics.provider_error(provider.id(), e.kind());
                    return Err(Failure::Rejected(e));
                }
            },
        };
        let now = now_millis();
        let _ = state
            .db
            .run(move |c| store::touch_outgoing(c, row_id, now))
            .await;
        match provider.commit_send(&token, send, &p).await {
            Ok(sent) => return Ok(learn_ids(provider, &token, sent, &p).await),
            // Refused before it was taken: the same prepared message may go again.
            Err(ProviderError::Unauthorized) if !refreshed => {
                refreshed = true;
                token = token_of(true).await.map_err(Failure::Token)?;
            }
            Err(e @ ProviderError::RateLimited { .. }) => {
                state.metrics.provider_error(provider.id(), e.kind());
                let wait = crate::providers::http::backoff(tries, &e);
                last = e;
                tokio::time::sleep(wait).await;
            }
            Err(e @ ProviderError::Transient(_)) => {
                state.metrics.provider_error(provider.id(), e.kind());
                log::info!("send {row_id}: the provider may have taken it ({e}); checking before any retry");
                match &p.message_id {
                    Some(mid) => unsure = Some(mid.clone()),
                    None => return Err(Failure::Uncertain(e)),
                }
                let wait = crate::providers::http::backoff(tries, &e);
                last = e;
                tokio::time::sleep(wait).await;
            }
            // The draft it sends is gone: an earlier try that looked failed sent it (or someone
            // deleted it); only a lookup can tell.
            Err(ProviderError::NotFound) if unsure.is_some() => {
                let mid = unsure.clone().unwrap_or_default();
                return match provider.find_sent(&token, &mid).await {
                    Ok(Some(sent)) => Ok(with_thread(sent, Some(&p))),
                    Ok(None) => Err(Failure::Uncertain(ProviderError::NotFound)),
                    Err(e) => Err(Failure::Uncertain(e)),
                };
            }
            Err(e) => {
                state.metrics.provider_error(provider.id(), e.kind());
                abandon(provider, &token, &p).await;
                return Err(Failure::Rejected(e));
            }
        }
    }
}

async fn abandon(provider: &dyn MailProvider, token: &SecretString, p: &PreparedSend) {
    if let Err(e) = provider.abandon_send(token, p).await {
        log::warn!("removing an unsent draft at {} failed: {e}", provider.id());
    }
}

fn with_thread(mut sent: SentMessage, p: Option<&PreparedSend>) -> SentMessage {
    if sent.thread_id.is_none() {
        sent.thread_id = p.and_then(|p| p.thread_id.clone());
    }
    sent
}

/// Graph answers a send without ids: one look in Sent Items (best effort; Exchange files the
/// copy a moment later at times, and sync finds it then).
async fn learn_ids(
    provider: &dyn MailProvider,
    token: &SecretString,
    sent: SentMessage,
    p: &PreparedSend,
) -> SentMessage {
    let sent = with_thread(sent, Some(p));
    if sent.provider_message_id.is_some() {
        return sent;
    }
    let Some(mid) = &p.message_id else {
        return sent;
    };
    match provider.find_sent(token, mid).await {
        Ok(Some(found)) => SentMessage {
            provider_message_id: found.provider_message_id,
            thread_id: found.thread_id.or(sent.thread_id),
            state: sent.state,
        },
        _ => sent,
    }
}

/// Stores the sent copy under the provider's id, as sync would, so the next sync updates this
/// row instead of adding a second one. A failure only delays the copy until that sync.
async fn store_sent_copy(
    state: &AppState,
    account: &MailAccountRow,
    st: MessageState,
    raw: Vec<u8>,
) {
    let (account_id, user_id, gen) = (account.id, account.user_id, account.sync_gen);
    let result = state
        .db
        .run(move |c| {
            let known =
                db::messages::known(c, account_id, std::slice::from_ref(&st.provider_message_id))?;
            if !known.is_empty() {
                return Ok(());
            }
            let (new, atts) =
                crate::sync::new_message(account_id, user_id, gen, now_millis(), &st, &raw);
            c.write_transaction(|c| db::messages::insert(c, &new, &atts).map(|_| ()))
        })
        .await;
    if let Err(e) = result {
        log::info!("mail account {account_id}: the sent copy waits for the next sync: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_request_leaves_out_the_key_and_names_form_files_by_content() {
        let files = vec![FormFile {
            upload_id: 7,
            content_id: Some("logo".into()),
            filename: "logo.png".into(),
            sha256: "ab".into(),
        }];
        let a = canonical(&json!({"to": "x@y.test", "idempotencyKey": "k"}), &files);
        let mut other = files.clone();
        other[0].upload_id = 8;
        let b = canonical(&json!({"to": "x@y.test"}), &other);
        assert_eq!(a, b, "the key and the upload ids do not count");
        assert!(a.contains("\"sha256\":\"ab\""));
        let v = with_form_files(json!({"attachments": [3]}), &files).expect("merged");
        assert_eq!(
            v["attachments"],
            json!([3, {"uploadId": 7, "contentId": "logo"}])
        );
        assert!(with_form_files(json!({"attachments": 3}), &files).is_err());
    }
}
