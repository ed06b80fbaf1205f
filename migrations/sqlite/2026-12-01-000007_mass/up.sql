-- Mass mailing and the general settings (issue 5, second half).

-- The admin's general settings: one row (id 1). NULL means "the configuration's default", so a
-- changed default in the configuration still applies where the admin set nothing.
CREATE TABLE mail_general_settings (
    id BIGINT PRIMARY KEY NOT NULL,
    sync_interval_secs BIGINT,
    initial_window_days BIGINT,
    max_attachment_bytes BIGINT,
    mass_rate_per_minute BIGINT,
    updated_at BIGINT NOT NULL
);

-- A mass mailing: the message as written (placeholders unrendered), who sends it, its state.
-- rejected: the recipients refused at creation (JSON [{index, email, reason}]).
CREATE TABLE mail_mass_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    from_name TEXT,
    from_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT,
    text_body TEXT,
    attachments TEXT NOT NULL,
    rate BIGINT,
    status TEXT NOT NULL,
    pause_reason TEXT,
    total BIGINT NOT NULL,
    rejected TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL,
    -- A job with its own (lower) rate: the earliest time of its next send. The account's pace
    -- is in mail_mass_throttle; a slow job must not hold back the account's other jobs.
    pace_next_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mail_mass_jobs_user ON mail_mass_jobs (user_id, id);
CREATE INDEX mail_mass_jobs_status ON mail_mass_jobs (status, account_id);

-- One row per recipient: the intent (status `sending`, with the Message-ID fixed at creation)
-- is written before the provider call and the result after, so a restart resolves an
-- interrupted send by looking the Message-ID up at the provider. lease_owner/lease_until: the
-- process sending it; not_before: a retry's earliest time.
CREATE TABLE mail_mass_recipients (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    job_id BIGINT NOT NULL REFERENCES mail_mass_jobs (id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    email TEXT NOT NULL,
    name TEXT,
    variables TEXT,
    status TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL DEFAULT 0,
    sent_at BIGINT,
    provider_message_id TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX mail_mass_recipients_job ON mail_mass_recipients (job_id, status, id);

-- Each account's sending pace, shared by every job and replica: next_at is the earliest time
-- of the next send (a token bucket of one, as GCRA), blocked_until a provider's Retry-After,
-- rate_permille how far a 429 lowered the rate (1000: full rate).
CREATE TABLE mail_mass_throttle (
    account_id BIGINT PRIMARY KEY NOT NULL REFERENCES mail_accounts (id) ON DELETE CASCADE,
    next_at BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL,
    rate_permille BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
