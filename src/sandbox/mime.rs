//! MIME for the sandbox, both ways.
//!
//! Composing: the generator and the structured insert write messages in the charsets and
//! transfer encodings real mail uses (legacy charsets, RFC 2047 words, RFC 2231 parameters,
//! quoted-printable, base64). `mail-builder` only writes UTF-8, so this is a small writer of our
//! own; it is test tooling, not the product's send path.
//!
//! Reading: a stored message is parsed with `mail-parser` into what the providers serve (Gmail's
//! payload tree and attachment bodies, Graph's properties and attachments).

use base64::Engine as _;
use mail_parser::{Address, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Charsets and encodings

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charset {
    Utf8,
    Latin1,
    Windows1252,
    ShiftJis,
    Gb2312,
    Koi8R,
    EucKr,
    Iso2022Jp,
}

impl Charset {
    pub fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Latin1 => "iso-8859-1",
            Charset::Windows1252 => "windows-1252",
            Charset::ShiftJis => "shift_jis",
            Charset::Gb2312 => "gb2312",
            Charset::Koi8R => "koi8-r",
            Charset::EucKr => "euc-kr",
            Charset::Iso2022Jp => "iso-2022-jp",
        }
    }

    /// The text in this charset. Callers only pass text the charset can hold (ISO-8859-1 text
    /// is Latin-1, which windows-1252 encodes identically).
    pub fn encode(self, text: &str) -> Vec<u8> {
        let encoding = match self {
            Charset::Utf8 => return text.as_bytes().to_vec(),
            Charset::Latin1 | Charset::Windows1252 => encoding_rs::WINDOWS_1252,
            Charset::ShiftJis => encoding_rs::SHIFT_JIS,
            Charset::Gb2312 => encoding_rs::GBK,
            Charset::Koi8R => encoding_rs::KOI8_R,
            Charset::EucKr => encoding_rs::EUC_KR,
            Charset::Iso2022Jp => encoding_rs::ISO_2022_JP,
        };
        encoding.encode(text).0.into_owned()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cte {
    SevenBit,
    EightBit,
    QuotedPrintable,
    Base64,
}

impl Cte {
    fn label(self) -> &'static str {
        match self {
            Cte::SevenBit => "7bit",
            Cte::EightBit => "8bit",
            Cte::QuotedPrintable => "quoted-printable",
            Cte::Base64 => "base64",
        }
    }
}

/// RFC 2047 encoded words for `text` (B or Q), each short enough for a folded header line.
/// Plain ASCII without specials is returned as is.
pub(crate) fn encode_words(text: &str, charset: Charset, b: bool) -> String {
    if text.is_ascii() && !text.contains("=?") {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        chunk.push(c);
        // Encoded bytes per word: 45 bytes base64 to 60 characters; Q grows up to 3x.
        let limit = if b { 42 } else { 20 };
        if charset.encode(&chunk).len() >= limit {
            words.push(encoded_word(&chunk, charset, b));
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        words.push(encoded_word(&chunk, charset, b));
    }
    words.join("\r\n ")
}

fn encoded_word(text: &str, charset: Charset, b: bool) -> String {
    let bytes = charset.encode(text);
    if b {
        format!(
            "=?{}?B?{}?=",
            charset.label(),
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    } else {
        let mut q = String::new();
        for byte in bytes {
            match byte {
                b' ' => q.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'!' | b'*' | b'+' => {
                    q.push(byte as char)
                }
                _ => q.push_str(&format!("={byte:02X}")),
            }
        }
        format!("=?{}?Q?{q}?=", charset.label())
    }
}

/// `Name <address>`, the name quoted or encoded as it needs.
pub(crate) fn mailbox_header(name: &str, address: &str, charset: Charset, b: bool) -> String {
    if name.is_empty() {
        return address.to_string();
    }
    if name.is_ascii() {
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '\'');
        if plain {
            return format!("{name} <{address}>");
        }
        return format!(
            "\"{}\" <{address}>",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    format!("{} <{address}>", encode_words(name, charset, b))
}

/// RFC 2231 `name*=charset''percent-encoded` for a non-ASCII parameter, else `name="value"`.
pub(crate) fn parameter(name: &str, value: &str) -> String {
    if value.is_ascii() {
        return format!("{name}=\"{}\"", value.replace('"', "'"));
    }
    let mut out = format!("{name}*=UTF-8''");
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn quoted_printable(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 3 / 2);
    // Lines are ended by CRLF in the input (text was normalised before).
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (j, &byte) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let literal = (33..=126).contains(&byte) && byte != b'='
                || (byte == b' ' || byte == b'\t') && !last;
            let piece: Vec<u8> = if literal {
                vec![byte]
            } else {
                format!("={byte:02X}").into_bytes()
            };
            if width + piece.len() > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            width += piece.len();
            out.extend_from_slice(&piece);
        }
    }
    out
}

fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38);
    for (i, chunk) in text.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(chunk);
    }
    out
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

