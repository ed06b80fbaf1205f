//! Attachment downloads for both adapters: finding the part a stored attachment is at the
//! provider, and streaming its bytes without holding them all.
//!
//! Sync stores attachments as `mail-parser` numbers them in the MIME; the providers name parts
//! their own way (Gmail part ids and attachment ids, Graph attachment ids), so a stored attachment
//! is found again by its Content-ID, else by file name and type (the n-th of that name), else by
//! position.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::http::transport_error;

/// How long one attachment download may take (the client's API timeout is far shorter).
pub const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);
use super::ProviderError;

/// A stored attachment, in the terms sync recorded.
#[derive(Debug, Clone, Default)]
pub struct AttachmentRef {
    pub filename: String,
    pub content_type: String,
    pub content_id: Option<String>,
    /// Decoded size in bytes, as sync measured it.
    pub size: i64,
    /// Among the message's attachments with the same file name and type, which one (0-based).
    pub ordinal: usize,
    /// Among all of the message's attachments, which one (0-based).
    pub index: usize,
}

/// An attachment's bytes as they arrive from the provider.
pub struct AttachmentStream {
    pub body: BoxStream<'static, Result<Bytes, ProviderError>>,
}

impl std::fmt::Debug for AttachmentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachmentStream")
    }
}

/// What the matching needs to know of a provider's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub filename: String,
    pub content_type: String,
    pub content_id: Option<String>,
}

fn norm_cid(c: &str) -> String {
    c.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

/// Which of `candidates` (the provider's attachment parts, in order) is `wanted`.
pub fn find(candidates: &[Candidate], wanted: &AttachmentRef) -> Option<usize> {
    if let Some(cid) = wanted.content_id.as_deref().map(norm_cid) {
        if let Some(i) = candidates
            .iter()
            .position(|c| c.content_id.as_deref().map(norm_cid).as_deref() == Some(cid.as_str()))
        {
            return Some(i);
        }
    }
    let same_name_and_type: Vec<usize> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.filename == wanted.filename
                && c.content_type.eq_ignore_ascii_case(&wanted.content_type)
        })
        .map(|(i, _)| i)
        .collect();
    if let Some(i) = same_name_and_type.get(wanted.ordinal) {
        return Some(*i);
    }
    let same_name: Vec<usize> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.filename == wanted.filename)
        .map(|(i, _)| i)
        .collect();
    if let Some(i) = same_name.get(wanted.ordinal) {
        return Some(*i);
    }
    (wanted.index < candidates.len()).then_some(wanted.index)
}

// ---- Gmail ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GmailPart {
    #[serde(default)]
    pub mime_type: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub headers: Vec<GmailHeader>,
    #[serde(default)]
    pub body: GmailBody,
    #[serde(default)]
    pub parts: Vec<GmailPart>,
}

#[derive(Debug, Deserialize)]
pub struct GmailHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GmailBody {
    pub attachment_id: Option<String>,
    pub data: Option<String>,
    #[serde(default)]
    pub size: i64,
}

impl GmailPart {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Parts `mail-parser` would count as attachments: named, or inline by Content-ID, or marked
    /// as an attachment, or with their body stored apart; never the containers.
    fn is_attachment(&self) -> bool {
        if self
            .mime_type
            .to_ascii_lowercase()
            .starts_with("multipart/")
        {
            return false;
        }
        !self.filename.is_empty()
            || self.header("Content-ID").is_some()
            || self
                .header("Content-Disposition")
                .is_some_and(|d| d.trim().to_ascii_lowercase().starts_with("attachment"))
    }

    /// The attachment parts, depth first (the order of the MIME).
    pub fn attachments(&self) -> Vec<&GmailPart> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(p) = stack.pop() {
            if p.is_attachment() {
                out.push(p);
            }
            stack.extend(p.parts.iter().rev());
        }
        out
    }

    pub fn candidate(&self) -> Candidate {
        Candidate {
            filename: self.filename.clone(),
            content_type: self.mime_type.to_ascii_lowercase(),
            content_id: self.header("Content-ID").map(str::to_string),
        }
    }
}

