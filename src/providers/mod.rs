//! Mail providers behind one trait, and the registry that maps `"google"` / `"microsoft"` to them.
//!
//! Adding a provider is one module implementing [`MailProvider`] plus one line in
//! [`ProviderRegistry::from_settings`]. The trait grows with the product (sync, send, drafts,
//! labels, attachments); every method talks to endpoints taken from configuration only.

pub mod attachments;
pub mod google;
pub mod http;
pub mod microsoft;
pub mod multipart;
pub mod oauth;
pub mod sending;

pub mod labels;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::Settings;
use crate::crypto::SecretString;
use crate::error::{ApiError, ErrorCode};
pub use attachments::{AttachmentRef, AttachmentStream};
pub use sending::{DraftContent, OutgoingSend, PreparedSend, ReplyTo, SendAs, SentMessage};

/// What an admin registered for a provider on the Email settings page.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Microsoft only: `common`, `organizations`, `consumers` or a tenant id.
    pub tenant: Option<String>,
}

/// The consent URL to send the user to, and what the callback needs to finish.
#[derive(Debug)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: SecretString,
    pub pkce_verifier: SecretString,
}

#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
    pub scopes: Vec<String>,
    /// The OpenID id token's claims, decoded but not verified: it came straight from the token
    /// endpoint over TLS, which OpenID Connect accepts for the code flow.
    pub id_claims: Option<serde_json::Value>,
}

/// Who the mailbox is, in the provider's stable terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxIdentity {
    /// Google: the account's `sub`; Microsoft: `tid:oid` (the address can change, these cannot).
    pub provider_account_id: String,
    pub email: String,
    pub display_name: Option<String>,
}

/// Provider failures in terms the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The refresh token or authorisation code is no longer good: the user must link again.
    #[error("grant rejected by the provider: {0}")]
    InvalidGrant(String),
    /// The Client ID or secret on the settings page is wrong.
    #[error("client credentials rejected by the provider: {0}")]
    InvalidClient(String),
    /// The access token was refused: refresh once, then re-link.
    #[error("access token refused by the provider")]
    Unauthorized,
    #[error("rate limited by the provider (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// A sync cursor (Gmail historyId, Graph deltaLink) expired: resync from scratch.
    #[error("sync cursor expired")]
    CursorExpired,
    #[error("not found at the provider")]
    NotFound,
    #[error("temporary provider failure: {0}")]
    Transient(String),
    #[error("provider refused the request: {0}")]
    Permanent(String),
    /// A sending quota is used up (Gmail's daily sending limit, Exchange's submission quota):
    /// retrying soon would not help; a mass mailing pauses with this reason.
    #[error("sending quota exceeded: {0}")]
    QuotaExceeded(String),
}

impl ProviderError {
    /// A short stable label for metrics and the run history.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::InvalidGrant(_) => "invalid_grant",
            ProviderError::InvalidClient(_) => "invalid_client",
            ProviderError::Unauthorized => "unauthorized",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::CursorExpired => "cursor_expired",
            ProviderError::NotFound => "not_found",
            ProviderError::Transient(_) => "transient",
            ProviderError::Permanent(_) => "permanent",
            ProviderError::QuotaExceeded(_) => "quota_exceeded",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Transient(_)
        )
    }
}

/// Completes a batch request's answers, in order: one the batch gave (`Some`) is kept, one it did
/// not is asked for alone with `one` (its own retries and `Retry-After`); `NotFound` is `None`.
pub(crate) async fn answer_the_rest<'a, T, F, Fut>(
    ids: &'a [String],
    answers: Vec<Option<Option<T>>>,
    one: F,
) -> Result<Vec<Option<T>>, ProviderError>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut out = Vec::with_capacity(ids.len());
    for (id, answer) in ids.iter().zip(answers) {
        out.push(match answer {
            Some(got) => got,
            None => match one(id).await {
                Ok(got) => Some(got),
                Err(ProviderError::NotFound) => None,
                Err(e) => return Err(e),
            },
        });
    }
    Ok(out)
}

/// See [`MailProvider::fetch_plan`].
#[derive(Debug, Clone, Copy)]
pub struct FetchPlan {
    pub per_call: usize,
    pub in_flight: Option<usize>,
}

#[async_trait]
pub trait MailProvider: Send + Sync {
    /// The registry key and the value of `provider` in the API.
    fn id(&self) -> &'static str;
    /// The name shown to people.
    fn display_name(&self) -> &'static str;
    /// Whether the settings carry a tenant (Microsoft).
    fn uses_tenant(&self) -> bool {
        false
    }
    /// The provider's limit on concurrent requests per mailbox, if it has one (Graph: 4); sync
    /// downloads stay within it whatever `sync.concurrency` says.
    fn max_concurrency(&self) -> Option<usize> {
        None
    }

