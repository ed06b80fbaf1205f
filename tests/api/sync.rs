//! Sync against the sandbox: a synced mailbox must equal the sandbox's, message for message, after
//! first sync, provider-side changes, expired cursors, throttling, and a revoked grant.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use email_manager::db::schema::mail_messages::dsl as m;
use email_manager::providers::MessageState;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

pub const GMAIL: &str = "alice@gmail.test";
pub const OUTLOOK: &str = "carol@contoso.test";

/// What must agree between the sandbox and the sidecar, per provider message id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub folder: String,
    pub unread: bool,
    pub starred: bool,
    pub thread_id: String,
    pub message_id: Option<String>,
    /// Gmail label ids / Outlook categories, in the provider's order.
    pub labels: Vec<String>,
}

impl TestApp {
    pub async fn generate(&self, email: &str, count: u64, seed: u64) -> Value {
        let resp = self
            .client
            .post(format!(
                "{}/__sandbox/mailboxes/{email}/generate",
                self.sandbox.base_url
            ))
            .json(&json!({"count": count, "seed": seed, "days": 20}))
            .send()
            .await
            .expect("generate");
        assert!(resp.status().is_success(), "generate: {}", resp.status());
        resp.json().await.expect("json")
    }

    pub async fn sandbox_mailbox(&self, email: &str) -> BTreeMap<String, Seen> {
        let body: Value = self
            .client
            .get(format!(
                "{}/__sandbox/mailboxes/{email}",
                self.sandbox.base_url
            ))
            .send()
            .await
            .expect("mailbox")
            .json()
            .await
            .expect("json");
        let list = body
            .get("messages")
            .and_then(Value::as_array)
            .or_else(|| body.as_array())
            .cloned()
            .expect("messages");
        list.iter()
            .map(|x| {
                (
                    x["id"].as_str().expect("id").to_string(),
                    Seen {
                        folder: normalise_folder(x["folder"].as_str().unwrap_or_default()),
                        unread: x["unread"].as_bool().unwrap_or_default(),
                        starred: x["starred"].as_bool().unwrap_or_default(),
                        thread_id: x["threadId"].as_str().unwrap_or_default().to_string(),
                        message_id: x["messageIdHeader"]
                            .as_str()
                            .map(|s| s.trim_matches(['<', '>']).to_string()),
                        labels: serde_json::from_value(x["labels"].clone()).expect("labels"),
                    },
                )
            })
            .collect()
    }

    /// The sidecar's copy, with user folders named as the sandbox names them.
    pub async fn stored(&self, account_id: i64) -> BTreeMap<String, Seen> {
        let rows = self
            .state
            .db
            .run(move |c| {
                use email_manager::db::schema::mail_folders::dsl as f;
                let folders: Vec<(String, String)> = f::mail_folders
                    .filter(f::account_id.eq(account_id))
                    .select((f::folder, f::name))
                    .load(c)?;
                #[allow(clippy::type_complexity)]
                let rows: Vec<(
                    String,
                    String,
                    bool,
                    bool,
                    String,
                    Option<String>,
                    String,
                )> = m::mail_messages
                    .filter(m::account_id.eq(account_id))
                    .select((
                        m::provider_message_id,
                        m::folder,
                        m::unread,
                        m::starred,
                        m::thread_id,
                        m::message_id,
                        m::provider_labels,
                    ))
                    .load(c)?;
                Ok((folders, rows))
            })
            .await
            .expect("stored");
        let (folders, rows) = rows;
        let mut out = BTreeMap::new();
        for (id, folder, unread, starred, thread_id, message_id, labels) in rows {
            let folder = folders
                .iter()
                .find(|(k, _)| *k == folder)
                .map(|(_, name)| name.clone())
                .unwrap_or(folder);
            let previous = out.insert(
                id,
                Seen {
                    folder: normalise_folder(&folder),
                    unread,
                    starred,
                    thread_id,
                    message_id,
                    labels: serde_json::from_str(&labels).expect("labels are JSON"),
                },
            );
            assert!(previous.is_none(), "a message stored twice");
        }
        out
    }

    /// The user's account for `email` as `mailAccounts:list` shows it.
    pub async fn account(&self, user: i64, email: &str) -> Value {
        self.accounts(user)
            .await
            .into_iter()
            .find(|a| a["email"] == email)
            .expect("account listed")
    }

