DROP INDEX mail_drafts_mirror;
ALTER TABLE mail_drafts DROP COLUMN deleted_at;
ALTER TABLE mail_drafts DROP COLUMN mirror_error;
ALTER TABLE mail_drafts DROP COLUMN mirror_attempts;
ALTER TABLE mail_drafts DROP COLUMN mirror_next_at;
ALTER TABLE mail_drafts DROP COLUMN mirror_locked_until;
