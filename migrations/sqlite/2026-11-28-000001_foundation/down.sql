DROP TABLE mail_accounts;
DROP TABLE oauth_states;
DROP TABLE mail_settings;