    /// `mailAccounts:sync` with `wait`, until a run ends without error.
    pub async fn sync_now(&self, user: i64, account_id: i64, action: &str) -> Value {
        let (status, body) = self
            .call(
                user,
                None,
                action,
                &[("filterByTk", &account_id.to_string())],
                Some(json!({"wait": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].clone()
    }
}

fn normalise_folder(f: &str) -> String {
    match f.to_ascii_lowercase().as_str() {
        "inbox" => "inbox",
        "sent" | "sentitems" | "sent items" => "sent",
        "drafts" | "draft" => "drafts",
        "trash" | "deleteditems" | "deleted items" => "trash",
        "spam" | "junkemail" | "junk email" => "spam",
        "archive" => "archive",
        _ => return f.to_string(),
    }
    .to_string()
}

/// A fresh service with providers configured and `email`'s sandbox mailbox generated
/// (`count` messages from `seed`) and linked for MEMBER, not synced yet; answers the account id.
async fn linked_mailbox(email: &str, count: u64, seed: u64) -> (TestApp, i64) {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    app.generate(email, count, seed).await;
    let id = linked(&app, email).await;
    (app, id)
}

async fn linked(app: &TestApp, email: &str) -> i64 {
    let provider = if email == GMAIL {
        "google"
    } else {
        "microsoft"
    };
    app.link(MEMBER, provider, email).await["id"]
        .as_i64()
        .expect("id")
}

async fn assert_in_step(app: &TestApp, email: &str, account_id: i64) {
    let want = app.sandbox_mailbox(email).await;
    let got = app.stored(account_id).await;
    assert!(!want.is_empty(), "the sandbox mailbox is empty");
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{email}: {} at the sandbox, {} here; missing {missing:?}, extra {extra:?}",
        want.len(),
        got.len()
    );
    for (id, w) in &want {
        assert_eq!(&got[id], w, "{email}: message {id}");
    }
}

async fn patch_message(app: &TestApp, email: &str, id: &str, body: Value) {
    let resp = app
        .client
        .patch(format!(
            "{}/__sandbox/mailboxes/{email}/messages/{id}",
            app.sandbox.base_url
        ))
        .json(&body)
        .send()
        .await
        .expect("patch");
    assert!(resp.status().is_success(), "patch {id}: {}", resp.status());
}

async fn delete_message(app: &TestApp, email: &str, id: &str) {
    let resp = app
        .client
        .delete(format!(
            "{}/__sandbox/mailboxes/{email}/messages/{id}",
            app.sandbox.base_url
        ))
        .send()
        .await
        .expect("delete");
    assert!(resp.status().is_success(), "delete {id}: {}", resp.status());
}

#[actix_web::test]
async fn both_mailboxes_sync_completely_and_follow_provider_changes() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for (email, count) in [(GMAIL, 3000), (OUTLOOK, 3000)] {
        app.generate(email, count, 7).await;
        let id = linked(&app, email).await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert_eq!(run["kind"], "full", "{run}");
        assert!(run["error"].is_null(), "{run}");
        assert_in_step(&app, email, id).await;
        let first = app.stored(id).await;

        // Changes made at the provider: read, star, move, delete, new mail.
        let ids: Vec<String> = first.keys().cloned().collect();
        patch_message(
            &app,
            email,
            &ids[0],
            json!({"unread": !first[&ids[0]].unread}),
        )
        .await;
        patch_message(
            &app,
            email,
            &ids[1],
            json!({"starred": !first[&ids[1]].starred}),
        )
        .await;
        patch_message(&app, email, &ids[2], json!({"folder": "archive"})).await;
        patch_message(&app, email, &ids[3], json!({"folder": "trash"})).await;
        delete_message(&app, email, &ids[4]).await;
        app.generate(email, 5, 99).await;

        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert_eq!(run["kind"], "incremental", "{run}");
        assert_eq!(run["added"], 5, "{run}");
        assert_eq!(run["removed"], 1, "{run}");
        assert_in_step(&app, email, id).await;
        // Nothing changed since: a run finds nothing to do.
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert_eq!(
            (&run["added"], &run["updated"], &run["removed"]),
            (&json!(0), &json!(0), &json!(0)),
            "{run}"
        );
    }
    // The history says what happened.
    let account = app.accounts(MEMBER).await[0]["id"].to_string();
    let (status, runs) = app
        .call(
            MEMBER,
            None,
            "mailSyncRuns:list",
            &[("filter[accountId]", &account)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    assert_eq!(runs["meta"]["count"], 3, "{runs}");
    assert_eq!(runs["data"][2]["kind"], "full");
    assert!(runs["data"][2]["finishedAt"].is_string());
    // Another user cannot read it.
    let (status, _) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailSyncRuns:list",
            &[("filter[accountId]", &account)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// The sidecar's row id of a stored message, if it is stored.
async fn row_id(app: &TestApp, account_id: i64, provider_id: &str) -> Option<i64> {
    let pid = provider_id.to_string();
    app.state
        .db
        .run(move |c| {
            Ok(m::mail_messages
                .filter(m::account_id.eq(account_id))
                .filter(m::provider_message_id.eq(pid))
                .select(m::id)
                .first(c)
                .optional()?)
        })
        .await
        .expect("row id")
}

#[actix_web::test]
async fn outlook_moves_either_way_between_folders_keep_the_message() {
    // Graph tells a move in the old folder's delta (`@removed`) and in the new one's, in folder
    // order; sync writes several folders' pages in one batch, which must not let either order
    // delete the moved message or store it twice.
    let (app, id) = linked_mailbox(OUTLOOK, 400, 11).await;
    let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
    assert!(run["error"].is_null(), "{run}");
    let first = app.stored(id).await;
    let in_folder = |f: &str| {
        first
            .iter()
            .find(|(_, s)| s.folder == f)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| panic!("no message in {f}"))
    };
    // Inbox is listed first, archive after it: one move against that order, one with it.
    let to_inbox = in_folder("archive");
    let to_archive = in_folder("inbox");
    let rows = (
        row_id(&app, id, &to_inbox).await,
        row_id(&app, id, &to_archive).await,
    );
    patch_message(&app, OUTLOOK, &to_inbox, json!({"folder": "inbox"})).await;
    patch_message(&app, OUTLOOK, &to_archive, json!({"folder": "archive"})).await;

    let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
    assert_eq!(run["kind"], "incremental", "{run}");
    assert!(run["error"].is_null(), "{run}");
    assert_eq!(run["removed"], 0, "{run}");
    assert_in_step(&app, OUTLOOK, id).await;
    let now = app.stored(id).await;
    assert_eq!(now[&to_inbox].folder, "inbox");
    assert_eq!(now[&to_archive].folder, "archive");
    // Each is still the same row: its notes and to-do stay with it.
    assert!(rows.0.is_some() && rows.1.is_some());
    assert_eq!(row_id(&app, id, &to_inbox).await, rows.0);
    assert_eq!(row_id(&app, id, &to_archive).await, rows.1);
    app.stop().await;
}

#[actix_web::test]
async fn an_expired_cursor_resyncs_without_losing_or_duplicating_anything() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        app.generate(email, 300, 11).await;
        let id = linked(&app, email).await;
        app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        // Local state that only exists here must survive the resync: a note, and on Gmail the
        // to-do (Outlook's is its flag, by default: providers.microsoft.todo_as_flag).
        let local_todo = email == GMAIL;
        let kept: i64 = app
            .state
            .db
            .run(move |c| {
                use email_manager::db::schema::mail_message_notes::dsl as n;
                let first: i64 = m::mail_messages
                    .filter(m::account_id.eq(id))
                    .order(m::id.asc())
                    .select(m::id)
                    .first(c)?;
                diesel::update(m::mail_messages.find(first))
                    .set(m::todo.eq(local_todo))
                    .execute(c)?;
                diesel::insert_into(n::mail_message_notes)
                    .values((
                        n::message_id.eq(first),
                        n::user_id.eq(MEMBER),
                        n::format.eq("text"),
                        n::content.eq("kept"),
                        n::created_at.eq(0),
                        n::updated_at.eq(0),
                    ))
                    .execute(c)?;
                Ok(first)
            })
            .await
            .expect("todo");
        let ids: Vec<String> = app.stored(id).await.keys().cloned().collect();
        delete_message(&app, email, &ids[10]).await;
        patch_message(
            &app,
            email,
            &ids[11],
            json!({"unread": true, "starred": true}),
        )
        .await;
        app.generate(email, 3, 12).await;
        app.sandbox_post(
            &format!("/__sandbox/mailboxes/{email}/expire-cursors"),
            json!({}),
        )
        .await;

        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert_eq!(run["kind"], "resync", "{run}");
        assert!(run["error"].is_null(), "{run}");
        assert_in_step(&app, email, id).await;
        let todo: bool = app
            .state
            .db
            .run(move |c| Ok(m::mail_messages.find(kept).select(m::todo).first(c)?))
            .await
            .expect("still there");
        assert!(todo || !local_todo, "local to-do kept through the resync");
        assert_eq!(
            app.count("mail_message_notes").await,
            if email == GMAIL { 1 } else { 2 },
            "notes kept through the resync"
        );

        // An explicit resync from scratch ends the same way.
        let run = app.sync_now(MEMBER, id, "mailAccounts:resync").await;
        assert_eq!(run["kind"], "resync", "{run}");
        assert_eq!(run["added"], 0, "{run}");
        assert_eq!(run["removed"], 0, "{run}");
        assert_in_step(&app, email, id).await;
    }
    app.stop().await;
}

#[actix_web::test]
async fn throttling_and_server_errors_are_retried_until_the_mailbox_is_complete() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for (email, prefix) in [
        (GMAIL, "/google/gmail/v1/users/me/messages"),
        (OUTLOOK, "/microsoft/graph/v1.0/me"),
    ] {
        app.generate(email, 120, 21).await;
        let id = linked(&app, email).await;
        app.sandbox_post(
            "/__sandbox/faults",
            json!({"path_prefix": prefix, "status": 429, "count": 2, "retry_after": "1"}),
        )
        .await;
        app.sandbox_post(
            "/__sandbox/faults",
            json!({"path_prefix": prefix, "status": 500, "count": 2}),
        )
        .await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_in_step(&app, email, id).await;
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_revoked_grant_asks_for_relinking_and_relinking_resumes_without_duplicates() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        app.generate(email, 50, 31).await;
        let id = linked(&app, email).await;
        app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        let before = app.stored(id).await.len();

        app.sandbox_post("/__sandbox/tokens/revoke", json!({"email": email}))
            .await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert_eq!(run["error"]["kind"], "reauth_required", "{run}");
        let account = app.account(MEMBER, email).await;
        assert_eq!(account["status"], "reauth_required", "{account}");
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailAccounts:sync",
                &[("filterByTk", &id.to_string())],
                Some(json!({"wait": true})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["errors"][0]["code"], "REAUTH_REQUIRED");
        // Mail is kept while the account waits.
        assert_eq!(app.stored(id).await.len(), before);

        app.generate(email, 2, 32).await;
        let again = linked(&app, email).await;
        assert_eq!(again, id, "the same account");
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_in_step(&app, email, id).await;
        assert_eq!(app.stored(id).await.len(), before + 2);
    }
    app.stop().await;
}

#[actix_web::test]
async fn the_scheduler_syncs_a_new_mailbox_by_itself() {
    let app = TestApp::spawn_with(&[("EMAIL_MANAGER__SYNC__ENABLED", "true")]).await;
    app.configure_providers().await;
    app.generate(GMAIL, 40, 41).await;
    let id = linked(&app, GMAIL).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let account = app.account(MEMBER, GMAIL).await;
        if account["lastSyncAt"].is_string() && app.stored(id).await.len() == 40 {
            assert!(account["lastError"].is_null(), "{account}");
            break;
        }
        assert!(Instant::now() < deadline, "no sync within 20 s: {account}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_in_step(&app, GMAIL, id).await;
    app.stop().await;
}

/// (finished, error kind) of an account's runs, oldest first, with their time spans.
async fn runs(app: &TestApp, account_id: i64) -> Vec<(i64, Option<i64>, Option<String>)> {
    use email_manager::db::schema::mail_sync_runs::dsl as r;
    app.state
        .db
        .run(move |c| {
            Ok(r::mail_sync_runs
                .filter(r::account_id.eq(account_id))
                .order(r::id.asc())
                .select((r::started_at, r::finished_at, r::error_kind))
                .load(c)?)
        })
        .await
        .expect("runs")
}

/// `kill -9` of the sidecar three times while it syncs, each time restarted: the mailbox ends
/// exactly like the sandbox's.
#[actix_web::test]
async fn a_sidecar_killed_mid_sync_resumes_without_losing_or_duplicating() {
    let (app, id) = linked_mailbox(GMAIL, 2500, 51).await;
    let want = app.sandbox_mailbox(GMAIL).await.len() as i64;
    let logs = tempfile::tempdir().expect("dir");
    let extra = [
        ("EMAIL_MANAGER__SYNC__ENABLED", "true"),
        ("EMAIL_MANAGER__SYNC__LEASE_SECS", "1"),
        ("EMAIL_MANAGER__SYNC__CONCURRENCY", "2"),
    ];
    for round in 0..3 {
        let before = app.count("mail_messages").await;
        let mut child = app.spawn_binary(&extra, &logs.path().join(format!("{round}.log")));
        wait_for("the restarted sidecar makes progress", 30, || async {
            app.count("mail_messages").await >= before + 150
        })
        .await;
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        assert!(
            app.count("mail_messages").await < want,
            "killed before the end (round {round})"
        );
    }
    let mut child = app.spawn_binary(&extra, &logs.path().join("last.log"));
    wait_for("the mailbox completes after the kills", 60, || async {
        let runs = runs(&app, id).await;
        runs.last()
            .is_some_and(|(_, finished, error)| finished.is_some() && error.is_none())
            && app.count("mail_messages").await == want
    })
    .await;
    child.kill().expect("stop");
    child.wait().expect("reaped");
    assert_in_step(&app, GMAIL, id).await;
    app.stop().await;
}

/// Two sidecar processes on one PostgreSQL database share the mailboxes: every mailbox ends
/// complete, and no two runs of one mailbox overlap.
#[actix_web::test]
async fn replicas_share_the_sync_work_through_leases() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        // One process per SQLite file; the replica case is PostgreSQL's (make test runs both).
        return;
    }
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let mailboxes = [
        (GMAIL, "google"),
        ("bob@gmail.test", "google"),
        (OUTLOOK, "microsoft"),
        ("dave@contoso.test", "microsoft"),
    ];
    let mut ids = Vec::new();
    for (i, (email, provider)) in mailboxes.iter().enumerate() {
        app.generate(email, 300, 60 + i as u64).await;
        ids.push(
            app.link(MEMBER, provider, email).await["id"]
                .as_i64()
                .expect("id"),
        );
    }
    let logs = tempfile::tempdir().expect("dir");
    let extra = [
        ("EMAIL_MANAGER__SYNC__ENABLED", "true"),
        ("EMAIL_MANAGER__SYNC__INTERVAL_SECS", "2"),
    ];
    let mut a = app.spawn_binary(&extra, &logs.path().join("a.log"));
    let mut b = app.spawn_binary(&extra, &logs.path().join("b.log"));
    for ((email, _), id) in mailboxes.iter().zip(&ids) {
        let want = app.sandbox_mailbox(email).await.len();
        wait_for(email, 60, || async { app.stored(*id).await.len() == want }).await;
    }
    // Let both processes run a few more rounds against each other.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for child in [&mut a, &mut b] {
        child.kill().expect("stop");
        child.wait().expect("reaped");
    }
    for ((email, _), id) in mailboxes.iter().zip(&ids) {
        assert_in_step(&app, email, *id).await;
        let spans = runs(&app, *id).await;
        assert!(spans.len() >= 2, "{email}: {spans:?}");
        for pair in spans.windows(2) {
            let (_, finished, _) = pair[0];
            let (next_start, _, _) = pair[1];
            if let Some(finished) = finished {
                assert!(
                    finished <= next_start,
                    "{email}: overlapping runs {spans:?}"
                );
            }
        }
    }
    app.stop().await;
}

