//! Recipient input parsed at the edge into addresses that cannot be bad.
//!
//! Accepted per field (`to`, `cc`, `bcc`, `replyTo`): a JSON array whose items are strings
//! (`"Ann <ann@x.test>"`, `"ann@x.test"`, `"\"Doe, John\" <j@x.test>"`, a group
//! `"Team: a@x.test, b@x.test;"`, or several addresses separated by commas) or objects
//! `{"name", "address"}`; a single string stands for a one-item array. Display names are plain
//! UTF-8 (the MIME writer RFC 2047-encodes them); internationalised domains are converted to
//! punycode for the wire. Every bad item is reported, each named by field and position.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// Local part at most 64 octets, whole address at most 254 (RFC 5321 §4.5.3.1).
const MAX_LOCAL: usize = 64;
const MAX_ADDRESS: usize = 254;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;
const MAX_NAME_CHARS: usize = 256;
/// Gmail refuses more than 500 recipients per message; Exchange Online allows 500 too.
pub const MAX_RECIPIENTS: usize = 500;

/// Why a text is not an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    Empty,
    ControlCharacter,
    NoAt,
    TwoAts,
    LocalEmpty,
    LocalTooLong,
    LocalInvalid,
    DomainEmpty,
    DomainInvalid,
    NoTld,
    TooLong,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::Empty => "it is empty",
            AddressError::ControlCharacter => "it contains a line break or control character",
            AddressError::NoAt => "no @",
            AddressError::TwoAts => "more than one @",
            AddressError::LocalEmpty => "nothing before the @",
            AddressError::LocalTooLong => "the part before the @ is longer than 64 characters",
            AddressError::LocalInvalid => "the part before the @ has characters that need quoting",
            AddressError::DomainEmpty => "no domain after the @",
            AddressError::DomainInvalid => "the domain is not a valid host name",
            AddressError::NoTld => "the domain has no top-level part (such as .com)",
            AddressError::TooLong => "longer than 254 characters",
        })
    }
}

/// An address as it goes on the wire: ASCII only, the domain lower-cased (punycode for an
/// internationalised domain), the local part as given. Only [`EmailAddress::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<EmailAddress, AddressError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        // CR/LF anywhere would let a value start a new header line.
        if s.chars().any(char::is_control) {
            return Err(AddressError::ControlCharacter);
        }
        let at = split_at_sign(s)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() {
            return Err(AddressError::LocalEmpty);
        }
        if domain.is_empty() {
            return Err(AddressError::DomainEmpty);
        }
        if local.len() > MAX_LOCAL {
            return Err(AddressError::LocalTooLong);
        }
        if !(is_dot_atom(local) || is_quoted_local(local)) {
            return Err(AddressError::LocalInvalid);
        }
        let domain = ascii_domain(domain)?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_ADDRESS {
            return Err(AddressError::TooLong);
        }
        Ok(EmailAddress(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or_default()
    }

    /// The wire (ASCII) form of the domain.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// The address with its domain shown in Unicode, for people.
    pub fn to_unicode(&self) -> String {
        let (unicode, result) = idna::domain_to_unicode(self.domain());
        if result.is_ok() {
            format!("{}@{unicode}", self.local_part())
        } else {
            self.0.clone()
        }
    }

    /// Case-insensitive identity, for de-duplication and "is this me".
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The position of the one `@` that separates local part and domain (a quoted local part may
/// contain more).
fn split_at_sign(s: &str) -> Result<usize, AddressError> {
    let at = s.rfind('@').ok_or(AddressError::NoAt)?;
    let local = &s[..at];
    if !local.starts_with('"') && local.contains('@') {
        return Err(AddressError::TwoAts);
    }
    Ok(at)
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// `"…"` with printable ASCII inside; `\` escapes the next character.
fn is_quoted_local(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return false;
    };
    if inner.is_empty() {
        return false;
    }
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n.is_ascii() && !n.is_ascii_control() => {}
                _ => return false,
            },
            '"' => return false,
            c if c.is_ascii() && !c.is_ascii_control() => {}
            _ => return false,
        }
    }
    true
}

