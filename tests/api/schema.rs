//! The schema in `src/db/schema.rs` is what the migrations of each backend produce, and every
//! migration can be reverted and applied again.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_migrations::MigrationHarness;
use email_manager::db::schema::{
    mail_accounts, mail_attachments, mail_folders, mail_messages, mail_settings, mail_sync_runs,
    oauth_states,
};
use email_manager::db::schema::{
    mail_aliases, mail_drafts, mail_outgoing, mail_signatures, mail_templates, mail_uploads,
};
use email_manager::db::schema::{
    mail_general_settings, mail_mass_jobs, mail_mass_recipients, mail_mass_throttle,
};
use email_manager::db::schema::{
    mail_label_links, mail_label_outbox, mail_labels, mail_message_labels, mail_message_notes,
};
use email_manager::db::schema::{mail_message_counts, mail_outbox};
use email_manager::db::{Db, DbConnection, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

use crate::helpers::fresh_database_url;

/// Column names as diesel would select them, read off the generated SQL.
fn code_columns(sql: String) -> Vec<String> {
    let list = sql
        .trim_start_matches("SELECT ")
        .split(" FROM ")
        .next()
        .unwrap_or_default()
        .to_string();
    let mut cols: Vec<String> = list
        .split(", ")
        .map(|c| {
            c.rsplit('.')
                .next()
                .unwrap_or_default()
                .trim_matches('`')
                .trim_matches('"')
                .to_string()
        })
        .collect();
    cols.sort();
    cols
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

fn db_columns(conn: &mut DbConnection, table: &str) -> Vec<String> {
    let sql = match conn {
        DbConnection::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}')"),
        // Generated columns (the stored search vector, migration 13; the lower-cased recipients,
        // migration 15) are the database's own, like an index: the code never names them.
        DbConnection::Pg(_) => format!("SELECT column_name::text AS name FROM information_schema.columns WHERE table_name = '{table}' AND is_generated = 'NEVER'"),
    };
    let mut cols: Vec<String> = diesel::sql_query(sql)
        .load::<Name>(conn)
        .expect("columns")
        .into_iter()
        .map(|n| n.name)
        .collect();
    cols.sort();
    cols
}

#[actix_web::test]
async fn schema_matches_the_migrations_and_they_revert() {
    let dir = tempfile::tempdir().expect("dir");
    let (url, _) = fresh_database_url(dir.path());
    let db = Db::connect(&url, 2).expect("connect and migrate");
    assert!(db.is_ready().await);
    db.run(|conn| {
        macro_rules! columns {
            ($($table:ident),*) => {
                [$((
                    stringify!($table),
                    code_columns(
                        diesel::debug_query::<Sqlite, _>(
                            &$table::table.select($table::all_columns),
                        )
                        .to_string(),
                    ),
                )),*]
            };
        }
        let expected = columns!(
            mail_settings,
            oauth_states,
            mail_accounts,
            mail_folders,
            mail_messages,
            mail_attachments,
            mail_sync_runs,
            mail_signatures,
            mail_templates,
            mail_outgoing,
            mail_uploads,
            mail_drafts,
            mail_aliases,
            mail_message_counts,
            mail_outbox,
            mail_labels,
            mail_message_labels,
            mail_label_links,
            mail_label_outbox,
            mail_message_notes,
            mail_general_settings,
            mail_mass_jobs,
            mail_mass_recipients,
            mail_mass_throttle
        );
        for (table, cols) in expected {
            assert!(cols.len() >= 4, "{table}: {cols:?}");
            assert_eq!(db_columns(conn, table), cols, "{table}");
        }
        // Every migration reverts, and the schema comes back the same.
        match conn {
            DbConnection::Sqlite(c) => {
                c.revert_all_migrations(SQLITE_MIGRATIONS).expect("revert");
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .expect("re-apply");
            }
            DbConnection::Pg(c) => {
                c.revert_all_migrations(POSTGRES_MIGRATIONS)
                    .expect("revert");
                c.run_pending_migrations(POSTGRES_MIGRATIONS)
                    .expect("re-apply");
            }
        }
        conn.batch_execute("SELECT 1").expect("alive");
        assert!(!db_columns(conn, "mail_accounts").is_empty());
        Ok(())
    })
    .await
    .expect("checks");
}
