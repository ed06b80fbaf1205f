//! Microsoft Graph v1.0 mail under `/microsoft/graph/v1.0/me`: mail folders, per-folder
//! `messages/delta`, messages (GET with `$select`, PATCH, DELETE, move, permanentDelete,
//! `$value`) and their file attachments. Shapes follow `provider-specs/msgraph-*`.
//!
//! Delta tokens are opaque to clients but carry their own state (folder, the change number the
//! round was taken at, where the page stopped, the `$select` and `$filter` of the first request),
//! so the sandbox keeps no per-client sessions; a token older than the store's `log_start` is
//! expired and answers 410.

use actix_web::http::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::microsoft::graph_error;
use super::mime::{self, Person};
use super::store::{Folder, Msg, Store, StoreError, GRAPH_ROOT_ID};
use super::{bearer, json_response, Kind, Mailbox, Provider, Shared};

const VERSION_ROOT: &str = "/microsoft/graph/v1.0";
const BASE: &str = "/microsoft/graph/v1.0/me";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let r = |path: &str| format!("{BASE}{path}");
    cfg.route(&format!("{VERSION_ROOT}/$batch"), web::post().to(batch))
        .route(&r("/mailFolders"), web::get().to(list_folders))
        .route(&r("/mailFolders"), web::post().to(create_folder))
        .route(&r("/mailFolders/{folder}"), web::get().to(get_folder))
        .route(
            &r("/mailFolders/{folder}/childFolders"),
            web::get().to(child_folders),
        )
        .route(
            &r("/mailFolders/{folder}/messages"),
            web::get().to(folder_messages),
        )
        .route(
            &r("/mailFolders/{folder}/messages/delta"),
            web::get().to(delta),
        )
        .route(
            &r("/mailFolders/{folder}/messages/microsoft.graph.delta()"),
            web::get().to(delta),
        )
        .route(&r("/messages/{id}"), web::get().to(get_message))
        .route(&r("/messages/{id}"), web::patch().to(patch_message))
        .route(&r("/messages/{id}"), web::delete().to(delete_message))
        .route(&r("/messages/{id}/move"), web::post().to(move_message))
        .route(
            &r("/messages/{id}/permanentDelete"),
            web::post().to(delete_message),
        )
        .route(&r("/messages/{id}/$value"), web::get().to(mime_value))
        .route(&r("/messages/{id}/attachments"), web::get().to(attachments))
        .route(
            &r("/messages/{id}/attachments/{attachment}"),
            web::get().to(attachment),
        )
        .route(
            &r("/messages/{id}/attachments/{attachment}/$value"),
            web::get().to(attachment_value),
        )
        .route(
            &r("/outlook/masterCategories"),
            web::get().to(list_categories),
        )
        .route(
            &r("/outlook/masterCategories"),
            web::post().to(create_category),
        )
        .route(
            &r("/outlook/masterCategories/{id}"),
            web::get().to(get_category),
        )
        .route(
            &r("/outlook/masterCategories/{id}"),
            web::patch().to(patch_category),
        )
        .route(
            &r("/outlook/masterCategories/{id}"),
            web::delete().to(delete_category),
        );
}

// ---------------------------------------------------------------------------------------------
// Errors and access

pub(crate) fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(status, graph_error(code, message))
}

pub(crate) fn not_found() -> HttpResponse {
    error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

pub(crate) fn bad_request(message: &str) -> HttpResponse {
    error(400, "BadRequest", message)
}

fn store_error(e: StoreError) -> HttpResponse {
    match e {
        StoreError::NotFound => not_found(),
        StoreError::Invalid(m) => bad_request(&m),
    }
}

/// Graph's 401: an error body and the `WWW-Authenticate` challenge.
pub(crate) fn unauthenticated(token_sent: bool) -> HttpResponse {
    let message = if token_sent {
        "Access token has expired or is not yet valid."
    } else {
        "Access token is empty."
    };
    let mut res = json_response(401, graph_error("InvalidAuthenticationToken", message));
    res.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""),
    );
    res
}

pub(crate) fn owner(
    req: &HttpRequest,
    data: &Shared,
    write: bool,
) -> Result<&'static Mailbox, HttpResponse> {
    owner_of(bearer(req), data, write)
}

