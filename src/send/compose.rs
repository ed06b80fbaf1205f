//! Reply, reply-all and forward, as pure functions over a stored message.
//!
//! Rules (docs/sending.md has the long form):
//! - `reply`: to the source's Reply-To, or its From;
//! - `replyAll`: that, plus the source's To (to) and Cc (cc), minus the user's own addresses and
//!   aliases, without duplicates;
//! - when the user sent the source, a reply goes to the source's recipients instead (reply: its
//!   To; reply-all: its To and Cc), as mail clients do;
//! - `forward`: no recipients; the source's attachments come along as references;
//! - subjects get one `Re:`/`Fwd:`, recognising the prefixes other clients and languages write;
//! - `In-Reply-To` is the source's Message-ID; `References` the source's References plus its
//!   Message-ID, trimmed to [`MAX_REFERENCES`] ids keeping the first and the latest;
//! - the provider thread id of the source, so the provider files the reply in the same thread.

use chrono::{FixedOffset, Offset, TimeZone};
use serde::Deserialize;

use super::address::{EmailAddress, Mailbox};
use super::mime::message_ids;
use super::signature::{sanitize_html, text_to_html, Quote};
use super::template::escape_html;
use crate::db::models::{MailAttachmentRow, MailMessageRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Reply,
    ReplyAll,
    Forward,
}

impl Mode {
    /// The API's `mode` value (`new` is no composition and answers `None`).
    pub fn parse(s: &str) -> Result<Option<Mode>, String> {
        match s {
            "new" => Ok(None),
            "reply" => Ok(Some(Mode::Reply)),
            "replyAll" => Ok(Some(Mode::ReplyAll)),
            "forward" => Ok(Some(Mode::Forward)),
            other => Err(format!(
                "mode {other:?} is not one of new, reply, replyAll, forward"
            )),
        }
    }
}

/// An attachment of the source message, to be fetched from the provider when the forward is
/// sent (the bytes are not stored here).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRef {
    /// The local `mail_messages.id` of the source.
    pub message_id: i64,
    /// The local `mail_attachments.id`.
    pub attachment_id: i64,
    pub part_index: i32,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub inline: bool,
    pub content_id: Option<String>,
}

/// What a reply or forward starts with; the caller adds the user's text, signature and sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub subject: String,
    /// Without angle brackets.
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// The provider's thread id of the source.
    pub thread_id: String,
    pub quote: Quote,
    pub attachments: Vec<AttachmentRef>,
    /// The user's address the source was sent to (or from), so the answer keeps that identity.
    pub identity: Option<EmailAddress>,
}

/// How the quote header shows dates: the user's offset from UTC (NocoBase sends `X-Timezone`).
#[derive(Debug, Clone, Copy)]
pub struct QuoteOptions {
    pub offset: FixedOffset,
}

impl QuoteOptions {
    /// From NocoBase's `X-Timezone` header (`+08:00`, `-0530`, `Z`); `None` when it is not an
    /// offset, so the caller falls back to UTC.
    pub fn from_timezone_header(value: &str) -> Option<QuoteOptions> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("z") || v.eq_ignore_ascii_case("utc") {
            return Some(QuoteOptions::default());
        }
        let (sign, rest) = match v.chars().next()? {
            '+' => (1, &v[1..]),
            '-' => (-1, &v[1..]),
            _ => return None,
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let hours: i32 = digits[..2].parse().ok()?;
        let minutes: i32 = digits[2..].parse().ok()?;
        if hours > 14 || minutes > 59 {
            return None;
        }
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
            .map(|offset| QuoteOptions { offset })
    }
}

impl Default for QuoteOptions {
    fn default() -> Self {
        QuoteOptions {
            offset: chrono::Utc.fix(),
        }
    }
}

/// At most this many ids in `References`: the first (the thread's root) and the latest ones.
pub const MAX_REFERENCES: usize = 20;

#[derive(Deserialize)]
struct StoredAddress {
    #[serde(default)]
    name: String,
    #[serde(default)]
    address: String,
}

