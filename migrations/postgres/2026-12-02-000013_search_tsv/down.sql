DROP INDEX mail_messages_search;
ALTER TABLE mail_messages DROP COLUMN search_tsv;
CREATE INDEX mail_messages_search ON mail_messages USING GIN
    (to_tsvector('simple'::regconfig, translate(search_text, '@./-_:+\~#=&?%', '              ')));
