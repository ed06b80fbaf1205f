-- Exact `groupBy=thread` counts without reading the messages (docs/benchmarks.md): the distinct
-- threads per (account, folder), and per account over all folders (folder '', which no message
-- has). `mail_thread_members` counts each thread's messages there, so the triggers know when a
-- thread appears in or leaves a folder. Kept by triggers, in the same transaction as the rows.
CREATE TABLE mail_thread_members (
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (account_id, folder, thread_id)
) WITHOUT ROWID;
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

CREATE TRIGGER mail_threads_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_thread_counts (account_id, folder, threads)
        SELECT NEW.account_id, f.folder, 1 FROM (SELECT NEW.folder AS folder UNION ALL SELECT '') f
        WHERE NOT EXISTS (SELECT 1 FROM mail_thread_members t WHERE t.account_id = NEW.account_id
                          AND t.folder = f.folder AND t.thread_id = NEW.thread_id)
        ON CONFLICT (account_id, folder) DO UPDATE SET threads = threads + 1;
    INSERT INTO mail_thread_members (account_id, folder, thread_id, messages)
        VALUES (NEW.account_id, NEW.folder, NEW.thread_id, 1), (NEW.account_id, '', NEW.thread_id, 1)
        ON CONFLICT (account_id, folder, thread_id) DO UPDATE SET messages = messages + 1;
END;

CREATE TRIGGER mail_threads_delete AFTER DELETE ON mail_messages BEGIN
    UPDATE mail_thread_members SET messages = messages - 1
        WHERE account_id = OLD.account_id AND folder IN (OLD.folder, '') AND thread_id = OLD.thread_id;
    UPDATE mail_thread_counts SET threads = threads - 1
        WHERE account_id = OLD.account_id AND folder IN (OLD.folder, '')
          AND EXISTS (SELECT 1 FROM mail_thread_members t WHERE t.account_id = OLD.account_id
                      AND t.folder = mail_thread_counts.folder AND t.thread_id = OLD.thread_id
                      AND t.messages <= 0);
    DELETE FROM mail_thread_members
        WHERE account_id = OLD.account_id AND folder IN (OLD.folder, '') AND thread_id = OLD.thread_id
          AND messages <= 0;
END;

-- A move or a new thread id: out of the old (folder, thread), into the new one.
CREATE TRIGGER mail_threads_update AFTER UPDATE OF folder, thread_id ON mail_messages
WHEN OLD.folder IS NOT NEW.folder OR OLD.thread_id IS NOT NEW.thread_id BEGIN
    UPDATE mail_thread_members SET messages = messages - 1
        WHERE account_id = OLD.account_id AND folder IN (OLD.folder, '') AND thread_id = OLD.thread_id;
    UPDATE mail_thread_counts SET threads = threads - 1
        WHERE account_id = OLD.account_id AND folder IN (OLD.folder, '')
          AND EXISTS (SELECT 1 FROM mail_thread_members t WHERE t.account_id = OLD.account_id
                      AND t.folder = mail_thread_counts.folder AND t.thread_id = OLD.thread_id
                      AND t.messages <= 0);
    DELETE FROM mail_thread_members
        WHERE account_id = OLD.account_id AND folder IN (OLD.folder, '') AND thread_id = OLD.thread_id
          AND messages <= 0;
    INSERT INTO mail_thread_counts (account_id, folder, threads)
        SELECT NEW.account_id, f.folder, 1 FROM (SELECT NEW.folder AS folder UNION ALL SELECT '') f
        WHERE NOT EXISTS (SELECT 1 FROM mail_thread_members t WHERE t.account_id = NEW.account_id
                          AND t.folder = f.folder AND t.thread_id = NEW.thread_id)
        ON CONFLICT (account_id, folder) DO UPDATE SET threads = threads + 1;
    INSERT INTO mail_thread_members (account_id, folder, thread_id, messages)
        VALUES (NEW.account_id, NEW.folder, NEW.thread_id, 1), (NEW.account_id, '', NEW.thread_id, 1)
        ON CONFLICT (account_id, folder, thread_id) DO UPDATE SET messages = messages + 1;
END;
