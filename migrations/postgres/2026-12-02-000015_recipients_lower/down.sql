DROP INDEX IF EXISTS mail_messages_to_trgm;
DROP INDEX IF EXISTS mail_messages_cc_trgm;
ALTER TABLE mail_messages
    DROP COLUMN to_lower,
    DROP COLUMN cc_lower,
    DROP COLUMN bcc_lower,
    DROP COLUMN reply_to_lower;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX mail_messages_to_trgm ON mail_messages USING GIN (LOWER(to_json) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX mail_messages_cc_trgm ON mail_messages USING GIN (LOWER(cc_json) gin_trgm_ops)';
    END IF;
END
$$;
