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

-- Full-text search: a GIN index over the tsvector of search_text (lower-cased), with the
-- punctuation the parser would keep inside tokens (addresses, hosts, paths, hyphens) turned into
-- spaces first, so words are cut as on SQLite (db::message_list::PG_SEPARATORS; the query uses
-- the same expression). An expression index is maintained in the same transaction as the row.
CREATE INDEX mail_messages_search ON mail_messages USING GIN
    (to_tsvector('simple'::regconfig, translate(search_text, '@./-_:+\~#=&?%', '              ')));

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
    SELECT account_id, folder, COUNT(*), COUNT(*) FILTER (WHERE unread), COUNT(*) FILTER (WHERE starred)
    FROM mail_messages GROUP BY account_id, folder;

CREATE FUNCTION mail_message_counts_add(a BIGINT, f TEXT, n BIGINT, u BIGINT, s BIGINT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO mail_message_counts (account_id, folder, total, unread, starred) VALUES (a, f, n, u, s)
    ON CONFLICT (account_id, folder) DO UPDATE SET
        total = mail_message_counts.total + EXCLUDED.total,
        unread = mail_message_counts.unread + EXCLUDED.unread,
        starred = mail_message_counts.starred + EXCLUDED.starred;
$$;

CREATE FUNCTION mail_message_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM mail_message_counts_add(NEW.account_id, NEW.folder, 1, NEW.unread::int, NEW.starred::int);
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE mail_message_counts
            SET total = total - 1, unread = unread - OLD.unread::int, starred = starred - OLD.starred::int
            WHERE account_id = OLD.account_id AND folder = OLD.folder;
    ELSIF OLD.folder IS DISTINCT FROM NEW.folder OR OLD.unread IS DISTINCT FROM NEW.unread
        OR OLD.starred IS DISTINCT FROM NEW.starred THEN
        IF OLD.folder = NEW.folder THEN
            UPDATE mail_message_counts
                SET unread = unread - OLD.unread::int + NEW.unread::int,
                    starred = starred - OLD.starred::int + NEW.starred::int
                WHERE account_id = NEW.account_id AND folder = NEW.folder;
        ELSE
            UPDATE mail_message_counts
                SET total = total - 1, unread = unread - OLD.unread::int, starred = starred - OLD.starred::int
                WHERE account_id = OLD.account_id AND folder = OLD.folder;
            PERFORM mail_message_counts_add(NEW.account_id, NEW.folder, 1, NEW.unread::int, NEW.starred::int);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER mail_message_counts_track AFTER INSERT OR DELETE OR UPDATE OF folder, unread, starred
    ON mail_messages FOR EACH ROW EXECUTE FUNCTION mail_message_counts_track();

-- Changes made here (read, star, move, trash) waiting to reach the provider: written with the
-- local change, removed once the provider confirmed it, retried with backoff when it failed for a
-- while. The unread/starred/folder columns hold the wanted values (NULL: not part of the change),
-- prev_* what to restore if the provider refuses for good. While a row exists, sync keeps the
-- local value of those fields.
CREATE TABLE mail_outbox (
    id BIGSERIAL PRIMARY KEY,
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