/// Lower-cased ASCII host name, punycode for Unicode labels; labels 1–63 characters of letters,
/// digits and inner hyphens; at least two labels, the last one not all digits.
fn ascii_domain(domain: &str) -> Result<String, AddressError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(AddressError::DomainEmpty);
    }
    let ascii = if domain.is_ascii() {
        domain.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(domain).map_err(|_| AddressError::DomainInvalid)?
    };
    if ascii.len() > MAX_DOMAIN {
        return Err(AddressError::DomainInvalid);
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(AddressError::DomainInvalid);
        }
    }
    match labels.last() {
        Some(tld) if labels.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()) => Ok(ascii),
        _ => Err(AddressError::NoTld),
    }
}

/// A recipient or sender: an address, an optional display name, and the group it was given in
/// (`Team: a@x.test, b@x.test;`), kept so the header can show the group again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: EmailAddress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Mailbox {
    pub fn new(name: Option<&str>, address: EmailAddress) -> Mailbox {
        Mailbox {
            name: clean_name(name.unwrap_or_default()),
            address,
            group: None,
        }
    }

    /// `Name <address>` or just the address, for quoting in a reply header line.
    pub fn display(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} <{}>", self.address.to_unicode()),
            None => self.address.to_unicode(),
        }
    }
}

/// A display name as stored: trimmed, control characters (CR/LF included) turned into spaces,
/// empty as `None`.
fn clean_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if cleaned.is_empty() {
        None
    } else {
        Some(cleaned.chars().take(MAX_NAME_CHARS).collect())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressObject {
    #[serde(default)]
    name: Option<String>,
    address: String,
}

/// Every bad item of a request, each a line such as `to[2]: "bob@" is not an email address (…)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressErrors(pub Vec<String>);

/// At most this many problems are spelled out in one answer; the rest are counted.
const MAX_REPORTED: usize = 50;

impl fmt::Display for AddressErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.len().min(MAX_REPORTED);
        f.write_str(&self.0[..shown].join("; "))?;
        if self.0.len() > shown {
            write!(f, "; and {} more", self.0.len() - shown)?;
        }
        Ok(())
    }
}

impl From<AddressErrors> for crate::error::ApiError {
    fn from(e: AddressErrors) -> Self {
        crate::error::ApiError::invalid(e.to_string())
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".into())
}

/// Parses one field's value (`null`, a string, or an array of strings/objects).
pub fn parse_field(field: &str, value: Option<&Value>) -> Result<Vec<Mailbox>, AddressErrors> {
    let mut errors = Vec::new();
    let out = parse_field_into(field, value, &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AddressErrors(errors))
    }
}

fn parse_field_into(field: &str, value: Option<&Value>, errors: &mut Vec<String>) -> Vec<Mailbox> {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::String(_)) => vec![v],
        Some(_) => {
            errors.push(format!(
                "{field} must be a list of addresses such as [\"Ann <ann@example.com>\"]"
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        match item {
            Value::String(s) => {
                if s.chars().any(|c| c == '\r' || c == '\n') {
                    errors.push(format!(
                        "{at}: {} is not an email address (it contains a line break)",
                        quote(s)
                    ));
                    continue;
                }
                match parse_text(s) {
                    Ok(list) if list.is_empty() => {
                        errors.push(format!("{at}: {} is not an email address", quote(s)))
                    }
                    Ok(list) => out.extend(list),
                    Err(bad) => {
                        for (text, why) in bad {
                            errors.push(format!(
                                "{at}: {} is not an email address ({why})",
                                quote(&text)
                            ));
                        }
                    }
                }
            }
            Value::Object(_) => match serde_json::from_value::<AddressObject>(item.clone()) {
                Ok(obj) => match EmailAddress::parse(&obj.address) {
                    Ok(address) => out.push(Mailbox::new(obj.name.as_deref(), address)),
                    Err(why) => errors.push(format!(
                        "{at}: {} is not an email address ({why})",
                        quote(&obj.address)
                    )),
                },
                Err(e) => errors.push(format!(
                    "{at}: expected {{\"name\", \"address\"}}: {e}"
                )),
            },
            _ => errors.push(format!(
                "{at}: expected a string such as \"Ann <ann@example.com>\" or an object {{\"name\", \"address\"}}"
            )),
        }
    }
    out
}

/// Splits `s` at top-level occurrences of `sep` (outside quotes and angle brackets).
fn split_top_level(s: &str, seps: &[char]) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let (mut in_quote, mut escaped, mut angle) = (false, false, 0usize);
    for c in s.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => angle += 1,
            '>' if !in_quote => angle = angle.saturating_sub(1),
            c if !in_quote && angle == 0 && seps.contains(&c) => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
}

