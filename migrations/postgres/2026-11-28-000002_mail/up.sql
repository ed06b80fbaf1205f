-- Sync state on the account. The cursor is the provider adapter's own JSON (Gmail historyId or
-- listing position; Graph per-folder delta links), stored only with the changes it covers.
-- sync_gen numbers full listings: a full resync marks what it saw and removes the rest.
-- lease_owner/lease_until let one process (of several replicas) sync an account at a time.
ALTER TABLE mail_accounts ADD COLUMN sync_cursor TEXT;
ALTER TABLE mail_accounts ADD COLUMN sync_gen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mail_accounts ADD COLUMN next_sync_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mail_accounts ADD COLUMN lease_owner TEXT;
ALTER TABLE mail_accounts ADD COLUMN lease_until BIGINT;
CREATE INDEX mail_accounts_next_sync_at ON mail_accounts (next_sync_at);

-- Folders as the provider names them (Graph user folders; Gmail's system folders are fixed).
CREATE TABLE mail_folders (
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    name TEXT NOT NULL,
    provider_folder_id TEXT NOT NULL,
    PRIMARY KEY (account_id, folder)
);

-- One row per message per account, upserted on (account_id, provider_message_id).
-- Addresses are JSON arrays of {"name","address"}; search_text is the lower-cased text searched
-- by mailMessages:list `search`.
CREATE TABLE mail_messages (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    provider_message_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    message_id TEXT,
    in_reply_to TEXT,
    references_header TEXT,
    from_address TEXT NOT NULL DEFAULT '',
    from_name TEXT NOT NULL DEFAULT '',
    to_json TEXT NOT NULL DEFAULT '[]',
    cc_json TEXT NOT NULL DEFAULT '[]',
    bcc_json TEXT NOT NULL DEFAULT '[]',
    reply_to_json TEXT NOT NULL DEFAULT '[]',
    subject TEXT NOT NULL DEFAULT '',
    snippet TEXT NOT NULL DEFAULT '',
    date BIGINT NOT NULL,
    folder TEXT NOT NULL,
    provider_labels TEXT NOT NULL DEFAULT '[]',
    unread BOOLEAN NOT NULL DEFAULT FALSE,
    starred BOOLEAN NOT NULL DEFAULT FALSE,
    todo BOOLEAN NOT NULL DEFAULT FALSE,
    draft BOOLEAN NOT NULL DEFAULT FALSE,
    has_attachments BOOLEAN NOT NULL DEFAULT FALSE,
    size BIGINT NOT NULL DEFAULT 0,
    text_body TEXT,
    html_body TEXT,
    search_text TEXT NOT NULL DEFAULT '',
    sync_gen BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, provider_message_id)
);
CREATE INDEX mail_messages_user_date ON mail_messages (user_id, date DESC, id DESC);
CREATE INDEX mail_messages_account_folder_date ON mail_messages (account_id, folder, date DESC, id DESC);
CREATE INDEX mail_messages_account_thread ON mail_messages (account_id, thread_id);
CREATE INDEX mail_messages_account_gen ON mail_messages (account_id, sync_gen);

-- Attachment metadata; the bytes stay at the provider (part_index: position in the parsed MIME).
CREATE TABLE mail_attachments (
    id BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    part_index INTEGER NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_id TEXT,
    inline BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX mail_attachments_message ON mail_attachments (message_id);

-- Sync run history (mailSyncRuns:list).
CREATE TABLE mail_sync_runs (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    added BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    removed BIGINT NOT NULL DEFAULT 0,
    error_kind TEXT,
    error_message TEXT
);
CREATE INDEX mail_sync_runs_account ON mail_sync_runs (account_id, started_at DESC);
