//! The Email settings page in a real headless Chromium: an admin saves the OAuth apps, a member
//! links a sandbox mailbox through the consent window and sees it listed, then removes it.

use serde_json::json;

use crate::helpers::*;
use crate::webdriver::Browser;

async fn sign_in(browser: &Browser, app: &TestApp, user: i64, role: &str) {
    browser
        .goto(&format!("{}/admin/settings/mail", app.address))
        .await;
    browser
        .eval(
            "localStorage.setItem('NOCOBASE_TOKEN', arguments[0]); localStorage.setItem('NOCOBASE_ROLE', arguments[1]); location.reload(); return true;",
            json!([app.token(user), role]),
        )
        .await;
}

const VISIBLE: &str = "return (function(id){var e=document.getElementById(id);return e && !e.classList.contains('hidden');})";

#[actix_web::test]
async fn admin_saves_settings_and_a_user_links_a_mailbox_in_the_browser() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;

    // Without a session the page asks for a sign-in.
    browser
        .goto(&format!("{}/admin/settings/mail", app.address))
        .await;
    browser
        .wait_for(
            "the sign-in notice",
            &format!("{VISIBLE}('signin-card')"),
            10,
        )
        .await;

    // The admin fills both providers and saves.
    sign_in(&browser, &app, ADMIN, "root").await;
    browser
        .wait_for("the admin form", &format!("{VISIBLE}('admin-section')"), 10)
        .await;
    let redirect = browser
        .wait_for(
            "the redirect URI",
            "return document.getElementById('redirect-uri').textContent",
            10,
        )
        .await;
    assert_eq!(
        redirect,
        format!("{}/admin/settings/mail/oauth2", app.address)
    );
    browser.fill("#google-client-id", GOOGLE_CLIENT_ID).await;
    browser
        .fill("#google-client-secret", GOOGLE_CLIENT_SECRET)
        .await;
    browser.click("#google-enabled").await;
    browser
        .fill("#microsoft-client-id", MICROSOFT_CLIENT_ID)
        .await;
    browser
        .fill("#microsoft-client-secret", MICROSOFT_CLIENT_SECRET)
        .await;
    browser.click("#microsoft-enabled").await;
    browser.click("#save-settings").await;
    browser
        .wait_for(
            "the saved message",
            "return document.getElementById('settings-status').textContent === 'Saved.'",
            10,
        )
        .await;
    let hint = browser
        .eval(
            "return document.getElementById('google-secret-hint').textContent",
            json!([]),
        )
        .await;
    assert_eq!(hint, "Stored secret: ••••cret");
    let secret_field = browser
        .eval(
            "return document.getElementById('google-client-secret').value",
            json!([]),
        )
        .await;
    assert_eq!(secret_field, "", "the secret is not shown back");
    browser.screenshot("settings-admin").await;
    let (_, body) = app.call(ADMIN, None, "mailSettings:get", &[], None).await;
    assert_eq!(body["data"]["google"]["enabled"], true);
    assert_eq!(body["data"]["microsoft"]["clientId"], MICROSOFT_CLIENT_ID);

    // A member sees no settings form, only their mailboxes.
    sign_in(&browser, &app, MEMBER, "member").await;
    browser
        .wait_for(
            "the mailbox list",
            &format!("{VISIBLE}('accounts-section')"),
            10,
        )
        .await;
    let admin_visible = browser
        .eval(&format!("{VISIBLE}('admin-section')"), json!([]))
        .await;
    assert_eq!(admin_visible, false);

    // Link Google: the consent window opens at the sandbox, the user picks alice, the callback
    // page reports back and the list refreshes.
    let main = browser.current_window().await;
    let known = browser.window_handles().await;
    browser.click("#link-google").await;
    let popup = browser.wait_for_new_window(&known).await;
    browser.switch_to(&popup).await;
    browser
        .wait_for("the consent page", "return document.querySelector('a.account[data-account=\"alice@gmail.test\"]') !== null", 15)
        .await;
    browser
        .click("a.account[data-account=\"alice@gmail.test\"]")
        .await;
    browser.wait_for("the linked page", "return document.getElementById('result') && document.getElementById('result').dataset.ok", 15).await;
    let message = browser
        .eval(
            "return document.getElementById('message').textContent",
            json!([]),
        )
        .await;
    assert!(
        message.as_str().unwrap_or("").contains("alice@gmail.test"),
        "{message}"
    );
    browser.switch_to(&main).await;
    browser
        .wait_for("alice in the list", "return document.querySelector('.account-row[data-email=\"alice@gmail.test\"]') !== null", 15)
        .await;
    browser.screenshot("settings-mailboxes").await;
    let accounts = app.accounts(MEMBER).await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["email"], "alice@gmail.test");

    // Remove it again.
    browser
        .click(".account-row[data-email=\"alice@gmail.test\"] .remove-account")
        .await;
    browser.accept_alert().await;
    browser
        .wait_for("the row to go", "return document.querySelector('.account-row[data-email=\"alice@gmail.test\"]') === null", 10)
        .await;
    assert!(app.accounts(MEMBER).await.is_empty());

    // An expired session sends the user to sign in again.
    browser.eval("localStorage.setItem('NOCOBASE_TOKEN', 'expired.token.value'); location.reload(); return true;", json!([])).await;
    browser
        .wait_for(
            "the sign-in notice",
            &format!("{VISIBLE}('signin-card')"),
            10,
        )
        .await;

    browser.quit().await;
    app.stop().await;
}
