//! Outgoing message → RFC 5322 bytes, with `mail-builder` (never by formatting strings).
//!
//! Structure, from the outside in: `multipart/mixed` when there are attachments, around
//! `multipart/related` when the HTML shows inline `cid:` images, around `multipart/alternative`
//! with a text part (derived from the HTML when none is given) and the HTML part. Headers with
//! non-ASCII text are RFC 2047-encoded by the builder, attachment filenames RFC 2231-encoded.
//!
//! Bcc: [`OutgoingMessage::build`] takes `include_bcc`. Recipients must never see the Bcc
//! header, but both providers read the delivery list of a raw MIME send from the message itself:
//! Gmail `messages.send` delivers to the Bcc header's addresses and strips the header before
//! delivery, and Graph's MIME `sendMail` does the same. So the bytes handed to the provider
//! are built with `include_bcc = true`; the copy kept for display or drafts shown to others, and
//! anything delivered by SMTP with a separate envelope ([`OutgoingMessage::envelope`]), is built
//! with `false`.

use std::borrow::Cow;
use std::fmt;

use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;

use super::address::{EmailAddress, Mailbox};

/// A file sent with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// An image the HTML shows with `<img src="cid:{content_id}">`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    /// Without the angle brackets.
    pub content_id: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub filename: Option<String>,
}

/// Everything one outgoing message is made of. `message_id` and `date` are fixed when the value
/// is made, so building twice (with and without Bcc) gives the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    pub inline_images: Vec<InlineImage>,
    /// Message ids without angle brackets.
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub message_id: String,
    /// Unix milliseconds.
    pub date: i64,
    /// More headers (`X-…`, `List-Unsubscribe`…); structural headers are refused.
    pub extra_headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MimeError {
    HeaderName(String),
    ReservedHeader(String),
    HeaderValue(String),
    ContentType(String),
    ContentId(String),
    MessageId(String),
}

impl fmt::Display for MimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MimeError::HeaderName(n) => write!(
                f,
                "header name {n:?} is not valid (letters, digits and -, starting with a letter)"
            ),
            MimeError::ReservedHeader(n) => {
                write!(f, "header {n:?} is set by the sidecar and cannot be given")
            }
            MimeError::HeaderValue(n) => write!(
                f,
                "header {n:?} has a line break or control character, or is longer than 998 characters"
            ),
            MimeError::ContentType(t) => {
                write!(f, "{t:?} is not a content type such as image/png")
            }
            MimeError::ContentId(c) => write!(f, "{c:?} is not a valid content id"),
            MimeError::MessageId(m) => write!(f, "{m:?} is not a valid message id"),
        }
    }
}

impl std::error::Error for MimeError {}

/// Headers the builder owns; an extra header of these names would contradict them.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
    "return-path",
    "received",
];

const MAX_HEADER_LINE: usize = 998;

impl OutgoingMessage {
    /// A message from `from`, with a fresh Message-ID and the current time.
    pub fn new(from: Mailbox) -> OutgoingMessage {
        OutgoingMessage {
            message_id: generate_message_id(&from.address),
            from,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: Vec::new(),
            subject: String::new(),
            html: None,
            text: None,
            attachments: Vec::new(),
            inline_images: Vec::new(),
            in_reply_to: None,
            references: Vec::new(),
            date: chrono::Utc::now().timestamp_millis(),
            extra_headers: Vec::new(),
        }
    }

    /// Everyone the provider delivers to: to, cc and bcc.
    pub fn envelope(&self) -> Vec<&EmailAddress> {
        self.to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .map(|m| &m.address)
            .collect()
    }

    /// The text part as sent: the given text, or the HTML's text.
    pub fn text_part(&self) -> String {
        match (&self.text, &self.html) {
            (Some(t), _) => t.clone(),
            (None, Some(h)) => crate::sync::parse::html_to_text(h),
            (None, None) => String::new(),
        }
    }