/// `owner` for a bearer token (a request inside a batch carries the batch's).
fn owner_of(
    token: Option<&str>,
    data: &Shared,
    write: bool,
) -> Result<&'static Mailbox, HttpResponse> {
    let state = data.state();
    let Some(mailbox) = state.access_owner(Provider::Microsoft, token) else {
        return Err(unauthenticated(token.is_some()));
    };
    let scope = token
        .and_then(|t| state.find(Provider::Microsoft, Kind::Access, t))
        .map(|t| t.scope.clone())
        .unwrap_or_default();
    // Scopes may come bare (Mail.Read) or as the resource URL (https://graph.microsoft.com/Mail.Read).
    let has = |s: &str| {
        scope.split_whitespace().any(|x| {
            x.rsplit('/')
                .next()
                .is_some_and(|x| x.eq_ignore_ascii_case(s))
        })
    };
    let allowed = has("Mail.ReadWrite") || (!write && (has("Mail.Read") || has("Mail.ReadBasic")));
    if !allowed {
        return Err(error(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    Ok(mailbox)
}

fn pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The `Prefer` preferences of a request (several headers or comma-separated ones).
pub(crate) struct Prefer {
    pub immutable: bool,
    max_page: Option<usize>,
}

pub(crate) fn prefer(req: &HttpRequest) -> Prefer {
    let mut p = Prefer {
        immutable: false,
        max_page: None,
    };
    for value in req.headers().get_all("prefer") {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',').map(str::trim) {
            let lower = item.to_ascii_lowercase().replace(' ', "");
            if lower == "idtype=\"immutableid\"" || lower == "idtype=immutableid" {
                p.immutable = true;
            } else if let Some(n) = lower.strip_prefix("odata.maxpagesize=") {
                p.max_page = n.parse().ok();
            }
        }
    }
    p
}

/// Where links in answers point: the origin the client called, and Graph's path.
pub(crate) fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}{BASE}", info.scheme(), info.host())
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Resources

fn folder_json(store: &Store, f: &Folder) -> Value {
    let (mut total, mut unread) = (0, 0);
    for m in store.messages().filter(|m| m.folder_id == f.id) {
        total += 1;
        if !m.is_read {
            unread += 1;
        }
    }
    json!({
        "id": f.id,
        "displayName": f.name,
        "parentFolderId": GRAPH_ROOT_ID,
        "childFolderCount": 0,
        "unreadItemCount": unread,
        "totalItemCount": total,
        "isHidden": false,
    })
}

fn recipient(p: &Person) -> Value {
    json!({ "emailAddress": { "name": p.name, "address": p.address } })
}

fn change_key(m: &Msg) -> String {
    format!("CQAAABYAAAC{}", b64(&m.history_id.to_be_bytes()))
}

/// The properties `GET /messages/{id}` returns by default, in Graph's order.
const DEFAULT_PROPERTIES: [&str; 28] = [
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
];

const OTHER_PROPERTIES: [&str; 2] = ["internetMessageHeaders", "uniqueBody"];

/// `$select` as property names in their canonical case; unknown names are an error as in Graph.
fn select(pairs: &[(String, String)]) -> Result<Option<Vec<&'static str>>, HttpResponse> {
    let Some(raw) = one(pairs, "$select") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name.eq_ignore_ascii_case("id") {
            continue;
        }
        match DEFAULT_PROPERTIES
            .iter()
            .chain(OTHER_PROPERTIES.iter())
            .find(|p| p.eq_ignore_ascii_case(name))
        {
            Some(p) => out.push(*p),
            None => {
                return Err(error(
                    400,
                    "RequestBroker--ParseUri",
                    &format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.message'."
                ),
                ))
            }
        }
    }
    Ok(Some(out))
}

pub(crate) fn message_json(m: &Msg, select: Option<&[&str]>, immutable: bool) -> Value {
    let id = if immutable { &m.id } else { &m.rest_id };
    let mut v = Map::new();
    v.insert("@odata.type".into(), json!("#microsoft.graph.message"));
    v.insert(
        "@odata.etag".into(),
        json!(format!("W/\"{}\"", change_key(m))),
    );
    v.insert("id".into(), json!(id));
    let props: Vec<&str> = match select {
        Some(list) => list.to_vec(),
        None => DEFAULT_PROPERTIES.to_vec(),
    };
    let body = props
        .iter()
        .any(|p| *p == "body" || *p == "uniqueBody")
        .then(|| mime::body(&m.raw));
    let s = &m.summary;
    for p in props {
        let value = match p {
            "createdDateTime" => json!(iso(m.created_at)),
            "lastModifiedDateTime" => json!(iso(m.modified_at)),
            "changeKey" => json!(change_key(m)),
            "categories" => json!(m.categories),
            "receivedDateTime" => json!(iso(m.received_at)),
            "sentDateTime" => json!(iso(s.date.unwrap_or(m.received_at))),
            "hasAttachments" => json!(s.has_attachments),
            "internetMessageId" => json!(s.message_id.as_ref().map(|id| format!("<{id}>"))),
            "subject" => json!(s.subject),
            "bodyPreview" => json!(s.preview),
            "importance" => json!("normal"),
            "parentFolderId" => json!(m.folder_id),
            "conversationId" => json!(m.thread_id),
            "conversationIndex" => json!(base64::engine::general_purpose::STANDARD.encode(
                m.thread_id
                    .as_bytes()
                    .iter()
                    .take(22)
                    .copied()
                    .collect::<Vec<u8>>()
            )),
            "isDeliveryReceiptRequested" => json!(false),
            "isReadReceiptRequested" => json!(false),
            "isRead" => json!(m.is_read),
            "isDraft" => json!(m.is_draft),
            "webLink" => json!(format!(
                "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
                url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            )),
            "inferenceClassification" => json!("focused"),
            "body" | "uniqueBody" => {
                let (html, content) = body.clone().unwrap_or_default();
                json!({ "contentType": if html { "html" } else { "text" }, "content": content })
            }
            "sender" => json!(s.sender.as_ref().or(s.from.as_ref()).map(recipient)),
            "from" => json!(s.from.as_ref().map(recipient)),
            "toRecipients" => json!(s.to.iter().map(recipient).collect::<Vec<_>>()),
            "ccRecipients" => json!(s.cc.iter().map(recipient).collect::<Vec<_>>()),
            "bccRecipients" => json!(s.bcc.iter().map(recipient).collect::<Vec<_>>()),
            "replyTo" => json!(s.reply_to.iter().map(recipient).collect::<Vec<_>>()),
            "flag" => flag_json(m),
            "internetMessageHeaders" => json!(mime::top_headers(&m.raw)
                .into_iter()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect::<Vec<_>>()),
            _ => continue,
        };
        v.insert(p.to_string(), value);
    }
    Value::Object(v)
}

