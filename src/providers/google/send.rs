//! Gmail sending, drafts and send-as addresses.
//!
//! - `users.messages.send` with `raw` (base64url MIME) and `threadId`; above [`SIMPLE_LIMIT`]
//!   the upload endpoint `/upload/gmail/v1/users/me/messages/send`, `uploadType=media` (the
//!   bytes as `message/rfc822`) or `uploadType=multipart` when a `threadId` must go along;
//!   up to 35 MB.
//! - `users.drafts.create` / `update` (`PUT`) / `delete`, the same way.
//! - The ambiguity check: `messages.list?q=rfc822msgid:<id>&labelIds=SENT`.
//! - `users.settings.sendAs.list`: the primary address and verified aliases only.

use base64::Engine;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{classify, gmail_state, path_segment, Google};
use crate::config::join_url;
use crate::crypto::SecretString;
use crate::providers::http::RequestBody;
use crate::providers::sending::related_upload;
use crate::providers::{
    DraftContent, OutgoingSend, PreparedSend, ProviderError, SendAs, SentMessage,
};

/// Messages up to this size go as `raw` in a JSON body; larger ones through the upload
/// endpoint (Google advises simple transfers for 5 MB or less).
pub const SIMPLE_LIMIT: usize = 5 << 20;
/// `messages.send` and drafts: "maxSize": "36700160" in the discovery document.
pub const MAX_MESSAGE_BYTES: u64 = 36_700_160;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    id: String,
    thread_id: Option<String>,
    #[serde(default)]
    label_ids: Vec<String>,
}

impl Sent {
    fn into_sent(self) -> SentMessage {
        let state = gmail_state(&self.id, self.thread_id.clone(), &self.label_ids, None);
        SentMessage {
            provider_message_id: Some(self.id),
            thread_id: self.thread_id,
            state: Some(state),
        }
    }
}

#[derive(Debug, Deserialize)]
struct DraftAnswer {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendAsEntry {
    send_as_email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    is_primary: bool,
    #[serde(default)]
    is_default: bool,
    #[serde(default)]
    verification_status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendAsList {
    #[serde(default)]
    send_as: Vec<SendAsEntry>,
}

#[derive(Debug, Deserialize)]
struct Listed {
    #[serde(default)]
    messages: Vec<ListedMessage>,
}

#[derive(Debug, Deserialize)]
struct ListedMessage {
    id: String,
}

/// The JSON form of a message: `{"raw", "threadId"?}`.
fn message_json(raw: &[u8], thread_id: Option<&str>) -> Value {
    let mut m = json!({ "raw": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw) });
    if let Some(t) = thread_id.filter(|t| !t.is_empty()) {
        m["threadId"] = json!(t);
    }
    m
}

impl Google {
    fn upload(&self, path: &str, upload_type: &str) -> String {
        format!(
            "{}?uploadType={upload_type}",
            join_url(
                &self.settings.gmail_api_base,
                &format!("/upload/gmail/v1/users/me/{path}"),
            )
        )
    }

    /// POST/PUT of a message resource (`messages/send`, `drafts`, `drafts/{id}`): JSON with
    /// `raw` when small, else the upload endpoint. `wrap` puts the message under `message` (a
    /// Draft resource); `id` goes beside it for `drafts.update`. `retry: false` makes the call
    /// exactly once.
    #[allow(clippy::too_many_arguments)]
    async fn put_message(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        raw: &[u8],
        thread_id: Option<&str>,
        wrap: bool,
        id: Option<&str>,
        retry: bool,
    ) -> Result<bytes::Bytes, ProviderError> {
        let thread_id = thread_id.filter(|t| !t.is_empty());
        let wrap_meta = |m: Value| {
            let mut v = if wrap { json!({ "message": m }) } else { m };
            if let Some(id) = id {
                v["id"] = json!(id);
            }
            v
        };
        if raw.len() <= SIMPLE_LIMIT {
            let json_body = wrap_meta(message_json(raw, thread_id));
            let (_, _, answer) = self
                .http
                .request(
                    method,
                    &self.gmail(path),
                    Some(token),
                    RequestBody::Json(&json_body),
                    &[],
                    classify,
                    retry,
                )
                .await?;
            return Ok(answer);
        }
        let (url, body, content_type) = match thread_id {
            // The thread must go along: multipart/related of JSON metadata and the message.
            Some(t) => {
                let (b, ct) = related_upload(&wrap_meta(json!({ "threadId": t })), raw);
                (self.upload(path, "multipart"), b, ct)
            }
            None => (
                self.upload(path, "media"),
                raw.to_vec(),
                "message/rfc822".to_string(),
            ),
        };
        let (_, _, answer) = self
            .http
            .request(
                method,
                &url,
                Some(token),
                RequestBody::Bytes {
                    content_type: &content_type,
                    bytes: body.into(),
                },
                &[],
                classify,
                retry,
            )
            .await?;
        Ok(answer)
    }