// ---------------------------------------------------------------------------------------------
// Composing

pub(crate) struct Part {
    headers: Vec<(String, String)>,
    body: Body,
}

enum Body {
    Leaf(Vec<u8>),
    Multi(String, Vec<Part>),
}

impl Part {
    /// A text part (`plain` or `html`) in `charset` with transfer encoding `cte`.
    pub fn text(subtype: &str, text: &str, charset: Charset, cte: Cte) -> Part {
        let bytes = charset.encode(&crlf(text));
        let body = match cte {
            Cte::SevenBit | Cte::EightBit => bytes,
            Cte::QuotedPrintable => quoted_printable(&bytes),
            Cte::Base64 => base64_lines(&bytes),
        };
        Part {
            headers: vec![
                (
                    "Content-Type".into(),
                    format!("text/{subtype}; charset=\"{}\"", charset.label()),
                ),
                ("Content-Transfer-Encoding".into(), cte.label().into()),
            ],
            body: Body::Leaf(body),
        }
    }

    /// A base64 part: an attachment (with a file name) or an inline part (with a Content-ID).
    pub fn binary(
        content_type: &str,
        data: &[u8],
        filename: Option<&str>,
        content_id: Option<&str>,
    ) -> Part {
        let mut ct = content_type.to_string();
        if let Some(name) = filename {
            ct.push_str("; ");
            ct.push_str(&parameter("name", name));
        }
        let mut headers = vec![
            ("Content-Type".into(), ct),
            ("Content-Transfer-Encoding".into(), "base64".into()),
        ];
        let disposition = if content_id.is_some() {
            "inline"
        } else {
            "attachment"
        };
        let mut cd = disposition.to_string();
        if let Some(name) = filename {
            cd.push_str("; ");
            cd.push_str(&parameter("filename", name));
        }
        headers.push(("Content-Disposition".into(), cd));
        if let Some(cid) = content_id {
            headers.push(("Content-ID".into(), format!("<{cid}>")));
        }
        Part {
            headers,
            body: Body::Leaf(base64_lines(data)),
        }
    }