fn attachment_id(m: &Msg, part: &str) -> String {
    format!(
        "AAMkAGI2NGVhZTVlLTI1OGMtNDI4My1iZmE5LTA5OGJiZGEzMzUzZQBGAAAAAAC7ARIAAAA{}",
        b64(format!("{}:{part}", m.seq).as_bytes())
    )
}

pub(crate) fn attachment_json(m: &Msg, a: &mime::Attachment, with_bytes: bool) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": a.content_type,
        "id": attachment_id(m, &a.part_id),
        "lastModifiedDateTime": iso(m.modified_at),
        "name": if a.filename.is_empty() { "attachment" } else { a.filename.as_str() },
        "contentType": a.content_type,
        "size": a.data.len(),
        "isInline": a.inline,
        "contentId": a.content_id,
        "contentLocation": null,
    });
    if with_bytes {
        v["contentBytes"] = json!(base64::engine::general_purpose::STANDARD.encode(&a.data));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Folders

async fn list_folders(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let top = one(&pairs, "$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 1000);
    let skip = one(&pairs, "$skip")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let mut state = data.state();
    let store = state.store(mailbox);
    let mut folders: Vec<&Folder> = store.folders.iter().collect();
    folders.sort_by_key(|f| f.name.to_lowercase());
    let page: Vec<Value> = folders
        .iter()
        .skip(skip)
        .take(top)
        .map(|f| folder_json(store, f))
        .collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/mailFolders",
        "value": page,
    });
    if skip + top < folders.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}/mailFolders?$top={top}&$skip={}",
            base_url(&req),
            skip + top
        ));
    }
    json_response(200, body)
}

async fn get_folder(
    req: HttpRequest,
    folder: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match store.find_folder(&folder) {
        Some(f) => {
            let mut v = folder_json(store, f);
            v["@odata.context"] =
                json!("https://graph.microsoft.com/v1.0/$metadata#users('me')/mailFolders/$entity");
            json_response(200, v)
        }
        None => not_found(),
    }
}

async fn child_folders(
    req: HttpRequest,
    folder: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    if store.find_folder(&folder).is_none() {
        return not_found();
    }
    // The sandbox's folders are all top-level.
    json_response(
        200,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/mailFolders('id')/childFolders",
            "value": [],
        }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewFolder {
    display_name: String,
    #[serde(default)]
    #[allow(dead_code)]
    is_hidden: bool,
}

async fn create_folder(
    req: HttpRequest,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let request: NewFolder = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(400, "RequestBodyRead", &e.to_string()),
    };
    let name = request.display_name.trim();
    if name.is_empty() {
        return bad_request("The displayName property is required.");
    }
    let mut state = data.state();
    let store = state.store(mailbox);
    if store
        .folders
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(name))
    {
        return error(
            409,
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        );
    }
    let id = store.create_folder(name);
    match store.folder(&id) {
        Some(f) => json_response(201, folder_json(store, f)),
        None => not_found(),
    }
}

async fn folder_messages(
    req: HttpRequest,
    folder: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let selected = match select(&pairs) {
        Ok(s) => s,
        Err(res) => return res,
    };
    let top = one(&pairs, "$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 1000);
    let skip = one(&pairs, "$skip")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let immutable = prefer(&req).immutable;
    let mut state = data.state();
    let store = state.store(mailbox);
    let Some(f) = store.find_folder(&folder).map(|f| f.id.clone()) else {
        return not_found();
    };
    // `$filter=internetMessageId eq '<…>'`, the one filter this listing takes.
    let wanted_id =
        match one(&pairs, "$filter") {
            None => None,
            Some(filter) => match internet_message_id_filter(filter) {
                Some(id) => Some(id),
                None => return bad_request(
                    "The sandbox filters messages of a folder on internetMessageId eq '<id>' only.",
                ),
            },
        };
    let mut list: Vec<&Msg> = store
        .messages()
        .filter(|m| m.folder_id == f)
        .filter(|m| {
            wanted_id
                .as_deref()
                .is_none_or(|w| m.summary.message_id.as_deref() == Some(w))
        })
        .collect();
    // Newest first, Outlook's default order.
    list.sort_by_key(|m| std::cmp::Reverse((m.received_at, m.seq)));
    let value: Vec<Value> = list
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| message_json(m, selected.as_deref(), immutable))
        .collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/mailFolders('id')/messages",
        "value": value,
    });
    if skip + top < list.len() {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("$top", &top.to_string())
            .append_pair("$skip", &(skip + top).to_string());
        if let Some(sel) = one(&pairs, "$select") {
            query.append_pair("$select", sel);
        }
        body["@odata.nextLink"] = json!(format!(
            "{}/mailFolders/{f}/messages?{}",
            base_url(&req),
            query.finish()
        ));
    }
    json_response(200, body)
}

