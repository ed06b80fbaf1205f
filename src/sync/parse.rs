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

/// Plain text of an HTML body: for snippets and search, and the text/plain part of outgoing
/// mail written in HTML. Block elements and `<br>` become line breaks, list items `- `, links
/// keep their target (`label <https://…>`), images their `alt`; scripts, styles and comments are
/// dropped; entities (named, decimal and hex) decoded; runs of spaces collapsed as a browser
/// would; at most one blank line in a row.
pub fn html_to_text(html: &str) -> String {
    let mut out = TextOut::default();
    let mut links: Vec<Option<String>> = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.text(&decode_entities(&rest[..open]));
        rest = &rest[open..];
        if let Some(body) = rest.strip_prefix("<!--") {
            rest = body.find("-->").map_or("", |i| &body[i + 3..]);
            continue;
        }
        let Some(close) = tag_end(rest) else {
            // A `<` that starts no tag is text.
            out.text("<");
            rest = &rest[1..];
            continue;
        };
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match name.as_str() {
            "script" | "style" | "head" | "title" | "template" if !closing => {
                let end = format!("</{name}");
                rest = match find_ascii_ci(rest, &end) {
                    Some(i) => rest[i..].find('>').map_or("", |j| &rest[i + j + 1..]),
                    None => "",
                };
            }
            "br" => out.newline(),
            "p" | "div" | "tr" | "table" | "ul" | "ol" | "h1" | "h2" | "h3" | "h4" | "h5"
            | "h6" | "blockquote" | "pre" | "section" | "article" | "header" | "footer" | "hr"
            | "dl" | "dt" | "dd" => out.block(),
            "li" if !closing => {
                out.block();
                out.raw("- ");
            }
            "td" | "th" if closing => out.text(" "),
            "a" if !closing => links.push(attribute(tag, "href")),
            "a" => {
                let label = out.since_link_start();
                if let Some(Some(href)) = links.pop() {
                    let shown = href.strip_prefix("mailto:").unwrap_or(&href);
                    if (href.starts_with("http://")
                        || href.starts_with("https://")
                        || href.starts_with("mailto:"))
                        && label.trim() != shown
                        && label.trim() != href
                    {
                        out.text(&format!(" <{shown}>"));
                    }
                }
            }
            "img" => {
                if let Some(alt) = attribute(tag, "alt").filter(|a| !a.trim().is_empty()) {
                    out.text(&alt);
                }
            }
            _ => {}
        }
        if name == "a" && !closing {
            out.mark_link_start();
        }
    }
    out.text(&decode_entities(rest));
    out.finish()
}

/// Builds the text: collapses spaces, tracks line starts, limits blank lines.
#[derive(Default)]
struct TextOut {
    s: String,
    link_start: Vec<usize>,
}

impl TextOut {
    fn at_line_start(&self) -> bool {
        self.s.is_empty() || self.s.ends_with('\n')
    }
    fn text(&mut self, t: &str) {
        for c in t.chars() {
            if c.is_whitespace() && c != '\u{a0}' {
                if !self.at_line_start() && !self.s.ends_with(' ') {
                    self.s.push(' ');
                }
            } else {
                self.s.push(if c == '\u{a0}' { ' ' } else { c });
            }
        }
    }
    fn raw(&mut self, t: &str) {
        self.s.push_str(t);
    }
    fn trim_line_end(&mut self) {
        while self.s.ends_with(' ') {
            self.s.pop();
        }
    }
    fn newline(&mut self) {
        self.trim_line_end();
        self.s.push('\n');
    }
    /// A block starts or ends: a line break unless at one already.
    fn block(&mut self) {
        self.trim_line_end();
        if !self.at_line_start() {
            self.s.push('\n');
        }
    }
    fn mark_link_start(&mut self) {
        self.link_start.push(self.s.len());
    }
    fn since_link_start(&mut self) -> String {
        let at = self.link_start.pop().unwrap_or(self.s.len());
        self.s.get(at..).unwrap_or_default().to_string()
    }
    fn finish(self) -> String {
        let mut out = String::with_capacity(self.s.len());
        let mut blank = 0;
        for line in self.s.lines() {
            let line = line.trim_end();
            if line.trim().is_empty() {
                blank += 1;
                continue;
            }
            if !out.is_empty() {
                out.push_str(if blank > 0 { "\n\n" } else { "\n" });
            }
            blank = 0;
            out.push_str(line.trim_start_matches(' '));
        }
        out
    }
}

/// Where the tag that starts `s` (at `<`) ends, quotes respected; `None` when `<` starts no tag.
fn tag_end(s: &str) -> Option<usize> {
    let first = s[1..].chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '/' || first == '!' || first == '?') {
        return None;
    }
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let n = needle.len();
    haystack
        .as_bytes()
        .windows(n)
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The decoded value of attribute `name` in a tag's inside text.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = lower[..at].ends_with(|c: char| c.is_whitespace());
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag[value_start..].trim_start();
        let raw = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default(),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or_default(),
        };
        return Some(decode_entities(raw));
    }
    None
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|i| i + 1);
        let (entity, consumed) = match end {
            Some(e) if rest[e..].starts_with(';') => (&rest[1..e], e + 1),
            _ => ("", 0),
        };
        let decoded = match entity {
            "" => None,
            "nbsp" => Some('\u{a0}'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "copy" => Some('©'),
            "reg" => Some('®'),
            "hellip" => Some('…'),
            "mdash" => Some('—'),
            "ndash" => Some('–'),
            "lsquo" => Some('‘'),
            "rsquo" => Some('’'),
            "ldquo" => Some('“'),
            "rdquo" => Some('”'),
            "euro" => Some('€'),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[consumed..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
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

    #[test]
    fn html_text_keeps_structure() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
            <p>Hello&nbsp;<b>Ann</b>,</p><p>line one<br>line   two</p>\
            <!-- a <p>comment</p> --><ul><li>first</li><li>second &amp; more</li></ul>\
            <div>See <a href=\"https://x.test/a?b=1&amp;c=2\">the page</a> or \
            <a href=\"https://x.test/\">https://x.test/</a>, mail <a href=\"mailto:a@x.test\">me</a></div>\
            <img src=\"cid:logo\" alt=\"Logo\"><p>&#233;t&#xE9; 1 &lt; 2 &bogus; a &amp b</p>\
            <SCRIPT>evil()</SCRIPT><p></p><p></p><p>end</p></body></html>";
        assert_eq!(
            html_to_text(html),
            "Hello Ann,\nline one\nline two\n- first\n- second & more\n\
             See the page <https://x.test/a?b=1&c=2> or https://x.test/, mail me <a@x.test>\n\
             Logo\nété 1 < 2 &bogus; a &amp b\nend"
        );
        assert_eq!(html_to_text("a < b and c>d"), "a < b and c>d");
        assert_eq!(html_to_text("<p>x</p>\n\n<p>y</p>"), "x\ny");
        assert_eq!(html_to_text("x<br><br><br><br>y"), "x\n\ny");
    }
}