/// Position of the first top-level `:` (a group), if any.
fn group_colon(s: &str) -> Option<usize> {
    let (mut in_quote, mut escaped, mut angle) = (false, false, 0usize);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => angle += 1,
            '>' if !in_quote => angle = angle.saturating_sub(1),
            ':' if !in_quote && angle == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// One string of a field: mailboxes separated by commas, or a group. Returns the bad pieces
/// with their reason when any is bad.
fn parse_text(s: &str) -> Result<Vec<Mailbox>, Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let (group, members) = match group_colon(s) {
        Some(i) => {
            let name = unquote(s[..i].trim());
            let rest = s[i + 1..].trim();
            let rest = rest.strip_suffix(';').unwrap_or(rest);
            (clean_name(&name), rest.to_string())
        }
        None => (None, s.to_string()),
    };
    for piece in split_top_level(&members, &[',', ';']) {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        match parse_mailbox(piece) {
            Ok(mut m) => {
                m.group = group.clone();
                out.push(m);
            }
            Err(why) => bad.push((piece.to_string(), why)),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(bad)
    }
}

fn parse_mailbox(piece: &str) -> Result<Mailbox, String> {
    if let Some(open) = find_top_level_angle(piece) {
        let name = piece[..open].trim();
        let rest = &piece[open + 1..];
        let close = rest
            .find('>')
            .ok_or_else(|| "the < has no closing >".to_string())?;
        if !rest[close + 1..].trim().is_empty() {
            return Err("text after the closing >".into());
        }
        let address = EmailAddress::parse(&rest[..close]).map_err(|e| e.to_string())?;
        let name = unquote(name);
        return Ok(Mailbox::new(Some(&name), address));
    }
    if piece.contains(char::is_whitespace) && !piece.starts_with('"') {
        return Err("spaces are only allowed in a name before <address>".into());
    }
    let address = EmailAddress::parse(piece).map_err(|e| e.to_string())?;
    Ok(Mailbox::new(None, address))
}

fn find_top_level_angle(s: &str) -> Option<usize> {
    let (mut in_quote, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// `"Doe, John"` → `Doe, John` (with `\"` and `\\` unescaped); anything else as it is.
fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => s.to_string(),
    }
}

/// The recipients of one message, validated and de-duplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
}

impl Recipients {
    /// Parses the four fields, reporting every bad item of all of them at once. An address that
    /// appears twice across to/cc/bcc (case-insensitively) is kept where it first appears.
    pub fn parse(
        to: Option<&Value>,
        cc: Option<&Value>,
        bcc: Option<&Value>,
        reply_to: Option<&Value>,
    ) -> Result<Recipients, AddressErrors> {
        let mut errors = Vec::new();
        let to = parse_field_into("to", to, &mut errors);
        let cc = parse_field_into("cc", cc, &mut errors);
        let bcc = parse_field_into("bcc", bcc, &mut errors);
        let reply_to = parse_field_into("replyTo", reply_to, &mut errors);
        if !errors.is_empty() {
            return Err(AddressErrors(errors));
        }
        let mut r = Recipients {
            to,
            cc,
            bcc,
            reply_to,
        };
        r.dedupe();
        if r.count() > MAX_RECIPIENTS {
            return Err(AddressErrors(vec![format!(
                "{} recipients: at most {MAX_RECIPIENTS} per message",
                r.count()
            )]));
        }
        Ok(r)
    }

    /// Drops repeats across to → cc → bcc (first one wins), and within reply-to.
    pub fn dedupe(&mut self) {
        let mut seen = HashSet::new();
        for list in [&mut self.to, &mut self.cc, &mut self.bcc] {
            list.retain(|m| seen.insert(m.address.key()));
        }
        let mut seen = HashSet::new();
        self.reply_to.retain(|m| seen.insert(m.address.key()));
    }

