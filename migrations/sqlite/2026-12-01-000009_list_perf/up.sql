-- List performance at 100k messages per account (docs/benchmarks.md).

-- Substring filters (`$includes`) on the sender, the recipients and the subject: a trigram index
-- (FTS5, contentless) finds the few messages that can match instead of reading every row with
-- LIKE. It only narrows: the exact condition is still tested on what it finds. The address
-- columns hold the stored JSON text, as the LIKE pre-filter reads it. Maintained by triggers,
-- in the same transaction as the message rows.
CREATE VIRTUAL TABLE mail_messages_trgm USING fts5(
    sender, to_text, cc_text, bcc_text, reply_to_text, subject,
    content = '', contentless_delete = 1, tokenize = 'trigram'
);
INSERT INTO mail_messages_trgm (rowid, sender, to_text, cc_text, bcc_text, reply_to_text, subject)
    SELECT id, from_name || ' ' || from_address, to_json, cc_json, bcc_json, reply_to_json, subject
    FROM mail_messages;
CREATE TRIGGER mail_messages_trgm_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_messages_trgm (rowid, sender, to_text, cc_text, bcc_text, reply_to_text, subject)
        VALUES (NEW.id, NEW.from_name || ' ' || NEW.from_address, NEW.to_json, NEW.cc_json,
                NEW.bcc_json, NEW.reply_to_json, NEW.subject);
END;
CREATE TRIGGER mail_messages_trgm_delete AFTER DELETE ON mail_messages BEGIN
    DELETE FROM mail_messages_trgm WHERE rowid = OLD.id;
END;
CREATE TRIGGER mail_messages_trgm_update
AFTER UPDATE OF from_name, from_address, to_json, cc_json, bcc_json, reply_to_json, subject ON mail_messages
WHEN OLD.from_name IS NOT NEW.from_name OR OLD.from_address IS NOT NEW.from_address
    OR OLD.to_json IS NOT NEW.to_json OR OLD.cc_json IS NOT NEW.cc_json
    OR OLD.bcc_json IS NOT NEW.bcc_json OR OLD.reply_to_json IS NOT NEW.reply_to_json
    OR OLD.subject IS NOT NEW.subject BEGIN
    DELETE FROM mail_messages_trgm WHERE rowid = OLD.id;
    INSERT INTO mail_messages_trgm (rowid, sender, to_text, cc_text, bcc_text, reply_to_text, subject)
        VALUES (NEW.id, NEW.from_name || ' ' || NEW.from_address, NEW.to_json, NEW.cc_json,
                NEW.bcc_json, NEW.reply_to_json, NEW.subject);
END;

-- Sorting by subject or sender (the expressions of db::message_list::SortKey): the page is read
-- off these in order, for all mail and for one folder, instead of sorting every message.
CREATE INDEX mail_messages_user_subject ON mail_messages (user_id, LOWER(subject), id);
CREATE INDEX mail_messages_user_folder_subject ON mail_messages (user_id, folder, LOWER(subject), id);
CREATE INDEX mail_messages_user_sender ON mail_messages
    (user_id, LOWER(CASE WHEN from_name <> '' THEN from_name ELSE from_address END), id);
CREATE INDEX mail_messages_user_folder_sender ON mail_messages
    (user_id, folder, LOWER(CASE WHEN from_name <> '' THEN from_name ELSE from_address END), id);

-- Counting the threads of a folder (groupBy=thread): in this order the distinct threads come
-- one after another, so they are counted off the index without sorting them first.
CREATE INDEX mail_messages_user_folder_thread ON mail_messages (user_id, folder, account_id, thread_id);