/// The id (without angle brackets) of `internetMessageId eq '<id>'` (OData: `''` is a quote).
fn internet_message_id_filter(filter: &str) -> Option<String> {
    let rest = filter.trim();
    let (field, rest) = rest.split_once(char::is_whitespace)?;
    if !field.eq_ignore_ascii_case("internetMessageId") {
        return None;
    }
    let (op, value) = rest.trim().split_once(char::is_whitespace)?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(
        value
            .replace("''", "'")
            .trim_matches(['<', '>'])
            .to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// Delta

/// A `receivedDateTime` condition of the first delta request's `$filter`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Condition {
    op: String,
    ms: i64,
}

impl Condition {
    fn holds(&self, m: &Msg) -> bool {
        let t = m.received_at;
        match self.op.as_str() {
            "ge" => t >= self.ms,
            "gt" => t > self.ms,
            "le" => t <= self.ms,
            "lt" => t < self.ms,
            _ => true,
        }
    }
}

/// `receivedDateTime ge 2026-11-01T00:00:00Z [and receivedDateTime lt …]`: the only filter
/// Graph's message delta takes.
fn parse_filter(filter: &str) -> Option<Vec<Condition>> {
    let mut out = Vec::new();
    for clause in filter.split(" and ") {
        let words: Vec<&str> = clause.split_whitespace().collect();
        let [field, op, value] = words.as_slice() else {
            return None;
        };
        if !field.eq_ignore_ascii_case("receivedDateTime") {
            return None;
        }
        let op = op.to_ascii_lowercase();
        if !["ge", "gt", "le", "lt"].contains(&op.as_str()) {
            return None;
        }
        let ms = chrono::DateTime::parse_from_rfc3339(value)
            .map(|d| d.timestamp_millis())
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc().timestamp_millis())
            })?;
        out.push(Condition { op, ms });
    }
    Some(out)
}

/// State carried by `$skiptoken` (within a round) and `$deltatoken` (between rounds).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Round {
    /// Folder id.
    f: String,
    /// The change number the round was taken at; a delta token starts the next round there.
    at: u64,
    /// Changes after this are the round's (None: the first round lists the folder).
    from: Option<u64>,
    /// Where the previous page stopped: a creation number (first round) or an id (later ones).
    after: Option<String>,
    cond: Vec<Condition>,
    sel: Option<Vec<String>>,
    top: Option<usize>,
}

fn encode_token(round: &Round) -> String {
    b64(&serde_json::to_vec(round).unwrap_or_default())
}

