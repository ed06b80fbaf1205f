-- Search on PostgreSQL: the tsvector is stored with the row (a generated column), so a list that
-- walks the date index tests each row's words without parsing its text again (that parse was
-- most of a searched page's time). The GIN index moves from the expression to the column; the
-- expression is migration 3's, character for character (db::message_list::PG_SEPARATORS).
-- Adding the column rewrites the table once.
ALTER TABLE mail_messages ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS
    (to_tsvector('simple'::regconfig, translate(search_text, '@./-_:+\~#=&?%', '              '))) STORED;
DROP INDEX mail_messages_search;
CREATE INDEX mail_messages_search ON mail_messages USING GIN (search_tsv);