    /// Checks what the builder cannot: extra headers, content types and ids.
    pub fn validate(&self) -> Result<(), MimeError> {
        for (name, value) in &self.extra_headers {
            let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && name.len() <= 76;
            if !valid_name {
                return Err(MimeError::HeaderName(name.clone()));
            }
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(MimeError::ReservedHeader(name.clone()));
            }
            if value.chars().any(|c| c.is_control() && c != '\t')
                || name.len() + 2 + value.len() > MAX_HEADER_LINE
            {
                return Err(MimeError::HeaderValue(name.clone()));
            }
        }
        for a in &self.attachments {
            media_type(&a.content_type)?;
        }
        for i in &self.inline_images {
            media_type(&i.content_type)?;
            if !valid_id(&i.content_id) {
                return Err(MimeError::ContentId(i.content_id.clone()));
            }
        }
        for id in std::iter::once(&self.message_id)
            .chain(self.in_reply_to.iter())
            .chain(self.references.iter())
        {
            if !valid_id(id) || !id.contains('@') {
                return Err(MimeError::MessageId(id.clone()));
            }
        }
        Ok(())
    }

    /// The message as RFC 5322 bytes (CRLF line ends). See the module doc for `include_bcc`.
    pub fn build(&self, include_bcc: bool) -> Result<Vec<u8>, MimeError> {
        self.validate()?;
        let mut b = MessageBuilder::new()
            .message_id(self.message_id.as_str())
            .date(Date::new(self.date.div_euclid(1000)))
            .from(address(std::slice::from_ref(&self.from)));
        if !self.to.is_empty() {
            b = b.to(address(&self.to));
        }
        if !self.cc.is_empty() {
            b = b.cc(address(&self.cc));
        }
        if include_bcc && !self.bcc.is_empty() {
            b = b.bcc(address(&self.bcc));
        }
        if !self.reply_to.is_empty() {
            b = b.reply_to(address(&self.reply_to));
        }
        b = b.subject(Text::new(one_line(&self.subject)));
        if let Some(id) = &self.in_reply_to {
            b = b.in_reply_to(MessageId::new(id.as_str()));
        }
        if !self.references.is_empty() {
            b = b.references(MessageId::new_list(
                self.references.iter().map(|s| s.as_str()),
            ));
        }
        for (name, value) in &self.extra_headers {
            b = b.header(name.as_str(), Text::new(value.as_str()));
        }
        b = b.body(self.body()?);
        b.write_to_vec()
            .map_err(|e| MimeError::HeaderValue(format!("writing the message: {e}")))
    }

    fn body(&self) -> Result<MimePart<'_>, MimeError> {
        let text = MimePart::new("text/plain", BodyPart::Text(Cow::Owned(self.text_part())));
        let mut body = match &self.html {
            Some(html) => MimePart::new(
                "multipart/alternative",
                vec![text, MimePart::new("text/html", html.as_str())],
            ),
            None => text,
        };
        if !self.inline_images.is_empty() {
            let mut parts = vec![body];
            for img in &self.inline_images {
                let mut part = MimePart::new(
                    ContentType::new(media_type(&img.content_type)?),
                    BodyPart::Binary(Cow::Borrowed(&img.bytes)),
                );
                let mut disposition = ContentType::new("inline");
                if let Some(name) = &img.filename {
                    disposition = disposition.attribute("filename", clean_filename(name));
                }
                part = part
                    .header("Content-Disposition", disposition)
                    .cid(img.content_id.as_str());
                parts.push(part);
            }
            body = MimePart::new("multipart/related", parts);
        }
        if !self.attachments.is_empty() {
            let mut parts = vec![body];
            for a in &self.attachments {
                parts.push(attachment_part(a)?);
            }
            body = MimePart::new("multipart/mixed", parts);
        }
        Ok(body)
    }
}

/// Attachments always go base64: a text file's bytes (bare LF, trailing spaces, any charset)
/// then arrive exactly as they left.
fn attachment_part(a: &Attachment) -> Result<MimePart<'_>, MimeError> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&a.bytes);
    let mut wrapped = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        wrapped.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        wrapped.push_str("\r\n");
    }
    Ok(MimePart::new(
        ContentType::new(media_type(&a.content_type)?),
        BodyPart::Binary(Cow::Owned(wrapped.into_bytes())),
    )
    .attachment(clean_filename(&a.filename))
    .transfer_encoding("base64"))
}

