//! What the sandbox does with mail the client sends: Gmail `messages.send` (raw JSON and both
//! upload forms), `drafts.*` and `settings.sendAs`; Graph `sendMail` (JSON or MIME), drafts
//! (`POST /me/messages`, PATCH, DELETE), `createReply` / `createReplyAll` / `createForward`,
//! `send`, file attachments and attachment upload sessions.
//!
//! Every accepted message is kept: in the sender's sent folder (in the thread named, or the one
//! its headers point at), and delivered to the inbox of every seeded mailbox among its
//! recipients, without its Bcc header. `GET /__sandbox/outbox` lists each accepted send with the
//! exact MIME and the envelope recipients. Graph drafts are kept as a model (`DraftModel`) whose
//! MIME is rebuilt on every change, so the Graph endpoints that read messages see them as they are.

use std::borrow::Cow;

use actix_web::http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::gmail::{self, Need};
use super::graph;
use super::mime::{self, Person};
use super::store::{Msg, NewMessage, StoreError};
use super::{bearer, json_response, query, Kind, Mailbox, Provider, Shared, State, MAILBOXES};

const GMAIL: &str = "/google/gmail/v1/users/{user}";
const GMAIL_UPLOAD: &str = "/google/upload/gmail/v1/users/{user}";
const GRAPH: &str = "/microsoft/graph/v1.0/me";

/// Gmail: `messages.send` and drafts take up to 35 MB ("maxSize": "36700160").
const GMAIL_MAX_UPLOAD: usize = 36_700_160;
/// Gmail: a JSON body with `raw` larger than this answers 413 here, so clients must use the
/// upload endpoint for big messages (Google advises simple requests for 5 MB or less; the
/// base64 of 5 MB plus the JSON fits under this).
const GMAIL_MAX_JSON: usize = 7 << 20;
/// Graph refuses request bodies over 4 MB.
const GRAPH_MAX_REQUEST: usize = 4 << 20;
/// Graph: files of 3 MB and more need an upload session.
const GRAPH_MAX_INLINE_ATTACHMENT: usize = 3 << 20;
/// Graph: each upload `PUT` carries at most 4 MB.
const GRAPH_MAX_CHUNK: usize = 4 << 20;
/// Graph attaches files up to 150 MB.
const GRAPH_MAX_ATTACHMENT: usize = 150 * 1024 * 1024;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let g = |path: &str| format!("{GMAIL}{path}");
    let gu = |path: &str| format!("{GMAIL_UPLOAD}{path}");
    let m = |path: &str| format!("{GRAPH}{path}");
    cfg.route(&g("/messages/send"), web::post().to(gmail_send))
        .route(&gu("/messages/send"), web::post().to(gmail_send_upload))
        .route(&g("/drafts"), web::get().to(gmail_list_drafts))
        .route(&g("/drafts"), web::post().to(gmail_create_draft))
        .route(&gu("/drafts"), web::post().to(gmail_create_draft_upload))
        .route(&g("/drafts/send"), web::post().to(gmail_send_draft))
        .route(&g("/drafts/{id}"), web::get().to(gmail_get_draft))
        .route(&g("/drafts/{id}"), web::put().to(gmail_update_draft))
        .route(
            &gu("/drafts/{id}"),
            web::put().to(gmail_update_draft_upload),
        )
        .route(&g("/drafts/{id}"), web::delete().to(gmail_delete_draft))
        .route(&g("/settings/sendAs"), web::get().to(gmail_send_as_list))
        .route(
            &g("/settings/sendAs/{email}"),
            web::get().to(gmail_send_as_get),
        )
        .route(&m("/sendMail"), web::post().to(graph_send_mail))
        .route(&m("/messages"), web::post().to(graph_create_draft))
        .route(
            &m("/messages/{id}/createReply"),
            web::post().to(graph_create_reply),
        )
        .route(
            &m("/messages/{id}/createReplyAll"),
            web::post().to(graph_create_reply_all),
        )
        .route(
            &m("/messages/{id}/createForward"),
            web::post().to(graph_create_forward),
        )
        .route(&m("/messages/{id}/send"), web::post().to(graph_send_draft))
        .route(
            &m("/messages/{id}/attachments"),
            web::post().to(graph_add_attachment),
        )
        .route(
            &m("/messages/{id}/attachments/createUploadSession"),
            web::post().to(graph_create_upload_session),
        )
        .route(
            "/microsoft/api/v2.0/{tail:.*}",
            web::put().to(graph_upload_chunk),
        );
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64 or base64url, padded or not, line breaks allowed.
fn decode_any(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let trimmed = clean.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .ok()
}

