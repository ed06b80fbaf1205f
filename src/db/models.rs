//! Rows as stored. Encrypted columns stay `Vec<u8>` here; decrypting is the caller's step, with
//! the associated data that names the row (see `crypto`).

use diesel::prelude::*;

use super::schema::{mail_accounts, mail_settings, oauth_states};

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
