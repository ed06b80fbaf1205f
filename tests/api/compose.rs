//! Composing without a provider: signatures, templates (sharing, preview), uploads, and the
//! send/draft/alias bookkeeping tables the send task builds on.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

use email_manager::db::compose as store;
use email_manager::db::now_millis;

use crate::helpers::*;

fn error_code(body: &Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

async fn signatures(app: &TestApp, user: i64) -> Vec<Value> {
    let (status, body) = app.call(user, None, "mailSignatures:list", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().expect("list").clone()
}

async fn create_signature(app: &TestApp, user: i64, name: &str, default: bool) -> i64 {
    let (status, body) = app
        .call(
            user,
            None,
            "mailSignatures:create",
            &[],
            Some(json!({"name": name, "html": format!("<p>{name}</p>"), "isDefault": default})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["id"].as_i64().expect("id")
}

fn defaults(list: &[Value]) -> Vec<i64> {
    list.iter()
        .filter(|s| s["isDefault"] == true)
        .filter_map(|s| s["id"].as_i64())
        .collect()
}

#[actix_web::test]
async fn signatures_crud_with_one_default_per_user() {
    let app = TestApp::spawn().await;
    let a = create_signature(&app, MEMBER, "Work", true).await;
    let b = create_signature(&app, MEMBER, "Short", false).await;
    let other = create_signature(&app, OTHER_MEMBER, "Theirs", true).await;

    let list = signatures(&app, MEMBER).await;
    assert_eq!(list.len(), 2, "only the user's own: {list:?}");
    assert_eq!(defaults(&list), vec![a]);
    let item = list.iter().find(|s| s["id"] == a).expect("a");
    assert_eq!(item["name"], "Work");
    assert_eq!(item["html"], "<p>Work</p>");
    assert!(item["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    // A new default replaces the old one; the other user's default is untouched.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailSignatures:update",
            &[("filterByTk", &b.to_string())],
            Some(json!({"isDefault": true, "html": "<p onclick=\"x()\">Bye<script>evil()</script></p>"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["isDefault"], true);
    assert_eq!(body["data"]["html"], "<p>Bye</p>", "cleaned on save");
    assert_eq!(defaults(&signatures(&app, MEMBER).await), vec![b]);
    assert_eq!(defaults(&signatures(&app, OTHER_MEMBER).await), vec![other]);

    // Turning the default off leaves none; what a page read can be sent back as it is.
    let (status, got) = app
        .call(
            MEMBER,
            None,
            "mailSignatures:get",
            &[("filterByTk", &b.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let mut back = got["data"].clone();
    back["isDefault"] = json!(false);
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailSignatures:update",
            &[("filterByTk", &b.to_string())],
            Some(back),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(defaults(&signatures(&app, MEMBER).await).is_empty());

    // Another user's signature is not there for this user.
    let tk = other.to_string();
    for action in [
        "mailSignatures:get",
        "mailSignatures:update",
        "mailSignatures:destroy",
    ] {
        let (status, body) = app
            .call(
                MEMBER,
                None,
                action,
                &[("filterByTk", &tk)],
                Some(json!({"name": "mine now"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
        assert_eq!(error_code(&body), "NOT_FOUND");
    }
    assert_eq!(signatures(&app, OTHER_MEMBER).await[0]["name"], "Theirs");

    // Bad input changes nothing.
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Value);
    let bad: Vec<Case> = vec![
        (
            "mailSignatures:create",
            vec![],
            json!({"name": "x", "html": "y", "colour": "red"}),
        ),
        (
            "mailSignatures:create",
            vec![],
            json!({"name": "  ", "html": "y"}),
        ),
        (
            "mailSignatures:create",
            vec![],
            json!({"name": "a\nb", "html": "y"}),
        ),
        ("mailSignatures:create", vec![], json!({"html": "y"})),
        (
            "mailSignatures:create",
            vec![],
            json!({"name": "x", "html": "y".repeat(300 * 1024)}),
        ),
        (
            "mailSignatures:update",
            vec![("filterByTk", "abc".into())],
            json!({"name": "x"}),
        ),
        ("mailSignatures:update", vec![], json!({"name": "x"})),
        (
            "mailSignatures:update",
            vec![("filterByTk", a.to_string())],
            json!({"isDefault": "yes"}),
        ),
    ];
    for (action, query, values) in bad {
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = app
            .call(MEMBER, None, action, &q, Some(values.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action} {values}: {body}");
        assert_eq!(error_code(&body), "INVALID_INPUT", "{body}");
    }
    assert_eq!(signatures(&app, MEMBER).await.len(), 2);

    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailSignatures:destroy",
            &[("filterByTk", &a.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailSignatures:get",
            &[("filterByTk", &a.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(signatures(&app, MEMBER).await.len(), 1);
    app.stop().await;
}

#[actix_web::test]
async fn concurrent_default_switches_end_with_exactly_one_default() {
    let app = TestApp::spawn().await;
    let ids = [
        create_signature(&app, MEMBER, "s1", true).await,
        create_signature(&app, MEMBER, "s2", false).await,
        create_signature(&app, MEMBER, "s3", false).await,
        create_signature(&app, MEMBER, "s4", false).await,
    ];
    for round in 0..5 {
        let calls = ids.iter().map(|id| {
            let tk = id.to_string();
            let app = &app;
            async move {
                app.call(
                    MEMBER,
                    None,
                    "mailSignatures:update",
                    &[("filterByTk", &tk)],
                    Some(json!({"isDefault": true})),
                )
                .await
            }
        });
        for (status, body) in futures_util::future::join_all(calls).await {
            assert_eq!(status, StatusCode::OK, "round {round}: {body}");
        }
        let d = defaults(&signatures(&app, MEMBER).await);
        assert_eq!(d.len(), 1, "round {round}: {d:?}");
    }
    // Concurrent creates with isDefault for a user who has no signature yet.
    let creates = (0..4).map(|i| {
        let app = &app;
        async move {
            app.call(
                OTHER_MEMBER,
                None,
                "mailSignatures:create",
                &[],
                Some(json!({"name": format!("n{i}"), "html": "x", "isDefault": true})),
            )
            .await
        }
    });
    for (status, body) in futures_util::future::join_all(creates).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let list = signatures(&app, OTHER_MEMBER).await;
    assert_eq!(list.len(), 4);
    assert_eq!(defaults(&list).len(), 1, "{list:?}");
    app.stop().await;
}

async fn create_template(app: &TestApp, user: i64, values: Value) -> Value {
    let (status, body) = app
        .call(user, None, "mailTemplates:create", &[], Some(values))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

#[actix_web::test]
async fn templates_crud_sharing_and_preview() {
    let app = TestApp::spawn().await;
    let shared = create_template(
        &app,
        MEMBER,
        json!({
            "name": "Welcome",
            "subject": "Welcome {{recipient.name}} to {{company}}",
            "html": "<p>Hi {{ recipient.name }},</p><p>{{order.total}} from {{user.nickname}} {{unknown.thing}}</p><script>x()</script>",
            "shared": true,
        }),
    )
    .await;
    let private = create_template(
        &app,
        MEMBER,
        json!({"name": "Private", "subject": "S", "html": "<p>P</p>", "text": "P as text"}),
    )
    .await;
    assert_eq!(shared["readOnly"], false);
    assert_eq!(shared["text"], Value::Null);
    assert!(
        !shared["html"]
            .as_str()
            .unwrap_or_default()
            .contains("script"),
        "cleaned on save: {shared}"
    );
    assert_eq!(private["text"], "P as text");
    let shared_id = shared["id"].as_i64().expect("id").to_string();
    let private_id = private["id"].as_i64().expect("id").to_string();

    // The owner sees both; another user sees the shared one, read-only.
    let (_, mine) = app
        .call(MEMBER, None, "mailTemplates:list", &[], None)
        .await;
    assert_eq!(mine["meta"]["count"], 2, "{mine}");
    let (status, theirs) = app
        .call(OTHER_MEMBER, None, "mailTemplates:list", &[], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(theirs["meta"]["count"], 1, "{theirs}");
    assert_eq!(theirs["data"][0]["id"].to_string(), shared_id);
    assert_eq!(theirs["data"][0]["readOnly"], true);
    let (status, body) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailTemplates:get",
            &[("filterByTk", &shared_id)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (action, tk) in [
        ("mailTemplates:get", &private_id),
        ("mailTemplates:update", &shared_id),
        ("mailTemplates:destroy", &shared_id),
        ("mailTemplates:update", &private_id),
        ("mailTemplates:destroy", &private_id),
    ] {
        let (status, body) = app
            .call(
                OTHER_MEMBER,
                None,
                action,
                &[("filterByTk", tk)],
                Some(json!({"name": "taken over"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action} {tk}: {body}");
    }
    let (_, still) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:get",
            &[("filterByTk", &shared_id)],
            None,
        )
        .await;
    assert_eq!(still["data"]["name"], "Welcome");

    // Preview of a stored (shared) template, by the other user: values escaped in HTML only,
    // unknown variables left visible and listed.
    let (status, body) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailTemplates:preview",
            &[],
            Some(json!({
                "templateId": shared_id,
                "variables": {"company": "Smith & Sons", "order": {"total": "<b>42 €</b>"}},
                "recipient": {"name": "Ann", "email": "ann@x.test"},
                "user": {"nickname": "Zoë", "email": "zoe@x.test"},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = &body["data"];
    assert_eq!(p["subject"], "Welcome Ann to Smith & Sons");
    assert_eq!(
        p["html"],
        "<p>Hi Ann,</p><p>&lt;b&gt;42 €&lt;/b&gt; from Zoë {{unknown.thing}}</p>"
    );
    assert_eq!(p["text"], "Hi Ann,\n<b>42 €</b> from Zoë {{unknown.thing}}");
    assert_eq!(p["missingVariables"], json!(["unknown.thing"]));

    // Preview of given parts; nothing known.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:preview",
            &[],
            Some(json!({"subject": "{{a}} and {{ b }}", "html": "<p>{{a}}</p>", "text": "\\{{a}} {{c}}"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["missingVariables"], json!(["a", "b", "c"]));
    assert_eq!(body["data"]["text"], "{{a}} {{c}}");

    // Bad previews.
    let bad = [
        json!({"templateId": private_id, "html": "<p>x</p>"}),
        json!({}),
        json!({"templateId": "x1"}),
        json!({"html": "x", "recipient": {"email": "not-an-address"}}),
        json!({"html": "x", "variables": ["not", "an", "object"]}),
        json!({"html": "x", "colour": 1}),
        json!({"subject": "two\nlines"}),
    ];
    for values in bad {
        let (status, body) = app
            .call(
                MEMBER,
                None,
                "mailTemplates:preview",
                &[],
                Some(values.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{values}: {body}");
    }
    let (status, _) = app
        .call(
            OTHER_MEMBER,
            None,
            "mailTemplates:preview",
            &[],
            Some(json!({"templateId": private_id})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a private template of another user"
    );

    // Owner updates: unshare, clear the text; then the other user loses sight of it.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:update",
            &[("filterByTk", &private_id)],
            Some(json!({"text": null, "subject": "New {{x}}"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["text"], Value::Null);
    assert_eq!(body["data"]["subject"], "New {{x}}");
    assert_eq!(body["data"]["name"], "Private", "left out: unchanged");
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:update",
            &[("filterByTk", &shared_id)],
            Some(json!({"shared": false, "readOnly": false, "id": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, theirs) = app
        .call(OTHER_MEMBER, None, "mailTemplates:list", &[], None)
        .await;
    assert_eq!(theirs["meta"]["count"], 0, "{theirs}");
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:create",
            &[],
            Some(json!({"name": "x", "body": "unknown field"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("body"), "{body}");
    let (status, _) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:destroy",
            &[("filterByTk", &shared_id)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mine) = app
        .call(MEMBER, None, "mailTemplates:list", &[], None)
        .await;
    assert_eq!(mine["meta"]["count"], 1, "{mine}");
    app.stop().await;
}

const UPLOAD_LIMIT: usize = 100_000;

struct UploadApp {
    app: TestApp,
    dir: tempfile::TempDir,
}

async fn spawn_upload_app() -> UploadApp {
    let dir = tempfile::tempdir().expect("upload dir");
    let path = dir.path().join("uploads");
    let path = path.to_str().expect("utf-8 path").to_string();
    let limit = UPLOAD_LIMIT.to_string();
    let app = TestApp::spawn_with(&[
        ("EMAIL_MANAGER__MAIL__UPLOAD_DIR", path.as_str()),
        ("EMAIL_MANAGER__MAIL__UPLOAD_MAX_BYTES", limit.as_str()),
    ])
    .await;
    UploadApp { app, dir }
}

impl UploadApp {
    fn files(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.path().join("uploads")) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn send(
        &self,
        user: i64,
        query: &[(&str, &str)],
        content_type: Option<&str>,
        body: reqwest::Body,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .post(format!("{}/api/mailAttachments:upload", self.app.address))
            .query(query)
            .bearer_auth(self.app.token(user))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(e) => panic!("upload request failed: {e}"),
        }
    }
}

fn multipart(boundary: &str, filename: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[actix_web::test]
async fn uploads_raw_and_multipart_are_stored_and_owned() {
    let u = spawn_upload_app().await;
    let pdf: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();

    // Raw body, name and type in the query.
    let (status, body) = u
        .send(
            MEMBER,
            &[
                ("filename", "Quartalsbericht ü.pdf"),
                ("contentType", "application/pdf"),
            ],
            Some("application/octet-stream"),
            pdf.clone().into(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let raw = body["data"].clone();
    assert_eq!(raw["filename"], "Quartalsbericht ü.pdf");
    assert_eq!(raw["contentType"], "application/pdf");
    assert_eq!(raw["size"], 70_000);
    assert_eq!(raw["sha256"], sha256_hex(&pdf));
    let raw_id = raw["id"].as_i64().expect("id");

    // Multipart: the file part's name and type; a path in the name is dropped.
    let boundary = "----em-test-boundary-7d1";
    let png = b"\x89PNG\r\n\x1a\n\0\0binary\r\n--not-a-boundary\r\n".to_vec();
    let (status, body) = u
        .send(
            MEMBER,
            &[],
            Some(&format!("multipart/form-data; boundary={boundary}")),
            multipart(boundary, "../pics/logo.png", "image/png", &png).into(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mp = body["data"].clone();
    assert_eq!(mp["filename"], "logo.png");
    assert_eq!(mp["contentType"], "image/png");
    assert_eq!(mp["size"], png.len());
    assert_eq!(mp["sha256"], sha256_hex(&png));
    let mp_id = mp["id"].as_i64().expect("id");

    // An RFC 5987 `filename*` is read too.
    let body_bytes = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt\r\n\r\nhi\r\n--{boundary}--\r\n"
    );
    let (status, body) = u
        .send(
            MEMBER,
            &[],
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body_bytes.into(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["filename"], "报告.txt");
    assert_eq!(body["data"]["size"], 2);
    let (status, _) = u
        .app
        .call(
            MEMBER,
            None,
            "mailUploads:destroy",
            &[("filterByTk", &body["data"]["id"].to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Byte for byte on disk, under a random name.
    let rows = u
        .app
        .state
        .db
        .run(move |conn| {
            Ok((
                store::get_upload(conn, MEMBER, raw_id, now_millis())?,
                store::get_upload(conn, MEMBER, mp_id, now_millis())?,
            ))
        })
        .await
        .expect("rows");
    let on_disk =
        |name: &str| std::fs::read(u.dir.path().join("uploads").join(name)).expect("file");
    assert_eq!(on_disk(&rows.0.storage_name), pdf);
    assert_eq!(on_disk(&rows.1.storage_name), png);
    assert!(!rows.0.storage_name.contains("Quartal"));
    assert_eq!(u.files().len(), 2, "{:?}", u.files());

    // The uploader reads and removes it; anyone else gets 404 for the same id.
    let tk = raw_id.to_string();
    let (status, body) = u
        .app
        .call(
            MEMBER,
            None,
            "mailUploads:get",
            &[("filterByTk", &tk)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["size"], 70_000);
    for action in ["mailUploads:get", "mailUploads:destroy"] {
        let (status, body) = u
            .app
            .call(OTHER_MEMBER, None, action, &[("filterByTk", &tk)], None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
    }
    let (status, body) = u
        .app
        .call(
            MEMBER,
            None,
            "mailUploads:destroy",
            &[("filterByTk", &tk)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(u.files().len(), 1, "the file went with the row");
    let (status, _) = u
        .app
        .call(
            MEMBER,
            None,
            "mailUploads:get",
            &[("filterByTk", &tk)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Expired uploads are purged by the next upload: row and file.
    u.app
        .state
        .db
        .run(move |conn| {
            use diesel::prelude::*;
            use email_manager::db::schema::mail_uploads;
            diesel::update(mail_uploads::table.find(mp_id))
                .set(mail_uploads::expires_at.eq(1))
                .execute(conn)?;
            Ok(())
        })
        .await
        .expect("expire");
    let (status, _) = u
        .app
        .call(
            MEMBER,
            None,
            "mailUploads:get",
            &[("filterByTk", &mp_id.to_string())],
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an expired upload is gone for the user"
    );
    let (status, body) = u
        .send(
            MEMBER,
            &[("filename", "note.txt")],
            Some("text/plain"),
            "hello".into(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["contentType"], "application/octet-stream",
        "text/plain as the request type is not taken as the file's type"
    );
    assert_eq!(u.app.count("mail_uploads").await, 1);
    assert_eq!(u.files().len(), 1, "{:?}", u.files());
    u.app.stop().await;
}

#[actix_web::test]
async fn oversize_and_bad_uploads_store_nothing() {
    let u = spawn_upload_app().await;
    let big = vec![7u8; UPLOAD_LIMIT * 3];

    // Declared too large: refused before the body is read.
    let (status, body) = u
        .send(MEMBER, &[("filename", "big.bin")], None, big.clone().into())
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");

    // No length given (chunked): refused as soon as the count passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let stream = futures_util::stream::iter(chunks);
    let (status, body) = u
        .send(
            MEMBER,
            &[("filename", "big.bin")],
            None,
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // One byte over inside a multipart form whose declared length passes the first check.
    let boundary = "b0undary";
    let over = vec![1u8; UPLOAD_LIMIT + 1];
    let (status, body) = u
        .send(
            MEMBER,
            &[],
            Some(&format!("multipart/form-data; boundary={boundary}")),
            multipart(boundary, "over.bin", "application/octet-stream", &over).into(),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // Exactly the limit is fine (and is then removed again to keep the count below simple).
    let exact = vec![2u8; UPLOAD_LIMIT];
    let (status, body) = u
        .send(MEMBER, &[("filename", "exact.bin")], None, exact.into())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let exact_id = body["data"]["id"].as_i64().expect("id").to_string();
    let (status, _) = u
        .app
        .call(
            MEMBER,
            None,
            "mailUploads:destroy",
            &[("filterByTk", &exact_id)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    type Case<'a> = (Vec<(&'a str, &'a str)>, Option<String>, Vec<u8>);
    let bad: Vec<Case> = vec![
        (vec![], None, b"no name".to_vec()),
        (
            vec![("filename", "x"), ("folder", "y")],
            None,
            b"x".to_vec(),
        ),
        (
            vec![("filename", "x"), ("contentType", "not a type")],
            None,
            b"x".to_vec(),
        ),
        (
            vec![],
            Some(format!("multipart/form-data; boundary={boundary}")),
            b"this is not multipart".to_vec(),
        ),
        (
            vec![],
            Some(format!("multipart/form-data; boundary={boundary}")),
            [
                multipart(boundary, "a.txt", "text/plain", b"a"),
                multipart(boundary, "b.txt", "text/plain", b"b"),
            ]
            .concat()
            .replace_last_terminator(boundary),
        ),
    ];
    for (query, ct, body_bytes) in bad {
        let (status, body) = u
            .send(MEMBER, &query, ct.as_deref(), body_bytes.into())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?} {ct:?}: {body}");
    }
    assert_eq!(u.app.count("mail_uploads").await, 0);
    assert!(
        u.files().is_empty(),
        "nothing left on disk: {:?}",
        u.files()
    );

    // Not signed in: refused before anything is read or written.
    let resp = u
        .app
        .client
        .post(format!("{}/api/mailAttachments:upload", u.app.address))
        .query(&[("filename", "x")])
        .body("x")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(u.files().is_empty());
    u.app.stop().await;
}

/// Two multipart bodies glued together: the first one's closing `--b--` becomes a plain
/// delimiter so the form has two parts.
trait ReplaceLastTerminator {
    fn replace_last_terminator(self, boundary: &str) -> Vec<u8>;
}

impl ReplaceLastTerminator for Vec<u8> {
    fn replace_last_terminator(self, boundary: &str) -> Vec<u8> {
        let text = String::from_utf8(self).expect("ascii");
        let closing = format!("\r\n--{boundary}--\r\n");
        let first = text.find(&closing).expect("a closing delimiter");
        let mut out = text[..first].to_string();
        out.push_str("\r\n");
        out.push_str(&text[first + closing.len()..]);
        out.into_bytes()
    }
}

#[actix_web::test]
async fn send_draft_and_alias_bookkeeping() {
    let app = TestApp::spawn().await;
    app.configure_providers().await;
    let account = app.link(MEMBER, "google", "alice@gmail.test").await;
    let account_id = account["id"].as_i64().expect("account id");

    let (first, second, claims, third) = app
        .state
        .db
        .run(move |conn| {
            let now = now_millis();
            let new = store::NewOutgoing {
                user_id: MEMBER,
                account_id,
                idempotency_key: "key-1".into(),
                status: store::outgoing_status::QUEUED.into(),
                mode: "new".into(),
                request_json: r#"{"to":["a@x.test"]}"#.into(),
                message_id: Some("abc@gmail.test".into()),
                created_at: now,
                updated_at: now,
            };
            let first = store::create_or_get_outgoing(conn, &new)?;
            let mut again = new.clone();
            again.request_json = "{}".into();
            let second = store::create_or_get_outgoing(conn, &again)?;
            let claims = (
                store::claim_outgoing(conn, first.0.id, now)?,
                store::claim_outgoing(conn, first.0.id, now)?,
            );
            store::mark_outgoing_sent(conn, first.0.id, Some("pm1"), Some("th1"), now)?;
            let third = store::get_outgoing(conn, MEMBER, first.0.id)?;
            Ok((first, second, claims, third))
        })
        .await
        .expect("outgoing");
    assert!(first.1, "the first request is recorded");
    assert!(!second.1, "the same key returns the first request");
    assert_eq!(second.0.id, first.0.id);
    assert_eq!(second.0.request_json, r#"{"to":["a@x.test"]}"#);
    assert_eq!(claims, (true, false), "only one worker claims a send");
    assert_eq!(third.status, "sent");
    assert_eq!(third.attempts, 1);
    assert_eq!(third.provider_message_id.as_deref(), Some("pm1"));
    assert_eq!(third.provider_thread_id.as_deref(), Some("th1"));
    let other_user = app
        .state
        .db
        .run(move |conn| store::get_outgoing(conn, OTHER_MEMBER, first.0.id))
        .await;
    assert!(matches!(
        other_user,
        Err(email_manager::db::DbError::NotFound)
    ));

    // Drafts: last write wins by revision; a late or repeated save changes nothing.
    let (saved, stale, same, listed, mirror, after) = app
        .state
        .db
        .run(move |conn| {
            let now = now_millis();
            let d = store::create_draft(
                conn,
                &store::NewDraft {
                    user_id: MEMBER,
                    account_id,
                    revision: 1,
                    fields_json: r#"{"subject":"v1"}"#.into(),
                    created_at: now,
                    updated_at: now,
                },
            )?;
            let saved = store::save_draft(conn, MEMBER, d.id, 5, r#"{"subject":"v5"}"#, now)?;
            let stale = store::save_draft(conn, MEMBER, d.id, 3, r#"{"subject":"v3"}"#, now)?;
            let same = store::save_draft(conn, MEMBER, d.id, 5, r#"{"subject":"v5 again"}"#, now)?;
            let listed = store::list_drafts(conn, MEMBER, Some(account_id))?;
            let mirror = store::drafts_to_mirror(conn, now, 10)?;
            store::mark_draft_synced(conn, d.id, "r-1", 5)?;
            store::mark_draft_synced(conn, d.id, "r-1", 4)?;
            let after = store::get_draft(conn, MEMBER, d.id)?;
            Ok((saved, stale, same, listed, mirror, after))
        })
        .await
        .expect("drafts");
    assert!(matches!(saved, store::DraftSave::Saved(ref r) if r.revision == 5));
    assert!(
        matches!(stale, store::DraftSave::Stale(ref r) if r.fields_json == r#"{"subject":"v5"}"#)
    );
    assert!(matches!(same, store::DraftSave::Stale(_)));
    assert_eq!(listed.len(), 1);
    assert_eq!(mirror.len(), 1, "revision 5 is not at the provider yet");
    assert_eq!(after.provider_synced_revision, 5, "never moves backwards");
    assert_eq!(after.provider_draft_id.as_deref(), Some("r-1"));
    let draft_id = after.id;
    let others = app
        .state
        .db
        .run(move |conn| {
            Ok((
                store::save_draft(conn, OTHER_MEMBER, draft_id, 9, "{}", now_millis()).is_err(),
                store::list_drafts(conn, OTHER_MEMBER, None)?.len(),
                store::delete_draft(conn, OTHER_MEMBER, draft_id).is_err(),
            ))
        })
        .await
        .expect("other user");
    assert_eq!(others, (true, 0, true));

    // Aliases: replaced as the provider lists them, ids kept for known addresses.
    let (one, two, mine, theirs) = app
        .state
        .db
        .run(move |conn| {
            let now = now_millis();
            let alias = |a: &str, d: bool| store::AliasInput {
                address: a.into(),
                name: "Alice".into(),
                is_default: d,
                verified: true,
            };
            let one = store::replace_aliases(
                conn,
                account_id,
                &[
                    alias("alice@gmail.test", true),
                    alias("sales@corp.test", false),
                ],
                now,
            )?;
            let two = store::replace_aliases(
                conn,
                account_id,
                &[
                    alias("ALICE@gmail.test", true),
                    alias("support@corp.test", false),
                ],
                now,
            )?;
            Ok((
                one,
                two,
                store::list_aliases_for_user(conn, MEMBER)?,
                store::list_aliases_for_user(conn, OTHER_MEMBER)?,
            ))
        })
        .await
        .expect("aliases");
    assert_eq!(one.len(), 2);
    let addrs: Vec<&str> = two.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(addrs, vec!["ALICE@gmail.test", "support@corp.test"]);
    assert_eq!(two[0].id, one[0].id, "a known address keeps its id");
    assert!(two[0].is_default);
    assert_eq!(mine.len(), 2);
    assert!(theirs.is_empty());

    // Removing the account removes its bookkeeping.
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailAccounts:destroy",
            &[("filterByTk", &account_id.to_string())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for table in ["mail_outgoing", "mail_drafts", "mail_aliases"] {
        assert_eq!(app.count(table).await, 0, "{table}");
    }
    app.stop().await;
}
