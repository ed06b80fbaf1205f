//! Mass mailing (`mailMassMessages`) and the general settings (`mailGeneralSettings`) against the
//! sandbox: one message per recipient, rendered for each, within the rate; exactly once across
//! `kill -9`; pause, resume, cancel; 429s and quotas; bad input; replicas on PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{wait_for, TestApp, ADMIN, MEMBER, OTHER_MEMBER};
use crate::send::{add_fault, error_message, linked, outbox, raw_of, spawn_app, upload};

const GMAIL: &str = "alice@gmail.test";
const OUTLOOK: &str = "carol@contoso.test";

async fn set_general(app: &TestApp, values: Value) -> Value {
    let (status, body) = app
        .call(ADMIN, None, "mailGeneralSettings:update", &[], Some(values))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn create(app: &TestApp, user: i64, values: Value) -> (StatusCode, Value) {
    app.call(user, None, "mailMassMessages:create", &[], Some(values))
        .await
}

async fn created(app: &TestApp, user: i64, values: Value) -> Value {
    let (status, body) = create(app, user, values).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn job(app: &TestApp, user: i64, id: i64) -> Value {
    let (status, body) = app
        .call(
            user,
            None,
            "mailMassMessages:get",
            &[("filterByTk", &id.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn act(app: &TestApp, user: i64, action: &str, id: i64) -> (StatusCode, Value) {
    app.call(
        user,
        None,
        &format!("mailMassMessages:{action}"),
        &[("filterByTk", &id.to_string())],
        None,
    )
    .await
}

async fn wait_job<F: Fn(&Value) -> bool>(
    app: &TestApp,
    id: i64,
    secs: u64,
    what: &str,
    done: F,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let j = job(app, MEMBER, id).await;
        if done(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs} s: {j}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn recipients(n: usize, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"email": format!("{prefix}{i}@example.test"), "name": format!("Person {i}")}))
        .collect()
}

/// Every address the outbox holds for `from`, with how many messages it got.
async fn delivered(app: &TestApp, from: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in outbox(app, Some(from)).await {
        for a in m["envelope"].as_array().into_iter().flatten() {
            *seen
                .entry(a.as_str().unwrap_or_default().to_ascii_lowercase())
                .or_insert(0) += 1;
        }
    }
    seen
}

fn assert_once_each(seen: &HashMap<String, usize>, n: usize, prefix: &str) {
    assert_eq!(seen.len(), n, "every recipient got a message");
    for i in 0..n {
        let a = format!("{prefix}{i}@example.test");
        assert_eq!(seen.get(&a), Some(&1), "{a} got exactly one message");
    }
}

fn millis(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .expect("ISO time")
        .timestamp_millis()
}

async fn limits(app: &TestApp, body: Value) {
    app.sandbox_post("/__sandbox/sending-limits", body).await;
}

async fn sandbox_limits(app: &TestApp) -> Vec<Value> {
    let body: Value = app
        .client
        .get(format!("{}/__sandbox/sending-limits", app.sandbox.base_url))
        .send()
        .await
        .expect("limits")
        .json()
        .await
        .expect("json");
    body["limits"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn a_thousand_records_get_a_thousand_rendered_messages_within_the_rate() {
    let (app, _uploads) = spawn_app(&[]).await;
    let account = linked(&app, MEMBER, GMAIL).await;
    // 6,000 a minute: one send every 10 ms.
    set_general(&app, json!({"massRatePerMinute": 6000})).await;
    let records: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"id": i, "mail": format!("r{i}@example.test"), "firstName": format!("Ann{i}"),
                   "city": if i % 2 == 0 { "Köln" } else { "<Paris>" }})
        })
        .collect();
    let started = Instant::now();
    let j = created(
        &app,
        MEMBER,
        json!({
            "accountId": account,
            "subject": "Hello {{firstName}}",
            "html": "<p>Dear {{firstName}} from {{city}}, your id is {{id}}.</p>",
            "records": records,
            "emailField": "mail",
            "nameField": "firstName",
        }),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "accepted quickly"
    );
    assert_eq!(j["total"], 1000);
    assert_eq!(j["rate"], 6000);
    assert_eq!(j["rejected"], json!([]));
    let id = j["id"].as_i64().expect("id");
    let done = wait_job(&app, id, 60, "the job completes", |j| {
        j["status"] == "completed"
    })
    .await;
    assert_eq!(
        (
            &done["sent"],
            &done["failed"],
            &done["queued"],
            &done["sending"]
        ),
        (&json!(1000), &json!(0), &json!(0), &json!(0)),
        "{done}"
    );
    assert!(done["startedAt"].is_string() && done["finishedAt"].is_string());

    let sent = outbox(&app, Some(GMAIL)).await;
    assert_eq!(sent.len(), 1000, "1,000 separate messages");
    let seen = delivered(&app, GMAIL).await;
    assert_once_each(&seen, 1000, "r");
    for m in sent
        .iter()
        .filter(|m| m["envelope"].as_array().map(Vec::len) == Some(1))
    {
        assert_eq!(m["envelope"].as_array().map(Vec::len), Some(1));
    }
    // A few bodies, parsed.
    for k in [0usize, 1, 457, 999] {
        let a = format!("r{k}@example.test");
        let m = sent
            .iter()
            .find(|m| m["envelope"][0] == a.as_str())
            .expect("the recipient's message");
        let raw = raw_of(m);
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("MIME");
        assert_eq!(parsed.subject(), Some(format!("Hello Ann{k}").as_str()));
        let to = parsed.to().and_then(|t| t.first()).expect("to");
        assert_eq!(to.address(), Some(a.as_str()));
        assert_eq!(to.name(), Some(format!("Ann{k}").as_str()));
        let html = parsed.body_html(0).expect("html").to_string();
        let city = if k % 2 == 0 { "Köln" } else { "&lt;Paris&gt;" };
        assert!(
            html.contains(&format!("Dear Ann{k} from {city}, your id is {k}.")),
            "{html}"
        );
        assert!(parsed.message_id().is_some());
    }
    // Within the rate: 1,000 sends 10 ms apart take at least 9.99 s from first to last.
    let times: Vec<i64> = sent
        .iter()
        .map(|m| millis(m["at"].as_str().expect("at")))
        .collect();
    let span = times.iter().max().expect("max") - times.iter().min().expect("min");
    assert!(span >= 999 * 10 - 50, "sent within the rate: {span} ms");
    // No second in which more than the rate (100 a second) went out.
    let mut per_second: HashMap<i64, usize> = HashMap::new();
    for t in &times {
        *per_second.entry(t / 1000).or_default() += 1;
    }
    assert!(per_second.values().all(|n| *n <= 102), "{per_second:?}");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("email_manager_mass_messages_sent_total{provider=\"google\"} 1000"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE email_manager_send_queue_depth gauge"));
    app.stop().await;
}

/// `kill -9` of the sidecar three times at random moments of a 500-recipient job, restarted
/// each time: at the end the sandbox holds exactly one message per recipient.
#[actix_web::test]
async fn a_sidecar_killed_three_times_sends_every_recipient_exactly_once() {
    let (app, _uploads) = spawn_app(&[("EMAIL_MANAGER__MAIL__MASS_WORKER", "false")]).await;
    let account = linked(&app, MEMBER, GMAIL).await;
    set_general(&app, json!({"massRatePerMinute": 3000})).await;
    let j = created(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "Hi {{recipient.name}}", "text": "Hello {{recipient.name}}",
               "recipients": recipients(500, "k")}),
    )
    .await;
    let id = j["id"].as_i64().expect("id");
    let logs = tempfile::tempdir().expect("dir");
    let extra = [
        ("EMAIL_MANAGER__MAIL__MASS_WORKER", "true"),
        ("EMAIL_MANAGER__MAIL__MASS_LEASE_SECS", "1"),
    ];
    for round in 0..3 {
        let before = outbox(&app, Some(GMAIL)).await.len();
        let more = rand::thread_rng().gen_range(40..90);
        let mut child = app.spawn_binary(&extra, &logs.path().join(format!("{round}.log")));
        wait_for("the restarted sidecar sends", 30, || async {
            outbox(&app, Some(GMAIL)).await.len() >= before + more
        })
        .await;
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..60))).await;
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        assert!(
            outbox(&app, Some(GMAIL)).await.len() < 500,
            "killed before the end (round {round})"
        );
    }
    let mut child = app.spawn_binary(&extra, &logs.path().join("last.log"));
    let done = wait_job(&app, id, 60, "the job completes after the kills", |j| {
        j["status"] == "completed"
    })
    .await;
    child.kill().expect("stop");
    child.wait().expect("reaped");
    assert_eq!(done["sent"], 500, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    assert_eq!(
        outbox(&app, Some(GMAIL)).await.len(),
        500,
        "one message each"
    );
    assert_once_each(&delivered(&app, GMAIL).await, 500, "k");
    app.stop().await;
}