fn decode_token(token: &str) -> Option<Round> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn sync_state_not_found() -> HttpResponse {
    error(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}

async fn delta(
    req: HttpRequest,
    folder: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let prefs = prefer(&req);
    let mut state = data.state();
    let store = state.store(mailbox);
    let Some(folder_id) = store.find_folder(&folder).map(|f| f.id.clone()) else {
        return not_found();
    };
    let skip = one(&pairs, "$skiptoken");
    let delta = one(&pairs, "$deltatoken");
    let mut round = match (skip, delta) {
        (Some(token), _) | (None, Some(token)) => {
            let Some(mut round) = decode_token(token) else {
                return bad_request("The sync state is invalid.");
            };
            if round.f != folder_id {
                return bad_request("The sync state does not belong to this folder.");
            }
            if skip.is_none() {
                // A delta link: the next round covers the changes since the last one.
                round.from = Some(round.at);
                round.at = store.clock;
                round.after = None;
            }
            let taken = round.from.unwrap_or(round.at);
            if taken < store.log_start {
                return sync_state_not_found();
            }
            round
        }
        (None, None) => {
            let cond = match one(&pairs, "$filter") {
                None => Vec::new(),
                Some(f) => match parse_filter(f) {
                    Some(c) => c,
                    None => {
                        return bad_request(
                            "The query filter contains one or more invalid nodes. Delta queries on messages only filter on receivedDateTime.",
                        )
                    }
                },
            };
            let sel = match select(&pairs) {
                Ok(s) => s.map(|list| list.into_iter().map(str::to_string).collect()),
                Err(res) => return res,
            };
            Round {
                f: folder_id.clone(),
                at: store.clock,
                from: None,
                after: None,
                cond,
                sel,
                top: one(&pairs, "$top").and_then(|t| t.parse().ok()),
            }
        }
    };
    let page_size = prefs.max_page.or(round.top).unwrap_or(10).clamp(1, 1000);
    let sel: Option<Vec<&str>> = round.sel.as_ref().map(|list| {
        list.iter()
            .filter_map(|s| {
                DEFAULT_PROPERTIES
                    .iter()
                    .chain(OTHER_PROPERTIES.iter())
                    .find(|p| **p == s.as_str())
                    .copied()
            })
            .collect()
    });
    let passes = |m: &Msg| round.cond.iter().all(|c| c.holds(m));
    let mut value = Vec::new();
    let mut last: Option<String> = None;
    let more;
    match round.from {
        None => {
            // First round: what the folder holds now, in creation order.
            let after: u64 = round
                .after
                .as_deref()
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            // Walked in creation order from where the last page stopped, so a large first
            // sync is not quadratic (Graph is not).
            let mut list = store
                .created_after(after)
                .filter(|m| m.folder_id == folder_id && passes(m))
                .take(page_size + 1);
            let page: Vec<&Msg> = list.by_ref().take(page_size).collect();
            more = list.next().is_some();
            for m in page {
                value.push(message_json(m, sel.as_deref(), prefs.immutable));
                last = Some(m.seq.to_string());
            }
        }
        Some(from) => {
            // Later rounds: every message a change touched in this folder, by id.
            let touched = store.touched(&folder_id, from, round.at);
            let ids: Vec<&String> = touched
                .iter()
                .filter(|id| {
                    round
                        .after
                        .as_ref()
                        .is_none_or(|a| id.as_str() > a.as_str())
                })
                .collect();
            more = ids.len() > page_size;
            for id in ids.into_iter().take(page_size) {
                last = Some(id.clone());
                let item = match store.get(id) {
                    Some(m) if m.folder_id == folder_id => {
                        if !passes(m) {
                            continue;
                        }
                        message_json(m, sel.as_deref(), prefs.immutable)
                    }
                    // Left the folder: moved elsewhere ("changed") or gone ("deleted").
                    Some(m) => removed(if prefs.immutable { &m.id } else { &m.rest_id }, "changed"),
                    None => removed(id, "deleted"),
                };
                value.push(item);
            }
        }
    }
    let link_base = format!("{}/mailFolders/{folder_id}/messages/delta", base_url(&req));
    let enc = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
        "value": value,
    });
    if more {
        round.after = last;
        body["@odata.nextLink"] = json!(format!(
            "{link_base}?$skiptoken={}",
            enc(&encode_token(&round))
        ));
    } else {
        round.after = None;
        body["@odata.deltaLink"] = json!(format!(
            "{link_base}?$deltatoken={}",
            enc(&encode_token(&round))
        ));
    }
    let mut res = json_response(200, body);
    if let Some(n) = prefs.max_page {
        if let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={n}")) {
            res.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("preference-applied"),
                v,
            );
        }
    }
    res
}

fn removed(id: &str, reason: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.message",
        "id": id,
        "@removed": { "reason": reason },
    })
}

// ---------------------------------------------------------------------------------------------
// Messages

async fn get_message(
    req: HttpRequest,
    id: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let pairs = pairs(&req);
    let selected = match select(&pairs) {
        Ok(s) => s,
        Err(res) => return res,
    };
    let immutable = prefer(&req).immutable;
    let mut state = data.state();
    let store = state.store(mailbox);
    match store.get(&id) {
        Some(m) => {
            let mut v = message_json(m, selected.as_deref(), immutable);
            v["@odata.context"] =
                json!("https://graph.microsoft.com/v1.0/$metadata#users('me')/messages/$entity");
            json_response(200, v)
        }
        None => not_found(),
    }
}

pub(crate) const WRITABLE: [&str; 5] = [
    "isRead",
    "flag",
    "categories",
    "importance",
    "inferenceClassification",
];

