-- Admin settings per provider ("google", "microsoft"). The client secret is encrypted.
CREATE TABLE mail_settings (
    provider TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL DEFAULT '',
    client_secret BLOB,
    client_secret_hint TEXT,
    tenant TEXT,
    enabled BOOLEAN NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- Pending OAuth authorisations: the state is stored hashed, the PKCE verifier encrypted.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    provider TEXT NOT NULL,
    pkce_verifier BLOB NOT NULL,
    sync_from BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- Linked mailboxes. Tokens are encrypted; the same mailbox linked again by the same user updates
-- the row (provider_account_id: Google sub, Microsoft "tid:oid").
CREATE TABLE mail_accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL,
    provider TEXT NOT NULL,
    provider_account_id TEXT NOT NULL,
    email TEXT NOT NULL,
    display_name TEXT,
    status TEXT NOT NULL,
    access_token BLOB NOT NULL,
    refresh_token BLOB,
    token_expires_at BIGINT,
    scopes TEXT NOT NULL,
    sync_from BIGINT,
    last_sync_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, provider, provider_account_id)
);
CREATE INDEX mail_accounts_user_id ON mail_accounts (user_id);
