DROP TRIGGER mail_threads_track ON mail_messages;
DROP FUNCTION mail_threads_track();
DROP FUNCTION mail_threads_add(BIGINT, TEXT, TEXT, BIGINT);
DROP TABLE mail_thread_counts;
DROP TABLE mail_thread_members;