    pub(super) async fn commit_send_impl(
        &self,
        token: &SecretString,
        send: &OutgoingSend<'_>,
        prepared: &PreparedSend,
    ) -> Result<SentMessage, ProviderError> {
        let thread = prepared
            .thread_id
            .as_deref()
            .or(send.reply.as_ref().map(|r| r.thread_id));
        let answer = self
            .put_message(
                token,
                Method::POST,
                "messages/send",
                send.raw,
                thread,
                false,
                None,
                false,
            )
            .await?;
        let sent: Sent = serde_json::from_slice(&answer).map_err(|e| {
            ProviderError::Permanent(format!("unexpected messages.send answer: {e}"))
        })?;
        Ok(sent.into_sent())
    }

    pub(super) async fn find_sent_impl(
        &self,
        token: &SecretString,
        message_id: &str,
    ) -> Result<Option<SentMessage>, ProviderError> {
        let mut url = url::Url::parse(&self.gmail("messages"))
            .map_err(|e| ProviderError::Permanent(format!("bad Gmail URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("q", &format!("rfc822msgid:{message_id}"))
            .append_pair("labelIds", "SENT")
            .append_pair("maxResults", "5");
        let listed: Listed = self.http.get_json(url.as_str(), token, classify).await?;
        let Some(first) = listed.messages.into_iter().next() else {
            return Ok(None);
        };
        let url = format!(
            "{}?format=minimal",
            self.gmail(&format!("messages/{}", path_segment(&first.id)))
        );
        match self.http.get_json::<Sent>(&url, token, classify).await {
            Ok(m) => Ok(Some(m.into_sent())),
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn save_draft_impl(
        &self,
        token: &SecretString,
        existing: Option<&str>,
        draft: &DraftContent<'_>,
    ) -> Result<String, ProviderError> {
        if let Some(id) = existing {
            let path = format!("drafts/{}", path_segment(id));
            match self
                .put_message(
                    token,
                    Method::PUT,
                    &path,
                    draft.raw,
                    draft.thread_id,
                    true,
                    Some(id),
                    true,
                )
                .await
            {
                Ok(answer) => return draft_id(&answer),
                // Deleted at the provider (sent or discarded in Gmail): make a new one.
                Err(ProviderError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        // A create is not repeated: a retry after an answer that got lost would leave two.
        let answer = self
            .put_message(
                token,
                Method::POST,
                "drafts",
                draft.raw,
                draft.thread_id,
                true,
                None,
                false,
            )
            .await?;
        draft_id(&answer)
    }

    pub(super) async fn delete_draft_impl(
        &self,
        token: &SecretString,
        id: &str,
    ) -> Result<(), ProviderError> {
        match self
            .http
            .send(
                Method::DELETE,
                &self.gmail(&format!("drafts/{}", path_segment(id))),
                token,
                None,
                &[],
                classify,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn send_as_impl(
        &self,
        token: &SecretString,
        primary: &str,
    ) -> Result<Vec<SendAs>, ProviderError> {
        let list: SendAsList = self
            .http
            .get_json(&self.gmail("settings/sendAs"), token, classify)
            .await?;
        let mut out: Vec<SendAs> = list
            .send_as
            .into_iter()
            .filter(|a| a.is_primary || a.verification_status.as_deref() == Some("accepted"))
            .map(|a| SendAs {
                address: a.send_as_email,
                name: a.display_name,
                is_default: a.is_default,
            })
            .collect();
        if !out.iter().any(|a| a.address.eq_ignore_ascii_case(primary)) {
            out.insert(
                0,
                SendAs {
                    address: primary.to_string(),
                    name: String::new(),
                    is_default: !out.iter().any(|a| a.is_default),
                },
            );
        }
        Ok(out)
    }
}

fn draft_id(answer: &[u8]) -> Result<String, ProviderError> {
    serde_json::from_slice::<DraftAnswer>(answer)
        .map(|d| d.id)
        .map_err(|e| ProviderError::Permanent(format!("unexpected drafts answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_carries_raw_and_the_thread() {
        let m = message_json(b"abc?>", Some("t1"));
        assert_eq!(m["raw"], "YWJjPz4");
        assert_eq!(m["threadId"], "t1");
        assert!(message_json(b"x", Some("")).get("threadId").is_none());
    }
}
