//! Control endpoints for the seeded mailboxes, under `/__sandbox/mailboxes/{email}`: generate
//! and insert mail, look at a mailbox as the provider holds it, change or delete messages as
//! another client of the provider would (logged for history and delta), add folders, expire
//! every sync cursor. Not part of any real provider; documented in docs/sandbox.md.

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::mime::{self, encode_words, mailbox_header, rfc2822_date, Charset, Cte, Part};
use super::store::{Msg, NewMessage, Patch, Store, StoreError};
use super::{json_response, Mailbox, Shared, MAILBOXES};

pub(crate) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .route("/mailboxes/{email}", web::get().to(show))
        .route("/mailboxes/{email}/generate", web::post().to(generate))
        .route("/mailboxes/{email}/messages", web::post().to(insert))
        .route(
            "/mailboxes/{email}/messages/{id}",
            web::get().to(show_message),
        )
        .route("/mailboxes/{email}/messages/{id}", web::patch().to(patch))
        .route("/mailboxes/{email}/messages/{id}", web::delete().to(delete))
        .route("/mailboxes/{email}/folders", web::post().to(create_folder))
        .route("/mailboxes/{email}/expire-cursors", web::post().to(expire))
}

fn bad(message: impl Into<String>) -> HttpResponse {
    json_response(400, json!({ "error": message.into() }))
}

fn mailbox(email: &str) -> Result<&'static Mailbox, HttpResponse> {
    MAILBOXES
        .iter()
        .find(|m| m.email.eq_ignore_ascii_case(email.trim()))
        .ok_or_else(|| {
            json_response(
                404,
                json!({ "error": format!("no seeded mailbox {email}") }),
            )
        })
}

fn store_error(e: StoreError) -> HttpResponse {
    match e {
        StoreError::NotFound => json_response(404, json!({ "error": "no such message" })),
        StoreError::Invalid(m) => bad(m),
    }
}

/// An empty body counts as `{}`; unknown fields are refused.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, HttpResponse> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn item(store: &Store, m: &Msg) -> Value {
    let mut v = json!({
        "id": m.id,
        "threadId": m.thread_id,
        "folder": store.control_folder(m),
        "unread": store.unread(m),
        "starred": store.starred(m),
        "labels": store.user_labels(m),
        "subject": m.summary.subject,
        "messageIdHeader": m.summary.message_id.as_ref().map(|id| format!("<{id}>")),
        "receivedAt": iso(m.received_at),
    });
    label_view(store, m, &mut v);
    v
}

/// Labels by name (`labelNames`: Gmail user labels / Outlook categories), Outlook's
/// `categories` and its follow-up `flag` (dates in UTC).
fn label_view(store: &Store, m: &Msg, v: &mut Value) {
    match store.provider {
        super::Provider::Google => {
            v["labelNames"] = json!(store.user_label_names(m));
            v["categories"] = json!([]);
            v["flag"] = Value::Null;
        }
        super::Provider::Microsoft => {
            v["labelNames"] = json!(m.categories);
            v["categories"] = json!(m.categories);
            let date = |d: &Option<Value>| {
                d.as_ref()
                    .and_then(|d| d.get("dateTime"))
                    .and_then(Value::as_str)
                    .and_then(|t| {
                        chrono::NaiveDateTime::parse_from_str(
                            t.trim_end_matches('Z'),
                            "%Y-%m-%dT%H:%M:%S%.f",
                        )
                        .ok()
                    })
                    .map(|d| iso(d.and_utc().timestamp_millis()))
            };
            v["flag"] = json!({
                "status": m.flag,
                "startAt": date(&m.flag_dates.start),
                "dueAt": date(&m.flag_dates.due),
                "completedAt": date(&m.flag_dates.completed),
            });
        }
    }
}

