//! The page shown in the consent window after the provider sends the user back.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

/// Inline script and style only, from this page itself; no remote content at all.
pub const PAGE_CSP: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

#[derive(Debug)]
pub enum OAuthOutcome {
    Linked {
        provider: &'static str,
        email: String,
        account_id: i64,
    },
    /// Missing, unknown, reused or expired state.
    BadState,
    Denied {
        provider: &'static str,
    },
    ProviderFailed {
        provider: &'static str,
        detail: &'static str,
    },
    Internal,
}

pub fn escape_html(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

pub fn oauth_result_page(outcome: &OAuthOutcome) -> HttpResponse {
    let (status, title, message, payload) = match outcome {
        OAuthOutcome::Linked { provider, email, account_id } => (
            StatusCode::OK,
            "Mailbox linked".to_string(),
            format!("Your {provider} mailbox {email} is linked. You can close this window."),
            json!({"type": "email-manager:oauth", "ok": true, "provider": provider.to_lowercase(), "email": email, "accountId": account_id}),
        ),
        OAuthOutcome::BadState => (
            StatusCode::BAD_REQUEST,
            "Link expired".to_string(),
            "This sign-in link has expired or was already used. Nothing was saved. Start again from Email settings with “Link Google” or “Link Microsoft”.".to_string(),
            json!({"type": "email-manager:oauth", "ok": false, "reason": "invalid_state"}),
        ),
        OAuthOutcome::Denied { provider } => (
            StatusCode::BAD_REQUEST,
            "Access not granted".to_string(),
            format!("You did not grant access to your {provider} mailbox, so nothing was linked. You can try again from Email settings."),
            json!({"type": "email-manager:oauth", "ok": false, "reason": "access_denied"}),
        ),
        OAuthOutcome::ProviderFailed { provider, detail } => (
            StatusCode::BAD_GATEWAY,
            "Linking failed".to_string(),
            format!("{provider} did not complete the sign-in: {detail}. Nothing was saved. Try again, or ask an administrator to check Email settings."),
            json!({"type": "email-manager:oauth", "ok": false, "reason": "provider_error"}),
        ),
        OAuthOutcome::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Linking failed".to_string(),
            "Something went wrong on our side; nothing was saved. Try again shortly.".to_string(),
            json!({"type": "email-manager:oauth", "ok": false, "reason": "internal"}),
        ),
    };
    // JSON inside <script>: escape '<' so no value can close the script element.
    let payload = payload.to_string().replace('<', "\\u003c");
    let auto_close = matches!(outcome, OAuthOutcome::Linked { .. });
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;background:#f5f5f5;color:#1f1f1f;display:flex;min-height:100vh;align-items:center;justify-content:center;margin:0}}
main{{background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.1);padding:32px;max-width:460px}}h1{{font-size:20px;margin:0 0 12px}}p{{line-height:1.5;margin:0}}</style>
</head><body><main id="result" data-ok="{ok}"><h1>{title}</h1><p id="message">{message}</p></main>
<script>
(function () {{
  var result = {payload};
  try {{ if (window.opener) window.opener.postMessage(result, window.location.origin); }} catch (e) {{}}
  try {{ localStorage.setItem("email-manager:oauth", JSON.stringify(Object.assign({{at: Date.now()}}, result))); }} catch (e) {{}}
  if ({auto_close} && window.opener) setTimeout(function () {{ window.close(); }}, 1200);
}})();
</script></body></html>"#,
        title = escape_html(&title),
        message = escape_html(&message),
        ok = auto_close,
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", PAGE_CSP))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