#[actix_web::test]
async fn pause_resume_and_cancel_take_effect_within_a_second() {
    let (app, _uploads) = spawn_app(&[]).await;
    let account = linked(&app, MEMBER, OUTLOOK).await;
    // The job's own rate: 300 a minute (one every 200 ms), under the account's.
    set_general(&app, json!({"massRatePerMinute": 6000})).await;
    let j = created(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "S", "html": "<p>Hi {{recipient.name}}</p>",
               "recipients": recipients(40, "p"), "rate": 300}),
    )
    .await;
    assert_eq!(j["rate"], 300);
    let id = j["id"].as_i64().expect("id");
    wait_for("a few sends", 20, || async {
        outbox(&app, Some(OUTLOOK)).await.len() >= 3
    })
    .await;
    let (status, paused) = act(&app, MEMBER, "pause", id).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["data"]["status"], "paused");
    assert!(paused["data"]["pauseReason"].is_null());
    // A send already committed finishes; nothing new starts after a second.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let at_pause = outbox(&app, Some(OUTLOOK)).await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        outbox(&app, Some(OUTLOOK)).await.len(),
        at_pause,
        "nothing sent while paused"
    );
    let j = job(&app, MEMBER, id).await;
    assert_eq!(j["sent"], at_pause as i64, "{j}");
    assert_eq!(j["sending"], 0, "{j}");
    let (status, again) = act(&app, MEMBER, "pause", id).await;
    assert_eq!(status, StatusCode::OK, "pausing twice is harmless: {again}");

    let (status, resumed) = act(&app, MEMBER, "resume", id).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["data"]["status"], "running");
    wait_for("sending again", 10, || async {
        outbox(&app, Some(OUTLOOK)).await.len() >= at_pause + 3
    })
    .await;
    let (status, cancelled) = act(&app, MEMBER, "cancel", id).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["data"]["status"], "cancelled");
    assert!(cancelled["data"]["finishedAt"].is_string());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let at_cancel = outbox(&app, Some(OUTLOOK)).await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(outbox(&app, Some(OUTLOOK)).await.len(), at_cancel);
    assert!(at_cancel < 40, "cancelled before the end");
    let j = job(&app, MEMBER, id).await;
    assert_eq!(j["sent"], at_cancel as i64, "{j}");
    assert_eq!(
        j["queued"],
        40 - at_cancel as i64,
        "the rest stays unsent: {j}"
    );
    let (status, body) = act(&app, MEMBER, "resume", id).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a cancelled job stays so: {body}"
    );
    assert_once_each_prefix(&delivered(&app, OUTLOOK).await, "p");

    // The recipients list, filtered.
    let (status, list) = app
        .call(
            MEMBER,
            None,
            "mailMassMessages:recipients",
            &[
                ("filterByTk", &id.to_string()),
                ("filter[status]", "sent"),
                ("pageSize", "100"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["meta"]["count"], at_cancel as i64);
    let first = &list["data"][0];
    assert_eq!(first["status"], "sent");
    assert!(first["sentAt"].is_string() && first["email"].is_string());
    let (status, list) = app
        .call(
            MEMBER,
            None,
            "mailMassMessages:recipients",
            &[
                ("filterByTk", &id.to_string()),
                ("filter[status]", "queued"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["meta"]["count"], 40 - at_cancel as i64);
    app.stop().await;
}

fn assert_once_each_prefix(seen: &HashMap<String, usize>, prefix: &str) {
    for (a, n) in seen {
        if a.starts_with(prefix) {
            assert_eq!(*n, 1, "{a} got one message");
        }
    }
}

#[actix_web::test]
async fn a_429_storm_slows_the_job_down_and_loses_nobody() {
    let (app, _uploads) = spawn_app(&[]).await;
    let account = linked(&app, MEMBER, GMAIL).await;
    set_general(&app, json!({"massRatePerMinute": 60000})).await;
    // The mailbox takes 4 sends per 500 ms; more answer 429 with Retry-After.
    limits(
        &app,
        json!({"email": GMAIL, "rate_count": 4, "rate_window_ms": 500}),
    )
    .await;
    // And a burst of injected 429s besides.
    add_fault(
        &app,
        json!({"path_prefix": "/google/gmail/v1/users/me/messages/send", "status": 429,
               "count": 3, "retry_after": "1"}),
    )
    .await;
    let started = Instant::now();
    let j = created(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "Storm", "text": "t", "recipients": recipients(20, "s")}),
    )
    .await;
    let id = j["id"].as_i64().expect("id");
    let done = wait_job(&app, id, 60, "the job completes", |j| {
        j["status"] == "completed"
    })
    .await;
    assert_eq!(done["sent"], 20, "{done}");
    assert_eq!(done["failed"], 0, "429s fail nobody: {done}");
    assert_once_each(&delivered(&app, GMAIL).await, 20, "s");
    let refused = sandbox_limits(&app).await[0]["refused"]
        .as_u64()
        .unwrap_or(0);
    assert!(refused > 0, "the sandbox's limit was hit");
    // Slowed: the Retry-After of the injected 429 alone holds the account back a second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let permille: i64 = {
        use diesel::prelude::*;
        use email_manager::db::schema::mail_mass_throttle::dsl as t;
        app.state
            .db
            .run(move |c| {
                Ok(t::mail_mass_throttle
                    .filter(t::account_id.eq(account))
                    .select(t::rate_permille)
                    .first(c)?)
            })
            .await
            .expect("throttle")
    };
    assert!(permille < 1000, "the rate was lowered: {permille}");
    app.stop().await;
}

