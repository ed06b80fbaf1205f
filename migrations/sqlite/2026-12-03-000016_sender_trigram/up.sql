-- The sender gets a trigram index of its own: in the shared one, a sender `$includes` read the
-- doclists of its trigrams over every recipient and subject too (a third of the lookup's time at
-- 100k messages, docs/benchmarks.md, seventh round). Same keys as migration 12.
DROP TRIGGER mail_messages_trgm_update;
DROP TRIGGER mail_messages_trgm_delete;
DROP TRIGGER mail_messages_trgm_insert;
DROP TABLE mail_messages_trgm;

CREATE VIRTUAL TABLE mail_messages_trgm_from USING fts5(
    from_name, from_address,
    content = '', contentless_delete = 1, tokenize = 'trigram case_sensitive 1'
);
INSERT INTO mail_messages_trgm_from (rowid, from_name, from_address)
    SELECT ((account_id << 40) | ((CASE folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | id), LOWER(from_name), LOWER(from_address)
    FROM mail_messages ORDER BY 1;
CREATE TRIGGER mail_messages_trgm_from_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_messages_trgm_from (rowid, from_name, from_address)
    VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id), LOWER(NEW.from_name), LOWER(NEW.from_address));
END;
CREATE TRIGGER mail_messages_trgm_from_delete AFTER DELETE ON mail_messages BEGIN
    DELETE FROM mail_messages_trgm_from WHERE rowid = ((OLD.account_id << 40) | ((CASE OLD.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | OLD.id);
END;
CREATE TRIGGER mail_messages_trgm_from_update
AFTER UPDATE OF account_id, folder, from_name, from_address ON mail_messages
WHEN OLD.account_id IS NOT NEW.account_id OR OLD.folder IS NOT NEW.folder
    OR OLD.from_name IS NOT NEW.from_name OR OLD.from_address IS NOT NEW.from_address BEGIN
    DELETE FROM mail_messages_trgm_from WHERE rowid = ((OLD.account_id << 40) | ((CASE OLD.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | OLD.id);
    INSERT INTO mail_messages_trgm_from (rowid, from_name, from_address)
    VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id), LOWER(NEW.from_name), LOWER(NEW.from_address));
END;

CREATE VIRTUAL TABLE mail_messages_trgm USING fts5(
    to_text, cc_text, bcc_text, reply_to_text, subject,
    content = '', contentless_delete = 1, tokenize = 'trigram case_sensitive 1'
);
INSERT INTO mail_messages_trgm (rowid, to_text, cc_text, bcc_text, reply_to_text, subject)
    SELECT ((account_id << 40) | ((CASE folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | id),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(reply_to_json) j),
        LOWER(subject)
    FROM mail_messages ORDER BY 1;
CREATE TRIGGER mail_messages_trgm_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_messages_trgm (rowid, to_text, cc_text, bcc_text, reply_to_text, subject)
    VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.reply_to_json) j),
        LOWER(NEW.subject));
END;
CREATE TRIGGER mail_messages_trgm_delete AFTER DELETE ON mail_messages BEGIN
    DELETE FROM mail_messages_trgm WHERE rowid = ((OLD.account_id << 40) | ((CASE OLD.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | OLD.id);
END;
CREATE TRIGGER mail_messages_trgm_update
AFTER UPDATE OF account_id, folder, to_json, cc_json, bcc_json, reply_to_json, subject ON mail_messages
WHEN OLD.account_id IS NOT NEW.account_id OR OLD.folder IS NOT NEW.folder
    OR OLD.to_json IS NOT NEW.to_json OR OLD.cc_json IS NOT NEW.cc_json
    OR OLD.bcc_json IS NOT NEW.bcc_json OR OLD.reply_to_json IS NOT NEW.reply_to_json
    OR OLD.subject IS NOT NEW.subject BEGIN
    DELETE FROM mail_messages_trgm WHERE rowid = ((OLD.account_id << 40) | ((CASE OLD.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | OLD.id);
    INSERT INTO mail_messages_trgm (rowid, to_text, cc_text, bcc_text, reply_to_text, subject)
    VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.reply_to_json) j),
        LOWER(NEW.subject));
END;