async fn control_json(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = app
        .client
        .request(
            method,
            format!("{}/__sandbox/mailboxes/{path}", app.sandbox.base_url),
        )
        .json(&body)
        .send()
        .await
        .expect("sandbox control");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// Folder (Gmail label / Outlook folder) and label (Gmail labels / Outlook categories) changes
/// made at the provider, including a folder created after the first sync.
#[actix_web::test]
async fn labels_and_new_folders_at_the_provider_show_up_after_the_next_sync() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        app.generate(email, 60, 71).await;
        let id = linked(&app, email).await;
        app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        let ids: Vec<String> = app.stored(id).await.keys().cloned().collect();

        control_json(
            &app,
            reqwest::Method::POST,
            &format!("{email}/folders"),
            json!({"name": "Clients"}),
        )
        .await;
        patch_message(&app, email, &ids[0], json!({"folder": "Clients"})).await;
        patch_message(&app, email, &ids[1], json!({"labels": ["Projects"]})).await;
        patch_message(
            &app,
            email,
            &ids[2],
            json!({"labels": [], "unread": true, "starred": true}),
        )
        .await;
        patch_message(&app, email, &ids[3], json!({"folder": "Receipts"})).await;
        patch_message(&app, email, &ids[3], json!({"folder": "inbox"})).await;

        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert_eq!(run["kind"], "incremental", "{run}");
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(
            (&run["added"], &run["removed"]),
            (&json!(0), &json!(0)),
            "{run}"
        );
        assert_in_step(&app, email, id).await;
        let stored = app.stored(id).await;
        assert_eq!(stored[&ids[0]].folder, "Clients", "{email}");
        assert_eq!(stored[&ids[3]].folder, "inbox", "{email}");
    }
    app.stop().await;
}

