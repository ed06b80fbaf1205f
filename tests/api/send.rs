//! `mailMessages:send` and `mailAliases` through the real service against the sandbox: what
//! arrives (parsed back from the exact bytes the sandbox received, `/__sandbox/outbox`), replies
//! and forwards with their threading on both providers, the idempotency key, a send the
//! provider took but answered 500 for, large files through the upload paths, bad input that
//! sends nothing, and the sent folder holding a message once after sync.

use base64::Engine;
use email_manager::sync::parse;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sync::{GMAIL, OUTLOOK};

pub const BOB: &str = "bob@gmail.test";
pub const DAVE: &str = "dave@contoso.test";

/// A service with its own upload folder (on PostgreSQL the default would be under the working
/// directory).
pub async fn spawn_app(extra: &[(&str, &str)]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("upload dir");
    let uploads = dir.path().join("uploads").to_string_lossy().to_string();
    let mut all: Vec<(&str, &str)> = vec![("EMAIL_MANAGER__MAIL__UPLOAD_DIR", uploads.as_str())];
    all.extend_from_slice(extra);
    let app = TestApp::spawn_with(&all).await;
    app.configure_providers().await;
    (app, dir)
}

/// A client that opens a new connection per request: the tests parse megabytes of MIME between
/// requests, longer than the service keeps an idle connection, and a POST on a connection the
/// server has just closed fails with a broken pipe.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

pub fn provider_of(email: &str) -> &'static str {
    if email.ends_with("gmail.test") {
        "google"
    } else {
        "microsoft"
    }
}

/// Links `email` for `user` and syncs it once; answers the account id.
pub async fn linked(app: &TestApp, user: i64, email: &str) -> i64 {
    let id = app.link(user, provider_of(email), email).await["id"]
        .as_i64()
        .expect("account id");
    sync(app, user, id).await;
    id
}

pub async fn sync(app: &TestApp, user: i64, account: i64) {
    let run = app.sync_now(user, account, "mailAccounts:sync").await;
    assert!(run["error"].is_null(), "sync: {run}");
}

