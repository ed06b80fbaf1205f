//! The mail center's read side on the real service: `mailMessages:list/get/update/destroy` and
//! `mailAttachments:get/download`. Messages are either seeded through the code path sync uses
//! (`sync::new_message`, real MIME) or synced from the sandbox.

use diesel::prelude::*;
use email_manager::providers::MessageState;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sync::{GMAIL, OUTLOOK};

const OTHER_GMAIL: &str = "bob@gmail.test";

struct Seed<'a> {
    id: &'a str,
    thread: &'a str,
    folder: &'a str,
    unread: bool,
    starred: bool,
    from: &'a str,
    to: &'a str,
    cc: Option<&'a str>,
    subject: &'a str,
    /// RFC 3339.
    date: &'a str,
    text: Option<&'a str>,
    html: Option<&'a str>,
    /// (file name, content type, bytes, content id)
    attachments: Vec<(&'a str, &'a str, Vec<u8>, Option<&'a str>)>,
}

impl Default for Seed<'_> {
    fn default() -> Self {
        Seed {
            id: "p0",
            thread: "t0",
            folder: "inbox",
            unread: false,
            starred: false,
            from: "Ann Lee <ann@example.test>",
            to: "Alice Example <alice@gmail.test>",
            cc: None,
            subject: "Hello",
            date: "2026-11-20T10:00:00Z",
            text: Some("Hello there"),
            html: None,
            attachments: Vec::new(),
        }
    }
}

