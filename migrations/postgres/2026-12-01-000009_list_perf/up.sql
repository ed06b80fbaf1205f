-- List performance at 100k messages per account (docs/benchmarks.md).

-- Substring filters (`$includes`) on the sender, the recipients and the subject: trigram GIN
-- indexes (pg_trgm) on the very expressions db::message_list compares with LIKE, so the planner
-- can find the few matching messages instead of reading every row. pg_trgm ships with
-- PostgreSQL and is a trusted extension (the database owner may create it); where it cannot be
-- created the filters keep working, by scanning.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%): $includes filters will scan', SQLERRM;
END
$$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX mail_messages_from_address_trgm ON mail_messages USING GIN (LOWER(from_address) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX mail_messages_from_name_trgm ON mail_messages USING GIN (LOWER(from_name) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX mail_messages_to_trgm ON mail_messages USING GIN (LOWER(to_json) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX mail_messages_cc_trgm ON mail_messages USING GIN (LOWER(cc_json) gin_trgm_ops)';
        EXECUTE 'CREATE INDEX mail_messages_subject_trgm ON mail_messages USING GIN ((COALESCE(LOWER(subject), '''')) gin_trgm_ops)';
    END IF;
END
$$;

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
