//! Shared by the benches (`mod common;`): where a bench's database lives.

use diesel::prelude::*;

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
