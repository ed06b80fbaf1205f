-- Read side of the mail center: indexes for the common list filters and sorts, full-text search,
-- per-folder counters (cheap list counts), and the outbox of changes written to the provider.

-- Lists are always scoped to one user and sorted newest first; these cover the usual views
-- (a folder across accounts, unread, starred, to-do) so a page is read straight off an index.
-- (account_id, thread_id at the end let a folder's threads be counted off the index alone.)
CREATE INDEX mail_messages_user_folder_date ON mail_messages (user_id, folder, date DESC, id DESC, account_id, thread_id);
CREATE INDEX mail_messages_user_unread_date ON mail_messages (user_id, date DESC, id DESC) WHERE unread;
CREATE INDEX mail_messages_user_folder_unread_date ON mail_messages (user_id, folder, date DESC, id DESC) WHERE unread;
CREATE INDEX mail_messages_user_starred_date ON mail_messages (user_id, date DESC, id DESC) WHERE starred;
CREATE INDEX mail_messages_user_todo_date ON mail_messages (user_id, date DESC, id DESC) WHERE todo;
CREATE INDEX mail_messages_user_attachments_date ON mail_messages (user_id, date DESC, id DESC) WHERE has_attachments;
-- Thread grouping: the newer messages of a thread, and the threads of a user, off one index.
CREATE INDEX mail_messages_user_thread_date ON mail_messages (user_id, account_id, thread_id, date DESC, id DESC);

-- Full-text search (FTS5, contentless: the text is in mail_messages.search_text). account_key and
-- folder_key let a search scoped to accounts and a well-known folder be answered, and counted,
-- by the index alone. Maintained by triggers, so in the same transaction as the message rows.
CREATE VIRTUAL TABLE mail_messages_fts USING fts5(
    account_key, folder_key, document,
    content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0', prefix = '2 3'
);
INSERT INTO mail_messages_fts (rowid, account_key, folder_key, document)
    SELECT id, 'a' || account_id, folder, search_text FROM mail_messages;
CREATE TRIGGER mail_messages_fts_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_messages_fts (rowid, account_key, folder_key, document)
        VALUES (NEW.id, 'a' || NEW.account_id, NEW.folder, NEW.search_text);
END;
CREATE TRIGGER mail_messages_fts_delete AFTER DELETE ON mail_messages BEGIN
    DELETE FROM mail_messages_fts WHERE rowid = OLD.id;
END;
CREATE TRIGGER mail_messages_fts_update AFTER UPDATE OF folder, search_text ON mail_messages
WHEN OLD.folder IS NOT NEW.folder OR OLD.search_text IS NOT NEW.search_text BEGIN
    DELETE FROM mail_messages_fts WHERE rowid = OLD.id;
    INSERT INTO mail_messages_fts (rowid, account_key, folder_key, document)
        VALUES (NEW.id, 'a' || NEW.account_id, NEW.folder, NEW.search_text);
END;

-- Messages per (account, folder), with unread and starred counts: a list filtered by account,
-- folder and read or star state is counted from here instead of by scanning the messages.
CREATE TABLE mail_message_counts (
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    total BIGINT NOT NULL DEFAULT 0,
    unread BIGINT NOT NULL DEFAULT 0,
    starred BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, folder)
);
INSERT INTO mail_message_counts (account_id, folder, total, unread, starred)
    SELECT account_id, folder, COUNT(*), SUM(unread), SUM(starred) FROM mail_messages
    GROUP BY account_id, folder;
CREATE TRIGGER mail_message_counts_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_message_counts (account_id, folder, total, unread, starred)
        VALUES (NEW.account_id, NEW.folder, 1, NEW.unread, NEW.starred)
        ON CONFLICT (account_id, folder) DO UPDATE SET
            total = total + 1, unread = unread + excluded.unread, starred = starred + excluded.starred;
END;
CREATE TRIGGER mail_message_counts_delete AFTER DELETE ON mail_messages BEGIN
    UPDATE mail_message_counts
        SET total = total - 1, unread = unread - OLD.unread, starred = starred - OLD.starred
        WHERE account_id = OLD.account_id AND folder = OLD.folder;
END;
CREATE TRIGGER mail_message_counts_update AFTER UPDATE OF folder, unread, starred ON mail_messages
WHEN OLD.folder IS NOT NEW.folder OR OLD.unread IS NOT NEW.unread OR OLD.starred IS NOT NEW.starred BEGIN
    UPDATE mail_message_counts
        SET total = total - 1, unread = unread - OLD.unread, starred = starred - OLD.starred
        WHERE account_id = OLD.account_id AND folder = OLD.folder;
    INSERT INTO mail_message_counts (account_id, folder, total, unread, starred)
        VALUES (NEW.account_id, NEW.folder, 1, NEW.unread, NEW.starred)
        ON CONFLICT (account_id, folder) DO UPDATE SET
            total = total + 1, unread = unread + excluded.unread, starred = starred + excluded.starred;
END;

-- Changes made here (read, star, move, trash) waiting to reach the provider: written with the
-- local change, removed once the provider confirmed it, retried with backoff when it failed for a
-- while. The unread/starred/folder columns hold the wanted values (NULL: not part of the change),
-- prev_* what to restore if the provider refuses for good. While a row exists, sync keeps the
-- local value of those fields.
CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    message_id BIGINT NOT NULL REFERENCES mail_messages (id) ON DELETE CASCADE,
    provider_message_id TEXT NOT NULL,
    unread BOOLEAN,
    starred BOOLEAN,
    folder TEXT,
    prev_unread BOOLEAN,
    prev_starred BOOLEAN,
    prev_folder TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);
CREATE INDEX mail_outbox_message ON mail_outbox (message_id);
CREATE INDEX mail_outbox_account ON mail_outbox (account_id);
