//! `mailDrafts` through the real service against the sandbox: auto-saves coalesced into few
//! provider calls, last write wins by revision, a restart in between loses nothing, sending
//! removes the draft here and at the provider, list filters, and another user's drafts.

use email_manager::sync::parse;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::send::{error_message, linked, mailbox, outbox, raw_of, sandbox_raw, spawn_app, DAVE};
use crate::sync::{GMAIL, OUTLOOK};

async fn draft_call(
    app: &TestApp,
    user: i64,
    action: &str,
    id: Option<i64>,
    values: Option<Value>,
) -> (StatusCode, Value) {
    let tk = id.map(|i| i.to_string()).unwrap_or_default();
    let query: Vec<(&str, &str)> = if id.is_some() {
        vec![("filterByTk", tk.as_str())]
    } else {
        Vec::new()
    };
    app.call(user, None, &format!("mailDrafts:{action}"), &query, values)
        .await
}

/// The MIME of the mailbox's drafts at the sandbox.
async fn provider_drafts(app: &TestApp, email: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for m in mailbox(app, email).await {
        if m["folder"] == "drafts" {
            out.push(sandbox_raw(app, email, m["id"].as_str().expect("id")).await);
        }
    }
    out
}

fn text_of(raw: &[u8]) -> String {
    parse::parse(raw)
        .text_body
        .unwrap_or_default()
        .replace("\r\n", "\n")
}

/// Provider calls that wrote a draft (create or update).
async fn draft_writes(app: &TestApp, email: &str) -> usize {
    if email == GMAIL {
        let mut n = 0;
        for prefix in [
            "/google/gmail/v1/users/me/drafts",
            "/google/upload/gmail/v1/users/me/drafts",
        ] {
            n += app
                .sandbox_requests(prefix)
                .await
                .iter()
                .filter(|r| r["method"] == "POST" || r["method"] == "PUT")
                .count();
        }
        n
    } else {
        app.sandbox_requests("/microsoft/graph/v1.0/me/messages")
            .await
            .iter()
            .filter(|r| {
                let path = r["path"].as_str().unwrap_or_default();
                (r["method"] == "POST" && path.ends_with("/me/messages")) || r["method"] == "PATCH"
            })
            .count()
    }
}

