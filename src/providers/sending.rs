//! What the adapters need to send a message and mirror a draft, independent of the provider.
//!
//! A send is two steps so that it can never go out twice: [`MailProvider::prepare_send`] does
//! whatever may be repeated (Graph builds its draft there), then
//! [`MailProvider::commit_send`] makes the single call that sends, once. When that call fails
//! in a way that leaves open whether the provider took the message (a timeout, a 5xx after the
//! body went out), the caller looks the message up by its Message-ID
//! ([`MailProvider::find_sent`]) before it tries again.
//!
//! [`MailProvider::prepare_send`]: super::MailProvider::prepare_send
//! [`MailProvider::commit_send`]: super::MailProvider::commit_send
//! [`MailProvider::find_sent`]: super::MailProvider::find_sent

use super::MessageState;
use crate::send::compose::Mode;
use crate::send::mime::OutgoingMessage;

/// Gmail's limit for `messages.send` and drafts (35 MB), used unless an adapter says otherwise.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 35 << 20;

/// A reply or forward, in the provider's terms.
#[derive(Debug, Clone)]
pub struct ReplyTo<'a> {
    pub mode: Mode,
    /// The source message's provider id.
    pub provider_message_id: &'a str,
    /// The source's provider thread id (Gmail `threadId`, Graph `conversationId`).
    pub thread_id: &'a str,
}

/// A message ready to go.
#[derive(Debug, Clone)]
pub struct OutgoingSend<'a> {
    /// The message itself (Graph's JSON forms read recipients, body and files from it).
    pub message: &'a OutgoingMessage,
    /// `message.build(true)`: the bytes for Gmail `raw` and Graph's MIME send (with Bcc, which
    /// both providers take as delivery addresses and strip).
    pub raw: &'a [u8],
    pub reply: Option<ReplyTo<'a>>,
}

/// What [`prepare_send`](super::MailProvider::prepare_send) set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedSend {
    /// The Message-ID (without angle brackets) the sent message will carry, when known: the
    /// ambiguity check looks for it.
    pub message_id: Option<String>,
    /// The provider's handle for the commit (Graph: the draft's id).
    pub handle: Option<String>,
    /// The thread the message joins, when known before sending.
    pub thread_id: Option<String>,
}

/// A sent message as the provider knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentMessage {
    /// Unknown when the provider does not answer with it (Graph `sendMail` answers 202 only).
    pub provider_message_id: Option<String>,
    pub thread_id: Option<String>,
    /// The sent copy's state when the provider told it with the answer (Gmail), so the copy can
    /// be stored at once under the id sync will see.
    pub state: Option<MessageState>,
}

/// A draft as the provider should hold it.
#[derive(Debug, Clone)]
pub struct DraftContent<'a> {
    pub message: &'a OutgoingMessage,
    /// `message.build(true)`: a draft keeps its Bcc.
    pub raw: &'a [u8],
    /// Gmail: the thread a reply draft belongs to.
    pub thread_id: Option<&'a str>,
}

/// An address the mailbox may send as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAs {
    pub address: String,
    pub name: String,
    pub is_default: bool,
}

/// A `multipart/related` body of JSON metadata and one `message/rfc822` part, as Google's
/// multipart upload protocol takes it. Returns the body and its Content-Type.
pub fn related_upload(metadata: &serde_json::Value, raw: &[u8]) -> (Vec<u8>, String) {
    // A boundary the message does not contain (random, checked).
    let mut boundary = format!("em_upload_{}", crate::crypto::random_token(24));
    while contains(raw, boundary.as_bytes()) {
        boundary = format!("em_upload_{}", crate::crypto::random_token(24));
    }
    let mut body = Vec::with_capacity(raw.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(raw);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/related; boundary={boundary}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Quotes a value for an OData string literal (`'` doubled).
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_upload_frames_the_message_unchanged() {
        let raw = b"From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n";
        let (body, ct) = related_upload(&serde_json::json!({"threadId": "t1"}), raw);
        let boundary = ct
            .strip_prefix("multipart/related; boundary=")
            .expect("boundary");
        let text = String::from_utf8(body).expect("utf8");
        assert!(text.starts_with(&format!("--{boundary}\r\nContent-Type: application/json")));
        assert!(text.contains("{\"threadId\":\"t1\"}"));
        let start = text.find("message/rfc822\r\n\r\n").expect("part") + 18;
        let end = text.rfind(&format!("\r\n--{boundary}--")).expect("end");
        assert_eq!(&text.as_bytes()[start..end], raw);
    }

    #[test]
    fn odata_strings_double_quotes() {
        assert_eq!(odata_string("<a'b@x>"), "'<a''b@x>'");
    }
}
