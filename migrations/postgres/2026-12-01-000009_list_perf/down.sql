DROP INDEX IF EXISTS mail_messages_user_folder_thread;
DROP INDEX IF EXISTS mail_messages_user_folder_sender;
DROP INDEX IF EXISTS mail_messages_user_sender;
DROP INDEX IF EXISTS mail_messages_user_folder_subject;
DROP INDEX IF EXISTS mail_messages_user_subject;
DROP INDEX IF EXISTS mail_messages_subject_trgm;
DROP INDEX IF EXISTS mail_messages_cc_trgm;
DROP INDEX IF EXISTS mail_messages_to_trgm;
DROP INDEX IF EXISTS mail_messages_from_name_trgm;
DROP INDEX IF EXISTS mail_messages_from_address_trgm;
-- pg_trgm stays: other objects may use it.
