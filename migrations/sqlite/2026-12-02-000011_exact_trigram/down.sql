-- Back to migration 9's trigram index (a narrowing one over the raw text).
DROP TRIGGER mail_messages_trgm_update;
DROP TRIGGER mail_messages_trgm_delete;
DROP TRIGGER mail_messages_trgm_insert;
DROP TABLE mail_messages_trgm;
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