async fn patch_message(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "RequestBodyRead",
            "Cannot read the request body: it is not a JSON object.",
        );
    };
    // A draft takes its content too.
    if let Some(res) = super::outgoing::patch_draft(&req, mailbox, &id, &fields, &data) {
        return res;
    }
    if let Some(unknown) = fields.keys().find(|k| !WRITABLE.contains(&k.as_str())) {
        return error(
            400,
            "RequestBodyRead",
            &format!("The property '{unknown}' does not exist on type 'microsoft.graph.message' or is not writable. Make sure to only use property names that are defined by the type."),
        );
    }
    let is_read = match fields.get("isRead") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return bad_request("isRead must be a boolean."),
    };
    let flag = match fields.get("flag") {
        None => None,
        Some(f) => match flag_patch(f) {
            Ok(p) => Some(p),
            Err(res) => return res,
        },
    };
    let categories = match fields.get("categories") {
        None => None,
        Some(Value::Array(list)) => {
            let names: Option<Vec<String>> = list
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect();
            match names {
                Some(n) => Some(n),
                None => return bad_request("categories must be strings."),
            }
        }
        Some(_) => return bad_request("categories must be an array."),
    };
    let immutable = prefer(&req).immutable;
    let mut state = data.state();
    let store = state.store(mailbox);
    if let (Some(f), Some(m)) = (&flag, store.get(&id)) {
        // As Graph: a due date needs a start date.
        let due = f.due.clone().unwrap_or_else(|| m.flag_dates.due.clone());
        let start = f
            .start
            .clone()
            .unwrap_or_else(|| m.flag_dates.start.clone());
        let status = f.status.as_deref().unwrap_or(m.flag.as_str());
        if status != "notFlagged" && due.is_some() && start.is_none() {
            return error(
                400,
                "ErrorInvalidArgument",
                "The StartDateTime property must be set when the DueDateTime property is set.",
            );
        }
    }
    if let Err(e) = store.graph_update(&id, is_read, None, categories) {
        return store_error(e);
    }
    if let Some(mut f) = flag {
        if f.status.as_deref() == Some("complete") && f.completed.is_none() {
            let d = chrono::Utc::now();
            let now = format!(
                "{}.{:07}",
                d.format("%Y-%m-%dT%H:%M:%S"),
                d.timestamp_subsec_nanos() / 100
            );
            f.completed = Some(Some(json!({ "dateTime": now, "timeZone": "UTC" })));
        }
        if let Err(e) = store.graph_flag(&id, f) {
            return store_error(e);
        }
    }
    match store.get(&id) {
        Some(m) => json_response(200, message_json(m, None, immutable)),
        None => not_found(),
    }
}

// ---------------------------------------------------------------------------------------------
// Flags and master categories (issue 5)

/// Graph's `followupFlag`: the status and the dates that are set.
fn flag_json(m: &Msg) -> Value {
    let mut v = json!({ "flagStatus": m.flag });
    for (key, date) in [
        ("startDateTime", &m.flag_dates.start),
        ("dueDateTime", &m.flag_dates.due),
        ("completedDateTime", &m.flag_dates.completed),
    ] {
        if let Some(d) = date {
            v[key] = d.clone();
        }
    }
    v
}

/// A `dateTimeTimeZone`: `dateTime` (ISO 8601 without offset) and `timeZone`.
fn date_time_zone(key: &str, v: &Value) -> Result<Option<Value>, HttpResponse> {
    if v.is_null() {
        return Ok(None);
    }
    let bad = || {
        bad_request(&format!(
            "flag.{key} must be a dateTimeTimeZone ({{dateTime, timeZone}})."
        ))
    };
    let obj = v.as_object().ok_or_else(bad)?;
    if obj.keys().any(|k| k != "dateTime" && k != "timeZone") {
        return Err(bad());
    }
    let text = obj
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or_else(bad)?;
    let zone = obj.get("timeZone").and_then(Value::as_str).unwrap_or("UTC");
    chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| bad())?;
    Ok(Some(json!({ "dateTime": text, "timeZone": zone })))
}

fn flag_patch(f: &Value) -> Result<super::store::FlagPatch, HttpResponse> {
    let Some(obj) = f.as_object() else {
        return Err(bad_request("flag must be a followupFlag object."));
    };
    const KEYS: [&str; 4] = [
        "flagStatus",
        "startDateTime",
        "dueDateTime",
        "completedDateTime",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(error(
            400,
            "RequestBodyRead",
            &format!("The property '{k}' does not exist on type 'microsoft.graph.followupFlag'."),
        ));
    }
    let status = match obj.get("flagStatus") {
        None => None,
        Some(Value::String(s)) if ["notFlagged", "flagged", "complete"].contains(&s.as_str()) => {
            Some(s.clone())
        }
        Some(_) => {
            return Err(bad_request(
                "flag.flagStatus must be one of notFlagged, flagged, complete.",
            ))
        }
    };
    let date = |key: &str| -> Result<Option<Option<Value>>, HttpResponse> {
        obj.get(key).map(|v| date_time_zone(key, v)).transpose()
    };
    Ok(super::store::FlagPatch {
        status,
        start: date("startDateTime")?,
        due: date("dueDateTime")?,
        completed: date("completedDateTime")?,
    })
}

/// Master categories are mailbox settings: reading needs MailboxSettings.Read(Write), changing
/// MailboxSettings.ReadWrite.
fn settings_owner(
    req: &HttpRequest,
    data: &Shared,
    write: bool,
) -> Result<&'static Mailbox, HttpResponse> {
    let state = data.state();
    let token = bearer(req);
    let Some(mailbox) = state.access_owner(Provider::Microsoft, token) else {
        return Err(unauthenticated(token.is_some()));
    };
    let scope = token
        .and_then(|t| state.find(Provider::Microsoft, Kind::Access, t))
        .map(|t| t.scope.clone())
        .unwrap_or_default();
    let has = |s: &str| {
        scope.split_whitespace().any(|x| {
            x.rsplit('/')
                .next()
                .is_some_and(|x| x.eq_ignore_ascii_case(s))
        })
    };
    if !(has("MailboxSettings.ReadWrite") || (!write && has("MailboxSettings.Read"))) {
        return Err(error(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    Ok(mailbox)
}

fn category_json(c: &super::store::Category) -> Value {
    json!({ "id": c.id, "displayName": c.display_name, "color": c.color })
}

fn valid_category_color(c: &str) -> bool {
    crate::providers::labels::is_outlook_preset(c)
}

async fn list_categories(req: HttpRequest, data: web::Data<Shared>) -> HttpResponse {
    let mailbox = match settings_owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let value: Vec<Value> = store.categories.iter().map(category_json).collect();
    json_response(
        200,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/outlook/masterCategories",
            "value": value,
        }),
    )
}

