DROP TABLE mail_mass_throttle;
DROP TABLE mail_mass_recipients;
DROP TABLE mail_mass_jobs;
DROP TABLE mail_general_settings;
