-- Search keys (docs/benchmarks.md, "List"): both full-text indexes are keyed by
--   account_id << 40 | folder code << 37 | message id
-- (folder code: inbox 1, sent 2, drafts 3, archive 4, spam 5, trash 6, any other folder 0; the
-- same as db::message_list::folder_code). A search scoped to accounts and a well-known folder then
-- reads one rowid range per account instead of intersecting with an account or folder term whose
-- doclist holds every message of the mailbox. Limits: 2^23 accounts, 2^37 messages.
--
-- The word index keeps no positions (detail = 'none': a search is words, never phrases) and has
-- prefix indexes up to 8 characters, so a word typed in part is one doclist, not a merge of every
-- word it begins. A message's key changes when it moves folder: the triggers delete the old key
-- and insert the new one. Inserting in key order (db::messages::insert_many sorts each batch by
-- account and folder code) keeps FTS5 from flushing its pending terms at every smaller key.

DROP TRIGGER mail_messages_fts_update;
DROP TRIGGER mail_messages_fts_delete;
DROP TRIGGER mail_messages_fts_insert;
DROP TABLE mail_messages_fts;
CREATE VIRTUAL TABLE mail_messages_fts USING fts5(
    document,
    content = '', contentless_delete = 1, detail = 'none',
    tokenize = 'unicode61 remove_diacritics 0', prefix = '2 3 4 5 6 7 8'
);
INSERT INTO mail_messages_fts (rowid, document)
    SELECT ((account_id << 40) | ((CASE folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | id), search_text FROM mail_messages ORDER BY 1;
CREATE TRIGGER mail_messages_fts_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_messages_fts (rowid, document) VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id), NEW.search_text);
END;
CREATE TRIGGER mail_messages_fts_delete AFTER DELETE ON mail_messages BEGIN
    DELETE FROM mail_messages_fts WHERE rowid = ((OLD.account_id << 40) | ((CASE OLD.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | OLD.id);
END;
CREATE TRIGGER mail_messages_fts_update AFTER UPDATE OF account_id, folder, search_text ON mail_messages
WHEN OLD.account_id IS NOT NEW.account_id OR OLD.folder IS NOT NEW.folder
    OR OLD.search_text IS NOT NEW.search_text BEGIN
    DELETE FROM mail_messages_fts WHERE rowid = ((OLD.account_id << 40) | ((CASE OLD.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | OLD.id);
    INSERT INTO mail_messages_fts (rowid, document) VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id), NEW.search_text);
END;

-- The trigram index of migration 11, keyed the same way (its account_key column is the range).
DROP TRIGGER mail_messages_trgm_update;
DROP TRIGGER mail_messages_trgm_delete;
DROP TRIGGER mail_messages_trgm_insert;
DROP TABLE mail_messages_trgm;
CREATE VIRTUAL TABLE mail_messages_trgm USING fts5(
    from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject,
    content = '', contentless_delete = 1, tokenize = 'trigram case_sensitive 1'
);
INSERT INTO mail_messages_trgm (rowid, from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject)
    SELECT ((account_id << 40) | ((CASE folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | id),
        LOWER(from_name),
        LOWER(from_address),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(reply_to_json) j),
        LOWER(subject)
    FROM mail_messages ORDER BY 1;
CREATE TRIGGER mail_messages_trgm_insert AFTER INSERT ON mail_messages BEGIN
    INSERT INTO mail_messages_trgm (rowid, from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject)
    VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id),
        LOWER(NEW.from_name),
        LOWER(NEW.from_address),
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
AFTER UPDATE OF account_id, folder, from_name, from_address, to_json, cc_json, bcc_json, reply_to_json, subject ON mail_messages
WHEN OLD.account_id IS NOT NEW.account_id OR OLD.folder IS NOT NEW.folder
    OR OLD.from_name IS NOT NEW.from_name
    OR OLD.from_address IS NOT NEW.from_address OR OLD.to_json IS NOT NEW.to_json
    OR OLD.cc_json IS NOT NEW.cc_json OR OLD.bcc_json IS NOT NEW.bcc_json
    OR OLD.reply_to_json IS NOT NEW.reply_to_json OR OLD.subject IS NOT NEW.subject BEGIN
    DELETE FROM mail_messages_trgm WHERE rowid = ((OLD.account_id << 40) | ((CASE OLD.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | OLD.id);
    INSERT INTO mail_messages_trgm (rowid, from_name, from_address, to_text, cc_text, bcc_text, reply_to_text, subject)
    VALUES (((NEW.account_id << 40) | ((CASE NEW.folder WHEN 'inbox' THEN 1 WHEN 'sent' THEN 2 WHEN 'drafts' THEN 3 WHEN 'archive' THEN 4 WHEN 'spam' THEN 5 WHEN 'trash' THEN 6 ELSE 0 END) << 37) | NEW.id),
        LOWER(NEW.from_name),
        LOWER(NEW.from_address),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.to_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.cc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.bcc_json) j),
        (SELECT group_concat(LOWER(COALESCE(json_extract(j.value, '$.name'), '')) || char(10) || LOWER(COALESCE(json_extract(j.value, '$.address'), '')), char(10)) FROM json_each(NEW.reply_to_json) j),
        LOWER(NEW.subject));
END;
