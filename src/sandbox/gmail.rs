//! The Gmail API v1 mail endpoints under `/google/gmail/v1/users/{userId}`: profile, messages
//! (list, get in every format, attachments, modify, batchModify, trash, untrash, delete,
//! batchDelete), history, labels and threads. Shapes follow `provider-specs/gmail-v1.json`.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::google::gmail_error;
use super::store::{Change, Msg, Store, StoreError, What};
use super::{bearer, json_response, Kind, Mailbox, Provider, Shared};

const BASE: &str = "/google/gmail/v1/users/{user}";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let r = |path: &str| format!("{BASE}{path}");
    // actix tries routes in order, one regex each: the route sync calls for every message
    // comes first (no GET route below shares its shape).
    cfg.route(&r("/messages/{id}"), web::get().to(get_message))
        .route("/google/batch/gmail/v1", web::post().to(batch))
        .route(&r("/profile"), web::get().to(profile))
        .route(&r("/messages"), web::get().to(list_messages))
        .route(&r("/messages/batchModify"), web::post().to(batch_modify))
        .route(&r("/messages/batchDelete"), web::post().to(batch_delete))
        .route(&r("/messages/{id}"), web::delete().to(delete_message))
        .route(&r("/messages/{id}/modify"), web::post().to(modify))
        .route(&r("/messages/{id}/trash"), web::post().to(trash))
        .route(&r("/messages/{id}/untrash"), web::post().to(untrash))
        .route(
            &r("/messages/{id}/attachments/{attachment}"),
            web::get().to(attachment),
        )
        .route(&r("/history"), web::get().to(history))
        .route(&r("/labels"), web::get().to(list_labels))
        .route(&r("/labels"), web::post().to(create_label))
        .route(&r("/labels/{id}"), web::get().to(get_label))
        .route(&r("/labels/{id}"), web::patch().to(patch_label))
        .route(&r("/labels/{id}"), web::put().to(put_label))
        .route(&r("/labels/{id}"), web::delete().to(delete_label))
        .route(&r("/threads"), web::get().to(list_threads))
        .route(&r("/threads/{id}"), web::get().to(get_thread));
}

// ---------------------------------------------------------------------------------------------
// Errors and access

pub(crate) fn error(code: u16, message: &str, reason: &str, status: &str) -> HttpResponse {
    json_response(code, gmail_error(code, message, reason, status))
}

pub(crate) fn not_found() -> HttpResponse {
    error(
        404,
        "Requested entity was not found.",
        "notFound",
        "NOT_FOUND",
    )
}

pub(crate) fn invalid(message: &str) -> HttpResponse {
    error(400, message, "invalidArgument", "INVALID_ARGUMENT")
}

fn store_error(e: StoreError) -> HttpResponse {
    match e {
        StoreError::NotFound => not_found(),
        StoreError::Invalid(m) => invalid(&m),
    }
}

pub(crate) fn unauthenticated() -> HttpResponse {
    let body = json!({ "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "errors": [{
            "message": "Invalid Credentials",
            "domain": "global",
            "reason": "authError",
            "location": "Authorization",
            "locationType": "header",
        }],
        "status": "UNAUTHENTICATED",
    }});
    let mut res = json_response(401, body);
    res.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        ),
    );
    res
}

/// What a call needs of the token's scopes.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Need {
    Read,
    Modify,
    /// Drafts: `gmail.compose` or more.
    Compose,
    /// `messages.send`, `drafts.send`: `gmail.send`, `gmail.compose` or more.
    Send,
    /// Permanent deletion: only the full `https://mail.google.com/` scope allows it.
    Delete,
}

fn granted(scope: &str, need: Need) -> bool {
    let has = |s: &str| scope.split_whitespace().any(|x| x == s);
    let full = has("https://mail.google.com/");
    let modify = has("https://www.googleapis.com/auth/gmail.modify");
    let read = has("https://www.googleapis.com/auth/gmail.readonly");
    let compose = has("https://www.googleapis.com/auth/gmail.compose");
    match need {
        Need::Read => full || modify || read,
        Need::Modify => full || modify,
        Need::Compose => full || modify || compose,
        Need::Send => {
            full || modify || compose || has("https://www.googleapis.com/auth/gmail.send")
        }
        Need::Delete => full,
    }
}

/// The mailbox behind the bearer token, when it is good, allows `need` and `user` is `me` or
/// the mailbox itself.
pub(crate) fn owner(
    req: &HttpRequest,
    data: &Shared,
    user: &str,
    need: Need,
) -> Result<&'static Mailbox, HttpResponse> {
    owner_of(bearer(req), data, user, need)
}

