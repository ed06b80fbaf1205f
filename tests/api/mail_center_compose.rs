//! The writing side of the mail center in a real headless Chromium, against the sidecar and the
//! provider sandbox: a reply with a dropped attachment arrives threaded with its bytes intact, a
//! forward carries the original's file; new mail with chips, cc, bold text, a template and the
//! signature; a draft survives a reload and is gone once sent; an oversize attachment shows the
//! limit and nothing is sent; a provider refusal shows the server's message; the mass-mailing
//! panel reads pasted lists and CSV files, runs small jobs to `completed` (pasted, and CSV with a
//! template), pauses, resumes and cancels; texts follow the zh-CN locale.

use std::time::{Duration, Instant};

use base64::Engine;
use email_manager::sync::parse;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::send::{add_fault, insert, linked, local, outbox, raw_of, spawn_app, sync};
use crate::sync::GMAIL;
use crate::webdriver::Browser;

/// Opens the mail center signed in as `user` and waits until the shell has its mailboxes.
async fn open_mail_center(browser: &Browser, app: &TestApp, user: i64) {
    // The session is stored from a page of the same origin that does not itself send a
    // visitor without one to the sign-in.
    browser
        .goto(&format!("{}/admin/mail/assets/mail.css", app.address))
        .await;
    browser
        .eval(
            "localStorage.setItem('NOCOBASE_TOKEN', arguments[0]); localStorage.setItem('NOCOBASE_ROLE', 'member'); return true;",
            json!([app.token(user)]),
        )
        .await;
    browser.goto(&format!("{}/admin/mail", app.address)).await;
    wait_ready(browser).await;
}

async fn wait_ready(browser: &Browser) {
    browser
        .wait_for(
            "the mail center with its mailboxes",
            "return !!(window.MailApp && window.MailCompose && MailApp.state.accounts && MailApp.state.accounts.length && !document.getElementById('mc-app').classList.contains('hidden'))",
            20,
        )
        .await;
}

/// Waits for the compose window to have loaded its aliases, signatures and templates.
async fn wait_compose(browser: &Browser) {
    browser
        .wait_for(
            "the compose window",
            "var d = document.getElementById('cp-dialog'); return !!(d && d.dataset.ready)",
            15,
        )
        .await;
}

async fn wait_closed(browser: &Browser, what: &str) {
    browser
        .wait_for(what, "return !document.getElementById('cp-dialog')", 30)
        .await;
}

/// Opens a message in the reading pane and waits until the pane shows it.
async fn open_in_reader(browser: &Browser, id: i64) {
    browser
        .eval(
            "MailApp.openMessage(arguments[0]); return true;",
            json!([id]),
        )
        .await;
    browser
        .wait_for(
            "the message in the reading pane",
            &format!("var m = MailApp.selectedMessage(); return !!(m && m.id === {id} && document.getElementById('mc-reply'))"),
            15,
        )
        .await;
}

/// Clicks a reading-pane button. The shell may render the pane again at any moment (a list
/// refresh after a send), so the button is looked up when clicked rather than held.
async fn click_reader_button(browser: &Browser, id: &str) {
    browser
        .wait_for(
            id,
            &format!("var b = document.getElementById('{id}'); if (!b) return false; b.click(); return true;"),
            10,
        )
        .await;
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn addresses(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["address"].as_str().map(str::to_ascii_lowercase))
        .collect()
}

fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).rotate_left(seed % 31) >> 5) as u8)
        .collect()
}

/// Drops a file on the compose window the way a browser does (a DataTransfer with a File).
const DROP_FILE: &str = r#"
const [name, type, b64] = arguments;
const bin = atob(b64);
const data = new Uint8Array(bin.length);
for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
const dt = new DataTransfer();
dt.items.add(new File([data], name, {type}));
const target = document.getElementById('cp-body');
for (const kind of ['dragenter', 'dragover', 'drop']) {
  target.dispatchEvent(new DragEvent(kind, {bubbles: true, cancelable: true, dataTransfer: dt}));
}
return true;
"#;