#[actix_web::test]
async fn a_quota_error_pauses_the_job_with_the_reason_on_both_providers() {
    let (app, _uploads) = spawn_app(&[]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let outlook = linked(&app, MEMBER, OUTLOOK).await;
    set_general(&app, json!({"massRatePerMinute": 6000})).await;
    limits(&app, json!({"email": GMAIL, "daily_limit": 5})).await;
    limits(&app, json!({"email": OUTLOOK, "daily_limit": 3})).await;
    let g = created(
        &app,
        MEMBER,
        json!({"accountId": gmail, "subject": "Q", "text": "t", "recipients": recipients(12, "q")}),
    )
    .await;
    let o = created(
        &app,
        MEMBER,
        json!({"accountId": outlook, "subject": "Q", "text": "t", "recipients": recipients(6, "o")}),
    )
    .await;
    let (gid, oid) = (g["id"].as_i64().expect("id"), o["id"].as_i64().expect("id"));
    for (id, sent, provider) in [(gid, 5, "Google"), (oid, 3, "Microsoft")] {
        // Sends in flight when the quota hit are refused the same way and go back to the queue.
        let j = wait_job(&app, id, 30, "the quota pauses the job", |j| {
            j["status"] == "paused" && j["sending"] == 0
        })
        .await;
        let reason = j["pauseReason"].as_str().expect("a reason");
        assert!(
            reason.contains("sending limit") && reason.contains(provider),
            "{reason}"
        );
        assert_eq!(j["sent"], sent, "{j}");
        assert_eq!(j["failed"], 0, "{j}");
        assert_eq!(j["sending"], 0, "{j}");
    }
    assert_eq!(outbox(&app, Some(GMAIL)).await.len(), 5);
    assert_eq!(outbox(&app, Some(OUTLOOK)).await.len(), 3);
    // The limit lifts; resumed, the job finishes without repeating anyone.
    limits(&app, json!({"email": GMAIL})).await;
    let (status, body) = act(&app, MEMBER, "resume", gid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["pauseReason"].is_null());
    wait_job(&app, gid, 30, "the resumed job completes", |j| {
        j["status"] == "completed"
    })
    .await;
    assert_once_each(&delivered(&app, GMAIL).await, 12, "q");
    app.stop().await;
}

#[actix_web::test]
async fn bad_input_is_refused_and_nothing_is_sent() {
    let (app, _uploads) = spawn_app(&[]).await;
    let account = linked(&app, MEMBER, GMAIL).await;
    let theirs = linked(&app, OTHER_MEMBER, "bob@gmail.test").await;
    let base = |extra: Value| {
        let mut v =
            json!({"accountId": account, "subject": "Hi {{recipient.name}}", "text": "Hello"});
        for (k, val) in extra.as_object().expect("object") {
            v[k] = val.clone();
        }
        v
    };
    let big: Vec<Value> = (0..100_000)
        .map(|i| json!({"email": format!("b{i}@example.test")}))
        .collect();
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "empty list",
            base(json!({"recipients": []})),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
        (
            "no list",
            base(json!({})),
            StatusCode::BAD_REQUEST,
            "recipients is required",
        ),
        (
            "over the maximum",
            base(json!({"recipients": big})),
            StatusCode::BAD_REQUEST,
            "50000",
        ),
        (
            "nothing valid",
            base(json!({"recipients": [{"email": "nope"}, {"email": "a@"}]})),
            StatusCode::BAD_REQUEST,
            "None of the 2 recipients",
        ),
        (
            "unknown variable",
            base(json!({"text": "Your plan: {{plan}}", "recipients": [
                {"email": "v1@example.test", "variables": {"plan": "gold"}},
                {"email": "v2@example.test"}]})),
            StatusCode::BAD_REQUEST,
            "{{plan}}",
        ),
        (
            "records without emailField",
            base(json!({"records": [{"mail": "x@example.test"}]})),
            StatusCode::BAD_REQUEST,
            "emailField",
        ),
        (
            "another user's account",
            json!({"accountId": theirs, "subject": "s", "text": "t", "recipients": recipients(2, "z")}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "another user's upload",
            base(json!({"recipients": recipients(1, "u"), "attachments": [999_999]})),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "no body",
            base(json!({"recipients": recipients(1, "u"), "text": null})),
            StatusCode::BAD_REQUEST,
            "html or text",
        ),
        (
            "bad rate",
            base(json!({"recipients": recipients(1, "u"), "rate": 0})),
            StatusCode::BAD_REQUEST,
            "rate",
        ),
        (
            "unknown field",
            base(json!({"recipients": recipients(1, "u"), "cc": ["x@y.test"]})),
            StatusCode::BAD_REQUEST,
            "cc",
        ),
    ];
    for (what, values, want, text) in cases {
        let (status, body) = create(&app, MEMBER, values).await;
        assert_eq!(status, want, "{what}: {body}");
        assert!(
            error_message(&body).contains(text),
            "{what}: {}",
            error_message(&body)
        );
    }
    assert_eq!(app.count("mail_mass_jobs").await, 0, "nothing created");
    assert_eq!(app.count("mail_mass_recipients").await, 0);

    // Invalid and repeated addresses are reported per recipient and not sent.
    let j = created(
        &app,
        MEMBER,
        base(json!({"recipients": [
            {"email": "ok0@example.test", "name": "Ann"},
            {"email": "not an address"},
            {"email": "OK0@Example.test"},
            {"email": "ok1@example.test"},
            {"email": "bob@"},
        ]})),
    )
    .await;
    assert_eq!(j["total"], 2);
    let rejected = j["rejected"].as_array().expect("rejected");
    let idx: Vec<i64> = rejected
        .iter()
        .map(|r| r["index"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(idx, vec![1, 2, 4], "{rejected:?}");
    assert!(rejected[1]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("duplicate"));
    let id = j["id"].as_i64().expect("id");
    wait_job(&app, id, 30, "the job completes", |j| {
        j["status"] == "completed"
    })
    .await;
    let seen = delivered(&app, GMAIL).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen.get("ok0@example.test"), Some(&1));
    assert_eq!(seen.get("ok1@example.test"), Some(&1));

    // Another user's job: 404 on every action; unknown ones too.
    for action in ["get", "pause", "resume", "cancel", "recipients"] {
        let (status, body) = act(&app, OTHER_MEMBER, action, id).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
        let (status, _) = act(&app, MEMBER, action, 987_654).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action} of an unknown job");
    }
    let (status, list) = app
        .call(OTHER_MEMBER, None, "mailMassMessages:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["meta"]["count"], 0, "{list}");
    let (status, list) = app
        .call(MEMBER, None, "mailMassMessages:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["meta"]["count"], 1, "{list}");
    assert_eq!(list["data"][0]["id"], id);
    app.stop().await;
}

#[actix_web::test]
async fn general_settings_are_admin_only_checked_and_take_effect() {
    let (app, _uploads) = spawn_app(&[("EMAIL_MANAGER__SYNC__ENABLED", "true")]).await;
    let (status, body) = app
        .call(ADMIN, None, "mailGeneralSettings:get", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(d["syncIntervalSecs"], 300);
    assert_eq!(d["initialWindowDays"], 30);
    assert_eq!(d["maxAttachmentBytes"], 25 * 1024 * 1024);
    assert_eq!(d["massRatePerMinute"], 20);
    for action in ["mailGeneralSettings:get", "mailGeneralSettings:update"] {
        let (status, body) = app
            .call(
                MEMBER,
                None,
                action,
                &[],
                Some(json!({"syncIntervalSecs": 60})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {body}");
    }
    for bad in [
        json!({"syncIntervalSecs": 0}),
        json!({"syncIntervalSecs": "soon"}),
        json!({"initialWindowDays": -1}),
        json!({"maxAttachmentBytes": 1.5}),
        json!({"massRatePerMinute": 0}),
        json!({"massRatePerMinute": 10_000_000}),
        json!({"somethingElse": 1}),
    ] {
        let (status, body) = app
            .call(
                ADMIN,
                None,
                "mailGeneralSettings:update",
                &[],
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let d = set_general(
        &app,
        json!({"syncIntervalSecs": 100, "maxAttachmentBytes": 2048, "massRatePerMinute": 45,
               "initialWindowDays": 7}),
    )
    .await;
    assert_eq!(
        (
            &d["syncIntervalSecs"],
            &d["maxAttachmentBytes"],
            &d["massRatePerMinute"],
            &d["initialWindowDays"]
        ),
        (&json!(100), &json!(2048), &json!(45), &json!(7))
    );
    let (_, body) = app
        .call(ADMIN, None, "mailGeneralSettings:get", &[], None)
        .await;
    assert_eq!(body["data"]["massRatePerMinute"], 45, "stored");

    // The scheduler uses the new interval: the next sync is ~100 s after the last.
    // Mail from the last 20 days; the first sync takes the last 7 only.
    app.sandbox_post(
        &format!("/__sandbox/mailboxes/{GMAIL}/generate"),
        json!({"count": 60, "seed": 5, "days": 20}),
    )
    .await;
    let account = app.link(MEMBER, "google", GMAIL).await["id"]
        .as_i64()
        .expect("id");
    let synced = || async {
        use diesel::prelude::*;
        use email_manager::db::schema::mail_accounts::dsl as a;
        app.state
            .db
            .run(move |c| {
                Ok(a::mail_accounts
                    .filter(a::id.eq(account))
                    .select(a::last_sync_at)
                    .first::<Option<i64>>(c)?)
            })
            .await
            .expect("account")
            .is_some()
    };
    wait_for("the scheduler syncs the new account", 20, synced).await;
    let (next, last): (i64, Option<i64>) = {
        use diesel::prelude::*;
        use email_manager::db::schema::mail_accounts::dsl as a;
        app.state
            .db
            .run(move |c| {
                Ok(a::mail_accounts
                    .filter(a::id.eq(account))
                    .select((a::next_sync_at, a::last_sync_at))
                    .first(c)?)
            })
            .await
            .expect("account")
    };
    let gap = next - last.expect("synced");
    assert!((89_000..=111_000).contains(&gap), "next sync in {gap} ms");
    let at_provider: Vec<i64> = {
        let body: Value = app
            .client
            .get(format!(
                "{}/__sandbox/mailboxes/{GMAIL}",
                app.sandbox.base_url
            ))
            .send()
            .await
            .expect("mailbox")
            .json()
            .await
            .expect("json");
        body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| millis(m["receivedAt"].as_str().expect("receivedAt")))
            .collect()
    };
    let now = chrono::Utc::now().timestamp_millis();
    let within = |days: i64| {
        at_provider
            .iter()
            .filter(|t| **t >= now - days * 86_400_000)
            .count() as i64
    };
    let local = app.count("mail_messages").await;
    assert!(
        local >= within(6) && local <= within(8) && local < at_provider.len() as i64,
        "the first sync took the last 7 days: {local} of {} ({} within 6 days, {} within 8)",
        at_provider.len(),
        within(6),
        within(8)
    );
    // Mass mailing takes the rate per account; a job's own rate cannot exceed it.
    let j = created(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "s", "text": "t", "recipients": recipients(1, "g"), "rate": 1000}),
    )
    .await;
    assert_eq!(j["rate"], 45);
    // The attachment limit: an upload over 2,048 bytes cannot go out.
    let file = upload(
        &app,
        MEMBER,
        "big.bin",
        "application/octet-stream",
        &[7u8; 4096],
    )
    .await;
    let (status, body) = create(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "s", "text": "t", "recipients": recipients(1, "h"),
               "attachments": [file]}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, body) = crate::send::send(
        &app,
        MEMBER,
        json!({"accountId": account, "to": ["x@example.test"], "subject": "s", "text": "t",
               "attachments": [file]}),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a single send too: {body}"
    );
    // null goes back to the configured default.
    let d = set_general(&app, json!({"massRatePerMinute": null})).await;
    assert_eq!(d["massRatePerMinute"], 20);
    app.stop().await;
}

/// Two sidecar processes on one PostgreSQL database share the queue: every recipient once.
#[actix_web::test]
async fn replicas_share_the_queue_without_sending_anyone_twice() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        // One process per SQLite file; the replica case is PostgreSQL's.
        return;
    }
    let (app, _uploads) = spawn_app(&[("EMAIL_MANAGER__MAIL__MASS_WORKER", "false")]).await;
    let gmail = linked(&app, MEMBER, GMAIL).await;
    let outlook = linked(&app, MEMBER, OUTLOOK).await;
    set_general(&app, json!({"massRatePerMinute": 12000})).await;
    let mut ids = Vec::new();
    for (account, prefix) in [(gmail, "ga"), (gmail, "gb"), (outlook, "oa")] {
        let j = created(
            &app,
            MEMBER,
            json!({"accountId": account, "subject": "R", "text": "t", "recipients": recipients(150, prefix)}),
        )
        .await;
        ids.push(j["id"].as_i64().expect("id"));
    }
    let logs = tempfile::tempdir().expect("dir");
    let extra = [("EMAIL_MANAGER__MAIL__MASS_WORKER", "true")];
    let mut a = app.spawn_binary(&extra, &logs.path().join("a.log"));
    let mut b = app.spawn_binary(&extra, &logs.path().join("b.log"));
    for id in &ids {
        wait_job(&app, *id, 60, "each job completes", |j| {
            j["status"] == "completed"
        })
        .await;
    }
    for child in [&mut a, &mut b] {
        child.kill().expect("stop");
        child.wait().expect("reaped");
    }
    let seen = delivered(&app, GMAIL).await;
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|n| *n == 1), "no one twice");
    assert_once_each(&delivered(&app, OUTLOOK).await, 150, "oa");
    app.stop().await;
}