/// A provider slower than `providers.request_timeout_secs`: the calls time out and are retried.
#[actix_web::test]
async fn slow_provider_answers_time_out_and_are_retried() {
    let app = TestApp::spawn_with(&[("EMAIL_MANAGER__PROVIDERS__REQUEST_TIMEOUT_SECS", "1")]).await;
    app.configure_providers().await;
    for (email, prefix) in [
        (GMAIL, "/google/gmail/v1/users/me/messages"),
        (OUTLOOK, "/microsoft/graph/v1.0/me/messages"),
    ] {
        app.generate(email, 30, 81).await;
        let id = linked(&app, email).await;
        app.sandbox_post(
            "/__sandbox/faults",
            json!({"path_prefix": prefix, "delay_ms": 2500, "count": 2}),
        )
        .await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_in_step(&app, email, id).await;
        // The two slow calls were made again.
        let seen = app.sandbox_requests(prefix).await;
        let distinct: std::collections::HashSet<String> = seen
            .iter()
            .map(|r| format!("{} {}", r["path"], r["query"]))
            .collect();
        assert!(
            seen.len() >= distinct.len() + 2,
            "{} calls, {} distinct",
            seen.len(),
            distinct.len()
        );
    }
    app.stop().await;
}

/// Raw messages in the charsets and encodings real mail uses, a hostile HTML message and
/// attachments, through both providers: stored decoded.
#[actix_web::test]
async fn charsets_encodings_and_hostile_html_are_stored_decoded() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    // (charset, encoded subject, encoded name, base64 body) -> (subject, name, body)
    let cases: [(&str, &str, &str, &str, &str, &str, &str); 7] = [
        (
            "iso-8859-1",
            "=?iso-8859-1?Q?R=E9union_=E0_Gen=E8ve?=",
            "=?iso-8859-1?Q?Jos=E9_M=FCller?=",
            "Vm9pbOAgbGUgculzdW3pLg==",
            "Réunion à Genève",
            "José Müller",
            "Voilà le résumé.",
        ),
        (
            "windows-1252",
            "=?windows-1252?Q?Prix=3A_20_=80_=96_=93offre=94?=",
            "=?windows-1252?Q?Fran=E7ois_Dupr=E9?=",
            "TGUgZGV2aXMgc5LpbOh2ZSDgIDEgMjUwIIAu",
            "Prix: 20 € – “offre”",
            "François Dupré",
            "Le devis s’élève à 1 250 €.",
        ),
        (
            "shift_jis",
            "=?shift_jis?B?k/qWe4zqgsyDZYNYg2c=?=",
            "=?shift_jis?B?jlKTYyCRvphZ?=",
            "gqiQophigsmCyILBgsSCqILogtyCt4FC",
            "日本語のテスト",
            "山田 太郎",
            "お世話になっております。",
        ),
        (
            "gb2312",
            "=?gb2312?B?udjT2s/uxL+9+LbItcSxqLjm?=",
            "=?gb2312?B?zfXQocP3?=",
            "xOO6w6OsuL28/srHsb7W3LXEsai45qGj",
            "关于项目进度的报告",
            "王小明",
            "你好，附件是本周的报告。",
        ),
        (
            "euc-kr",
            "=?euc-kr?B?yLjAxyDAz8GkIL7Is7s=?=",
            "=?euc-kr?B?sei5zsHY?=",
            "vsiz58fPvLy/5C4=",
            "회의 일정 안내",
            "김민준",
            "안녕하세요.",
        ),
        (
            "iso-2022-jp",
            "=?iso-2022-jp?B?GyRCJDMkcyRLJEEkT0AkMyYbKEI=?=",
            "=?iso-2022-jp?B?GyRCOjRGIxsoQiAbJEIyVjtSGyhC?=",
            "GyRCJGgkbSQ3JC8kKjRqJCQkJCQ/JDckXiQ5ISMbKEI=",
            "こんにちは世界",
            "佐藤 花子",
            "よろしくお願いいたします。",
        ),
        (
            "koi8-r",
            "=?koi8-r?Q?=EF=D4=DE=A3=D4_=DA=C1_=CE=C5=C4=C5=CC=C0?=",
            "=?koi8-r?Q?=E9=D7=C1=CE=C1_=F0=C5=D4=D2=CF=D7=C1?=",
            "5M/C0tnKIMTFztgh",
            "Отчёт за неделю",
            "Ивана Петрова",
            "Добрый день!",
        ),
    ];
    let hostile = "From: Security <security@evil.example.net>\r\nTo: you@example.test\r\nSubject: =?utf-8?B?QWNjb3VudCBsb2NrZWQg8J+UkQ==?=\r\nMessage-ID: <hostile@evil.example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body onload=3D\"steal()\"><script>alert(document.cookie)</script><p>Dear custome=\r\nr, <a href=3D\"javascript:alert(1)\">unlock</a></p><img src=3D\"https://tracker.ex=\r\nample.net/p.gif\"><img src=3D\"x\" onerror=3D\"alert(2)\"></body></html>\r\n";
    let attached = "From: Ada <ada@example.org>\r\nTo: you@example.test\r\nSubject: Files\r\nMessage-ID: <files@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>logo: <img src=\"cid:logo@x\"></p>\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''%C3%9Cberweisung%2010%20%E2%82%AC.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--m--\r\n";
    for email in [GMAIL, OUTLOOK] {
        let mut expected = Vec::new();
        for (charset, subject, name, body, want_subject, want_name, want_body) in cases {
            let raw = format!(
                "From: {name} <sender@example.test>\r\nTo: {email}\r\nSubject: {subject}\r\nMessage-ID: <{charset}@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"{charset}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
            );
            let inserted = control_json(
                &app,
                reqwest::Method::POST,
                &format!("{email}/messages"),
                json!({"raw": base64_std(raw.as_bytes())}),
            )
            .await;
            expected.push((
                inserted["id"].as_str().expect("id").to_string(),
                want_subject,
                want_name,
                want_body,
            ));
        }
        let hostile_id = control_json(
            &app,
            reqwest::Method::POST,
            &format!("{email}/messages"),
            json!({"raw": base64_std(hostile.as_bytes())}),
        )
        .await["id"]
            .as_str()
            .expect("id")
            .to_string();
        let files_id = control_json(
            &app,
            reqwest::Method::POST,
            &format!("{email}/messages"),
            json!({"raw": base64_std(attached.as_bytes())}),
        )
        .await["id"]
            .as_str()
            .expect("id")
            .to_string();
        app.generate(email, 200, 91).await;
        let id = linked(&app, email).await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_in_step(&app, email, id).await;

        for (pid, subject, name, body) in expected {
            let row = message_row(&app, id, &pid).await;
            assert_eq!((row.0.as_str(), row.1.as_str()), (subject, name), "{email}");
            assert_eq!(
                row.2.as_deref().map(str::trim),
                Some(body),
                "{email}: {subject}"
            );
            // Found by a search for its decoded subject.
            let (status, found) = app
                .call(
                    MEMBER,
                    None,
                    "mailMessages:list",
                    &[("search", subject), ("pageSize", "200")],
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{found}");
            assert!(
                found["data"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|m| m["providerMessageId"] == pid.as_str())),
                "searchable: {subject}: {found}"
            );
        }
        let (subject, _, text, html, search, snippet) = message_row(&app, id, &hostile_id).await;
        assert_eq!(subject, "Account locked 🔑");
        // An HTML-only message: any text body is derived from the HTML, without the script.
        let text = text.unwrap_or_default();
        assert!(
            !text.contains("alert(") && !text.contains("document.cookie"),
            "{text}"
        );
        let html = html.expect("html body");
        assert!(
            html.contains("Dear customer") && html.contains("tracker.example.net"),
            "QP decoded: {html}"
        );
        assert!(snippet.contains("Dear customer"), "{snippet}");
        for bad in ["alert(", "document.cookie", "javascript:"] {
            assert!(
                !snippet.contains(bad) && !search.contains(bad),
                "{bad} in the snippet or search text"
            );
        }
        let attachments = attachment_rows(&app, id, &files_id).await;
        assert_eq!(attachments.len(), 2, "{attachments:?}");
        let pdf = attachments
            .iter()
            .find(|a| a.1 == "application/pdf")
            .expect("pdf");
        assert_eq!(
            (pdf.0.as_str(), pdf.2, pdf.3),
            ("Überweisung 10 €.pdf", false, 9)
        );
        let png = attachments
            .iter()
            .find(|a| a.1 == "image/png")
            .expect("png");
        assert!(png.2, "the cid image is inline");
        assert_eq!(png.4.as_deref(), Some("logo@x"));

        // Generated mail in every charset: what the sandbox decodes, the sidecar stored.
        let sandbox: Value = app
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
        let mut cjk = 0;
        for m in sandbox["messages"].as_array().expect("messages") {
            let pid = m["id"].as_str().expect("id");
            let row = message_row(&app, id, pid).await;
            assert_eq!(
                row.0,
                m["subject"].as_str().unwrap_or_default(),
                "{email} {pid}"
            );
            assert!(
                !row.0.contains('\u{fffd}') && !row.1.contains('\u{fffd}'),
                "{email}: {:?}",
                row.0
            );
            if row.0.chars().any(|c| {
                ('\u{3040}'..='\u{9fff}').contains(&c) || ('\u{ac00}'..='\u{d7af}').contains(&c)
            }) {
                cjk += 1;
            }
        }
        assert!(cjk > 10, "{email}: {cjk} CJK subjects");
    }
    app.stop().await;
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// (subject, from name, text body, html body, search text, snippet) of a stored message.
async fn message_row(
    app: &TestApp,
    account_id: i64,
    provider_id: &str,
) -> (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
) {
    let pid = provider_id.to_string();
    app.state
        .db
        .run(move |c| {
            Ok(m::mail_messages
                .filter(m::account_id.eq(account_id))
                .filter(m::provider_message_id.eq(pid))
                .select((
                    m::subject,
                    m::from_name,
                    m::text_body,
                    m::html_body,
                    m::search_text,
                    m::snippet,
                ))
                .first(c)?)
        })
        .await
        .expect("stored message")
}

