//! Provider MIME to stored fields, with `mail-parser` (it decodes every charset and transfer
//! encoding real mail uses, RFC 2047 words and RFC 2231 parameters included).

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};
use serde_json::{json, Value};

/// The content part of a stored message, parsed once at sync time.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub from_address: String,
    pub from_name: String,
    pub to: Value,
    pub cc: Value,
    pub bcc: Value,
    pub reply_to: Value,
    pub subject: String,
    pub snippet: String,
    /// Unix ms from the Date header.
    pub date: Option<i64>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub attachments: Vec<ParsedAttachment>,
    pub size: i64,
}

#[derive(Debug, Clone)]
pub struct ParsedAttachment {
    /// Position among the message's attachments, as `mail-parser` counts them.
    pub index: usize,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub content_id: Option<String>,
    pub inline: bool,
}

const SNIPPET_CHARS: usize = 200;

/// Parses `raw`; a message mail-parser cannot read at all still gets a row (size only), so a
/// malformed message is visible rather than silently missing.
pub fn parse(raw: &[u8]) -> Parsed {
    let size = raw.len() as i64;
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Parsed {
            size,
            to: json!([]),
            cc: json!([]),
            bcc: json!([]),
            reply_to: json!([]),
            ..Parsed::default()
        };
    };
    let text_body = msg.body_text(0).map(|t| t.into_owned());
    let html_body = msg.body_html(0).map(|t| t.into_owned());
    let (from_address, from_name) = msg
        .from()
        .and_then(Address::first)
        .map(|a| {
            (
                a.address().unwrap_or_default().to_string(),
                a.name().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default();
    let snippet_source = text_body.clone().unwrap_or_else(|| {
        html_body
            .as_deref()
            .map(crate::sync::parse::html_to_text)
            .unwrap_or_default()
    });
    let attachments = msg
        .attachments()
        .enumerate()
        .map(|(index, part)| ParsedAttachment {
            index,
            filename: part
                .attachment_name()
                .map(str::to_string)
                .unwrap_or_else(|| format!("attachment-{}", index + 1)),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase(),
            size: part.contents().len() as i64,
            content_id: part
                .content_id()
                .map(|c| c.trim_matches(['<', '>']).to_string()),
            inline: part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"))
                || part.content_id().is_some(),
        })
        .collect();
    Parsed {
        message_id: msg.message_id().map(str::to_string),
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        from_address,
        from_name,
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        bcc: addresses(msg.bcc()),
        reply_to: addresses(msg.reply_to()),
        subject: msg.subject().unwrap_or_default().to_string(),
        snippet: snippet(&snippet_source),
        date: msg.date().map(|d| d.to_timestamp() * 1000),
        text_body,
        html_body,
        attachments,
        size,
    }
}

/// The bytes of attachment `index` of `raw`, with its type and name (for downloads).
pub fn attachment(raw: &[u8], index: usize) -> Option<Vec<u8>> {
    let msg = MessageParser::default().parse(raw)?;
    let part = msg.attachments().nth(index)?;
    Some(part.contents().to_vec())
}

fn ids(value: &HeaderValue) -> Option<String> {
    match value {
        HeaderValue::Text(t) => Some(format!("<{t}>")),
        HeaderValue::TextList(list) if !list.is_empty() => Some(
            list.iter()
                .map(|t| format!("<{t}>"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

fn addresses(address: Option<&Address>) -> Value {
    Value::Array(
        address
            .map(|a| {
                a.iter()
                    .map(|addr| {
                        json!({
                            "name": addr.name().unwrap_or_default(),
                            "address": addr.address().unwrap_or_default(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn snippet(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if out.chars().count() >= SNIPPET_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.chars().take(SNIPPET_CHARS).collect()
}

/// Plain text of an HTML body, for snippets and search: tags dropped, entities of the common
/// kind decoded, scripts and styles skipped.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let lower: String = rest
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            Some("</script")
        } else if lower.starts_with("<style") {
            Some("</style")
        } else {
            None
        };
        if let Some(end_tag) = skip_to {
            match rest.to_ascii_lowercase().find(end_tag) {
                Some(i) => rest = &rest[i + end_tag.len()..],
                None => rest = "",
            }
        }
        match rest.find('>') {
            Some(close) => {
                out.push(' ');
                rest = &rest[close + 1..];
            }
            None => rest = "",
        }
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_headers_bodies_and_attachments() {
        let raw = b"From: =?iso-8859-1?Q?Andr=E9?= <andre@example.test>\r\n\
To: Bob <bob@example.test>, carol@example.test\r\n\
Subject: =?utf-8?B?w6l0w6k=?=\r\n\
Message-ID: <m1@example.test>\r\n\
In-Reply-To: <m0@example.test>\r\n\
References: <a@example.test> <m0@example.test>\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=E9   au   lait\r\n\
--b\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERg==\r\n\
--b--\r\n";
        let p = parse(raw);
        assert_eq!(p.from_name, "André");
        assert_eq!(p.from_address, "andre@example.test");
        assert_eq!(p.subject, "été");
        assert_eq!(p.message_id.as_deref(), Some("m1@example.test"));
        assert_eq!(p.in_reply_to.as_deref(), Some("<m0@example.test>"));
        assert_eq!(
            p.references.as_deref(),
            Some("<a@example.test> <m0@example.test>")
        );
        assert_eq!(p.to.as_array().map(Vec::len), Some(2));
        assert_eq!(p.snippet, "Café au lait");
        assert_eq!(p.date, Some(1_795_514_400_000));
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(p.attachments[0].filename, "r.pdf");
        assert_eq!(p.attachments[0].content_type, "application/pdf");
        assert_eq!(attachment(raw, 0).as_deref(), Some(&b"%PDF"[..]));
    }

    #[test]
    fn html_text_skips_scripts() {
        assert_eq!(
            html_to_text("<p>Hi&nbsp;<b>there</b></p><script>alert(1)</script>!")
                .split_whitespace()
                .collect::<Vec<_>>(),
            vec!["Hi", "there", "!"]
        );
    }
}