pub fn error_message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn error_code(body: &Value) -> String {
    body["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `mailMessages:send` with JSON values and, optionally, an `Idempotency-Key` header.
pub async fn send(
    app: &TestApp,
    user: i64,
    values: Value,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client()
        .post(format!("{}/api/mailMessages:send", app.address))
        .bearer_auth(app.token(user))
        .json(&values);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `mailMessages:send` as `multipart/form-data`: a `values` part and file parts
/// `(field name, file name, type, bytes)`.
pub async fn send_form(
    app: &TestApp,
    user: i64,
    values: Value,
    files: &[(&str, &str, &str, &[u8])],
) -> (StatusCode, Value) {
    let boundary = "----em-test-form-7d9a1c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"values\"\r\nContent-Type: application/json\r\n\r\n{values}\r\n"
    )
    .into_bytes();
    for (field, name, ct, bytes) in files {
        // RFC 5987: UTF-8, percent-encoded (a space is %20, not +).
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"file\"; filename*=UTF-8''{encoded}\r\nContent-Type: {ct}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let resp = client()
        .post(format!("{}/api/mailMessages:send", app.address))
        .bearer_auth(app.token(user))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("send form");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `mailAttachments:upload` of raw bytes; answers the upload id.
pub async fn upload(app: &TestApp, user: i64, name: &str, content_type: &str, bytes: &[u8]) -> i64 {
    let resp = client()
        .post(format!("{}/api/mailAttachments:upload", app.address))
        .query(&[("filename", name), ("contentType", content_type)])
        .bearer_auth(app.token(user))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    let status = resp.status();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["id"].as_i64().expect("upload id")
}

/// What the sandbox accepted, oldest first (`from`: one sending mailbox).
pub async fn outbox(app: &TestApp, from: Option<&str>) -> Vec<Value> {
    let mut req = app
        .client
        .get(format!("{}/__sandbox/outbox", app.sandbox.base_url));
    if let Some(f) = from {
        req = req.query(&[("from", f)]);
    }
    let body: Value = req
        .send()
        .await
        .expect("outbox")
        .json()
        .await
        .expect("json");
    body["messages"].as_array().cloned().unwrap_or_default()
}

pub fn raw_of(entry: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(entry["raw"].as_str().expect("raw"))
        .expect("base64")
}

/// The sandbox's view of a mailbox: every message with its folder.
pub async fn mailbox(app: &TestApp, email: &str) -> Vec<Value> {
    let body: Value = app
        .client
        .get(format!(
            "{}/__sandbox/mailboxes/{email}",
            app.sandbox.base_url
        ))
        .send()
        .await
        .expect("mailbox")
        .json()
        .await
        .expect("json");
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// The MIME of a message of a sandbox mailbox.
pub async fn sandbox_raw(app: &TestApp, email: &str, id: &str) -> Vec<u8> {
    let body: Value = app
        .client
        .get(format!(
            "{}/__sandbox/mailboxes/{email}/messages/{id}",
            app.sandbox.base_url
        ))
        .send()
        .await
        .expect("message")
        .json()
        .await
        .expect("json");
    base64::engine::general_purpose::STANDARD
        .decode(body["raw"].as_str().expect("raw"))
        .expect("base64")
}

/// The copy of `message_id` (`<…>`) in a mailbox's folder, with its MIME.
async fn copy_in(
    app: &TestApp,
    email: &str,
    folder: &str,
    message_id: &str,
) -> Option<(Value, Vec<u8>)> {
    let item = mailbox(app, email)
        .await
        .into_iter()
        .find(|m| m["folder"] == folder && m["messageIdHeader"] == message_id)?;
    let raw = sandbox_raw(app, email, item["id"].as_str().expect("id")).await;
    Some((item, raw))
}

pub async fn insert(app: &TestApp, email: &str, body: Value) -> (String, String) {
    let resp = app
        .client
        .post(format!(
            "{}/__sandbox/mailboxes/{email}/messages",
            app.sandbox.base_url
        ))
        .json(&body)
        .send()
        .await
        .expect("insert");
    assert!(resp.status().is_success(), "insert: {}", resp.status());
    let v: Value = resp.json().await.expect("json");
    (
        v["id"].as_str().expect("id").to_string(),
        v["threadId"].as_str().expect("thread").to_string(),
    )
}

/// The user's local messages matching a NocoBase filter.
pub async fn local(app: &TestApp, user: i64, filter: Value) -> Vec<Value> {
    let (status, body) = app
        .call(
            user,
            None,
            "mailMessages:list",
            &[("filter", &filter.to_string()), ("pageSize", "200")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

pub async fn add_fault(app: &TestApp, fault: Value) {
    app.sandbox_post("/__sandbox/faults", fault).await;
}

fn addresses(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["address"].as_str().map(str::to_ascii_lowercase))
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect()
}

/// The bytes of the attachment named `name` (or with content id `cid`) of `raw`.
fn attachment(raw: &[u8], name: &str) -> Option<Vec<u8>> {
    let p = parse::parse(raw);
    let a = p
        .attachments
        .iter()
        .find(|a| a.filename == name || a.content_id.as_deref() == Some(name))?;
    parse::attachment(raw, a.index)
}

fn headers_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn binary(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 31) as u8
        })
        .collect()
}

const PNG: &[u8] = &[
    0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R', 1, 2, 3,
];

/// Checks a delivered new message: names, subject, bodies, both attachments and the inline image
/// byte for byte, Bcc in the sender's copy only.
#[allow(clippy::too_many_arguments)]
async fn check_new_mail(
    app: &TestApp,
    entry: &Value,
    from: &str,
    to: (&str, &str),
    cc: Option<(&str, &str)>,
    bcc: &str,
    subject: &str,
    files: &[(&str, &[u8])],
) {
    let raw = raw_of(entry);
    assert!(raw.is_ascii(), "7-bit on the wire");
    let p = parse::parse(&raw);
    assert_eq!(p.from_address.to_ascii_lowercase(), from);
    assert_eq!(p.subject, subject);
    assert_eq!(addresses(&p.to), vec![to.1.to_string()]);
    assert_eq!(names(&p.to), vec![to.0.to_string()]);
    if let Some((name, address)) = cc {
        assert_eq!(addresses(&p.cc), vec![address.to_string()]);
        assert_eq!(names(&p.cc), vec![name.to_string()]);
    }
    assert_eq!(
        addresses(&p.bcc),
        vec![bcc.to_string()],
        "the provider takes Bcc from the sender's copy"
    );
    for (name, bytes) in files {
        assert_eq!(
            attachment(&raw, name).as_deref(),
            Some(*bytes),
            "{name} byte for byte"
        );
    }
    let logo = p
        .attachments
        .iter()
        .find(|a| a.content_id.as_deref() == Some("logo"))
        .expect("the inline image");
    assert!(logo.inline);
    assert_eq!(attachment(&raw, "logo").as_deref(), Some(PNG));
    let mut envelope: Vec<String> = entry["envelope"]
        .as_array()
        .expect("envelope")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_ascii_lowercase))
        .collect();
    envelope.sort();
    let mut want: Vec<String> = [Some(to.1), cc.map(|c| c.1), Some(bcc)]
        .into_iter()
        .flatten()
        .map(str::to_string)
        .collect();
    want.sort();
    assert_eq!(envelope, want);

    // Every seeded recipient got it, and none of them sees the Bcc header.
    let message_id = entry["messageId"].as_str().expect("message id");
    for rcpt in want {
        let (_, copy) = copy_in(app, &rcpt, "inbox", message_id)
            .await
            .unwrap_or_else(|| panic!("{message_id} delivered to {rcpt}"));
        let headers = headers_of(&copy).to_ascii_lowercase();
        assert!(
            !headers.contains("\r\nbcc:"),
            "{rcpt} sees no Bcc: {headers}"
        );
        let cp = parse::parse(&copy);
        assert_eq!(cp.subject, subject);
        assert!(addresses(&cp.bcc).is_empty());
        for (name, bytes) in files {
            assert_eq!(
                attachment(&copy, name).as_deref(),
                Some(*bytes),
                "{rcpt}: {name}"
            );
        }
    }
}

async fn sent_copies(app: &TestApp, account: i64, message_id: &str) -> usize {
    local(app, MEMBER, json!({"accountId": account, "folder": "sent"}))
        .await
        .iter()
        .filter(|m| m["messageId"] == message_id)
        .count()
}

#[actix_web::test]
async fn new_mail_arrives_whole_on_both_providers_and_sync_keeps_one_sent_copy() {
    let (app, _uploads) = spawn_app(&[]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let outlook = linked(&app, MEMBER, OUTLOOK).await;
    let txt = "line one\nline two  \r\nÜnïcödé ✓ no newline at end"
        .as_bytes()
        .to_vec();
    let pdf = binary(70_000, 3);
    let txt_name = "Jahresabschluß 2026 — résumé.txt";

    // Gmail, the files uploaded first and named by id.
    let a1 = upload(&app, MEMBER, txt_name, "text/plain", &txt).await;
    let a2 = upload(&app, MEMBER, "report.pdf", "application/pdf", &pdf).await;
    let logo = upload(&app, MEMBER, "logo.png", "image/png", PNG).await;
    let subject = "Grüße — réunion 会议 ✓ with a subject long enough to be folded on the wire";
    let (status, body) = send(
        &app,
        MEMBER,
        json!({
            "accountId": gmail,
            "to": ["Zoë Ünal <bob@gmail.test>"],
            "cc": [{"name": "Пётр Дейв", "address": DAVE}],
            "bcc": [OUTLOOK],
            "subject": subject,
            "html": "<p>Hallo <b>Zoë</b> &amp; all ✓</p><img src=\"cid:logo\" alt=\"Logo\">",
            "attachments": [a1, a2, {"uploadId": logo, "contentId": "logo"}],
            "signature": false,
        }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = &body["data"];
    assert_eq!(answer["status"], "sent");
    let sent = outbox(&app, Some(GMAIL)).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["api"], "gmail.messages.send");
    assert_eq!(answer["providerMessageId"], sent[0]["providerMessageId"]);
    assert_eq!(answer["threadId"], sent[0]["threadId"]);
    assert_eq!(answer["messageId"], sent[0]["messageId"]);
    let p = parse::parse(&raw_of(&sent[0]));
    assert!(
        p.text_body
            .as_deref()
            .is_some_and(|t| t.contains("Hallo Zoë & all ✓")),
        "{:?}",
        p.text_body
    );
    check_new_mail(
        &app,
        &sent[0],
        GMAIL,
        ("Zoë Ünal", BOB),
        Some(("Пётр Дейв", DAVE)),
        OUTLOOK,
        subject,
        &[(txt_name, &txt), ("report.pdf", &pdf)],
    )
    .await;
    let gmail_mid = answer["messageId"].as_str().expect("mid").to_string();
    assert_eq!(
        sent_copies(&app, gmail, &gmail_mid).await,
        1,
        "Gmail's sent copy is stored at once"
    );

    // Outlook, the files as parts of a multipart form.
    let (status, body) = send_form(
        &app,
        MEMBER,
        json!({
            "accountId": outlook,
            "to": "Ålice Ü <alice@gmail.test>",
            "bcc": [BOB],
            "subject": "Ünïcode ✓ from Outlook",
            "html": "<p>Grüße</p><img src=\"cid:logo\">",
            "signature": false,
        }),
        &[
            ("attachments", txt_name, "text/plain", &txt),
            ("attachments", "report.pdf", "application/pdf", &pdf),
            ("inline:logo", "logo.png", "image/png", PNG),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = outbox(&app, Some(OUTLOOK)).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["api"], "graph.sendMail.mime", "our exact MIME");
    assert_eq!(body["data"]["messageId"], sent[0]["messageId"]);
    assert_eq!(
        body["data"]["providerMessageId"], sent[0]["providerMessageId"],
        "learnt from Sent Items"
    );
    check_new_mail(
        &app,
        &sent[0],
        OUTLOOK,
        ("Ålice Ü", GMAIL),
        None,
        BOB,
        "Ünïcode ✓ from Outlook",
        &[(txt_name, &txt), ("report.pdf", &pdf)],
    )
    .await;
    let outlook_mid = body["data"]["messageId"].as_str().expect("mid").to_string();

    // After sync, each sent folder holds its message once.
    sync(&app, MEMBER, gmail).await;
    sync(&app, MEMBER, outlook).await;
    assert_eq!(sent_copies(&app, gmail, &gmail_mid).await, 1);
    assert_eq!(sent_copies(&app, outlook, &outlook_mid).await, 1);
    sync(&app, MEMBER, gmail).await;
    assert_eq!(sent_copies(&app, gmail, &gmail_mid).await, 1);
    app.stop().await;
}

/// A message from Ann to the mailbox and Bob, Cc Dave, with a PDF; answers the local id, its
/// Message-ID, its provider thread and the PDF.
async fn seed_source(app: &TestApp, email: &str, account: i64) -> (i64, String, String, Vec<u8>) {
    let pdf = binary(20_000, 7);
    let (pid, thread) = insert(
        app,
        email,
        json!({
            "from": "Ann Lee <ann@example.test>",
            "to": [email, "Bob <bob@gmail.test>"],
            "cc": ["Dave <dave@contoso.test>"],
            "subject": "Quarterly numbers",
            "text": "Numbers attached.\nSee you.",
            "attachments": [{"filename": "q3.pdf", "contentType": "application/pdf",
                             "data": base64::engine::general_purpose::STANDARD.encode(&pdf)}],
        }),
    )
    .await;
    sync(app, MEMBER, account).await;
    let row = local(app, MEMBER, json!({"providerMessageId": pid}))
        .await
        .into_iter()
        .next()
        .expect("source synced");
    assert_eq!(row["threadId"], thread);
    (
        row["id"].as_i64().expect("id"),
        row["messageId"].as_str().expect("mid").to_string(),
        thread,
        pdf,
    )
}

/// Reply, reply-all and forward of `email`'s source, checked in what the sandbox received.
async fn answers_thread(app: &TestApp, email: &str, api: &str) {
    let account = linked(app, MEMBER, email).await;
    let (source, source_mid, thread, pdf) = seed_source(app, email, account).await;
    let mut seen = outbox(app, Some(email)).await.len();
    let cases = [
        ("reply", json!({}), vec!["ann@example.test"], vec![]),
        (
            "replyAll",
            json!({}),
            vec!["ann@example.test", BOB],
            vec![DAVE],
        ),
        (
            "forward",
            json!({"to": ["x@example.test"]}),
            vec!["x@example.test"],
            vec![],
        ),
    ];
    for (mode, extra, to, cc) in cases {
        let mut values = json!({
            "accountId": account,
            "mode": mode,
            "sourceMessageId": source,
            "html": "<p>Thanks, see below.</p>",
            "signature": false,
        });
        for (k, v) in extra.as_object().expect("object") {
            values[k] = v.clone();
        }
        let (status, body) = send(app, MEMBER, values, None).await;
        assert_eq!(status, StatusCode::OK, "{mode}: {body}");
        let sent = outbox(app, Some(email)).await;
        assert_eq!(sent.len(), seen + 1, "{mode}: one message");
        seen += 1;
        let entry = sent.last().expect("entry");
        assert_eq!(entry["api"], api, "{mode}");
        assert_eq!(
            entry["threadId"], thread,
            "{mode}: stays in the provider's thread"
        );
        assert_eq!(body["data"]["threadId"], thread, "{mode}");
        let raw = raw_of(entry);
        let p = parse::parse(&raw);
        assert_eq!(addresses(&p.to), to, "{mode}: to");
        assert_eq!(addresses(&p.cc), cc, "{mode}: cc");
        assert_eq!(
            p.in_reply_to.as_deref(),
            Some(source_mid.as_str()),
            "{mode}: In-Reply-To"
        );
        assert!(
            p.references
                .as_deref()
                .is_some_and(|r| r.contains(&source_mid)),
            "{mode}: References {:?}",
            p.references
        );
        let html = p.html_body.clone().unwrap_or_default();
        assert!(html.contains("Thanks, see below."), "{mode}: {html}");
        assert!(html.contains("Numbers attached."), "{mode}: quoted: {html}");
        if mode == "forward" {
            assert_eq!(p.subject, "Fwd: Quarterly numbers");
            assert_eq!(
                attachment(&raw, "q3.pdf").as_deref(),
                Some(pdf.as_slice()),
                "the forward carries the original attachment"
            );
        } else {
            assert_eq!(p.subject, "Re: Quarterly numbers", "{mode}");
            assert!(
                attachment(&raw, "q3.pdf").is_none(),
                "{mode}: no attachment"
            );
            let text = p.text_body.unwrap_or_default();
            assert!(text.contains("Numbers attached."), "{mode}: {text}");
        }
    }
}

#[actix_web::test]
async fn reply_reply_all_and_forward_thread_on_gmail() {
    let (app, _uploads) = spawn_app(&[]).await;
    answers_thread(&app, GMAIL, "gmail.messages.send").await;
    // The text part quotes the original line by line.
    let last_reply = outbox(&app, Some(GMAIL)).await[0].clone();
    let text = parse::parse(&raw_of(&last_reply))
        .text_body
        .unwrap_or_default();
    assert!(text.contains("> Numbers attached."), "{text}");
    let sends = app
        .sandbox_requests("/google/gmail/v1/users/me/messages/send")
        .await;
    assert!(
        sends.iter().all(|r| r["json"]["threadId"].is_string()),
        "every answer names its thread"
    );
    app.stop().await;
}

#[actix_web::test]
async fn reply_reply_all_and_forward_thread_natively_on_outlook() {
    let (app, _uploads) = spawn_app(&[]).await;
    answers_thread(&app, OUTLOOK, "graph.messages.send").await;
    let paths: Vec<String> = app
        .sandbox_requests("/microsoft/graph/v1.0/me/messages")
        .await
        .iter()
        .filter(|r| r["method"] != "GET")
        .map(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or_default(),
                path.rsplit('/').next().unwrap_or_default()
            )
        })
        .collect();
    for action in [
        "POST createReply",
        "POST createReplyAll",
        "POST createForward",
        "POST send",
    ] {
        assert!(paths.iter().any(|p| p == action), "{action} in {paths:?}");
    }
    assert!(
        paths.iter().any(|p| p.starts_with("PATCH ")),
        "drafts are PATCHed: {paths:?}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_send_the_provider_took_but_answered_500_for_is_not_sent_again() {
    // Three tries are enough for 500-then-429-then-OK and keep the failing case short.
    let (app, _uploads) = spawn_app(&[("EMAIL_MANAGER__PROVIDERS__RETRIES", "2")]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let outlook = linked(&app, MEMBER, OUTLOOK).await;
    let cases = [
        (gmail, GMAIL, "/google/gmail/v1/users/me/messages/send"),
        (outlook, OUTLOOK, "/microsoft/graph/v1.0/me/sendMail"),
    ];
    for (account, email, path) in cases {
        // Accepted, then answered 500: the retry finds it by Message-ID and sends nothing.
        add_fault(
            &app,
            json!({"path_prefix": path, "method": "POST", "status": 500, "after": true}),
        )
        .await;
        let (status, body) = send(
            &app,
            MEMBER,
            json!({"accountId": account, "to": [DAVE], "subject": "Accepted once", "text": "x"}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        let sent = outbox(&app, Some(email)).await;
        assert_eq!(sent.len(), 1, "{email}: sent once: {sent:?}");
        assert_eq!(
            body["data"]["providerMessageId"],
            sent[0]["providerMessageId"]
        );
        assert_eq!(body["data"]["messageId"], sent[0]["messageId"]);
        assert_eq!(
            app.sandbox_requests(path).await.len(),
            1,
            "{email}: one send call"
        );

        // Refused with 500 before it was taken, then throttled: retried, sent once.
        add_fault(
            &app,
            json!({"path_prefix": path, "method": "POST", "status": 500}),
        )
        .await;
        add_fault(
            &app,
            json!({"path_prefix": path, "method": "POST", "status": 429, "retry_after": "0"}),
        )
        .await;
        let (status, body) = send(
            &app,
            MEMBER,
            json!({"accountId": account, "to": [DAVE], "subject": "Retried", "text": "y"}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        let sent = outbox(&app, Some(email)).await;
        assert_eq!(sent.len(), 2, "{email}: the retry went once");
        assert_eq!(
            app.sandbox_requests(path).await.len(),
            4,
            "{email}: 1 + 3 send calls"
        );
    }
    // Delivered once to Dave each time.
    let dave = mailbox(&app, DAVE).await;
    for subject in ["Accepted once", "Retried"] {
        assert_eq!(
            dave.iter().filter(|m| m["subject"] == subject).count(),
            2,
            "{subject}: once from each mailbox"
        );
    }

    // A provider down for longer than the retries: 502, recorded as failed; the same key later
    // checks first and sends once.
    add_fault(&app, json!({"path_prefix": "/google/gmail/v1/users/me/messages/send", "status": 503, "count": 10})).await;
    let values = json!({"accountId": gmail, "to": [DAVE], "subject": "Later", "text": "z", "idempotencyKey": "later-1"});
    let (status, body) = send(&app, MEMBER, values.clone(), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(error_code(&body), "PROVIDER_ERROR");
    app.client
        .delete(format!("{}/__sandbox/faults", app.sandbox.base_url))
        .send()
        .await
        .expect("clear faults");
    let (status, body) = send(&app, MEMBER, values, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        outbox(&app, Some(GMAIL))
            .await
            .iter()
            .filter(|m| m["subject"] == "Later")
            .count(),
        1
    );
    app.stop().await;
}

#[actix_web::test]
async fn the_same_idempotency_key_sends_once() {
    let (app, _uploads) = spawn_app(&[]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let values = json!({"accountId": gmail, "to": [BOB], "subject": "Once", "text": "only once"});
    let (s1, first) = send(&app, MEMBER, values.clone(), Some("client-key-1")).await;
    let (s2, second) = send(&app, MEMBER, values.clone(), Some("client-key-1")).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::OK, StatusCode::OK),
        "{first} {second}"
    );
    assert_eq!(first["data"], second["data"], "the first result, again");
    assert_eq!(outbox(&app, Some(GMAIL)).await.len(), 1);

    // The key in the values works the same; another key is another message.
    let mut keyed = values.clone();
    keyed["idempotencyKey"] = json!("client-key-2");
    let (_, a) = send(&app, MEMBER, keyed.clone(), None).await;
    let (_, b) = send(&app, MEMBER, keyed.clone(), None).await;
    assert_eq!(a["data"]["id"], b["data"]["id"]);
    assert_ne!(a["data"]["id"], first["data"]["id"]);
    assert_eq!(outbox(&app, Some(GMAIL)).await.len(), 2);

    // A key used for another message is refused; another user's key is theirs alone.
    let mut other = values.clone();
    other["subject"] = json!("Different");
    let (status, body) = send(&app, MEMBER, other, Some("client-key-1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("different message"), "{body}");
    let (status, body) = send(&app, MEMBER, keyed, Some("another-key")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "header and values disagree: {body}"
    );
    assert_eq!(
        outbox(&app, Some(GMAIL)).await.len(),
        2,
        "nothing more sent"
    );
    assert_eq!(app.count("mail_outgoing").await, 2);
    app.stop().await;
}

#[actix_web::test]
async fn bad_input_is_refused_and_nothing_is_sent() {
    let (app, _uploads) = spawn_app(&[("EMAIL_MANAGER__MAIL__MAX_ATTACHMENT_BYTES", "1000")]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let theirs = app.link(OTHER_MEMBER, "google", BOB).await["id"]
        .as_i64()
        .expect("id");
    let big = upload(
        &app,
        MEMBER,
        "big.bin",
        "application/octet-stream",
        &binary(2000, 1),
    )
    .await;
    let their_upload = upload(&app, OTHER_MEMBER, "t.txt", "text/plain", b"theirs").await;
    let (status, draft) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailDrafts:create",
            &[],
            Some(json!({"accountId": theirs, "to": [DAVE], "text": "their draft"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    let their_draft = draft["data"]["id"].as_i64().expect("draft id");
    let (status, template) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:create",
            &[],
            Some(json!({"name": "t", "subject": "Hi {{name}}", "html": "<p>{{name}} {{missing}}</p>"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{template}");
    let template = template["data"]["id"].as_i64().expect("template id");

    let ok = |extra: Value| {
        let mut v = json!({"accountId": gmail, "to": [BOB], "subject": "s", "text": "t"});
        for (k, val) in extra.as_object().expect("object") {
            v[k] = val.clone();
        }
        v
    };
    let cases: Vec<(&str, Value, StatusCode, Vec<&str>)> = vec![
        (
            "invalid addresses, each named",
            ok(
                json!({"to": ["ok@example.test", "bob@"], "cc": ["no at"], "bcc": ["a b@example.test"]}),
            ),
            StatusCode::BAD_REQUEST,
            vec!["to[1]", "cc[0]", "bcc[0]"],
        ),
        (
            "an alias the mailbox does not have",
            ok(json!({"from": "stranger@example.test"})),
            StatusCode::BAD_REQUEST,
            vec!["from"],
        ),
        (
            "an alias still awaiting verification",
            ok(json!({"from": "alice.pending@example.test"})),
            StatusCode::BAD_REQUEST,
            vec!["from"],
        ),
        (
            "a file over mail.max_attachment_bytes",
            ok(json!({"attachments": [big]})),
            StatusCode::PAYLOAD_TOO_LARGE,
            vec!["attachments[0]", "big.bin"],
        ),
        (
            "an unknown account",
            ok(json!({"accountId": 999_999})),
            StatusCode::NOT_FOUND,
            vec!["Mail account"],
        ),
        (
            "another user's account",
            ok(json!({"accountId": theirs})),
            StatusCode::NOT_FOUND,
            vec!["Mail account"],
        ),
        (
            "another user's draft",
            ok(json!({"draftId": their_draft})),
            StatusCode::NOT_FOUND,
            vec!["Draft"],
        ),
        (
            "another user's upload",
            ok(json!({"attachments": [their_upload]})),
            StatusCode::NOT_FOUND,
            vec!["attachments[0]"],
        ),
        (
            "an unknown source message",
            ok(json!({"mode": "reply", "sourceMessageId": 999_999})),
            StatusCode::NOT_FOUND,
            vec!["Source message"],
        ),
        (
            "a template with unknown variables",
            json!({"accountId": gmail, "to": [BOB], "templateId": template, "variables": {"name": "Ann"}}),
            StatusCode::BAD_REQUEST,
            vec!["{{missing}}"],
        ),
        (
            "nobody to send to",
            json!({"accountId": gmail, "subject": "s", "text": "t"}),
            StatusCode::BAD_REQUEST,
            vec!["recipient"],
        ),
        (
            "an unknown field",
            ok(json!({"colour": "red"})),
            StatusCode::BAD_REQUEST,
            vec!["colour"],
        ),
    ];
    for (what, values, want, words) in cases {
        let (status, body) = send(&app, MEMBER, values, Some(&format!("k-{what}"))).await;
        assert_eq!(status, want, "{what}: {body}");
        let message = error_message(&body);
        for w in words {
            assert!(message.contains(w), "{what}: {w} in {message}");
        }
    }
    assert!(
        outbox(&app, None).await.is_empty(),
        "nothing reached a provider"
    );
    assert_eq!(app.count("mail_outgoing").await, 0, "no send was recorded");
    // The other user's draft is untouched.
    let (status, _) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailDrafts:get",
            &[("filterByTk", &their_draft.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[actix_web::test]
async fn aliases_are_synced_verified_only_and_a_reply_keeps_the_identity() {
    let (app, _uploads) = spawn_app(&[]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let outlook = linked(&app, MEMBER, OUTLOOK).await;
    let list = |account: i64| {
        let app = &app;
        async move {
            let (status, body) = app
                .call(
                    MEMBER,
                    None,
                    "mailAliases:list",
                    &[("accountId", &account.to_string())],
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["data"]
                .as_array()
                .expect("list")
                .iter()
                .map(|a| a["address"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(gmail).await, vec![GMAIL], "the primary address always");
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAliases:sync",
            &[],
            Some(json!({"accountId": gmail})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut synced = list(gmail).await;
    synced.sort();
    assert_eq!(
        synced,
        vec!["alice.sales@gmail.test", GMAIL],
        "verified only"
    );
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAliases:sync",
            &[],
            Some(json!({"accountId": outlook})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        list(outlook).await,
        vec![OUTLOOK],
        "Outlook: the primary address"
    );
    let (status, all) = app.call(MEMBER, None, "mailAliases:list", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["data"].as_array().map(Vec::len), Some(3));
    let (status, _) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailAliases:list",
            &[("accountId", &gmail.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's account");

    // Sending as the alias.
    let (status, body) = send(
        &app,
        MEMBER,
        json!({"accountId": gmail, "from": "alice.sales@gmail.test", "to": [BOB], "subject": "As sales", "text": "x"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = outbox(&app, Some(GMAIL)).await.pop().expect("sent");
    let p = parse::parse(&raw_of(&entry));
    assert_eq!(p.from_address, "alice.sales@gmail.test");
    assert_eq!(p.from_name, "Alice (Sales)");

    // Mail to the alias is answered from the alias.
    insert(
        &app,
        GMAIL,
        json!({"from": "Ann <ann@example.test>", "to": ["alice.sales@gmail.test"], "subject": "Offer", "text": "?"}),
    )
    .await;
    sync(&app, MEMBER, gmail).await;
    let source = local(&app, MEMBER, json!({"subject": "Offer"})).await[0]["id"]
        .as_i64()
        .expect("id");
    let (status, body) = send(
        &app,
        MEMBER,
        json!({"accountId": gmail, "mode": "reply", "sourceMessageId": source, "text": "Yes"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = outbox(&app, Some(GMAIL)).await.pop().expect("sent");
    let p = parse::parse(&raw_of(&entry));
    assert_eq!(
        p.from_address, "alice.sales@gmail.test",
        "the identity the source was sent to"
    );
    assert_eq!(addresses(&p.to), vec!["ann@example.test"]);
    app.stop().await;
}

#[actix_web::test]
async fn large_files_go_through_the_upload_endpoints() {
    let (app, _uploads) = spawn_app(&[]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let outlook = linked(&app, MEMBER, OUTLOOK).await;

    // Gmail: over the simple limit, the media upload endpoint.
    let six_mb = binary(6 << 20, 5);
    let id = upload(&app, MEMBER, "big.bin", "application/octet-stream", &six_mb).await;
    let (status, body) = send(
        &app,
        MEMBER,
        json!({"accountId": gmail, "to": [BOB], "subject": "Big", "text": "see file", "attachments": [id]}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = outbox(&app, Some(GMAIL)).await.pop().expect("sent");
    assert_eq!(entry["api"], "gmail.upload.media");
    assert_eq!(attachment(&raw_of(&entry), "big.bin"), Some(six_mb.clone()));

    // Outlook: a 4 MB file makes a draft with an upload session (two ranged PUTs), then send.
    let four_mb = binary(4 << 20, 9);
    let id = upload(
        &app,
        MEMBER,
        "four.bin",
        "application/octet-stream",
        &four_mb,
    )
    .await;
    let (status, body) = send(
        &app,
        MEMBER,
        json!({"accountId": outlook, "to": [GMAIL], "subject": "Big from Outlook", "html": "<p>file</p>", "attachments": [id]}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = outbox(&app, Some(OUTLOOK)).await.pop().expect("sent");
    assert_eq!(entry["api"], "graph.messages.send");
    assert_eq!(attachment(&raw_of(&entry), "four.bin"), Some(four_mb));
    assert_eq!(
        body["data"]["messageId"], entry["messageId"],
        "Exchange's Message-ID"
    );
    let puts = app.sandbox_requests("/microsoft/api/v2.0").await;
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert!(
        puts.iter()
            .all(|r| r["headers"].get("authorization").is_none()),
        "no bearer to the pre-authenticated URL"
    );
    assert_eq!(
        app.sandbox_requests("/microsoft/graph/v1.0/me/sendMail")
            .await
            .len(),
        0
    );
    // Nothing left in Drafts.
    assert!(mailbox(&app, OUTLOOK)
        .await
        .iter()
        .all(|m| m["folder"] != "drafts"));
    app.stop().await;
}
