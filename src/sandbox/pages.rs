//! The HTML the browser sees at the providers' authorize endpoints: consent and error pages.
//! Kept small and stable so tests (and a person clicking through `make demo`) can follow them.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// Escapes text and double-quoted attribute values (single quotes stay readable: the pages
/// quote Microsoft's messages, e.g. `identifier '<id>'`).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}\n</body></html>\n",
        escape(title)
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// An error page as the providers show it instead of redirecting (bad client or redirect URI).
pub(crate) fn error_page(status: u16, title: &str, detail: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    html(
        status,
        title,
        &format!("<h1>{}</h1>\n<p>{}</p>", escape(title), escape(detail)),
    )
}

pub(crate) struct Account {
    pub email: String,
    pub name: String,
    pub approve_href: String,
}

/// "`app` wants to access your `brand` account" with one link per seeded mailbox and a Cancel
/// link. Links carry `class="account"` and `data-account` so tests can pick one.
pub(crate) fn consent_page(
    brand: &str,
    app: &str,
    scope: &str,
    accounts: &[Account],
    deny_href: &str,
) -> HttpResponse {
    let title = format!("{app} wants to access your {brand} Account");
    let scopes: String = scope
        .split_whitespace()
        .map(|s| format!("<li>{}</li>", escape(s)))
        .collect();
    let links: String = accounts
        .iter()
        .map(|a| {
            format!(
                "<li><a class=\"account\" data-account=\"{e}\" href=\"{h}\">Continue as {e}</a> ({n})</li>\n",
                e = escape(&a.email),
                n = escape(&a.name),
                h = escape(&a.approve_href)
            )
        })
        .collect();
    let body = format!(
        "<h1>{}</h1>\n<p>This will allow the app to:</p>\n<ul>{scopes}</ul>\n<ul>\n{links}</ul>\n<p><a id=\"deny\" href=\"{}\">Cancel</a></p>",
        escape(&title),
        escape(deny_href)
    );
    html(StatusCode::OK, &title, &body)
}

/// Microsoft's `response_mode=form_post`: the browser posts the result to the redirect URI.
pub(crate) fn form_post(action: &str, fields: &[(&str, &str)]) -> HttpResponse {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let body = format!(
        "<form method=\"POST\" name=\"hiddenform\" action=\"{}\">{inputs}<noscript><button>Continue</button></noscript></form>\n<script>document.forms[0].submit()</script>",
        escape(action)
    );
    html(StatusCode::OK, "Working...", &body)
}
