//! `mailMessageNotes` on the real service: CRUD, time order, `appends=notes`, HTML cleaned,
//! sizes, another user's notes and messages. Surviving a resync is in labels.rs, beside labels
//! and to-do.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::labels::{link_and_sync, local, local_id, simple_message};
use crate::sync::GMAIL;

async fn create_note(app: &TestApp, user: i64, values: Value) -> (StatusCode, Value) {
    app.call(user, None, "mailMessageNotes:create", &[], Some(values))
        .await
}

fn contents(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|n| n["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[actix_web::test]
async fn notes_are_kept_in_time_order_for_their_author_only() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let p = simple_message(&app, GMAIL, "with notes").await;
    let q = simple_message(&app, GMAIL, "without notes").await;
    link_and_sync(&app, GMAIL).await;
    let id = local_id(&app, &p).await;
    let other = local_id(&app, &q).await;

    let mut ids = Vec::new();
    for text in ["call back on Monday", "sent the quote", "they accepted"] {
        let (status, body) =
            create_note(&app, MEMBER, json!({"messageId": id, "content": text})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["messageId"], id);
        assert_eq!(body["data"]["authorId"], MEMBER);
        assert_eq!(body["data"]["format"], "text");
        ids.push(body["data"]["id"].as_i64().expect("id"));
    }
    let (status, body) = create_note(
        &app,
        MEMBER,
        json!({"messageId": id.to_string(), "format": "html",
               "content": "<p onclick=\"steal()\">Signed <b>today</b><script>alert(1)</script></p>"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let html = body["data"]["content"].as_str().expect("content");
    assert!(html.contains("<b>today</b>"), "{html}");
    assert!(
        !html.contains("onclick") && !html.contains("script"),
        "{html}"
    );
    let html_id = body["data"]["id"].as_i64().expect("id");

    // In time order, in each of the forms NocoBase sends the filter.
    for query in [
        vec![("filter[messageId]", id.to_string())],
        vec![("filter", json!({"messageId": id}).to_string())],
        vec![("filter", json!({"messageId": {"$eq": id}}).to_string())],
        vec![("messageId", id.to_string())],
    ] {
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = app
            .call(MEMBER, None, "mailMessageNotes:list", &q, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{q:?}: {body}");
        assert_eq!(
            contents(&body["data"])[..3],
            ["call back on Monday", "sent the quote", "they accepted"]
        );
        assert_eq!(body["meta"]["count"], 4);
    }
    let (_, page) = app
        .call(
            MEMBER,
            None,
            "mailMessageNotes:list",
            &[
                ("filter[messageId]", &id.to_string()),
                ("pageSize", "2"),
                ("page", "2"),
            ],
            None,
        )
        .await;
    assert_eq!(contents(&page["data"])[0], "they accepted");
    assert_eq!(page["meta"]["totalPage"], 2);

    // appends=notes on list and get; a message without notes has an empty list.
    let m = local(&app, &p).await;
    assert_eq!(contents(&m["notes"]).len(), 4);
    assert!(local(&app, &q).await["notes"]
        .as_array()
        .is_some_and(Vec::is_empty));
    let (_, got) = app
        .call(
            MEMBER,
            None,
            "mailMessages:get",
            &[("filterByTk", &id.to_string()), ("appends", "notes")],
            None,
        )
        .await;
    assert_eq!(contents(&got["data"]["notes"])[0], "call back on Monday");
    let (_, plain) = app
        .call(
            MEMBER,
            None,
            "mailMessages:get",
            &[("filterByTk", &id.to_string())],
            None,
        )
        .await;
    assert!(plain["data"].get("notes").is_none(), "only when appended");

    // Update and destroy.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageNotes:update",
            &[("filterByTk", &ids[1].to_string())],
            Some(json!({"content": "sent the quote (v2)", "id": ids[1], "authorId": 9})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["content"], "sent the quote (v2)");
    assert_eq!(body["data"]["authorId"], MEMBER);
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailMessageNotes:destroy",
            &[("filterByTk", &html_id.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageNotes:get",
            &[("filterByTk", &ids[1].to_string())],
            None,
        )
        .await;
    assert_eq!(body["data"]["content"], "sent the quote (v2)");

    // Another user: my notes and my message answer 404, and nothing changes.
    for (action, query, values) in [
        (
            "mailMessageNotes:get",
            vec![("filterByTk", ids[0].to_string())],
            None,
        ),
        (
            "mailMessageNotes:update",
            vec![("filterByTk", ids[0].to_string())],
            Some(json!({"content": "mine now"})),
        ),
        (
            "mailMessageNotes:destroy",
            vec![("filterByTk", ids[0].to_string())],
            None,
        ),
        (
            "mailMessageNotes:list",
            vec![("filter[messageId]", id.to_string())],
            None,
        ),
        (
            "mailMessageNotes:create",
            vec![],
            Some(json!({"messageId": id, "content": "planted"})),
        ),
    ] {
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = app.call(OTHER_MEMBER, None, action, &q, values).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
        assert_eq!(body["errors"][0]["code"], "NOT_FOUND");
    }
    let (_, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageNotes:list",
            &[("filter[messageId]", &id.to_string())],
            None,
        )
        .await;
    assert_eq!(
        contents(&body["data"]),
        [
            "call back on Monday",
            "sent the quote (v2)",
            "they accepted"
        ]
    );
    assert_eq!(app.count("mail_message_notes").await, 3);

    // Bad input changes nothing.
    for (values, status, needle) in [
        (
            json!({"messageId": other, "content": "   "}),
            StatusCode::BAD_REQUEST,
            "must not be empty",
        ),
        (
            json!({"messageId": other, "content": "x", "format": "markdown"}),
            StatusCode::BAD_REQUEST,
            "format",
        ),
        (
            json!({"messageId": other, "content": "x", "pinned": true}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            json!({"content": "x"}),
            StatusCode::BAD_REQUEST,
            "missing field",
        ),
        (
            json!({"messageId": "abc", "content": "x"}),
            StatusCode::BAD_REQUEST,
            "messageId",
        ),
        (
            json!({"messageId": 987654, "content": "x"}),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            json!({"messageId": other, "content": "x".repeat(64 * 1024 + 1)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
    ] {
        let (got, body) = create_note(&app, MEMBER, values.clone()).await;
        assert_eq!(got, status, "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{message}");
    }
    let (status, body) = app
        .call(MEMBER, None, "mailMessageNotes:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailMessageNotes:update",
            &[("filterByTk", &ids[0].to_string())],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("mail_message_notes").await, 3);
    app.stop().await;
}