/// `owner` for a bearer token (a call inside a batch carries the batch's).
fn owner_of(
    token: Option<&str>,
    data: &Shared,
    user: &str,
    need: Need,
) -> Result<&'static Mailbox, HttpResponse> {
    let state = data.state();
    let Some(mailbox) = state.access_owner(Provider::Google, token) else {
        return Err(unauthenticated());
    };
    let scope = token
        .and_then(|t| state.find(Provider::Google, Kind::Access, t))
        .map(|t| t.scope.clone())
        .unwrap_or_default();
    if user != "me" && !user.eq_ignore_ascii_case(mailbox.email) {
        let message = format!("Delegation denied for {}", mailbox.email);
        return Err(error(403, &message, "forbidden", "PERMISSION_DENIED"));
    }
    if !granted(&scope, need) {
        return Err(json_response(
            403,
            json!({ "error": {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "errors": [{ "message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions" }],
                "status": "PERMISSION_DENIED",
            }}),
        ));
    }
    Ok(mailbox)
}

/// Query pairs in order, repeated names kept (`labelIds=A&labelIds=B`).
pub(crate) fn pairs(req: &HttpRequest) -> Vec<(String, String)> {
    pairs_of(req.query_string())
}

fn pairs_of(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn all<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(crate) fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn max_results(pairs: &[(String, String)]) -> Result<usize, HttpResponse> {
    match one(pairs, "maxResults") {
        None => Ok(100),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.clamp(1, 500))
            .map_err(|_| invalid(&format!("Invalid value at 'max_results' ({v})"))),
    }
}

fn flag(pairs: &[(String, String)], name: &str) -> bool {
    one(pairs, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A JSON body with Google's complaint for unknown fields or bad JSON.
fn body_as<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(body)
        .map_err(|e| invalid(&format!("Invalid JSON payload received. {e}")))
}

fn page_token(parts: &[&str]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.join("\n"))
}

fn read_token(token: &str) -> Option<Vec<String>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    Some(
        String::from_utf8(bytes)
            .ok()?
            .split('\n')
            .map(str::to_string)
            .collect(),
    )
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------
// Message resources

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn snippet(m: &Msg) -> String {
    escape(&m.summary.preview.chars().take(200).collect::<String>())
}

fn attachment_id(message: &str, part: &str) -> String {
    format!(
        "ANGjdJ{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{message}:{part}"))
    )
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Format {
    Minimal,
    Metadata,
    Full,
    Raw,
}

pub(crate) fn format_of(
    pairs: &[(String, String)],
    default: Format,
) -> Result<Format, HttpResponse> {
    match one(pairs, "format").map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("minimal") => Ok(Format::Minimal),
        Some("metadata") => Ok(Format::Metadata),
        Some("full") => Ok(Format::Full),
        Some("raw") => Ok(Format::Raw),
        Some(other) => Err(invalid(&format!(
            "Invalid value at 'format' (type.googleapis.com/google.apps.gmail.v1.Format), \"{other}\""
        ))),
    }
}

pub(crate) fn message_json(m: &Msg, format: Format, metadata_headers: &[String]) -> Value {
    let mut v = json!({
        "id": m.id,
        "threadId": m.thread_id,
        "labelIds": m.labels,
        "snippet": snippet(m),
        "sizeEstimate": m.raw.len(),
        "historyId": m.history_id.to_string(),
        "internalDate": m.received_at.to_string(),
    });
    match format {
        Format::Minimal => {}
        Format::Raw => {
            v["raw"] = json!(base64::engine::general_purpose::URL_SAFE.encode(&m.raw));
        }
        Format::Metadata => {
            let keep = |name: &str| {
                metadata_headers.is_empty()
                    || metadata_headers
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(name))
            };
            v["payload"] = super::mime::gmail_payload(&m.raw, Some(&keep), &|_| String::new());
        }
        Format::Full => {
            let id = m.id.clone();
            v["payload"] =
                super::mime::gmail_payload(&m.raw, None, &|part| attachment_id(&id, part));
        }
    }
    v
}

/// The history records' message stub: id, threadId and the labels after the change.
fn stub(c: &Change) -> Value {
    json!({ "id": c.id, "threadId": c.thread_id, "labelIds": c.labels })
}

// ---------------------------------------------------------------------------------------------
// Search (`q`), the part of Gmail's search box syntax a client of messages.list uses

#[derive(Default)]
struct Search {
    after: Option<i64>,
    before: Option<i64>,
    is: Vec<String>,
    within: Vec<String>,
    labels: Vec<String>,
    from: Vec<String>,
    to: Vec<String>,
    subject: Vec<String>,
    /// `rfc822msgid:` — the Message-ID header, with or without angle brackets.
    message_ids: Vec<String>,
    words: Vec<String>,
}