/// Decodes base64 or base64url as it arrives; padding and whitespace are skipped.
#[derive(Debug, Default)]
pub struct Base64Decoder {
    acc: u32,
    bits: u8,
}

impl Base64Decoder {
    pub fn push(&mut self, c: u8, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b' ' | b'\n' | b'\r' | b'\t' => return Ok(()),
            _ => {
                return Err(ProviderError::Permanent(
                    "attachment data is not base64".into(),
                ))
            }
        };
        self.acc = (self.acc << 6) | u32::from(v);
        self.bits += 6;
        if self.bits >= 8 {
            self.bits -= 8;
            out.push((self.acc >> self.bits) as u8);
            self.acc &= (1 << self.bits) - 1;
        }
        Ok(())
    }
}

/// Pulls the `data` string out of a JSON object arriving in chunks (Gmail's
/// `messages.attachments.get` answer, `{"attachmentId", "size", "data"}`) and decodes it as it
/// comes: the answer is a third larger than the attachment and is never held whole.
#[derive(Debug, Default)]
pub struct JsonDataDecoder {
    depth: u32,
    in_string: bool,
    escape: bool,
    /// Remaining hex digits of a `\uXXXX` escape, and the value so far.
    unicode: Option<(u8, u32)>,
    expect_key: bool,
    reading_key: bool,
    key: Vec<u8>,
    /// The current depth-1 value belongs to `"data"`.
    value_is_data: bool,
    capturing: bool,
    found: bool,
    b64: Base64Decoder,
}

