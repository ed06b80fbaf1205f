-- Back to the indexes of migrations 3 (words) and 11 (trigrams), keyed by message id.
DROP TRIGGER mail_messages_fts_update;
DROP TRIGGER mail_messages_fts_delete;
DROP TRIGGER mail_messages_fts_insert;
DROP TABLE mail_messages_fts;
DROP TRIGGER mail_messages_trgm_update;
DROP TRIGGER mail_messages_trgm_delete;
DROP TRIGGER mail_messages_trgm_insert;
DROP TABLE mail_messages_trgm;
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
CREATE VIRTUAL TABLE mail_messages_trgm USING fts5(
    account_key, from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject,
    content = '', contentless_delete = 1, tokenize = 'trigram case_sensitive 1'
);
INSERT INTO mail_messages_trgm (rowid, account_key, from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject)
    SELECT id,
        '<a' || account_id || '>',
        LOWER(from_name),
        LOWER(from_address),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(reply_to_json) j),
        LOWER(subject)
    FROM mail_messages;
CREATE TRIGGER mail_messages_trgm_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_messages_trgm (rowid, account_key, from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject)
    VALUES (NEW.id,
        '<a' || NEW.account_id || '>',
        LOWER(NEW.from_name),
        LOWER(NEW.from_address),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.reply_to_json) j),
        LOWER(NEW.subject));
END;
CREATE TRIGGER mail_messages_trgm_delete AFTER DELETE ON mail_messages BEGIN
    DELETE FROM mail_messages_trgm WHERE rowid = OLD.id;
END;
CREATE TRIGGER mail_messages_trgm_update
AFTER UPDATE OF account_id, from_name, from_address, to_json, cc_json, bcc_json, reply_to_json, subject ON mail_messages
WHEN OLD.account_id IS NOT NEW.account_id OR OLD.from_name IS NOT NEW.from_name
    OR OLD.from_address IS NOT NEW.from_address OR OLD.to_json IS NOT NEW.to_json
    OR OLD.cc_json IS NOT NEW.cc_json OR OLD.bcc_json IS NOT NEW.bcc_json
    OR OLD.reply_to_json IS NOT NEW.reply_to_json OR OLD.subject IS NOT NEW.subject BEGIN
    DELETE FROM mail_messages_trgm WHERE rowid = OLD.id;
    INSERT INTO mail_messages_trgm (rowid, account_key, from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject)
    VALUES (NEW.id,
        '<a' || NEW.account_id || '>',
        LOWER(NEW.from_name),
        LOWER(NEW.from_address),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.reply_to_json) j),
        LOWER(NEW.subject));
END;