/// The header block without its `Bcc` field: what recipients get.
pub(crate) fn strip_bcc(raw: &[u8]) -> Vec<u8> {
    let end = find(raw, b"\r\n\r\n", 0)
        .map(|p| p + 2)
        .or_else(|| find(raw, b"\n\n", 0).map(|p| p + 1))
        .unwrap_or(raw.len());
    let (head, rest) = raw.split_at(end);
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    for line in head.split_inclusive(|b| *b == b'\n') {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if folded && skipping {
            continue;
        }
        skipping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Keeps a sent message: in the sender's sent folder, in the inbox of every seeded recipient
/// (without Bcc), and in the outbox. Answers the sender's copy's id and thread.
fn accept(
    state: &mut State,
    sender: &'static Mailbox,
    raw: Vec<u8>,
    thread: Option<String>,
    api: &str,
) -> Result<(String, String), String> {
    let summary = mime::summary(&raw);
    let envelope: Vec<String> = summary
        .to
        .iter()
        .chain(&summary.cc)
        .chain(&summary.bcc)
        .map(|p| p.address.clone())
        .filter(|a| !a.is_empty())
        .collect();
    if envelope.is_empty() {
        return Err("Recipient address required".into());
    }
    let now = now_ms();
    let store = state.store(sender);
    let id = store
        .insert_in_thread(
            NewMessage {
                raw: raw.clone(),
                folder: "sent".into(),
                unread: false,
                starred: false,
                received_at: now,
                thread_of: None,
                labels: Vec::new(),
            },
            thread,
        )
        .map_err(|e| format!("{e:?}"))?;
    let thread_id = store
        .get(&id)
        .map(|m| m.thread_id.clone())
        .unwrap_or_default();
    let visible = strip_bcc(&raw);
    let mut delivered: Vec<&'static str> = Vec::new();
    for address in &envelope {
        let Some(m) = MAILBOXES
            .iter()
            .find(|m| m.email.eq_ignore_ascii_case(address))
        else {
            continue;
        };
        if delivered.contains(&m.email) {
            continue;
        }
        let _ = state.store(m).insert(NewMessage {
            raw: visible.clone(),
            folder: "inbox".into(),
            unread: true,
            starred: false,
            received_at: now,
            thread_of: None,
            labels: Vec::new(),
        });
        delivered.push(m.email);
    }
    super::quota::record(&mut state.sending_limits, sender);
    let seq = state.outbox.len();
    state.outbox.push(json!({
        "seq": seq,
        "provider": sender.provider,
        "api": api,
        "mailbox": sender.email,
        "from": summary.from.as_ref().map(|p| p.address.clone()),
        "subject": summary.subject,
        "messageId": summary.message_id.as_ref().map(|m| format!("<{m}>")),
        "envelope": envelope,
        "delivered": delivered,
        "providerMessageId": id,
        "threadId": thread_id,
        "raw": b64(&raw),
        "at": iso(now),
    }));
    Ok((id, thread_id))
}

/// `GET /__sandbox/outbox[?from=]`: every accepted send (`from` matches the sending mailbox or
/// the From address).
pub(crate) async fn outbox(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let from = query(&req).remove("from");
    let list: Vec<Value> = data
        .state()
        .outbox
        .iter()
        .filter(|e| {
            from.as_deref().is_none_or(|f| {
                e["mailbox"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case(f))
                    || e["from"]
                        .as_str()
                        .is_some_and(|m| m.eq_ignore_ascii_case(f))
            })
        })
        .cloned()
        .collect();
    json_response(200, json!({ "messages": list }))
}

pub(crate) async fn clear_outbox(data: web::Data<Shared>) -> HttpResponse {
    data.state().outbox.clear();
    json_response(200, json!({ "ok": true }))
}

// ---------------------------------------------------------------------------------------------
// Gmail

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GmailMessageIn {
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    thread_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct GmailDraftIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: Option<GmailMessageIn>,
}

fn gmail_raw(m: &GmailMessageIn) -> Result<Vec<u8>, HttpResponse> {
    let raw = m.raw.as_deref().filter(|r| !r.is_empty()).ok_or_else(|| {
        gmail::invalid(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        )
    })?;
    decode_any(raw).ok_or_else(|| gmail::invalid("Invalid value for ByteString: raw"))
}

fn gmail_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, HttpResponse> {
    if body.len() > GMAIL_MAX_JSON {
        return Err(gmail::error(
            413,
            "Request payload size exceeds the limit; use the upload endpoint for large messages.",
            "badRequest",
            "INVALID_ARGUMENT",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| gmail::invalid(&format!("Invalid JSON payload received. {e}")))
}

/// A Gmail upload: the JSON metadata (`{}` for `uploadType=media`) and the message.
fn gmail_upload(req: &HttpRequest, body: &[u8]) -> Result<(Value, Vec<u8>), HttpResponse> {
    if body.len() > GMAIL_MAX_UPLOAD {
        return Err(gmail::error(
            413,
            "Media larger than the maximum of 36700160 bytes",
            "uploadTooLarge",
            "INVALID_ARGUMENT",
        ));
    }
    let content_type = super::header(req, "content-type")
        .unwrap_or_default()
        .to_string();
    let lower = content_type.to_ascii_lowercase();
    match query(req).get("uploadType").map(String::as_str) {
        Some("media") => {
            if !lower.starts_with("message/") {
                return Err(gmail::invalid(&format!(
                    "Media type '{content_type}' is not supported. Valid media types: [message/*]"
                )));
            }
            Ok((json!({}), body.to_vec()))
        }
        Some("multipart") => {
            let boundary = boundary_of(&content_type)
                .filter(|_| lower.starts_with("multipart/related"))
                .ok_or_else(|| {
                    gmail::invalid("Multipart upload needs multipart/related with a boundary")
                })?;
            let parts = split_multipart(body, &boundary)
                .ok_or_else(|| gmail::invalid("Malformed multipart body"))?;
            let [(meta_headers, meta), (media_headers, media)] = parts.as_slice() else {
                return Err(gmail::invalid(
                    "A multipart upload has exactly two parts: the metadata and the media",
                ));
            };
            let is = |h: &[(String, String)], prefix: &str| {
                h.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("content-type")
                        && v.to_ascii_lowercase().starts_with(prefix)
                })
            };
            if !is(meta_headers, "application/json") || !is(media_headers, "message/") {
                return Err(gmail::invalid(
                    "The first part must be application/json, the second message/*",
                ));
            }
            let meta: Value = serde_json::from_slice(meta)
                .map_err(|e| gmail::invalid(&format!("Invalid JSON payload received. {e}")))?;
            Ok((meta, media.to_vec()))
        }
        Some("resumable") => Err(gmail::invalid(
            "uploadType=resumable is not supported by the sandbox",
        )),
        _ => Err(gmail::invalid("Invalid or missing uploadType")),
    }
}

fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A part of a multipart body: its headers and content.
type Part<'a> = (Vec<(String, String)>, &'a [u8]);

/// The parts of a multipart body: each part's headers and content.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delim = format!("--{boundary}").into_bytes();
    let next_delim = [b"\r\n".as_slice(), &delim].concat();
    let mut at = find(body, &delim, 0)?;
    let mut parts = Vec::new();
    loop {
        let after = at + delim.len();
        if body.get(after..after + 2) == Some(b"--".as_slice()) {
            return Some(parts);
        }
        let start = find(body, b"\r\n", after)? + 2;
        let end = find(body, &next_delim, start)?;
        let part = &body[start..end];
        let (head, content) = if part.starts_with(b"\r\n") {
            (&part[..0], &part[2..])
        } else {
            let split = find(part, b"\r\n\r\n", 0)?;
            (&part[..split], &part[split + 4..])
        };
        let headers = String::from_utf8_lossy(head)
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        parts.push((headers, content));
        at = end + 2;
    }
}

