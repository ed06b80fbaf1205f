-- Exact `groupBy=thread` counts without reading the messages (docs/benchmarks.md): the distinct
-- threads per (account, folder), and per account over all folders (folder '', which no message
-- has). `mail_thread_members` counts each thread's messages there, so the trigger knows when a
-- thread appears in or leaves a folder. Kept by a trigger, in the same transaction as the rows.
CREATE TABLE mail_thread_members (
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (account_id, folder, thread_id)
);
CREATE TABLE mail_thread_counts (
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    threads BIGINT NOT NULL,
    PRIMARY KEY (account_id, folder)
);
INSERT INTO mail_thread_members (account_id, folder, thread_id, messages)
    SELECT account_id, folder, thread_id, COUNT(*) FROM mail_messages GROUP BY account_id, folder, thread_id;
INSERT INTO mail_thread_members (account_id, folder, thread_id, messages)
    SELECT account_id, '', thread_id, COUNT(*) FROM mail_messages GROUP BY account_id, thread_id;
INSERT INTO mail_thread_counts (account_id, folder, threads)
    SELECT account_id, folder, COUNT(*) FROM mail_thread_members GROUP BY account_id, folder;

-- One message into (or, n = -1, out of) a folder's thread and the account's.
CREATE FUNCTION mail_threads_add(a BIGINT, f TEXT, t TEXT, n BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    key TEXT;
    left_over BIGINT;
BEGIN
    FOREACH key IN ARRAY ARRAY[f, ''] LOOP
        IF n > 0 THEN
            INSERT INTO mail_thread_members (account_id, folder, thread_id, messages) VALUES (a, key, t, n)
            ON CONFLICT (account_id, folder, thread_id) DO UPDATE
                SET messages = mail_thread_members.messages + EXCLUDED.messages
            RETURNING messages INTO left_over;
            IF left_over = n THEN
                INSERT INTO mail_thread_counts (account_id, folder, threads) VALUES (a, key, 1)
                ON CONFLICT (account_id, folder) DO UPDATE SET threads = mail_thread_counts.threads + 1;
            END IF;
        ELSE
            -- An UPDATE, never an INSERT: while an account is deleted its rows may be gone first.
            UPDATE mail_thread_members SET messages = messages + n
                WHERE account_id = a AND folder = key AND thread_id = t
            RETURNING messages INTO left_over;
            IF FOUND AND left_over <= 0 THEN
                DELETE FROM mail_thread_members WHERE account_id = a AND folder = key AND thread_id = t;
                UPDATE mail_thread_counts SET threads = threads - 1 WHERE account_id = a AND folder = key;
            END IF;
        END IF;
    END LOOP;
END;
$$;

CREATE FUNCTION mail_threads_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM mail_threads_add(NEW.account_id, NEW.folder, NEW.thread_id, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM mail_threads_add(OLD.account_id, OLD.folder, OLD.thread_id, -1);
    ELSIF OLD.folder IS DISTINCT FROM NEW.folder OR OLD.thread_id IS DISTINCT FROM NEW.thread_id THEN
        PERFORM mail_threads_add(OLD.account_id, OLD.folder, OLD.thread_id, -1);
        PERFORM mail_threads_add(NEW.account_id, NEW.folder, NEW.thread_id, 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER mail_threads_track AFTER INSERT OR DELETE OR UPDATE OF folder, thread_id
    ON mail_messages FOR EACH ROW EXECUTE FUNCTION mail_threads_track();