/// mail-builder wants a list; groups are rebuilt from the mailboxes' `group` labels, in order.
fn address(list: &[Mailbox]) -> Address<'static> {
    let one = |m: &Mailbox| Address::new_address(m.name.clone(), m.address.as_str().to_string());
    let mut items: Vec<Address<'static>> = Vec::new();
    let mut i = 0;
    while i < list.len() {
        match &list[i].group {
            Some(g) => {
                let mut members = Vec::new();
                while i < list.len() && list[i].group.as_ref() == Some(g) {
                    members.push(one(&list[i]));
                    i += 1;
                }
                items.push(Address::new_group(Some(g.clone()), members));
            }
            None => {
                items.push(one(&list[i]));
                i += 1;
            }
        }
    }
    if items.len() == 1 {
        items.remove(0)
    } else {
        Address::new_list(items)
    }
}

/// `type/subtype`, lower-cased, parameters dropped.
pub fn media_type(ct: &str) -> Result<String, MimeError> {
    let base = ct.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    match base.split_once('/') {
        Some((t, s)) if token(t) && token(s) => Ok(base.to_ascii_lowercase()),
        _ => Err(MimeError::ContentType(ct.to_string())),
    }
}

/// A file name safe to put in a header and on a recipient's disk: no folders, no control
/// characters, not empty.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        "attachment".to_string()
    } else {
        cleaned.to_string()
    }
}

/// A subject is one line: line breaks and other control characters become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Message and content ids: printable ASCII without spaces, brackets or quotes.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>\"\\()[],;".contains(c))
}

/// `random@sender-domain`: the domain keeps it unique across senders, the random part across
/// messages (18 bytes, URL-safe base64).
pub fn generate_message_id(from: &EmailAddress) -> String {
    format!("{}@{}", crate::crypto::random_token(18), from.domain())
}

