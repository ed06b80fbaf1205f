-- Labels, notes and to-do (issue 5). Everything here is keyed by the local message id, which a
-- resync keeps (messages are upserted, never recreated), so none of it is lost by a resync.

-- A user's labels, for messages of any of their mailboxes. name_key is the trimmed, lower-cased
-- name: names are unique per user regardless of case.
CREATE TABLE mail_labels (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    color TEXT,
    sync_error TEXT,
    sync_error_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, name_key)
);

-- Which message carries which label.
CREATE TABLE mail_message_labels (
    message_id BIGINT NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
    label_id BIGINT NOT NULL REFERENCES mail_labels (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, label_id)
);
CREATE INDEX mail_message_labels_label ON mail_message_labels (label_id, message_id);

-- A label's twin in one mailbox: the Gmail label id, or the Outlook master category (its id and
-- displayName, which is what messages carry).
CREATE TABLE mail_label_links (
    label_id BIGINT NOT NULL REFERENCES mail_labels (id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    provider_label_id TEXT NOT NULL,
    provider_name TEXT NOT NULL,
    PRIMARY KEY (label_id, account_id)
);
CREATE INDEX mail_label_links_account ON mail_label_links (account_id);

-- Label work waiting for a provider. op: `message` (bring the label of message_id in line with
-- the local state), `rename`/`recolor` (the label's twin in account_id), `delete` (the twin of a
-- label deleted here: payload keeps what the provider needs, the label row being gone). Rows say
-- what to reconcile, not what to send: delivery reads the local state then, so rows can pile up
-- and arrive in any order. label_id has no foreign key on purpose: a delete outlives its label.
CREATE TABLE mail_label_outbox (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    op TEXT NOT NULL,
    label_id BIGINT NOT NULL,
    message_id BIGINT REFERENCES mail_messages (id) ON DELETE CASCADE,
    payload TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mail_label_outbox_due ON mail_label_outbox (next_attempt_at);
CREATE INDEX mail_label_outbox_account ON mail_label_outbox (account_id);
CREATE INDEX mail_label_outbox_message ON mail_label_outbox (message_id);

-- Notes on a message, seen only by their author.
CREATE TABLE mail_message_notes (
    id BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    format TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mail_message_notes_message ON mail_message_notes (message_id, created_at, id);

-- To-do due dates; open to-dos are listed by due date.
ALTER TABLE mail_messages ADD COLUMN todo_due_at BIGINT;
CREATE INDEX mail_messages_user_todo_due ON mail_messages (user_id, todo_due_at) WHERE todo;

-- A to-do written to the provider as its star or flag: wanted and previous values, like the
-- other outbox columns (NULL: not part of the change).
ALTER TABLE mail_outbox ADD COLUMN todo BOOLEAN;
ALTER TABLE mail_outbox ADD COLUMN todo_due_at BIGINT;
ALTER TABLE mail_outbox ADD COLUMN prev_todo BOOLEAN;
ALTER TABLE mail_outbox ADD COLUMN prev_todo_due_at BIGINT;
