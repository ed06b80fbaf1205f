DROP TRIGGER mail_threads_update;
DROP TRIGGER mail_threads_delete;
DROP TRIGGER mail_threads_insert;
DROP TABLE mail_thread_counts;
DROP TABLE mail_thread_members;