/// The stored `[{"name","address"}]` JSON as mailboxes; entries that are not addresses (an
/// `undisclosed-recipients` group, a broken header) are skipped.
pub fn stored_mailboxes(json: &str) -> Vec<Mailbox> {
    serde_json::from_str::<Vec<StoredAddress>>(json)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            EmailAddress::parse(&a.address)
                .ok()
                .map(|addr| Mailbox::new(Some(&a.name), addr))
        })
        .collect()
}

fn source_from(source: &MailMessageRow) -> Option<Mailbox> {
    EmailAddress::parse(&source.from_address)
        .ok()
        .map(|a| Mailbox::new(Some(&source.from_name), a))
}

fn push_unique(list: &mut Vec<Mailbox>, seen: &mut Vec<String>, m: Mailbox) {
    let key = m.address.key();
    if !seen.contains(&key) {
        seen.push(key);
        list.push(m);
    }
}

pub fn compose(
    mode: Mode,
    source: &MailMessageRow,
    attachments: &[MailAttachmentRow],
    own_addresses: &[EmailAddress],
    options: QuoteOptions,
) -> Composed {
    let own: Vec<String> = own_addresses.iter().map(EmailAddress::key).collect();
    let is_own = |m: &Mailbox| own.contains(&m.address.key());
    let from = source_from(source);
    let to_list = stored_mailboxes(&source.to_json);
    let cc_list = stored_mailboxes(&source.cc_json);
    let reply_to = stored_mailboxes(&source.reply_to_json);
    let sent_by_user = from.as_ref().is_some_and(is_own);

    // Which of the user's addresses the source concerned: the sender when it was the user,
    // otherwise the first own address among its recipients.
    let identity = if sent_by_user {
        from.as_ref().map(|m| m.address.clone())
    } else {
        to_list
            .iter()
            .chain(&cc_list)
            .find(|m| is_own(m))
            .map(|m| m.address.clone())
    };

    let (mut to, mut cc) = (Vec::new(), Vec::new());
    let mut seen: Vec<String> = Vec::new();
    match mode {
        Mode::Forward => {}
        Mode::Reply | Mode::ReplyAll => {
            let primary: Vec<Mailbox> = if sent_by_user {
                to_list.clone()
            } else if !reply_to.is_empty() {
                reply_to.clone()
            } else {
                from.iter().cloned().collect()
            };
            for m in primary {
                if !is_own(&m) {
                    push_unique(&mut to, &mut seen, m);
                }
            }
            if mode == Mode::ReplyAll {
                if !sent_by_user {
                    for m in to_list.iter().cloned() {
                        if !is_own(&m) {
                            push_unique(&mut to, &mut seen, m);
                        }
                    }
                }
                for m in cc_list.iter().cloned() {
                    if !is_own(&m) {
                        push_unique(&mut cc, &mut seen, m);
                    }
                }
            }
            // A note to self (everything was the user): answer the sender anyway.
            if to.is_empty() && cc.is_empty() {
                to.extend(from.iter().cloned());
            }
        }
    }

    let subject = match mode {
        Mode::Forward => forward_subject(&source.subject),
        _ => reply_subject(&source.subject),
    };
    let own_id = source
        .message_id
        .as_deref()
        .map(message_ids)
        .and_then(|ids| ids.into_iter().next());
    let mut references: Vec<String> = source
        .references_header
        .as_deref()
        .map(message_ids)
        .unwrap_or_default();
    if let Some(id) = &own_id {
        references.retain(|r| r != id);
        references.push(id.clone());
    }
    let references = trim_references(dedupe_ids(references));

    let attachments = match mode {
        Mode::Forward => attachments
            .iter()
            .filter(|a| a.message_id == source.id)
            .map(|a| AttachmentRef {
                message_id: a.message_id,
                attachment_id: a.id,
                part_index: a.part_index,
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.size,
                inline: a.inline,
                content_id: a.content_id.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };

    let quote = match mode {
        Mode::Forward => forward_quote(source, from.as_ref(), &to_list, &cc_list, options),
        _ => reply_quote(source, from.as_ref(), options),
    };

    Composed {
        to,
        cc,
        subject,
        in_reply_to: own_id,
        references,
        thread_id: source.thread_id.clone(),
        quote,
        attachments,
        identity,
    }
}

fn dedupe_ids(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Keeps the first id (the thread's root) and the latest ones, RFC 5322 §3.6.4 style.
pub fn trim_references(ids: Vec<String>) -> Vec<String> {
    if ids.len() <= MAX_REFERENCES {
        return ids;
    }
    let mut out = Vec::with_capacity(MAX_REFERENCES);
    out.push(ids[0].clone());
    out.extend(ids[ids.len() - (MAX_REFERENCES - 1)..].iter().cloned());
    out
}

/// Reply prefixes written by common clients and languages (compared case-insensitively).
const REPLY_PREFIXES: &[&str] = &[
    "re", "aw", "antw", "sv", "vs", "odp", "ynt", "res", "رد", "回复", "答复", "回覆", "答覆",
    "返信", "답장",
];
const FORWARD_PREFIXES: &[&str] = &[
    "fwd", "fw", "wg", "tr", "rv", "enc", "doorst", "vb", "vl", "转发", "轉寄", "转寄", "転送",
    "전달",
];

/// The length of one leading prefix from `list` (with `[2]`/`(2)` counters, `:` or `：`, and the
/// space after), or `None`.
fn prefix_len(s: &str, list: &[&str]) -> Option<usize> {
    let lower = s.to_lowercase();
    // Lower-casing may change byte lengths for some scripts; only accept when it did not.
    if lower.len() != s.len() {
        return None;
    }
    for p in list {
        let Some(rest) = lower.strip_prefix(p) else {
            continue;
        };
        let mut at = p.len();
        let mut r = rest;
        // `Re[2]:` / `Re(2):`
        for (open, close) in [('[', ']'), ('(', ')')] {
            if let Some(inner) = r.strip_prefix(open) {
                if let Some(end) = inner.find(close) {
                    if !inner[..end].is_empty() && inner[..end].chars().all(|c| c.is_ascii_digit())
                    {
                        at += 1 + end + 1;
                        r = &inner[end + 1..];
                    }
                }
            }
        }
        let r_trim = r.trim_start_matches(' ');
        let spaces = r.len() - r_trim.len();
        let colon = if r_trim.starts_with(':') {
            1
        } else if r_trim.starts_with('：') {
            '：'.len_utf8()
        } else {
            continue;
        };
        at += spaces + colon;
        let after = &s[at..];
        let after_trim = after.trim_start();
        return Some(at + (after.len() - after_trim.len()));
    }
    None
}

fn strip_prefixes<'a>(mut s: &'a str, list: &[&str]) -> &'a str {
    s = s.trim_start();
    while let Some(n) = prefix_len(s, list) {
        s = s[n..].trim_start();
    }
    s
}

/// `Re: ` once: `Re: Re: x`, `RE: x`, `AW: x`, `回复：x` all become `Re: x`; `Fwd: x` becomes
/// `Re: Fwd: x`.
pub fn reply_subject(subject: &str) -> String {
    let base = strip_prefixes(subject, REPLY_PREFIXES);
    format!("Re: {base}").trim_end().to_string()
}

/// `Fwd: ` once: `Fw: x`, `WG: x`, `转发: x` become `Fwd: x`; `Re: x` becomes `Fwd: Re: x`.
pub fn forward_subject(subject: &str) -> String {
    let base = strip_prefixes(subject, FORWARD_PREFIXES);
    format!("Fwd: {base}").trim_end().to_string()
}

fn when(source: &MailMessageRow, options: QuoteOptions) -> String {
    match options.offset.timestamp_millis_opt(source.date).single() {
        Some(d) => {
            let tz = if options.offset.local_minus_utc() == 0 {
                "UTC".to_string()
            } else {
                d.format("%:z").to_string()
            };
            format!("{} {tz}", d.format("%a, %-d %b %Y at %H:%M"))
        }
        None => "an unknown date".to_string(),
    }
}

fn who(from: Option<&Mailbox>, source: &MailMessageRow) -> String {
    match from {
        Some(m) => m.display(),
        None if !source.from_address.is_empty() => source.from_address.clone(),
        None => "someone".to_string(),
    }
}

fn source_html(source: &MailMessageRow) -> String {
    match (&source.html_body, &source.text_body) {
        (Some(h), _) => sanitize_html(h),
        (None, Some(t)) => text_to_html(t),
        (None, None) => String::new(),
    }
}

fn source_text(source: &MailMessageRow) -> String {
    match (&source.text_body, &source.html_body) {
        (Some(t), _) => t.replace("\r\n", "\n"),
        (None, Some(h)) => crate::sync::parse::html_to_text(h),
        (None, None) => String::new(),
    }
}

fn reply_quote(source: &MailMessageRow, from: Option<&Mailbox>, options: QuoteOptions) -> Quote {
    let attribution = format!("On {}, {} wrote:", when(source, options), who(from, source));
    let mut text = attribution.clone();
    for line in source_text(source).trim_end().lines() {
        text.push('\n');
        if line.starts_with('>') {
            text.push('>');
        } else if !line.is_empty() {
            text.push_str("> ");
        } else {
            text.push('>');
            continue;
        }
        text.push_str(line);
    }
    let html = format!(
        "<div class=\"em-quote\"><div class=\"em-quote-attribution\">{}</div>\
         <blockquote style=\"margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex\">{}</blockquote></div>",
        escape_html(&attribution),
        source_html(source)
    );
    Quote { html, text }
}

fn forward_quote(
    source: &MailMessageRow,
    from: Option<&Mailbox>,
    to: &[Mailbox],
    cc: &[Mailbox],
    options: QuoteOptions,
) -> Quote {
    let list = |l: &[Mailbox]| {
        l.iter()
            .map(Mailbox::display)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec![
        ("From", who(from, source)),
        ("Date", when(source, options)),
        ("Subject", source.subject.clone()),
        ("To", list(to)),
    ];
    if !cc.is_empty() {
        lines.push(("Cc", list(cc)));
    }
    const RULE: &str = "---------- Forwarded message ---------";
    let mut text = RULE.to_string();
    let mut html = format!("<div class=\"em-forward\">{RULE}<br>");
    for (k, v) in &lines {
        text.push_str(&format!("\n{k}: {v}"));
        html.push_str(&format!("{k}: {}<br>", escape_html(v)));
    }
    text.push_str("\n\n");
    text.push_str(source_text(source).trim_end());
    html.push_str("<br>");
    html.push_str(&source_html(source));
    html.push_str("</div>");
    Quote { html, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("address")
    }

    fn row() -> MailMessageRow {
        MailMessageRow {
            id: 10,
            account_id: 1,
            user_id: 2,
            provider_message_id: "p10".into(),
            thread_id: "thread-7".into(),
            message_id: Some("m10@x.test".into()),
            in_reply_to: Some("<m9@x.test>".into()),
            references_header: Some("<root@x.test> <m9@x.test>".into()),
            from_address: "ann@x.test".into(),
            from_name: "Ann Lee".into(),
            to_json: r#"[{"name":"Me","address":"me@mine.test"},{"name":"Bob","address":"bob@x.test"},{"name":"","address":"undisclosed-recipients"}]"#.into(),
            cc_json: r#"[{"name":"Carol","address":"carol@x.test"},{"name":"Me Alias","address":"ME.ALIAS@mine.test"},{"name":"Bob again","address":"BOB@x.test"}]"#.into(),
            bcc_json: "[]".into(),
            reply_to_json: "[]".into(),
            subject: "RE: Aw: Quarterly numbers".into(),
            snippet: String::new(),
            date: 1_795_514_400_000,
            folder: "inbox".into(),
            provider_labels: "[]".into(),
            unread: false,
            starred: false,
            todo: false,
            draft: false,
            has_attachments: true,
            size: 0,
            text_body: Some("Hello,\n\n> earlier quote\nNumbers attached.".into()),
            html_body: Some("<p>Hello,</p><p onclick=\"x()\">Numbers <b>attached</b>.</p><script>evil()</script>".into()),
            search_text: String::new(),
            sync_gen: 0,
            created_at: 0,
            updated_at: 0,
            todo_due_at: None,
        }
    }

    fn own() -> Vec<EmailAddress> {
        vec![addr("me@mine.test"), addr("me.alias@mine.test")]
    }

    fn addrs(l: &[Mailbox]) -> Vec<String> {
        l.iter().map(|m| m.address.to_string()).collect()
    }

    fn att(id: i64, message_id: i64) -> MailAttachmentRow {
        MailAttachmentRow {
            id,
            message_id,
            user_id: 2,
            part_index: id as i32,
            filename: format!("f{id}.pdf"),
            content_type: "application/pdf".into(),
            size: 100,
            content_id: None,
            inline: false,
        }
    }

    #[test]
    fn reply_goes_to_the_sender_with_threading() {
        let c = compose(
            Mode::Reply,
            &row(),
            &[att(1, 10)],
            &own(),
            QuoteOptions::default(),
        );
        assert_eq!(addrs(&c.to), vec!["ann@x.test"]);
        assert_eq!(c.to[0].name.as_deref(), Some("Ann Lee"));
        assert!(c.cc.is_empty());
        assert_eq!(c.subject, "Re: Quarterly numbers");
        assert_eq!(c.in_reply_to.as_deref(), Some("m10@x.test"));
        assert_eq!(c.references, vec!["root@x.test", "m9@x.test", "m10@x.test"]);
        assert_eq!(c.thread_id, "thread-7");
        assert!(c.attachments.is_empty(), "a reply carries no attachments");
        assert_eq!(c.identity, Some(addr("me@mine.test")));
        assert_eq!(
            c.quote.text,
            "On Tue, 24 Nov 2026 at 10:00 UTC, Ann Lee <ann@x.test> wrote:\n> Hello,\n>\n>> earlier quote\n> Numbers attached."
        );
        assert!(c.quote.html.contains("<blockquote"), "{}", c.quote.html);
        assert!(c.quote.html.contains("Ann Lee &lt;ann@x.test&gt; wrote:"));
        assert!(c.quote.html.contains("Numbers <b>attached</b>"));
        assert!(!c.quote.html.contains("onclick") && !c.quote.html.contains("evil"));
    }

    #[test]
    fn reply_prefers_reply_to() {
        let mut r = row();
        r.reply_to_json = r#"[{"name":"List","address":"list@x.test"}]"#.into();
        let c = compose(Mode::Reply, &r, &[], &own(), QuoteOptions::default());
        assert_eq!(addrs(&c.to), vec!["list@x.test"]);
    }

    #[test]
    fn reply_all_adds_everyone_but_me_once() {
        let c = compose(Mode::ReplyAll, &row(), &[], &own(), QuoteOptions::default());
        assert_eq!(addrs(&c.to), vec!["ann@x.test", "bob@x.test"]);
        assert_eq!(addrs(&c.cc), vec!["carol@x.test"]);
    }

    #[test]
    fn replying_to_my_own_message_goes_to_its_recipients() {
        let mut r = row();
        r.from_address = "Me.Alias@mine.test".into();
        r.from_name = "Me".into();
        let c = compose(Mode::Reply, &r, &[], &own(), QuoteOptions::default());
        assert_eq!(addrs(&c.to), vec!["bob@x.test"]);
        assert_eq!(c.identity, Some(addr("Me.Alias@mine.test")));
        let c = compose(Mode::ReplyAll, &r, &[], &own(), QuoteOptions::default());
        assert_eq!(addrs(&c.to), vec!["bob@x.test"]);
        assert_eq!(addrs(&c.cc), vec!["carol@x.test"]);
        // A note to self answers the sender.
        r.to_json = r#"[{"name":"","address":"me@mine.test"}]"#.into();
        r.cc_json = "[]".into();
        let c = compose(Mode::ReplyAll, &r, &[], &own(), QuoteOptions::default());
        assert_eq!(addrs(&c.to), vec!["Me.Alias@mine.test"]);
    }

    #[test]
    fn forward_has_no_recipients_and_carries_attachments() {
        let mut inline = att(2, 10);
        inline.inline = true;
        inline.content_id = Some("img1".into());
        let c = compose(
            Mode::Forward,
            &row(),
            &[att(1, 10), inline, att(3, 99)],
            &own(),
            QuoteOptions {
                offset: FixedOffset::east_opt(2 * 3600).expect("offset"),
            },
        );
        assert!(c.to.is_empty() && c.cc.is_empty());
        assert_eq!(c.subject, "Fwd: RE: Aw: Quarterly numbers");
        let ids: Vec<i64> = c.attachments.iter().map(|a| a.attachment_id).collect();
        assert_eq!(ids, vec![1, 2], "only the source's own attachments");
        assert!(c.attachments[1].inline);
        assert!(c.quote.text.starts_with(
            "---------- Forwarded message ---------\nFrom: Ann Lee <ann@x.test>\nDate: Tue, 24 Nov 2026 at 12:00 +02:00\nSubject: RE: Aw: Quarterly numbers\nTo: Me <me@mine.test>, Bob <bob@x.test>\nCc: Carol <carol@x.test>, Me Alias <ME.ALIAS@mine.test>, Bob again <BOB@x.test>\n\nHello,"
        ), "{}", c.quote.text);
        assert!(c.quote.html.contains("Forwarded message"));
        assert_eq!(c.in_reply_to.as_deref(), Some("m10@x.test"));
    }

    #[test]
    fn subjects_do_not_stack() {
        let cases = [
            ("Hello", "Re: Hello", "Fwd: Hello"),
            ("Re: Hello", "Re: Hello", "Fwd: Re: Hello"),
            ("RE: re: Re:Hello", "Re: Hello", "Fwd: RE: re: Re:Hello"),
            ("Re[2]: Hello", "Re: Hello", "Fwd: Re[2]: Hello"),
            (
                "AW: Antw: SV: Hello",
                "Re: Hello",
                "Fwd: AW: Antw: SV: Hello",
            ),
            ("回复：你好", "Re: 你好", "Fwd: 回复：你好"),
            ("答复: 你好", "Re: 你好", "Fwd: 答复: 你好"),
            ("Fwd: Hello", "Re: Fwd: Hello", "Fwd: Hello"),
            ("Fw: FWD: WG: Hello", "Re: Fw: FWD: WG: Hello", "Fwd: Hello"),
            ("转发: 你好", "Re: 转发: 你好", "Fwd: 你好"),
            ("", "Re:", "Fwd:"),
            (
                "Rechnung: März",
                "Re: Rechnung: März",
                "Fwd: Rechnung: März",
            ),
            ("Reply needed", "Re: Reply needed", "Fwd: Reply needed"),
            ("  Re :  spaced", "Re: spaced", "Fwd: Re :  spaced"),
        ];
        for (s, reply, fwd) in cases {
            assert_eq!(reply_subject(s), reply, "reply to {s:?}");
            assert_eq!(forward_subject(s), fwd, "forward of {s:?}");
        }
    }

    #[test]
    fn long_reference_chains_keep_first_and_latest() {
        let mut r = row();
        r.references_header = Some(
            (0..40)
                .map(|i| format!("<r{i}@x.test>"))
                .collect::<Vec<_>>()
                .join(" "),
        );
        let c = compose(Mode::Reply, &r, &[], &own(), QuoteOptions::default());
        assert_eq!(c.references.len(), MAX_REFERENCES);
        assert_eq!(c.references[0], "r0@x.test");
        assert_eq!(c.references[1], "r22@x.test");
        assert_eq!(c.references.last().map(String::as_str), Some("m10@x.test"));
        // No Message-ID on the source: no In-Reply-To, References as they were.
        let mut r = row();
        r.message_id = None;
        let c = compose(Mode::Reply, &r, &[], &own(), QuoteOptions::default());
        assert_eq!(c.in_reply_to, None);
        assert_eq!(c.references, vec!["root@x.test", "m9@x.test"]);
    }

    #[test]
    fn timezone_header() {
        let secs =
            |h: &str| QuoteOptions::from_timezone_header(h).map(|o| o.offset.local_minus_utc());
        assert_eq!(secs("+08:00"), Some(8 * 3600));
        assert_eq!(secs("-0530"), Some(-(5 * 3600 + 30 * 60)));
        assert_eq!(secs("Z"), Some(0));
        for bad in ["Asia/Shanghai", "+8", "+15:00", "+08:60", ""] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("new"), Ok(None));
        assert_eq!(Mode::parse("replyAll"), Ok(Some(Mode::ReplyAll)));
        assert!(Mode::parse("reply-all").is_err());
    }
}
