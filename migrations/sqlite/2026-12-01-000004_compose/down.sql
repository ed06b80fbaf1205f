DROP TABLE mail_aliases;
DROP TABLE mail_drafts;
DROP TABLE mail_uploads;
DROP TABLE mail_outgoing;
DROP TABLE mail_templates;
DROP TABLE mail_signatures;