async fn get_category(
    req: HttpRequest,
    id: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match settings_owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match store.category(&id) {
        Some(c) => json_response(200, category_json(c)),
        None => not_found(),
    }
}

async fn create_category(
    req: HttpRequest,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match settings_owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "RequestBodyRead",
            "Cannot read the request body: it is not a JSON object.",
        );
    };
    if let Some(k) = fields.keys().find(|k| *k != "displayName" && *k != "color") {
        return error(
            400,
            "RequestBodyRead",
            &format!(
                "The property '{k}' does not exist on type 'microsoft.graph.outlookCategory'."
            ),
        );
    }
    let name = fields
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return error(
            400,
            "ErrorInvalidArgument",
            "The displayName property is required.",
        );
    }
    let color = match fields.get("color") {
        None | Some(Value::Null) => "none".to_string(),
        Some(Value::String(c)) if valid_category_color(c) => c.clone(),
        Some(_) => {
            return error(
                400,
                "ErrorInvalidArgument",
                "color must be none or one of preset0 to preset24.",
            )
        }
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    if store.category_named(&name).is_some() {
        return error(
            409,
            "ErrorItemAlreadyExists",
            "A category with the specified name already exists.",
        );
    }
    let c = store.create_category(&name, &color);
    json_response(201, category_json(&c))
}

/// Only the colour can change: a category's displayName is fixed once it is created.
async fn patch_category(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match settings_owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "RequestBodyRead",
            "Cannot read the request body: it is not a JSON object.",
        );
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let Some(current) = store.category(&id).cloned() else {
        return not_found();
    };
    for (k, v) in &fields {
        match k.as_str() {
            "color" => {}
            "displayName" if v.as_str() == Some(current.display_name.as_str()) => {}
            "displayName" => {
                return error(
                    400,
                    "ErrorInvalidRequest",
                    "The displayName of a category cannot be changed.",
                )
            }
            other => {
                return error(
                    400,
                    "RequestBodyRead",
                    &format!("The property '{other}' does not exist on type 'microsoft.graph.outlookCategory'."),
                )
            }
        }
    }
    let color = match fields.get("color") {
        None => current.color.clone(),
        Some(Value::String(c)) if valid_category_color(c) => c.clone(),
        Some(_) => {
            return error(
                400,
                "ErrorInvalidArgument",
                "color must be none or one of preset0 to preset24.",
            )
        }
    };
    if let Some(c) = store.categories.iter_mut().find(|c| c.id == *id) {
        c.color = color;
    }
    match store.category(&id) {
        Some(c) => json_response(200, category_json(c)),
        None => not_found(),
    }
}

/// Like Outlook, deleting a master category leaves its name on the messages that carry it.
async fn delete_category(
    req: HttpRequest,
    id: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match settings_owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    if store.category(&id).is_none() {
        return not_found();
    }
    store.categories.retain(|c| c.id != *id);
    HttpResponse::NoContent().finish()
}

async fn delete_message(
    req: HttpRequest,
    id: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    match data.state().store(mailbox).delete(&id) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoveRequest {
    destination_id: Option<String>,
}

async fn move_message(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, true) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let destination = match serde_json::from_slice::<MoveRequest>(&body) {
        Ok(MoveRequest {
            destination_id: Some(d),
        }) if !d.is_empty() => d,
        _ => {
            return error(
                400,
                "ErrorInvalidRequest",
                "The destinationId parameter is required.",
            )
        }
    };
    let immutable = prefer(&req).immutable;
    let mut state = data.state();
    let store = state.store(mailbox);
    if store.get(&id).is_none() {
        return not_found();
    }
    if store.find_folder(&destination).is_none() {
        return not_found();
    }
    let moved = match store.graph_move(&id, &destination) {
        Ok(id) => id,
        Err(e) => return store_error(e),
    };
    match store.get(&moved) {
        Some(m) => json_response(201, message_json(m, None, immutable)),
        None => not_found(),
    }
}

async fn mime_value(
    req: HttpRequest,
    id: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    mime_of(&data, bearer(&req), &id)
}

fn mime_of(data: &Shared, token: Option<&str>, id: &str) -> HttpResponse {
    let mailbox = match owner_of(token, data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match store.get(id) {
        Some(m) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/plain"))
            .body(m.raw.clone()),
        None => not_found(),
    }
}

async fn attachments(
    req: HttpRequest,
    id: web::Path<String>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    let Some(m) = store.get(&id) else {
        return not_found();
    };
    let value: Vec<Value> = mime::attachments(&m.raw)
        .iter()
        .map(|a| attachment_json(m, a, true))
        .collect();
    json_response(
        200,
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/messages('id')/attachments",
            "value": value,
        }),
    )
}

