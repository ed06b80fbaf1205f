-- A sender `$includes` looks its needle up among the account's distinct senders, then reads the
-- messages of the matching ones off an index on the sender. The per-message trigram index of
-- migration 16 decoded a position list per matching message (1.4 ms for 6,060 of 100k); a
-- mailbox has far fewer senders than messages, and the index read is a few hundred µs for the
-- same matches (docs/benchmarks.md, eighth round).
--
-- A sender is kept once seen, even when its last message goes: it only names messages through
-- the index, so a stale one matches none, and there are at most as many as senders ever seen.
DROP TRIGGER mail_messages_trgm_from_update;
DROP TRIGGER mail_messages_trgm_from_delete;
DROP TRIGGER mail_messages_trgm_from_insert;
DROP TABLE mail_messages_trgm_from;

CREATE TABLE mail_senders (
    id INTEGER PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    from_address TEXT NOT NULL,
    from_name TEXT NOT NULL,
    UNIQUE (account_id, from_address, from_name)
);
-- Keyed `account << 40 | sender id`, so an account's senders are one range of keys (as the
-- message indexes of migration 12 are).
CREATE VIRTUAL TABLE mail_senders_trgm USING fts5(
    from_name, from_address,
    content = '', contentless_delete = 1, tokenize = 'trigram case_sensitive 1'
);
CREATE TRIGGER mail_senders_trgm_insert AFTER INSERT ON mail_senders BEGIN
    INSERT INTO mail_senders_trgm (rowid, from_name, from_address)
    VALUES ((NEW.account_id << 40) | NEW.id, LOWER(NEW.from_name), LOWER(NEW.from_address));
END;
CREATE TRIGGER mail_senders_trgm_delete AFTER DELETE ON mail_senders BEGIN
    DELETE FROM mail_senders_trgm WHERE rowid = (OLD.account_id << 40) | OLD.id;
END;

INSERT INTO mail_senders (account_id, from_address, from_name)
    SELECT DISTINCT account_id, from_address, from_name FROM mail_messages ORDER BY 1, 2, 3;
CREATE TRIGGER mail_messages_sender_insert AFTER INSERT ON mail_messages BEGIN
    INSERT OR IGNORE INTO mail_senders (account_id, from_address, from_name)
    VALUES (NEW.account_id, NEW.from_address, NEW.from_name);
END;
CREATE TRIGGER mail_messages_sender_update
AFTER UPDATE OF account_id, from_address, from_name ON mail_messages
WHEN OLD.account_id IS NOT NEW.account_id OR OLD.from_address IS NOT NEW.from_address
    OR OLD.from_name IS NOT NEW.from_name BEGIN
    INSERT OR IGNORE INTO mail_senders (account_id, from_address, from_name)
    VALUES (NEW.account_id, NEW.from_address, NEW.from_name);
END;
CREATE INDEX mail_messages_account_sender ON mail_messages (account_id, from_address, from_name);
