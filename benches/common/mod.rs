//! Shared by the benches (`mod common;`): where a bench's database lives.

use diesel::prelude::*;
use std::sync::Mutex;

/// The databases [`fresh_database`] created on a server (its URL, the name), for [`Cleanup`].
static CREATED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// A fresh database: a file in `dir`, or a new database on `BENCH_DATABASE_URL`'s server, so
/// that no bench sees what another left behind (queued recipients, copied messages).
pub fn fresh_database(dir: &std::path::Path, name: &str) -> anyhow::Result<String> {
    match std::env::var("BENCH_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let db = format!(
                "em_bench_{name}_{}",
                email_manager::crypto::random_token(6)
                    .to_lowercase()
                    .replace(['-', '_'], "x")
            );
            let mut admin = diesel::pg::PgConnection::establish(&base)?;
            diesel::sql_query(format!("CREATE DATABASE {db}")).execute(&mut admin)?;
            if let Ok(mut created) = CREATED.lock() {
                created.push((base.clone(), db.clone()));
            }
            let mut url = url::Url::parse(&base)?;
            url.set_path(&format!("/{db}"));
            Ok(url.to_string())
        }
        _ => Ok(format!(
            "sqlite://{}",
            dir.join(format!("{name}.db")).display()
        )),
    }
}

/// Drops the databases the bench created on a server when it ends (each holds a copy of a
/// 100k-message mailbox), unless they are kept to look at: a long-lived server would otherwise
/// collect one set per run. Files in a temporary folder go with the folder.
pub struct Cleanup {
    pub keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let created = CREATED
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for (base, db) in created {
            if self.keep {
                eprintln!("bench database kept: {db}");
                continue;
            }
            // FORCE: the service's pool may still hold connections to it.
            let dropped = diesel::pg::PgConnection::establish(&base)
                .map_err(|e| e.to_string())
                .and_then(|mut admin| {
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .execute(&mut admin)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = dropped {
                eprintln!("bench database {db} not dropped: {e}");
            }
        }
    }
}