fn find_attachment(
    store: &Store,
    id: &str,
    attachment: &str,
) -> Result<(Msg, mime::Attachment), HttpResponse> {
    let Some(m) = store.get(id) else {
        return Err(not_found());
    };
    mime::attachments(&m.raw)
        .into_iter()
        .find(|a| attachment_id(m, &a.part_id) == attachment)
        .map(|a| (m.clone(), a))
        .ok_or_else(not_found)
}

async fn attachment(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (id, attachment) = path.into_inner();
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match find_attachment(store, &id, &attachment) {
        Ok((m, a)) => json_response(200, attachment_json(&m, &a, true)),
        Err(res) => res,
    }
}

async fn attachment_value(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    data: web::Data<Shared>,
) -> HttpResponse {
    let (id, attachment) = path.into_inner();
    let mailbox = match owner(&req, &data, false) {
        Ok(m) => m,
        Err(res) => return res,
    };
    let mut state = data.state();
    let store = state.store(mailbox);
    match find_attachment(store, &id, &attachment) {
        Ok((_, a)) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, a.content_type.clone()))
            .body(a.data),
        Err(res) => res,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON batching

/// Requests one `$batch` may hold (Graph's limit).
const MAX_BATCH_REQUESTS: usize = 20;
/// Requests of one batch Graph hands to Outlook at once.
const BATCH_WAVE: usize = 4;

#[derive(Deserialize)]
struct BatchBody {
    requests: Vec<BatchRequest>,
}

#[derive(Deserialize)]
struct BatchRequest {
    id: String,
    method: String,
    url: String,
}

/// `POST /v1.0/$batch`: up to 20 requests with URLs relative to `/v1.0`, answered as
/// `{"responses": [{id, status, headers, body}]}` in an order of the sandbox's own (the reverse
/// of the request's, as Graph promises no order). A body that is not JSON is a base64 string,
/// as Graph sends it. The batch holds up to 4 of the mailbox's request slots while it runs and
/// dispatches its requests in waves of 4: a request that finds no free slot is throttled
/// (429 `ApplicationThrottled`, MailboxConcurrency), as Outlook does. Each request is recorded
/// and meets injected faults as if it had come alone. The sandbox answers
/// `GET /me/messages/{id}/$value` inside a batch; anything else gets 400.
async fn batch(req: HttpRequest, body: web::Bytes, data: web::Data<Shared>) -> HttpResponse {
    let token = bearer(&req).map(str::to_string);
    let Some(email) = data
        .state()
        .access_owner(Provider::Microsoft, token.as_deref())
        .map(|m| m.email)
    else {
        return unauthenticated(token.is_some());
    };
    let Ok(batch) = serde_json::from_slice::<BatchBody>(&body) else {
        return bad_request("Invalid batch payload format.");
    };
    if batch.requests.len() > MAX_BATCH_REQUESTS {
        return bad_request("Number of requests in batch request exceeds the limit of 20.");
    }
    let slots: Vec<super::InFlight> = {
        let mut state = data.state();
        (0..batch.requests.len().min(BATCH_WAVE))
            .map_while(|_| state.graph_slot(&data, email))
            .collect()
    };
    let mut responses = Vec::with_capacity(batch.requests.len());
    for (i, r) in batch.requests.iter().enumerate() {
        let has_slot = i % BATCH_WAVE < slots.len();
        let res = batched_call(&data, token.as_deref(), r, has_slot).await;
        responses.push(batch_response(&r.id, res).await);
    }
    drop(slots);
    responses.reverse();
    json_response(200, json!({ "responses": responses }))
}

async fn batched_call(
    data: &Shared,
    token: Option<&str>,
    r: &BatchRequest,
    has_slot: bool,
) -> HttpResponse {
    let target = format!("{VERSION_ROOT}/{}", r.url.trim_start_matches('/'));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let refused = (!has_slot).then(super::graph_throttled);
    super::batched_call(data, (&r.method, path, query), refused, || {
        let value_of = path
            .strip_prefix(BASE)
            .and_then(|p| p.strip_prefix("/messages/"))
            .and_then(|p| p.strip_suffix("/$value"))
            .filter(|id| !id.contains('/'))
            .and_then(|id| {
                url::form_urlencoded::parse(format!("id={id}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            });
        match (r.method.as_str(), value_of) {
            ("GET", Some(id)) => mime_of(data, token, &id),
            _ => {
                bad_request("The sandbox answers only GET /me/messages/{id}/$value inside a batch.")
            }
        }
    })
    .await
}

/// One entry of a batch answer.
async fn batch_response(id: &str, res: HttpResponse) -> Value {
    let status = res.status().as_u16();
    let headers: Map<String, Value> = res
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
        .collect();
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let bytes = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    let mut out = json!({ "id": id, "status": status, "headers": headers });
    if !bytes.is_empty() {
        out["body"] = if is_json {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        } else {
            json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
        };
    }
    out
}