    /// to + cc + bcc.
    pub fn count(&self) -> usize {
        self.to.len() + self.cc.len() + self.bcc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Everyone the provider must deliver to (the SMTP envelope).
    pub fn envelope(&self) -> Vec<&EmailAddress> {
        self.to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .map(|m| &m.address)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(s: &str) -> String {
        EmailAddress::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    #[test]
    fn good_addresses() {
        assert_eq!(ok("ann@x.test"), "ann@x.test");
        assert_eq!(ok("  Ann.Lee+tag@Example.COM "), "Ann.Lee+tag@example.com");
        assert_eq!(ok("o'brien@x.test"), "o'brien@x.test");
        assert_eq!(ok("\"john doe\"@x.test"), "\"john doe\"@x.test");
        assert_eq!(ok("\"a@b\"@x.test"), "\"a@b\"@x.test");
        assert_eq!(ok("a@sub.domain-1.x.test."), "a@sub.domain-1.x.test");
        assert_eq!(ok("a@münchen.de"), "a@xn--mnchen-3ya.de");
        assert_eq!(ok("a@例え.テスト"), "a@xn--r8jz45g.xn--zckzah");
        let idn = EmailAddress::parse("a@bücher.example").expect("idn");
        assert_eq!(idn.domain(), "xn--bcher-kva.example");
        assert_eq!(idn.to_unicode(), "a@bücher.example");
        assert_eq!(idn.local_part(), "a");
        let max_label = format!("a@{}.test", "l".repeat(63));
        assert_eq!(ok(&max_label), max_label);
    }

    #[test]
    fn bad_addresses_say_why() {
        let cases: &[(&str, AddressError)] = &[
            ("", AddressError::Empty),
            ("bob", AddressError::NoAt),
            ("bob@", AddressError::DomainEmpty),
            ("@x.test", AddressError::LocalEmpty),
            ("a@b@x.test", AddressError::TwoAts),
            ("a b@x.test", AddressError::LocalInvalid),
            ("a..b@x.test", AddressError::LocalInvalid),
            (".a@x.test", AddressError::LocalInvalid),
            ("a.@x.test", AddressError::LocalInvalid),
            ("a(b)@x.test", AddressError::LocalInvalid),
            ("ü@x.test", AddressError::LocalInvalid),
            ("a@localhost", AddressError::NoTld),
            ("a@x.123", AddressError::NoTld),
            ("a@-x.test", AddressError::DomainInvalid),
            ("a@x-.test", AddressError::DomainInvalid),
            ("a@x..test", AddressError::DomainInvalid),
            ("a@x_y.test", AddressError::DomainInvalid),
            ("a@[127.0.0.1]", AddressError::DomainInvalid),
            (
                "a@x.test\r\nBcc: evil@x.test",
                AddressError::ControlCharacter,
            ),
            ("a\n@x.test", AddressError::ControlCharacter),
        ];
        for (input, want) in cases {
            assert_eq!(
                EmailAddress::parse(input).as_ref().err(),
                Some(want),
                "{input:?}"
            );
        }
        assert_eq!(
            EmailAddress::parse(&format!("{}@x.test", "a".repeat(65))),
            Err(AddressError::LocalTooLong)
        );
        assert_eq!(
            EmailAddress::parse(&format!("a@{}.test", "l".repeat(64))),
            Err(AddressError::DomainInvalid)
        );
        let long = format!(
            "{}@{}.{}.{}.test",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(60)
        );
        assert_eq!(EmailAddress::parse(&long), Err(AddressError::TooLong));
    }

    fn field(v: Value) -> Result<Vec<Mailbox>, AddressErrors> {
        parse_field("to", Some(&v))
    }

    #[test]
    fn the_input_forms() {
        let list = field(json!([
            "Ann <ann@x.test>",
            "bob@x.test",
            "\"Doe, John\" <j@x.test>",
            "Zoë Ünal <zoe@x.test>",
            "<bare@x.test>",
            {"name": "Obj", "address": "obj@x.test"},
            {"address": "noname@x.test"},
            "c1@x.test, C Two <c2@x.test>",
            "\"Quote \\\"Q\\\" Person\" <q@x.test>",
        ]))
        .expect("valid");
        let got: Vec<(Option<&str>, &str)> = list
            .iter()
            .map(|m| (m.name.as_deref(), m.address.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("Ann"), "ann@x.test"),
                (None, "bob@x.test"),
                (Some("Doe, John"), "j@x.test"),
                (Some("Zoë Ünal"), "zoe@x.test"),
                (None, "bare@x.test"),
                (Some("Obj"), "obj@x.test"),
                (None, "noname@x.test"),
                (None, "c1@x.test"),
                (Some("C Two"), "c2@x.test"),
                (Some("Quote \"Q\" Person"), "q@x.test"),
            ]
        );
        // A single string is a one-item list; null or absent is empty.
        assert_eq!(field(json!("a@x.test")).expect("one").len(), 1);
        assert!(parse_field("cc", None).expect("none").is_empty());
        assert!(field(Value::Null).expect("null").is_empty());
    }

    #[test]
    fn groups_keep_their_name() {
        let list = field(json!([
            "Team: a@x.test, Bee <b@x.test>;",
            "\"The, Crew\":c@x.test;"
        ]))
        .expect("valid");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].group.as_deref(), Some("Team"));
        assert_eq!(list[1].name.as_deref(), Some("Bee"));
        assert_eq!(list[1].group.as_deref(), Some("Team"));
        assert_eq!(list[2].group.as_deref(), Some("The, Crew"));
        // An empty group names no one: that is not an address.
        assert!(field(json!(["Undisclosed recipients:;"])).is_err());
    }

