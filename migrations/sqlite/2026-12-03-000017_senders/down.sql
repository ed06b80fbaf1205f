-- Migration 16's sender trigram index, filled again from the messages.
DROP INDEX mail_messages_account_sender;
DROP TRIGGER mail_messages_sender_update;
DROP TRIGGER mail_messages_sender_insert;
DROP TRIGGER mail_senders_trgm_delete;
DROP TRIGGER mail_senders_trgm_insert;
DROP TABLE mail_senders_trgm;
DROP TABLE mail_senders;

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
