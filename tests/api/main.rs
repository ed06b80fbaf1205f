//! Integration tests: the real sidecar on port 0 against the provider sandbox, one fresh
//! database per test (SQLite, or PostgreSQL when TEST_DATABASE_URL is set).

mod auth;
mod browser;
mod compose;
mod drafts;
mod helpers;
mod linking;
mod messages;
mod ops;
mod schema;
mod send;
mod settings;
mod sync;
mod webdriver;

mod labels;
mod mail_center_compose;
mod notes;

mod mail_center;
mod mass;
