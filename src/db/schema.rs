//! Table definitions shared by both backends; `tests/schema.rs` checks them against what the
//! migrations of each backend produce.

diesel::table! {
    mail_settings (provider) {
        provider -> Text,
        client_id -> Text,
        client_secret -> Nullable<Binary>,
        client_secret_hint -> Nullable<Text>,
        tenant -> Nullable<Text>,
        enabled -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    oauth_states (state_hash) {
        state_hash -> Text,
        user_id -> BigInt,
        provider -> Text,
        pkce_verifier -> Binary,
        sync_from -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    mail_accounts (id) {
        id -> BigInt,
        user_id -> BigInt,
        provider -> Text,
        provider_account_id -> Text,
        email -> Text,
        display_name -> Nullable<Text>,
        status -> Text,
        access_token -> Binary,
        refresh_token -> Nullable<Binary>,
        token_expires_at -> Nullable<BigInt>,
        scopes -> Text,
        sync_from -> Nullable<BigInt>,
        last_sync_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(mail_settings, oauth_states, mail_accounts);
