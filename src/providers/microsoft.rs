//! Microsoft: identity platform v2.0 (login.microsoftonline.com/{tenant}) and Microsoft Graph.

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::{stream, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::ProviderHttp;
use super::oauth::OAuthFlow;
use super::{attachments, AttachmentRef, AttachmentStream};
use super::{
    folder, AuthorizationRequest, Change, FetchPlan, FolderInfo, MailProvider, MailboxIdentity,
    MessageChange, MessageState, OAuthApp, ProviderError, SyncPage, TokenSet,
};
use super::{DraftContent, OutgoingSend, PreparedSend, SendAs, SentMessage};
use super::{LabelColor, ProviderLabel, TodoMirror};
use crate::config::{join_url, MicrosoftSettings};

mod send;
use crate::crypto::SecretString;

pub const DEFAULT_TENANT: &str = "common";

pub struct Microsoft {
    settings: MicrosoftSettings,
    http: ProviderHttp,
}

impl Microsoft {
    pub fn new(settings: MicrosoftSettings, http: ProviderHttp) -> Self {
        Self { settings, http }
    }

    /// The flow depends on the tenant the admin chose, so it is built per call.
    fn flow(&self, app: &OAuthApp) -> OAuthFlow {
        let tenant = app
            .tenant
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or(DEFAULT_TENANT);
        OAuthFlow {
            auth_url: join_url(
                &self.settings.authority,
                &format!("/{tenant}/oauth2/v2.0/authorize"),
            ),
            token_url: join_url(
                &self.settings.authority,
                &format!("/{tenant}/oauth2/v2.0/token"),
            ),
            credentials_in_body: true,
            scopes: self.settings.scopes.clone(),
            extra_auth_params: vec![("response_mode", "query"), ("prompt", "select_account")],
            scopes_on_refresh: true,
        }
    }

    fn graph(&self, path: &str) -> String {
        join_url(&self.settings.graph_api_base, path)
    }
}

/// Graph says an expired delta cursor with 410 or with `syncStateNotFound` / `resyncRequired`.
pub fn classify(status: StatusCode, body: &str) -> Option<ProviderError> {
    if (status == StatusCode::GONE || status == StatusCode::BAD_REQUEST)
        && (body.contains("syncStateNotFound")
            || body.contains("resyncRequired")
            || body.contains("SyncStateNotFound"))
    {
        return Some(ProviderError::CursorExpired);
    }
    // Exchange's sending quotas (the submission quota, a full mailbox that cannot keep the
    // sent copy): no retry helps for a while.
    if status.is_client_error()
        && (body.contains("ErrorSubmissionQuotaExceeded") || body.contains("ErrorQuotaExceeded"))
    {
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| "sending quota exceeded".into());
        return Some(ProviderError::QuotaExceeded(message));
    }
    None
}