/// (filename, content type, inline, size, content id) of a stored message's attachments.
async fn attachment_rows(
    app: &TestApp,
    account_id: i64,
    provider_id: &str,
) -> Vec<(String, String, bool, i64, Option<String>)> {
    use email_manager::db::schema::mail_attachments::dsl as a;
    let pid = provider_id.to_string();
    app.state
        .db
        .run(move |c| {
            let message: i64 = m::mail_messages
                .filter(m::account_id.eq(account_id))
                .filter(m::provider_message_id.eq(pid))
                .select(m::id)
                .first(c)?;
            Ok(a::mail_attachments
                .filter(a::message_id.eq(message))
                .select((
                    a::filename,
                    a::content_type,
                    a::inline,
                    a::size,
                    a::content_id,
                ))
                .load(c)?)
        })
        .await
        .expect("attachments")
}

/// Changes made through the adapters (what `mailMessages:update` and `destroy` call) reach the
/// provider, and the next sync agrees with it.
#[actix_web::test]
async fn changes_made_here_reach_the_provider() {
    use email_manager::providers::{folder, MessageChange};
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        app.generate(email, 120, 101).await;
        let id = linked(&app, email).await;
        app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        let before = app.sandbox_mailbox(email).await;
        let ids: Vec<&String> = before.keys().collect();
        // A message in a user folder (Gmail: a labelled one) to take to the archive.
        let labelled = before
            .iter()
            .find(|(_, s)| s.folder == "Projects" || s.folder == "Receipts")
            .map(|(k, _)| k.clone())
            .expect("a message in a user folder");
        let others: Vec<String> = ids
            .iter()
            .filter(|k| ***k != labelled)
            .take(4)
            .map(|k| k.to_string())
            .collect();
        let projects: String = app
            .state
            .db
            .run(move |c| {
                use email_manager::db::schema::mail_folders::dsl as f;
                Ok(f::mail_folders
                    .filter(f::account_id.eq(id))
                    .filter(f::name.eq("Projects"))
                    .select(f::folder)
                    .first(c)?)
            })
            .await
            .expect("the Projects folder is known");
        let provider = app
            .state
            .registry
            .get(if email == GMAIL {
                "google"
            } else {
                "microsoft"
            })
            .expect("provider");
        let token = email_manager::sync::tokens::access_token(
            app.state.get_ref(),
            provider.as_ref(),
            id,
            false,
        )
        .await
        .expect("token");
        let change =
            |unread: Option<bool>, starred: Option<bool>, folder: Option<&str>| MessageChange {
                unread,
                starred,
                folder: folder.map(str::to_string),
                ..Default::default()
            };
        let unread_now = before[&others[0]].unread;
        provider
            .modify(&token, &others[..1], &change(Some(!unread_now), None, None))
            .await
            .expect("read state");
        provider
            .modify(&token, &others[1..3], &change(None, Some(true), None))
            .await
            .expect("star");
        provider
            .modify(
                &token,
                std::slice::from_ref(&labelled),
                &change(None, None, Some(folder::ARCHIVE)),
            )
            .await
            .expect("archive");
        provider
            .modify(
                &token,
                &others[3..4],
                &change(None, None, Some(projects.as_str())),
            )
            .await
            .expect("move to a user folder");
        provider.trash(&token, &others[2]).await.expect("trash");

        let after = app.sandbox_mailbox(email).await;
        assert_eq!(after[&others[0]].unread, !unread_now, "{email}");
        assert!(
            after[&others[1]].starred && after[&others[2]].starred,
            "{email}"
        );
        assert_eq!(after[&labelled].folder, "archive", "{email}");
        assert_eq!(after[&others[3]].folder, "Projects", "{email}");
        assert_eq!(after[&others[2]].folder, "trash", "{email}");
        assert_eq!(after.len(), before.len());

        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(
            (&run["added"], &run["removed"]),
            (&json!(0), &json!(0)),
            "{run}"
        );
        assert_in_step(&app, email, id).await;
    }
    app.stop().await;
}