impl JsonDataDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decoded bytes of `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let mut out = Vec::with_capacity(chunk.len() * 3 / 4 + 3);
        for &b in chunk {
            if self.in_string {
                self.string_byte(b, &mut out)?;
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.expect_key {
                        self.reading_key = true;
                        self.key.clear();
                    } else if self.depth == 1 && self.value_is_data {
                        self.capturing = true;
                        self.found = true;
                    }
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth == 1 {
                        self.expect_key = b == b'{';
                    }
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b':' if self.depth == 1 => {
                    self.expect_key = false;
                    self.value_is_data = self.key == b"data";
                }
                b',' if self.depth == 1 => {
                    self.expect_key = true;
                    self.value_is_data = false;
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn string_byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if let Some((left, value)) = self.unicode {
            let digit = (b as char).to_digit(16).ok_or_else(|| {
                ProviderError::Permanent("bad \\u escape in attachment JSON".into())
            })?;
            let value = value * 16 + digit;
            if left > 1 {
                self.unicode = Some((left - 1, value));
            } else {
                self.unicode = None;
                if let Ok(c) = u8::try_from(value) {
                    self.text_byte(c, out)?;
                }
            }
            return Ok(());
        }
        if self.escape {
            self.escape = false;
            return match b {
                b'u' => {
                    self.unicode = Some((4, 0));
                    Ok(())
                }
                b'/' | b'\\' | b'"' => self.text_byte(b, out),
                // \n, \t …: whitespace, which base64 skips and keys never contain.
                _ => Ok(()),
            };
        }
        match b {
            b'\\' => self.escape = true,
            b'"' => {
                self.in_string = false;
                self.reading_key = false;
                self.capturing = false;
            }
            _ => self.text_byte(b, out)?,
        }
        Ok(())
    }

    fn text_byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if self.capturing {
            self.b64.push(b, out)
        } else {
            if self.reading_key && self.key.len() < 64 {
                self.key.push(b);
            }
            Ok(())
        }
    }

    /// Whether a `data` value was seen (call at the end).
    pub fn found_data(&self) -> bool {
        self.found && !self.capturing
    }
}

/// Streams `resp` (Gmail's attachment JSON) as the decoded bytes, failing past `max_bytes`.
pub fn gmail_data_stream(resp: reqwest::Response, max_bytes: u64) -> AttachmentStream {
    struct St {
        body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
        decoder: JsonDataDecoder,
        total: u64,
        done: bool,
    }
    let st = St {
        body: resp.bytes_stream().boxed(),
        decoder: JsonDataDecoder::new(),
        total: 0,
        done: false,
    };
    let body = stream::unfold(st, move |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => match st.decoder.feed(&chunk) {
                    Ok(bytes) if bytes.is_empty() => continue,
                    Ok(bytes) => {
                        st.total += bytes.len() as u64;
                        if st.total > max_bytes {
                            st.done = true;
                            return Some((Err(too_large(max_bytes)), st));
                        }
                        return Some((Ok(Bytes::from(bytes)), st));
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                },
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(transport_error(e)), st));
                }
                None => {
                    st.done = true;
                    if !st.decoder.found_data() {
                        return Some((
                            Err(ProviderError::Permanent(
                                "Gmail's attachment answer had no data".into(),
                            )),
                            st,
                        ));
                    }
                    return None;
                }
            }
        }
    })
    .boxed();
    AttachmentStream { body }
}

/// Streams `resp` as it is (Graph `$value`), failing past `max_bytes`.
pub fn raw_stream(resp: reqwest::Response, max_bytes: u64) -> AttachmentStream {
    let mut total = 0u64;
    let mut failed = false;
    let body = resp
        .bytes_stream()
        .map(move |chunk| -> Result<Bytes, ProviderError> {
            let chunk = chunk.map_err(transport_error)?;
            total += chunk.len() as u64;
            if total > max_bytes {
                return Err(too_large(max_bytes));
            }
            Ok(chunk)
        })
        .take_while(move |r| {
            let go = !failed;
            failed |= r.is_err();
            std::future::ready(go)
        })
        .boxed();
    AttachmentStream { body }
}

/// Bytes already in hand (a small Gmail part whose data came inline).
pub fn in_memory(bytes: Vec<u8>) -> AttachmentStream {
    AttachmentStream {
        body: stream::once(std::future::ready(Ok(Bytes::from(bytes)))).boxed(),
    }
}

fn too_large(max: u64) -> ProviderError {
    ProviderError::Permanent(format!("the attachment is larger than {max} bytes"))
}

// ---- Graph ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphAttachment {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GraphAttachmentList {
    #[serde(default)]
    pub value: Vec<GraphAttachment>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

impl GraphAttachment {
    pub fn candidate(&self) -> Candidate {
        Candidate {
            filename: self.name.clone().unwrap_or_default(),
            content_type: self
                .content_type
                .clone()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            content_id: self.content_id.clone(),
        }
    }
}

/// Decodes a whole base64url string (small inline Gmail parts).
pub fn decode_all(data: &str) -> Result<Vec<u8>, ProviderError> {
    let mut d = Base64Decoder::default();
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for b in data.bytes() {
        d.push(b, &mut out)?;
    }
    Ok(out)
}

/// The Gmail payload of a `messages.get?format=full` answer.
pub fn gmail_payload(message: &Value) -> Result<GmailPart, ProviderError> {
    serde_json::from_value(message.get("payload").cloned().unwrap_or(Value::Null))
        .map_err(|e| ProviderError::Permanent(format!("unexpected Gmail message payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    fn decode_in_chunks(json: &[u8], size: usize) -> Result<(Vec<u8>, bool), ProviderError> {
        let mut d = JsonDataDecoder::new();
        let mut out = Vec::new();
        for chunk in json.chunks(size) {
            out.extend(d.feed(chunk)?);
        }
        Ok((out, d.found_data()))
    }

    #[test]
    fn gmail_attachment_json_decodes_in_any_chunking() {
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
        let data = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
        for text in [
            serde_json::to_vec(&json!({"attachmentId": "A1", "size": bytes.len(), "data": data}))
                .expect("json"),
            format!(r#"{{"attachmentId": "A\"data\":\"x", "size": 5000, "data": "{data}"}}"#)
                .into_bytes(),
            format!(
                r#"{{ "meta": {{"data": "Zm9v"}}, "list": ["data", {{"data": 1}}],
                "data" : "{data}" }}"#
            )
            .into_bytes(),
        ] {
            for size in [1, 2, 3, 7, 64, 4096, text.len()] {
                let (out, found) = decode_in_chunks(&text, size).expect("decodes");
                assert!(found);
                assert_eq!(out, bytes, "chunk size {size}");
            }
        }
        // Escaped padding and slashes, standard alphabet, no padding at all.
        let (out, _) = decode_in_chunks(br#"{"data":"Zm9vYg\u003d\u003d"}"#, 3).expect("ok");
        assert_eq!(out, b"foob");
        let (out, _) = decode_in_chunks(br#"{"data":"P\/8"}"#, 1).expect("ok");
        assert_eq!(out, [0x3f, 0xff]);
        let (out, _) = decode_in_chunks(br#"{"data":"Zm9vYmE"}"#, 2).expect("ok");
        assert_eq!(out, b"fooba");
        let (_, found) = decode_in_chunks(br#"{"size": 3}"#, 2).expect("ok");
        assert!(!found);
        assert!(decode_in_chunks(br#"{"data":"ab$c"}"#, 2).is_err());
    }

    #[test]
    fn parts_are_found_by_content_id_then_name_then_position() {
        let c = |f: &str, t: &str, cid: Option<&str>| Candidate {
            filename: f.into(),
            content_type: t.into(),
            content_id: cid.map(str::to_string),
        };
        let parts = vec![
            c("logo.png", "image/png", Some("<logo@x>")),
            c("a.pdf", "application/pdf", None),
            c("a.pdf", "application/pdf", None),
            c("", "image/gif", None),
        ];
        let r = |f: &str, t: &str, cid: Option<&str>, ordinal, index| AttachmentRef {
            filename: f.into(),
            content_type: t.into(),
            content_id: cid.map(str::to_string),
            size: 1,
            ordinal,
            index,
        };
        assert_eq!(
            find(&parts, &r("x", "image/png", Some("LOGO@x"), 0, 9)),
            Some(0)
        );
        assert_eq!(
            find(&parts, &r("a.pdf", "application/pdf", None, 1, 0)),
            Some(2)
        );
        assert_eq!(
            find(&parts, &r("a.pdf", "application/octet-stream", None, 0, 0)),
            Some(1)
        );
        assert_eq!(
            find(&parts, &r("attachment-4", "image/gif", None, 0, 3)),
            Some(3)
        );
        assert_eq!(find(&parts, &r("nope", "x/y", None, 0, 7)), None);
    }

    #[test]
    fn gmail_payload_lists_attachment_parts_in_mime_order() {
        let msg = json!({"payload": {
        "mimeType": "multipart/mixed", "filename": "", "body": {"size": 0},
        "parts": [
            {"mimeType": "multipart/related", "filename": "", "body": {"size": 0}, "parts": [
                {"mimeType": "text/html", "filename": "", "body": {"size": 10, "data": "PGI-"}},
                {"mimeType": "image/png", "filename": "", "headers": [{"name": "Content-Id", "value": "<logo@x>"}],
                 "body": {"size": 3, "data": "iVBO"}}
            ]},
            {"mimeType": "application/pdf", "filename": "r.pdf", "body": {"size": 4, "attachmentId": "ATT1"}}
        ]}});
        let payload = gmail_payload(&msg).expect("payload");
        let parts = payload.attachments();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].candidate().content_id.as_deref(), Some("<logo@x>"));
        assert_eq!(parts[1].body.attachment_id.as_deref(), Some("ATT1"));
        assert_eq!(decode_all("iVBO").expect("b64"), vec![0x89, 0x50, 0x4e]);
    }
}
