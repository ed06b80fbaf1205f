//! Labels and to-do on the real service against the sandbox: `mailMessageLabels` CRUD, labels on
//! messages through `mailMessages:update`, mirrored to Gmail labels and Outlook categories and
//! flags, taken in by sync, renamed and deleted at the providers, kept through provider failures,
//! resyncs and expired cursors.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sync::{GMAIL, OUTLOOK};

// ---- helpers shared with notes.rs ----

pub fn provider_of(email: &str) -> &'static str {
    if email.ends_with("gmail.test") {
        "google"
    } else {
        "microsoft"
    }
}

/// Links `email` for MEMBER and syncs it; answers the account id.
pub async fn link_and_sync(app: &TestApp, email: &str) -> i64 {
    let id = app.link(MEMBER, provider_of(email), email).await["id"]
        .as_i64()
        .expect("id");
    let run = app.sync_now(MEMBER, id, "mailAccounts:sync").await;
    assert!(run["error"].is_null(), "{run}");
    id
}

/// Adds a message at the sandbox as new mail; answers its provider id.
pub async fn insert_at_sandbox(app: &TestApp, email: &str, body: Value) -> String {
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
    v["id"].as_str().expect("id").to_string()
}

pub async fn simple_message(app: &TestApp, email: &str, subject: &str) -> String {
    insert_at_sandbox(
        app,
        email,
        json!({"from": "Ann <ann@example.test>", "to": [email], "subject": subject, "text": "hello"}),
    )
    .await
}