fn b64_lines(data: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A MIME part as text: its headers, a blank line, its body.
fn leaf(content_type: &str, extra: &str, data: &[u8]) -> String {
    format!(
        "Content-Type: {content_type}\r\n{extra}Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64_lines(data)
    )
}

fn multipart(kind: &str, parts: Vec<String>) -> String {
    let boundary = format!("seed-{kind}-b");
    let mut out = format!("Content-Type: multipart/{kind}; boundary=\"{boundary}\"\r\n\r\n");
    for p in parts {
        out.push_str(&format!("--{boundary}\r\n{p}"));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// RFC 5322 for a seed, shaped like real mail: text and HTML as multipart/alternative, inline
/// images beside them in multipart/related, files around that in multipart/mixed.
fn raw(s: &Seed) -> Vec<u8> {
    use base64::Engine;
    let date = chrono::DateTime::parse_from_rfc3339(s.date)
        .expect("date")
        .to_rfc2822();
    let mut out = format!(
        "From: {}\r\nTo: {}\r\n{}Subject: =?utf-8?B?{}?=\r\nDate: {date}\r\nMessage-ID: <{}@seed.test>\r\nMIME-Version: 1.0\r\n",
        s.from,
        s.to,
        s.cc.map(|c| format!("Cc: {c}\r\n")).unwrap_or_default(),
        base64::engine::general_purpose::STANDARD.encode(s.subject),
        s.id
    );
    let text = s
        .text
        .map(|t| leaf("text/plain; charset=utf-8", "", t.as_bytes()));
    let html = s
        .html
        .map(|h| leaf("text/html; charset=utf-8", "", h.as_bytes()));
    let mut body = match (text, html) {
        (Some(t), Some(h)) => multipart("alternative", vec![t, h]),
        (Some(t), None) => t,
        (None, Some(h)) => h,
        (None, None) => leaf("text/plain; charset=utf-8", "", b""),
    };
    let part = |name: &str, ct: &str, data: &[u8], cid: Option<&str>| match cid {
        Some(cid) => leaf(
            &format!("{ct}; name=\"{name}\""),
            &format!("Content-ID: <{cid}>\r\nContent-Disposition: inline; filename=\"{name}\"\r\n"),
            data,
        ),
        None => leaf(
            &format!("{ct}; name=\"{name}\""),
            &format!("Content-Disposition: attachment; filename=\"{name}\"\r\n"),
            data,
        ),
    };
    let inline: Vec<String> = s
        .attachments
        .iter()
        .filter(|a| a.3.is_some())
        .map(|(n, ct, d, cid)| part(n, ct, d, *cid))
        .collect();
    let files: Vec<String> = s
        .attachments
        .iter()
        .filter(|a| a.3.is_none())
        .map(|(n, ct, d, cid)| part(n, ct, d, *cid))
        .collect();
    if !inline.is_empty() {
        body = multipart("related", std::iter::once(body).chain(inline).collect());
    }
    if !files.is_empty() {
        body = multipart("mixed", std::iter::once(body).chain(files).collect());
    }
    out.push_str(&body);
    out.into_bytes()
}

/// Stores `s` for the account exactly as sync would; answers the local id.
async fn seed(app: &TestApp, account_id: i64, user_id: i64, s: &Seed<'_>) -> i64 {
    let state = MessageState {
        provider_message_id: s.id.to_string(),
        thread_id: Some(s.thread.to_string()),
        folder: s.folder.to_string(),
        labels: Vec::new(),
        unread: s.unread,
        starred: s.starred,
        draft: false,
        received_at: Some(
            chrono::DateTime::parse_from_rfc3339(s.date)
                .expect("date")
                .timestamp_millis(),
        ),
        todo_due_at: None,
    };
    let (message, attachments) = email_manager::sync::new_message(
        account_id,
        user_id,
        1,
        email_manager::db::now_millis(),
        &state,
        &raw(s),
    );
    app.state
        .db
        .run(move |c| email_manager::db::messages::insert(c, &message, &attachments))
        .await
        .expect("insert")
}

async fn list(app: &TestApp, user: i64, query: &[(&str, &str)]) -> (StatusCode, Value) {
    app.call(user, None, "mailMessages:list", query, None).await
}

/// The subjects of a list answer, in order.
fn subjects(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn subjects_for(app: &TestApp, query: &[(&str, &str)]) -> Vec<String> {
    let (status, body) = list(app, MEMBER, query).await;
    assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
    subjects(&body)
}

async fn filtered(app: &TestApp, filter: Value) -> Vec<String> {
    subjects_for(app, &[("filter", &filter.to_string())]).await
}

fn id_of(app_ids: &[(String, i64)], name: &str) -> i64 {
    app_ids
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| *id)
        .expect("seeded")
}

/// Links alice (MEMBER) and bob (OTHER_MEMBER) and seeds six messages for alice, one for bob.
async fn seeded() -> (TestApp, i64, i64, Vec<(String, i64)>) {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let mine = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    let theirs = app.link(OTHER_MEMBER, "google", OTHER_GMAIL).await["id"]
        .as_i64()
        .expect("id");
    let seeds = [
        Seed {
            id: "m1",
            thread: "t1",
            unread: true,
            from: "Ann Lee <ann@example.test>",
            to: "Bob Stone <bob@example.test>",
            subject: "Quarterly invoice",
            date: "2026-11-20T10:00:00Z",
            text: Some("Please find the invoice attached."),
            attachments: vec![(
                "invoice.pdf",
                "application/pdf",
                b"%PDF-1.4 test".to_vec(),
                None,
            )],
            ..Seed::default()
        },
        Seed {
            id: "m2",
            thread: "t1",
            from: "Bob Stone <bob@example.test>",
            subject: "Re: Quarterly invoice",
            date: "2026-11-21T09:00:00Z",
            text: Some("Thanks, paid today."),
            ..Seed::default()
        },
        Seed {
            id: "m3",
            thread: "t2",
            folder: "archive",
            starred: true,
            from: "Carol Diaz <carol@example.test>",
            cc: Some("Dave <dave@example.test>"),
            subject: "Lunch on Friday?",
            date: "2026-11-22T12:00:00Z",
            text: Some("Shall we meet at the café at noon?"),
            ..Seed::default()
        },
        Seed {
            id: "m4",
            thread: "t3",
            unread: true,
            from: "news@shop.example",
            subject: "Big sale 50% off",
            date: "2026-11-23T08:00:00Z",
            text: None,
            html: Some("<p>Everything <b>must</b> go</p>"),
            ..Seed::default()
        },
        Seed {
            id: "m5",
            thread: "t1",
            folder: "sent",
            from: "Alice Example <alice@gmail.test>",
            to: "Ann Lee <ann@example.test>",
            subject: "Re: Quarterly invoice",
            date: "2026-11-24T16:00:00Z",
            text: Some("Received, thank you."),
            ..Seed::default()
        },
        Seed {
            id: "m6",
            thread: "t4",
            folder: "trash",
            from: "spam@junk.test",
            subject: "Winner",
            date: "2026-11-19T00:00:00Z",
            text: Some("You won"),
            ..Seed::default()
        },
    ];
    let mut ids = Vec::new();
    for s in &seeds {
        ids.push((s.id.to_string(), seed(&app, mine, MEMBER, s).await));
    }
    let other = Seed {
        id: "o1",
        from: "Ann Lee <ann@example.test>",
        to: "Bob <bob@gmail.test>",
        subject: "Another invoice",
        text: Some("invoice for bob"),
        attachments: vec![("bob.pdf", "application/pdf", b"%PDF".to_vec(), None)],
        ..Seed::default()
    };
    ids.push(("o1".into(), seed(&app, theirs, OTHER_MEMBER, &other).await));
    (app, mine, theirs, ids)
}

#[actix_web::test]
async fn lists_filter_sort_page_and_count() {
    let (app, mine, theirs, ids) = seeded().await;

    let (status, body) = list(&app, MEMBER, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        subjects(&body),
        [
            "Re: Quarterly invoice",
            "Big sale 50% off",
            "Lunch on Friday?",
            "Re: Quarterly invoice",
            "Quarterly invoice",
            "Winner"
        ]
    );
    assert_eq!(
        body["meta"],
        json!({"count": 6, "countExact": true, "page": 1, "pageSize": 20, "totalPage": 1})
    );
    let first = &body["data"][4];
    assert_eq!(first["id"], id_of(&ids, "m1"));
    assert_eq!(first["accountId"], mine);
    assert_eq!(first["providerMessageId"], "m1");
    assert_eq!(first["threadId"], "t1");
    assert_eq!(first["messageId"], "<m1@seed.test>");
    assert_eq!(
        first["from"],
        json!({"name": "Ann Lee", "address": "ann@example.test"})
    );
    assert_eq!(
        first["to"],
        json!([{"name": "Bob Stone", "address": "bob@example.test"}])
    );
    assert_eq!(first["date"], "2026-11-20T10:00:00.000Z");
    assert_eq!(first["unread"], true);
    assert_eq!(first["hasAttachments"], true);
    assert_eq!(first["snippet"], "Please find the invoice attached.");
    assert!(first.get("textBody").is_none(), "lists carry no bodies");

    // Pages: a full page counts the rest (from the per-folder counters).
    let (_, body) = list(&app, MEMBER, &[("page", "2"), ("pageSize", "2")]).await;
    assert_eq!(
        subjects(&body),
        ["Lunch on Friday?", "Re: Quarterly invoice"]
    );
    assert_eq!(
        body["meta"],
        json!({"count": 6, "countExact": true, "page": 2, "pageSize": 2, "totalPage": 3})
    );
    let (_, body) = list(&app, MEMBER, &[("page", "9"), ("pageSize", "2")]).await;
    assert_eq!(subjects(&body), Vec::<String>::new());
    assert_eq!(body["meta"]["count"], 6);
    for (filter, count) in [
        (json!({"folder": "inbox"}), 3),
        (json!({"folder": "inbox", "unread": true}), 2),
        (json!({"unread": false, "folder": {"$ne": "trash"}}), 3),
        (json!({"accountId": mine, "starred": {"$isTruly": true}}), 1),
        (json!({"folder": {"$in": ["archive", "trash"]}}), 2),
        (json!({"subject": {"$includes": "invoice"}}), 3),
    ] {
        let (status, body) = list(
            &app,
            MEMBER,
            &[("filter", &filter.to_string()), ("pageSize", "1")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["meta"]["count"], count, "{filter}: {body}");
        assert_eq!(body["meta"]["totalPage"], count, "{filter}");
    }

    // Filters.
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"folder": "inbox"}),
            vec![
                "Big sale 50% off",
                "Re: Quarterly invoice",
                "Quarterly invoice",
            ],
        ),
        (json!({"starred": true}), vec!["Lunch on Friday?"]),
        (json!({"hasAttachments": true}), vec!["Quarterly invoice"]),
        (
            json!({"from": {"$includes": "ANN"}}),
            vec!["Quarterly invoice"],
        ),
        (
            json!({"from": "BOB@example.test"}),
            vec!["Re: Quarterly invoice"],
        ),
        (
            json!({"to": {"$includes": "bob@"}}),
            vec!["Quarterly invoice"],
        ),
        (json!({"to": {"$includes": "name"}}), vec![]),
        (
            json!({"cc": {"$includes": "dave"}}),
            vec!["Lunch on Friday?"],
        ),
        (json!({"cc": {"$empty": true}, "folder": "archive"}), vec![]),
        (
            json!({"subject": {"$includes": "50%"}}),
            vec!["Big sale 50% off"],
        ),
        (
            json!({"subject": {"$notIncludes": "invoice"}, "folder": {"$ne": "trash"}}),
            vec!["Big sale 50% off", "Lunch on Friday?"],
        ),
        (
            json!({"date": {"$dateOn": "2026-11-22"}}),
            vec!["Lunch on Friday?"],
        ),
        (
            json!({"date": {"$dateBetween": ["2026-11-20", "2026-11-21"]}}),
            vec!["Re: Quarterly invoice", "Quarterly invoice"],
        ),
        (
            json!({"date": {"$dateBefore": "2026-11-20"}}),
            vec!["Winner"],
        ),
        (
            json!({"date": {"$dateAfter": "2026-11-23"}}),
            vec!["Re: Quarterly invoice"],
        ),
        (
            json!({"date": {"$gte": "2026-11-23T08:00:00Z"}}),
            vec!["Re: Quarterly invoice", "Big sale 50% off"],
        ),
        (
            json!({"threadId": "t1", "folder": {"$notIn": ["sent"]}}),
            vec!["Re: Quarterly invoice", "Quarterly invoice"],
        ),
        (
            json!({"$or": [{"starred": true}, {"folder": "trash"}]}),
            vec!["Lunch on Friday?", "Winner"],
        ),
        (
            json!({"$and": [{"unread": true}, {"$or": [{"folder": "archive"}, {"hasAttachments": true}]}]}),
            vec!["Quarterly invoice"],
        ),
        (
            json!({"id": {"$in": [id_of(&ids, "m3"), id_of(&ids, "m6")]}}),
            vec!["Lunch on Friday?", "Winner"],
        ),
        (
            json!({"messageId": "<m4@seed.test>"}),
            vec!["Big sale 50% off"],
        ),
        (
            json!({"todo": {"$isFalsy": true}, "size": {"$gt": 0}, "folder": "trash"}),
            vec!["Winner"],
        ),
        // Another user's account is not a way in.
        (json!({"accountId": theirs}), vec![]),
        (json!({"id": id_of(&ids, "o1")}), vec![]),
    ];
    for (filter, want) in cases {
        assert_eq!(filtered(&app, filter.clone()).await, want, "{filter}");
    }
    assert_eq!(
        subjects_for(&app, &[("filter[subject][$includes]", "lunch")]).await,
        ["Lunch on Friday?"]
    );

    // Sort.
    assert_eq!(
        subjects_for(&app, &[("sort", "subject")]).await,
        [
            "Big sale 50% off",
            "Lunch on Friday?",
            "Quarterly invoice",
            "Re: Quarterly invoice",
            "Re: Quarterly invoice",
            "Winner"
        ]
    );
    let (_, body) = list(&app, MEMBER, &[("sort[]", "from"), ("sort[]", "-date")]).await;
    let senders: Vec<&str> = body["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["from"]["address"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        senders,
        [
            "alice@gmail.test",
            "ann@example.test",
            "bob@example.test",
            "carol@example.test",
            "news@shop.example",
            "spam@junk.test"
        ]
    );
    assert_eq!(
        subjects_for(&app, &[("sort", "date"), ("pageSize", "1")]).await,
        ["Winner"]
    );

    // fields and appends.
    let (_, body) = list(
        &app,
        MEMBER,
        &[
            ("fields", "id,subject"),
            ("appends[]", "attachments"),
            ("filter", &json!({"hasAttachments": true}).to_string()),
        ],
    )
    .await;
    let row = &body["data"][0];
    let mut keys: Vec<&str> = row
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["attachments", "id", "subject"], "{row}");
    assert_eq!(row["attachments"][0]["filename"], "invoice.pdf");
    assert_eq!(row["attachments"][0]["contentType"], "application/pdf");
    assert_eq!(row["attachments"][0]["size"], 13);
    assert_eq!(row["attachments"][0]["inline"], false);

    // Bad input answers 400 naming what is wrong.
    for (query, needle) in [
        (vec![("filter", json!({"nope": 1}).to_string())], "\"nope\""),
        (
            vec![("filter", json!({"subject": {"$gt": "x"}}).to_string())],
            "$gt",
        ),
        (
            vec![("filter", json!({"unread": {"$like": 1}}).to_string())],
            "\"$like\"",
        ),
        (vec![("filter", "{not json".to_string())], "JSON"),
        (vec![("sort", "-nope".to_string())], "\"nope\""),
        (vec![("appends", "folders".to_string())], "\"folders\""),
        (vec![("fields", "id,body".to_string())], "\"body\""),
        (vec![("groupBy", "sender".to_string())], "groupBy"),
        (vec![("pageSize", "0".to_string())], "pageSize"),
        (vec![("search", "x ".repeat(300))], "search"),
    ] {
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = list(&app, MEMBER, &q).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
        assert_eq!(body["errors"][0]["code"], "INVALID_INPUT");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{query:?}: {message}");
    }
    // The other user sees only their own message.
    let (_, body) = list(&app, OTHER_MEMBER, &[]).await;
    assert_eq!(subjects(&body), ["Another invoice"]);
    app.stop().await;
}