    /// Builds the consent URL (PKCE S256, random state, offline access).
    fn authorization_url(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ProviderError>;
    async fn exchange_code(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &SecretString,
    ) -> Result<TokenSet, ProviderError>;
    async fn refresh(
        &self,
        app: &OAuthApp,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError>;
    /// Revokes the grant at the provider. `Ok(true)` when revoked (or already gone), `Ok(false)`
    /// when the provider offers no per-application revocation.
    async fn revoke(
        &self,
        app: &OAuthApp,
        access_token: &SecretString,
        refresh_token: Option<&SecretString>,
    ) -> Result<bool, ProviderError>;
    /// Reads the mailbox address and the stable account id.
    async fn identity(&self, tokens: &TokenSet) -> Result<MailboxIdentity, ProviderError>;

    /// One step of sync from `cursor` (`None`: start a full listing of mail received from
    /// `since`). The returned cursor covers exactly the returned changes, so the caller stores it
    /// in the same transaction; `ProviderError::CursorExpired` means start again from `None`.
    async fn sync_page(
        &self,
        access_token: &SecretString,
        cursor: Option<&str>,
        since: Option<i64>,
    ) -> Result<SyncPage, ProviderError>;
    /// The message as RFC 822 bytes.
    async fn fetch_raw(
        &self,
        access_token: &SecretString,
        provider_message_id: &str,
    ) -> Result<Vec<u8>, ProviderError>;
    /// The MIME of several messages of one mailbox, in order; `None` for a message that is gone.
    /// One [`fetch_raw`](Self::fetch_raw) each unless the provider batches them.
    async fn fetch_raw_many(
        &self,
        access_token: &SecretString,
        provider_message_ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, ProviderError> {
        let none = vec![None; provider_message_ids.len()];
        answer_the_rest(provider_message_ids, none, |id| {
            self.fetch_raw(access_token, id)
        })
        .await
    }
    /// How sync calls [`fetch_raw_many`](Self::fetch_raw_many): messages per call, and calls
    /// in flight at once per mailbox (`None`: as many as the download concurrency allows).
    fn fetch_plan(&self) -> FetchPlan {
        FetchPlan {
            per_call: 1,
            in_flight: None,
        }
    }
    /// Applies a state change (read, star, move) to messages of one mailbox.
    async fn modify(
        &self,
        access_token: &SecretString,
        provider_message_ids: &[String],
        change: &MessageChange,
    ) -> Result<(), ProviderError>;
    /// Moves a message to the provider's trash.
    async fn trash(
        &self,
        access_token: &SecretString,
        provider_message_id: &str,
    ) -> Result<(), ProviderError>;

    /// How many messages one [`modify`](Self::modify) call may carry: the provider's batch limit,
    /// or 1 where it changes one message per request (so a failure names its message).
    fn modify_batch_size(&self) -> usize {
        1
    }

    /// Streams the bytes of a stored attachment of message `provider_message_id`; a stream that
    /// would pass `max_bytes` ends with an error instead.
    async fn attachment_stream(
        &self,
        access_token: &SecretString,
        provider_message_id: &str,
        attachment: &AttachmentRef,
        max_bytes: u64,
    ) -> Result<AttachmentStream, ProviderError> {
        let _ = (access_token, provider_message_id, attachment, max_bytes);
        Err(ProviderError::Permanent(format!(
            "{} attachments cannot be downloaded",
            self.display_name()
        )))
    }

    // ---- labels and to-do (issue 5) ----

    /// How this provider mirrors a message's to-do state (configuration decides).
    fn todo_mirror(&self) -> TodoMirror {
        TodoMirror::Off
    }

    /// Whether `MessageState.labels` holds label ids whose names come from
    /// [`list_labels`](Self::list_labels) and the folders of a sync page (Gmail), rather than
    /// the names themselves (Outlook categories).
    fn labels_are_ids(&self) -> bool {
        false
    }

    /// Whether a label of `MessageState.labels` is the user's own (not a system label).
    fn is_user_label(&self, label: &str) -> bool {
        !label.is_empty()
    }

    /// Whether [`update_label`](Self::update_label) can rename (Outlook categories cannot be
    /// renamed: a rename is a new category, the messages moved over, the old one deleted).
    fn renames_labels(&self) -> bool {
        true
    }

    /// The mailbox's user labels (Gmail labels, Outlook master categories).
    async fn list_labels(
        &self,
        access_token: &SecretString,
    ) -> Result<Vec<ProviderLabel>, ProviderError> {
        let _ = access_token;
        Err(self.labels_unsupported())
    }

    async fn create_label(
        &self,
        access_token: &SecretString,
        name: &str,
        color: Option<&LabelColor>,
    ) -> Result<ProviderLabel, ProviderError> {
        let _ = (access_token, name, color);
        Err(self.labels_unsupported())
    }

    /// Renames (when `name` is given and [`renames_labels`](Self::renames_labels)) and sets the
    /// colour (`color`: `Some(None)` removes it).
    async fn update_label(
        &self,
        access_token: &SecretString,
        label: &ProviderLabel,
        name: Option<&str>,
        color: Option<Option<&LabelColor>>,
    ) -> Result<ProviderLabel, ProviderError> {
        let _ = (access_token, label, name, color);
        Err(self.labels_unsupported())
    }

    /// Deletes a label; one already gone is no error.
    async fn delete_label(
        &self,
        access_token: &SecretString,
        label: &ProviderLabel,
    ) -> Result<(), ProviderError> {
        let _ = (access_token, label);
        Err(self.labels_unsupported())
    }

    /// Adds and removes labels on messages of one mailbox (at most
    /// [`modify_batch_size`](Self::modify_batch_size) at once), leaving their other labels alone.
    async fn relabel(
        &self,
        access_token: &SecretString,
        provider_message_ids: &[String],
        add: &[ProviderLabel],
        remove: &[ProviderLabel],
    ) -> Result<(), ProviderError> {
        let _ = (access_token, provider_message_ids, add, remove);
        Err(self.labels_unsupported())
    }

    fn labels_unsupported(&self) -> ProviderError {
        ProviderError::Permanent(format!("{} has no labels here", self.display_name()))
    }

    // ---- sending, drafts and send-as addresses (see `sending`) ----

    /// The largest message (its MIME, attachments included) the provider takes.
    fn max_message_bytes(&self) -> u64 {
        sending::DEFAULT_MAX_MESSAGE_BYTES
    }

    /// Whether a forward made by the provider (Graph `createForward`) brings the source's
    /// attachments itself, so the sender must not add them again.
    fn forwards_attachments(&self) -> bool {
        false
    }

    /// Sets up everything of a send that may be repeated safely (Graph: the draft, its body,
    /// recipients and attachments) and tells the Message-ID that will go out.
    async fn prepare_send(
        &self,
        access_token: &SecretString,
        send: &OutgoingSend<'_>,
    ) -> Result<PreparedSend, ProviderError> {
        let _ = access_token;
        Ok(PreparedSend {
            message_id: Some(send.message.message_id.clone()),
            handle: None,
            thread_id: send.reply.as_ref().map(|r| r.thread_id.to_string()),
        })
    }

    /// The one call that sends. Made once, never retried here: after an ambiguous failure the
    /// caller asks [`find_sent`](Self::find_sent) before trying again.
    async fn commit_send(
        &self,
        access_token: &SecretString,
        send: &OutgoingSend<'_>,
        prepared: &PreparedSend,
    ) -> Result<SentMessage, ProviderError> {
        let _ = (access_token, send, prepared);
        Err(ProviderError::Permanent(format!(
            "{} cannot send mail",
            self.display_name()
        )))
    }

    /// Removes what [`prepare_send`](Self::prepare_send) left at the provider when the send is
    /// given up.
    async fn abandon_send(
        &self,
        access_token: &SecretString,
        prepared: &PreparedSend,
    ) -> Result<(), ProviderError> {
        let _ = (access_token, prepared);
        Ok(())
    }

    /// The sent message with this Message-ID (without angle brackets), if the provider has it.
    async fn find_sent(
        &self,
        access_token: &SecretString,
        message_id: &str,
    ) -> Result<Option<SentMessage>, ProviderError> {
        let _ = (access_token, message_id);
        Ok(None)
    }

    /// Creates the provider's copy of a draft (`existing: None`) or replaces it; answers the
    /// provider's draft id (which may be a new one).
    async fn save_draft(
        &self,
        access_token: &SecretString,
        existing: Option<&str>,
        draft: &DraftContent<'_>,
    ) -> Result<String, ProviderError> {
        let _ = (access_token, existing, draft);
        Err(ProviderError::Permanent(format!(
            "{} drafts are not supported",
            self.display_name()
        )))
    }

    /// Deletes the provider's copy of a draft; one that is already gone is fine.
    async fn delete_draft(
        &self,
        access_token: &SecretString,
        provider_draft_id: &str,
    ) -> Result<(), ProviderError> {
        let _ = (access_token, provider_draft_id);
        Ok(())
    }

    /// The addresses the mailbox may send as (verified ones only; the primary always).
    async fn send_as(
        &self,
        access_token: &SecretString,
        primary: &str,
    ) -> Result<Vec<SendAs>, ProviderError> {
        let _ = access_token;
        Ok(vec![SendAs {
            address: primary.to_string(),
            name: String::new(),
            is_default: true,
        }])
    }
}

/// Folder keys shared by both providers; user folders are `user:<provider folder id>`.
pub mod folder {
    pub const INBOX: &str = "inbox";
    pub const SENT: &str = "sent";
    pub const DRAFTS: &str = "drafts";
    pub const ARCHIVE: &str = "archive";
    pub const SPAM: &str = "spam";
    pub const TRASH: &str = "trash";
    pub const WELL_KNOWN: [&str; 6] = [INBOX, SENT, DRAFTS, ARCHIVE, SPAM, TRASH];
}

/// A message's provider-side state (everything that can change without the content changing).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageState {
    pub provider_message_id: String,
    pub thread_id: Option<String>,
    pub folder: String,
    /// Provider labels (Gmail label ids, Outlook categories), for display and label sync.
    pub labels: Vec<String>,
    pub unread: bool,
    pub starred: bool,
    pub draft: bool,
    /// Unix milliseconds the provider received it, when known without the content.
    pub received_at: Option<i64>,
    /// The flag's due date (Outlook), Unix milliseconds.
    pub todo_due_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Change {
    /// The message exists with this state; `raw` carries its MIME when the provider sent it
    /// anyway (Gmail format=raw), so the caller does not fetch it again.
    Present {
        state: MessageState,
        raw: Option<Vec<u8>>,
    },
    /// Gone. `folder`: removed from that folder only (a Graph move shows as removed from the
    /// source folder, possibly after it appeared in the destination).
    Removed {
        provider_message_id: String,
        folder: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct FolderInfo {
    pub folder: String,
    pub name: String,
    pub provider_folder_id: String,
}

#[derive(Debug, Clone)]
pub struct SyncPage {
    pub changes: Vec<Change>,
    pub cursor: String,
    /// Nothing more to fetch now: the cursor is an incremental one and is caught up.
    pub caught_up: bool,
    /// This page ended a full listing: whatever the listing did not see (within `since`) is gone.
    pub full_listing_done: bool,
    pub folders: Vec<FolderInfo>,
}

/// What `mailMessages:update` asks a provider to change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageChange {
    pub unread: Option<bool>,
    pub starred: Option<bool>,
    /// A folder key (well-known or `user:<id>`).
    pub folder: Option<String>,
    /// A to-do mirrored as the star or flag ([`TodoMirror`]): `Some(true)` opens it (Outlook:
    /// flagged, with `todo_due_at` as the due date), `Some(false)` completes it.
    pub todo: Option<bool>,
    pub todo_due_at: Option<i64>,
}

/// The providers this sidecar serves, in display order.
#[derive(Clone)]
pub struct ProviderRegistry {
    providers: Vec<Arc<dyn MailProvider>>,
}

impl ProviderRegistry {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let client = http::ProviderHttp::new(settings)?;
        Ok(Self::new(vec![
            Arc::new(google::Google::new(
                settings.providers.google.clone(),
                client.clone(),
            )),
            Arc::new(microsoft::Microsoft::new(
                settings.providers.microsoft.clone(),
                client,
            )),
        ]))
    }

    pub fn new(providers: Vec<Arc<dyn MailProvider>>) -> Self {
        Self { providers }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn MailProvider>> {
        self.providers.iter()
    }

    pub fn ids(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.id()).collect()
    }

    /// Looks a provider up by the name a client sent; unknown names answer 400 naming the known ones.
    pub fn get(&self, id: &str) -> Result<Arc<dyn MailProvider>, ApiError> {
        self.providers
            .iter()
            .find(|p| p.id() == id)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownProvider,
                    format!(
                        "Unknown provider {id:?}: expected one of {}",
                        self.ids().join(", ")
                    ),
                )
            })
    }
}

// ---- labels and to-do (issue 5) ----

pub use labels::{LabelColor, ProviderLabel};

/// How a mailbox mirrors to-do state (`providers.google.todo_as_star`,
/// `providers.microsoft.todo_as_flag`). With `Star` or `Flag` the to-do *is* the star / flag:
/// setting one sets the other, and what the provider says about the star or flag is the to-do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TodoMirror {
    /// Local only.
    Off,
    /// Gmail's STARRED label (no due date at the provider).
    Star,
    /// Outlook's follow-up flag, with its due date.
    Flag,
}

impl TodoMirror {
    pub fn is_on(self) -> bool {
        self != TodoMirror::Off
    }
}