/// An access token about to expire is refreshed before it is used; one the provider refuses
/// (401) is refreshed once and the call made again.
#[actix_web::test]
async fn access_tokens_are_refreshed_before_expiry_and_after_a_401() {
    use email_manager::db::schema::mail_accounts::dsl as a;
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for (email, token_path, api) in [
        (GMAIL, "/google/token", "/google/gmail"),
        (
            OUTLOOK,
            "/microsoft/common/oauth2/v2.0/token",
            "/microsoft/graph",
        ),
    ] {
        app.generate(email, 20, 111).await;
        let id = linked(&app, email).await;
        app.sync_now(MEMBER, id, "mailAccounts:sync").await;

        // A minute left: refreshed first, so the provider never sees the old token fail.
        let soon = chrono::Utc::now().timestamp_millis() + 60_000;
        app.state
            .db
            .run(move |c| {
                diesel::update(a::mail_accounts.find(id))
                    .set(a::token_expires_at.eq(Some(soon)))
                    .execute(c)?;
                Ok(())
            })
            .await
            .expect("expiry");
        app.client
            .delete(format!("{}/__sandbox/requests", app.sandbox.base_url))
            .send()
            .await
            .expect("clear");
        app.generate(email, 2, 112).await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(run["added"], 2, "{run}");
        let seen = app.sandbox_requests("/").await;
        let first_api = seen
            .iter()
            .position(|r| r["path"].as_str().is_some_and(|p| p.starts_with(api)))
            .expect("API calls");
        let refresh = seen
            .iter()
            .position(|r| r["path"] == token_path)
            .expect("a refresh");
        assert!(
            refresh < first_api,
            "{email}: refreshed before the first call"
        );
        assert!(
            seen.iter().all(|r| r["status"] != 401),
            "{email}: no call was refused"
        );

        // The provider drops the current token: one 401, one refresh, the same call again.
        app.sandbox_post("/__sandbox/tokens/expire", json!({"email": email}))
            .await;
        app.client
            .delete(format!("{}/__sandbox/requests", app.sandbox.base_url))
            .send()
            .await
            .expect("clear");
        app.generate(email, 2, 113).await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(run["added"], 2, "{run}");
        let seen = app.sandbox_requests("/").await;
        let refused = seen.iter().filter(|r| r["status"] == 401).count();
        let refreshes = seen.iter().filter(|r| r["path"] == token_path).count();
        assert_eq!((refused, refreshes), (1, 1), "{email}");
        assert_in_step(&app, email, id).await;
    }
    app.stop().await;
}