/// A message as the sandbox holds it (with `labelNames`, `categories`, `flag`).
pub async fn at_sandbox(app: &TestApp, email: &str, id: &str) -> Value {
    app.client
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

/// The mailbox as the sandbox holds it (Gmail `labels`, Outlook `categories`).
pub async fn mailbox_at_sandbox(app: &TestApp, email: &str) -> Value {
    app.client
        .get(format!(
            "{}/__sandbox/mailboxes/{email}",
            app.sandbox.base_url
        ))
        .send()
        .await
        .expect("sandbox")
        .json()
        .await
        .expect("json")
}

pub async fn sandbox_patch(app: &TestApp, email: &str, id: &str, body: Value) {
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
    assert!(
        resp.status().is_success(),
        "sandbox patch: {}",
        resp.status()
    );
}

pub async fn clear_faults(app: &TestApp) {
    let resp = app
        .client
        .delete(format!("{}/__sandbox/faults", app.sandbox.base_url))
        .send()
        .await
        .expect("clear faults");
    assert!(resp.status().is_success());
}

/// The local row of a provider message (with its labels and notes).
pub async fn local(app: &TestApp, provider_id: &str) -> Value {
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:list",
            &[
                (
                    "filter",
                    &json!({"providerMessageId": provider_id}).to_string(),
                ),
                ("appends", "labels,notes"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"][0].clone()
}

pub async fn local_id(app: &TestApp, provider_id: &str) -> i64 {
    local(app, provider_id).await["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{provider_id} is not stored"))
}

pub async fn update_message(app: &TestApp, id: i64, values: Value) -> (StatusCode, Value) {
    app.call(
        MEMBER,
        None,
        "mailMessages:update",
        &[("filterByTk", &id.to_string())],
        Some(values),
    )
    .await
}

pub async fn create_label(app: &TestApp, user: i64, values: Value) -> Value {
    let (status, body) = app
        .call(user, None, "mailMessageLabels:create", &[], Some(values))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn get_label(app: &TestApp, id: i64) -> Value {
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:get",
            &[("filterByTk", &id.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

fn label_names(v: &Value) -> Vec<String> {
    v["labels"]
        .as_array()
        .unwrap_or_else(|| panic!("no labels in {v}"))
        .iter()
        .map(|l| l["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

async fn subjects(app: &TestApp, query: &[(&str, &str)]) -> Vec<String> {
    let (status, body) = app
        .call(MEMBER, None, "mailMessages:list", query, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
    body["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The Gmail label of that name at the sandbox.
async fn gmail_label(app: &TestApp, name: &str) -> Option<Value> {
    mailbox_at_sandbox(app, GMAIL).await["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .find(|l| l["name"] == name)
        .cloned()
}

/// The Outlook master category of that name at the sandbox.
async fn outlook_category(app: &TestApp, name: &str) -> Option<Value> {
    mailbox_at_sandbox(app, OUTLOOK).await["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["displayName"] == name)
        .cloned()
}

async fn label_outbox(app: &TestApp) -> i64 {
    app.count("mail_label_outbox").await
}

// ---- CRUD ----

#[actix_web::test]
async fn labels_crud_validates_and_stays_with_its_owner() {
    let app = TestApp::spawn().await;
    let l = create_label(&app, MEMBER, json!({"name": "  Clients ", "color": "Blue"})).await;
    assert_eq!(l["name"], "Clients");
    assert_eq!(l["color"], "blue");
    assert!(l["syncError"].is_null());
    assert!(l["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let custom = create_label(&app, MEMBER, json!({"name": "Ärger", "color": "#A0B1C2"})).await;
    assert_eq!(custom["color"], "#a0b1c2");
    let plain = create_label(&app, MEMBER, json!({"name": "Later"})).await;
    assert!(plain["color"].is_null());
    // Another user may use the same name.
    create_label(&app, OTHER_MEMBER, json!({"name": "clients"})).await;

    let (status, body) = app
        .call(MEMBER, None, "mailMessageLabels:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|l| l["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["Clients", "Later", "Ärger"],
        "by name (any case), own only"
    );
    assert_eq!(body["meta"]["count"], 3);

    for (values, needle) in [
        (json!({"name": "CLIENTS"}), "exists already"),
        (json!({"name": "   "}), "must not be empty"),
        (json!({"name": "x".repeat(101)}), "longer than 100"),
        (json!({"name": "a\nb"}), "one line"),
        (json!({"name": "Pink", "color": "pink"}), "color must be"),
        (json!({"name": "Hex", "color": "#12345"}), "color must be"),
        (json!({"name": "N", "colour": "red"}), "unknown field"),
        (json!({"color": "red"}), "missing field"),
    ] {
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailMessageLabels:create",
                &[],
                Some(values.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{values}: {body}");
        assert_eq!(body["errors"][0]["code"], "INVALID_INPUT");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{values}: {message}");
    }

    let id = l["id"].as_i64().expect("id");
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:update",
            &[("filterByTk", &id.to_string())],
            Some(json!({"name": "Key clients", "color": null, "id": id, "createdAt": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["name"], "Key clients");
    assert!(body["data"]["color"].is_null());
    // Renaming to another label's name (any case) is refused; its own name in another case is not.
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:update",
            &[("filterByTk", &id.to_string())],
            Some(json!({"name": "later"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:update",
            &[("filterByTk", &id.to_string())],
            Some(json!({"name": "KEY clients"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get_label(&app, id).await["name"], "KEY clients");

    // Another user's label answers 404 to everything and stays as it was.
    for action in [
        "mailMessageLabels:get",
        "mailMessageLabels:update",
        "mailMessageLabels:destroy",
    ] {
        let (status, body) = app
            .call(
                OTHER_MEMBER,
                None,
                action,
                &[("filterByTk", &id.to_string())],
                Some(json!({"name": "stolen"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
        assert_eq!(body["errors"][0]["code"], "NOT_FOUND");
    }
    assert_eq!(get_label(&app, id).await["name"], "KEY clients");

    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:destroy",
            &[("filterByTk", &id.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["id"], id);
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:get",
            &[("filterByTk", &id.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

// ---- on messages, mirrored ----

#[actix_web::test]
async fn labels_on_messages_reach_gmail_and_outlook_and_filter_the_list() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let g1 = simple_message(&app, GMAIL, "gmail one").await;
    let g2 = simple_message(&app, GMAIL, "gmail two").await;
    let o1 = insert_at_sandbox(
        &app,
        OUTLOOK,
        json!({"from": "a@example.test", "to": [OUTLOOK], "subject": "outlook one", "text": "x", "labels": ["Blue category"]}),
    )
    .await;
    let o2 = simple_message(&app, OUTLOOK, "outlook two").await;
    link_and_sync(&app, GMAIL).await;
    link_and_sync(&app, OUTLOOK).await;
    let (lg1, lg2, lo1, lo2) = (
        local_id(&app, &g1).await,
        local_id(&app, &g2).await,
        local_id(&app, &o1).await,
        local_id(&app, &o2).await,
    );
    let clients = create_label(&app, MEMBER, json!({"name": "Clients", "color": "blue"})).await;
    let urgent = create_label(&app, MEMBER, json!({"name": "Urgent", "color": "#fa4b30"})).await;
    let (c, u) = (
        clients["id"].as_i64().expect("id"),
        urgent["id"].as_i64().expect("id"),
    );

    // One label on messages of both mailboxes at once.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:update",
            &[
                ("filterByTk[]", &lg1.to_string()),
                ("filterByTk[]", &lo1.to_string()),
            ],
            Some(json!({"addLabels": [c]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["pending"], json!([]));
    let data = body["data"].as_array().expect("list");
    assert_eq!(label_names(&data[0]), ["Clients"], "{body}");
    assert_eq!(data[0]["labels"][0]["color"], "blue");
    assert_eq!(
        label_names(&data[1]),
        ["Blue category", "Clients"],
        "the Outlook category synced before is a label too"
    );
    // Gmail: a user label named Clients in blue, on the message.
    let g = gmail_label(&app, "Clients").await.expect("the Gmail label");
    assert_eq!(g["color"]["backgroundColor"], "#4a86e8");
    assert_eq!(g["labelListVisibility"], "labelShow");
    assert_eq!(
        strings(&at_sandbox(&app, GMAIL, &g1).await["labelNames"]),
        ["Clients"]
    );
    // Outlook: a master category in preset7 (blue); the message keeps its other category.
    let o = outlook_category(&app, "Clients")
        .await
        .expect("the category");
    assert_eq!(o["color"], "preset7");
    assert_eq!(
        strings(&at_sandbox(&app, OUTLOOK, &o1).await["categories"]),
        ["Blue category", "Clients"]
    );
    // The sync that took "Blue category" in made a local label of it.
    let (_, all) = app
        .call(MEMBER, None, "mailMessageLabels:list", &[], None)
        .await;
    let blue = all["data"]
        .as_array()
        .expect("labels")
        .iter()
        .find(|l| l["name"] == "Blue category")
        .expect("provider category taken in as a label")
        .clone();
    assert_eq!(
        label_names(&local(&app, &o1).await),
        ["Blue category", "Clients"]
    );

    // The whole set: Urgent only (a custom colour reaches Gmail as the nearest palette colour).
    let (status, body) = update_message(&app, lg2, json!({"labels": [u, c]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(label_names(&body["data"]), ["Clients", "Urgent"]);
    let (status, body) = update_message(&app, lg2, json!({"labels": [u]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(label_names(&body["data"]), ["Urgent"]);
    assert_eq!(
        strings(&at_sandbox(&app, GMAIL, &g2).await["labelNames"]),
        ["Urgent"]
    );
    assert_eq!(
        gmail_label(&app, "Urgent").await.expect("label")["color"]["backgroundColor"],
        "#fb4c2f"
    );
    let (status, _) = update_message(&app, lo2, json!({"addLabels": [u]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        outlook_category(&app, "Urgent").await.expect("cat")["color"],
        "preset0"
    );

    // Filters: by label, not by label, the shorthand, and no label at all.
    let has = |ids: Vec<i64>| json!({"labels": {"$in": ids}}).to_string();
    let mut got = subjects(&app, &[("filter", &has(vec![c])), ("sort", "subject")]).await;
    got.sort();
    assert_eq!(got, ["gmail one", "outlook one"]);
    assert_eq!(
        subjects(&app, &[("filter", &has(vec![c, u])), ("sort", "subject")]).await,
        ["gmail one", "gmail two", "outlook one", "outlook two"]
    );
    assert_eq!(
        subjects(
            &app,
            &[
                ("filter", &json!({"labels": {"$notIn": [c]}}).to_string()),
                ("sort", "subject")
            ]
        )
        .await,
        ["gmail two", "outlook two"]
    );
    assert_eq!(
        subjects(
            &app,
            &[
                ("filter", &json!({"labelId": u}).to_string()),
                ("sort", "subject")
            ]
        )
        .await,
        ["gmail two", "outlook two"]
    );
    assert_eq!(
        subjects(
            &app,
            &[(
                "filter",
                &json!({"labels": {"$empty": true}, "accountId": {"$ne": 0}}).to_string()
            )]
        )
        .await,
        Vec::<String>::new()
    );
    let (_, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:list",
            &[
                ("filter", &has(vec![c])),
                ("fields", "id,subject"),
                ("appends", "labels"),
            ],
            None,
        )
        .await;
    for m in body["data"].as_array().expect("list") {
        let keys: Vec<&String> = m.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["id", "labels", "subject"], "fields plus the append");
        assert!(m["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .all(|l| l.as_object().is_some_and(|o| o.len() == 3)));
    }
    let (_, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:get",
            &[("filterByTk", &lo1.to_string()), ("appends", "labels")],
            None,
        )
        .await;
    assert_eq!(label_names(&body["data"]), ["Blue category", "Clients"]);

    // Removing takes it off at the provider; the other categories stay.
    let (status, body) = update_message(&app, lo1, json!({"removeLabels": [c]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(label_names(&body["data"]), ["Blue category"]);
    assert_eq!(
        strings(&at_sandbox(&app, OUTLOOK, &o1).await["categories"]),
        ["Blue category"]
    );
    let (status, _) = update_message(&app, lg1, json!({"removeLabels": [c]})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(strings(&at_sandbox(&app, GMAIL, &g1).await["labelNames"]).is_empty());
    assert_eq!(label_outbox(&app).await, 0);

    // The next sync agrees with all of it, and changes nothing here.
    for email in [GMAIL, OUTLOOK] {
        let account = app.account(MEMBER, email).await["id"].as_i64().expect("id");
        app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    }
    assert!(label_names(&local(&app, &g1).await).is_empty());
    assert_eq!(label_names(&local(&app, &g2).await), ["Urgent"]);
    assert_eq!(label_names(&local(&app, &o1).await), ["Blue category"]);
    assert_eq!(label_names(&local(&app, &o2).await), ["Urgent"]);
    let _ = blue;
    app.stop().await;
}

#[actix_web::test]
async fn bad_label_updates_and_other_users_ids_change_nothing() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let g = simple_message(&app, GMAIL, "mine").await;
    link_and_sync(&app, GMAIL).await;
    let mine = local_id(&app, &g).await;
    let label = create_label(&app, MEMBER, json!({"name": "Mine"})).await["id"]
        .as_i64()
        .expect("id");
    let theirs = create_label(&app, OTHER_MEMBER, json!({"name": "Theirs"})).await["id"]
        .as_i64()
        .expect("id");
    // Their message, in their mailbox.
    let b = simple_message(&app, "bob@gmail.test", "theirs").await;
    let bob = app.link(OTHER_MEMBER, "google", "bob@gmail.test").await["id"]
        .as_i64()
        .expect("id");
    app.sync_now(OTHER_MEMBER, bob, "mailAccounts:sync").await;
    let (_, their_list) = app
        .call(OTHER_MEMBER, None, "mailMessages:list", &[], None)
        .await;
    let their_message = their_list["data"][0]["id"].as_i64().expect("their message");
    let _ = b;

    for (values, status, needle) in [
        (
            json!({"addLabels": [theirs]}),
            StatusCode::NOT_FOUND,
            "label not found",
        ),
        (
            json!({"labels": [label, theirs]}),
            StatusCode::NOT_FOUND,
            "label not found",
        ),
        (
            json!({"addLabels": [987654]}),
            StatusCode::NOT_FOUND,
            "label not found",
        ),
        (
            json!({"labels": [label], "addLabels": [label]}),
            StatusCode::BAD_REQUEST,
            "not both",
        ),
        (
            json!({"addLabels": ["x"]}),
            StatusCode::BAD_REQUEST,
            "label ids",
        ),
        (
            json!({"addLabels": [label], "removeLabels": [label]}),
            StatusCode::BAD_REQUEST,
            "both",
        ),
        (
            json!({"addLabel": [label]}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            json!({"addLabels": label}),
            StatusCode::BAD_REQUEST,
            "Invalid values",
        ),
        (
            json!({"todoDueAt": "next week"}),
            StatusCode::BAD_REQUEST,
            "todoDueAt",
        ),
        (
            json!({"todo": false, "todoDueAt": "2030-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "open to-do",
        ),
    ] {
        let (got, body) = update_message(&app, mine, values.clone()).await;
        assert_eq!(got, status, "{values}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{values}: {message}");
    }
    // My label on their message: 404, like a message that does not exist.
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailMessages:update",
            &[("filterByTk", &their_message.to_string())],
            Some(json!({"addLabels": [label]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        label_names(&local(&app, &g).await).is_empty(),
        "nothing changed"
    );
    assert_eq!(app.count("mail_message_labels").await, 0);
    assert_eq!(label_outbox(&app).await, 0);
    assert!(app
        .sandbox_requests("/google/gmail/v1/users/me/labels")
        .await
        .iter()
        .all(|r| r["method"] == "GET"));
    app.stop().await;
}

// ---- from the provider ----

#[actix_web::test]
async fn labels_applied_at_the_provider_arrive_by_sync() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let g = simple_message(&app, GMAIL, "tag me at Gmail").await;
    let o = simple_message(&app, OUTLOOK, "tag me at Outlook").await;
    let gmail = link_and_sync(&app, GMAIL).await;
    let outlook = link_and_sync(&app, OUTLOOK).await;
    // A local label matches a provider label of the same name whatever its case.
    let partners = create_label(&app, MEMBER, json!({"name": "partners"})).await["id"]
        .as_i64()
        .expect("id");

    sandbox_patch(
        &app,
        GMAIL,
        &g,
        json!({"labels": ["Partners", "Suppliers"]}),
    )
    .await;
    sandbox_patch(&app, OUTLOOK, &o, json!({"categories": ["PARTNERS"]})).await;
    app.sync_now(MEMBER, gmail, "mailAccounts:sync").await;
    app.sync_now(MEMBER, outlook, "mailAccounts:sync").await;
    let lg = local(&app, &g).await;
    assert_eq!(label_names(&lg), ["partners", "Suppliers"], "{lg}");
    assert_eq!(lg["labels"][0]["id"], partners, "the existing label");
    let lo = local(&app, &o).await;
    assert_eq!(label_names(&lo), ["partners"]);
    let (_, all) = app
        .call(MEMBER, None, "mailMessageLabels:list", &[], None)
        .await;
    assert_eq!(all["meta"]["count"], 2, "one label per name: {all}");

    // Removed at the provider: detached here, the label itself stays.
    sandbox_patch(&app, GMAIL, &g, json!({"labels": ["Suppliers"]})).await;
    sandbox_patch(&app, OUTLOOK, &o, json!({"categories": []})).await;
    app.sync_now(MEMBER, gmail, "mailAccounts:sync").await;
    app.sync_now(MEMBER, outlook, "mailAccounts:sync").await;
    assert_eq!(label_names(&local(&app, &g).await), ["Suppliers"]);
    assert!(label_names(&local(&app, &o).await).is_empty());
    assert_eq!(get_label(&app, partners).await["name"], "partners");

    // A label attached here goes to the provider's label of the same name, not a new one.
    let (status, _) = update_message(
        &app,
        local_id(&app, &o).await,
        json!({"addLabels": [partners]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        strings(&at_sandbox(&app, OUTLOOK, &o).await["categories"]),
        ["partners"]
    );
    let (status, _) = update_message(
        &app,
        local_id(&app, &g).await,
        json!({"addLabels": [partners]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names = strings(&at_sandbox(&app, GMAIL, &g).await["labelNames"]);
    assert_eq!(
        names,
        ["Suppliers", "Partners"],
        "the Gmail label made by the other client"
    );
    let gmail_labels = mailbox_at_sandbox(&app, GMAIL).await["labels"].clone();
    assert_eq!(
        gmail_labels.as_array().map(Vec::len),
        Some(2),
        "no second Partners label: {gmail_labels}"
    );
    app.stop().await;
}

// ---- renames and deletions ----

#[actix_web::test]
async fn renames_and_deletions_follow_through_to_both_providers() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let g = simple_message(&app, GMAIL, "gmail").await;
    let o = insert_at_sandbox(
        &app,
        OUTLOOK,
        json!({"from": "a@example.test", "to": [OUTLOOK], "subject": "outlook", "text": "x", "labels": ["Keep me"]}),
    )
    .await;
    let gmail = link_and_sync(&app, GMAIL).await;
    let outlook = link_and_sync(&app, OUTLOOK).await;
    let label = create_label(&app, MEMBER, json!({"name": "Project X", "color": "green"})).await
        ["id"]
        .as_i64()
        .expect("id");
    for p in [&g, &o] {
        let (status, body) =
            update_message(&app, local_id(&app, p).await, json!({"addLabels": [label]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let gmail_id = gmail_label(&app, "Project X").await.expect("label")["id"].clone();
    let old_category = outlook_category(&app, "Project X").await.expect("category")["id"].clone();

    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:update",
            &[("filterByTk", &label.to_string())],
            Some(json!({"name": "Project Y", "color": "darkBlue"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for("the rename reaches both providers", 30, || async {
        label_outbox(&app).await == 0
            && gmail_label(&app, "Project Y").await.is_some()
            && outlook_category(&app, "Project Y").await.is_some()
    })
    .await;
    // Gmail renames the same label, in the new colour.
    let renamed = gmail_label(&app, "Project Y").await.expect("label");
    assert_eq!(renamed["id"], gmail_id);
    assert_eq!(renamed["color"]["backgroundColor"], "#1c4587");
    assert!(gmail_label(&app, "Project X").await.is_none());
    assert_eq!(
        strings(&at_sandbox(&app, GMAIL, &g).await["labelNames"]),
        ["Project Y"]
    );
    // Outlook: a new category, the message moved over, the old category gone.
    let new_category = outlook_category(&app, "Project Y").await.expect("category");
    assert_ne!(new_category["id"], old_category);
    assert_eq!(new_category["color"], "preset22");
    assert!(outlook_category(&app, "Project X").await.is_none());
    assert_eq!(
        strings(&at_sandbox(&app, OUTLOOK, &o).await["categories"]),
        ["Keep me", "Project Y"]
    );
    // Sync afterwards keeps the label where it was.
    app.sync_now(MEMBER, gmail, "mailAccounts:sync").await;
    app.sync_now(MEMBER, outlook, "mailAccounts:sync").await;
    assert_eq!(label_names(&local(&app, &g).await), ["Project Y"]);
    assert_eq!(
        label_names(&local(&app, &o).await),
        ["Keep me", "Project Y"]
    );

    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessageLabels:destroy",
            &[("filterByTk", &label.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        label_names(&local(&app, &g).await).is_empty(),
        "off the messages at once"
    );
    wait_for("the deletion reaches both providers", 30, || async {
        label_outbox(&app).await == 0
            && gmail_label(&app, "Project Y").await.is_none()
            && outlook_category(&app, "Project Y").await.is_none()
    })
    .await;
    assert!(strings(&at_sandbox(&app, GMAIL, &g).await["labelNames"]).is_empty());
    assert_eq!(
        strings(&at_sandbox(&app, OUTLOOK, &o).await["categories"]),
        ["Keep me"]
    );
    // And sync does not bring it back.
    app.sync_now(MEMBER, gmail, "mailAccounts:sync").await;
    app.sync_now(MEMBER, outlook, "mailAccounts:sync").await;
    let (_, all) = app
        .call(MEMBER, None, "mailMessageLabels:list", &[], None)
        .await;
    let names: Vec<&str> = all["data"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|l| l["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Keep me"]);
    app.stop().await;
}

// ---- failures ----

#[actix_web::test]
async fn a_provider_failing_for_a_while_keeps_the_label_and_the_outbox_delivers_it() {
    let app = TestApp::spawn_with(&[
        ("EMAIL_MANAGER__PROVIDERS__RETRIES", "1"),
        ("EMAIL_MANAGER__MAIL__OUTBOX_RETRY_SECS", "1"),
    ])
    .await;
    app.configure_providers().await;
    for (email, fault) in [
        (
            GMAIL,
            json!({"path_prefix": "/google/gmail/v1/users/me/labels", "method": "POST", "status": 503, "count": 1000}),
        ),
        (
            OUTLOOK,
            json!({"path_prefix": "/microsoft/graph/v1.0/me/outlook/masterCategories", "method": "POST", "status": 503, "count": 1000}),
        ),
    ] {
        let p = simple_message(&app, email, &format!("later {email}")).await;
        let account = link_and_sync(&app, email).await;
        let id = local_id(&app, &p).await;
        let name = format!("Later {}", provider_of(email));
        let label = create_label(&app, MEMBER, json!({"name": name})).await["id"]
            .as_i64()
            .expect("id");
        app.sandbox_post("/__sandbox/faults", fault).await;

        let (status, body) = update_message(&app, id, json!({"addLabels": [label]})).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        assert_eq!(label_names(&body["data"]), [name.as_str()], "kept here");
        assert_eq!(body["meta"]["pending"], json!([id]));
        assert!(strings(&at_sandbox(&app, email, &p).await["labelNames"]).is_empty());
        assert_eq!(label_outbox(&app).await, 1);
        assert!(
            get_label(&app, label).await["syncError"].is_null(),
            "not an error yet"
        );

        // A resync sees the provider without the label and must not take it off.
        app.sync_now(MEMBER, account, "mailAccounts:resync").await;
        assert_eq!(label_names(&local(&app, &p).await), [name.as_str()]);

        clear_faults(&app).await;
        wait_for(&format!("{email}: the outbox delivers"), 30, || async {
            strings(&at_sandbox(&app, email, &p).await["labelNames"]) == [name.clone()]
                && label_outbox(&app).await == 0
        })
        .await;
        app.sync_now(MEMBER, account, "mailAccounts:sync").await;
        assert_eq!(label_names(&local(&app, &p).await), [name.as_str()]);
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_provider_refusing_for_good_keeps_the_label_with_the_error_visible() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let denied = json!({"error": {"code": 403, "message": "Insufficient Permission", "errors": [{"message": "Insufficient Permission", "domain": "global", "reason": "insufficientPermissions"}], "status": "PERMISSION_DENIED"}});
    for (email, fault, provider_name) in [
        (
            GMAIL,
            json!({"path_prefix": "/google/gmail/v1/users/me/labels", "method": "POST", "status": 403, "count": 1, "body": denied}),
            "Google",
        ),
        (
            OUTLOOK,
            json!({"path_prefix": "/microsoft/graph/v1.0/me/outlook/masterCategories", "method": "POST", "status": 400, "count": 1}),
            "Microsoft",
        ),
    ] {
        let p = simple_message(&app, email, "refused").await;
        let q = simple_message(&app, email, "accepted").await;
        let account = link_and_sync(&app, email).await;
        let name = format!("Refused {}", provider_of(email));
        let label = create_label(&app, MEMBER, json!({"name": name})).await["id"]
            .as_i64()
            .expect("id");
        app.sandbox_post("/__sandbox/faults", fault).await;
        let (status, body) = update_message(
            &app,
            local_id(&app, &p).await,
            json!({"addLabels": [label]}),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{email}: a label is never undone: {body}"
        );
        assert_eq!(label_names(&body["data"]), [name.as_str()]);
        assert_eq!(label_outbox(&app).await, 0, "given up, not retried");
        let error = get_label(&app, label).await["syncError"].clone();
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(provider_name) && message.contains("refused"),
            "{email}: {error}"
        );
        assert!(error["at"].as_str().is_some());
        assert!(
            !message.contains("Insufficient") && !message.contains("HTTP"),
            "no provider text: {message}"
        );
        // Sync does not take it off: the provider never had it.
        app.sync_now(MEMBER, account, "mailAccounts:sync").await;
        assert_eq!(label_names(&local(&app, &p).await), [name.as_str()]);

        // The next use that goes through clears the error.
        let (status, _) = update_message(
            &app,
            local_id(&app, &q).await,
            json!({"addLabels": [label]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(get_label(&app, label).await["syncError"].is_null());
        assert_eq!(
            strings(&at_sandbox(&app, email, &q).await["labelNames"]),
            [name.as_str()]
        );
    }
    app.stop().await;
}

// ---- to-do ----

#[actix_web::test]
async fn todo_is_the_outlook_flag_with_its_due_date() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let p = simple_message(&app, OUTLOOK, "call the client").await;
    let q = simple_message(&app, OUTLOOK, "flagged elsewhere").await;
    let account = link_and_sync(&app, OUTLOOK).await;
    let id = local_id(&app, &p).await;

    let (status, body) = update_message(
        &app,
        id,
        json!({"todo": true, "todoDueAt": "2030-05-06T17:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["todo"], true);
    assert_eq!(body["data"]["starred"], true, "the flag is the star");
    assert_eq!(body["data"]["todoDueAt"], "2030-05-06T17:00:00.000Z");
    let flag = at_sandbox(&app, OUTLOOK, &p).await["flag"].clone();
    assert_eq!(flag["status"], "flagged", "{flag}");
    assert_eq!(flag["dueAt"], "2030-05-06T17:00:00.000Z");
    assert!(
        flag["startAt"].as_str().is_some(),
        "Graph wants a start with a due date"
    );

    // A new due date moves the flag's.
    let (status, _) = update_message(&app, id, json!({"todoDueAt": "2030-05-07T09:30:00Z"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        at_sandbox(&app, OUTLOOK, &p).await["flag"]["dueAt"],
        "2030-05-07T09:30:00.000Z"
    );
    // Done: the flag is completed.
    let (status, body) = update_message(&app, id, json!({"todo": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["starred"], false);
    let flag = at_sandbox(&app, OUTLOOK, &p).await["flag"].clone();
    assert_eq!(flag["status"], "complete", "{flag}");
    assert!(flag["completedAt"].as_str().is_some());
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    assert_eq!(local(&app, &p).await["todo"], false, "sync agrees");

    // Flagged at the provider, with a due date: a to-do here; completed there: closed here.
    sandbox_patch(
        &app,
        OUTLOOK,
        &q,
        json!({"flag": {"status": "flagged", "dueAt": "2030-01-02T08:00:00Z"}}),
    )
    .await;
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    let lq = local(&app, &q).await;
    assert_eq!(
        (lq["todo"].as_bool(), lq["starred"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(lq["todoDueAt"], "2030-01-02T08:00:00.000Z");
    sandbox_patch(&app, OUTLOOK, &q, json!({"flag": {"status": "complete"}})).await;
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    let lq = local(&app, &q).await;
    assert_eq!(
        (lq["todo"].as_bool(), lq["starred"].as_bool()),
        (Some(false), Some(false))
    );
    // Starring here flags there, and is a to-do.
    let (status, body) =
        update_message(&app, local_id(&app, &q).await, json!({"starred": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["todo"], true);
    assert_eq!(
        at_sandbox(&app, OUTLOOK, &q).await["flag"]["status"],
        "flagged"
    );
    let (status, body) = update_message(
        &app,
        local_id(&app, &q).await,
        json!({"starred": true, "todo": false}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}

#[actix_web::test]
async fn todo_as_the_outlook_flag_can_be_turned_off() {
    let app =
        TestApp::spawn_with(&[("EMAIL_MANAGER__PROVIDERS__MICROSOFT__TODO_AS_FLAG", "false")])
            .await;
    app.configure_providers().await;
    let p = simple_message(&app, OUTLOOK, "local to-do").await;
    let account = link_and_sync(&app, OUTLOOK).await;
    let id = local_id(&app, &p).await;
    let (status, body) =
        update_message(&app, id, json!({"todo": true, "todoDueAt": "2030-05-06"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["starred"], false);
    assert_eq!(body["data"]["todoDueAt"], "2030-05-06T00:00:00.000Z");
    assert_eq!(
        at_sandbox(&app, OUTLOOK, &p).await["flag"]["status"],
        "notFlagged"
    );
    assert!(app
        .sandbox_requests("/microsoft/graph/v1.0/me/messages/")
        .await
        .iter()
        .all(|r| r["method"] == "GET"));
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    assert_eq!(
        local(&app, &p).await["todo"],
        true,
        "local only, kept by sync"
    );
    app.stop().await;
}

#[actix_web::test]
async fn todo_as_the_gmail_star_only_when_asked() {
    // Off (the default): local only.
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let p = simple_message(&app, GMAIL, "gmail to-do").await;
    let account = link_and_sync(&app, GMAIL).await;
    let (status, body) =
        update_message(&app, local_id(&app, &p).await, json!({"todo": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["starred"], false);
    assert_eq!(at_sandbox(&app, GMAIL, &p).await["starred"], false);
    sandbox_patch(&app, GMAIL, &p, json!({"starred": true})).await;
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    let l = local(&app, &p).await;
    assert_eq!(
        (l["starred"].as_bool(), l["todo"].as_bool()),
        (Some(true), Some(true))
    );
    sandbox_patch(&app, GMAIL, &p, json!({"starred": false})).await;
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    assert_eq!(
        local(&app, &p).await["todo"],
        true,
        "the star is not the to-do"
    );
    app.stop().await;

    // On: the to-do is the star, both ways.
    let app =
        TestApp::spawn_with(&[("EMAIL_MANAGER__PROVIDERS__GOOGLE__TODO_AS_STAR", "true")]).await;
    app.configure_providers().await;
    let p = simple_message(&app, GMAIL, "gmail to-do").await;
    let q = simple_message(&app, GMAIL, "starred elsewhere").await;
    let account = link_and_sync(&app, GMAIL).await;
    let (status, body) =
        update_message(&app, local_id(&app, &p).await, json!({"todo": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["starred"], true);
    assert_eq!(at_sandbox(&app, GMAIL, &p).await["starred"], true);
    let (status, _) = update_message(&app, local_id(&app, &p).await, json!({"todo": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(at_sandbox(&app, GMAIL, &p).await["starred"], false);
    sandbox_patch(&app, GMAIL, &q, json!({"starred": true})).await;
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    assert_eq!(local(&app, &q).await["todo"], true);
    sandbox_patch(&app, GMAIL, &q, json!({"starred": false})).await;
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    assert_eq!(local(&app, &q).await["todo"], false);
    app.stop().await;
}

#[actix_web::test]
async fn open_todos_list_by_due_date_with_range_filters() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let mut ids = Vec::new();
    for s in ["no date", "late", "soon", "done", "middle"] {
        ids.push((s, simple_message(&app, GMAIL, s).await));
    }
    link_and_sync(&app, GMAIL).await;
    for (subject, due, todo) in [
        ("no date", None, true),
        ("late", Some("2030-03-01T00:00:00Z"), true),
        ("soon", Some("2030-01-01T00:00:00Z"), true),
        ("done", Some("2029-01-01T00:00:00Z"), false),
        ("middle", Some("2030-02-01T12:00:00+02:00"), true),
    ] {
        let p = &ids.iter().find(|(s, _)| *s == subject).expect("seeded").1;
        let mut values = json!({"todo": todo});
        if let Some(d) = due {
            values["todoDueAt"] = json!(d);
        }
        if !todo {
            let (status, body) = update_message(
                &app,
                local_id(&app, p).await,
                json!({"todo": true, "todoDueAt": due}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            values = json!({"todo": false});
        }
        let (status, body) = update_message(&app, local_id(&app, p).await, values).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let open = json!({"todo": true}).to_string();
    assert_eq!(
        subjects(&app, &[("filter", &open), ("sort", "todoDueAt")]).await,
        ["soon", "middle", "late", "no date"],
        "soonest first, undated last"
    );
    assert_eq!(
        subjects(&app, &[("filter", &open), ("sort", "-todoDueAt")]).await,
        ["late", "middle", "soon", "no date"],
        "undated last either way"
    );
    assert_eq!(
        subjects(
            &app,
            &[
                (
                    "filter",
                    &json!({"todo": true, "todoDueAt": {"$dateBefore": "2030-02-15"}}).to_string()
                ),
                ("sort", "todoDueAt")
            ]
        )
        .await,
        ["soon", "middle"]
    );
    assert_eq!(
        subjects(
            &app,
            &[
                (
                    "filter",
                    &json!({"todoDueAt": {"$dateBetween": ["2029-01-01", "2030-01-31"]}})
                        .to_string()
                ),
                ("sort", "todoDueAt")
            ]
        )
        .await,
        ["done", "soon"]
    );
    assert_eq!(
        subjects(
            &app,
            &[(
                "filter",
                &json!({"todo": true, "todoDueAt": {"$empty": true}}).to_string()
            )]
        )
        .await,
        ["no date"]
    );
    assert_eq!(
        subjects(
            &app,
            &[
                ("filter", &json!({"todoDueAt": null}).to_string()),
                ("sort", "subject")
            ]
        )
        .await,
        ["no date"],
        "done keeps its date"
    );
    // Clearing the date.
    let middle = &ids.iter().find(|(s, _)| *s == "middle").expect("seeded").1;
    let (status, body) = update_message(
        &app,
        local_id(&app, middle).await,
        json!({"todoDueAt": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["todoDueAt"].is_null());
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailMessages:list",
            &[("filter", &json!({"todoDueAt": {"$like": "x"}}).to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}

// ---- resync ----

#[actix_web::test]
async fn labels_notes_and_todo_survive_a_resync_and_an_expired_cursor() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let label = create_label(&app, MEMBER, json!({"name": "Keep"})).await["id"]
        .as_i64()
        .expect("id");
    for email in [GMAIL, OUTLOOK] {
        app.generate(email, 40, 3).await;
        let p = simple_message(&app, email, "keep my state").await;
        let account = link_and_sync(&app, email).await;
        let id = local_id(&app, &p).await;
        let (status, body) = update_message(
            &app,
            id,
            json!({"addLabels": [label], "todo": true, "todoDueAt": "2030-07-01T10:00:00Z"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        for text in ["first note", "second note"] {
            let (status, body) = app
                .call(
                    MEMBER,
                    None,
                    "mailMessageNotes:create",
                    &[],
                    Some(json!({"messageId": id, "content": text})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let before = local(&app, &p).await;

        let run = app.sync_now(MEMBER, account, "mailAccounts:resync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(run["kind"], "resync");
        app.sandbox_post(
            &format!("/__sandbox/mailboxes/{email}/expire-cursors"),
            json!({}),
        )
        .await;
        let run = app.sync_now(MEMBER, account, "mailAccounts:sync").await;
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(
            run["kind"], "resync",
            "{email}: the expired cursor started a resync"
        );
        assert_eq!(run["added"], 0, "{email}: nothing duplicated: {run}");

        let after = local(&app, &p).await;
        assert_eq!(after["id"], id, "{email}: the same row");
        for key in ["labels", "todo", "todoDueAt"] {
            assert_eq!(after[key], before[key], "{email}: {key}");
        }
        let notes: Vec<&str> = after["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .map(|n| n["content"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(notes, ["first note", "second note"], "{email}");
        assert_eq!(label_names(&after), ["Keep"]);
        assert_eq!(after["todo"], true);
        assert_eq!(after["todoDueAt"], "2030-07-01T10:00:00.000Z");
    }
    app.stop().await;
}

#[actix_web::test]
async fn with_mirroring_off_labels_stay_local_both_ways() {
    let app = TestApp::spawn_with(&[("EMAIL_MANAGER__MAIL__MIRROR_LABELS", "false")]).await;
    app.configure_providers().await;
    let g = simple_message(&app, GMAIL, "local labels only").await;
    let account = link_and_sync(&app, GMAIL).await;
    let label = create_label(&app, MEMBER, json!({"name": "Local"})).await["id"]
        .as_i64()
        .expect("id");
    let (status, body) = update_message(
        &app,
        local_id(&app, &g).await,
        json!({"addLabels": [label]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(label_names(&body["data"]), ["Local"]);
    assert!(gmail_label(&app, "Local").await.is_none());
    assert_eq!(label_outbox(&app).await, 0);
    sandbox_patch(&app, GMAIL, &g, json!({"labels": ["Remote"]})).await;
    app.sync_now(MEMBER, account, "mailAccounts:sync").await;
    assert_eq!(
        label_names(&local(&app, &g).await),
        ["Local"],
        "nothing taken in"
    );
    app.stop().await;
}
