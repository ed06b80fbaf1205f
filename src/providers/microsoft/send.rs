//! Graph sending, drafts and the send-as address.
//!
//! - A new message whose MIME fits Graph's 4 MB request limit as base64 goes whole:
//!   `POST /me/sendMail` with `Content-Type: text/plain` and the base64 MIME, so Exchange sends
//!   our exact bytes (our Message-ID, encodings, Bcc taken as delivery addresses and stripped).
//! - A larger one becomes a draft (`POST /me/messages` as JSON), gets its files (under 3 MB a
//!   `POST …/attachments` with `contentBytes`, else `attachments/createUploadSession` and
//!   sequential `PUT`s of at most 4 MB to the pre-authenticated `uploadUrl`, without a bearer),
//!   then `POST /me/messages/{id}/send`.
//! - A reply or forward starts from `createReply` / `createReplyAll` / `createForward`, so
//!   Exchange threads it natively (In-Reply-To, References, the conversation) and a forward
//!   keeps the original's attachments; the draft is then PATCHed with our body, subject and
//!   recipients, gets our files, and is sent.
//! - `sendMail` and `send` answer 202 without an id; the sent copy is looked up in Sent Items by
//!   its `internetMessageId` (also the ambiguity check).
//! - Drafts mirror subject, body and recipients (`POST /me/messages`, `PATCH`, `DELETE`);
//!   files stay with the local draft until it is sent.

use base64::Engine;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{classify, segment, Microsoft, GRAPH_PREFER};
use crate::crypto::SecretString;
use crate::providers::http::RequestBody;
use crate::providers::sending::odata_string;
use crate::providers::{
    DraftContent, OutgoingSend, PreparedSend, ProviderError, SendAs, SentMessage,
};
use crate::send::address::Mailbox;
use crate::send::compose::Mode;
use crate::send::mime::OutgoingMessage;

/// MIME up to this size goes whole through `sendMail` (its base64 stays under Graph's 4 MB
/// request limit).
pub const MIME_SEND_LIMIT: usize = 3 << 20;
/// Files under this go in one `POST …/attachments`; larger ones through an upload session.
pub const SMALL_ATTACHMENT: usize = 3_000_000;
/// Bytes per upload `PUT`: under 4 MB and a multiple of 320 KiB, as Graph asks.
pub const UPLOAD_CHUNK: usize = 320 * 1024 * 12;
/// Graph takes attachments up to 150 MB (a tenant may allow less; Exchange then refuses).
pub const MAX_MESSAGE_BYTES: u64 = 150_000_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphMessage {
    id: String,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    internet_message_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GraphList {
    #[serde(default)]
    value: Vec<GraphMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadSession {
    upload_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

fn recipients(list: &[Mailbox]) -> Value {
    Value::Array(
        list.iter()
            .map(|m| {
                let mut a = json!({ "address": m.address.as_str() });
                if let Some(n) = &m.name {
                    a["name"] = json!(n);
                }
                json!({ "emailAddress": a })
            })
            .collect(),
    )
}

/// The JSON properties of a message Graph takes on create and PATCH.
pub fn message_fields(m: &OutgoingMessage) -> Value {
    let body = match &m.html {
        Some(h) => json!({ "contentType": "html", "content": h }),
        None => json!({ "contentType": "text", "content": m.text_part() }),
    };
    json!({
        "subject": m.subject,
        "body": body,
        "toRecipients": recipients(&m.to),
        "ccRecipients": recipients(&m.cc),
        "bccRecipients": recipients(&m.bcc),
        "replyTo": recipients(&m.reply_to),
    })
}

/// One file of the message, as Graph attaches it.
struct File<'a> {
    name: &'a str,
    content_type: &'a str,
    bytes: &'a [u8],
    content_id: Option<&'a str>,
}

fn files(m: &OutgoingMessage) -> Vec<File<'_>> {
    let mut out: Vec<File> = m
        .attachments
        .iter()
        .map(|a| File {
            name: &a.filename,
            content_type: &a.content_type,
            bytes: &a.bytes,
            content_id: None,
        })
        .collect();
    out.extend(m.inline_images.iter().map(|i| File {
        name: i.filename.as_deref().unwrap_or(&i.content_id),
        content_type: &i.content_type,
        bytes: &i.bytes,
        content_id: Some(&i.content_id),
    }));
    out
}

fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|e| ProviderError::Permanent(format!("unexpected Graph {what} answer: {e}")))
}

impl Microsoft {
    async fn graph_call(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        body: RequestBody<'_>,
        retry: bool,
    ) -> Result<bytes::Bytes, ProviderError> {
        let (_, _, answer) = self
            .http
            .request(
                method,
                &self.graph(path),
                Some(token),
                body,
                &GRAPH_PREFER,
                classify,
                retry,
            )
            .await?;
        Ok(answer)
    }