    #[test]
    fn every_bad_item_is_named() {
        let err = Recipients::parse(
            Some(&json!(["ok@x.test", "Ann <ann@x.test>", "bob@"])),
            Some(&json!([{"name": "N", "address": "no at"}, 42, {"address": "a@x.test", "extra": 1}])),
            Some(&json!("x@y.test, bad@@x.test")),
            Some(&json!({"not": "a list"})),
        )
        .expect_err("bad");
        let lines = err.0;
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert_eq!(
            lines[0],
            "to[2]: \"bob@\" is not an email address (no domain after the @)"
        );
        assert!(
            lines[1].starts_with("cc[0]: \"no at\" is not an email address"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with("cc[1]: expected a string"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("cc[2]: expected {\"name\", \"address\"}"),
            "{}",
            lines[3]
        );
        assert!(lines[3].contains("extra"), "{}", lines[3]);
        assert_eq!(
            lines[4],
            "bcc[0]: \"bad@@x.test\" is not an email address (more than one @)"
        );
        assert!(
            lines[5].starts_with("replyTo must be a list"),
            "{}",
            lines[5]
        );
    }

    #[test]
    fn header_injection_is_refused_everywhere() {
        for bad in [
            json!(["a@x.test\r\nBcc: evil@x.test"]),
            json!(["Ann\r\nBcc: evil@x.test <a@x.test>"]),
            json!([{"address": "a@x.test\nX: y"}]),
        ] {
            assert!(field(bad.clone()).is_err(), "{bad}");
        }
        // A name from an object is cleaned instead: it never reaches a header raw.
        let list = field(json!([{"name": "Ann\r\nBcc: e@x.test", "address": "a@x.test"}]))
            .expect("name cleaned");
        assert_eq!(list[0].name.as_deref(), Some("Ann Bcc: e@x.test"));
    }

    #[test]
    fn duplicates_keep_the_first() {
        let r = Recipients::parse(
            Some(&json!(["Ann <ANN@x.test>", "b@x.test", "ann@X.test"])),
            Some(&json!(["b@x.test", "c@x.test"])),
            Some(&json!(["C@x.test", "d@x.test", "Ann@x.test"])),
            Some(&json!(["r@x.test", "R@x.test"])),
        )
        .expect("valid");
        let keys = |l: &[Mailbox]| l.iter().map(|m| m.address.key()).collect::<Vec<_>>();
        assert_eq!(keys(&r.to), vec!["ann@x.test", "b@x.test"]);
        assert_eq!(r.to[0].name.as_deref(), Some("Ann"));
        assert_eq!(keys(&r.cc), vec!["c@x.test"]);
        assert_eq!(keys(&r.bcc), vec!["d@x.test"]);
        assert_eq!(keys(&r.reply_to), vec!["r@x.test"]);
        assert_eq!(r.envelope().len(), 4);
    }

    #[test]
    fn a_long_list_of_errors_is_cut() {
        let bad: Vec<String> = (0..60).map(|i| format!("bad{i}")).collect();
        let err = parse_field("to", Some(&json!(bad))).expect_err("bad");
        assert_eq!(err.0.len(), 60);
        let text = err.to_string();
        assert!(text.contains("to[49]: \"bad49\""), "{text}");
        assert!(!text.contains("to[50]"), "{text}");
        assert!(text.ends_with("; and 10 more"), "{text}");
    }

    #[test]
    fn too_many_recipients() {
        let many: Vec<String> = (0..=MAX_RECIPIENTS)
            .map(|i| format!("u{i}@x.test"))
            .collect();
        let err = Recipients::parse(Some(&json!(many)), None, None, None).expect_err("too many");
        assert!(err.0[0].contains("at most 500"), "{err}");
    }
}