#[actix_web::test]
async fn search_matches_word_prefixes_in_every_part_and_threads_group() {
    let (app, _mine, _theirs, _ids) = seeded().await;
    let search = |q: &'static str| {
        let app = &app;
        async move { subjects_for(app, &[("search", q)]).await }
    };
    let invoices = vec![
        "Re: Quarterly invoice",
        "Re: Quarterly invoice",
        "Quarterly invoice",
    ];
    assert_eq!(search("invoice").await, invoices, "subject and body");
    assert_eq!(search("INVO").await, invoices, "word prefixes, any case");
    assert_eq!(
        search("invoice paid").await,
        ["Re: Quarterly invoice"],
        "every word"
    );
    assert_eq!(search("carol").await, ["Lunch on Friday?"], "the sender");
    assert_eq!(search("dave").await, ["Lunch on Friday?"], "cc recipients");
    assert_eq!(
        search("stone").await,
        ["Re: Quarterly invoice", "Quarterly invoice"],
        "to and from names"
    );
    assert_eq!(
        search("café").await,
        ["Lunch on Friday?"],
        "non-ASCII words"
    );
    assert_eq!(
        search("must go").await,
        ["Big sale 50% off"],
        "text of an HTML-only body"
    );
    assert_eq!(
        search("shop.example").await,
        ["Big sale 50% off"],
        "an address is its words"
    );
    assert!(search("nowhere").await.is_empty());
    assert!(search("voice").await.is_empty(), "prefixes, not substrings");
    assert_eq!(search(" ?! ").await.len(), 6, "no words: no search");

    // Search with filters, counted on a full page.
    for (filter, q, count) in [
        (json!({"folder": "inbox"}), "invoice", 2),
        (json!({}), "invoice", 3),
        (json!({"unread": true}), "invoice", 1),
        (json!({"folder": "archive"}), "invoice", 0),
    ] {
        let (status, body) = list(
            &app,
            MEMBER,
            &[
                ("filter", &filter.to_string()),
                ("search", q),
                ("pageSize", "1"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["meta"]["count"], count, "{filter} {q}: {body}");
    }

    // Threads: one row per thread, its latest message among those matching.
    let (status, body) = list(&app, MEMBER, &[("groupBy", "thread")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        subjects(&body),
        [
            "Re: Quarterly invoice",
            "Big sale 50% off",
            "Lunch on Friday?",
            "Winner"
        ]
    );
    let t1 = &body["data"][0];
    assert_eq!(t1["providerMessageId"], "m5");
    assert_eq!(
        (t1["threadCount"].as_i64(), t1["threadUnread"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(body["data"][1]["threadCount"], 1);
    assert_eq!(body["meta"]["count"], 4);
    let (_, body) = list(
        &app,
        MEMBER,
        &[
            ("groupBy", "thread"),
            ("filter", &json!({"folder": "inbox"}).to_string()),
            ("pageSize", "1"),
            ("page", "2"),
        ],
    )
    .await;
    let row = &body["data"][0];
    assert_eq!(
        row["providerMessageId"], "m2",
        "the latest in the inbox: {body}"
    );
    assert_eq!(row["threadCount"], 3);
    assert_eq!(body["meta"]["count"], 2);
    // Thread counts under each kind of filter (a full page, so they are counted).
    for (filter, threads) in [
        (json!({"unread": true}), 2),
        (json!({"starred": true}), 1),
        (json!({"hasAttachments": true}), 1),
        (json!({"todo": true}), 0),
        (json!({"folder": {"$in": ["inbox", "sent"]}}), 2),
        (json!({"folder": {"$ne": "trash"}, "unread": false}), 2),
        (json!({"$or": [{"unread": true}, {"folder": "trash"}]}), 3),
    ] {
        let (status, body) = list(
            &app,
            MEMBER,
            &[
                ("groupBy", "thread"),
                ("filter", &filter.to_string()),
                ("pageSize", "1"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        assert_eq!(body["meta"]["count"], threads, "{filter}: {body}");
    }
    let (_, body) = list(&app, MEMBER, &[("groupBy", "thread"), ("search", "paid")]).await;
    assert_eq!(subjects(&body), ["Re: Quarterly invoice"]);
    assert_eq!(body["data"][0]["providerMessageId"], "m2");
    let (_, body) = list(
        &app,
        MEMBER,
        &[("groupBy", "thread"), ("fields", "id,threadCount")],
    )
    .await;
    assert_eq!(
        body["data"][0].as_object().map(|o| o.len()),
        Some(2),
        "{body}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn get_shows_safe_html_inline_images_and_attachments() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let mine = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    let html = r#"<html><head><style>p{color:red}</style><script>alert(1)</script></head>
<body onload="steal()"><p>Hi <a href="javascript:alert(1)">there</a> and <a href="https://example.test/x">here</a></p>
<img src="cid:logo@seed.test" alt="logo"><img src="https://tracker.example/p.gif">
<img src=x onerror="alert(2)"><iframe src="https://evil.test"></iframe>
<form action="https://evil.test"><input name=p></form>
<p style="background:url(javascript:alert(3)); color: blue">styled</p></body></html>"#;
    let id = seed(
        &app,
        mine,
        MEMBER,
        &Seed {
            id: "h1",
            text: Some("Hi there"),
            html: Some(html),
            attachments: vec![
                (
                    "logo.png",
                    "image/png",
                    vec![0x89, b'P', b'N', b'G', 1, 2, 3],
                    Some("logo@seed.test"),
                ),
                ("notes.txt", "text/plain", b"some notes".to_vec(), None),
            ],
            ..Seed::default()
        },
    )
    .await;
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:get",
            &[("filterByTk", &id.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let m = &body["data"];
    assert_eq!(m["textBody"], "Hi there");
    assert_eq!(m["remoteImagesBlocked"], true);
    let out = m["html"].as_str().expect("html");
    for bad in [
        "<script",
        "alert",
        "onload",
        "onerror",
        "javascript",
        "<iframe",
        "<form",
        "<input",
        "<style",
        "tracker.example",
        "cid:",
    ] {
        assert!(!out.contains(bad), "{bad} survived: {out}");
    }
    assert!(out.contains("href=\"https://example.test/x\""), "{out}");
    assert!(
        out.contains("rel=\"noopener noreferrer\"") && out.contains("target=\"_blank\""),
        "{out}"
    );
    assert!(out.contains("color: blue"), "{out}");
    let attachments = m["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 2, "{m}");
    let logo = attachments
        .iter()
        .find(|a| a["filename"] == "logo.png")
        .expect("logo");
    assert_eq!(logo["inline"], true);
    assert_eq!(logo["contentId"], "logo@seed.test");
    assert_eq!(logo["size"], 7);
    let inline_url = format!(
        "/api/mailAttachments:download?filterByTk={}&amp;inline=1",
        logo["id"]
    );
    assert!(out.contains(&inline_url), "{inline_url} not in {out}");
    assert_eq!(m["hasAttachments"], true, "a non-inline attachment counts");

    let (_, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:get",
            &[
                ("filterByTk", &id.to_string()),
                ("allowRemoteImages", "true"),
            ],
            None,
        )
        .await;
    assert_eq!(body["data"]["remoteImagesBlocked"], false);
    let out = body["data"]["html"].as_str().expect("html");
    assert!(out.contains("https://tracker.example/p.gif"), "{out}");
    assert!(!out.contains("alert"), "{out}");

    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAttachments:get",
            &[("filterByTk", &logo["id"].to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["filename"], "logo.png");
    assert_eq!(body["data"]["messageId"], id);

    for (query, status) in [
        (vec![("filterByTk", "abc")], StatusCode::BAD_REQUEST),
        (vec![], StatusCode::BAD_REQUEST),
        (vec![("filterByTk", "999999")], StatusCode::NOT_FOUND),
        (
            vec![("filterByTk", "1"), ("allowRemoteImages", "maybe")],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, body) = app
            .call(MEMBER, None, "mailMessages:get", &query, None)
            .await;
        assert_eq!(s, status, "{query:?}: {body}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn another_users_messages_and_attachments_answer_404_to_every_action() {
    let (app, _mine, _theirs, ids) = seeded().await;
    let theirs = id_of(&ids, "o1").to_string();
    let mine = id_of(&ids, "m1").to_string();
    let attachment: i64 = {
        let id = id_of(&ids, "o1");
        app.state
            .db
            .run(move |c| {
                use email_manager::db::schema::mail_attachments::dsl as a;
                Ok(a::mail_attachments
                    .filter(a::message_id.eq(id))
                    .select(a::id)
                    .first::<i64>(c)?)
            })
            .await
            .expect("attachment")
    };
    let attachment = attachment.to_string();
    type Call<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<Value>);
    let calls: Vec<Call> = vec![
        (
            "mailMessages:get",
            vec![("filterByTk", theirs.as_str())],
            None,
        ),
        (
            "mailMessages:update",
            vec![("filterByTk", theirs.as_str())],
            Some(json!({"unread": false})),
        ),
        (
            "mailMessages:update",
            vec![],
            Some(json!({"filterByTk": [mine.as_str(), theirs.as_str()], "todo": true})),
        ),
        (
            "mailMessages:destroy",
            vec![("filterByTk", theirs.as_str())],
            Some(json!({})),
        ),
        (
            "mailMessages:destroy",
            vec![
                ("filterByTk[]", mine.as_str()),
                ("filterByTk[]", theirs.as_str()),
            ],
            Some(json!({})),
        ),
        (
            "mailAttachments:get",
            vec![("filterByTk", attachment.as_str())],
            None,
        ),
        (
            "mailAttachments:download",
            vec![("filterByTk", attachment.as_str())],
            None,
        ),
    ];
    for (action, query, body) in calls {
        let (status, answer) = app.call(MEMBER, None, action, &query, body).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{action} {query:?}: {answer}"
        );
        assert_eq!(answer["errors"][0]["code"], "NOT_FOUND");
    }
    // Nothing changed, for either user, and nothing reached a provider.
    let (_, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:get",
            &[("filterByTk", mine.as_str())],
            None,
        )
        .await;
    assert_eq!(
        (
            body["data"]["todo"].as_bool(),
            body["data"]["folder"].as_str()
        ),
        (Some(false), Some("inbox"))
    );
    let (_, body) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailMessages:get",
            &[("filterByTk", theirs.as_str())],
            None,
        )
        .await;
    assert_eq!(body["data"]["unread"], false);
    assert_eq!(body["data"]["folder"], "inbox");
    assert!(
        provider_requests(&app, "/google/gmail/v1/users/me/messages/")
            .await
            .is_empty()
    );
    assert_eq!(app.count("mail_outbox").await, 0);
    app.stop().await;
}

#[actix_web::test]
async fn local_only_updates_and_bad_update_input() {
    let (app, _mine, _theirs, ids) = seeded().await;
    let m1 = id_of(&ids, "m1").to_string();
    let m2 = id_of(&ids, "m2").to_string();
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:update",
            &[("filterByTk", &m1)],
            Some(json!({"todo": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["todo"], true);
    assert_eq!(body["data"]["id"].to_string(), m1);
    assert_eq!(body["meta"]["pending"], json!([]));
    // Many at once, in either NocoBase form: the answer is then a list.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:update",
            &[("filterByTk[]", &m1), ("filterByTk[]", &m2)],
            Some(json!({"todo": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");
    assert!(body["data"]
        .as_array()
        .expect("list")
        .iter()
        .all(|m| m["todo"] == false));
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:update",
            &[],
            Some(json!({"filterByTk": [m2.parse::<i64>().expect("id")], "todo": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["todo"], true);
    let (_, body) = list(
        &app,
        MEMBER,
        &[("filter", &json!({"todo": true}).to_string())],
    )
    .await;
    assert_eq!(subjects(&body), ["Re: Quarterly invoice"]);
    // To-do is local: nothing went to Gmail.
    assert!(
        provider_requests(&app, "/google/gmail/v1/users/me/messages/")
            .await
            .is_empty()
    );
    assert_eq!(app.count("mail_outbox").await, 0);

    for (query, values, needle) in [
        (
            vec![("filterByTk", m1.as_str())],
            json!({}),
            "Nothing to update",
        ),
        (
            vec![("filterByTk", m1.as_str())],
            json!({"read": true}),
            "unknown field `read`",
        ),
        (
            vec![("filterByTk", m1.as_str())],
            json!({"unread": "yes"}),
            "Invalid values",
        ),
        (
            vec![("filterByTk", m1.as_str())],
            json!({"folder": "sent"}),
            "folder must be one of",
        ),
        (
            vec![("filterByTk", m1.as_str())],
            json!({"folder": "user:Label_404"}),
            "folder must be one of",
        ),
        (
            vec![("filterByTk", "x")],
            json!({"todo": true}),
            "filterByTk",
        ),
        (vec![], json!({"todo": true}), "filterByTk is required"),
        (
            vec![],
            json!({"filterByTk": {"a": 1}, "todo": true}),
            "filterByTk",
        ),
    ] {
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailMessages:update",
                &query,
                Some(values.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{values}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{values}: {message}");
    }
    let (_, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:get",
            &[("filterByTk", &m1)],
            None,
        )
        .await;
    assert_eq!(body["data"]["folder"], "inbox", "bad input changes nothing");
    app.stop().await;
}

// ---- against the sandbox ----

async fn link_and_sync(app: &TestApp, email: &str) -> i64 {
    let provider = if email.ends_with("gmail.test") {
        "google"
    } else {
        "microsoft"
    };
    let id = app.link(MEMBER, provider, email).await["id"]
        .as_i64()
        .expect("id");
    let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
    assert!(run["error"].is_null(), "{run}");
    id
}

/// A client of its own for each sandbox control call: a pooled connection the sandbox closed
/// after its keep-alive (while a long step ran) would fail the next call.
fn fresh() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// Requests the sandbox saw under `prefix`.
async fn provider_requests(app: &TestApp, prefix: &str) -> Vec<Value> {
    let body: Value = fresh()
        .get(format!("{}/__sandbox/requests", app.sandbox.base_url))
        .query(&[("path_prefix", prefix)])
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    body["requests"].as_array().cloned().unwrap_or_default()
}

async fn add_fault(app: &TestApp, fault: Value) {
    let resp = fresh()
        .post(format!("{}/__sandbox/faults", app.sandbox.base_url))
        .json(&fault)
        .send()
        .await
        .expect("fault");
    assert!(resp.status().is_success(), "fault: {}", resp.status());
}

async fn clear_faults(app: &TestApp) {
    let resp = fresh()
        .delete(format!("{}/__sandbox/faults", app.sandbox.base_url))
        .send()
        .await
        .expect("clear faults");
    assert!(resp.status().is_success());
}

/// A message of the sandbox mailbox as the sandbox holds it.
async fn at_sandbox(app: &TestApp, email: &str, id: &str) -> Value {
    fresh()
        .get(format!(
            "{}/__sandbox/mailboxes/{email}/messages/{id}",
            app.sandbox.base_url
        ))
        .send()
        .await
        .expect("sandbox")
        .json()
        .await
        .expect("json")
}

async fn insert_at_sandbox(app: &TestApp, email: &str, body: Value) -> String {
    let resp = fresh()
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
    v["id"].as_str().expect("id").to_string()
}

/// The local row of a provider message.
async fn local(app: &TestApp, provider_id: &str) -> Value {
    let (status, body) = list(
        app,
        MEMBER,
        &[(
            "filter",
            &json!({"providerMessageId": provider_id}).to_string(),
        )],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"][0].clone()
}

async fn update(app: &TestApp, id: i64, values: Value) -> (StatusCode, Value) {
    app.call(
        MEMBER,
        None,
        "mailMessages:update",
        &[("filterByTk", &id.to_string())],
        Some(values),
    )
    .await
}

#[actix_web::test]
async fn a_synced_mailbox_lists_searches_groups_and_opens_for_both_providers() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        app.generate(email, 120, 5).await;
        let hostile = insert_at_sandbox(
            &app,
            email,
            json!({
                "from": "Security <security@evil.example.net>",
                "to": [email],
                "subject": "Account locked zebrafinch",
                "html": "<p onclick=\"x()\">Unlock <a href=\"javascript:alert(1)\">now</a></p><script>alert(2)</script><img src=\"https://tracker.example.net/p.gif\">",
            }),
        )
        .await;
        let account = link_and_sync(&app, email).await;
        let sandbox = app.sandbox_mailbox(email).await;
        let (_, body) = list(
            &app,
            MEMBER,
            &[
                ("filter", &json!({"accountId": account}).to_string()),
                ("pageSize", "5"),
            ],
        )
        .await;
        assert_eq!(body["meta"]["count"], sandbox.len(), "{email}");
        let inbox = sandbox.values().filter(|s| s.folder == "inbox").count();
        let (_, body) = list(
            &app,
            MEMBER,
            &[
                (
                    "filter",
                    &json!({"accountId": account, "folder": "inbox"}).to_string(),
                ),
                ("pageSize", "5"),
            ],
        )
        .await;
        assert_eq!(body["meta"]["count"], inbox, "{email} inbox");
        let unread = sandbox.values().filter(|s| s.unread).count();
        let (_, body) = list(
            &app,
            MEMBER,
            &[
                (
                    "filter",
                    &json!({"accountId": account, "unread": true}).to_string(),
                ),
                ("pageSize", "5"),
            ],
        )
        .await;
        assert_eq!(body["meta"]["count"], unread, "{email} unread");

        // Threads as the provider groups them.
        let threads: std::collections::BTreeSet<&str> =
            sandbox.values().map(|s| s.thread_id.as_str()).collect();
        let (_, body) = list(
            &app,
            MEMBER,
            &[
                ("filter", &json!({"accountId": account}).to_string()),
                ("groupBy", "thread"),
                ("pageSize", "200"),
            ],
        )
        .await;
        assert_eq!(body["meta"]["count"], threads.len(), "{email} threads");
        let total: i64 = body["data"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["threadCount"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(
            total as usize,
            sandbox.len(),
            "{email}: thread counts add up"
        );

        // Search finds the message by a word of its subject, scoped to the account.
        let (_, body) = list(
            &app,
            MEMBER,
            &[
                ("search", "zebrafin"),
                ("filter", &json!({"accountId": account}).to_string()),
            ],
        )
        .await;
        assert_eq!(
            body["data"].as_array().map(Vec::len),
            Some(1),
            "{email}: {body}"
        );
        let row = &body["data"][0];
        assert_eq!(row["providerMessageId"], hostile);
        let (_, body) = app
            .call(
                MEMBER,
                None,
                "mailMessages:get",
                &[("filterByTk", &row["id"].to_string())],
                None,
            )
            .await;
        let html = body["data"]["html"].as_str().expect("html");
        for bad in ["<script", "onclick", "javascript", "tracker.example.net"] {
            assert!(!html.contains(bad), "{email}: {bad} in {html}");
        }
        assert!(html.contains("Unlock"), "{html}");
        assert_eq!(body["data"]["remoteImagesBlocked"], true);

        // The generator's own hostile messages come back clean too.
        let (_, body) = list(
            &app,
            MEMBER,
            &[
                ("search", "locked customer"),
                ("filter", &json!({"accountId": account}).to_string()),
            ],
        )
        .await;
        for row in body["data"].as_array().expect("rows") {
            let (_, m) = app
                .call(
                    MEMBER,
                    None,
                    "mailMessages:get",
                    &[("filterByTk", &row["id"].to_string())],
                    None,
                )
                .await;
            if let Some(html) = m["data"]["html"].as_str() {
                for bad in [
                    "<script",
                    "onerror",
                    "onload",
                    "javascript",
                    "<iframe",
                    "<form",
                    "evil.example.net/steal",
                ] {
                    assert!(!html.contains(bad), "{email}: {bad} in {html}");
                }
            }
        }
    }
    app.stop().await;
}

#[actix_web::test]
async fn read_star_and_move_reach_gmail_and_outlook() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        let ids: Vec<String> = vec![
            insert_at_sandbox(&app, email, json!({"from": "a@example.test", "to": [email], "subject": "one", "text": "1", "unread": true})).await,
            insert_at_sandbox(&app, email, json!({"from": "b@example.test", "to": [email], "subject": "two", "text": "2", "unread": true})).await,
            insert_at_sandbox(&app, email, json!({"from": "c@example.test", "to": [email], "subject": "three", "text": "3"})).await,
        ];
        link_and_sync(&app, email).await;
        let one = local(&app, &ids[0]).await["id"].as_i64().expect("id");
        let two = local(&app, &ids[1]).await["id"].as_i64().expect("id");
        let three = local(&app, &ids[2]).await["id"].as_i64().expect("id");

        let (status, body) = update(&app, one, json!({"unread": false, "starred": true})).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert_eq!(
            (
                body["data"]["unread"].as_bool(),
                body["data"]["starred"].as_bool()
            ),
            (Some(false), Some(true))
        );
        assert_eq!(body["meta"]["pending"], json!([]));
        let s = at_sandbox(&app, email, &ids[0]).await;
        assert_eq!(
            (s["unread"].as_bool(), s["starred"].as_bool()),
            (Some(false), Some(true)),
            "{email}: {s}"
        );

        // Several at once (Gmail: one batchModify).
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailMessages:update",
                &[
                    ("filterByTk[]", &two.to_string()),
                    ("filterByTk[]", &three.to_string()),
                ],
                Some(json!({"folder": "archive", "unread": false})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert!(body["data"]
            .as_array()
            .expect("list")
            .iter()
            .all(|m| m["folder"] == "archive"));
        for id in &ids[1..] {
            let s = at_sandbox(&app, email, id).await;
            assert_eq!(
                (s["folder"].as_str(), s["unread"].as_bool()),
                (Some("archive"), Some(false)),
                "{email}: {s}"
            );
        }
        // Back to the inbox, unstarred.
        let (status, body) = update(&app, two, json!({"folder": "inbox", "starred": false})).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert_eq!(at_sandbox(&app, email, &ids[1]).await["folder"], "inbox");
        assert_eq!(app.count("mail_outbox").await, 0);

        // The next sync agrees with what was done here.
        let account = local(&app, &ids[0]).await["accountId"]
            .as_i64()
            .expect("account");
        app.sync_now(MEMBER, account, "mailAccounts:sync").await;
        assert_eq!(local(&app, &ids[0]).await["starred"], true);
        assert_eq!(local(&app, &ids[1]).await["folder"], "inbox");
        assert_eq!(local(&app, &ids[2]).await["folder"], "archive");
    }
    app.stop().await;
}

#[actix_web::test]
async fn destroy_moves_to_the_providers_trash() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        let a = insert_at_sandbox(
            &app,
            email,
            json!({"from": "a@example.test", "to": [email], "subject": "bin me", "text": "x"}),
        )
        .await;
        let b = insert_at_sandbox(
            &app,
            email,
            json!({"from": "b@example.test", "to": [email], "subject": "bin me too", "text": "y"}),
        )
        .await;
        let account = link_and_sync(&app, email).await;
        let la = local(&app, &a).await["id"].as_i64().expect("id");
        let lb = local(&app, &b).await["id"].as_i64().expect("id");
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailMessages:destroy",
                &[
                    ("filterByTk[]", &la.to_string()),
                    ("filterByTk[]", &lb.to_string()),
                ],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert!(
            body["data"]
                .as_array()
                .expect("list")
                .iter()
                .all(|m| m["folder"] == "trash"),
            "{body}"
        );
        for id in [&a, &b] {
            assert_eq!(
                at_sandbox(&app, email, id).await["folder"],
                "trash",
                "{email}"
            );
        }
        app.sync_now(MEMBER, account, "mailAccounts:sync").await;
        assert_eq!(
            local(&app, &a).await["folder"],
            "trash",
            "the next sync confirms"
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_provider_failing_for_a_while_keeps_the_change_and_the_outbox_delivers_it() {
    let app = TestApp::spawn_with(&[
        ("EMAIL_MANAGER__PROVIDERS__RETRIES", "1"),
        ("EMAIL_MANAGER__MAIL__OUTBOX_RETRY_SECS", "1"),
    ])
    .await;
    app.configure_providers().await;
    for (email, fault) in [
        (
            GMAIL,
            json!({"path_prefix": "/google/gmail/v1/users/me/messages/batchModify", "status": 503, "count": 1000}),
        ),
        (
            OUTLOOK,
            json!({"path_prefix": "/microsoft/graph/v1.0/me/messages/", "method": "PATCH", "status": 503, "count": 1000}),
        ),
    ] {
        let id = insert_at_sandbox(&app, email, json!({"from": "a@example.test", "to": [email], "subject": "later", "text": "x", "unread": true})).await;
        let account = link_and_sync(&app, email).await;
        let local_id = local(&app, &id).await["id"].as_i64().expect("id");
        add_fault(&app, fault).await;

        let (status, body) = update(&app, local_id, json!({"unread": false})).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert_eq!(body["data"]["unread"], false, "kept here");
        assert_eq!(body["meta"]["pending"], json!([local_id]));
        assert_eq!(
            at_sandbox(&app, email, &id).await["unread"],
            true,
            "{email}: not there yet"
        );
        assert_eq!(app.count("mail_outbox").await, 1);

        // A full resync sees the provider's stale state and must not take it.
        app.sync_now(MEMBER, account, "mailAccounts:resync").await;
        assert_eq!(
            local(&app, &id).await["unread"],
            false,
            "{email}: sync kept the pending change"
        );

        // The provider recovers: the worker delivers and the outbox empties.
        clear_faults(&app).await;
        wait_for(&format!("{email}: the outbox delivers"), 30, || async {
            at_sandbox(&app, email, &id).await["unread"] == false
                && app.count("mail_outbox").await == 0
        })
        .await;
        app.sync_now(MEMBER, account, "mailAccounts:sync").await;
        assert_eq!(local(&app, &id).await["unread"], false);
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_provider_refusing_for_good_undoes_the_change_with_a_clear_error() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let denied = json!({"error": {"code": 403, "message": "Insufficient Permission", "errors": [{"message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions"}], "status": "PERMISSION_DENIED"}});
    for (email, fault, values, field, action) in [
        (
            GMAIL,
            json!({"path_prefix": "/google/gmail/v1/users/me/messages/batchModify", "status": 400, "count": 1}),
            json!({"unread": false}),
            "unread",
            "mark as read",
        ),
        (
            GMAIL,
            json!({"path_prefix": "/google/gmail/v1/users/me/messages/batchModify", "status": 403, "count": 1, "body": denied}),
            json!({"starred": true}),
            "starred",
            "star",
        ),
        (
            OUTLOOK,
            json!({"path_prefix": "/microsoft/graph/v1.0/me/messages/", "method": "PATCH", "status": 403, "count": 1}),
            json!({"unread": false}),
            "unread",
            "mark as read",
        ),
        (
            OUTLOOK,
            json!({"path_prefix": "/microsoft/graph/v1.0/me/messages/", "method": "POST", "status": 400, "count": 1}),
            json!({"folder": "archive"}),
            "folder",
            "move to archive",
        ),
    ] {
        let id = insert_at_sandbox(&app, email, json!({"from": "a@example.test", "to": [email], "subject": format!("refused {action}"), "text": "x", "unread": true})).await;
        let provider = if email == GMAIL {
            "google"
        } else {
            "microsoft"
        };
        let account = match app
            .accounts(MEMBER)
            .await
            .iter()
            .find(|a| a["email"] == email)
        {
            Some(a) => a["id"].as_i64().expect("id"),
            None => app.link(MEMBER, provider, email).await["id"]
                .as_i64()
                .expect("id"),
        };
        app.sync_now(MEMBER, account, "mailAccounts:sync").await;
        let before = local(&app, &id).await;
        add_fault(&app, fault).await;
        let (status, body) = update(&app, before["id"].as_i64().expect("id"), values.clone()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{email} {values}: {body}");
        assert_eq!(body["errors"][0]["code"], "PROVIDER_ERROR");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(action) && message.contains("undone"),
            "{message}"
        );
        assert!(
            message.contains(if email == GMAIL {
                "Google"
            } else {
                "Microsoft"
            }),
            "{message}"
        );
        let after = local(&app, &id).await;
        assert_eq!(after[field], before[field], "{email}: {field} undone");
        let at = at_sandbox(&app, email, &id).await;
        assert_eq!(
            (at["unread"].as_bool(), at["folder"].as_str()),
            (Some(true), Some("inbox")),
            "{email}"
        );
        assert_eq!(app.count("mail_outbox").await, 0);
    }
    app.stop().await;
}

/// A few MB of bytes no text codec would leave alone.
fn binary(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[actix_web::test]
async fn attachments_download_byte_identical_with_the_right_headers() {
    use base64::Engine;
    let app =
        TestApp::spawn_with(&[("EMAIL_MANAGER__MAIL__MAX_ATTACHMENT_BYTES", "5000000")]).await;
    app.configure_providers().await;
    let big = binary(3_000_000, 1);
    let too_big = binary(5_200_000, 2);
    let png = [
        &[0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a][..],
        &binary(900, 3),
    ]
    .concat();
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    for email in [GMAIL, OUTLOOK] {
        let id = insert_at_sandbox(
            &app,
            email,
            json!({
                "from": "files@example.test",
                "to": [email],
                "subject": format!("files for {email}"),
                "html": "<p>see <img src=\"cid:chart@example.test\"></p>",
                "attachments": [
                    {"filename": "Übersicht \"Q4\" 2026.bin", "contentType": "application/octet-stream", "data": b64(&big)},
                    {"filename": "huge.bin", "contentType": "application/octet-stream", "data": b64(&too_big)},
                    {"filename": "chart.png", "contentType": "image/png", "data": b64(&png), "contentId": "chart@example.test"},
                ],
            }),
        )
        .await;
        link_and_sync(&app, email).await;
        let row = local(&app, &id).await;
        let (_, m) = app
            .call(
                MEMBER,
                None,
                "mailMessages:get",
                &[("filterByTk", &row["id"].to_string())],
                None,
            )
            .await;
        let attachments = m["data"]["attachments"]
            .as_array()
            .expect("attachments")
            .clone();
        assert_eq!(attachments.len(), 3, "{email}: {m}");
        let by_name = |n: &str| {
            attachments
                .iter()
                .find(|a| a["filename"] == n)
                .unwrap_or_else(|| panic!("{n} in {attachments:?}"))
                .clone()
        };
        let download = |att: &Value, inline: bool| {
            let mut url = format!(
                "{}/api/mailAttachments:download?filterByTk={}",
                app.address, att["id"]
            );
            if inline {
                url.push_str("&inline=1");
            }
            app.client.get(url).bearer_auth(app.token(MEMBER)).send()
        };

        let file = by_name("Übersicht \"Q4\" 2026.bin");
        assert_eq!(file["size"], big.len());
        let resp = download(&file, false).await.expect("download");
        assert_eq!(resp.status(), StatusCode::OK, "{email}");
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(h("content-type"), "application/octet-stream");
        assert_eq!(
            h("content-disposition"),
            "attachment; filename=\"_bersicht \\\"Q4\\\" 2026.bin\"; filename*=UTF-8''%C3%9Cbersicht%20%22Q4%22%202026.bin"
        );
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert!(h("content-security-policy").starts_with("sandbox"));
        let bytes = resp.bytes().await.expect("bytes");
        assert!(
            bytes.as_ref() == big.as_slice(),
            "{email}: {} bytes differ from {}",
            bytes.len(),
            big.len()
        );

        let chart = by_name("chart.png");
        let resp = download(&chart, true).await.expect("inline");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "image/png");
        assert_eq!(
            resp.headers()["content-disposition"],
            "inline; filename=\"chart.png\""
        );
        assert_eq!(resp.bytes().await.expect("png").as_ref(), png.as_slice());
        // Shown inline only when the type is safe to show.
        let resp = download(&file, true).await.expect("download");
        assert!(resp.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .starts_with("attachment;"));
        drop(resp);

        let prefix = if email == GMAIL {
            "/google/gmail"
        } else {
            "/microsoft/graph"
        };
        let requests_before = provider_requests(&app, prefix).await.len();
        let huge = by_name("huge.bin");
        let resp = download(&huge, false).await.expect("download");
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{email}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["errors"][0]["code"], "PAYLOAD_TOO_LARGE");
        assert_eq!(
            provider_requests(&app, prefix).await.len(),
            requests_before,
            "refused before anything is fetched"
        );
        // Another user gets 404 for the same attachment.
        let resp = app
            .client
            .get(format!(
                "{}/api/mailAttachments:download?filterByTk={}",
                app.address, file["id"]
            ))
            .bearer_auth(app.token(OTHER_MEMBER))
            .send()
            .await
            .expect("other");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    app.stop().await;
}

/// A search for a rare word is read starting from the full-text index, one for a common word by
/// walking the date index; both plans must answer the same thing (SQLite chooses between them by
/// the number of matches; PostgreSQL's planner does it by itself).
#[actix_web::test]
async fn rare_and_common_words_find_the_same_messages_either_way() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let mine = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    for i in 0..240 {
        let subject = format!("Weekly report {i}");
        let text = match i {
            7 => "common words and a rare quetzal".to_string(),
            100 => "the quetzal again, unread".to_string(),
            _ => format!("common words number {i}"),
        };
        let date = format!("2026-10-{:02}T{:02}:00:00Z", 1 + i / 10, i % 10);
        let id = format!("w{i}");
        let thread = format!("th{}", i / 2);
        seed(
            &app,
            mine,
            MEMBER,
            &Seed {
                id: &id,
                thread: &thread,
                folder: if i % 3 == 0 { "archive" } else { "inbox" },
                unread: i == 100,
                subject: &subject,
                date: &date,
                text: Some(&text),
                ..Seed::default()
            },
        )
        .await;
    }
    let ask = |query: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = list(app, MEMBER, &q).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            (
                subjects(&body),
                body["meta"]["count"].as_i64().unwrap_or(-1),
            )
        }
    };
    // Rare: two matches among 240.
    let (found, count) = ask(vec![("search", "quetzal".into())]).await;
    assert_eq!(
        (found, count),
        (
            vec![
                "Weekly report 100".to_string(),
                "Weekly report 7".to_string()
            ],
            2
        )
    );
    let (found, count) = ask(vec![("search", "quetzal".into()), ("pageSize", "1".into())]).await;
    assert_eq!((found, count), (vec!["Weekly report 100".to_string()], 2));
    let (found, count) = ask(vec![
        ("search", "quetzal".into()),
        ("filter", json!({"unread": true}).to_string()),
        ("pageSize", "1".into()),
    ])
    .await;
    assert_eq!((found, count), (vec!["Weekly report 100".to_string()], 1));
    let (found, _) = ask(vec![
        ("search", "quetz".into()),
        ("filter", json!({"folder": "inbox"}).to_string()),
        ("sort", "date".into()),
    ])
    .await;
    assert_eq!(found, ["Weekly report 7", "Weekly report 100"]);
    let (found, count) = ask(vec![
        ("search", "quetzal".into()),
        ("groupBy", "thread".into()),
        ("pageSize", "1".into()),
    ])
    .await;
    assert_eq!((found, count), (vec!["Weekly report 100".to_string()], 2));
    // Common: every message but one matches; pages and counts as without a search.
    let (found, count) = ask(vec![
        ("search", "common words".into()),
        ("pageSize", "3".into()),
    ])
    .await;
    assert_eq!(count, 239);
    assert_eq!(
        found,
        [
            "Weekly report 239",
            "Weekly report 238",
            "Weekly report 237"
        ]
    );
    let (_, count) = ask(vec![
        ("search", "common".into()),
        ("filter", json!({"folder": "archive"}).to_string()),
        ("pageSize", "1".into()),
    ])
    .await;
    assert_eq!(count, 80);
    let (_, count) = ask(vec![
        ("search", "report".into()),
        ("groupBy", "thread".into()),
        ("pageSize", "5".into()),
    ])
    .await;
    assert_eq!(count, 120);
    app.stop().await;
}

/// Distinct threads straight from the messages, for the counters to be checked against.
async fn distinct_threads(app: &TestApp, account_id: i64, folder: Option<&str>) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let folder = folder.map(str::to_string);
    app.state
        .db
        .run(move |c| {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM (SELECT DISTINCT thread_id FROM mail_messages \
                 WHERE account_id = {account_id}{}) t",
                folder.map_or(String::new(), |f| format!(" AND folder = '{f}'"))
            );
            Ok(diesel::sql_query(sql).get_result::<N>(c)?.n)
        })
        .await
        .expect("count")
}

#[actix_web::test]
async fn thread_counts_follow_inserts_moves_rethreads_and_deletes() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let account = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    let mut ids = Vec::new();
    for (i, (thread, folder)) in [
        ("t1", "inbox"),
        ("t1", "inbox"),
        ("t1", "sent"),
        ("t2", "inbox"),
        ("t3", "archive"),
        ("t3", "inbox"),
        ("t4", "sent"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("c{i}");
        let date = format!("2026-11-{:02}T10:00:00Z", i + 1);
        let one = Seed {
            id: &id,
            thread,
            folder,
            subject: "Threads",
            date: &date,
            ..Seed::default()
        };
        ids.push(seed(&app, account, MEMBER, &one).await);
    }
    // The API's count (a page of one: counted, not read off the page) against the messages.
    let check = |what: &'static str| {
        let app = &app;
        async move {
            for folder in [
                None,
                Some("inbox"),
                Some("sent"),
                Some("archive"),
                Some("trash"),
            ] {
                let mut query = vec![("groupBy", "thread".to_string()), ("pageSize", "1".into())];
                if let Some(f) = folder {
                    query.push(("filter", json!({ "folder": f }).to_string()));
                }
                let query: Vec<(&str, &str)> =
                    query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let (status, body) = list(app, MEMBER, &query).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let want = distinct_threads(app, account, folder).await;
                assert_eq!(
                    body["meta"]["count"], want,
                    "{what}, folder {folder:?}: {body}"
                );
            }
        }
    };
    check("seeded").await;
    assert_eq!(distinct_threads(&app, account, None).await, 4);
    let run = |sql: String| {
        let app = &app;
        async move {
            app.state
                .db
                .run(move |c| Ok(diesel::sql_query(sql).execute(c)?))
                .await
                .expect("sql");
        }
    };
    // The last inbox message of t3 moves out; one of t1's two inbox messages moves to trash.
    run(format!(
        "UPDATE mail_messages SET folder = 'archive' WHERE id = {}",
        ids[5]
    ))
    .await;
    run(format!(
        "UPDATE mail_messages SET folder = 'trash' WHERE id = {}",
        ids[0]
    ))
    .await;
    check("moved").await;
    // t4 joins t2 (a provider that re-threads a message); the read state alone changes nothing.
    run(format!(
        "UPDATE mail_messages SET thread_id = 't2' WHERE id = {}",
        ids[6]
    ))
    .await;
    run(format!(
        "UPDATE mail_messages SET unread = NOT unread WHERE id = {}",
        ids[1]
    ))
    .await;
    check("re-threaded").await;
    // Deletes: a thread's last message in a folder, then a whole thread.
    run(format!("DELETE FROM mail_messages WHERE id = {}", ids[2])).await;
    run("DELETE FROM mail_messages WHERE thread_id = 't3'".into()).await;
    check("deleted").await;
    assert_eq!(distinct_threads(&app, account, None).await, 2);
    // Unlinking removes the account's mail and its counters with it.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:destroy",
            &[("filterByTk", &account.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = list(&app, MEMBER, &[("groupBy", "thread"), ("pageSize", "1")]).await;
    assert_eq!(body["meta"]["count"], 0, "{body}");
    app.stop().await;
}

#[actix_web::test]
async fn substring_filters_count_exactly_what_they_list() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let account = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    let people = [
        (
            "Grace HOPPER <grace@navy.test>",
            "Ann Lee <ann@example.test>",
            "Budget",
        ),
        (
            "Grace Hopper <ghopper@navy.test>",
            "Bob <bob@example.test>, Ann <ann@example.test>",
            "budget REVIEW",
        ),
        (
            "Émile Zola <emile@paris.test>",
            "hopper@navy.test",
            "Déjà vu",
        ),
        (
            "news@shop.test",
            "Addressee <list@shop.test>",
            "The name game",
        ),
        (
            "Kelvin Scale <k@lab.test>",
            "Ann Lee <ann@example.test>",
            "Review of the budget",
        ),
        // A tab in a name: stored as `\t` in the JSON, so "tlee" is in the text, not the name.
        (
            "Tab Sender <tab@lab.test>",
            "=?utf-8?Q?Ann=09Lee?= <al@tab.test>",
            "Tabs",
        ),
    ];
    for (i, (from, to, subject)) in people.iter().enumerate() {
        let id = format!("s{i}");
        let date = format!("2026-11-{:02}T10:00:00Z", i + 1);
        let one = Seed {
            id: &id,
            thread: &id,
            from,
            to,
            subject,
            date: &date,
            ..Seed::default()
        };
        seed(&app, account, MEMBER, &one).await;
    }
    // ASCII needles, and the answers the LIKE conditions give; each counted on a page of one.
    for (filter, want) in [
        (json!({"from": {"$includes": "hopper"}}), 2),
        (json!({"from": {"$includes": "HOPPER"}}), 2),
        // Not across the name and the address, nor into the JSON keys.
        (json!({"from": {"$includes": "hopper grace"}}), 0),
        (json!({"to": {"$includes": "address"}}), 1),
        (json!({"to": {"$includes": "name"}}), 0),
        (json!({"to": {"$includes": "ess\"}"}}), 0),
        (json!({"to": {"$includes": "ann@example"}}), 3),
        (json!({"to": {"$includes": "ANN@Example"}}), 3),
        (json!({"to": {"$includes": "addressee"}}), 1),
        (json!({"to": {"$includes": "hopper"}}), 1),
        (json!({"to": {"$includes": "lee"}}), 3),
        (json!({"to": {"$includes": "tlee"}}), 0),
        (json!({"to": {"$includes": "ann\tlee"}}), 1),
        (json!({"subject": {"$includes": "budget"}}), 3),
        (
            json!({"subject": {"$includes": "budget", "$notIncludes": "review"}}),
            1,
        ),
        (
            json!({"accountId": account, "subject": {"$includes": "review"}}),
            2,
        ),
        (
            json!({"from": {"$includes": "navy"}, "to": {"$includes": "ann"}}),
            2,
        ),
        (json!({"from": {"$includes": "navy"}, "unread": false}), 2),
        // Each in its own index, and no message has both.
        (
            json!({"from": {"$includes": "zola"}, "subject": {"$includes": "budget"}}),
            0,
        ),
        (
            json!({"from": {"$includes": "hopper"}, "subject": {"$includes": "review"}}),
            1,
        ),
    ] {
        let (status, body) = list(
            &app,
            MEMBER,
            &[("filter", &filter.to_string()), ("pageSize", "1")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        assert_eq!(body["meta"]["count"], want, "{filter}: {body}");
        let listed = filtered(&app, filter.clone()).await;
        assert_eq!(listed.len(), want as usize, "{filter}: {listed:?}");
    }
    let (_, body) = list(&app, MEMBER, &[("search", "tabs")]).await;
    assert_eq!(body["data"][0]["to"][0]["name"], "Ann\tLee", "{body}");
    // Beyond ASCII the backends lower-case differently (SQLite's LOWER only folds ASCII); on
    // either, the count is what the list shows.
    for filter in [
        json!({"from": {"$includes": "émile"}}),
        json!({"from": {"$includes": "ÉMILE"}}),
        json!({"subject": {"$includes": "déjà"}}),
        json!({"from": {"$includes": "kelvin"}}),
    ] {
        let (_, body) = list(
            &app,
            MEMBER,
            &[("filter", &filter.to_string()), ("pageSize", "1")],
        )
        .await;
        let listed = filtered(&app, filter.clone()).await;
        assert_eq!(
            body["meta"]["count"],
            listed.len(),
            "{filter}: {listed:?} {body}"
        );
    }
    let (_, body) = list(
        &app,
        MEMBER,
        &[(
            "filter",
            &json!({"subject": {"$includes": "déjà"}}).to_string(),
        )],
    )
    .await;
    assert_eq!(
        subjects(&body),
        ["Déjà vu"],
        "the same case matches on both"
    );
    app.stop().await;
}

/// The SQLite indexes key each message by account, folder and id (migration 12), and the
/// PostgreSQL ones do not: either way a search and a substring filter see exactly the user's
/// messages of the asked accounts and folders, after moves and deletes, and a batch inserted
/// out of folder order gets each message its own id.
#[actix_web::test]
async fn search_follows_accounts_moves_and_deletes() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let gmail = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    let outlook = app.link(MEMBER, "microsoft", OUTLOOK).await["id"]
        .as_i64()
        .expect("id");
    let theirs = app.link(OTHER_MEMBER, "google", OTHER_GMAIL).await["id"]
        .as_i64()
        .expect("id");
    // One batch, folders out of order (insert_many puts them in by folder).
    let batch: Vec<_> = [
        ("g1", "trash"),
        ("g2", "inbox"),
        ("g3", "sent"),
        ("g4", "user:Label_9"),
        ("g5", "inbox"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (id, folder))| {
        let date = format!("2026-11-{:02}T10:00:00Z", 10 + i);
        let subject = format!("Zephyr {id}");
        let filename = format!("{id}.txt");
        let s = Seed {
            id,
            thread: id,
            folder,
            from: if *id == "g5" {
                "Ann Lee <ann@example.test>"
            } else {
                "Zed Zephyrine <zed@example.test>"
            },
            subject: &subject,
            date: &date,
            text: Some("a zephyr passes"),
            attachments: vec![(
                &filename,
                "text/plain",
                format!("attachment of {id}").into_bytes(),
                None,
            )],
            ..Seed::default()
        };
        let state = MessageState {
            provider_message_id: id.to_string(),
            thread_id: Some(id.to_string()),
            folder: folder.to_string(),
            labels: Vec::new(),
            unread: false,
            starred: false,
            draft: false,
            received_at: chrono::DateTime::parse_from_rfc3339(&date)
                .ok()
                .map(|d| d.timestamp_millis()),
            todo_due_at: None,
        };
        email_manager::sync::new_message(gmail, MEMBER, 1, 0, &state, &raw(&s))
    })
    .collect();
    let ids = app
        .state
        .db
        .run(move |c| email_manager::db::messages::insert_many(c, &batch))
        .await
        .expect("insert_many");
    for (id, pid) in ids.iter().zip(["g1", "g2", "g3", "g4", "g5"]) {
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailMessages:get",
                &[("filterByTk", &id.to_string()), ("appends", "attachments")],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["providerMessageId"], pid, "{body}");
        assert_eq!(
            body["data"]["attachments"][0]["filename"],
            format!("{pid}.txt"),
            "{body}"
        );
    }
    let o1 = seed(
        &app,
        outlook,
        MEMBER,
        &Seed {
            id: "o1",
            thread: "o1",
            subject: "Zephyr o1",
            from: "Zed Zephyrine <zed@example.test>",
            text: Some("zephyrs all around"),
            ..Seed::default()
        },
    )
    .await;
    seed(
        &app,
        theirs,
        OTHER_MEMBER,
        &Seed {
            id: "x1",
            thread: "x1",
            subject: "Zephyr x1",
            from: "Zed Zephyrine <zed@example.test>",
            text: Some("a zephyr passes"),
            ..Seed::default()
        },
    )
    .await;

    let ask = |filter: Value, search: Option<&'static str>| {
        let app = &app;
        async move {
            let f = filter.to_string();
            let mut q = vec![("filter", f.as_str()), ("sort", "subject")];
            if let Some(s) = search {
                q.push(("search", s));
            }
            let (status, body) = list(app, MEMBER, &q).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let found = subjects(&body);
            assert_eq!(body["meta"]["count"], found.len(), "{body}");
            found
        }
    };
    let z = |ids: &[&str]| -> Vec<String> { ids.iter().map(|i| format!("Zephyr {i}")).collect() };
    let from_zed = json!({"from": {"$includes": "zephyrine"}});
    assert_eq!(
        ask(json!({}), Some("zephyr")).await,
        z(&["g1", "g2", "g3", "g4", "g5", "o1"])
    );
    assert_eq!(
        ask(json!({"folder": "inbox"}), Some("zeph")).await,
        z(&["g2", "g5", "o1"])
    );
    assert_eq!(
        ask(
            json!({"folder": {"$in": ["inbox", "sent"]}}),
            Some("zephyr")
        )
        .await,
        z(&["g2", "g3", "g5", "o1"])
    );
    assert_eq!(
        ask(json!({"folder": "user:Label_9"}), Some("zephyr")).await,
        z(&["g4"])
    );
    assert_eq!(
        ask(json!({"accountId": outlook}), Some("zephyr")).await,
        z(&["o1"])
    );
    assert_eq!(
        ask(from_zed.clone(), None).await,
        z(&["g1", "g2", "g3", "g4", "o1"])
    );
    assert_eq!(
        ask(
            json!({"accountId": gmail, "from": {"$includes": "zephyrine"}}),
            Some("zephyr")
        )
        .await,
        z(&["g1", "g2", "g3", "g4"])
    );

    // A move (as sync stores one) and a delete change what the indexes answer.
    let (g2, g3) = (ids[1], ids[2]);
    app.state
        .db
        .run(move |c| {
            use email_manager::db::schema::mail_messages::dsl as m;
            diesel::update(m::mail_messages.filter(m::id.eq(g2)))
                .set(m::folder.eq("archive"))
                .execute(c)?;
            diesel::update(m::mail_messages.filter(m::id.eq(g3)))
                .set(m::folder.eq("user:Label_9"))
                .execute(c)?;
            diesel::delete(m::mail_messages.filter(m::id.eq(o1))).execute(c)?;
            Ok(())
        })
        .await
        .expect("move and delete");
    assert_eq!(
        ask(json!({"folder": "inbox"}), Some("zephyr")).await,
        z(&["g5"])
    );
    assert_eq!(
        ask(json!({"folder": "archive"}), Some("zephyr")).await,
        z(&["g2"])
    );
    assert_eq!(
        ask(json!({"folder": "user:Label_9"}), Some("zephyr")).await,
        z(&["g3", "g4"])
    );
    assert!(ask(json!({"folder": "sent"}), Some("zephyr"))
        .await
        .is_empty());
    assert_eq!(
        ask(from_zed.clone(), None).await,
        z(&["g1", "g2", "g3", "g4"])
    );
    assert!(ask(json!({"accountId": outlook}), Some("zephyr"))
        .await
        .is_empty());

    // A sender rewritten (a draft's From can change) is found by the new one only, and a sender
    // whose last message went names none.
    let g1 = ids[0];
    app.state
        .db
        .run(move |c| {
            use email_manager::db::schema::mail_messages::dsl as m;
            diesel::update(m::mail_messages.filter(m::id.eq(g1)))
                .set((
                    m::from_name.eq("Yara Quill"),
                    m::from_address.eq("yq@example.test"),
                ))
                .execute(c)?;
            diesel::delete(m::mail_messages.filter(m::from_name.eq("Ann Lee"))).execute(c)?;
            Ok(())
        })
        .await
        .expect("rewrite and delete");
    assert_eq!(
        ask(json!({"from": {"$includes": "quill"}}), None).await,
        z(&["g1"])
    );
    assert_eq!(ask(from_zed, None).await, z(&["g2", "g3", "g4"]));
    assert!(ask(json!({"from": {"$includes": "ann lee"}}), None)
        .await
        .is_empty());
    assert!(ask(
        json!({"from": {"$includes": "example.test"}, "accountId": outlook}),
        None
    )
    .await
    .is_empty());
}

/// A broad search or substring filter is counted exactly on SQLite (FTS5 and trigram indexes);
/// on PostgreSQL, where the count would read every match, a full page reports the planner's
/// estimate (`countExact: false`), never less than the page proves, and `exactCount=true`
/// counts anyway. Few matches are always exact.
#[actix_web::test]
async fn broad_searches_count_exactly_on_sqlite_and_by_estimate_on_postgres() {
    const N: usize = 600;
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let account = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    for i in 0..N {
        let id = format!("b{i}");
        let date = format!(
            "2026-{:02}-{:02}T{:02}:00:00Z",
            1 + i % 11,
            1 + i % 28,
            i % 24
        );
        // Every message is an invoice from Grace; one in ten also says "overdue".
        let subject = if i % 10 == 0 {
            format!("Invoice {i} overdue")
        } else {
            format!("Invoice {i}")
        };
        let one = Seed {
            id: &id,
            thread: &id,
            from: "Grace Hopper <grace@navy.test>",
            to: "Ada Lovelace <ada@analytical.test>",
            subject: &subject,
            date: &date,
            ..Seed::default()
        };
        seed(&app, account, MEMBER, &one).await;
    }
    let pg = app.state.db.backend() == email_manager::db::Backend::Postgres;
    if pg {
        // The estimate comes from the statistics autovacuum keeps; take them now.
        app.state
            .db
            .run(|c| Ok(diesel::sql_query("ANALYZE mail_messages").execute(c)?))
            .await
            .expect("analyze");
    }
    let from = json!({"from": {"$includes": "hopper"}}).to_string();
    let to = json!({"to": {"$includes": "lovelace"}}).to_string();
    for (what, query) in [
        ("search", vec![("search", "invoice")]),
        ("$includes", vec![("filter", from.as_str())]),
        ("recipients $includes", vec![("filter", to.as_str())]),
        // Every message is its own thread: as many threads as messages.
        (
            "threads",
            vec![("search", "invoice"), ("groupBy", "thread")],
        ),
    ] {
        for page in ["1", "3"] {
            let mut q = query.clone();
            q.extend([("pageSize", "20"), ("page", page)]);
            let (status, body) = list(&app, MEMBER, &q).await;
            assert_eq!(status, StatusCode::OK, "{what}: {body}");
            assert_eq!(body["data"].as_array().map(Vec::len), Some(20), "{what}");
            let meta = &body["meta"];
            let count = meta["count"].as_i64().expect("count");
            if pg {
                assert_eq!(meta["countExact"], false, "{what} page {page}: {meta}");
                // Two significant digits, at least one match past the page, near the truth.
                let shown = if page == "1" { 20 } else { 60 };
                assert!(count > shown, "{what}: {meta}");
                // ANALYZE reads all 600 rows, so the planner knows how many match; for the
                // recipients only with the statistics on its escape guard (migration 14).
                assert!(
                    (N as i64 * 4 / 5..=N as i64 * 5 / 4).contains(&count),
                    "{what}: {meta}"
                );
                assert_eq!(count % 10, 0, "{what}: {meta}");
                assert_eq!(
                    meta["totalPage"].as_i64(),
                    Some((count + 19) / 20),
                    "{meta}"
                );
            } else {
                assert_eq!(meta["countExact"], true, "{what}: {meta}");
                assert_eq!(count, N as i64, "{what}: {meta}");
            }
            q.push(("exactCount", "true"));
            let (_, body) = list(&app, MEMBER, &q).await;
            assert_eq!(body["meta"]["count"], N, "{what} exactCount: {body}");
            assert_eq!(body["meta"]["countExact"], true, "{what}");
        }
    }
    // Few matches, a page that is not full, and a page past the end: exact on both.
    for q in [
        vec![("search", "overdue"), ("pageSize", "20")],
        vec![("search", "invoice"), ("pageSize", "70"), ("page", "9")],
        vec![("search", "invoice"), ("pageSize", "50"), ("page", "13")],
    ] {
        let (_, body) = list(&app, MEMBER, &q).await;
        assert_eq!(body["meta"]["countExact"], true, "{q:?}: {}", body["meta"]);
        let want = if q[0].1 == "overdue" { N / 10 } else { N };
        assert_eq!(body["meta"]["count"], want, "{q:?}: {}", body["meta"]);
    }
    let (status, body) = list(
        &app,
        MEMBER,
        &[("search", "invoice"), ("exactCount", "maybe")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}