    /// Adds the message's files to draft `id`.
    async fn attach_files(
        &self,
        token: &SecretString,
        id: &str,
        m: &OutgoingMessage,
    ) -> Result<(), ProviderError> {
        for f in files(m) {
            let mut item = json!({
                "name": f.name,
                "contentType": f.content_type,
                "isInline": f.content_id.is_some(),
            });
            if let Some(cid) = f.content_id {
                item["contentId"] = json!(cid);
            }
            if f.bytes.len() < SMALL_ATTACHMENT {
                item["@odata.type"] = json!("#microsoft.graph.fileAttachment");
                item["contentBytes"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(f.bytes));
                self.graph_call(
                    token,
                    Method::POST,
                    &format!("/me/messages/{}/attachments", segment(id)),
                    RequestBody::Json(&item),
                    false,
                )
                .await?;
                continue;
            }
            item["attachmentType"] = json!("file");
            item["size"] = json!(f.bytes.len());
            let answer = self
                .graph_call(
                    token,
                    Method::POST,
                    &format!(
                        "/me/messages/{}/attachments/createUploadSession",
                        segment(id)
                    ),
                    RequestBody::Json(&json!({ "AttachmentItem": item })),
                    false,
                )
                .await?;
            let session: UploadSession = parse("createUploadSession", &answer)?;
            let total = f.bytes.len();
            for (i, chunk) in f.bytes.chunks(UPLOAD_CHUNK).enumerate() {
                let start = i * UPLOAD_CHUNK;
                let range = format!("bytes {start}-{}/{total}", start + chunk.len() - 1);
                // Pre-authenticated: a bearer here would be refused.
                self.http
                    .request(
                        Method::PUT,
                        &session.upload_url,
                        None,
                        RequestBody::Bytes {
                            content_type: "application/octet-stream",
                            bytes: bytes::Bytes::copy_from_slice(chunk),
                        },
                        &[("Content-Range", range.as_str())],
                        classify,
                        false,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The Message-ID and conversation of a draft, read again when its answer lacked them.
    async fn draft_ids(
        &self,
        token: &SecretString,
        draft: GraphMessage,
    ) -> Result<(String, Option<String>, Option<String>), ProviderError> {
        if draft.internet_message_id.is_some() {
            return Ok((
                draft.id,
                draft.internet_message_id.map(|i| bare_id(&i)),
                draft.conversation_id,
            ));
        }
        let answer = self
            .graph_call(
                token,
                Method::GET,
                &format!(
                    "/me/messages/{}?$select=internetMessageId,conversationId",
                    segment(&draft.id)
                ),
                RequestBody::Empty,
                true,
            )
            .await?;
        let again: GraphMessage = parse("message", &answer)?;
        Ok((
            draft.id,
            again.internet_message_id.map(|i| bare_id(&i)),
            again.conversation_id.or(draft.conversation_id),
        ))
    }

    pub(super) async fn prepare_send_impl(
        &self,
        token: &SecretString,
        send: &OutgoingSend<'_>,
    ) -> Result<PreparedSend, ProviderError> {
        let fields = message_fields(send.message);
        let draft: GraphMessage = match &send.reply {
            None if send.raw.len() <= MIME_SEND_LIMIT => {
                return Ok(PreparedSend {
                    message_id: Some(send.message.message_id.clone()),
                    handle: None,
                    thread_id: None,
                });
            }
            None => {
                let answer = self
                    .graph_call(
                        token,
                        Method::POST,
                        "/me/messages",
                        RequestBody::Json(&fields),
                        false,
                    )
                    .await?;
                parse("message", &answer)?
            }
            Some(r) => {
                let action = match r.mode {
                    Mode::Reply => "createReply",
                    Mode::ReplyAll => "createReplyAll",
                    Mode::Forward => "createForward",
                };
                let answer = self
                    .graph_call(
                        token,
                        Method::POST,
                        &format!("/me/messages/{}/{action}", segment(r.provider_message_id)),
                        RequestBody::Json(&json!({})),
                        false,
                    )
                    .await?;
                parse("message", &answer)?
            }
        };
        let id = draft.id.clone();
        let result = async {
            if send.reply.is_some() {
                self.graph_call(
                    token,
                    Method::PATCH,
                    &format!("/me/messages/{}", segment(&id)),
                    RequestBody::Json(&fields),
                    true,
                )
                .await?;
            }
            self.attach_files(token, &id, send.message).await?;
            self.draft_ids(token, draft).await
        }
        .await;
        match result {
            Ok((handle, message_id, thread_id)) => Ok(PreparedSend {
                message_id,
                handle: Some(handle),
                thread_id: thread_id
                    .or_else(|| send.reply.as_ref().map(|r| r.thread_id.to_string())),
            }),
            Err(e) => {
                // Leave no half-made draft behind.
                let _ = self.delete_message(token, &id).await;
                Err(e)
            }
        }
    }

    pub(super) async fn commit_send_impl(
        &self,
        token: &SecretString,
        send: &OutgoingSend<'_>,
        prepared: &PreparedSend,
    ) -> Result<SentMessage, ProviderError> {
        match &prepared.handle {
            Some(id) => {
                self.graph_call(
                    token,
                    Method::POST,
                    &format!("/me/messages/{}/send", segment(id)),
                    RequestBody::Empty,
                    false,
                )
                .await?;
            }
            None => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(send.raw);
                self.graph_call(
                    token,
                    Method::POST,
                    "/me/sendMail",
                    RequestBody::Bytes {
                        content_type: "text/plain",
                        bytes: b64.into_bytes().into(),
                    },
                    false,
                )
                .await?;
            }
        }
        Ok(SentMessage {
            provider_message_id: None,
            thread_id: prepared.thread_id.clone(),
            state: None,
        })
    }

    async fn delete_message(&self, token: &SecretString, id: &str) -> Result<(), ProviderError> {
        match self
            .graph_call(
                token,
                Method::DELETE,
                &format!("/me/messages/{}", segment(id)),
                RequestBody::Empty,
                true,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn abandon_send_impl(
        &self,
        token: &SecretString,
        prepared: &PreparedSend,
    ) -> Result<(), ProviderError> {
        match &prepared.handle {
            Some(id) => self.delete_message(token, id).await,
            None => Ok(()),
        }
    }

    pub(super) async fn find_sent_impl(
        &self,
        token: &SecretString,
        message_id: &str,
    ) -> Result<Option<SentMessage>, ProviderError> {
        let mut url = url::Url::parse(&self.graph("/me/mailFolders/sentitems/messages"))
            .map_err(|e| ProviderError::Permanent(format!("bad Graph URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!(
                    "internetMessageId eq {}",
                    odata_string(&format!("<{message_id}>"))
                ),
            )
            .append_pair("$select", "id,conversationId,internetMessageId");
        let list: GraphList = self
            .http
            .send_json(
                Method::GET,
                url.as_str(),
                token,
                None,
                &GRAPH_PREFER,
                classify,
            )
            .await?;
        Ok(list.value.into_iter().next().map(|m| SentMessage {
            provider_message_id: Some(m.id),
            thread_id: m.conversation_id,
            state: None,
        }))
    }

    pub(super) async fn save_draft_impl(
        &self,
        token: &SecretString,
        existing: Option<&str>,
        draft: &DraftContent<'_>,
    ) -> Result<String, ProviderError> {
        let fields = message_fields(draft.message);
        if let Some(id) = existing {
            match self
                .graph_call(
                    token,
                    Method::PATCH,
                    &format!("/me/messages/{}", segment(id)),
                    RequestBody::Json(&fields),
                    true,
                )
                .await
            {
                Ok(_) => return Ok(id.to_string()),
                // Sent or deleted in Outlook meanwhile: make a new one.
                Err(ProviderError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let answer = self
            .graph_call(
                token,
                Method::POST,
                "/me/messages",
                RequestBody::Json(&fields),
                false,
            )
            .await?;
        Ok(parse::<GraphMessage>("message", &answer)?.id)
    }

    pub(super) async fn delete_draft_impl(
        &self,
        token: &SecretString,
        id: &str,
    ) -> Result<(), ProviderError> {
        self.delete_message(token, id).await
    }

    /// Outlook sends as the mailbox's own address only.
    pub(super) async fn send_as_impl(
        &self,
        token: &SecretString,
        primary: &str,
    ) -> Result<Vec<SendAs>, ProviderError> {
        let me: Me = self
            .http
            .get_json(&self.graph("/me"), token, classify)
            .await?;
        let address = me
            .mail
            .filter(|m| !m.is_empty())
            .or(me.user_principal_name)
            .unwrap_or_else(|| primary.to_string());
        Ok(vec![SendAs {
            address,
            name: me.display_name.unwrap_or_default(),
            is_default: true,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::address::EmailAddress;

    #[test]
    fn fields_carry_body_and_every_recipient() {
        let mb = |n: Option<&str>, a: &str| Mailbox::new(n, EmailAddress::parse(a).expect("a"));
        let mut m = OutgoingMessage::new(mb(None, "me@x.test"));
        m.to = vec![mb(Some("Zoë"), "z@x.test")];
        m.bcc = vec![mb(None, "b@x.test")];
        m.subject = "Hi".into();
        m.text = Some("plain".into());
        let f = message_fields(&m);
        assert_eq!(
            f["body"],
            json!({"contentType": "text", "content": "plain"})
        );
        assert_eq!(
            f["toRecipients"],
            json!([{"emailAddress": {"address": "z@x.test", "name": "Zoë"}}])
        );
        assert_eq!(f["bccRecipients"][0]["emailAddress"]["address"], "b@x.test");
        assert_eq!(f["ccRecipients"], json!([]));
        assert_eq!(bare_id("<a@b>"), "a@b");
    }
}