/// A dead process's send of a job cancelled meanwhile is settled by asking the provider, never by
/// sending: the one it had taken counts as sent, the other goes back to the queue.
#[actix_web::test]
async fn interrupted_sends_of_a_cancelled_job_are_looked_up_not_sent() {
    use diesel::prelude::*;
    use email_manager::db::schema::mail_mass_recipients::dsl as r;
    let (app, _uploads) = spawn_app(&[]).await;
    let account = linked(&app, MEMBER, GMAIL).await;
    // One a minute: the first goes at once, the others wait.
    let j = created(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "S", "text": "t", "recipients": recipients(3, "c"), "rate": 1}),
    )
    .await;
    let id = j["id"].as_i64().expect("id");
    wait_job(&app, id, 20, "the first send", |j| j["sent"] == 1).await;
    let (status, _) = act(&app, MEMBER, "cancel", id).await;
    assert_eq!(status, StatusCode::OK);
    // As a process killed mid-send leaves them: the sent one before its result was written, the
    // second before the provider heard of it.
    app.state
        .db
        .run(move |c| {
            diesel::update(
                r::mail_mass_recipients
                    .filter(r::job_id.eq(id))
                    .filter(r::email.eq_any(["c0@example.test", "c1@example.test"])),
            )
            .set((
                r::status.eq("sending"),
                r::lease_until.eq(0i64),
                r::sent_at.eq(None::<i64>),
            ))
            .execute(c)?;
            Ok(())
        })
        .await
        .expect("update");
    let done = wait_job(&app, id, 20, "the interrupted sends are settled", |j| {
        j["sending"] == 0
    })
    .await;
    assert_eq!(
        (&done["sent"], &done["queued"]),
        (&json!(1), &json!(2)),
        "{done}"
    );
    assert_eq!(done["status"], "cancelled");
    assert_eq!(
        outbox(&app, Some(GMAIL)).await.len(),
        1,
        "nothing sent again"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_slow_job_does_not_hold_back_the_accounts_other_jobs() {
    let (app, _uploads) = spawn_app(&[]).await;
    let account = linked(&app, MEMBER, GMAIL).await;
    set_general(&app, json!({"massRatePerMinute": 6000})).await;
    // One a minute: after its first send this job waits on its own clock.
    let slow = created(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "Slow", "text": "slow",
               "recipients": recipients(5, "slow"), "rate": 1}),
    )
    .await;
    let slow_id = slow["id"].as_i64().expect("id");
    wait_job(&app, slow_id, 20, "the slow job's first send", |j| {
        j["sent"] == 1
    })
    .await;
    let fast = created(
        &app,
        MEMBER,
        json!({"accountId": account, "subject": "Fast", "text": "fast",
               "recipients": recipients(20, "fast")}),
    )
    .await;
    let fast_id = fast["id"].as_i64().expect("id");
    let done = wait_job(
        &app,
        fast_id,
        20,
        "the fast job at the account's rate",
        |j| j["status"] == "completed",
    )
    .await;
    assert_eq!(done["sent"], 20, "{done}");
    let slow = job(&app, MEMBER, slow_id).await;
    assert_eq!(slow["status"], "running", "{slow}");
    assert_eq!(slow["sent"], 1, "the slow job keeps its own pace: {slow}");
    let seen = delivered(&app, GMAIL).await;
    assert_eq!(seen.len(), 21, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    app.stop().await;
}
