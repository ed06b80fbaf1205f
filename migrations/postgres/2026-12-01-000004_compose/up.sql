-- Composing (issue 4): signatures, templates, uploads, and the bookkeeping the send and draft
-- actions build on. Times are Unix milliseconds, like everywhere else.

-- One user's HTML signatures; at most one default per user, enforced by a partial unique index.
CREATE TABLE mail_signatures (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    html TEXT NOT NULL,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mail_signatures_user ON mail_signatures (user_id);
CREATE UNIQUE INDEX mail_signatures_one_default ON mail_signatures (user_id) WHERE is_default;

-- Templates with {{variable}} placeholders; shared ones are readable (not writable) by everyone.
CREATE TABLE mail_templates (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    html TEXT NOT NULL DEFAULT '',
    text_body TEXT,
    shared BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mail_templates_user ON mail_templates (user_id);
CREATE INDEX mail_templates_shared ON mail_templates (shared);

-- One row per send request. The idempotency key (unique per user) makes a repeated request
-- return the first one's result; the status moves queued -> sending -> sent | failed.
-- request_json is the validated request, so a send interrupted by a restart can be resumed;
-- message_id is the RFC 5322 Message-ID we generated (found again in the sent mail by sync).
CREATE TABLE mail_outgoing (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'new',
    request_json TEXT NOT NULL DEFAULT '{}',
    message_id TEXT,
    provider_message_id TEXT,
    provider_thread_id TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX mail_outgoing_status ON mail_outgoing (status, updated_at);

-- Files uploaded ahead of a send (mailAttachments:upload). The bytes are a file under
-- mail.upload_dir named storage_name (random, never the user's file name); rows and files are
-- removed once expires_at has passed.
CREATE TABLE mail_uploads (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    storage_name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mail_uploads_user ON mail_uploads (user_id);
CREATE INDEX mail_uploads_expires_at ON mail_uploads (expires_at);

-- Drafts, written locally first (auto-save), mirrored to the provider later. revision is the
-- client's counter (last write wins by it); provider_synced_revision the one last mirrored.
CREATE TABLE mail_drafts (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    revision BIGINT NOT NULL DEFAULT 0,
    provider_draft_id TEXT,
    fields_json TEXT NOT NULL DEFAULT '{}',
    provider_synced_revision BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mail_drafts_user_account ON mail_drafts (user_id, account_id, updated_at);

-- Addresses an account may send as (Gmail send-as, verified only; Outlook: the primary one).
CREATE TABLE mail_aliases (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, address)
);