async fn show(email: web::Path<String>, data: web::Data<Shared>) -> HttpResponse {
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let messages: Vec<Value> = store
        .ordered()
        .into_iter()
        .map(|m| item(store, m))
        .collect();
    let folders: Vec<Value> = store
        .folders
        .iter()
        .map(|f| json!({ "id": f.id, "name": f.name }))
        .collect();
    // Gmail user labels with colour and visibility; Outlook's master categories.
    let labels: Vec<Value> = store
        .folders
        .iter()
        .filter(|f| !f.system && mailbox.provider == super::Provider::Google)
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "color": f.props.color.as_ref().map(|(bg, text)| json!({"backgroundColor": bg, "textColor": text})),
                "labelListVisibility": f.props.label_list_visibility,
                "messageListVisibility": f.props.message_list_visibility,
            })
        })
        .collect();
    let categories: Vec<Value> = store
        .categories
        .iter()
        .map(|c| json!({ "id": c.id, "displayName": c.display_name, "color": c.color }))
        .collect();
    json_response(
        200,
        json!({
            "provider": mailbox.provider,
            "messages": messages,
            "folders": folders,
            "labels": labels,
            "categories": categories,
        }),
    )
}

async fn show_message(path: web::Path<(String, String)>, data: web::Data<Shared>) -> HttpResponse {
    let (email, id) = path.into_inner();
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match store.get(&id) {
        Some(m) => {
            let mut v = item(store, m);
            v["raw"] = json!(base64::engine::general_purpose::STANDARD.encode(&m.raw));
            json_response(200, v)
        }
        None => store_error(StoreError::NotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    count: usize,
    seed: u64,
    days: Option<u32>,
}

async fn generate(
    email: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let spec: GenerateBody = match parse(&body) {
        Ok(s) => s,
        Err(res) => return res,
    };
    if spec.count == 0 || spec.count > 100_000 {
        return bad("count must be between 1 and 100000");
    }
    let days = spec.days.unwrap_or(14);
    if days == 0 || days > 3650 {
        return bad("days must be between 1 and 3650");
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut state = data.state();
    let store = state.store(mailbox);
    match super::generate::generate(store, spec.count, spec.seed, days, now) {
        Ok(ids) => json_response(200, json!({ "ids": ids })),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AttachmentBody {
    filename: String,
    content_type: String,
    data: String,
    content_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InsertBody {
    raw: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
    cc: Option<Vec<String>>,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    attachments: Option<Vec<AttachmentBody>>,
    in_reply_to: Option<String>,
    folder: Option<String>,
    unread: Option<bool>,
    starred: Option<bool>,
    received_at: Option<String>,
    /// Gmail user label names / Outlook categories.
    labels: Option<Vec<String>>,
}

fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, HttpResponse> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let trimmed = clean.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| bad(format!("{field} is not base64")))
}

/// `Name <address>` or a bare address.
fn person(text: &str) -> (String, String) {
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => (
            text[..open].trim().trim_matches('"').to_string(),
            text[open + 1..close].trim().to_string(),
        ),
        _ => (String::new(), text.trim().to_string()),
    }
}

fn address_list(list: &[String]) -> String {
    list.iter()
        .map(|p| {
            let (name, address) = person(p);
            mailbox_header(&name, &address, Charset::Utf8, true)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the MIME of a structured insert: text and/or HTML, inline images in
/// multipart/related, attachments in multipart/mixed, threading headers from the parent.
fn compose(
    b: &InsertBody,
    store: &Store,
    received_at: i64,
) -> Result<(Vec<u8>, Option<String>), HttpResponse> {
    let from = b
        .from
        .as_deref()
        .ok_or_else(|| bad("from (or raw) is required"))?;
    let (from_name, from_address) = person(from);
    if !from_address.contains('@') {
        return Err(bad("from must be an address"));
    }
    let to = b.to.clone().unwrap_or_default();
    let subject = b.subject.clone().unwrap_or_default();
    let text = b.text.as_deref();
    let html = b.html.as_deref();
    let body = match (text, html) {
        (Some(t), Some(h)) => Part::multipart(
            "alternative",
            "sandbox-alt".into(),
            vec![
                Part::text("plain", t, Charset::Utf8, Cte::QuotedPrintable),
                Part::text("html", h, Charset::Utf8, Cte::QuotedPrintable),
            ],
        ),
        (None, Some(h)) => Part::text("html", h, Charset::Utf8, Cte::QuotedPrintable),
        (t, None) => Part::text(
            "plain",
            t.unwrap_or_default(),
            Charset::Utf8,
            Cte::QuotedPrintable,
        ),
    };
    let mut inline = Vec::new();
    let mut attached = Vec::new();
    for a in b.attachments.iter().flatten() {
        let data = decode_base64("attachments[].data", &a.data)?;
        let part = Part::binary(
            &a.content_type,
            &data,
            Some(&a.filename),
            a.content_id.as_deref(),
        );
        if a.content_id.is_some() {
            inline.push(part);
        } else {
            attached.push(part);
        }
    }
    let mut root = body;
    if !inline.is_empty() {
        let mut parts = vec![root];
        parts.extend(inline);
        root = Part::multipart("related", "sandbox-rel".into(), parts);
    }
    if !attached.is_empty() {
        let mut parts = vec![root];
        parts.extend(attached);
        root = Part::multipart("mixed", "sandbox-mix".into(), parts);
    }
    let domain = from_address.split('@').nth(1).unwrap_or("sandbox.test");
    let mut headers: Vec<(&str, String)> = vec![
        (
            "From",
            mailbox_header(&from_name, &from_address, Charset::Utf8, true),
        ),
        ("To", address_list(&to)),
    ];
    if let Some(cc) = b.cc.as_deref().filter(|cc| !cc.is_empty()) {
        headers.push(("Cc", address_list(cc)));
    }
    headers.extend([
        ("Subject", encode_words(&subject, Charset::Utf8, true)),
        ("Date", rfc2822_date(received_at)),
        (
            "Message-ID",
            format!(
                "<sandbox.{}.{}@{domain}>",
                store.next_seq(),
                super::random_string(8)
            ),
        ),
    ]);
    let mut thread_of = None;
    if let Some(parent) = &b.in_reply_to {
        let Some(p) = store.get(parent) else {
            return Err(bad(format!(
                "inReplyTo: no message {parent:?} in this mailbox"
            )));
        };
        if let Some(mid) = &p.summary.message_id {
            let mut refs: Vec<String> = p
                .summary
                .references
                .iter()
                .map(|r| format!("<{r}>"))
                .collect();
            refs.push(format!("<{mid}>"));
            headers.push(("In-Reply-To", format!("<{mid}>")));
            headers.push(("References", refs.join(" ")));
        }
        thread_of = Some(p.id.clone());
    }
    Ok((mime::message(&headers, &root), thread_of))
}

async fn insert(
    email: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let b: InsertBody = match parse(&body) {
        Ok(b) => b,
        Err(res) => return res,
    };
    let received_at = match &b.received_at {
        None => chrono::Utc::now().timestamp_millis(),
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(d) => d.timestamp_millis(),
            Err(_) => return bad("receivedAt must be an ISO 8601 date-time"),
        },
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let (raw, thread_of) = match &b.raw {
        Some(raw) => {
            let structured = b.from.is_some()
                || b.to.is_some()
                || b.subject.is_some()
                || b.text.is_some()
                || b.html.is_some()
                || b.attachments.is_some();
            if structured {
                return bad("give either raw or the structured fields, not both");
            }
            match decode_base64("raw", raw) {
                Ok(bytes) if !bytes.is_empty() => (bytes, b.in_reply_to.clone()),
                Ok(_) => return bad("raw is empty"),
                Err(res) => return res,
            }
        }
        None => match compose(&b, store, received_at) {
            Ok(x) => x,
            Err(res) => return res,
        },
    };
    let new = NewMessage {
        raw,
        folder: b.folder.clone().unwrap_or_else(|| "inbox".into()),
        unread: b.unread.unwrap_or(true),
        starred: b.starred.unwrap_or(false),
        received_at,
        thread_of,
        labels: b.labels.clone().unwrap_or_default(),
    };
    match store.insert(new) {
        Ok(id) => {
            let thread = store.get(&id).map(|m| m.thread_id.clone());
            json_response(200, json!({ "id": id, "threadId": thread }))
        }
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    unread: Option<bool>,
    starred: Option<bool>,
    folder: Option<String>,
    labels: Option<Vec<String>>,
    /// Outlook: the message's categories (the same as `labels` there).
    categories: Option<Vec<String>>,
    /// Outlook: the follow-up flag.
    flag: Option<FlagBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FlagBody {
    /// `notFlagged`, `flagged` or `complete`.
    status: String,
    /// ISO 8601; a due date gets the same start date.
    due_at: Option<String>,
}

/// Graph's `dateTimeTimeZone` in UTC.
fn graph_utc(ms: i64) -> Value {
    let d = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    json!({ "dateTime": format!("{}.{:07}", d.format("%Y-%m-%dT%H:%M:%S"), d.timestamp_subsec_nanos() / 100), "timeZone": "UTC" })
}

fn flag_change(f: &FlagBody) -> Result<super::store::FlagPatch, HttpResponse> {
    if !["notFlagged", "flagged", "complete"].contains(&f.status.as_str()) {
        return Err(bad("flag.status must be notFlagged, flagged or complete"));
    }
    let due = match &f.due_at {
        None => None,
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(d) => Some(graph_utc(d.timestamp_millis())),
            Err(_) => return Err(bad("flag.dueAt must be an ISO 8601 date-time")),
        },
    };
    let now = graph_utc(chrono::Utc::now().timestamp_millis());
    Ok(super::store::FlagPatch {
        status: Some(f.status.clone()),
        start: Some(due.clone()),
        due: Some(due),
        completed: Some((f.status == "complete").then_some(now)),
    })
}

async fn patch(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (email, id) = path.into_inner();
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let b: PatchBody = match parse(&body) {
        Ok(b) => b,
        Err(res) => return res,
    };
    if mailbox.provider == super::Provider::Google && (b.categories.is_some() || b.flag.is_some()) {
        return bad("categories and flag are Outlook's; Gmail has labels and starred");
    }
    if b.labels.is_some() && b.categories.is_some() {
        return bad("give labels or categories, not both");
    }
    let flag = match b.flag.as_ref().map(flag_change).transpose() {
        Ok(f) => f,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let patch = Patch {
        unread: b.unread,
        starred: b.starred,
        folder: b.folder,
        labels: b.labels.or(b.categories),
    };
    let result = store
        .patch(&id, patch)
        .and_then(|()| flag.map_or(Ok(()), |f| store.graph_flag(&id, f)));
    match result {
        Ok(()) => match store.get(&id) {
            Some(m) => json_response(200, item(store, m)),
            None => store_error(StoreError::NotFound),
        },
        Err(e) => store_error(e),
    }
}

async fn delete(path: web::Path<(String, String)>, data: web::Data<Shared>) -> HttpResponse {
    let (email, id) = path.into_inner();
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    match data.state().store(mailbox).delete(&id) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderBody {
    name: String,
}

async fn create_folder(
    email: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let b: FolderBody = match parse(&body) {
        Ok(b) => b,
        Err(res) => return res,
    };
    let name = b.name.trim();
    if name.is_empty() || name.len() > 200 {
        return bad("name must be 1 to 200 characters");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    if let Some(existing) = store.user_folder(name, false) {
        return json_response(200, json!({ "id": existing }));
    }
    if store
        .folders
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(name))
    {
        return bad(format!("{name} is a system folder"));
    }
    let id = store.create_folder(name);
    json_response(201, json!({ "id": id }))
}

async fn expire(email: web::Path<String>, data: web::Data<Shared>) -> HttpResponse {
    let mailbox = match mailbox(&email) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    store.expire_cursors();
    json_response(
        200,
        json!({ "ok": true, "historyId": store.clock.to_string() }),
    )
}