/// Tenant ids are GUIDs or the three well-known names; anything else would end up in a URL path.
pub fn valid_tenant(t: &str) -> bool {
    matches!(t, "common" | "organizations" | "consumers")
        || (!t.is_empty()
            && t.len() <= 64
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    id: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[async_trait]
impl MailProvider for Microsoft {
    fn id(&self) -> &'static str {
        "microsoft"
    }
    fn display_name(&self) -> &'static str {
        "Microsoft"
    }
    fn uses_tenant(&self) -> bool {
        true
    }

    fn max_concurrency(&self) -> Option<usize> {
        Some(MAILBOX_CONCURRENCY)
    }

    fn authorization_url(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ProviderError> {
        self.flow(app).authorization_url(app, redirect_uri)
    }

    async fn exchange_code(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow(app)
            .exchange_code(&self.http, app, redirect_uri, code, verifier)
            .await
    }

    async fn refresh(
        &self,
        app: &OAuthApp,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow(app).refresh(&self.http, app, refresh_token).await
    }

    /// The identity platform has no token revocation endpoint for delegated tokens; forgetting
    /// them is all a client can do (the user removes the app's consent at myapps.microsoft.com).
    async fn revoke(
        &self,
        _app: &OAuthApp,
        _access: &SecretString,
        _refresh: Option<&SecretString>,
    ) -> Result<bool, ProviderError> {
        // The identity platform has no endpoint to revoke one application's refresh token
        // (revokeSignInSessions would sign the user out everywhere), so the caller only forgets it.
        Ok(false)
    }

    async fn identity(&self, tokens: &TokenSet) -> Result<MailboxIdentity, ProviderError> {
        let me: Me = self
            .http
            .get_json(&self.graph("/me"), &tokens.access_token, classify)
            .await?;
        let claim = |k: &str| {
            tokens
                .id_claims
                .as_ref()
                .and_then(|c| c.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let tid = claim("tid").ok_or_else(|| {
            ProviderError::Permanent(
                "Microsoft sent no tenant id; the openid scope must be configured".into(),
            )
        })?;
        let email = me
            .mail
            .filter(|m| !m.is_empty())
            .or(me.user_principal_name)
            .or_else(|| claim("preferred_username"))
            .unwrap_or_default();
        if me.id.is_empty() || email.is_empty() {
            return Err(ProviderError::Permanent(
                "Microsoft Graph did not return the account id and address".into(),
            ));
        }
        Ok(MailboxIdentity {
            provider_account_id: format!("{tid}:{}", me.id),
            email,
            display_name: me.display_name,
        })
    }

    async fn sync_page(
        &self,
        token: &SecretString,
        cursor: Option<&str>,
        since: Option<i64>,
    ) -> Result<SyncPage, ProviderError> {
        let mut cursor = match cursor {
            None => {
                return self.start_listing(token, since).await;
            }
            Some(text) => serde_json::from_str::<GraphCursor>(text).map_err(|e| {
                ProviderError::Permanent(format!("unreadable Graph sync cursor: {e}"))
            })?,
        };
        if cursor.rescan {
            return self.rescan_folders(token, cursor).await;
        }
        // One delta page per call: sync gathers pages into its write batches (the first page
        // with mail alone, so the newest mail shows at once).
        let step = self.delta_step(token, &mut cursor).await?;
        Ok(SyncPage {
            changes: step.changes,
            cursor: serde_json::to_string(&cursor)
                .map_err(|e| ProviderError::Permanent(e.to_string()))?,
            caught_up: step.caught_up,
            full_listing_done: step.full_listing_done,
            folders: Vec::new(),
        })
    }

    async fn fetch_raw(&self, token: &SecretString, id: &str) -> Result<Vec<u8>, ProviderError> {
        let body = self
            .http
            .send(
                Method::GET,
                &self.graph(&format!("/me/messages/{}/$value", segment(id))),
                token,
                None,
                &GRAPH_PREFER,
                classify,
            )
            .await?;
        Ok(body.to_vec())
    }

    async fn fetch_raw_many(
        &self,
        token: &SecretString,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, ProviderError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_BATCH) {
            out.extend(self.values_batch(token, chunk).await?);
        }
        Ok(out)
    }

    /// Graph runs up to 4 of a batch's requests at once, the mailbox's whole allowance: so one
    /// batch at a time.
    fn fetch_plan(&self) -> FetchPlan {
        FetchPlan {
            per_call: MAX_BATCH,
            in_flight: Some(1),
        }
    }

    async fn modify(
        &self,
        token: &SecretString,
        ids: &[String],
        change: &MessageChange,
    ) -> Result<(), ProviderError> {
        let mut patch = serde_json::Map::new();
        if let Some(unread) = change.unread {
            patch.insert("isRead".into(), json!(!unread));
        }
        if let Some(todo) = change.todo {
            patch.insert("flag".into(), todo_flag(todo, change.todo_due_at));
        } else if let Some(starred) = change.starred {
            let status = if starred { "flagged" } else { "notFlagged" };
            patch.insert("flag".into(), json!({ "flagStatus": status }));
        }
        let destination = change.folder.as_deref().map(destination_id).transpose()?;
        for id in ids {
            if !patch.is_empty() {
                self.http
                    .send(
                        Method::PATCH,
                        &self.graph(&format!("/me/messages/{}", segment(id))),
                        token,
                        Some(&Value::Object(patch.clone())),
                        &GRAPH_PREFER,
                        classify,
                    )
                    .await?;
            }
            if let Some(destination) = &destination {
                self.move_to(token, id, destination).await?;
            }
        }
        Ok(())
    }

    async fn trash(&self, token: &SecretString, id: &str) -> Result<(), ProviderError> {
        self.move_to(token, id, "deleteditems").await
    }

    fn todo_mirror(&self) -> TodoMirror {
        if self.settings.todo_as_flag {
            TodoMirror::Flag
        } else {
            TodoMirror::Off
        }
    }

    fn renames_labels(&self) -> bool {
        false
    }

    /// `/me/outlook/masterCategories`.
    async fn list_labels(&self, token: &SecretString) -> Result<Vec<ProviderLabel>, ProviderError> {
        let list: CategoryList = self
            .http
            .get_json(&self.graph("/me/outlook/masterCategories"), token, classify)
            .await?;
        Ok(list.value.into_iter().map(Category::label).collect())
    }

    async fn create_label(
        &self,
        token: &SecretString,
        name: &str,
        color: Option<&LabelColor>,
    ) -> Result<ProviderLabel, ProviderError> {
        let body = json!({
            "displayName": name,
            "color": color.map_or("none", |c| c.outlook_preset),
        });
        let created: Category = self
            .http
            .send_json(
                Method::POST,
                &self.graph("/me/outlook/masterCategories"),
                token,
                Some(&body),
                &[],
                classify,
            )
            .await?;
        Ok(created.label())
    }

    /// Only the colour: a category's `displayName` cannot change after it is created.
    async fn update_label(
        &self,
        token: &SecretString,
        label: &ProviderLabel,
        name: Option<&str>,
        color: Option<Option<&LabelColor>>,
    ) -> Result<ProviderLabel, ProviderError> {
        if name.is_some_and(|n| n != label.name) {
            return Err(ProviderError::Permanent(
                "Outlook categories cannot be renamed".into(),
            ));
        }
        let Some(color) = color else {
            return Ok(label.clone());
        };
        let body = json!({ "color": color.map_or("none", |c| c.outlook_preset) });
        self.http
            .send(
                Method::PATCH,
                &self.graph(&format!(
                    "/me/outlook/masterCategories/{}",
                    segment(&label.id)
                )),
                token,
                Some(&body),
                &[],
                classify,
            )
            .await?;
        Ok(label.clone())
    }

    /// Deleting a master category leaves its name on messages: the caller takes it off them.
    async fn delete_label(
        &self,
        token: &SecretString,
        label: &ProviderLabel,
    ) -> Result<(), ProviderError> {
        match self
            .http
            .send(
                Method::DELETE,
                &self.graph(&format!(
                    "/me/outlook/masterCategories/{}",
                    segment(&label.id)
                )),
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

    /// A message's `categories` is one list: read it, change only the names given, write it
    /// back whole, so categories set elsewhere stay.
    async fn relabel(
        &self,
        token: &SecretString,
        ids: &[String],
        add: &[ProviderLabel],
        remove: &[ProviderLabel],
    ) -> Result<(), ProviderError> {
        for id in ids {
            let url = self.graph(&format!("/me/messages/{}", segment(id)));
            let current: MessageCategories = self
                .http
                .send_json(
                    Method::GET,
                    &format!("{url}?$select=categories"),
                    token,
                    None,
                    &GRAPH_PREFER,
                    classify,
                )
                .await?;
            let wanted = categories_after(&current.categories, add, remove);
            if wanted == current.categories {
                continue;
            }
            self.http
                .send(
                    Method::PATCH,
                    &url,
                    token,
                    Some(&json!({ "categories": wanted })),
                    &GRAPH_PREFER,
                    classify,
                )
                .await?;
        }
        Ok(())
    }

    /// `messages/{id}/attachments` names them; `attachments/{aid}/$value` streams the bytes.
    async fn attachment_stream(
        &self,
        token: &SecretString,
        id: &str,
        wanted: &AttachmentRef,
        max_bytes: u64,
    ) -> Result<AttachmentStream, ProviderError> {
        let base = self.graph(&format!("/me/messages/{}/attachments", segment(id)));
        // The base properties only: a listing with contentBytes would carry every file.
        let mut next = Some(format!("{base}?$select=id,name,contentType,size,isInline"));
        let mut found: Vec<attachments::GraphAttachment> = Vec::new();
        for _ in 0..10 {
            let Some(url) = next.take() else { break };
            let page: attachments::GraphAttachmentList = self
                .http
                .send_json(Method::GET, &url, token, None, &GRAPH_PREFER, classify)
                .await?;
            found.extend(page.value);
            next = page.next_link;
        }
        let mut candidates: Vec<_> = found.iter().map(|a| a.candidate()).collect();
        let mut index = attachments::find(&candidates, wanted);
        // An unnamed inline part is known by its Content-ID, a fileAttachment property: read it
        // from each attachment (inline images are small).
        if index.is_none() && wanted.content_id.is_some() {
            for (i, a) in found.iter().enumerate().take(20) {
                let one: attachments::GraphAttachment = self
                    .http
                    .send_json(
                        Method::GET,
                        &format!("{base}/{}", segment(&a.id)),
                        token,
                        None,
                        &GRAPH_PREFER,
                        classify,
                    )
                    .await?;
                candidates[i].content_id = one.content_id;
            }
            index = attachments::find(&candidates, wanted);
        }
        let aid = index
            .and_then(|i| found.get(i))
            .map(|a| a.id.clone())
            .ok_or(ProviderError::NotFound)?;
        let resp = self
            .http
            .get_stream(
                &format!("{base}/{}/$value", segment(&aid)),
                token,
                &GRAPH_PREFER,
                attachments::DOWNLOAD_TIMEOUT,
                classify,
            )
            .await?;
        Ok(attachments::raw_stream(resp, max_bytes))
    }

    fn max_message_bytes(&self) -> u64 {
        send::MAX_MESSAGE_BYTES
    }

    /// `createForward` copies the original's attachments into the draft.
    fn forwards_attachments(&self) -> bool {
        true
    }

    async fn prepare_send(
        &self,
        token: &SecretString,
        message: &OutgoingSend<'_>,
    ) -> Result<PreparedSend, ProviderError> {
        self.prepare_send_impl(token, message).await
    }

    async fn commit_send(
        &self,
        token: &SecretString,
        message: &OutgoingSend<'_>,
        prepared: &PreparedSend,
    ) -> Result<SentMessage, ProviderError> {
        self.commit_send_impl(token, message, prepared).await
    }

    async fn abandon_send(
        &self,
        token: &SecretString,
        prepared: &PreparedSend,
    ) -> Result<(), ProviderError> {
        self.abandon_send_impl(token, prepared).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_checked_before_they_reach_a_url() {
        assert!(valid_tenant("common"));
        assert!(valid_tenant("7d1c5a2e-5f1b-4c3e-9a7d-2b1f0c9e8a11"));
        assert!(valid_tenant("contoso.onmicrosoft.com"));
        assert!(!valid_tenant("../evil"));
        assert!(!valid_tenant("a/b"));
        assert!(!valid_tenant(""));
    }

    #[test]
    fn categories_change_only_by_the_names_given() {
        let l = |n: &str| ProviderLabel {
            id: format!("id-{n}"),
            name: n.into(),
        };
        let cur = vec!["Blue category".to_string(), "Old".to_string()];
        assert_eq!(
            categories_after(&cur, &[l("New"), l("blue CATEGORY")], &[l("old")]),
            vec!["Blue category".to_string(), "New".to_string()]
        );
    }

    #[test]
    fn flag_dates_are_utc_both_ways() {
        let due = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .expect("date")
            .timestamp_millis();
        let flag = todo_flag(true, Some(due));
        assert_eq!(flag["flagStatus"], "flagged");
        assert_eq!(flag["dueDateTime"]["timeZone"], "UTC");
        let back: DateTimeTimeZone =
            serde_json::from_value(flag["dueDateTime"].clone()).expect("parse");
        assert_eq!(back.millis(), Some(due));
        assert!(flag["startDateTime"]["dateTime"].is_string());
        assert_eq!(todo_flag(false, None)["flagStatus"], "complete");
    }

    #[test]
    fn expired_delta_cursor_is_recognised() {
        let body = r#"{"error":{"code":"SyncStateNotFound","message":"The sync state generation is not found."}}"#;
        assert!(matches!(
            classify(StatusCode::GONE, body),
            Some(ProviderError::CursorExpired)
        ));
        assert!(classify(StatusCode::BAD_REQUEST, "{}").is_none());
    }
}

#[derive(Debug, Deserialize)]
struct CategoryList {
    #[serde(default)]
    value: Vec<Category>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Category {
    id: String,
    #[serde(default)]
    display_name: String,
}

impl Category {
    fn label(self) -> ProviderLabel {
        ProviderLabel {
            id: self.id,
            name: self.display_name,
        }
    }
}

#[derive(Debug, Deserialize)]
struct MessageCategories {
    #[serde(default)]
    categories: Vec<String>,
}

/// `current` without the names of `remove` (any case), then the names of `add` not there yet.
fn categories_after(
    current: &[String],
    add: &[ProviderLabel],
    remove: &[ProviderLabel],
) -> Vec<String> {
    let mut out: Vec<String> = current
        .iter()
        .filter(|c| !remove.iter().any(|r| r.name.eq_ignore_ascii_case(c)))
        .cloned()
        .collect();
    for a in add {
        if !out.iter().any(|c| c.eq_ignore_ascii_case(&a.name)) {
            out.push(a.name.clone());
        }
    }
    out
}

/// One delta page of the cursor's current folder, the cursor moved past it.
struct DeltaStep {
    changes: Vec<Change>,
    caught_up: bool,
    full_listing_done: bool,
}

impl Microsoft {
    async fn delta_step(
        &self,
        token: &SecretString,
        cursor: &mut GraphCursor,
    ) -> Result<DeltaStep, ProviderError> {
        let Some(current) = cursor.folders.get(cursor.index).cloned() else {
            return Err(ProviderError::CursorExpired);
        };
        let url = match &current.link {
            Some(link) => link.clone(),
            None => {
                let mut url = url::Url::parse(&self.graph(&format!(
                    "/me/mailFolders/{}/messages/delta",
                    segment(&current.id)
                )))
                .map_err(|e| ProviderError::Permanent(format!("bad Graph URL: {e}")))?;
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("$select", DELTA_SELECT);
                    if let Some(since) = cursor.since {
                        let from = chrono::DateTime::from_timestamp_millis(since)
                            .unwrap_or_default()
                            .format("%Y-%m-%dT%H:%M:%SZ");
                        q.append_pair("$filter", &format!("receivedDateTime ge {from}"));
                    }
                }
                url.to_string()
            }
        };
        let page: DeltaPage = self
            .http
            .send_json(Method::GET, &url, token, None, &GRAPH_PREFER, classify)
            .await?;
        let keys: std::collections::HashMap<&str, &str> = cursor
            .folders
            .iter()
            .map(|f| (f.id.as_str(), f.key.as_str()))
            .collect();
        let key_of = |m: &DeltaMessage| {
            m.parent_folder_id
                .as_deref()
                .and_then(|p| keys.get(p).copied())
                .map(str::to_string)
        };
        // `@removed` means "no longer in this folder": deleted, or moved to another folder (Graph
        // says "deleted" for both). Asking for the message tells which, so a move whose
        // destination is synced later in the round is not taken for a deletion.
        let current_key = current.key.clone();
        let changes: Vec<Change> = stream::iter(page.value)
            .map(|m| {
                let current_key = current_key.clone();
                async move {
                    if m.removed.is_none() {
                        let key = key_of(&m).unwrap_or(current_key);
                        return Ok(Change::Present {
                            state: m.state(key),
                            raw: None,
                        });
                    }
                    match self.message_state(token, &m.id).await {
                        Ok(now) => Ok(match key_of(&now) {
                            Some(key) => Change::Present {
                                state: now.state(key),
                                raw: None,
                            },
                            // Moved somewhere not synced (a child folder): gone from here.
                            None => Change::Removed {
                                provider_message_id: m.id,
                                folder: Some(current_key),
                            },
                        }),
                        Err(ProviderError::NotFound) => Ok(Change::Removed {
                            provider_message_id: m.id,
                            folder: None,
                        }),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffered(MAILBOX_CONCURRENCY)
            .try_collect()
            .await?;
        let mut full_listing_done = false;
        let mut caught_up = false;
        match (page.next_link, page.delta_link) {
            (Some(next), _) => {
                cursor.folders[cursor.index].link = Some(next);
            }
            (None, Some(delta)) => {
                cursor.folders[cursor.index].link = Some(delta);
                cursor.index += 1;
                if cursor.index >= cursor.folders.len() {
                    cursor.index = 0;
                    caught_up = true;
                    full_listing_done = cursor.listing;
                    cursor.listing = false;
                    // The next run first looks for folders created or deleted meanwhile.
                    cursor.rescan = true;
                }
            }
            (None, None) => {
                return Err(ProviderError::Permanent(
                    "Graph delta page without a next or delta link".into(),
                ))
            }
        }
        Ok(DeltaStep {
            changes,
            caught_up,
            full_listing_done,
        })
    }
}

/// Requests one `$batch` may hold.
const MAX_BATCH: usize = 20;

/// `POST /$batch` answers: each request's status, headers and body, in any order.
#[derive(Debug, Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    responses: Vec<BatchResponse>,
}

#[derive(Debug, Deserialize)]
struct BatchResponse {
    id: String,
    status: u16,
    #[serde(default)]
    body: Option<Value>,
}

impl Microsoft {
    /// `GET /me/messages/{id}/$value` for each id as one JSON batch (`POST /$batch`): one round
    /// trip instead of one per message. Graph sends a body that is not JSON (the MIME) as a
    /// base64 string. `None` for a message that is gone; a request the batch did not answer
    /// (throttled inside the batch, failed, or missing) is made again on its own, with the usual
    /// retries and `Retry-After`.
    async fn values_batch(
        &self,
        token: &SecretString,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, ProviderError> {
        let mut answers: Vec<Option<Option<Vec<u8>>>> = vec![None; ids.len()];
        if ids.len() > 1 {
            let requests: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    json!({
                        "id": i.to_string(),
                        "method": "GET",
                        "url": format!("/me/messages/{}/$value", segment(id)),
                        // Inner requests do not inherit the batch's own headers.
                        "headers": { "Prefer": GRAPH_PREFER[0].1 },
                    })
                })
                .collect();
            let answer: BatchAnswer = self
                .http
                .send_json(
                    Method::POST,
                    &self.graph("/$batch"),
                    token,
                    Some(&json!({ "requests": requests })),
                    &[],
                    classify,
                )
                .await?;
            for r in answer.responses {
                let Some(i) = r.id.parse::<usize>().ok().filter(|&i| i < ids.len()) else {
                    continue;
                };
                answers[i] = match (r.status, r.body) {
                    (200, Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .ok()
                        .map(Some),
                    (404, _) => Some(None),
                    _ => None,
                };
            }
        }
        super::answer_the_rest(ids, answers, |id| self.fetch_raw(token, id)).await
    }
}

/// Graph serves at most 4 concurrent requests per mailbox (more answer 429).
pub const MAILBOX_CONCURRENCY: usize = 4;

/// Properties the delta query asks for: the state that changes; the content comes from the MIME.
const DELTA_SELECT: &str =
    "id,conversationId,parentFolderId,isRead,isDraft,flag,categories,receivedDateTime";

/// Immutable ids keep a message's id across moves, so a move is an update and not a new message.
const GRAPH_PREFER: [(&str, &str); 2] = [
    ("Prefer", "IdType=\"ImmutableId\""),
    ("Prefer", "odata.maxpagesize=100"),
];

/// The well-known folders synced, in order, with their key here.
const WELL_KNOWN: [(&str, &str); 6] = [
    ("inbox", folder::INBOX),
    ("sentitems", folder::SENT),
    ("drafts", folder::DRAFTS),
    ("archive", folder::ARCHIVE),
    ("junkemail", folder::SPAM),
    ("deleteditems", folder::TRASH),
];

fn destination_id(key: &str) -> Result<String, ProviderError> {
    if let Some((name, _)) = WELL_KNOWN.iter().find(|(_, k)| *k == key) {
        return Ok((*name).to_string());
    }
    key.strip_prefix("user:")
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Permanent(format!("unknown folder {key}")))
}

fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Where a Graph sync stands: each folder's next or delta link, and which folder is next.
#[derive(Debug, Serialize, Deserialize)]
struct GraphCursor {
    folders: Vec<CursorFolder>,
    index: usize,
    /// True until every folder has finished its first (full) delta round.
    listing: bool,
    since: Option<i64>,
    /// Look for new and deleted user folders before the next delta round.
    #[serde(default)]
    rescan: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CursorFolder {
    id: String,
    key: String,
    link: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FolderJson {
    id: String,
    #[serde(rename = "displayName", default)]
    display_name: String,
}

#[derive(Debug, Deserialize)]
struct FolderList {
    #[serde(default)]
    value: Vec<FolderJson>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeltaPage {
    #[serde(default)]
    value: Vec<DeltaMessage>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaMessage {
    id: String,
    #[serde(rename = "@removed")]
    removed: Option<Value>,
    conversation_id: Option<String>,
    parent_folder_id: Option<String>,
    #[serde(default)]
    is_read: bool,
    #[serde(default)]
    is_draft: bool,
    flag: Option<Flag>,
    #[serde(default)]
    categories: Vec<String>,
    received_date_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flag {
    flag_status: Option<String>,
    due_date_time: Option<DateTimeTimeZone>,
}

/// Graph's `dateTimeTimeZone`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DateTimeTimeZone {
    date_time: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
}

impl DateTimeTimeZone {
    /// Unix ms. The flag dates this adapter writes are in UTC; a date in another zone (set by
    /// an Outlook client) is read as if it were UTC, which is at most a day off for a due date.
    fn millis(&self) -> Option<i64> {
        let _ = &self.time_zone;
        let text = self.date_time.as_deref()?.trim();
        let text = text.trim_end_matches('Z');
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|d| d.and_utc().timestamp_millis())
    }
}

/// `dateTimeTimeZone` in UTC, as Graph writes it.
fn graph_date(ms: i64) -> Value {
    let d = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    json!({ "dateTime": format!("{}.{:07}", d.format("%Y-%m-%dT%H:%M:%S"), d.timestamp_subsec_nanos() / 100), "timeZone": "UTC" })
}

/// The follow-up flag of an open (with its due date) or completed to-do. Graph wants a start
/// date with a due date; the start is now, or the due date when that is earlier.
fn todo_flag(open: bool, due: Option<i64>) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    match (open, due) {
        (true, Some(due)) => json!({
            "flagStatus": "flagged",
            "startDateTime": graph_date(due.min(now)),
            "dueDateTime": graph_date(due),
        }),
        (true, None) => {
            json!({ "flagStatus": "flagged", "startDateTime": null, "dueDateTime": null })
        }
        (false, _) => json!({ "flagStatus": "complete", "completedDateTime": graph_date(now) }),
    }
}

impl DeltaMessage {
    fn state(self, folder: String) -> MessageState {
        let flagged = self
            .flag
            .as_ref()
            .and_then(|f| f.flag_status.as_deref())
            .is_some_and(|s| s == "flagged");
        let due = self
            .flag
            .as_ref()
            .and_then(|f| f.due_date_time.as_ref())
            .and_then(DateTimeTimeZone::millis);
        MessageState {
            provider_message_id: self.id,
            thread_id: self.conversation_id,
            folder,
            labels: self.categories,
            unread: !self.is_read,
            starred: flagged,
            todo_due_at: due.filter(|_| flagged),
            draft: self.is_draft,
            received_at: self
                .received_date_time
                .as_deref()
                .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                .map(|d| d.timestamp_millis()),
        }
    }
}

impl Microsoft {
    /// Resolves the folders to sync (the well-known ones, then the user's top-level folders) and
    /// answers a first page with no changes whose cursor starts the per-folder listing.
    async fn start_listing(
        &self,
        token: &SecretString,
        since: Option<i64>,
    ) -> Result<SyncPage, ProviderError> {
        let mut folders: Vec<CursorFolder> = Vec::new();
        let mut infos = Vec::new();
        for (name, key) in WELL_KNOWN {
            match self
                .http
                .send_json::<FolderJson>(
                    Method::GET,
                    &self.graph(&format!("/me/mailFolders/{name}")),
                    token,
                    None,
                    &GRAPH_PREFER,
                    classify,
                )
                .await
            {
                Ok(f) => folders.push(CursorFolder {
                    id: f.id,
                    key: key.to_string(),
                    link: None,
                }),
                // Not every mailbox has every folder (archive is created on first use).
                Err(ProviderError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        for f in self.user_folders(token).await? {
            if folders.iter().any(|k| k.id == f.provider_folder_id) {
                continue;
            }
            folders.push(CursorFolder {
                id: f.provider_folder_id.clone(),
                key: f.folder.clone(),
                link: None,
            });
            infos.push(f);
        }
        let cursor = GraphCursor {
            folders,
            index: 0,
            listing: true,
            since,
            rescan: false,
        };
        Ok(SyncPage {
            changes: Vec::new(),
            cursor: serde_json::to_string(&cursor)
                .map_err(|e| ProviderError::Permanent(e.to_string()))?,
            caught_up: false,
            full_listing_done: false,
            folders: infos,
        })
    }

    /// The user's top-level folders that are not well-known ones.
    async fn user_folders(&self, token: &SecretString) -> Result<Vec<FolderInfo>, ProviderError> {
        let mut out = Vec::new();
        let mut next = Some(self.graph("/me/mailFolders?$top=100"));
        while let Some(url) = next {
            let list: FolderList = self
                .http
                .send_json(Method::GET, &url, token, None, &GRAPH_PREFER, classify)
                .await?;
            out.extend(list.value.into_iter().map(|f| FolderInfo {
                folder: format!("user:{}", f.id),
                name: f.display_name,
                provider_folder_id: f.id,
            }));
            next = list.next_link;
        }
        Ok(out)
    }

    /// Adds folders created since the listing (synced from `since` like the others) and drops
    /// deleted ones, whose delta links would fail. Answers a page without changes.
    async fn rescan_folders(
        &self,
        token: &SecretString,
        mut cursor: GraphCursor,
    ) -> Result<SyncPage, ProviderError> {
        let current = self.user_folders(token).await?;
        cursor.folders.retain(|f| {
            !f.key.starts_with("user:") || current.iter().any(|c| c.provider_folder_id == f.id)
        });
        let mut infos = Vec::new();
        for f in current {
            if cursor.folders.iter().any(|k| k.id == f.provider_folder_id) {
                continue;
            }
            cursor.folders.push(CursorFolder {
                id: f.provider_folder_id.clone(),
                key: f.folder.clone(),
                link: None,
            });
            infos.push(f);
        }
        cursor.rescan = false;
        cursor.index = 0;
        Ok(SyncPage {
            changes: Vec::new(),
            cursor: serde_json::to_string(&cursor)
                .map_err(|e| ProviderError::Permanent(e.to_string()))?,
            caught_up: false,
            full_listing_done: false,
            folders: infos,
        })
    }

    /// A message's current state (the properties a delta page carries).
    async fn message_state(
        &self,
        token: &SecretString,
        id: &str,
    ) -> Result<DeltaMessage, ProviderError> {
        self.http
            .send_json(
                Method::GET,
                &self.graph(&format!(
                    "/me/messages/{}?$select={DELTA_SELECT}",
                    segment(id)
                )),
                token,
                None,
                &GRAPH_PREFER,
                classify,
            )
            .await
    }

    async fn move_to(
        &self,
        token: &SecretString,
        id: &str,
        destination: &str,
    ) -> Result<(), ProviderError> {
        self.http
            .send(
                Method::POST,
                &self.graph(&format!("/me/messages/{}/move", segment(id))),
                token,
                Some(&json!({ "destinationId": destination })),
                &GRAPH_PREFER,
                classify,
            )
            .await?;
        Ok(())
    }
}