fn sent_json(id: &str, thread: &str) -> Value {
    json!({ "id": id, "threadId": thread, "labelIds": ["SENT"] })
}

/// A send of `raw` (in `thread`, when it names one of this mailbox's threads).
fn gmail_accept(
    data: &Shared,
    mailbox: &'static Mailbox,
    raw: Vec<u8>,
    thread: Option<String>,
    api: &str,
) -> HttpResponse {
    let mut state = data.state();
    if let Err(res) = super::quota::admit(&mut state, mailbox) {
        return res;
    }
    let thread = thread.filter(|t| !t.is_empty());
    if let Some(t) = &thread {
        if !state.store(mailbox).has_thread(t) {
            return gmail::not_found();
        }
    }
    match accept(&mut state, mailbox, raw, thread, api) {
        Ok((id, thread)) => json_response(200, sent_json(&id, &thread)),
        Err(e) => gmail::invalid(&e),
    }
}

async fn gmail_send(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match gmail::owner(&req, &data, &user, Need::Send) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let m: GmailMessageIn = match gmail_json(&body) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let raw = match gmail_raw(&m) {
        Ok(r) => r,
        Err(res) => return res,
    };
    gmail_accept(&data, mailbox, raw, m.thread_id, "gmail.messages.send")
}

async fn gmail_send_upload(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match gmail::owner(&req, &data, &user, Need::Send) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let (meta, raw) = match gmail_upload(&req, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let thread = meta["threadId"].as_str().map(str::to_string);
    let api = format!(
        "gmail.upload.{}",
        query(&req).remove("uploadType").unwrap_or_default()
    );
    gmail_accept(&data, mailbox, raw, thread, &api)
}

fn draft_json(store: &super::store::Store, draft_id: &str, message_id: &str) -> Value {
    match store.get(message_id) {
        Some(m) => json!({
            "id": draft_id,
            "message": { "id": m.id, "threadId": m.thread_id, "labelIds": m.labels },
        }),
        None => json!({ "id": draft_id }),
    }
}

/// Stores `raw` as draft `draft_id` (a new one when `None`), replacing its earlier message.
fn gmail_put_draft(
    data: &Shared,
    mailbox: &'static Mailbox,
    draft_id: Option<String>,
    raw: Vec<u8>,
    thread: Option<String>,
) -> HttpResponse {
    let mut state = data.state();
    let store = state.store(mailbox);
    let thread = thread.filter(|t| !t.is_empty());
    if let Some(t) = &thread {
        if !store.has_thread(t) {
            return gmail::not_found();
        }
    }
    let (draft_id, old) = match draft_id {
        Some(id) => match store.gmail_drafts.get(&id).cloned() {
            Some(old) => (id, Some(old)),
            None => return gmail::not_found(),
        },
        None => (store.new_draft_id(), None),
    };
    let thread = thread.or_else(|| {
        old.as_deref()
            .and_then(|o| store.get(o))
            .map(|m| m.thread_id.clone())
    });
    if let Some(old) = &old {
        let _ = store.delete(old);
    }
    let new = NewMessage {
        raw,
        folder: "drafts".into(),
        unread: false,
        starred: false,
        received_at: now_ms(),
        thread_of: None,
        labels: Vec::new(),
    };
    match store.insert_in_thread(new, thread) {
        Ok(id) => {
            store.gmail_drafts.insert(draft_id.clone(), id.clone());
            json_response(200, draft_json(store, &draft_id, &id))
        }
        Err(StoreError::Invalid(m)) => gmail::invalid(&m),
        Err(StoreError::NotFound) => gmail::not_found(),
    }
}

async fn gmail_list_drafts(
    req: HttpRequest,
    user: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match gmail::owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let drafts: Vec<Value> = store
        .gmail_drafts
        .iter()
        .filter_map(|(d, m)| {
            store
                .get(m)
                .map(|msg| json!({"id": d, "message": {"id": msg.id, "threadId": msg.thread_id}}))
        })
        .collect();
    let mut body = json!({ "resultSizeEstimate": drafts.len() });
    if !drafts.is_empty() {
        body["drafts"] = Value::Array(drafts);
    }
    json_response(200, body)
}

async fn gmail_create_draft(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match gmail::owner(&req, &data, &user, Need::Compose) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let d: GmailDraftIn = match gmail_json(&body) {
        Ok(d) => d,
        Err(res) => return res,
    };
    let m = d.message.unwrap_or_default();
    let raw = match gmail_raw(&m) {
        Ok(r) => r,
        Err(res) => return res,
    };
    gmail_put_draft(&data, mailbox, None, raw, m.thread_id)
}

async fn gmail_create_draft_upload(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match gmail::owner(&req, &data, &user, Need::Compose) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let (meta, raw) = match gmail_upload(&req, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let thread = meta["message"]["threadId"].as_str().map(str::to_string);
    gmail_put_draft(&data, mailbox, None, raw, thread)
}

async fn gmail_get_draft(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match gmail::owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = gmail::pairs(&req);
    let format = match gmail::format_of(&pairs, gmail::Format::Full) {
        Ok(f) => f,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let Some(message) = store.gmail_drafts.get(&id).and_then(|m| store.get(m)) else {
        return gmail::not_found();
    };
    json_response(
        200,
        json!({ "id": id, "message": gmail::message_json(message, format, &[]) }),
    )
}

async fn gmail_update_draft(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match gmail::owner(&req, &data, &user, Need::Compose) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let d: GmailDraftIn = match gmail_json(&body) {
        Ok(d) => d,
        Err(res) => return res,
    };
    if d.id.as_deref().is_some_and(|given| given != id) {
        return gmail::invalid("The draft id in the body does not match the path");
    }
    let m = d.message.unwrap_or_default();
    let raw = match gmail_raw(&m) {
        Ok(r) => r,
        Err(res) => return res,
    };
    gmail_put_draft(&data, mailbox, Some(id), raw, m.thread_id)
}

async fn gmail_update_draft_upload(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match gmail::owner(&req, &data, &user, Need::Compose) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let (meta, raw) = match gmail_upload(&req, &body) {
        Ok(x) => x,
        Err(res) => return res,
    };
    let thread = meta["message"]["threadId"].as_str().map(str::to_string);
    gmail_put_draft(&data, mailbox, Some(id), raw, thread)
}

async fn gmail_delete_draft(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match gmail::owner(&req, &data, &user, Need::Compose) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match store.gmail_drafts.remove(&id) {
        Some(message) => {
            let _ = store.delete(&message);
            HttpResponse::NoContent().finish()
        }
        None => gmail::not_found(),
    }
}

async fn gmail_send_draft(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match gmail::owner(&req, &data, &user, Need::Send) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let d: GmailDraftIn = match gmail_json(&body) {
        Ok(d) => d,
        Err(res) => return res,
    };
    let Some(id) = d.id else {
        return gmail::invalid("Missing draft id");
    };
    let mut state = data.state();
    if let Err(res) = super::quota::admit(&mut state, mailbox) {
        return res;
    }
    let store = state.store(mailbox);
    let Some(message_id) = store.gmail_drafts.get(&id).cloned() else {
        return gmail::not_found();
    };
    let Some((raw, thread)) = store
        .get(&message_id)
        .map(|m| (m.raw.clone(), m.thread_id.clone()))
    else {
        return gmail::not_found();
    };
    let raw = match d.message.as_ref().filter(|m| m.raw.is_some()) {
        Some(m) => match gmail_raw(m) {
            Ok(r) => r,
            Err(res) => return res,
        },
        None => raw,
    };
    store.gmail_drafts.remove(&id);
    let _ = store.delete(&message_id);
    match accept(&mut state, mailbox, raw, Some(thread), "gmail.drafts.send") {
        Ok((id, thread)) => json_response(200, sent_json(&id, &thread)),
        Err(e) => gmail::invalid(&e),
    }
}

/// Each mailbox's send-as addresses: the primary; alice also has one verified alias and one
/// awaiting verification.
fn send_as(mailbox: &Mailbox) -> Vec<Value> {
    let mut list = vec![json!({
        "sendAsEmail": mailbox.email,
        "displayName": mailbox.name(),
        "replyToAddress": "",
        "signature": "",
        "isPrimary": true,
        "isDefault": true,
    })];
    if mailbox.email == "alice@gmail.test" {
        list.push(json!({
            "sendAsEmail": "alice.sales@gmail.test",
            "displayName": "Alice (Sales)",
            "replyToAddress": "",
            "signature": "",
            "isPrimary": false,
            "isDefault": false,
            "treatAsAlias": true,
            "verificationStatus": "accepted",
        }));
        list.push(json!({
            "sendAsEmail": "alice.pending@example.test",
            "displayName": "Alice (pending)",
            "replyToAddress": "",
            "signature": "",
            "isPrimary": false,
            "isDefault": false,
            "treatAsAlias": false,
            "verificationStatus": "pending",
        }));
    }
    list
}

async fn gmail_send_as_list(
    req: HttpRequest,
    user: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    match gmail::owner(&req, &data, &user, Need::Read) {
        Ok(m) => json_response(200, json!({ "sendAs": send_as(m) })),
        Err(res) => res,
    }
}

async fn gmail_send_as_get(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, email) = path.into_inner();
    let mailbox = match gmail::owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    send_as(mailbox)
        .into_iter()
        .find(|a| {
            a["sendAsEmail"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(&email))
        })
        .map(|a| json_response(200, a))
        .unwrap_or_else(gmail::not_found)
}

// ---------------------------------------------------------------------------------------------
// Graph

/// A file of a Graph draft.
#[derive(Clone, Debug)]
pub(crate) struct DraftFile {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub content_id: Option<String>,
}

/// A Graph draft's content; its MIME is rebuilt from this.
#[derive(Clone, Debug)]
pub(crate) struct DraftModel {
    pub from: Person,
    pub to: Vec<Person>,
    pub cc: Vec<Person>,
    pub bcc: Vec<Person>,
    pub reply_to: Vec<Person>,
    pub subject: String,
    pub html: bool,
    pub body: String,
    /// Without angle brackets; Exchange assigns it when the draft is made.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub files: Vec<DraftFile>,
    pub date: i64,
}

impl DraftModel {
    fn new(owner: &Mailbox) -> DraftModel {
        let domain = owner.email.split('@').nth(1).unwrap_or("contoso.test");
        DraftModel {
            from: Person {
                name: owner.name(),
                address: owner.email.to_string(),
            },
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: Vec::new(),
            subject: String::new(),
            html: true,
            body: String::new(),
            message_id: format!(
                "SANDBOX{}@{}.prod.outlook.test",
                super::random_string(20).to_ascii_uppercase(),
                domain.replace('.', "-")
            ),
            in_reply_to: None,
            references: Vec::new(),
            files: Vec::new(),
            date: now_ms(),
        }
    }

    /// Applies message properties as Graph takes them on create and PATCH.
    fn apply(&mut self, fields: &Map<String, Value>) -> Result<(), HttpResponse> {
        for (k, v) in fields {
            match k.as_str() {
                "subject" => self.subject = v.as_str().unwrap_or_default().to_string(),
                "body" => {
                    let kind = v["contentType"].as_str().unwrap_or("text");
                    self.html = kind.eq_ignore_ascii_case("html");
                    self.body = v["content"].as_str().unwrap_or_default().to_string();
                }
                "toRecipients" => self.to = recipients(k, v)?,
                "ccRecipients" => self.cc = recipients(k, v)?,
                "bccRecipients" => self.bcc = recipients(k, v)?,
                "replyTo" => self.reply_to = recipients(k, v)?,
                "from" | "sender" => {
                    if let Some(p) = recipients(k, &json!([v]))?.into_iter().next() {
                        self.from = p;
                    }
                }
                "attachments" => {
                    for a in v.as_array().into_iter().flatten() {
                        self.files.push(file_attachment(a)?);
                    }
                }
                "@odata.type" | "importance" | "internetMessageHeaders" | "isRead" | "flag"
                | "categories" | "isDeliveryReceiptRequested" | "isReadReceiptRequested" => {}
                other => {
                    return Err(graph::error(
                        400,
                        "RequestBodyRead",
                        &format!("The property '{other}' does not exist on type 'microsoft.graph.message' or is not writable."),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The MIME of the draft (with Bcc: the sender's copy keeps it).
    pub fn build(&self, include_bcc: bool) -> Vec<u8> {
        use mail_builder::headers::address::Address;
        use mail_builder::mime::BodyPart;
        fn one(p: &Person) -> Address<'_> {
            Address::new_address(
                Some(p.name.as_str()).filter(|n| !n.is_empty()),
                p.address.as_str(),
            )
        }
        fn list(l: &[Person]) -> Address<'_> {
            Address::new_list(l.iter().map(one).collect())
        }
        let mut b = mail_builder::MessageBuilder::new()
            .message_id(self.message_id.as_str())
            .date(self.date.div_euclid(1000))
            .from(one(&self.from))
            .subject(self.subject.as_str());
        if !self.to.is_empty() {
            b = b.to(list(&self.to));
        }
        if !self.cc.is_empty() {
            b = b.cc(list(&self.cc));
        }
        if include_bcc && !self.bcc.is_empty() {
            b = b.bcc(list(&self.bcc));
        }
        if !self.reply_to.is_empty() {
            b = b.reply_to(list(&self.reply_to));
        }
        if let Some(irt) = &self.in_reply_to {
            b = b.in_reply_to(irt.as_str());
        }
        if !self.references.is_empty() {
            b = b.references(
                self.references
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>(),
            );
        }
        if self.html {
            b = b
                .html_body(self.body.as_str())
                .text_body(mime::html_text(&self.body));
        } else {
            b = b.text_body(self.body.as_str());
        }
        for f in &self.files {
            let bytes = BodyPart::Binary(Cow::Borrowed(f.bytes.as_slice()));
            b = match &f.content_id {
                Some(cid) => b.inline(f.content_type.as_str(), cid.as_str(), bytes),
                None => b.attachment(f.content_type.as_str(), f.name.as_str(), bytes),
            };
        }
        b.write_to_vec().unwrap_or_default()
    }

    fn has_recipients(&self) -> bool {
        !(self.to.is_empty() && self.cc.is_empty() && self.bcc.is_empty())
    }
}

fn recipients(field: &str, v: &Value) -> Result<Vec<Person>, HttpResponse> {
    let bad = || {
        graph::error(
            400,
            "ErrorInvalidRecipients",
            &format!("{field}: at least one recipient is not valid."),
        )
    };
    let Some(list) = v.as_array() else {
        return Err(bad());
    };
    list.iter()
        .map(|r| {
            let a = &r["emailAddress"];
            let address = a["address"].as_str().unwrap_or_default().trim();
            if !address.contains('@') {
                return Err(bad());
            }
            Ok(Person {
                name: a["name"].as_str().unwrap_or_default().to_string(),
                address: address.to_string(),
            })
        })
        .collect()
}

fn file_attachment(a: &Value) -> Result<DraftFile, HttpResponse> {
    if a["@odata.type"].as_str() != Some("#microsoft.graph.fileAttachment") {
        return Err(graph::bad_request(
            "The sandbox takes #microsoft.graph.fileAttachment attachments only.",
        ));
    }
    let name = a["name"].as_str().unwrap_or("attachment").to_string();
    let bytes = a["contentBytes"]
        .as_str()
        .and_then(decode_any)
        .ok_or_else(|| graph::bad_request("contentBytes must be base64."))?;
    if bytes.len() > GRAPH_MAX_INLINE_ATTACHMENT {
        return Err(graph::error(
            413,
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            "Attachments of 3 MB and more need an upload session (attachments/createUploadSession).",
        ));
    }
    let inline = a["isInline"].as_bool().unwrap_or(false);
    Ok(DraftFile {
        name,
        content_type: a["contentType"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_string(),
        bytes,
        content_id: a["contentId"]
            .as_str()
            .filter(|_| inline)
            .map(|c| c.trim_matches(['<', '>']).to_string()),
    })
}

fn has_mail_send(req: &HttpRequest, data: &Shared) -> bool {
    let state = data.state();
    bearer(req)
        .and_then(|t| state.find(Provider::Microsoft, Kind::Access, t))
        .is_some_and(|t| {
            t.scope.split_whitespace().any(|x| {
                x.rsplit('/')
                    .next()
                    .is_some_and(|x| x.eq_ignore_ascii_case("Mail.Send"))
            })
        })
}

fn graph_sender(req: &HttpRequest, data: &Shared) -> Result<&'static Mailbox, HttpResponse> {
    let mailbox = graph::owner(req, data, false)?;
    if !has_mail_send(req, data) {
        return Err(graph::error(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    Ok(mailbox)
}

fn too_large() -> HttpResponse {
    graph::error(
        413,
        "RequestEntityTooLarge",
        "The request body is larger than 4 MB.",
    )
}

/// A JSON object body (4 MB at most).
fn graph_object(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    if body.len() > GRAPH_MAX_REQUEST {
        return Err(too_large());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(graph::error(
            400,
            "RequestBodyRead",
            "Cannot read the request body: it is not a JSON object.",
        )),
    }
}

/// An action parameter (OData names them case-insensitively).
fn param<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn accepted() -> HttpResponse {
    HttpResponse::Accepted().finish()
}

fn graph_accept(
    data: &Shared,
    mailbox: &'static Mailbox,
    raw: Vec<u8>,
    thread: Option<String>,
    api: &str,
) -> HttpResponse {
    let mut state = data.state();
    if let Err(res) = super::quota::admit(&mut state, mailbox) {
        return res;
    }
    match accept(&mut state, mailbox, raw, thread, api) {
        Ok(_) => accepted(),
        Err(e) => graph::error(400, "ErrorInvalidRecipients", &e),
    }
}

async fn graph_send_mail(
    req: HttpRequest,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match graph_sender(&req, &data) {
        Ok(m) => m,
        Err(res) => return res,
    };
    if body.len() > GRAPH_MAX_REQUEST {
        return too_large();
    }
    let content_type = super::header(&req, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("text/plain") {
        let Some(raw) = std::str::from_utf8(&body).ok().and_then(decode_any) else {
            return graph::bad_request("The MIME content must be base64.");
        };
        if mime::parse(&raw).is_none() {
            return graph::bad_request("The MIME content is not a message.");
        }
        return graph_accept(&data, mailbox, raw, None, "graph.sendMail.mime");
    }
    let m = match graph_object(&body) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let Some(Value::Object(message)) = param(&m, "message") else {
        return graph::bad_request("The message parameter is required.");
    };
    let mut model = DraftModel::new(mailbox);
    if let Err(res) = model.apply(message) {
        return res;
    }
    if !model.has_recipients() {
        return graph::error(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid.",
        );
    }
    graph_accept(
        &data,
        mailbox,
        model.build(true),
        None,
        "graph.sendMail.json",
    )
}

/// Stores a new draft (in the Drafts folder, in `thread` when given) and answers it.
fn store_draft(
    req: &HttpRequest,
    data: &Shared,
    mailbox: &'static Mailbox,
    model: DraftModel,
    thread: Option<String>,
) -> HttpResponse {
    let mut state = data.state();
    let store = state.store(mailbox);
    let new = NewMessage {
        raw: model.build(true),
        folder: "drafts".into(),
        unread: false,
        starred: false,
        received_at: model.date,
        thread_of: None,
        labels: Vec::new(),
    };
    match store.insert_in_thread(new, thread) {
        Ok(id) => {
            store.graph_drafts.insert(id.clone(), model);
            match store.get(&id) {
                Some(m) => json_response(
                    201,
                    graph::message_json(m, None, graph::prefer(req).immutable),
                ),
                None => graph::not_found(),
            }
        }
        Err(StoreError::Invalid(m)) => graph::bad_request(&m),
        Err(StoreError::NotFound) => graph::not_found(),
    }
}

async fn graph_create_draft(
    req: HttpRequest,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match graph::owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let m = match graph_object(&body) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut model = DraftModel::new(mailbox);
    if let Err(res) = model.apply(&m) {
        return res;
    }
    store_draft(&req, &data, mailbox, model, None)
}

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Reply,
    ReplyAll,
    Forward,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn people(list: &[Person]) -> String {
    list.iter()
        .map(|p| {
            if p.name.is_empty() {
                p.address.clone()
            } else {
                format!("{} &lt;{}&gt;", escape(&p.name), escape(&p.address))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The draft Exchange makes for a reply or forward of `source`: threading headers, recipients,
/// `RE:`/`FW:` subject, the original quoted below a rule, and (forward) its attachments.
fn answer_model(owner: &'static Mailbox, source: &Msg, kind: Answer) -> DraftModel {
    let s = &source.summary;
    let mut model = DraftModel::new(owner);
    let me = |p: &Person| p.address.eq_ignore_ascii_case(owner.email);
    match kind {
        Answer::Forward => {}
        Answer::Reply | Answer::ReplyAll => {
            let primary: Vec<Person> = if !s.reply_to.is_empty() {
                s.reply_to.clone()
            } else {
                s.from.iter().cloned().collect()
            };
            let mut to: Vec<Person> = primary;
            if kind == Answer::ReplyAll {
                to.extend(s.to.iter().filter(|p| !me(p)).cloned());
                model.cc = s.cc.iter().filter(|p| !me(p)).cloned().collect();
            }
            let mut seen = Vec::new();
            to.retain(|p| {
                let k = p.address.to_ascii_lowercase();
                let fresh = !seen.contains(&k);
                seen.push(k);
                fresh
            });
            model.to = to;
        }
    }
    let prefix = if kind == Answer::Forward {
        "FW: "
    } else {
        "RE: "
    };
    model.subject = if s.subject.to_ascii_uppercase().starts_with(prefix) {
        s.subject.clone()
    } else {
        format!("{prefix}{}", s.subject)
    };
    if let Some(mid) = &s.message_id {
        model.in_reply_to = Some(mid.clone());
        model.references = s.references.clone();
        model.references.push(mid.clone());
    }
    let (is_html, original) = mime::body(&source.raw);
    let original = if is_html {
        original
    } else {
        escape(&original).replace('\n', "<br>")
    };
    model.body = format!(
        "<html><body><div><br></div><hr style=\"display:inline-block;width:98%\" tabindex=\"-1\"><div id=\"divRplyFwdMsg\" dir=\"ltr\"><b>From:</b> {}<br><b>Sent:</b> {}<br><b>To:</b> {}<br><b>Subject:</b> {}</div><div>{original}</div></body></html>",
        s.from.as_ref().map(|p| people(std::slice::from_ref(p))).unwrap_or_default(),
        iso(s.date.unwrap_or(source.received_at)),
        people(&s.to),
        escape(&s.subject),
    );
    if kind == Answer::Forward {
        model.files = mime::attachments(&source.raw)
            .into_iter()
            .map(|a| DraftFile {
                name: if a.filename.is_empty() {
                    "attachment".into()
                } else {
                    a.filename
                },
                content_type: a.content_type,
                bytes: a.data,
                content_id: a.content_id.filter(|_| a.inline),
            })
            .collect();
    }
    model
}

async fn graph_answer(
    req: HttpRequest,
    id: String,
    body: web::Bytes,
    data: web::Data<Shared>,
    kind: Answer,
) -> HttpResponse {
    let mailbox = match graph::owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let params = match graph_object(&body) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let (mut model, thread) = {
        let mut state = data.state();
        let store = state.store(mailbox);
        let Some(source) = store.get(&id) else {
            return graph::not_found();
        };
        (
            answer_model(mailbox, source, kind),
            source.thread_id.clone(),
        )
    };
    let comment = param(&params, "comment").and_then(Value::as_str);
    if let Some(Value::Object(message)) = param(&params, "message") {
        if comment.is_some() && message.contains_key("body") {
            return graph::bad_request(
                "Specify either a comment or the body of the message, not both.",
            );
        }
        if let Err(res) = model.apply(message) {
            return res;
        }
    }
    if kind == Answer::Forward {
        if let Some(to) = param(&params, "toRecipients") {
            match recipients("toRecipients", to) {
                Ok(list) => model.to = list,
                Err(res) => return res,
            }
        }
    }
    if let Some(c) = comment {
        model.body = format!("<div>{}</div>{}", escape(c), model.body);
    }
    store_draft(&req, &data, mailbox, model, Some(thread))
}

async fn graph_create_reply(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    graph_answer(req, id.into_inner(), body, data, Answer::Reply).await
}

async fn graph_create_reply_all(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    graph_answer(req, id.into_inner(), body, data, Answer::ReplyAll).await
}

async fn graph_create_forward(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    graph_answer(req, id.into_inner(), body, data, Answer::Forward).await
}

/// `PATCH /me/messages/{id}` on a draft: its content and flags. `None` when `id` is not a draft
/// of this mailbox (the caller answers as for any message).
pub(crate) fn patch_draft(
    req: &HttpRequest,
    mailbox: &'static Mailbox,
    id: &str,
    fields: &Map<String, Value>,
    data: &Shared,
) -> Option<HttpResponse> {
    let mut state = data.state();
    let store = state.store(mailbox);
    let msg_id = store.get(id)?.id.clone();
    let mut model = store.graph_drafts.get(&msg_id)?.clone();
    let content: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| !graph::WRITABLE.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Err(res) = model.apply(&content) {
        return Some(res);
    }
    let is_read = fields.get("isRead").and_then(Value::as_bool);
    let categories = fields.get("categories").and_then(|c| {
        c.as_array().map(|l| {
            l.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
    });
    let flag = fields
        .get("flag")
        .and_then(|f| f["flagStatus"].as_str())
        .map(str::to_string);
    if !content.is_empty() {
        if let Err(e) = store.replace_raw(&msg_id, model.build(true)) {
            return Some(match e {
                StoreError::NotFound => graph::not_found(),
                StoreError::Invalid(m) => graph::bad_request(&m),
            });
        }
        store.graph_drafts.insert(msg_id.clone(), model);
    }
    if let Err(e) = store.graph_update(&msg_id, is_read, flag, categories) {
        return Some(match e {
            StoreError::NotFound => graph::not_found(),
            StoreError::Invalid(m) => graph::bad_request(&m),
        });
    }
    store.get(&msg_id).map(|m| {
        json_response(
            200,
            graph::message_json(m, None, graph::prefer(req).immutable),
        )
    })
}

async fn graph_send_draft(
    req: HttpRequest,
    id: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match graph_sender(&req, &data) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    if let Err(res) = super::quota::admit(&mut state, mailbox) {
        return res;
    }
    let store = state.store(mailbox);
    let Some((msg_id, thread)) = store.get(&id).map(|m| (m.id.clone(), m.thread_id.clone())) else {
        return graph::not_found();
    };
    let Some(model) = store.graph_drafts.get(&msg_id).cloned() else {
        return graph::bad_request("Only a draft can be sent.");
    };
    if !model.has_recipients() {
        return graph::error(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid.",
        );
    }
    store.graph_drafts.remove(&msg_id);
    let _ = store.delete(&msg_id);
    match accept(
        &mut state,
        mailbox,
        model.build(true),
        Some(thread),
        "graph.messages.send",
    ) {
        Ok(_) => accepted(),
        Err(e) => graph::error(400, "ErrorInvalidRecipients", &e),
    }
}

/// The draft model of message `id` of `mailbox`, its immutable id, or the answer why not.
fn draft_of(
    state: &mut State,
    mailbox: &'static Mailbox,
    id: &str,
) -> Result<(String, DraftModel), HttpResponse> {
    let store = state.store(mailbox);
    let msg_id = store
        .get(id)
        .map(|m| m.id.clone())
        .ok_or_else(graph::not_found)?;
    let model = store
        .graph_drafts
        .get(&msg_id)
        .cloned()
        .ok_or_else(|| graph::bad_request("Attachments can be added to drafts only."))?;
    Ok((msg_id, model))
}

/// Adds a file to a draft and answers the attachment as Graph lists it.
fn add_file(
    state: &mut State,
    mailbox: &'static Mailbox,
    msg_id: &str,
    mut model: DraftModel,
    file: DraftFile,
) -> Result<Value, HttpResponse> {
    let (name, cid) = (file.name.clone(), file.content_id.clone());
    model.files.push(file);
    let store = state.store(mailbox);
    store
        .replace_raw(msg_id, model.build(true))
        .map_err(|_| graph::not_found())?;
    store.graph_drafts.insert(msg_id.to_string(), model);
    let m = store.get(msg_id).ok_or_else(graph::not_found)?;
    let found = mime::attachments(&m.raw)
        .into_iter()
        .rev()
        .find(|a| match &cid {
            Some(c) => a.content_id.as_deref() == Some(c.as_str()),
            None => a.filename == name,
        })
        .ok_or_else(graph::not_found)?;
    Ok(graph::attachment_json(m, &found, false))
}

async fn graph_add_attachment(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match graph::owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let a = match graph_object(&body) {
        Ok(m) => Value::Object(m),
        Err(res) => return res,
    };
    let file = match file_attachment(&a) {
        Ok(f) => f,
        Err(res) => return res,
    };
    let mut state = data.state();
    let (msg_id, model) = match draft_of(&mut state, mailbox, &id) {
        Ok(x) => x,
        Err(res) => return res,
    };
    match add_file(&mut state, mailbox, &msg_id, model, file) {
        Ok(v) => json_response(201, v),
        Err(res) => res,
    }
}

/// A file being uploaded to a draft in ranges.
pub(crate) struct UploadSession {
    email: &'static str,
    message_id: String,
    file: DraftFile,
    size: usize,
    expires_at: i64,
}

async fn graph_create_upload_session(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match graph::owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let params = match graph_object(&body) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let Some(Value::Object(item)) = param(&params, "AttachmentItem") else {
        return graph::bad_request("The AttachmentItem parameter is required.");
    };
    let item = |k: &str| param(item, k);
    if item("attachmentType").and_then(Value::as_str) != Some("file") {
        return graph::bad_request("attachmentType must be file.");
    }
    let Some(size) = item("size").and_then(Value::as_u64).map(|s| s as usize) else {
        return graph::bad_request("size is required.");
    };
    if size == 0 || size > GRAPH_MAX_ATTACHMENT {
        return graph::bad_request("size must be between 1 byte and 150 MB.");
    }
    let inline = item("isInline").and_then(Value::as_bool).unwrap_or(false);
    let file = DraftFile {
        name: item("name")
            .and_then(Value::as_str)
            .unwrap_or("attachment")
            .to_string(),
        content_type: item("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_string(),
        bytes: Vec::with_capacity(size),
        content_id: item("contentId")
            .and_then(Value::as_str)
            .filter(|_| inline)
            .map(|c| c.trim_matches(['<', '>']).to_string()),
    };
    let mut state = data.state();
    let msg_id = match draft_of(&mut state, mailbox, &id) {
        Ok((msg_id, _)) => msg_id,
        Err(res) => return res,
    };
    let token = super::random_string(48);
    let expires_at = now_ms() + 3600 * 1000;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let info = req.connection_info();
    let upload_url = format!(
        "{}://{}/microsoft/api/v2.0/Users('{}@{}')/Messages('{}')/AttachmentSessions('{}')?authtoken={token}",
        info.scheme(),
        info.host(),
        mailbox.id,
        super::MS_TENANT_ID,
        enc(&msg_id),
        super::random_string(16),
    );
    state.upload_sessions.insert(
        token,
        UploadSession {
            email: mailbox.email,
            message_id: msg_id,
            file,
            size,
            expires_at,
        },
    );
    json_response(
        201,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": upload_url,
            "expirationDateTime": iso(expires_at),
            "nextExpectedRanges": ["0-"],
        }),
    )
}

/// `bytes {first}-{last}/{total}`.
fn content_range(v: &str) -> Option<(usize, usize, usize)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `PUT` of one range to a pre-authenticated upload URL (no bearer: the URL carries the
/// authorisation, and a bearer is refused).
async fn graph_upload_chunk(
    req: HttpRequest,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    if super::header(&req, "authorization").is_some() {
        return graph::error(
            401,
            "InvalidAuthenticationToken",
            "The upload URL is pre-authenticated: send no Authorization header.",
        );
    }
    let Some(token) = query(&req).remove("authtoken") else {
        return graph::error(401, "InvalidAuthenticationToken", "No authtoken.");
    };
    let mut state = data.state();
    let Some(session) = state.upload_sessions.get_mut(&token) else {
        return graph::not_found();
    };
    if session.expires_at < now_ms() {
        state.upload_sessions.remove(&token);
        return graph::not_found();
    }
    let Some((first, last, total)) = super::header(&req, "content-range").and_then(content_range)
    else {
        return graph::bad_request("Content-Range (bytes first-last/total) is required.");
    };
    if body.len() > GRAPH_MAX_CHUNK {
        return graph::error(
            413,
            "RequestEntityTooLarge",
            "A range carries at most 4 MB.",
        );
    }
    let received = session.file.bytes.len();
    if total != session.size || first != received || last + 1 != first + body.len() || last >= total
    {
        return json_response(
            416,
            json!({
                "error": {"code": "InvalidRange", "message": format!("Expected the range starting at {received} of {}.", session.size)},
            }),
        );
    }
    session.file.bytes.extend_from_slice(&body);
    if session.file.bytes.len() < session.size {
        let next = session.file.bytes.len();
        let expires = session.expires_at;
        return json_response(
            200,
            json!({ "expirationDateTime": iso(expires), "nextExpectedRanges": [format!("{next}")] }),
        );
    }
    let Some(done) = state.upload_sessions.remove(&token) else {
        return graph::not_found();
    };
    let Some(mailbox) = MAILBOXES.iter().find(|m| m.email == done.email) else {
        return graph::not_found();
    };
    let (msg_id, model) = match draft_of(&mut state, mailbox, &done.message_id) {
        Ok(x) => x,
        Err(res) => return res,
    };
    match add_file(&mut state, mailbox, &msg_id, model, done.file) {
        Ok(v) => {
            let mut res = HttpResponse::Created().finish();
            let location = format!(
                "{}/messages/{}/attachments/{}",
                graph::base_url(&req),
                url::form_urlencoded::byte_serialize(msg_id.as_bytes()).collect::<String>(),
                v["id"].as_str().unwrap_or_default()
            );
            if let Ok(h) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(LOCATION, h);
            }
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        Err(res) => res,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_goes_with_its_folded_lines_and_nothing_else() {
        let raw = b"From: a@x.test\r\nBcc: b@x.test,\r\n c@x.test\r\nSubject: s\r\n\r\nBcc: in the body\r\n";
        assert_eq!(
            strip_bcc(raw),
            b"From: a@x.test\r\nSubject: s\r\n\r\nBcc: in the body\r\n".to_vec()
        );
    }

    #[test]
    fn multipart_parts_come_back_exactly() {
        let body = b"--b1\r\nContent-Type: application/json\r\n\r\n{\"threadId\":\"t\"}\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: a\r\n\r\nx\r\n\r\n--b1--\r\n";
        let parts = split_multipart(body, "b1").expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, b"{\"threadId\":\"t\"}");
        assert_eq!(parts[1].1, b"From: a\r\n\r\nx\r\n");
        assert_eq!(parts[1].0[0].1, "message/rfc822");
        assert_eq!(content_range("bytes 0-9/20"), Some((0, 9, 20)));
    }
}