/// Polls `check` until it answers `Some`, failing with `what` after `secs`.
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn drafts(app: &TestApp, user: i64) -> Vec<Value> {
    let (status, body) = app.call(user, None, "mailDrafts:list", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn reply_with_a_dropped_attachment_and_new_mail_with_cc_bold_template_and_signature() {
    let (app, _uploads) = spawn_app(&[]).await;
    let account = linked(&app, MEMBER, GMAIL).await;
    let pdf = bytes(20_000, 5);
    let (pid, thread) = insert(
        &app,
        GMAIL,
        json!({
            "from": "Ann Lee <ann@example.test>",
            "to": [GMAIL, "Bob <bob@gmail.test>"],
            "cc": ["Dave <dave@contoso.test>"],
            "subject": "Quarterly numbers",
            "text": "Numbers attached.\nSee you.",
            "attachments": [{"filename": "q3.pdf", "contentType": "application/pdf",
                             "data": base64::engine::general_purpose::STANDARD.encode(&pdf)}],
        }),
    )
    .await;
    sync(&app, MEMBER, account).await;
    let source = local(&app, MEMBER, json!({"providerMessageId": pid}))
        .await
        .into_iter()
        .next()
        .expect("source synced");
    let source_id = source["id"].as_i64().expect("id");
    let source_mid = text(&source["messageId"]);
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailSignatures:create",
            &[],
            Some(json!({"name": "Work", "html": "<p>Best regards, Alice</p>", "isDefault": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:create",
            &[],
            Some(json!({"name": "Greeting", "subject": "Hello {{recipient.name}}", "html": "<p>Dear {{recipient.name}},</p>"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let template_id = body["data"]["id"].as_i64().expect("template id");

    let browser = Browser::start().await;
    open_mail_center(&browser, &app, MEMBER).await;

    // Reply from the reading pane: the recipient and subject are filled in, a file is dropped.
    open_in_reader(&browser, source_id).await;
    click_reader_button(&browser, "mc-reply").await;
    wait_compose(&browser).await;
    let to = browser
        .eval(
            "return [...document.querySelectorAll('#cp-to .cp-chip')].map(c => c.dataset.address)",
            json!([]),
        )
        .await;
    assert_eq!(to, json!(["ann@example.test"]), "reply goes to the sender");
    let subject = browser
        .eval(
            "return document.getElementById('cp-subject').value",
            json!([]),
        )
        .await;
    assert_eq!(subject, "Re: Quarterly numbers");
    browser.send_keys("#cp-body", "Here is the file.").await;
    let file = bytes(30_000, 11);
    browser
        .eval(
            DROP_FILE,
            json!([
                "figures.bin",
                "application/octet-stream",
                base64::engine::general_purpose::STANDARD.encode(&file)
            ]),
        )
        .await;
    browser
        .wait_for(
            "the dropped file to upload",
            "return !!document.querySelector('#cp-attachments .cp-att-done[data-name=\"figures.bin\"]')",
            15,
        )
        .await;
    browser.screenshot("mail-compose-reply").await;
    browser.click("#cp-send").await;
    wait_closed(&browser, "the reply to be sent").await;

    let sent = outbox(&app, Some(GMAIL)).await;
    assert_eq!(sent.len(), 1, "one message: {sent:?}");
    assert_eq!(sent[0]["threadId"], thread, "the reply stays in the thread");
    let raw = raw_of(&sent[0]);
    let p = parse::parse(&raw);
    assert_eq!(p.subject, "Re: Quarterly numbers");
    assert_eq!(addresses(&p.to), vec!["ann@example.test"]);
    assert_eq!(p.in_reply_to.as_deref(), Some(source_mid.as_str()));
    assert!(
        p.references
            .as_deref()
            .is_some_and(|r| r.contains(&source_mid)),
        "References: {:?}",
        p.references
    );
    let html = p.html_body.clone().unwrap_or_default();
    assert!(html.contains("Here is the file."), "{html}");
    assert!(
        html.contains("Numbers attached."),
        "the original is quoted: {html}"
    );
    assert!(
        html.contains("Best regards, Alice"),
        "the default signature: {html}"
    );
    let att = p
        .attachments
        .iter()
        .find(|a| a.filename == "figures.bin")
        .expect("the attachment arrived");
    assert_eq!(
        parse::attachment(&raw, att.index).expect("bytes"),
        file,
        "attachment bytes identical"
    );
    assert!(
        !p.attachments.iter().any(|a| a.filename == "q3.pdf"),
        "a reply does not carry the original's files"
    );
    assert!(
        drafts(&app, MEMBER).await.is_empty(),
        "the reply's draft is gone"
    );

    // Forward: nobody filled in, the original's file travels along, same thread.
    open_in_reader(&browser, source_id).await;
    click_reader_button(&browser, "mc-forward").await;
    wait_compose(&browser).await;
    let state = browser
        .eval(
            "return [document.querySelectorAll('#cp-to .cp-chip').length, document.getElementById('cp-subject').value, document.getElementById('cp-forwarded').textContent]",
            json!([]),
        )
        .await;
    assert_eq!(state[0], 0, "a forward starts without recipients");
    assert_eq!(state[1], "Fwd: Quarterly numbers");
    assert!(text(&state[2]).contains("q3.pdf"), "{state}");
    browser
        .send_keys("#cp-to-input", "x@example.test\u{E007}")
        .await;
    browser.send_keys("#cp-body", "FYI").await;
    browser.click("#cp-send").await;
    wait_closed(&browser, "the forward to be sent").await;
    let sent = outbox(&app, Some(GMAIL)).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1]["threadId"], thread, "a forward stays in the thread");
    let raw = raw_of(&sent[1]);
    let p = parse::parse(&raw);
    assert_eq!(p.subject, "Fwd: Quarterly numbers");
    assert_eq!(addresses(&p.to), vec!["x@example.test"]);
    let att = p
        .attachments
        .iter()
        .find(|a| a.filename == "q3.pdf")
        .expect("the original's file is forwarded");
    assert_eq!(parse::attachment(&raw, att.index).expect("bytes"), pdf);

    // New mail: several addresses typed at once, a bad one refused, cc pasted, bold text, a
    // template, the signature kept.
    browser.click("#mc-compose").await;
    wait_compose(&browser).await;
    browser
        .send_keys("#cp-to-input", "Zoë Ünal <zoe@example.com>, bob@\u{E007}")
        .await;
    browser.click("#cp-show-cc").await;
    browser
        .eval(
            "const dt = new DataTransfer(); dt.setData('text/plain', arguments[0]); document.getElementById('cp-cc-input').dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true})); return true;",
            json!(["carol@contoso.test; \"Lee, Ann\" <ann.lee@example.org>"]),
        )
        .await;
    let chips = browser
        .eval(
            "return [...document.querySelectorAll('#cp-dialog .cp-chip')].map(c => c.dataset.address + (c.classList.contains('cp-chip-invalid') ? '!' : ''))",
            json!([]),
        )
        .await;
    assert_eq!(
        chips,
        json!([
            "zoe@example.com",
            "bob@!",
            "carol@contoso.test",
            "ann.lee@example.org"
        ])
    );
    // The template fills subject and text for the first recipient; the signature stays.
    browser
        .eval(
            "const s = document.getElementById('cp-template'); s.value = String(arguments[0]); s.dispatchEvent(new Event('change')); return true;",
            json!([template_id]),
        )
        .await;
    browser
        .wait_for(
            "the template in the editor",
            "return document.getElementById('cp-body').textContent.includes('Dear Zoë Ünal,')",
            10,
        )
        .await;
    let subject = browser
        .eval(
            "return document.getElementById('cp-subject').value",
            json!([]),
        )
        .await;
    assert_eq!(subject, "Hello Zoë Ünal");
    // Bold: the typed word selected, then the toolbar button.
    browser
        .eval(
            r#"const b = document.getElementById('cp-body');
               const p = document.createElement('p'); p.textContent = 'Please read this carefully.'; b.appendChild(p);
               const r = document.createRange(); r.setStart(p.firstChild, 12); r.setEnd(p.firstChild, 16);
               const s = getSelection(); s.removeAllRanges(); s.addRange(r); b.focus(); return true;"#,
            json!([]),
        )
        .await;
    browser.click("#cp-fmt-bold").await;
    let preview = browser
        .eval(
            "return document.getElementById('cp-signature-preview').textContent",
            json!([]),
        )
        .await;
    assert_eq!(preview, "Best regards, Alice");
    // The bad address keeps the message from going.
    browser.click("#cp-send").await;
    let error = browser
        .wait_for(
            "the address error",
            "var e = document.getElementById('cp-error'); return !e.hidden && e.textContent",
            5,
        )
        .await;
    assert!(text(&error).contains("bob@"), "{error}");
    browser.screenshot("mail-compose-new").await;
    assert_eq!(
        outbox(&app, Some(GMAIL)).await.len(),
        2,
        "nothing more sent"
    );
    browser
        .click("#cp-to .cp-chip-invalid .cp-chip-remove")
        .await;
    browser.click("#cp-send").await;
    wait_closed(&browser, "the new mail to be sent").await;

    let sent = outbox(&app, Some(GMAIL)).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    let p = parse::parse(&raw_of(&sent[2]));
    assert_eq!(p.subject, "Hello Zoë Ünal");
    assert_eq!(addresses(&p.to), vec!["zoe@example.com"]);
    assert_eq!(
        addresses(&p.cc),
        vec!["carol@contoso.test", "ann.lee@example.org"]
    );
    assert_eq!(p.to[0]["name"], "Zoë Ünal");
    assert_eq!(p.cc[1]["name"], "Lee, Ann");
    let html = p.html_body.unwrap_or_default();
    assert!(html.contains("Dear Zoë Ünal,"), "{html}");
    assert!(html.contains("<b>this</b>"), "bold text: {html}");
    assert!(
        html.contains("Best regards, Alice"),
        "the template did not replace the signature: {html}"
    );
    assert!(p.in_reply_to.is_none(), "new mail starts a thread");

    browser.quit().await;
    app.stop().await;
}

#[actix_web::test]
async fn a_draft_survives_a_reload_and_is_gone_once_sent() {
    let (app, _uploads) = spawn_app(&[]).await;
    linked(&app, MEMBER, GMAIL).await;
    let browser = Browser::start().await;
    open_mail_center(&browser, &app, MEMBER).await;

    browser.click("#mc-compose").await;
    wait_compose(&browser).await;
    browser
        .send_keys("#cp-to-input", "bob@gmail.test\u{E007}")
        .await;
    browser.fill("#cp-subject", "Plans for Friday").await;
    browser
        .send_keys("#cp-body", "Draft text that must survive")
        .await;
    // Auto-saved within a few seconds, without closing the window.
    let saved = eventually("the auto-save", 15, || async {
        drafts(&app, MEMBER)
            .await
            .into_iter()
            .find(|d| text(&d["html"]).contains("must survive"))
    })
    .await;
    assert_eq!(saved["subject"], "Plans for Friday");
    browser
        .wait_for(
            "the saved status",
            "return document.getElementById('cp-status').textContent.length > 0",
            5,
        )
        .await;

    // A reload loses the page, not the draft: it is in the Drafts folder, and opens again.
    browser
        .eval("location.reload(); return true;", json!([]))
        .await;
    wait_ready(&browser).await;
    browser.click("#mc-folder-drafts a").await;
    let row = browser
        .wait_for(
            "the draft in the Drafts folder",
            "var r = document.querySelector('#mc-list .mc-draft-row'); return r && r.textContent",
            10,
        )
        .await;
    assert!(text(&row).contains("bob@gmail.test"), "{row}");
    assert!(text(&row).contains("Plans for Friday"), "{row}");
    browser.click("#mc-list .mc-draft-row").await;
    wait_compose(&browser).await;
    browser
        .wait_for(
            "the draft's text",
            "return document.getElementById('cp-body').textContent === 'Draft text that must survive'",
            10,
        )
        .await;
    let to = browser
        .eval(
            "return [...document.querySelectorAll('#cp-to .cp-chip')].map(c => c.dataset.address)",
            json!([]),
        )
        .await;
    assert_eq!(to, json!(["bob@gmail.test"]));
    browser.click("#cp-close").await;
    wait_closed(&browser, "the draft window to close").await;
    assert_eq!(
        drafts(&app, MEMBER).await.len(),
        1,
        "closing keeps one draft"
    );

    // Compose to the same recipient offers it too.
    browser.click("#mc-compose").await;
    wait_compose(&browser).await;
    browser
        .send_keys("#cp-to-input", "bob@gmail.test\u{E007}")
        .await;
    browser
        .wait_for(
            "the draft offer",
            "var o = document.getElementById('cp-draft-offer'); return o && !o.hidden",
            10,
        )
        .await;
    browser.click("#cp-restore").await;
    browser
        .wait_for(
            "the restored text",
            "return document.getElementById('cp-body').textContent.includes('Draft text that must survive')",
            10,
        )
        .await;
    let subject = browser
        .eval(
            "return document.getElementById('cp-subject').value",
            json!([]),
        )
        .await;
    assert_eq!(subject, "Plans for Friday");
    browser.screenshot("mail-compose-draft").await;
    // On a narrow window the compose window takes the whole screen.
    browser.set_window_size(420, 800).await;
    browser
        .wait_for(
            "compose over the whole narrow window",
            "var r = document.getElementById('cp-dialog').getBoundingClientRect(); return r.left === 0 && Math.abs(r.width - window.innerWidth) < 2",
            5,
        )
        .await;
    browser.screenshot("mail-compose-narrow").await;
    browser.set_window_size(1280, 800).await;
    browser.send_keys("#cp-body", " and more").await;
    // A double click sends once.
    browser
        .eval(
            "const b = document.getElementById('cp-send'); b.click(); b.click(); return true;",
            json!([]),
        )
        .await;
    wait_closed(&browser, "the draft to be sent").await;

    let sent = outbox(&app, Some(GMAIL)).await;
    assert_eq!(sent.len(), 1, "sent once: {sent:?}");
    let p = parse::parse(&raw_of(&sent[0]));
    assert_eq!(p.subject, "Plans for Friday");
    assert_eq!(addresses(&p.to), vec!["bob@gmail.test"]);
    let html = p.html_body.unwrap_or_default();
    assert!(
        html.contains("Draft text that must survive and more"),
        "{html}"
    );
    assert!(drafts(&app, MEMBER).await.is_empty(), "the draft is gone");
    assert_eq!(app.count("mail_outgoing").await, 1);

    browser.quit().await;
    app.stop().await;
}

#[actix_web::test]
async fn an_oversize_attachment_shows_the_limit_and_a_refusal_shows_the_reason() {
    let (app, uploads) = spawn_app(&[("EMAIL_MANAGER__MAIL__UPLOAD_MAX_BYTES", "40000")]).await;
    linked(&app, MEMBER, GMAIL).await;
    let big = uploads.path().join("big-report.pdf");
    std::fs::write(&big, bytes(60_000, 3)).expect("write the file");
    let browser = Browser::start().await;
    open_mail_center(&browser, &app, MEMBER).await;

    browser.click("#mc-compose").await;
    wait_compose(&browser).await;
    browser
        .send_keys("#cp-to-input", "bob@gmail.test\u{E007}")
        .await;
    browser.fill("#cp-subject", "The report").await;
    browser.send_keys("#cp-body", "See the report.").await;
    browser.send_keys("#cp-file", &big.to_string_lossy()).await;
    let error = browser
        .wait_for(
            "the size error",
            "var e = document.querySelector('#cp-attachments .cp-att-error span.cp-att-error'); return e && e.textContent",
            15,
        )
        .await;
    let error = text(&error);
    assert!(error.contains("big-report.pdf"), "{error}");
    assert!(error.contains("too large"), "{error}");
    assert!(error.contains("39 KB"), "the limit is shown: {error}");
    browser.screenshot("mail-compose-too-large").await;

    // Sending with the failed file still listed is refused in the page.
    browser.click("#cp-send").await;
    browser
        .wait_for(
            "the send refusal",
            "return document.getElementById('cp-error').textContent.includes('could not be added')",
            5,
        )
        .await;
    assert!(outbox(&app, None).await.is_empty(), "nothing sent");
    assert_eq!(app.count("mail_uploads").await, 0, "nothing stored");
    assert_eq!(app.count("mail_outgoing").await, 0);

    // The limit is known now: a second big file is refused without uploading.
    let uploads_before = app.count("mail_uploads").await;
    browser.send_keys("#cp-file", &big.to_string_lossy()).await;
    browser
        .wait_for(
            "the second size error",
            "return document.querySelectorAll('#cp-attachments li.cp-att-error').length === 2",
            5,
        )
        .await;
    assert_eq!(app.count("mail_uploads").await, uploads_before);

    // Without the files, a refusal by the provider shows the server's message.
    browser
        .eval(
            "let b; while ((b = document.querySelector('#cp-attachments .cp-att-remove'))) b.click(); return true;",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "the files removed",
            "return document.querySelectorAll('#cp-attachments li').length === 0",
            5,
        )
        .await;
    add_fault(
        &app,
        json!({"path_prefix": "/google/gmail/v1/users/me/messages/send", "method": "POST", "status": 400, "count": 1}),
    )
    .await;
    browser.click("#cp-send").await;
    let refused = browser
        .wait_for(
            "the provider's refusal",
            "var e = document.getElementById('cp-error'); return !e.hidden && e.textContent.startsWith('Not sent') && e.textContent",
            30,
        )
        .await;
    assert!(text(&refused).len() > "Not sent: ".len(), "{refused}");
    assert!(outbox(&app, None).await.is_empty(), "nothing sent");
    let still_open = browser
        .eval("return !!document.getElementById('cp-dialog')", json!([]))
        .await;
    assert_eq!(still_open, true, "the window stays open with the text");
    browser.screenshot("mail-compose-refused").await;

    browser.quit().await;
    app.stop().await;
}

/// Opens the mass-mailing panel from the left column.
async fn open_mass_panel(browser: &Browser) {
    browser.click("#mc-mass").await;
    browser
        .wait_for(
            "the mass-mailing form",
            "return !!document.getElementById('mm-start')",
            15,
        )
        .await;
}

#[actix_web::test]
async fn the_mass_panel_reads_a_pasted_list_and_a_csv_file() {
    let (app, dir) = spawn_app(&[]).await;
    linked(&app, MEMBER, GMAIL).await;
    let csv = dir.path().join("customers.csv");
    std::fs::write(
        &csv,
        "\u{feff}Name;E-mail;Company\r\n\"Lee; Ann\";ann@example.org;\"Smith \"\"&\"\" Sons\"\r\nBob;bob@example.org;\"Multi\nline\"\r\n",
    )
    .expect("write the csv");
    let browser = Browser::start().await;
    open_mail_center(&browser, &app, MEMBER).await;
    open_mass_panel(&browser).await;

    browser
        .fill(
            "#mm-paste",
            "Ann Lee <ann@example.org>\n\nbob@example.org\n",
        )
        .await;
    let count = browser
        .eval(
            "return document.getElementById('mm-paste-count').textContent",
            json!([]),
        )
        .await;
    assert_eq!(count, "2 lines");
    let parsed = browser
        .eval(
            "return MailMass._parsePasted(document.getElementById('mm-paste').value)",
            json!([]),
        )
        .await;
    assert_eq!(
        parsed,
        json!([{"email": "ann@example.org", "name": "Ann Lee"}, {"email": "bob@example.org"}])
    );

    browser.click("#mm-source-csv").await;
    browser.send_keys("#mm-csv", &csv.to_string_lossy()).await;
    let summary = browser
        .wait_for(
            "the CSV summary",
            "return document.getElementById('mm-csv-summary').textContent",
            10,
        )
        .await;
    assert_eq!(
        summary,
        "2 rows; variables: {{Name}} {{E-mail}} {{Company}}"
    );
    let picked = browser
        .eval(
            "return [document.getElementById('mm-email-column').value, document.getElementById('mm-name-column').value]",
            json!([]),
        )
        .await;
    assert_eq!(picked, json!(["E-mail", "Name"]));
    let records = browser
        .eval("return MailMass.current().csv.records", json!([]))
        .await;
    assert_eq!(
        records,
        json!([
            {"Name": "Lee; Ann", "E-mail": "ann@example.org", "Company": "Smith \"&\" Sons"},
            {"Name": "Bob", "E-mail": "bob@example.org", "Company": "Multi\nline"},
        ])
    );
    // Nothing to say yet: a subject and a message (or a template) are needed.
    browser.click("#mm-start").await;
    let error = browser
        .wait_for(
            "the missing-body error",
            "var e = document.getElementById('mm-error'); return !e.hidden && e.textContent",
            5,
        )
        .await;
    assert!(text(&error).contains("subject"), "{error}");
    browser.screenshot("mail-mass-form").await;

    // With NocoBase's locale set to Simplified Chinese the writing side follows it.
    browser
        .eval(
            "localStorage.setItem('NOCOBASE_LOCALE', 'zh-CN'); location.reload(); return true;",
            json!([]),
        )
        .await;
    wait_ready(&browser).await;
    browser.click("#mc-compose").await;
    wait_compose(&browser).await;
    let texts = browser
        .eval(
            "return ['cp-title', 'cp-send', 'cp-show-cc'].map(id => document.getElementById(id).textContent)",
            json!([]),
        )
        .await;
    assert_eq!(texts, json!(["新邮件", "发送", "抄送 / 密送"]));
    browser.screenshot("mail-compose-zh").await;
    browser.click("#cp-close").await;
    open_mass_panel(&browser).await;
    let start = browser
        .eval(
            "return document.getElementById('mm-start').textContent",
            json!([]),
        )
        .await;
    assert_eq!(start, "开始群发");

    browser.quit().await;
    app.stop().await;
}

#[actix_web::test]
async fn a_small_mass_mailing_started_from_the_panel_runs_to_completed() {
    let (app, uploads) = spawn_app(&[("EMAIL_MANAGER__MAIL__MASS_RATE_PER_MINUTE", "6000")]).await;
    linked(&app, MEMBER, GMAIL).await;
    let (status, body) = app
        .call(
            MEMBER,
            None,
            "mailTemplates:create",
            &[],
            Some(json!({"name": "Offer", "subject": "Offer for {{Company}}",
                        "html": "<p>Dear {{Name}}, an offer for {{Company}}.</p>"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let template_id = body["data"]["id"].as_i64().expect("template id");
    let csv = uploads.path().join("offer.csv");
    std::fs::write(
        &csv,
        "Name,Email,Company\nAnn Lee,ann.csv@example.org,Smith & Sons\nBob,bob.csv@example.org,Acme\n",
    )
    .expect("write the csv");
    let browser = Browser::start().await;
    open_mail_center(&browser, &app, MEMBER).await;
    open_mass_panel(&browser).await;

    let recipients = [
        "Ann Lee <ann@example.org>",
        "bob@example.org",
        "\"Chen, Wei\" <wei.chen@example.org>",
        "dora@example.org",
        "Émile <emile@example.org>",
    ];
    // A blank line in the list: the rejection still names the line the user sees.
    let mut pasted = recipients.join("\n");
    pasted.push_str("\n\nnot an address\n");
    browser.fill("#mm-paste", &pasted).await;
    browser.fill("#mm-subject", "Monthly news").await;
    browser
        .send_keys("#mm-body", "Hello everyone, here is the news.")
        .await;
    browser.click("#mm-start").await;
    browser
        .wait_for(
            "the job view",
            "return !!document.getElementById('mm-job')",
            10,
        )
        .await;
    let rejected = browser
        .eval(
            "return [...document.querySelectorAll('#mm-rejected .mm-rejected-row')].map(r => r.dataset.index)",
            json!([]),
        )
        .await;
    assert_eq!(rejected, json!(["5"]), "the bad line is reported");
    let line = browser
        .eval(
            "return document.querySelector('#mm-rejected .mm-rejected-row').textContent",
            json!([]),
        )
        .await;
    assert!(text(&line).starts_with("line 7: not an address"), "{line}");
    browser
        .wait_for(
            "the job to complete",
            "var s = document.getElementById('mm-status'); return s && s.dataset.status === 'completed'",
            40,
        )
        .await;
    let counts = browser
        .eval(
            "return ['mm-total', 'mm-sent', 'mm-failed'].map(id => document.getElementById(id).textContent)",
            json!([]),
        )
        .await;
    assert_eq!(counts, json!(["5", "5", "0"]));
    browser.screenshot("mail-mass-completed").await;

    let sent = outbox(&app, Some(GMAIL)).await;
    assert_eq!(sent.len(), 5, "one message per recipient: {sent:?}");
    let mut to: Vec<String> = sent
        .iter()
        .flat_map(|m| addresses(&parse::parse(&raw_of(m)).to))
        .collect();
    to.sort();
    assert_eq!(
        to,
        vec![
            "ann@example.org",
            "bob@example.org",
            "dora@example.org",
            "emile@example.org",
            "wei.chen@example.org"
        ]
    );
    for m in &sent {
        let p = parse::parse(&raw_of(m));
        assert_eq!(p.subject, "Monthly news");
        assert!(
            p.html_body
                .unwrap_or_default()
                .contains("Hello everyone, here is the news."),
            "the body"
        );
    }

    let status = |s: &'static str| {
        format!(
            "var e = document.getElementById('mm-status'); return e && e.dataset.status === '{s}'"
        )
    };
    // A CSV file with a template: every column is a variable.
    browser.click("#mm-tab-new").await;
    browser
        .wait_for(
            "the form again",
            "return !!document.getElementById('mm-start')",
            10,
        )
        .await;
    browser.click("#mm-source-csv").await;
    browser.send_keys("#mm-csv", &csv.to_string_lossy()).await;
    browser
        .wait_for(
            "the CSV read",
            "return document.getElementById('mm-csv-summary').textContent.startsWith('2 rows')",
            10,
        )
        .await;
    browser
        .eval(
            "const s = document.getElementById('mm-template'); s.value = String(arguments[0]); s.dispatchEvent(new Event('change')); return true;",
            json!([template_id]),
        )
        .await;
    browser.click("#mm-start").await;
    browser
        .wait_for("the CSV job to complete", &status("completed"), 40)
        .await;
    let sent = outbox(&app, Some(GMAIL)).await;
    let offers: Vec<(String, String, String)> = sent
        .iter()
        .map(|m| parse::parse(&raw_of(m)))
        .filter(|p| p.subject.starts_with("Offer for"))
        .map(|p| {
            (
                addresses(&p.to).join(","),
                p.subject.clone(),
                p.html_body.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(offers.len(), 2, "{offers:?}");
    let ann = offers
        .iter()
        .find(|o| o.0 == "ann.csv@example.org")
        .expect("ann's offer");
    assert_eq!(ann.1, "Offer for Smith & Sons");
    assert!(
        ann.2
            .contains("Dear Ann Lee, an offer for Smith &amp; Sons."),
        "{}",
        ann.2
    );
    let bob = offers
        .iter()
        .find(|o| o.0 == "bob.csv@example.org")
        .expect("bob's offer");
    assert_eq!(bob.1, "Offer for Acme");

    // A slow job: pause, resume and cancel from the panel.
    browser.click("#mm-tab-new").await;
    browser
        .wait_for(
            "the form again",
            "return !!document.getElementById('mm-start')",
            10,
        )
        .await;
    browser
        .fill(
            "#mm-paste",
            "p1@example.org\np2@example.org\np3@example.org",
        )
        .await;
    browser.fill("#mm-subject", "Slow").await;
    browser.send_keys("#mm-body", "One a minute.").await;
    browser.fill("#mm-rate", "1").await;
    browser.click("#mm-start").await;
    browser
        .wait_for("the slow job running", &status("running"), 10)
        .await;
    browser.click("#mm-pause").await;
    browser
        .wait_for("the job paused", &status("paused"), 10)
        .await;
    browser.click("#mm-resume").await;
    browser
        .wait_for("the job running again", &status("running"), 10)
        .await;
    browser.click("#mm-cancel").await;
    browser.accept_alert().await;
    browser
        .wait_for("the job cancelled", &status("cancelled"), 10)
        .await;
    let slow_sent = outbox(&app, Some(GMAIL)).await.len() - 7;
    assert!(slow_sent < 3, "cancelled before all went: {slow_sent}");

    // Every job is listed, newest first.
    browser.click("#mm-tab-jobs").await;
    let rows = browser
        .wait_for(
            "the job list",
            "var r = [...document.querySelectorAll('#mm-jobs .mm-job-row')]; return r.length === 3 && r.map(x => x.textContent)",
            10,
        )
        .await;
    let rows: Vec<String> = rows.as_array().expect("rows").iter().map(text).collect();
    assert!(rows[0].starts_with("SlowCancelled"), "{rows:?}");
    assert!(rows[1].contains("Completed2 / 2"), "{rows:?}");
    assert!(
        rows[2].starts_with("Monthly newsCompleted5 / 5"),
        "{rows:?}"
    );
    browser.screenshot("mail-mass-jobs").await;

    browser.quit().await;
    app.stop().await;
}
