//! Sync against the sandbox: a synced mailbox must equal the sandbox's, message for message, after
//! first sync, provider-side changes, expired cursors, throttling, and a revoked grant.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use email_manager::db::schema::mail_messages::dsl as m;
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
                let rows: Vec<(String, String, bool, bool, String, Option<String>)> =
                    m::mail_messages
                        .filter(m::account_id.eq(account_id))
                        .select((
                            m::provider_message_id,
                            m::folder,
                            m::unread,
                            m::starred,
                            m::thread_id,
                            m::message_id,
                        ))
                        .load(c)?;
                Ok((folders, rows))
            })
            .await
            .expect("stored");
        let (folders, rows) = rows;
        let mut out = BTreeMap::new();
        for (id, folder, unread, starred, thread_id, message_id) in rows {
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
    for (email, count) in [(GMAIL, 1500), (OUTLOOK, 1500)] {
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

#[actix_web::test]
async fn an_expired_cursor_resyncs_without_losing_or_duplicating_anything() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    for email in [GMAIL, OUTLOOK] {
        app.generate(email, 300, 11).await;
        let id = linked(&app, email).await;
        app.sync_now(MEMBER, id, "mailAccounts:sync").await;
        // Local state that only exists here must survive the resync.
        let kept: i64 = app
            .state
            .db
            .run(move |c| {
                let first: i64 = m::mail_messages
                    .filter(m::account_id.eq(id))
                    .order(m::id.asc())
                    .select(m::id)
                    .first(c)?;
                diesel::update(m::mail_messages.find(first))
                    .set(m::todo.eq(true))
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
        assert!(todo, "local to-do kept through the resync");

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

async fn wait_until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    app.generate(GMAIL, 2500, 51).await;
    let id = linked(&app, GMAIL).await;
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
        wait_until("the restarted sidecar makes progress", 30, || async {
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
    wait_until("the mailbox completes after the kills", 60, || async {
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
        wait_until(email, 60, || async { app.stored(*id).await.len() == want }).await;
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