/// `after:`/`before:` take epoch seconds or a `yyyy/mm/dd` date (UTC here).
fn search_time(value: &str) -> Option<i64> {
    if let Ok(secs) = value.parse::<i64>() {
        return Some(secs * 1000);
    }
    let date = chrono::NaiveDate::parse_from_str(value, "%Y/%m/%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d"))
        .ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn relative(value: &str) -> Option<i64> {
    let (n, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: i64 = n.parse().ok()?;
    let day = 86_400_000;
    let span = match unit {
        "d" => n * day,
        "m" => n * 30 * day,
        "y" => n * 365 * day,
        _ => return None,
    };
    Some(chrono::Utc::now().timestamp_millis() - span)
}

fn parse_search(q: &str) -> Search {
    let mut s = Search::default();
    for term in q.split_whitespace() {
        let term = term.trim_matches('"');
        let Some((op, value)) = term.split_once(':') else {
            s.words.push(term.to_lowercase());
            continue;
        };
        let value = value.trim_matches('"').to_string();
        match op.to_ascii_lowercase().as_str() {
            "after" => s.after = search_time(&value).or(s.after),
            "before" => s.before = search_time(&value).or(s.before),
            "newer_than" => s.after = relative(&value).or(s.after),
            "older_than" => s.before = relative(&value).or(s.before),
            "is" => s.is.push(value.to_lowercase()),
            "in" => s.within.push(value.to_lowercase()),
            "label" => s.labels.push(value),
            "from" => s.from.push(value.to_lowercase()),
            "to" => s.to.push(value.to_lowercase()),
            "subject" => s.subject.push(value.to_lowercase()),
            "rfc822msgid" => s
                .message_ids
                .push(value.trim_matches(['<', '>']).to_string()),
            _ => s.words.push(term.to_lowercase()),
        }
    }
    s
}

struct Filter {
    search: Search,
    label_ids: Vec<String>,
    include_spam_trash: bool,
}

impl Filter {
    fn from(pairs: &[(String, String)]) -> Filter {
        Filter {
            search: parse_search(one(pairs, "q").unwrap_or_default()),
            label_ids: all(pairs, "labelIds")
                .into_iter()
                .map(str::to_string)
                .collect(),
            include_spam_trash: flag(pairs, "includeSpamTrash"),
        }
    }

    fn matches(&self, store: &Store, m: &Msg) -> bool {
        let has = |l: &str| m.labels.iter().any(|x| x.eq_ignore_ascii_case(l));
        let s = &self.search;
        let asks = |label: &str| {
            self.label_ids.iter().any(|l| l == label)
                || s.within.iter().any(|w| w.eq_ignore_ascii_case(label))
                || s.within.iter().any(|w| w == "anywhere")
        };
        if !self.include_spam_trash
            && ((has("SPAM") && !asks("SPAM")) || (has("TRASH") && !asks("TRASH")))
        {
            return false;
        }
        if !self.label_ids.iter().all(|l| has(l)) {
            return false;
        }
        if s.after.is_some_and(|a| m.received_at < a)
            || s.before.is_some_and(|b| m.received_at >= b)
        {
            return false;
        }
        let system = |w: &str| match w {
            "inbox" => Some("INBOX"),
            "sent" => Some("SENT"),
            "drafts" | "draft" => Some("DRAFT"),
            "spam" => Some("SPAM"),
            "trash" => Some("TRASH"),
            "starred" => Some("STARRED"),
            "unread" => Some("UNREAD"),
            "important" => Some("IMPORTANT"),
            _ => None,
        };
        for w in &s.within {
            if w != "anywhere" && !system(w).is_some_and(has) {
                return false;
            }
        }
        for is in &s.is {
            let ok = match is.as_str() {
                "read" => !has("UNREAD"),
                other => system(other).is_some_and(has),
            };
            if !ok {
                return false;
            }
        }
        for label in &s.labels {
            let id = store
                .folders
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(label) || f.id.eq_ignore_ascii_case(label))
                .map(|f| f.id.clone());
            if !id.is_some_and(|id| has(&id)) {
                return false;
            }
        }
        let sum = &m.summary;
        let person = |p: &super::mime::Person, q: &str| {
            p.address.to_lowercase().contains(q) || p.name.to_lowercase().contains(q)
        };
        if !s
            .from
            .iter()
            .all(|q| sum.from.as_ref().is_some_and(|p| person(p, q)))
        {
            return false;
        }
        if !s.to.iter().all(|q| sum.to.iter().any(|p| person(p, q))) {
            return false;
        }
        if !s
            .message_ids
            .iter()
            .all(|id| sum.message_id.as_deref() == Some(id.as_str()))
        {
            return false;
        }
        // Lower-cased only when asked for: this runs for every message on every list page.
        if s.subject.is_empty() && s.words.is_empty() {
            return true;
        }
        let subject = sum.subject.to_lowercase();
        if !s.subject.iter().all(|q| subject.contains(q.as_str())) {
            return false;
        }
        let text = sum.preview.to_lowercase();
        s.words
            .iter()
            .all(|w| subject.contains(w.as_str()) || text.contains(w.as_str()))
    }
}