#[actix_web::test]
async fn auto_saves_coalesce_survive_a_restart_and_sending_removes_the_draft() {
    let (mut app, _uploads) =
        spawn_app(&[("EMAIL_MANAGER__MAIL__DRAFT_MIRROR_DELAY_MS", "2500")]).await;
    for email in [GMAIL, OUTLOOK] {
        let account = linked(&app, MEMBER, email).await;
        let before = draft_writes(&app, email).await;
        let (status, body) = draft_call(
            &app,
            MEMBER,
            "create",
            None,
            Some(json!({"accountId": account, "to": ["Dave <dave@contoso.test>"], "subject": "Plans ✓", "text": "v1"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = body["data"]["id"].as_i64().expect("draft id");
        assert_eq!(body["data"]["revision"], 1);
        assert_eq!(
            body["data"]["from"]["address"], email,
            "the identity is fixed at creation"
        );
        assert_eq!(body["data"]["mirrored"], false);

        // 50 saves as the user types; a late one (lower revision) changes nothing.
        for n in 2..=51 {
            let (status, body) = draft_call(
                &app,
                MEMBER,
                "update",
                Some(id),
                Some(json!({"revision": n, "text": format!("v{n}")})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["meta"]["saved"], true, "revision {n}");
        }
        let (status, body) = draft_call(
            &app,
            MEMBER,
            "update",
            Some(id),
            Some(json!({"revision": 30, "text": "late"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["meta"]["saved"], false);
        assert_eq!(body["data"]["text"], "v51", "the stored draft answers");

        // A restart before the provider has it: nothing is lost.
        app = app.restart().await;
        let (status, body) = draft_call(&app, MEMBER, "get", Some(id), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["text"], "v51");
        assert_eq!(body["data"]["revision"], 51);
        wait_for("the provider's draft has v51", 30, || async {
            provider_drafts(&app, email)
                .await
                .iter()
                .any(|raw| text_of(raw).starts_with("v51"))
        })
        .await;
        wait_for("the draft is marked mirrored", 10, || async {
            draft_call(&app, MEMBER, "get", Some(id), None).await.1["data"]["mirrored"] == true
        })
        .await;
        let drafts = provider_drafts(&app, email).await;
        assert_eq!(drafts.len(), 1, "{email}: one draft at the provider");
        let p = parse::parse(&drafts[0]);
        assert_eq!(p.subject, "Plans ✓");
        let writes = draft_writes(&app, email).await - before;
        assert!(
            (1..=3).contains(&writes),
            "{email}: 51 saves made {writes} provider calls"
        );

        // Sending removes it, here and there.
        let (status, body) = draft_call(&app, MEMBER, "send", Some(id), Some(json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let sent = outbox(&app, Some(email)).await;
        let last = sent.last().expect("sent");
        assert!(
            text_of(&raw_of(last)).starts_with("v51"),
            "the latest text went"
        );
        assert_eq!(body["data"]["messageId"], last["messageId"]);
        let (status, _) = draft_call(&app, MEMBER, "get", Some(id), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            provider_drafts(&app, email).await.is_empty(),
            "{email}: gone at the provider"
        );
        // Sending it again (a retry) sends nothing more.
        let (status, _) = draft_call(&app, MEMBER, "send", Some(id), Some(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(outbox(&app, Some(email)).await.len(), sent.len());
    }
    app.stop().await;
}

#[actix_web::test]
async fn drafts_list_by_sender_and_recipients_and_stay_with_their_owner() {
    let (app, _uploads) = spawn_app(&[("EMAIL_MANAGER__MAIL__DRAFT_MIRROR_DELAY_MS", "200")]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let outlook = app.link(MEMBER, "microsoft", OUTLOOK).await["id"]
        .as_i64()
        .expect("id");
    let create = |values: Value| {
        let app = &app;
        async move {
            let (status, body) = draft_call(app, MEMBER, "create", None, Some(values)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["data"]["id"].as_i64().expect("id")
        }
    };
    let to_ann =
        create(json!({"accountId": gmail, "to": ["Ann <ann@example.test>", DAVE], "subject": "a"}))
            .await;
    let to_bob =
        create(json!({"accountId": gmail, "to": ["bob@gmail.test"], "subject": "b"})).await;
    let other_account =
        create(json!({"accountId": outlook, "to": ["ann@example.test", DAVE], "subject": "c"}))
            .await;

    let ids = |body: &Value| -> Vec<i64> {
        body["data"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|d| d["id"].as_i64())
            .collect()
    };
    let listed = |query: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, body) = app.call(MEMBER, None, "mailDrafts:list", &q, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let all = listed(vec![]).await;
    assert_eq!(all["meta"]["count"], 3);
    assert_eq!(ids(&all)[0], other_account, "newest first");
    assert_eq!(
        ids(&listed(vec![("accountId", gmail.to_string())]).await),
        vec![to_bob, to_ann]
    );
    // Same recipients in another order and case: the compose page finds the draft.
    assert_eq!(
        ids(&listed(vec![
            ("accountId", gmail.to_string()),
            ("to", format!("{}, ANN@example.test", DAVE.to_uppercase())),
        ])
        .await),
        vec![to_ann]
    );
    assert_eq!(
        ids(&listed(vec![
            ("from", GMAIL.to_string()),
            ("to", "ann@example.test".into())
        ])
        .await),
        Vec::<i64>::new(),
        "to must match as a whole"
    );
    assert_eq!(
        ids(&listed(vec![("from", OUTLOOK.to_string())]).await),
        vec![other_account]
    );
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailDrafts:list",
            &[("to", "not an address")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Bad saves change nothing.
    let bad = [
        (json!({"text": "no revision"}), "revision"),
        (json!({"revision": 5, "to": ["bob@"]}), "to[0]"),
        (json!({"revision": 5, "accountId": outlook}), "accountId"),
        (json!({"revision": 5, "colour": "red"}), "colour"),
        (
            json!({"revision": 5, "from": "stranger@example.test"}),
            "from",
        ),
    ];
    for (values, word) in bad {
        let (status, body) = draft_call(&app, MEMBER, "update", Some(to_bob), Some(values)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{word}: {body}");
        assert!(error_message(&body).contains(word), "{word}: {body}");
    }
    let (_, got) = draft_call(&app, MEMBER, "get", Some(to_bob), None).await;
    assert_eq!(got["data"]["revision"], 1);
    // What get answers can be sent back with a new revision.
    let mut back = got["data"].clone();
    back["revision"] = json!(2);
    back["subject"] = json!("b2");
    let (status, body) = draft_call(&app, MEMBER, "update", Some(to_bob), Some(back)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["subject"], "b2");

    // Another user sees none of it.
    for action in ["get", "update", "send", "destroy"] {
        let values = (action == "update").then(|| json!({"revision": 99, "text": "mine"}));
        let (status, body) = draft_call(&app, OTHER_MEMBER, action, Some(to_ann), values).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
    }
    let (status, body) = app
        .call(OTHER_MEMBER, None, "mailDrafts:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["meta"]["count"], 0);
    let (status, _) = draft_call(
        &app,
        OTHER_MEMBER,
        "create",
        None,
        Some(json!({"accountId": gmail, "text": "into someone else's mailbox"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Destroy removes the provider's copy too.
    for id in [to_ann, to_bob] {
        wait_for("mirrored", 30, || async {
            draft_call(&app, MEMBER, "get", Some(id), None).await.1["data"]["mirrored"] == true
        })
        .await;
    }
    let at_provider = provider_drafts(&app, GMAIL).await.len();
    assert_eq!(at_provider, 2, "both Gmail drafts are at the provider");
    let (status, body) = draft_call(&app, MEMBER, "destroy", Some(to_ann), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = draft_call(&app, MEMBER, "get", Some(to_ann), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    wait_for("the provider's copy is deleted", 30, || async {
        provider_drafts(&app, GMAIL).await.len() == at_provider - 1
    })
    .await;
    assert!(outbox(&app, None).await.is_empty(), "nothing was sent");
    app.stop().await;
}