/// A storm that outlasts the retries fails the run, which is recorded with its kind; the next
/// run picks up from the stored cursor and ends in step.
#[actix_web::test]
async fn a_storm_longer_than_the_retries_fails_the_run_and_the_next_one_recovers() {
    let app = TestApp::spawn_with(&[("EMAIL_MANAGER__PROVIDERS__RETRIES", "1")]).await;
    app.configure_providers().await;
    for (email, prefix) in [
        (GMAIL, "/google/gmail/v1/users/me"),
        (OUTLOOK, "/microsoft/graph/v1.0/me"),
    ] {
        app.generate(email, 40, 121).await;
        let id = linked(&app, email).await;
        app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        app.generate(email, 5, 122).await;
        app.sandbox_post(
            "/__sandbox/faults",
            json!({"path_prefix": prefix, "status": 500, "count": 50}),
        )
        .await;
        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert_eq!(run["error"]["kind"], "transient", "{run}");
        let account = app.account(MEMBER, email).await;
        assert!(account["lastError"].is_string(), "{account}");
        let (_, runs) = app
            .call(
                MEMBER,
                None,
                "mailSyncRuns:list",
                &[("filter[accountId]", &id.to_string())],
                None,
            )
            .await;
        assert_eq!(runs["data"][0]["error"]["kind"], "transient", "{runs}");
        let resp = app
            .client
            .delete(format!("{}/__sandbox/faults", app.sandbox.base_url))
            .send()
            .await
            .expect("clear faults");
        assert!(resp.status().is_success());

        let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(run["added"], 5, "{run}");
        assert_in_step(&app, email, id).await;
        assert!(app.account(MEMBER, email).await["lastError"].is_null());
    }
    app.stop().await;
}

/// Graph allows 4 concurrent requests per mailbox (the sandbox answers 429 past that): sync stays
/// within it even when `sync.concurrency` asks for more.
#[actix_web::test]
async fn graph_downloads_stay_within_four_concurrent_requests_per_mailbox() {
    let app = TestApp::spawn_with(&[("EMAIL_MANAGER__SYNC__CONCURRENCY", "8")]).await;
    app.configure_providers().await;
    app.generate(OUTLOOK, 60, 131).await;
    let id = linked(&app, OUTLOOK).await;
    // Slow downloads, so concurrent ones overlap.
    app.sandbox_post(
        "/__sandbox/faults",
        json!({"path_prefix": "/microsoft/graph/v1.0/me/messages/", "delay_ms": 150, "count": 60}),
    )
    .await;
    let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
    assert!(run["error"].is_null(), "{run}");
    assert_in_step(&app, OUTLOOK, id).await;
    let seen: Value = app
        .client
        .get(format!("{}/__sandbox/concurrency", app.sandbox.base_url))
        .send()
        .await
        .expect("concurrency")
        .json()
        .await
        .expect("json");
    let max = seen["graphMaxInFlight"][OUTLOOK].as_u64().expect("counted");
    assert!(
        (2..=4).contains(&max),
        "at most 4 at once, and more than one: {max}"
    );
    let throttled = app
        .sandbox_requests("/microsoft/graph")
        .await
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(throttled, 0);
    app.stop().await;
}

/// The sandbox answers the next `count` requests under `path_prefix` with 429, Retry-After 1 s.
async fn throttle(app: &TestApp, path_prefix: &str, count: u64) {
    app.sandbox_post(
        "/__sandbox/faults",
        json!({"path_prefix": path_prefix, "status": 429, "retry_after": "1", "count": count}),
    )
    .await;
}

/// Syncs the account now: the run ends without error, having added `added` messages, and the
/// mailbox is in step with the sandbox. Answers the run.
async fn sync_adding(app: &TestApp, email: &str, id: i64, added: u64) -> Value {
    let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
    assert!(run["error"].is_null(), "{run}");
    assert_eq!(run["added"], added, "{run}");
    assert_in_step(app, email, id).await;
    run
}

/// `throttled` of the recorded calls made inside batches got 429, and each of those, and only
/// those, was made again alone and answered.
fn assert_throttled_alone(calls: &[Value], throttled: usize) {
    let paths = |inside: bool, status: Option<u64>| {
        let mut list: Vec<String> = calls
            .iter()
            .filter(|c| (c["batch"] == true) == inside)
            .filter(|c| status.is_none_or(|s| c["status"] == s))
            .map(|c| c["path"].as_str().unwrap_or_default().to_string())
            .collect();
        list.sort();
        list
    };
    let refused = paths(true, Some(429));
    assert_eq!(refused.len(), throttled, "{calls:?}");
    assert_eq!(paths(false, None), refused, "{calls:?}");
    assert_eq!(
        paths(false, Some(200)),
        refused,
        "answered alone: {calls:?}"
    );
}

