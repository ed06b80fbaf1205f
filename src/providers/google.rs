//! Google: OAuth 2.0 (accounts.google.com / oauth2.googleapis.com) and the Gmail API.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine;
use futures_util::{stream, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http::{classify_status, ProviderHttp, RequestBody};
use super::multipart;
use super::oauth::OAuthFlow;
use super::{attachments, AttachmentRef, AttachmentStream};
use super::{
    folder, AuthorizationRequest, Change, FetchPlan, FolderInfo, MailProvider, MailboxIdentity,
    MessageChange, MessageState, OAuthApp, ProviderError, SyncPage, TokenSet,
};
use super::{DraftContent, OutgoingSend, PreparedSend, SendAs, SentMessage};
use super::{LabelColor, ProviderLabel, TodoMirror};
use crate::config::{join_url, GoogleSettings};

mod send;
use crate::crypto::SecretString;

pub struct Google {
    settings: GoogleSettings,
    http: ProviderHttp,
    flow: OAuthFlow,
}

impl Google {
    pub fn new(settings: GoogleSettings, http: ProviderHttp) -> Self {
        let flow = OAuthFlow {
            auth_url: settings.auth_url.to_string(),
            token_url: settings.token_url.to_string(),
            credentials_in_body: false,
            scopes: settings.scopes.clone(),
            // A refresh token comes only with offline access, and only on a fresh consent.
            extra_auth_params: vec![
                ("access_type", "offline"),
                ("prompt", "consent"),
                ("include_granted_scopes", "true"),
            ],
            scopes_on_refresh: false,
        };
        Self {
            settings,
            http,
            flow,
        }
    }

    fn gmail(&self, path: &str) -> String {
        join_url(
            &self.settings.gmail_api_base,
            &format!("/gmail/v1/users/me/{path}"),
        )
    }
}

/// Gmail reports quota exhaustion as 403 with a reason; those are retryable, not refusals.
pub fn classify(status: StatusCode, body: &str) -> Option<ProviderError> {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        errors: Vec<Reason>,
    }
    #[derive(Deserialize)]
    struct Reason {
        #[serde(default)]
        reason: String,
    }
    // The sending limit: 429 (or 403) "User-rate limit exceeded. Retry after <time> (Mail
    // sending)", and the project's daily quota (dailyLimitExceeded / quotaExceeded).
    if status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS {
        if let Some(e) = quota_error(body) {
            return Some(e);
        }
    }
    if status == StatusCode::FORBIDDEN {
        let parsed: Body = serde_json::from_str(body).ok()?;
        if parsed.error.errors.iter().any(|r| {
            matches!(
                r.reason.as_str(),
                "rateLimitExceeded"
                    | "userRateLimitExceeded"
                    | "dailyLimitExceeded"
                    | "quotaExceeded"
            )
        }) {
            return Some(ProviderError::RateLimited { retry_after: None });
        }
    }
    None
}

/// Gmail's quota answers: the message names the mail sending limit, or the reason is a daily
/// quota. Plain rate limiting (`rateLimitExceeded`, `userRateLimitExceeded` without "Mail
/// sending") is not a quota: it passes in a moment.
fn quota_error(body: &str) -> Option<ProviderError> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let err = v.get("error")?;
    let message = err.get("message").and_then(|m| m.as_str()).unwrap_or("");
    let daily = err
        .get("errors")
        .and_then(|e| e.as_array())
        .is_some_and(|list| {
            list.iter().any(|r| {
                matches!(
                    r.get("reason").and_then(|x| x.as_str()),
                    Some("dailyLimitExceeded" | "quotaExceeded")
                )
            })
        });
    if daily || message.contains("(Mail sending)") {
        Some(ProviderError::QuotaExceeded(
            crate::providers::http::truncate(message, 200).to_string(),
        ))
    } else {
        None
    }
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    email_address: String,
    #[serde(default)]
    history_id: String,
}

