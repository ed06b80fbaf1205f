-- Recipients `$includes` (db::message_list::includes) tests `strpos(<column>, '\') = 0 OR
-- <JSON walk>`: rows without JSON escapes skip the walk. Without statistics on that expression
-- the planner takes it for a rare condition (about half the rows pass), halves its estimate
-- of the matches, and then prefers reading every trigram candidate and sorting them over
-- walking the date index, which is several times slower for a page (docs/benchmarks.md, fifth
-- round). Expression statistics need PostgreSQL 14; older servers keep the plans they had.
DO $$
BEGIN
    EXECUTE 'CREATE STATISTICS mail_messages_to_escapes ON (strpos(to_json, ''\'')) FROM mail_messages';
    EXECUTE 'CREATE STATISTICS mail_messages_cc_escapes ON (strpos(cc_json, ''\'')) FROM mail_messages';
    EXECUTE 'CREATE STATISTICS mail_messages_bcc_escapes ON (strpos(bcc_json, ''\'')) FROM mail_messages';
    EXECUTE 'CREATE STATISTICS mail_messages_reply_to_escapes ON (strpos(reply_to_json, ''\'')) FROM mail_messages';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'expression statistics unavailable (%): recipient filters keep their plans', SQLERRM;
END
$$;
ANALYZE mail_messages;