/// Newest first, as Gmail lists: by internalDate, then id.
fn newer_first(a: &Msg, b: &Msg) -> std::cmp::Ordering {
    (b.received_at, &b.id).cmp(&(a.received_at, &a.id))
}

fn newest_first(list: &mut [&Msg]) {
    list.sort_by(|a, b| newer_first(a, b));
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn profile(
    req: HttpRequest,
    user: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    json_response(
        200,
        json!({
            "emailAddress": mailbox.email,
            "messagesTotal": store.len(),
            "threadsTotal": store.thread_count(),
            "historyId": store.clock.to_string(),
        }),
    )
}

async fn list_messages(
    req: HttpRequest,
    user: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let max = match max_results(&pairs) {
        Ok(n) => n,
        Err(res) => return res,
    };
    let filter = Filter::from(&pairs);
    // Newest first: the next page starts after the last one listed.
    let after = match one(&pairs, "pageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => match read_token(token).as_deref() {
            Some([received, id]) => Some((received.parse::<i64>().unwrap_or(i64::MAX), id.clone())),
            _ => return invalid("Invalid pageToken"),
        },
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    // One pass per page, no sort of the whole mailbox: a sandbox that costs O(n log n) a page
    // makes a large first sync quadratic, which real Gmail is not.
    let mut total = 0;
    let mut page: Vec<&Msg> = store
        .messages()
        .filter(|m| filter.matches(store, m))
        .inspect(|_| total += 1)
        .filter(|m| {
            after
                .as_ref()
                .is_none_or(|(r, id)| (m.received_at, m.id.as_str()) < (*r, id.as_str()))
        })
        .collect();
    let more = page.len() > max;
    if more {
        page.select_nth_unstable_by(max, |a, b| newer_first(a, b));
        page.truncate(max);
    }
    newest_first(&mut page);
    let mut body = json!({ "resultSizeEstimate": total });
    if !page.is_empty() {
        body["messages"] = page
            .iter()
            .map(|m| json!({ "id": m.id, "threadId": m.thread_id }))
            .collect();
    }
    if more {
        if let Some(last) = page.last() {
            body["nextPageToken"] = json!(page_token(&[&last.received_at.to_string(), &last.id]));
        }
    }
    json_response(200, body)
}

async fn get_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    message_get(&data, bearer(&req), &user, &id, req.query_string())
}

