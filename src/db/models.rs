//! Rows as stored. Encrypted columns stay `Vec<u8>` here; decrypting is the caller's step, with
//! the associated data that names the row (see `crypto`).

use diesel::prelude::*;

use super::schema::{
    mail_accounts, mail_attachments, mail_folders, mail_messages, mail_settings, mail_sync_runs,
    oauth_states,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = mail_settings)]
#[diesel(treat_none_as_null = true)]
pub struct MailSettingsRow {
    pub provider: String,
    pub client_id: String,
    pub client_secret: Option<Vec<u8>>,
    pub client_secret_hint: Option<String>,
    pub tenant: Option<String>,
    pub enabled: bool,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_states)]
pub struct OAuthStateRow {
    pub state_hash: String,
    pub user_id: i64,
    pub provider: String,
    pub pkce_verifier: Vec<u8>,
    pub sync_from: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_accounts)]
pub struct MailAccountRow {
    pub id: i64,
    pub user_id: i64,
    pub provider: String,
    pub provider_account_id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub status: String,
    pub access_token: Vec<u8>,
    pub refresh_token: Option<Vec<u8>>,
    pub token_expires_at: Option<i64>,
    pub scopes: String,
    pub sync_from: Option<i64>,
    pub last_sync_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sync_cursor: Option<String>,
    pub sync_gen: i64,
    pub next_sync_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_accounts)]
pub struct NewMailAccount {
    pub user_id: i64,
    pub provider: String,
    pub provider_account_id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub status: String,
    pub access_token: Vec<u8>,
    pub refresh_token: Option<Vec<u8>>,
    pub token_expires_at: Option<i64>,
    pub scopes: String,
    pub sync_from: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Account status values, as `mailAccounts:list` shows them.
pub mod account_status {
    pub const ACTIVE: &str = "active";
    pub const REAUTH_REQUIRED: &str = "reauth_required";
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mail_folders)]
pub struct MailFolderRow {
    pub account_id: i64,
    pub folder: String,
    pub name: String,
    pub provider_folder_id: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = mail_messages)]
pub struct MailMessageRow {
    pub id: i64,
    pub account_id: i64,
    pub user_id: i64,
    pub provider_message_id: String,
    pub thread_id: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references_header: Option<String>,
    pub from_address: String,
    pub from_name: String,
    pub to_json: String,
    pub cc_json: String,
    pub bcc_json: String,
    pub reply_to_json: String,
    pub subject: String,
    pub snippet: String,
    pub date: i64,
    pub folder: String,
    pub provider_labels: String,
    pub unread: bool,
    pub starred: bool,
    pub todo: bool,
    pub draft: bool,
    pub has_attachments: bool,
    pub size: i64,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub search_text: String,
    pub sync_gen: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub todo_due_at: Option<i64>,
}

/// A message as sync inserts it (content parsed from the provider's MIME). `None` is NULL, not
/// DEFAULT (the same for these columns), so SQLite takes many rows in one INSERT.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_messages)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewMailMessage {
    pub account_id: i64,
    pub user_id: i64,
    pub provider_message_id: String,
    pub thread_id: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references_header: Option<String>,
    pub from_address: String,
    pub from_name: String,
    pub to_json: String,
    pub cc_json: String,
    pub bcc_json: String,
    pub reply_to_json: String,
    pub subject: String,
    pub snippet: String,
    pub date: i64,
    pub folder: String,
    pub provider_labels: String,
    pub unread: bool,
    pub starred: bool,
    pub draft: bool,
    pub has_attachments: bool,
    pub size: i64,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub search_text: String,
    pub sync_gen: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Written with the row (a starred message in a mailbox whose to-do is the star) rather
    /// than by a second UPDATE, which would rewrite the whole row with its bodies.
    pub todo: bool,
    pub todo_due_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_attachments)]
pub struct MailAttachmentRow {
    pub id: i64,
    pub message_id: i64,
    pub user_id: i64,
    pub part_index: i32,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub content_id: Option<String>,
    pub inline: bool,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mail_attachments)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewMailAttachment {
    pub message_id: i64,
    pub user_id: i64,
    pub part_index: i32,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub content_id: Option<String>,
    pub inline: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_sync_runs)]
pub struct MailSyncRunRow {
    pub id: i64,
    pub account_id: i64,
    pub kind: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub added: i64,
    pub updated: i64,
    pub removed: i64,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}