#[async_trait]
impl MailProvider for Google {
    fn id(&self) -> &'static str {
        "google"
    }
    fn display_name(&self) -> &'static str {
        "Google"
    }

    fn authorization_url(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ProviderError> {
        self.flow.authorization_url(app, redirect_uri)
    }

    async fn exchange_code(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow
            .exchange_code(&self.http, app, redirect_uri, code, verifier)
            .await
    }

    async fn refresh(
        &self,
        app: &OAuthApp,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow.refresh(&self.http, app, refresh_token).await
    }

    async fn revoke(
        &self,
        _app: &OAuthApp,
        access_token: &SecretString,
        refresh_token: Option<&SecretString>,
    ) -> Result<bool, ProviderError> {
        // Revoking the refresh token revokes the whole grant, access tokens included.
        let token = refresh_token.unwrap_or(access_token);
        let (status, body) = self
            .http
            .post_form(
                self.settings.revoke_url.as_str(),
                &[("token", token.expose())],
            )
            .await?;
        if status.is_success()
            || (status == StatusCode::BAD_REQUEST && body.contains("invalid_token"))
        {
            return Ok(true);
        }
        Err(classify_status(status, None, &body, classify))
    }

    async fn identity(&self, tokens: &TokenSet) -> Result<MailboxIdentity, ProviderError> {
        let info: UserInfo = self
            .http
            .get_json(
                self.settings.userinfo_url.as_str(),
                &tokens.access_token,
                classify,
            )
            .await?;
        let profile: Profile = self
            .http
            .get_json(&self.gmail("profile"), &tokens.access_token, classify)
            .await?;
        let email = if profile.email_address.is_empty() {
            info.email.unwrap_or_default()
        } else {
            profile.email_address
        };
        if info.sub.is_empty() || email.is_empty() {
            return Err(ProviderError::Permanent(
                "Google did not return the account id and address".into(),
            ));
        }
        Ok(MailboxIdentity {
            provider_account_id: info.sub,
            email,
            display_name: info.name,
        })
    }

    async fn sync_page(
        &self,
        token: &SecretString,
        cursor: Option<&str>,
        since: Option<i64>,
    ) -> Result<SyncPage, ProviderError> {
        let cursor = match cursor {
            None => {
                // Changes made while the listing runs are replayed from this point afterwards.
                let profile: Profile = self
                    .http
                    .get_json(&self.gmail("profile"), token, classify)
                    .await?;
                GmailCursor::Listing {
                    start_history_id: profile.history_id,
                    page_token: None,
                    since,
                }
            }
            Some(text) => serde_json::from_str(text).map_err(|e| {
                ProviderError::Permanent(format!("unreadable Gmail sync cursor: {e}"))
            })?,
        };
        // User labels are folders here: their names are read when a listing or a run's
        // history starts, so new and renamed labels show up.
        let starting = matches!(
            &cursor,
            GmailCursor::Listing {
                page_token: None,
                ..
            } | GmailCursor::History {
                page_token: None,
                ..
            }
        );
        let history = matches!(&cursor, GmailCursor::History { .. });
        let mut page = match cursor {
            GmailCursor::Listing {
                start_history_id,
                page_token,
                since,
            } => {
                self.list_page(token, start_history_id, page_token, since)
                    .await?
            }
            GmailCursor::History {
                history_id,
                page_token,
            } => self.history_page(token, history_id, page_token).await?,
        };
        // A history page naming user labels may name one created since the run started.
        let names_user_labels = || {
            page.changes.iter().any(|c| match c {
                Change::Present { state, .. } => state.labels.iter().any(|l| is_user_label(l)),
                Change::Removed { .. } => false,
            })
        };
        if starting || (history && names_user_labels()) {
            page.folders = self.user_labels(token).await?;
        }
        Ok(page)
    }

    async fn fetch_raw(&self, token: &SecretString, id: &str) -> Result<Vec<u8>, ProviderError> {
        Ok(self.get_raw(token, id).await?.1)
    }

    /// The messages history names as added, in batch requests like the listing's.
    async fn fetch_raw_many(
        &self,
        token: &SecretString,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, ProviderError> {
        let got = self.get_raw_batch(token, ids).await?;
        Ok(got.into_iter().map(|m| m.map(|(_, raw)| raw)).collect())
    }

    fn fetch_plan(&self) -> FetchPlan {
        FetchPlan {
            per_call: BATCH_SIZE,
            in_flight: Some(BATCH_CONCURRENCY),
        }
    }

    async fn modify(
        &self,
        token: &SecretString,
        ids: &[String],
        change: &MessageChange,
    ) -> Result<(), ProviderError> {
        if change.folder.as_deref() == Some(folder::TRASH) {
            for id in ids {
                self.trash(token, id).await?;
            }
        }
        let (add, remove) = label_delta(change)?;
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        // A message in a user label's folder stays there until that label goes too: moving to
        // the archive or to another label takes each message's other user labels off.
        let leaves_labels = change
            .folder
            .as_deref()
            .is_some_and(|f| f == folder::ARCHIVE || f.starts_with("user:"));
        if leaves_labels {
            for id in ids {
                let url = format!(
                    "{}?format=minimal",
                    self.gmail(&format!("messages/{}", path_segment(id)))
                );
                let current: GmailMessage = self.http.get_json(&url, token, classify).await?;
                let mut remove = remove.clone();
                remove.extend(
                    current
                        .label_ids
                        .into_iter()
                        .filter(|l| is_user_label(l) && !add.contains(l)),
                );
                self.http
                    .send(
                        Method::POST,
                        &self.gmail(&format!("messages/{}/modify", path_segment(id))),
                        token,
                        Some(&json!({"addLabelIds": add, "removeLabelIds": remove})),
                        &[],
                        classify,
                    )
                    .await?;
            }
            return Ok(());
        }
        // batchModify takes up to 1,000 ids per call.
        for chunk in ids.chunks(1000) {
            self.http
                .send(
                    Method::POST,
                    &self.gmail("messages/batchModify"),
                    token,
                    Some(&json!({"ids": chunk, "addLabelIds": add, "removeLabelIds": remove})),
                    &[],
                    classify,
                )
                .await?;
        }
        Ok(())
    }

    /// `messages.batchModify` takes up to 1,000 ids.
    fn modify_batch_size(&self) -> usize {
        1000
    }

    fn todo_mirror(&self) -> TodoMirror {
        if self.settings.todo_as_star {
            TodoMirror::Star
        } else {
            TodoMirror::Off
        }
    }

    fn labels_are_ids(&self) -> bool {
        true
    }

    fn is_user_label(&self, label: &str) -> bool {
        is_user_label(label)
    }

    async fn list_labels(&self, token: &SecretString) -> Result<Vec<ProviderLabel>, ProviderError> {
        Ok(self
            .user_labels(token)
            .await?
            .into_iter()
            .map(|f| ProviderLabel {
                id: f.provider_folder_id,
                name: f.name,
            })
            .collect())
    }

    /// `labels.create`, shown in Gmail's label list and message list like a label made there.
    async fn create_label(
        &self,
        token: &SecretString,
        name: &str,
        color: Option<&LabelColor>,
    ) -> Result<ProviderLabel, ProviderError> {
        let mut body = json!({
            "name": name,
            "labelListVisibility": "labelShow",
            "messageListVisibility": "show",
        });
        if let Some(c) = color {
            body["color"] = gmail_color(c);
        }
        let label: Label = self
            .http
            .send_json(
                Method::POST,
                &self.gmail("labels"),
                token,
                Some(&body),
                &[],
                classify,
            )
            .await?;
        Ok(ProviderLabel {
            id: label.id,
            name: label.name,
        })
    }

    /// `labels.patch`: the name and/or the colour.
    async fn update_label(
        &self,
        token: &SecretString,
        label: &ProviderLabel,
        name: Option<&str>,
        color: Option<Option<&LabelColor>>,
    ) -> Result<ProviderLabel, ProviderError> {
        let mut body = serde_json::Map::new();
        if let Some(n) = name {
            body.insert("name".into(), json!(n));
        }
        match color {
            Some(Some(c)) => {
                body.insert("color".into(), gmail_color(c));
            }
            // Gmail has no "no colour" value in patch; the label keeps the neutral grey.
            Some(None) => {
                body.insert(
                    "color".into(),
                    json!({"backgroundColor": "#efefef", "textColor": "#666666"}),
                );
            }
            None => {}
        }
        let updated: Label = self
            .http
            .send_json(
                Method::PATCH,
                &self.gmail(&format!("labels/{}", path_segment(&label.id))),
                token,
                Some(&serde_json::Value::Object(body)),
                &[],
                classify,
            )
            .await?;
        Ok(ProviderLabel {
            id: updated.id,
            name: updated.name,
        })
    }

    /// `labels.delete` also takes the label off every message.
    async fn delete_label(
        &self,
        token: &SecretString,
        label: &ProviderLabel,
    ) -> Result<(), ProviderError> {
        match self
            .http
            .send(
                Method::DELETE,
                &self.gmail(&format!("labels/{}", path_segment(&label.id))),
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

    async fn relabel(
        &self,
        token: &SecretString,
        ids: &[String],
        add: &[ProviderLabel],
        remove: &[ProviderLabel],
    ) -> Result<(), ProviderError> {
        let add: Vec<&str> = add.iter().map(|l| l.id.as_str()).collect();
        let remove: Vec<&str> = remove.iter().map(|l| l.id.as_str()).collect();
        if ids.is_empty() || (add.is_empty() && remove.is_empty()) {
            return Ok(());
        }
        for chunk in ids.chunks(1000) {
            let (url, body) = match chunk {
                [one] => (
                    self.gmail(&format!("messages/{}/modify", path_segment(one))),
                    json!({"addLabelIds": add, "removeLabelIds": remove}),
                ),
                many => (
                    self.gmail("messages/batchModify"),
                    json!({"ids": many, "addLabelIds": add, "removeLabelIds": remove}),
                ),
            };
            self.http
                .send(Method::POST, &url, token, Some(&body), &[], classify)
                .await?;
        }
        Ok(())
    }

    /// `messages.get?format=full` names the parts; a part stored apart is fetched with
    /// `messages.attachments.get`, whose base64url `data` is decoded as it streams in.
    async fn attachment_stream(
        &self,
        token: &SecretString,
        id: &str,
        wanted: &AttachmentRef,
        max_bytes: u64,
    ) -> Result<AttachmentStream, ProviderError> {
        let message_url = self.gmail(&format!("messages/{}", path_segment(id)));
        let message: serde_json::Value = self
            .http
            .send_json(
                Method::GET,
                &format!("{message_url}?format=full"),
                token,
                None,
                &[],
                classify,
            )
            .await?;
        let payload = attachments::gmail_payload(&message)?;
        let parts = payload.attachments();
        let candidates: Vec<_> = parts.iter().map(|p| p.candidate()).collect();
        let part = attachments::find(&candidates, wanted)
            .and_then(|i| parts.get(i))
            .ok_or(ProviderError::NotFound)?;
        if let Some(aid) = &part.body.attachment_id {
            let url = format!("{message_url}/attachments/{}", path_segment(aid));
            let resp = self
                .http
                .get_stream(&url, token, &[], attachments::DOWNLOAD_TIMEOUT, classify)
                .await?;
            return Ok(attachments::gmail_data_stream(resp, max_bytes));
        }
        // Small parts come with their data in the message itself.
        let bytes = attachments::decode_all(part.body.data.as_deref().unwrap_or_default())?;
        if bytes.len() as u64 > max_bytes {
            return Err(ProviderError::Permanent(format!(
                "the attachment is larger than {max_bytes} bytes"
            )));
        }
        Ok(attachments::in_memory(bytes))
    }

    async fn trash(&self, token: &SecretString, id: &str) -> Result<(), ProviderError> {
        self.http
            .send(
                Method::POST,
                &self.gmail(&format!("messages/{}/trash", path_segment(id))),
                token,
                None,
                &[],
                classify,
            )
            .await?;
        Ok(())
    }

    fn max_message_bytes(&self) -> u64 {
        send::MAX_MESSAGE_BYTES
    }

    async fn commit_send(
        &self,
        token: &SecretString,
        message: &OutgoingSend<'_>,
        prepared: &PreparedSend,
    ) -> Result<SentMessage, ProviderError> {
        self.commit_send_impl(token, message, prepared).await
    }

    async fn find_sent(
        &self,
        token: &SecretString,
        message_id: &str,
    ) -> Result<Option<SentMessage>, ProviderError> {
        self.find_sent_impl(token, message_id).await
    }

    async fn save_draft(
        &self,
        token: &SecretString,
        existing: Option<&str>,
        draft: &DraftContent<'_>,
    ) -> Result<String, ProviderError> {
        self.save_draft_impl(token, existing, draft).await
    }

    async fn delete_draft(&self, token: &SecretString, id: &str) -> Result<(), ProviderError> {
        self.delete_draft_impl(token, id).await
    }

    async fn send_as(
        &self,
        token: &SecretString,
        primary: &str,
    ) -> Result<Vec<SendAs>, ProviderError> {
        self.send_as_impl(token, primary).await
    }
}

/// Where a Gmail sync stands, stored as JSON on the account.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum GmailCursor {
    /// Listing `messages.list` page by page, newest first.
    Listing {
        start_history_id: String,
        page_token: Option<String>,
        since: Option<i64>,
    },
    /// Following `history.list`.
    History {
        history_id: String,
        page_token: Option<String>,
    },
}

/// Messages per batch request: Gmail takes 100 and advises at most 50 (larger
/// batches are rate limited sooner). Each call in a batch still counts against the quota.
const BATCH_SIZE: usize = 50;
/// Batch requests in flight at once (this keeps memory bounded too).
const BATCH_CONCURRENCY: usize = 3;
/// `messages.list` page sizes: a small first page so the newest mail shows within a second or
/// two, then Gmail's maximum, so a large mailbox is written in fewer, larger transactions.
const FIRST_LIST_PAGE: &str = "100";
const LIST_PAGE: &str = "500";

impl Google {
    async fn list_page(
        &self,
        token: &SecretString,
        start_history_id: String,
        page_token: Option<String>,
        since: Option<i64>,
    ) -> Result<SyncPage, ProviderError> {
        let mut url = url::Url::parse(&self.gmail("messages"))
            .map_err(|e| ProviderError::Permanent(format!("bad Gmail URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            let size = if page_token.is_none() {
                FIRST_LIST_PAGE
            } else {
                LIST_PAGE
            };
            q.append_pair("maxResults", size)
                .append_pair("includeSpamTrash", "true");
            if let Some(since) = since {
                q.append_pair("q", &format!("after:{}", since.div_euclid(1000)));
            }
            if let Some(t) = &page_token {
                q.append_pair("pageToken", t);
            }
        }
        let list: MessageList = self.http.get_json(url.as_str(), token, classify).await?;
        let ids: Vec<String> = list.messages.into_iter().map(|m| m.id).collect();
        let chunks: Vec<Vec<String>> = ids.chunks(BATCH_SIZE).map(<[String]>::to_vec).collect();
        let batches: Vec<Vec<Option<RawMessage>>> = stream::iter(chunks)
            .map(|chunk| async move { self.get_raw_batch(token, &chunk).await })
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await?;
        // A message deleted since it was listed is left out: history will report it.
        let changes: Vec<Option<Change>> = batches
            .into_iter()
            .flatten()
            .map(|got| {
                got.map(|(meta, raw)| Change::Present {
                    state: meta.state(),
                    raw: Some(raw),
                })
            })
            .collect();
        let done = list.next_page_token.is_none();
        let cursor = match list.next_page_token {
            Some(next) => GmailCursor::Listing {
                start_history_id,
                page_token: Some(next),
                since,
            },
            None => GmailCursor::History {
                history_id: start_history_id,
                page_token: None,
            },
        };
        Ok(SyncPage {
            changes: changes.into_iter().flatten().collect(),
            cursor: to_json(&cursor)?,
            caught_up: false,
            full_listing_done: done,
            folders: Vec::new(),
        })
    }

    async fn history_page(
        &self,
        token: &SecretString,
        history_id: String,
        page_token: Option<String>,
    ) -> Result<SyncPage, ProviderError> {
        let mut url = url::Url::parse(&self.gmail("history"))
            .map_err(|e| ProviderError::Permanent(format!("bad Gmail URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("startHistoryId", &history_id)
                .append_pair("maxResults", "500");
            for t in [
                "messageAdded",
                "messageDeleted",
                "labelAdded",
                "labelRemoved",
            ] {
                q.append_pair("historyTypes", t);
            }
            if let Some(t) = &page_token {
                q.append_pair("pageToken", t);
            }
        }
        let page: HistoryList = match self.http.get_json(url.as_str(), token, classify).await {
            Ok(p) => p,
            // Gmail keeps history for a limited time; an old start point answers 404.
            Err(ProviderError::NotFound) => return Err(ProviderError::CursorExpired),
            Err(e) => return Err(e),
        };
        // The last record for a message wins; earlier ones are superseded.
        let mut order: Vec<String> = Vec::new();
        let mut last: HashMap<String, Change> = HashMap::new();
        let mut put = |id: String, change: Change| {
            if last.insert(id.clone(), change).is_none() {
                order.push(id);
            }
        };
        for record in page.history {
            for added in record
                .messages_added
                .into_iter()
                .chain(record.labels_added)
                .chain(record.labels_removed)
            {
                let m = added.message;
                put(
                    m.id.clone(),
                    Change::Present {
                        state: m.state(),
                        raw: None,
                    },
                );
            }
            for deleted in record.messages_deleted {
                put(
                    deleted.message.id.clone(),
                    Change::Removed {
                        provider_message_id: deleted.message.id,
                        folder: None,
                    },
                );
            }
        }
        let changes = order
            .into_iter()
            .filter_map(|id| last.remove(&id))
            .collect();
        let (cursor, caught_up) = match page.next_page_token {
            Some(next) => (
                GmailCursor::History {
                    history_id,
                    page_token: Some(next),
                },
                false,
            ),
            None => (
                GmailCursor::History {
                    history_id: page.history_id.unwrap_or(history_id),
                    page_token: None,
                },
                true,
            ),
        };
        Ok(SyncPage {
            changes,
            cursor: to_json(&cursor)?,
            caught_up,
            full_listing_done: false,
            folders: Vec::new(),
        })
    }

    fn raw_url(&self, id: &str) -> String {
        format!(
            "{}?format=raw",
            self.gmail(&format!("messages/{}", path_segment(id)))
        )
    }

    async fn get_raw(&self, token: &SecretString, id: &str) -> Result<RawMessage, ProviderError> {
        let message: GmailMessage = self
            .http
            .get_json(&self.raw_url(id), token, classify)
            .await?;
        decode_raw(message)
    }

    /// `messages.get` in `raw` format for each id, as one batch request (`POST /batch/gmail/v1`,
    /// `multipart/mixed`): one round trip instead of one per message. `None` for a message
    /// that is gone. A call the batch could not answer (a part throttled, failed, or missing,
    /// or an answer that is not a batch) is made again on its own, with the usual retries.
    async fn get_raw_batch(
        &self,
        token: &SecretString,
        ids: &[String],
    ) -> Result<Vec<Option<RawMessage>>, ProviderError> {
        let mut answers: Vec<Option<Option<RawMessage>>> =
            std::iter::repeat_with(|| None).take(ids.len()).collect();
        if ids.len() > 1 {
            let boundary = format!("batch_{}", crate::crypto::random_token(18));
            let parts: Vec<multipart::Part> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let target = url::Url::parse(&self.raw_url(id))
                        .map(|u| format!("{}?{}", u.path(), u.query().unwrap_or_default()))
                        .unwrap_or_default();
                    multipart::Part {
                        headers: vec![
                            ("Content-Type".into(), "application/http".into()),
                            ("Content-ID".into(), format!("<item{i}>")),
                        ],
                        body: format!("GET {target}\r\n").into_bytes(),
                    }
                })
                .collect();
            let content_type = format!("multipart/mixed; boundary={boundary}");
            let (_, headers, body) = self
                .http
                .request(
                    Method::POST,
                    &join_url(&self.settings.gmail_api_base, "/batch/gmail/v1"),
                    Some(token),
                    RequestBody::Bytes {
                        content_type: &content_type,
                        bytes: multipart::encode(&boundary, &parts).into(),
                    },
                    &[],
                    classify,
                    true,
                )
                .await?;
            let answered = headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(multipart::boundary)
                .and_then(|b| multipart::decode(b, &body));
            for part in answered.unwrap_or_default() {
                let Some(i) = part
                    .header("content-id")
                    .and_then(|c| c.trim_matches(['<', '>']).strip_prefix("response-item"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|&i| i < ids.len())
                else {
                    continue;
                };
                let Some((first, _, inner)) = multipart::split_http(&part.body) else {
                    continue;
                };
                answers[i] = match multipart::status_of(&first) {
                    Some(200) => serde_json::from_slice::<GmailMessage>(inner)
                        .ok()
                        .and_then(|m| decode_raw(m).ok())
                        .map(Some),
                    Some(404) => Some(None),
                    _ => None,
                };
            }
        }
        super::answer_the_rest(ids, answers, |id| self.get_raw(token, id)).await
    }
}

#[derive(Debug, Deserialize)]
struct LabelList {
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
struct Label {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
}

impl Google {
    /// The user's own labels, as folders (`user:<label id>`).
    async fn user_labels(&self, token: &SecretString) -> Result<Vec<FolderInfo>, ProviderError> {
        let list: LabelList = self
            .http
            .get_json(&self.gmail("labels"), token, classify)
            .await?;
        Ok(list
            .labels
            .into_iter()
            .filter(|l| l.kind == "user" || (l.kind.is_empty() && is_user_label(&l.id)))
            .map(|l| FolderInfo {
                folder: format!("user:{}", l.id),
                name: l.name,
                provider_folder_id: l.id,
            })
            .collect())
    }
}

fn gmail_color(c: &LabelColor) -> serde_json::Value {
    json!({"backgroundColor": c.gmail_background, "textColor": c.gmail_text})
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ProviderError> {
    serde_json::to_string(value).map_err(|e| ProviderError::Permanent(e.to_string()))
}

/// Ids come from Gmail, but they still go into a path: keep them to what Gmail uses.
fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The label changes that express `change` in Gmail.
fn label_delta(change: &MessageChange) -> Result<(Vec<String>, Vec<String>), ProviderError> {
    let mut add = Vec::new();
    let mut remove = Vec::new();
    let mut set = |on: bool, label: &str| {
        if on {
            add.push(label.to_string())
        } else {
            remove.push(label.to_string())
        }
    };
    if let Some(unread) = change.unread {
        set(unread, "UNREAD");
    }
    if let Some(starred) = change.starred.or(change.todo) {
        set(starred, "STARRED");
    }
    match change.folder.as_deref() {
        None | Some(folder::TRASH) => {}
        Some(folder::INBOX) => {
            add.push("INBOX".into());
            remove.extend(["SPAM".into(), "TRASH".into()]);
        }
        Some(folder::ARCHIVE) => remove.extend(["INBOX".into(), "SPAM".into(), "TRASH".into()]),
        Some(folder::SPAM) => {
            add.push("SPAM".into());
            remove.push("INBOX".into());
        }
        Some(other) => match other.strip_prefix("user:") {
            // A Gmail "move" to a label: label it and take it out of the inbox.
            Some(label) => {
                add.push(label.to_string());
                remove.push("INBOX".into());
            }
            None => {
                return Err(ProviderError::Permanent(format!(
                    "Gmail cannot move messages to {other}"
                )))
            }
        },
    }
    Ok((add, remove))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageList {
    #[serde(default)]
    messages: Vec<MessageRef>,
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageRef {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GmailMessage {
    id: String,
    thread_id: Option<String>,
    #[serde(default)]
    label_ids: Vec<String>,
    internal_date: Option<String>,
    raw: Option<String>,
}

/// A `raw` answer and its MIME.
type RawMessage = (GmailMessage, Vec<u8>);

/// The MIME of a `raw` answer, decoded from base64url.
fn decode_raw(mut message: GmailMessage) -> Result<RawMessage, ProviderError> {
    let raw = message.raw.take().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .map_err(|e| {
            ProviderError::Permanent(format!("Gmail raw message is not base64url: {e}"))
        })?;
    Ok((message, bytes))
}

impl GmailMessage {
    fn state(&self) -> MessageState {
        gmail_state(
            &self.id,
            self.thread_id.clone(),
            &self.label_ids,
            self.internal_date.as_deref().and_then(|d| d.parse().ok()),
        )
    }
}

/// Gmail's system label ids; every other id (`Label_N`) is the user's own label.
const SYSTEM_LABELS: [&str; 9] = [
    "INBOX",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "SENT",
    "DRAFT",
    "CHAT",
];

pub fn is_user_label(id: &str) -> bool {
    !SYSTEM_LABELS.contains(&id) && !id.starts_with("CATEGORY_")
}

/// Gmail has labels, not folders: the folder is the most telling system label, else the first
/// user label (a labelled message outside the inbox lives "in" that label), else the archive.
pub fn gmail_state(
    id: &str,
    thread_id: Option<String>,
    labels: &[String],
    received_at: Option<i64>,
) -> MessageState {
    let has = |l: &str| labels.iter().any(|x| x == l);
    let folder = if has("TRASH") {
        folder::TRASH.to_string()
    } else if has("SPAM") {
        folder::SPAM.to_string()
    } else if has("DRAFT") {
        folder::DRAFTS.to_string()
    } else if has("INBOX") {
        folder::INBOX.to_string()
    } else if has("SENT") {
        folder::SENT.to_string()
    } else if let Some(label) = labels.iter().find(|l| is_user_label(l)) {
        format!("user:{label}")
    } else {
        folder::ARCHIVE.to_string()
    };
    MessageState {
        provider_message_id: id.to_string(),
        thread_id,
        folder,
        labels: labels.to_vec(),
        unread: has("UNREAD"),
        starred: has("STARRED"),
        draft: has("DRAFT"),
        received_at,
        todo_due_at: None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryList {
    #[serde(default)]
    history: Vec<HistoryRecord>,
    next_page_token: Option<String>,
    history_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryRecord {
    #[serde(default)]
    messages_added: Vec<HistoryMessage>,
    #[serde(default)]
    messages_deleted: Vec<HistoryMessage>,
    #[serde(default)]
    labels_added: Vec<HistoryMessage>,
    #[serde(default)]
    labels_removed: Vec<HistoryMessage>,
}

#[derive(Debug, Deserialize)]
struct HistoryMessage {
    message: GmailMessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_403_is_rate_limiting_but_permission_403_is_not() {
        let quota = r#"{"error":{"code":403,"message":"x","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#;
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, quota),
            Some(ProviderError::RateLimited { .. })
        ));
        let denied = r#"{"error":{"code":403,"message":"x","errors":[{"domain":"global","reason":"insufficientPermissions"}]}}"#;
        assert!(classify(StatusCode::FORBIDDEN, denied).is_none());
    }

    #[test]
    fn folders_come_from_system_labels_then_user_labels() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = |v: &[&str]| gmail_state("1", None, &l(v), None).folder;
        assert_eq!(f(&["INBOX", "Label_3", "UNREAD"]), "inbox");
        assert_eq!(
            f(&["CATEGORY_PERSONAL", "Label_3", "Label_1"]),
            "user:Label_3"
        );
        assert_eq!(f(&["SENT", "Label_3"]), "sent");
        assert_eq!(f(&["TRASH", "INBOX"]), "trash");
        assert_eq!(f(&["IMPORTANT", "STARRED"]), "archive");
    }
}