/// `messages.get`, alone or inside a batch.
fn message_get(
    data: &Shared,
    token: Option<&str>,
    user: &str,
    id: &str,
    query: &str,
) -> HttpResponse {
    let mailbox = match owner_of(token, data, user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs_of(query);
    let format = match format_of(&pairs, Format::Full) {
        Ok(f) => f,
        Err(res) => return res,
    };
    if !valid_id(id) {
        return invalid("Invalid id value");
    }
    let headers: Vec<String> = all(&pairs, "metadataHeaders")
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut state = data.state();
    let store = state.store(mailbox);
    match store.get(id) {
        Some(m) => json_response(200, message_json(m, format, &headers)),
        None => not_found(),
    }
}

async fn attachment(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id, attachment) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    if !valid_id(&id) {
        return invalid("Invalid id value");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    let Some(m) = store.get(&id) else {
        return not_found();
    };
    let found = super::mime::attachments(&m.raw)
        .into_iter()
        .find(|a| attachment_id(&m.id, &a.part_id) == attachment);
    match found {
        Some(a) => json_response(
            200,
            json!({
                "attachmentId": attachment,
                "size": a.data.len(),
                "data": base64::engine::general_purpose::URL_SAFE.encode(&a.data),
            }),
        ),
        None => invalid("Invalid attachment token"),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ModifyRequest {
    #[serde(default)]
    add_label_ids: Vec<String>,
    #[serde(default)]
    remove_label_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BatchModifyRequest {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    add_label_ids: Vec<String>,
    #[serde(default)]
    remove_label_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchDeleteRequest {
    #[serde(default)]
    ids: Vec<String>,
}

fn minimal(store: &Store, id: &str) -> HttpResponse {
    match store.get(id) {
        Some(m) => json_response(
            200,
            json!({ "id": m.id, "threadId": m.thread_id, "labelIds": m.labels }),
        ),
        None => not_found(),
    }
}

async fn modify(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Modify) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let request: ModifyRequest = match body_as(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    if !valid_id(&id) {
        return invalid("Invalid id value");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    if let Err(e) = store.modify_labels(&id, &request.add_label_ids, &request.remove_label_ids) {
        return store_error(e);
    }
    minimal(store, &id)
}

async fn batch_modify(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Modify) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let request: BatchModifyRequest = match body_as(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    if request.ids.is_empty() {
        return invalid("ids must not be empty");
    }
    if request.ids.len() > 1000 {
        return invalid("Too many ids: at most 1000 messages can be modified at once");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    // All or nothing: every id must exist before any label changes.
    if request.ids.iter().any(|id| store.get(id).is_none()) {
        return not_found();
    }
    for id in &request.ids {
        if let Err(e) = store.modify_labels(id, &request.add_label_ids, &request.remove_label_ids) {
            return store_error(e);
        }
    }
    HttpResponse::NoContent().finish()
}

async fn trash(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    set_trash(req, path, data, true).await
}

async fn untrash(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    set_trash(req, path, data, false).await
}

async fn set_trash(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
    on: bool,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Modify) {
        Ok(m) => m,
        Err(res) => return res,
    };
    if !valid_id(&id) {
        return invalid("Invalid id value");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    let trash = vec!["TRASH".to_string()];
    let result = if on {
        store.modify_labels(&id, &trash, &[])
    } else {
        store.modify_labels(&id, &[], &trash)
    };
    if let Err(e) = result {
        return store_error(e);
    }
    minimal(store, &id)
}

async fn delete_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Delete) {
        Ok(m) => m,
        Err(res) => return res,
    };
    if !valid_id(&id) {
        return invalid("Invalid id value");
    }
    match data.state().store(mailbox).delete(&id) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => store_error(e),
    }
}

async fn batch_delete(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Delete) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let request: BatchDeleteRequest = match body_as(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    if request.ids.len() > 1000 {
        return invalid("Too many ids: at most 1000 messages can be deleted at once");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    for id in &request.ids {
        // Already gone is fine for a batch delete.
        let _ = store.delete(id);
    }
    HttpResponse::NoContent().finish()
}

fn history_types(c: &Change) -> Vec<&'static str> {
    match &c.what {
        What::Added => vec!["messageAdded"],
        What::Deleted => vec!["messageDeleted"],
        What::Labels { added, removed } => {
            let mut t = Vec::new();
            if !added.is_empty() {
                t.push("labelAdded");
            }
            if !removed.is_empty() {
                t.push("labelRemoved");
            }
            t
        }
        What::Updated => Vec::new(),
    }
}

fn history_record(c: &Change, types: &[&str]) -> Value {
    let mut record = json!({
        "id": c.clock.to_string(),
        "messages": [{ "id": c.id, "threadId": c.thread_id }],
    });
    let wanted = |t: &str| types.is_empty() || types.contains(&t);
    match &c.what {
        What::Added if wanted("messageAdded") => {
            record["messagesAdded"] = json!([{ "message": stub(c) }]);
        }
        What::Deleted if wanted("messageDeleted") => {
            record["messagesDeleted"] = json!([{ "message": stub(c) }]);
        }
        What::Labels { added, removed } => {
            if !added.is_empty() && wanted("labelAdded") {
                record["labelsAdded"] = json!([{ "message": stub(c), "labelIds": added }]);
            }
            if !removed.is_empty() && wanted("labelRemoved") {
                record["labelsRemoved"] = json!([{ "message": stub(c), "labelIds": removed }]);
            }
        }
        _ => {}
    }
    record
}

async fn history(
    req: HttpRequest,
    user: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let Some(start) = one(&pairs, "startHistoryId").and_then(|s| s.parse::<u64>().ok()) else {
        return invalid("Invalid startHistoryId");
    };
    let max = match max_results(&pairs) {
        Ok(n) => n,
        Err(res) => return res,
    };
    let types: Vec<&str> = all(&pairs, "historyTypes");
    if let Some(bad) = types.iter().find(|t| {
        ![
            "messageAdded",
            "messageDeleted",
            "labelAdded",
            "labelRemoved",
        ]
        .contains(t)
    }) {
        return invalid(&format!(
            "Invalid value at 'history_types' (type.googleapis.com/google.apps.gmail.v1.ListHistoryRequest.HistoryType), \"{bad}\""
        ));
    }
    let label = one(&pairs, "labelId").map(str::to_string);
    let after = match one(&pairs, "pageToken").filter(|t| !t.is_empty()) {
        None => start,
        Some(token) => match read_token(token).as_deref() {
            Some([clock]) => match clock.parse::<u64>() {
                Ok(c) => c.max(start),
                Err(_) => return invalid("Invalid pageToken"),
            },
            _ => return invalid("Invalid pageToken"),
        },
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    // History is kept for a while; before that the start point is unknown, as Gmail says it.
    if start < store.log_start {
        return not_found();
    }
    let mut records = Vec::new();
    let mut last = None;
    let mut more = false;
    for c in store.changes_after(after) {
        let kinds = history_types(c);
        if kinds.is_empty() || !(types.is_empty() || kinds.iter().any(|k| types.contains(k))) {
            continue;
        }
        if let Some(label) = &label {
            let touches = c.labels.contains(label)
                || matches!(&c.what, What::Labels { added, removed } if added.contains(label) || removed.contains(label));
            if !touches {
                continue;
            }
        }
        if records.len() == max {
            more = true;
            break;
        }
        records.push(history_record(c, &types));
        last = Some(c.clock);
    }
    let mut body = json!({ "historyId": store.clock.to_string() });
    if !records.is_empty() {
        body["history"] = Value::Array(records);
    }
    if let (true, Some(last)) = (more, last) {
        body["nextPageToken"] = json!(page_token(&[&last.to_string()]));
    }
    json_response(200, body)
}

fn label_json(store: &Store, id: &str, counts: bool) -> Option<Value> {
    let f = store.folder(id)?;
    let mut v =
        json!({ "id": f.id, "name": f.name, "type": if f.system { "system" } else { "user" } });
    if let Some((background, text)) = &f.props.color {
        v["color"] = json!({ "backgroundColor": background, "textColor": text });
    }
    if !f.system
        || [
            "INBOX",
            "SENT",
            "DRAFT",
            "SPAM",
            "TRASH",
            "STARRED",
            "UNREAD",
            "IMPORTANT",
        ]
        .contains(&f.id.as_str())
    {
        v["messageListVisibility"] = json!(f.props.message_list_visibility.as_deref().unwrap_or(
            if f.id == "SPAM" || f.id == "TRASH" {
                "hide"
            } else {
                "show"
            }
        ));
        v["labelListVisibility"] =
            json!(f
                .props
                .label_list_visibility
                .as_deref()
                .unwrap_or(if f.id == "UNREAD" {
                    "labelHide"
                } else {
                    "labelShow"
                }));
    }
    if counts {
        let with: Vec<&Msg> = store
            .messages()
            .filter(|m| m.labels.contains(&f.id))
            .collect();
        let unread: Vec<&Msg> = with
            .iter()
            .filter(|m| m.labels.iter().any(|l| l == "UNREAD"))
            .copied()
            .collect();
        let threads = |list: &[&Msg]| {
            list.iter()
                .map(|m| m.thread_id.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        v["messagesTotal"] = json!(with.len());
        v["messagesUnread"] = json!(unread.len());
        v["threadsTotal"] = json!(threads(&with));
        v["threadsUnread"] = json!(threads(&unread));
    }
    Some(v)
}

async fn list_labels(
    req: HttpRequest,
    user: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let labels: Vec<Value> = store
        .folders
        .iter()
        .filter_map(|f| label_json(store, &f.id, false))
        .collect();
    json_response(200, json!({ "labels": labels }))
}

async fn get_label(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match label_json(store, &id, true) {
        Some(v) => json_response(200, v),
        None => not_found(),
    }
}

/// A `Label` resource in a request body (`labels.create`, `patch`, `update`). Output-only
/// fields are accepted, as Google does, so a client may send back what it read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LabelBody {
    name: Option<String>,
    label_list_visibility: Option<String>,
    message_list_visibility: Option<String>,
    color: Option<LabelColorBody>,
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "type")]
    _type: Option<Value>,
    #[serde(default, rename = "messagesTotal")]
    _messages_total: Option<Value>,
    #[serde(default, rename = "messagesUnread")]
    _messages_unread: Option<Value>,
    #[serde(default, rename = "threadsTotal")]
    _threads_total: Option<Value>,
    #[serde(default, rename = "threadsUnread")]
    _threads_unread: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LabelColorBody {
    background_color: Option<String>,
    text_color: Option<String>,
}

fn label_conflict() -> HttpResponse {
    error(
        409,
        "Label name exists or conflicts",
        "alreadyExists",
        "ALREADY_EXISTS",
    )
}

/// Checks a label body as Gmail does: visibility values, colours from the allowed palette.
fn label_props(body: &LabelBody) -> Result<super::store::LabelProps, HttpResponse> {
    use crate::providers::labels::GMAIL_COLORS;
    if let Some(v) = &body.label_list_visibility {
        if !["labelShow", "labelShowIfUnread", "labelHide"].contains(&v.as_str()) {
            return Err(invalid(&format!(
                "Invalid value at 'label.label_list_visibility' (type.googleapis.com/google.apps.gmail.v1.Label.LabelListVisibility), \"{v}\""
            )));
        }
    }
    if let Some(v) = &body.message_list_visibility {
        if !["show", "hide"].contains(&v.as_str()) {
            return Err(invalid(&format!(
                "Invalid value at 'label.message_list_visibility' (type.googleapis.com/google.apps.gmail.v1.Label.MessageListVisibility), \"{v}\""
            )));
        }
    }
    let color = match &body.color {
        None => None,
        Some(c) => {
            let (Some(bg), Some(text)) = (&c.background_color, &c.text_color) else {
                return Err(invalid(
                    "Label color requires both textColor and backgroundColor",
                ));
            };
            for value in [bg, text] {
                if !GMAIL_COLORS.contains(&value.to_ascii_lowercase().as_str()) {
                    return Err(invalid(&format!(
                        "Label color {value} is not on the allowed color palette"
                    )));
                }
            }
            Some((bg.to_ascii_lowercase(), text.to_ascii_lowercase()))
        }
    };
    Ok(super::store::LabelProps {
        color,
        label_list_visibility: body.label_list_visibility.clone(),
        message_list_visibility: body.message_list_visibility.clone(),
    })
}

fn label_body(body: &[u8]) -> Result<LabelBody, HttpResponse> {
    serde_json::from_slice(body)
        .map_err(|e| invalid(&format!("Invalid JSON payload received. {e}")))
}

async fn create_label(
    req: HttpRequest,
    user: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Modify) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let request = match label_body(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    let props = match label_props(&request) {
        Ok(p) => p,
        Err(res) => return res,
    };
    let name = request
        .name
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_string();
    if name.is_empty() {
        return invalid("Invalid label name");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    if store.label_name_taken(&name, None) {
        return label_conflict();
    }
    let id = store.create_folder(&name);
    if let Err(e) = store.update_label(&id, None, props, true) {
        return store_error(e);
    }
    match label_json(store, &id, false) {
        Some(v) => json_response(200, v),
        None => not_found(),
    }
}

async fn patch_label(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    change_label(req, path, body, data, false).await
}

async fn put_label(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    change_label(req, path, body, data, true).await
}

/// `labels.patch` (only what is sent) and `labels.update` (the whole label; `name` required).
async fn change_label(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    data: web::Data<Shared>,
    replace: bool,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Modify) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let request = match label_body(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    let props = match label_props(&request) {
        Ok(p) => p,
        Err(res) => return res,
    };
    let name = request.name.as_deref().map(|n| n.trim().to_string());
    if replace && name.as_deref().is_none_or(str::is_empty) {
        return invalid("Invalid label name");
    }
    if name.as_deref() == Some("") {
        return invalid("Invalid label name");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    if store.folder(&id).is_none() {
        return not_found();
    }
    if name
        .as_deref()
        .is_some_and(|n| store.label_name_taken(n, Some(&id)))
    {
        return label_conflict();
    }
    if let Err(e) = store.update_label(&id, name, props, replace) {
        return store_error(e);
    }
    match label_json(store, &id, false) {
        Some(v) => json_response(200, v),
        None => not_found(),
    }
}

async fn delete_label(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Modify) {
        Ok(m) => m,
        Err(res) => return res,
    };
    match data.state().store(mailbox).delete_label(&id) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => store_error(e),
    }
}

async fn list_threads(
    req: HttpRequest,
    user: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let max = match max_results(&pairs) {
        Ok(n) => n,
        Err(res) => return res,
    };
    let filter = Filter::from(&pairs);
    let mut state = data.state();
    let store = state.store(mailbox);
    let mut list: Vec<&Msg> = store
        .messages()
        .filter(|m| filter.matches(store, m))
        .collect();
    newest_first(&mut list);
    // A thread is listed where its newest matching message is.
    let mut threads: Vec<&Msg> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in list {
        if seen.insert(m.thread_id.as_str()) {
            threads.push(m);
        }
    }
    let start = match one(&pairs, "pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match read_token(token).as_deref() {
            Some([offset]) => match offset.parse::<usize>() {
                Ok(n) => n,
                Err(_) => return invalid("Invalid pageToken"),
            },
            _ => return invalid("Invalid pageToken"),
        },
    };
    let latest: HashMap<&str, u64> = store.messages().fold(HashMap::new(), |mut acc, m| {
        let e = acc.entry(m.thread_id.as_str()).or_insert(0);
        *e = (*e).max(m.history_id);
        acc
    });
    let page: Vec<&Msg> = threads.iter().skip(start).take(max).copied().collect();
    let mut body = json!({ "resultSizeEstimate": threads.len() });
    if !page.is_empty() {
        body["threads"] = page
            .iter()
            .map(|m| {
                json!({
                    "id": m.thread_id,
                    "snippet": snippet(m),
                    "historyId": latest.get(m.thread_id.as_str()).copied().unwrap_or(m.history_id).to_string(),
                })
            })
            .collect();
    }
    if start + page.len() < threads.len() {
        body["nextPageToken"] = json!(page_token(&[&(start + page.len()).to_string()]));
    }
    json_response(200, body)
}

async fn get_thread(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (user, id) = path.into_inner();
    let mailbox = match owner(&req, &data, &user, Need::Read) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let format = match format_of(&pairs, Format::Full) {
        Ok(Format::Raw) => return invalid("Invalid value at 'format', \"raw\""),
        Ok(f) => f,
        Err(res) => return res,
    };
    if !valid_id(&id) {
        return invalid("Invalid id value");
    }
    let headers: Vec<String> = all(&pairs, "metadataHeaders")
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut state = data.state();
    let store = state.store(mailbox);
    let mut messages: BTreeMap<(i64, String), &Msg> = BTreeMap::new();
    for m in store.messages().filter(|m| m.thread_id == id) {
        messages.insert((m.received_at, m.id.clone()), m);
    }
    if messages.is_empty() {
        return not_found();
    }
    let history = messages
        .values()
        .map(|m| m.history_id)
        .max()
        .unwrap_or_default();
    json_response(
        200,
        json!({
            "id": id,
            "historyId": history.to_string(),
            "messages": messages.values().map(|m| message_json(m, format, &headers)).collect::<Vec<_>>(),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Batch requests

/// Calls one batch request may hold (Google's limit; it advises 50).
const MAX_BATCH_CALLS: usize = 100;

/// `POST /batch/gmail/v1`: calls in a `multipart/mixed` body, each part one HTTP request with
/// a path-only URL, answered as a `multipart/mixed` of HTTP responses whose `Content-ID` is
/// `response-` and the call's own. The batch's bearer token applies to every call. Each call is
/// recorded and meets injected faults as if it had come alone, so a fault on
/// `/google/gmail/v1/users/me/messages` throttles or fails single calls of a batch. The sandbox
/// answers `messages.get` inside a batch; any other call gets 400.
async fn batch(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    use crate::providers::multipart;
    let token = bearer(&req).map(str::to_string);
    if data
        .state()
        .access_owner(Provider::Google, token.as_deref())
        .is_none()
    {
        return unauthenticated();
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(parts) = multipart::boundary(content_type).and_then(|b| multipart::decode(b, &body))
    else {
        return invalid("A batch request is a multipart/mixed body of HTTP requests.");
    };
    if parts.len() > MAX_BATCH_CALLS {
        return invalid("A batch request may hold at most 100 calls.");
    }
    let mut answers = Vec::with_capacity(parts.len());
    for part in parts {
        let content_id = part
            .header("content-id")
            .map(|c| c.trim_matches(['<', '>']).to_string())
            .unwrap_or_default();
        let call = multipart::split_http(&part.body).and_then(|(line, _, _)| {
            let mut words = line.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        });
        let res = match call {
            Some((method, target)) => batched_call(&data, token.as_deref(), &method, &target).await,
            None => invalid("A batch part holds an HTTP request."),
        };
        answers.push(batch_answer(&content_id, res).await);
    }
    let boundary = format!("batch_{}", crate::crypto::random_token(12));
    HttpResponse::Ok()
        .content_type(format!("multipart/mixed; boundary={boundary}"))
        .body(multipart::encode(&boundary, &answers))
}

async fn batched_call(
    data: &Shared,
    token: Option<&str>,
    method: &str,
    target: &str,
) -> HttpResponse {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    super::batched_call(data, (method, path, query), None, || {
        let get = path
            .strip_prefix("/google/gmail/v1/users/")
            .and_then(|rest| rest.split_once("/messages/"))
            .filter(|(user, id)| !user.contains('/') && !id.contains('/'));
        match (method, get) {
            ("GET", Some((user, id))) => message_get(data, token, user, id, query),
            _ => invalid("The sandbox answers only messages.get inside a batch request."),
        }
    })
    .await
}

/// One part of a batch answer: the call's response as HTTP/1.1 text.
async fn batch_answer(content_id: &str, res: HttpResponse) -> crate::providers::multipart::Part {
    let status = res.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in res.headers() {
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    crate::providers::multipart::Part {
        headers: vec![
            ("Content-Type".into(), "application/http".into()),
            ("Content-ID".into(), format!("<response-{content_id}>")),
        ],
        body: bytes,
    }
}
