-- Sending for real (issue 4): what the draft mirror needs. A draft is mirrored to the provider
-- by a background worker once it has been quiet for mail.draft_mirror_delay_ms; the worker
-- claims it (mirror_locked_until) so two replicas never mirror one draft at once, and backs off
-- (mirror_next_at, mirror_attempts, mirror_error) while the provider fails. A draft deleted or
-- sent here keeps its row (deleted_at) until its provider copy is gone too.
ALTER TABLE mail_drafts ADD COLUMN mirror_locked_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mail_drafts ADD COLUMN mirror_next_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mail_drafts ADD COLUMN mirror_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_drafts ADD COLUMN mirror_error TEXT;
ALTER TABLE mail_drafts ADD COLUMN deleted_at BIGINT;
CREATE INDEX mail_drafts_mirror ON mail_drafts (mirror_next_at, updated_at);
