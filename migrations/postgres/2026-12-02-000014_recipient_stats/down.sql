DROP STATISTICS IF EXISTS mail_messages_to_escapes;
DROP STATISTICS IF EXISTS mail_messages_cc_escapes;
DROP STATISTICS IF EXISTS mail_messages_bcc_escapes;
DROP STATISTICS IF EXISTS mail_messages_reply_to_escapes;