/// The ids of a `References`/`In-Reply-To` value (`<a@x> <b@y>`, or bare ids), without brackets.
pub fn message_ids(header: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close) => {
                let id = after[..close].trim();
                if !id.is_empty() {
                    out.push(id.to_string());
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    if out.is_empty() {
        out = header
            .split_whitespace()
            .map(|s| s.trim_matches(['<', '>']).to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::parse;
    use mail_parser::{MessageParser, MimeHeaders};

    fn mb(name: Option<&str>, addr: &str) -> Mailbox {
        Mailbox::new(name, EmailAddress::parse(addr).expect("address"))
    }

    fn header_block(raw: &[u8]) -> String {
        let text = String::from_utf8_lossy(raw);
        text.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Everything at once: UTF-8 names and subject, cc/bcc, reply-to, threading, two
    /// attachments (one text with bare LFs and a non-ASCII name), an inline image, a long line.
    fn full() -> OutgoingMessage {
        let mut m = OutgoingMessage::new(mb(Some("Zoë Ünal"), "zoe@sender.test"));
        m.to = vec![
            mb(Some("Ann Lee"), "ann@x.test"),
            mb(Some("Doe, John"), "john@münchen.de"),
        ];
        m.cc = vec![mb(Some("Пётр"), "petr@x.test")];
        m.bcc = vec![
            mb(None, "secret@x.test"),
            mb(Some("Hidden Bob"), "bob@x.test"),
        ];
        m.reply_to = vec![mb(Some("Replies"), "replies@sender.test")];
        m.subject =
            "Grüße — réunion 会议 ✓ with a subject long enough to need folding across lines".into();
        m.html = Some(format!(
            "<p>Hello <b>Ann</b> &amp; all,</p><p>{}</p><img src=\"cid:logo@sender.test\" alt=\"Logo\"><p>Ünïcode ✓</p>",
            "long-line ".repeat(60)
        ));
        m.attachments = vec![
            Attachment {
                filename: "Jahresabschluß 2026 — résumé.txt".into(),
                content_type: "text/plain; charset=utf-8".into(),
                bytes: "line one\nline two  \r\nno newline at end ✓"
                    .as_bytes()
                    .to_vec(),
            },
            Attachment {
                filename: "../../etc/report.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: (0..=255u8).cycle().take(5000).collect(),
            },
        ];
        m.inline_images = vec![InlineImage {
            content_id: "logo@sender.test".into(),
            content_type: "image/png".into(),
            bytes: vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3, 255],
            filename: Some("logo.png".into()),
        }];
        m.in_reply_to = Some("orig@x.test".into());
        m.references = vec!["root@x.test".into(), "orig@x.test".into()];
        m.date = 1_795_514_400_000;
        m.extra_headers = vec![("X-Mailer-Note".into(), "Grüße from the sidecar".into())];
        m
    }

    #[test]
    fn round_trips_through_mail_parser_and_sync_parse() {
        let m = full();
        let raw = m.build(true).expect("build");
        assert!(
            raw.is_ascii(),
            "the wire form is 7-bit: every header encoded"
        );
        for line in String::from_utf8_lossy(&raw).split("\r\n") {
            assert!(line.len() <= 998, "line too long: {}", line.len());
        }

        // The sync parser sees what a recipient's client would.
        let p = parse::parse(&raw);
        assert_eq!(p.from_address, "zoe@sender.test");
        assert_eq!(p.from_name, "Zoë Ünal");
        assert_eq!(
            p.to,
            serde_json::json!([
                {"name": "Ann Lee", "address": "ann@x.test"},
                {"name": "Doe, John", "address": "john@xn--mnchen-3ya.de"},
            ])
        );
        assert_eq!(
            p.cc,
            serde_json::json!([{"name": "Пётр", "address": "petr@x.test"}])
        );
        assert_eq!(
            p.bcc,
            serde_json::json!([
                {"name": "", "address": "secret@x.test"},
                {"name": "Hidden Bob", "address": "bob@x.test"},
            ])
        );
        assert_eq!(
            p.reply_to,
            serde_json::json!([{"name": "Replies", "address": "replies@sender.test"}])
        );
        assert_eq!(p.subject, m.subject);
        assert_eq!(p.message_id.as_deref(), Some(m.message_id.as_str()));
        assert!(m.message_id.ends_with("@sender.test"), "{}", m.message_id);
        assert_eq!(p.in_reply_to.as_deref(), Some("<orig@x.test>"));
        assert_eq!(p.references.as_deref(), Some("<root@x.test> <orig@x.test>"));
        assert_eq!(p.date, Some(1_795_514_400_000));
        assert_eq!(p.html_body.as_deref(), m.html.as_deref());
        // Text parts travel with CRLF line ends, as MIME wants.
        let text = p.text_body.expect("text part").replace("\r\n", "\n");
        assert!(text.starts_with("Hello Ann & all,\n"), "{text}");
        assert!(text.contains("Logo\nÜnïcode ✓"), "{text}");
        assert_eq!(p.attachments.len(), 3, "{:?}", p.attachments);
        let by_name = |n: &str| {
            p.attachments
                .iter()
                .find(|a| a.filename == n)
                .unwrap_or_else(|| panic!("{n} in {:?}", p.attachments))
        };
        let logo = by_name("logo.png");
        assert!(logo.inline);
        assert_eq!(logo.content_id.as_deref(), Some("logo@sender.test"));
        assert_eq!(logo.content_type, "image/png");
        let txt = by_name("Jahresabschluß 2026 — résumé.txt");
        assert!(!txt.inline);
        assert_eq!(txt.content_type, "text/plain");
        let pdf = by_name("report.pdf");
        assert_eq!(pdf.content_type, "application/pdf");
        assert_eq!(pdf.size, 5000);
        // Byte for byte, through the same code the attachment download uses.
        for a in &p.attachments {
            let bytes = parse::attachment(&raw, a.index).expect("bytes");
            let want = if a.filename == "logo.png" {
                &m.inline_images[0].bytes
            } else if a.filename == "report.pdf" {
                &m.attachments[1].bytes
            } else {
                &m.attachments[0].bytes
            };
            assert_eq!(&bytes, want, "{}", a.filename);
        }

        // mail-parser directly: structure and the extra header.
        let msg = MessageParser::default().parse(&raw).expect("parses");
        // mail-parser leaves unknown headers undecoded: check the RFC 2047 word by hand.
        let note = msg
            .header("X-Mailer-Note")
            .and_then(|h| h.as_text())
            .expect("extra header");
        let b64 = note
            .strip_prefix("=?utf-8?B?")
            .and_then(|r| r.strip_suffix("?="))
            .expect("an encoded word");
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).as_deref(),
            Ok("Grüße from the sidecar")
        );
        let ct = msg.content_type().expect("content type");
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("mixed"));
        let types: Vec<String> = msg
            .parts
            .iter()
            .filter_map(|part| part.content_type())
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()))
            .collect();
        for want in [
            "multipart/mixed",
            "multipart/related",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "image/png",
            "application/pdf",
        ] {
            assert!(types.iter().any(|t| t == want), "{want} in {types:?}");
        }
        let headers = header_block(&raw);
        assert!(headers.contains("MIME-Version: 1.0"), "{headers}");
        assert!(headers.contains("filename*") || raw.windows(9).any(|w| w == b"filename*"));
    }

    /// Multipart boundaries are random: name them by order of appearance.
    fn normalize_boundaries(raw: &[u8]) -> String {
        let mut text = String::from_utf8(raw.to_vec()).expect("ascii");
        let mut n = 0;
        while let Some(at) = text.find("boundary=\"") {
            let start = at + "boundary=\"".len();
            let end = start + text[start..].find('"').expect("closing quote");
            let boundary = text[start..end].to_string();
            n += 1;
            text = text.replace(&boundary, &format!("BOUNDARY-{n}"));
            text = text.replacen("boundary=\"", "boundary=\u{1}", 1);
        }
        text.replace('\u{1}', "\"")
    }

    /// The whole message, byte for byte but for the boundaries, against `testdata/golden.eml`.
    #[test]
    fn golden_eml() {
        let mut m = OutgoingMessage::new(mb(Some("Zoë Ünal"), "zoe@sender.test"));
        m.message_id = "golden-1@sender.test".into();
        m.date = 1_795_514_400_000;
        m.to = vec![
            mb(Some("Ann Lee"), "ann@x.test"),
            mb(Some("Doe, John"), "john@münchen.de"),
        ];
        m.cc = vec![mb(Some("Пётр"), "petr@x.test")];
        m.bcc = vec![mb(None, "hidden@x.test")];
        m.subject = "Grüße: réunion ✓".into();
        m.html = Some(
            "<p>Hello <b>Ann</b>,</p><p><img src=\"cid:logo@sender.test\" alt=\"Logo\"></p>".into(),
        );
        m.inline_images = vec![InlineImage {
            content_id: "logo@sender.test".into(),
            content_type: "image/png".into(),
            bytes: vec![0x89, b'P', b'N', b'G'],
            filename: None,
        }];
        m.attachments = vec![Attachment {
            filename: "résumé.txt".into(),
            content_type: "text/plain".into(),
            bytes: b"a\nb\n".to_vec(),
        }];
        m.in_reply_to = Some("orig@x.test".into());
        m.references = vec!["root@x.test".into(), "orig@x.test".into()];
        let raw = m.build(false).expect("build");
        let text = String::from_utf8(raw.clone()).expect("ascii");
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "every line ends with CRLF"
        );
        let got = normalize_boundaries(&raw).replace("\r\n", "\n");
        let want = include_str!("testdata/golden.eml");
        if got != want {
            panic!("golden.eml differs; got:\n{got}");
        }
    }

    #[test]
    fn bcc_only_when_asked() {
        let m = full();
        let with = m.build(true).expect("build");
        let without = m.build(false).expect("build");
        let hw = header_block(&with);
        let hwo = header_block(&without);
        assert!(hw.contains("\r\nBcc: "), "{hw}");
        assert!(!hwo.to_ascii_lowercase().contains("bcc:"), "{hwo}");
        assert!(!String::from_utf8_lossy(&without).contains("secret@x.test"));
        assert!(parse::parse(&without)
            .bcc
            .as_array()
            .is_some_and(|a| a.is_empty()));
        // Same message otherwise: same id, date, subject.
        assert_eq!(
            parse::parse(&with).message_id,
            parse::parse(&without).message_id
        );
        assert_eq!(m.envelope().len(), 5);
    }

    #[test]
    fn plain_text_only_and_html_only() {
        let mut m = OutgoingMessage::new(mb(None, "a@x.test"));
        m.to = vec![mb(None, "b@x.test")];
        m.subject = "Plain".into();
        m.text = Some("Just text,\nwith ünïcode and a trailing space \n".into());
        let raw = m.build(false).expect("build");
        let msg = MessageParser::default().parse(&raw).expect("parses");
        assert_eq!(msg.content_type().map(|c| c.ctype()), Some("text"));
        assert_eq!(
            msg.body_text(0).as_deref(),
            Some("Just text,\r\nwith ünïcode and a trailing space \r\n").or(m.text.as_deref()),
        );
        assert!(
            msg.body_html(0).is_some(),
            "mail-parser offers HTML from the text part"
        );

        let mut h = OutgoingMessage::new(mb(None, "a@x.test"));
        h.html = Some("<p>Only <i>HTML</i></p><p>Second</p>".into());
        let p = parse::parse(&h.build(false).expect("build"));
        assert_eq!(p.text_body.as_deref(), Some("Only HTML\r\nSecond"));
        assert_eq!(p.html_body.as_deref(), h.html.as_deref());
        assert!(p.to.as_array().is_some_and(|a| a.is_empty()));
    }

    #[test]
    fn groups_are_written_as_groups() {
        let mut m = OutgoingMessage::new(mb(None, "a@x.test"));
        let mut a = mb(None, "a1@x.test");
        a.group = Some("Team".into());
        let mut b = mb(Some("B"), "b1@x.test");
        b.group = Some("Team".into());
        m.to = vec![a, b, mb(None, "c@x.test")];
        m.text = Some("x".into());
        let raw = m.build(false).expect("build");
        let headers = header_block(&raw);
        assert!(
            headers.contains("To: \"Team\": <a1@x.test>, \"B\" <b1@x.test>;, <c@x.test>"),
            "{headers}"
        );
        let p = parse::parse(&raw);
        let to: Vec<&str> =
            p.to.as_array()
                .expect("to")
                .iter()
                .filter_map(|v| v["address"].as_str())
                .collect();
        assert_eq!(to, vec!["a1@x.test", "b1@x.test", "c@x.test"]);
    }

    #[test]
    fn subject_line_breaks_cannot_inject_headers() {
        let mut m = OutgoingMessage::new(mb(None, "a@x.test"));
        m.subject = "Hi\r\nBcc: evil@x.test".into();
        m.text = Some("x".into());
        let raw = m.build(false).expect("build");
        let headers = header_block(&raw);
        assert!(!headers.contains("\r\nBcc:"), "{headers}");
        assert_eq!(parse::parse(&raw).subject, "Hi Bcc: evil@x.test");
    }

    #[test]
    fn bad_parts_are_refused() {
        let base = || {
            let mut m = OutgoingMessage::new(mb(None, "a@x.test"));
            m.text = Some("x".into());
            m
        };
        let mut m = base();
        m.extra_headers = vec![("Bcc".into(), "x@x.test".into())];
        assert_eq!(m.build(false), Err(MimeError::ReservedHeader("Bcc".into())));
        let mut m = base();
        m.extra_headers = vec![("X-Bad Name".into(), "v".into())];
        assert!(matches!(m.build(false), Err(MimeError::HeaderName(_))));
        let mut m = base();
        m.extra_headers = vec![("X-Ok".into(), "v\r\nBcc: e@x.test".into())];
        assert!(matches!(m.build(false), Err(MimeError::HeaderValue(_))));
        let mut m = base();
        m.attachments = vec![Attachment {
            filename: "a".into(),
            content_type: "not a type".into(),
            bytes: vec![],
        }];
        assert!(matches!(m.build(false), Err(MimeError::ContentType(_))));
        let mut m = base();
        m.inline_images = vec![InlineImage {
            content_id: "has space".into(),
            content_type: "image/png".into(),
            bytes: vec![1],
            filename: None,
        }];
        assert!(matches!(m.build(false), Err(MimeError::ContentId(_))));
        let mut m = base();
        m.in_reply_to = Some("no-at-sign".into());
        assert!(matches!(m.build(false), Err(MimeError::MessageId(_))));
    }

    #[test]
    fn helpers() {
        assert_eq!(media_type("Image/PNG; name=x").as_deref(), Ok("image/png"));
        assert!(media_type("png").is_err());
        assert_eq!(clean_filename("C:\\Users\\x\\a\u{0}b.txt"), "ab.txt");
        assert_eq!(clean_filename("../.."), "attachment");
        assert_eq!(clean_filename(".hidden"), "hidden");
        assert_eq!(
            message_ids("<a@x> \r\n <b@y>"),
            vec!["a@x".to_string(), "b@y".to_string()]
        );
        assert_eq!(message_ids("a@x"), vec!["a@x".to_string()]);
        assert!(message_ids("").is_empty());
    }
}