    pub fn multipart(subtype: &str, boundary: String, parts: Vec<Part>) -> Part {
        let mut ct = format!("multipart/{subtype}; boundary=\"{boundary}\"");
        if subtype == "related" {
            ct.push_str("; type=\"text/html\"");
        }
        Part {
            headers: vec![("Content-Type".into(), ct)],
            body: Body::Multi(boundary, parts),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        match &self.body {
            Body::Leaf(bytes) => {
                out.extend_from_slice(bytes);
                if !bytes.ends_with(b"\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
            Body::Multi(boundary, parts) => {
                out.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
                for part in parts {
                    out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
                    part.write(out);
                }
                out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            }
        }
    }
}

/// A whole message: top-level headers (already encoded) and its root part.
pub(crate) fn message(headers: &[(&str, String)], root: &Part) -> Vec<u8> {
    let mut out = Vec::with_capacity(2048);
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    root.write(&mut out);
    out
}

pub(crate) fn rfc2822_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Person {
    pub name: String,
    pub address: String,
}

/// What the providers show of a message without reading the body again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Summary {
    pub subject: String,
    pub from: Option<Person>,
    pub sender: Option<Person>,
    pub to: Vec<Person>,
    pub cc: Vec<Person>,
    pub bcc: Vec<Person>,
    pub reply_to: Vec<Person>,
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Unix ms of the Date header.
    pub date: Option<i64>,
    /// Plain text of the body, cut short.
    pub preview: String,
    /// Attachments that are not inline parts.
    pub has_attachments: bool,
}

fn people(address: Option<&Address>) -> Vec<Person> {
    address
        .map(|a| {
            a.iter()
                .map(|p| Person {
                    name: p.name().unwrap_or_default().to_string(),
                    address: p.address().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn id_list(value: &mail_parser::HeaderValue) -> Vec<String> {
    match value {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

pub(crate) fn summary(raw: &[u8]) -> Summary {
    let Some(msg) = parse(raw) else {
        return Summary::default();
    };
    let text = msg
        .body_text(0)
        .map(|t| t.into_owned())
        .or_else(|| msg.body_html(0).map(|h| html_text(&h)))
        .unwrap_or_default();
    let preview: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect();
    let has_attachments = msg.attachments().any(|a| !is_inline(a));
    Summary {
        subject: msg.subject().unwrap_or_default().to_string(),
        from: people(msg.from()).into_iter().next(),
        sender: people(msg.sender()).into_iter().next(),
        to: people(msg.to()),
        cc: people(msg.cc()),
        bcc: people(msg.bcc()),
        reply_to: people(msg.reply_to()),
        message_id: msg.message_id().map(str::to_string),
        in_reply_to: id_list(msg.in_reply_to()),
        references: id_list(msg.references()),
        date: msg.date().map(|d| d.to_timestamp() * 1000),
        preview,
        has_attachments,
    }
}

/// Inline: a part with a Content-ID or an `inline` disposition (an image the HTML shows).
pub(crate) fn is_inline(part: &MessagePart) -> bool {
    part.content_id().is_some()
        || part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"))
}

/// Rough plain text of HTML for previews: tags dropped, scripts and styles skipped.
pub(crate) fn html_text(html: &str) -> String {
    let mut out = String::new();
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        if rest.starts_with("<script") || rest.starts_with("<style") {
            let end = if rest.starts_with("<script") {
                "</script>"
            } else {
                "</style>"
            };
            i += rest.find(end).map(|e| e + end.len()).unwrap_or(rest.len());
        } else if rest.starts_with('<') {
            i += rest.find('>').map(|e| e + 1).unwrap_or(rest.len());
            out.push(' ');
        } else {
            let next = rest.find('<').unwrap_or(rest.len());
            out.push_str(&html[i..i + next]);
            i += next;
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn content_type(part: &MessagePart) -> String {
    part.content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase()
}

/// The part's body with its transfer encoding undone and its charset left as sent: what Gmail
/// puts in `body.data`.
fn decoded_body(raw: &[u8], part: &MessagePart) -> Vec<u8> {
    let start = (part.offset_body as usize).min(raw.len());
    let end = (part.offset_end as usize).clamp(start, raw.len());
    let bytes = &raw[start..end];
    let decoded = match part.encoding {
        mail_parser::Encoding::Base64 => mail_parser::decoders::base64::base64_decode(bytes),
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(bytes)
        }
        mail_parser::Encoding::None => None,
    };
    decoded.unwrap_or_else(|| bytes.to_vec())
}

/// The raw (undecoded, unfolded) value of each header of a part, as Gmail lists them.
fn raw_headers(raw: &[u8], part: &MessagePart) -> Vec<(String, String)> {
    part.headers
        .iter()
        .map(|h| {
            let start = (h.offset_start as usize).min(raw.len());
            let end = (h.offset_end as usize).clamp(start, raw.len());
            let value = String::from_utf8_lossy(&raw[start..end])
                .replace("\r\n", "")
                .replace('\n', "")
                .trim()
                .to_string();
            (h.name.as_str().to_string(), value)
        })
        .collect()
}

/// An attachment part as both providers see it.
pub(crate) struct Attachment {
    /// Gmail's partId ("1", "1.2"); stable for a message, so it also keys the attachment ids.
    pub part_id: String,
    pub filename: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub inline: bool,
    pub data: Vec<u8>,
}

/// Walks the MIME tree depth first with Gmail's part numbering.
fn walk<'a>(
    msg: &'a Message<'a>,
    index: usize,
    part_id: String,
    visit: &mut dyn FnMut(&'a MessagePart<'a>, &str, &[u32]),
) {
    let Some(part) = msg.parts.get(index) else {
        return;
    };
    let children: &[u32] = match &part.body {
        PartType::Multipart(children) => children,
        _ => &[],
    };
    visit(part, &part_id, children);
    for (i, child) in children.iter().enumerate() {
        let id = if part_id.is_empty() {
            i.to_string()
        } else {
            format!("{part_id}.{i}")
        };
        walk(msg, *child as usize, id, visit);
    }
}

fn is_attachment(part: &MessagePart) -> bool {
    match &part.body {
        PartType::Multipart(_) => false,
        PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Message(_) => true,
        PartType::Text(_) | PartType::Html(_) => part.attachment_name().is_some(),
    }
}

pub(crate) fn attachments(raw: &[u8]) -> Vec<Attachment> {
    let Some(msg) = parse(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&msg, 0, String::new(), &mut |part, part_id, _| {
        if !is_attachment(part) {
            return;
        }
        out.push(Attachment {
            part_id: part_id.to_string(),
            filename: part.attachment_name().unwrap_or_default().to_string(),
            content_type: content_type(part),
            content_id: part
                .content_id()
                .map(|c| c.trim_matches(['<', '>']).to_string()),
            inline: is_inline(part),
            data: decoded_body(raw, part),
        });
    });
    out
}

/// Gmail's `payload` (format=full, or headers only for metadata). Attachment bodies carry an
/// `attachmentId` made by `attachment_id(part_id)`.
pub(crate) fn gmail_payload(
    raw: &[u8],
    headers_only: Option<&dyn Fn(&str) -> bool>,
    attachment_id: &dyn Fn(&str) -> String,
) -> Value {
    let Some(msg) = parse(raw) else {
        return json!({"partId": "", "mimeType": "text/plain", "filename": "", "headers": [], "body": {"size": 0}});
    };
    let mut nodes: Vec<(String, Value, Vec<u32>)> = Vec::new();
    walk(&msg, 0, String::new(), &mut |part, part_id, children| {
        let headers: Vec<Value> = raw_headers(raw, part)
            .into_iter()
            .filter(|(name, _)| headers_only.is_none_or(|keep| keep(name)))
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let filename = if is_attachment(part) {
            part.attachment_name().unwrap_or_default().to_string()
        } else {
            String::new()
        };
        let body = if headers_only.is_some() || !children.is_empty() {
            json!({"size": 0})
        } else {
            let data = decoded_body(raw, part);
            if is_attachment(part) {
                json!({"attachmentId": attachment_id(part_id), "size": data.len()})
            } else {
                json!({
                    "size": data.len(),
                    "data": base64::engine::general_purpose::URL_SAFE.encode(&data),
                })
            }
        };
        let node = json!({
            "partId": part_id,
            "mimeType": content_type(part),
            "filename": filename,
            "headers": headers,
            "body": body,
        });
        nodes.push((part_id.to_string(), node, children.to_vec()));
    });
    if headers_only.is_some() {
        return nodes.into_iter().next().map(|n| n.1).unwrap_or(Value::Null);
    }
    // Rebuild the tree from the depth-first list: a node's children follow it.
    fn build(nodes: &[(String, Value, Vec<u32>)], at: &mut usize) -> Value {
        let (_, node, children) = &nodes[*at];
        let mut node = node.clone();
        *at += 1;
        if !children.is_empty() {
            let mut parts = Vec::new();
            for _ in children {
                if *at < nodes.len() {
                    parts.push(build(nodes, at));
                }
            }
            node["parts"] = Value::Array(parts);
        }
        node
    }
    if nodes.is_empty() {
        return Value::Null;
    }
    build(&nodes, &mut 0)
}

/// The HTML body (else the text body) for Graph's `body`, and whether it is HTML.
pub(crate) fn body(raw: &[u8]) -> (bool, String) {
    let Some(msg) = parse(raw) else {
        return (false, String::new());
    };
    if msg.html_body_count() > 0 {
        if let Some(html) = msg.body_html(0) {
            return (true, html.into_owned());
        }
    }
    (
        false,
        msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
    )
}

/// The message's top-level headers, decoded as Graph's `internetMessageHeaders` lists them.
pub(crate) fn top_headers(raw: &[u8]) -> Vec<(String, String)> {
    match parse(raw) {
        Some(msg) => msg
            .parts
            .first()
            .map(|p| raw_headers(raw, p))
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_messages_read_back_in_every_charset() {
        let cases = [
            (
                Charset::Latin1,
                "Café crème à Noël",
                Cte::QuotedPrintable,
                false,
            ),
            (
                Charset::Windows1252,
                "Prix: 12 € – “offre”",
                Cte::QuotedPrintable,
                true,
            ),
            (Charset::ShiftJis, "日本語のテストメール", Cte::Base64, true),
            (Charset::Gb2312, "你好，世界：测试邮件", Cte::Base64, true),
            (Charset::Koi8R, "Привет, мир", Cte::EightBit, false),
            (Charset::Iso2022Jp, "こんにちは世界", Cte::SevenBit, true),
        ];
        for (charset, text, cte, b) in cases {
            let root = Part::text("plain", &format!("{text}\nline two"), charset, cte);
            let raw = message(
                &[
                    ("From", mailbox_header(text, "x@example.test", charset, b)),
                    ("Subject", encode_words(text, charset, b)),
                    ("Message-ID", "<m@example.test>".into()),
                ],
                &root,
            );
            let s = summary(&raw);
            assert_eq!(s.subject, text, "{charset:?}");
            assert_eq!(s.from.as_ref().map(|p| p.name.as_str()), Some(text));
            assert!(s.preview.starts_with(text), "{charset:?}: {}", s.preview);
            assert_eq!(s.message_id.as_deref(), Some("m@example.test"));
        }
    }

    #[test]
    fn rfc2231_filenames_and_gmail_part_ids() {
        let root = Part::multipart(
            "mixed",
            "b1".into(),
            vec![
                Part::multipart(
                    "alternative",
                    "b2".into(),
                    vec![
                        Part::text("plain", "hi", Charset::Utf8, Cte::SevenBit),
                        Part::text("html", "<p>hi</p>", Charset::Utf8, Cte::QuotedPrintable),
                    ],
                ),
                Part::binary(
                    "application/pdf",
                    b"%PDF-1.4 \x00\xff",
                    Some("Über €.pdf"),
                    None,
                ),
            ],
        );
        let raw = message(&[("Subject", "x".into())], &root);
        let list = attachments(&raw);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].filename, "Über €.pdf");
        assert_eq!(list[0].part_id, "1");
        assert_eq!(list[0].data, b"%PDF-1.4 \x00\xff");
        let payload = gmail_payload(&raw, None, &|p| format!("att-{p}"));
        assert_eq!(payload["mimeType"], "multipart/mixed");
        assert_eq!(payload["parts"][0]["parts"][1]["partId"], "0.1");
        assert_eq!(payload["parts"][0]["parts"][1]["mimeType"], "text/html");
        assert_eq!(payload["parts"][1]["body"]["attachmentId"], "att-1");
        assert_eq!(payload["parts"][1]["filename"], "Über €.pdf");
        let data = payload["parts"][0]["parts"][0]["body"]["data"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE.decode(data).ok(),
            Some(b"hi\r\n".to_vec())
        );
    }
}