/// Outlook's sync fetches the MIME of new messages in JSON batches (`POST /$batch`, at most 20
/// `$value` requests each, one batch at a time), and a request the batch answers with 429 is
/// made again on its own.
#[actix_web::test]
async fn graph_fetches_mime_in_batches_and_retries_a_throttled_request_alone() {
    let (app, id) = linked_mailbox(OUTLOOK, 90, 151).await;
    throttle(&app, "/microsoft/graph/v1.0/me/messages/", 3).await;
    sync_adding(&app, OUTLOOK, id, 90).await;

    let batches = app.sandbox_requests("/microsoft/graph/v1.0/$batch").await;
    let sizes: Vec<usize> = batches
        .iter()
        .map(|b| b["json"]["requests"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(sizes.iter().all(|&n| (1..=20).contains(&n)), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 90, "{sizes:?}");
    assert!(batches.iter().all(|b| b["status"] == 200));
    let calls = app
        .sandbox_requests("/microsoft/graph/v1.0/me/messages/")
        .await;
    let batched: Vec<&Value> = calls.iter().filter(|c| c["batch"] == true).collect();
    assert_eq!(batched.len(), 90);
    assert!(batched.iter().all(
        |c| c["method"] == "GET" && c["path"].as_str().is_some_and(|p| p.ends_with("/$value"))
    ));
    assert_throttled_alone(&calls, 3);
    app.stop().await;
}

/// Downloads hand each batch to the caller as it arrives (sync parses it there), so no more raw
/// MIME is held at once than the batches in flight and being handled: for Graph, batches of at
/// most 20, one downloading and at most two handled.
#[actix_web::test]
async fn downloads_hand_over_each_batch_as_it_arrives() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (app, id) = linked_mailbox(OUTLOOK, 90, 181).await;
    let adapter = app.state.registry.get("microsoft").expect("adapter");
    let token = email_manager::sync::tokens::access_token(&app.state, adapter.as_ref(), id, false)
        .await
        .expect("token");
    let states: Vec<MessageState> = app
        .sandbox_mailbox(OUTLOOK)
        .await
        .into_keys()
        .map(|provider_message_id| MessageState {
            provider_message_id,
            thread_id: None,
            folder: "inbox".into(),
            labels: Vec::new(),
            unread: false,
            starred: false,
            draft: false,
            received_at: None,
            todo_due_at: None,
        })
        .collect();
    let refs: Vec<&MessageState> = states.iter().collect();
    let (held, most, sizes) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        std::sync::Mutex::new(Vec::new()),
    );
    let got = email_manager::sync::download_mime(
        &app.state.settings,
        adapter.as_ref(),
        &token,
        &refs,
        |raws| {
            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            sizes.lock().expect("sizes").push(raws.len());
            let (held, ids) = (
                &held,
                raws.iter().map(|(st, _)| st.provider_message_id.clone()),
            );
            let ids: Vec<String> = ids.collect();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                held.fetch_sub(1, Ordering::SeqCst);
                Ok(ids)
            }
        },
    )
    .await
    .expect("download");
    assert_eq!(got.len(), 90);
    let sizes = sizes.into_inner().expect("sizes");
    assert!(sizes.iter().all(|&n| (1..=20).contains(&n)), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 90);
    assert!((1..=2).contains(&most.load(Ordering::SeqCst)), "{most:?}");
    app.stop().await;
}

/// Outlook's first sync commits its first delta page alone, so the newest mail shows at once,
/// then gathers delta pages (100 each), across folders, into larger transactions.
#[actix_web::test]
async fn graph_commits_the_first_page_alone_then_gathers_pages() {
    let (app, id) = linked_mailbox(OUTLOOK, 700, 161).await;
    // Slow batches, so that every commit stands long enough to be seen.
    app.sandbox_post(
        "/__sandbox/faults",
        json!({"path_prefix": "/microsoft/graph/v1.0/$batch", "delay_ms": 40, "count": 1000}),
    )
    .await;
    // The stored count, polled while the sync runs.
    let watch = async {
        let mut seen = vec![0i64];
        let deadline = Instant::now() + Duration::from_secs(60);
        while *seen.last().unwrap_or(&0) < 700 {
            assert!(Instant::now() < deadline, "{seen:?}");
            let n = app.count("mail_messages").await;
            if Some(&n) != seen.last() {
                seen.push(n);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    };
    let (run, seen) =
        futures_util::future::join(app.sync_now(MEMBER, id, "mailAccounts:sync"), watch).await;
    assert!(run["error"].is_null(), "{run}");
    // The first delta page alone, then the next batch (up to 1000 changes, across folders)
    // holds the other 600 in one transaction.
    assert_eq!(seen, [0, 100, 700], "{seen:?}");
    assert_in_step(&app, OUTLOOK, id).await;
    app.stop().await;
}

/// Gmail's incremental sync fetches the messages history names as added in the same batch
/// requests as the first sync (50 calls each), and a throttled call is made again on its own.
#[actix_web::test]
async fn gmail_history_fetches_new_messages_in_batches() {
    let (app, id) = linked_mailbox(GMAIL, 5, 171).await;
    let first = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
    assert_eq!(first["added"], 5, "{first}");
    let batches_before = app.sandbox_requests("/google/batch/gmail/v1").await.len();
    let calls_before = app
        .sandbox_requests("/google/gmail/v1/users/me/messages/")
        .await
        .len();

    app.generate(GMAIL, 120, 172).await;
    throttle(&app, "/google/gmail/v1/users/me/messages/", 2).await;
    let run = sync_adding(&app, GMAIL, id, 120).await;
    assert_eq!(run["kind"], "incremental", "{run}");

    let batches = app.sandbox_requests("/google/batch/gmail/v1").await;
    let new_batches = &batches[batches_before..];
    // 120 in chunks of 50: three batch requests.
    assert_eq!(new_batches.len(), 3, "{new_batches:?}");
    let calls = app
        .sandbox_requests("/google/gmail/v1/users/me/messages/")
        .await;
    let calls = &calls[calls_before..];
    let batched = calls.iter().filter(|c| c["batch"] == true).count();
    assert_eq!(batched, 120, "{calls:?}");
    assert_throttled_alone(calls, 2);
    app.stop().await;
}

/// Gmail's first sync fetches the listed messages in batch requests (`POST /batch/gmail/v1`,
/// 50 calls each), and a call the batch answers with 429 is made again on its own.
#[actix_web::test]
async fn gmail_fetches_in_batches_and_retries_a_throttled_call_alone() {
    let (app, id) = linked_mailbox(GMAIL, 120, 141).await;
    // The trailing slash spares the listing: only single messages are throttled.
    throttle(&app, "/google/gmail/v1/users/me/messages/", 3).await;
    sync_adding(&app, GMAIL, id, 120).await;

    // 100 on the first page (2 batches), 20 on the second (1 batch).
    let batches = app.sandbox_requests("/google/batch/gmail/v1").await;
    assert_eq!(batches.len(), 3, "{batches:?}");
    let calls = app
        .sandbox_requests("/google/gmail/v1/users/me/messages/")
        .await;
    let batched: Vec<&Value> = calls.iter().filter(|c| c["batch"] == true).collect();
    assert_eq!(batched.len(), 120);
    assert!(batched
        .iter()
        .all(|c| c["method"] == "GET" && c["query"]["format"] == "raw"));
    assert_throttled_alone(&calls, 3);
    app.stop().await;
}
