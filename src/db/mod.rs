//! Database access: one schema, SQLite (default, bundled) or PostgreSQL chosen by the URL.
//!
//! Diesel is synchronous; handlers reach it through [`Db::run`], which takes a pooled connection
//! on the blocking thread pool so the async workers never wait on the disk.

/// The functions of a work-queue table (`id`, `account_id`, `next_attempt_at`, `attempts`,
/// `locked_by`, `locked_until`, `last_error`, `updated_at`): `claim_due`, `complete`, `postpone`.
/// A macro because Diesel's tables are distinct types; the queues share the logic exactly.
macro_rules! work_queue {
    ($table:ident, $row:ty) => {
        /// Claims up to `limit` due rows of active accounts for `lock` until `until`.
        pub fn claim_due(
            conn: &mut DbConnection,
            lock: &str,
            now: i64,
            until: i64,
            limit: i64,
        ) -> Result<Vec<$row>, DbError> {
            use $crate::db::schema::mail_accounts;
            let candidates: Vec<i64> = $table::table
                .inner_join(mail_accounts::table.on(mail_accounts::id.eq($table::account_id)))
                .filter($table::next_attempt_at.le(now))
                .filter(
                    $table::locked_until
                        .is_null()
                        .or($table::locked_until.lt(now)),
                )
                .filter(mail_accounts::status.eq($crate::db::models::account_status::ACTIVE))
                .order($table::id.asc())
                .limit(limit)
                .select($table::id)
                .load(conn)?;
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            // The lock condition again in the UPDATE: of two processes claiming together, one
            // wins a row.
            diesel::update(
                $table::table.filter($table::id.eq_any(&candidates)).filter(
                    $table::locked_until
                        .is_null()
                        .or($table::locked_until.lt(now)),
                ),
            )
            .set((
                $table::locked_by.eq(Some(lock)),
                $table::locked_until.eq(Some(until)),
            ))
            .execute(conn)?;
            Ok($table::table
                .filter($table::locked_by.eq(lock))
                .order($table::id.asc())
                .select(<$row>::as_select())
                .load(conn)?)
        }

        /// The provider has the work: the rows are done.
        pub fn complete(conn: &mut DbConnection, ids: &[i64]) -> Result<(), DbError> {
            for chunk in ids.chunks(500) {
                diesel::delete($table::table.filter($table::id.eq_any(chunk))).execute(conn)?;
            }
            Ok(())
        }

        /// Tries again at `next_at` (unlocked); `count_attempt` false for waits that are not
        /// failures.
        pub fn postpone(
            conn: &mut DbConnection,
            ids: &[i64],
            next_at: i64,
            error: &str,
            count_attempt: bool,
            now: i64,
        ) -> Result<(), DbError> {
            let inc = i32::from(count_attempt);
            for chunk in ids.chunks(500) {
                diesel::update($table::table.filter($table::id.eq_any(chunk)))
                    .set((
                        $table::attempts.eq($table::attempts + inc),
                        $table::next_attempt_at.eq(next_at),
                        $table::locked_by.eq(None::<String>),
                        $table::locked_until.eq(None::<i64>),
                        $table::last_error.eq(Some(error)),
                        $table::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        }
    };
}

pub mod accounts;
pub mod compose;
pub mod message_changes;
pub mod message_list;
pub mod messages;
pub mod models;
pub mod oauth_states;
pub mod schema;
pub mod settings;
pub mod sync;
pub mod unread;

pub mod labels;
pub mod notes;

pub mod general_settings;
pub mod mass;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Transactions that write. On SQLite they begin `IMMEDIATE`: a deferred transaction takes the
/// write lock at its first write, and if another connection committed after its first read,
/// SQLite answers `SQLITE_BUSY` at once (the snapshot is stale; `busy_timeout` cannot help).
/// Taking the lock at `BEGIN` makes a second writer wait its turn instead. A nested call is a
/// savepoint as usual; on PostgreSQL this is a plain transaction.
pub trait WriteTransaction {
    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<diesel::result::Error>;
}

impl WriteTransaction for DbConnection {
    fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        let DbConnection::Sqlite(s) = self else {
            return self.transaction(f);
        };
        let outermost = AnsiTransactionManager::transaction_manager_status_mut(s)
            .transaction_depth()?
            .is_none();
        if !outermost {
            return self.transaction(f);
        }
        AnsiTransactionManager::begin_transaction_sql(s, "BEGIN IMMEDIATE")?;
        let result = f(self);
        // The connection is the same SQLite one: its variant cannot change.
        let DbConnection::Sqlite(s) = self else {
            return result;
        };
        match result {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(s)?;
                Ok(value)
            }
            Err(e) => {
                // A failed rollback leaves the connection broken; the pool then drops it.
                let _ = AnsiTransactionManager::rollback_transaction(s);
                Err(e)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("record not found")]
    NotFound,
    #[error("database connection unavailable: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database query failed: {0}")]
    Query(diesel::result::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database task was cancelled")]
    Cancelled,
    #[error("{0}")]
    Invalid(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => DbError::NotFound,
            other => DbError::Query(other),
        }
    }
}

/// Opens connections for r2d2, choosing the backend from the URL rather than by trial, so a
/// PostgreSQL URL can never silently become an SQLite file.
#[derive(Debug)]
struct Manager {
    backend: Backend,
    target: String,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.target).map(DbConnection::Pg),
            Backend::Sqlite => SqliteConnection::establish(&self.target).and_then(|mut c| {
                // WAL lets readers work while the sync writes; busy_timeout rides out short locks,
                // and comes first so that setting WAL on a busy database waits too instead of
                // failing the new connection ("database is locked").
                // A larger page cache and memory-mapped reads keep lists and searches off read()
                // calls at 100k messages per mailbox (mmap is address space, not heap).
                c.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456; PRAGMA wal_autocheckpoint = 10000;",
                )
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(DbConnection::Sqlite(c))
            }),
        }
        .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({:?})", self.backend)
    }
}

/// Splits `database.url` into the backend and what its driver expects.
pub fn parse_url(url: &str) -> Result<(Backend, String), DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if rest.is_empty() {
            return Err(DbError::Invalid("sqlite URL has no file path".into()));
        }
        return Ok((Backend::Sqlite, rest.to_string()));
    }
    Err(DbError::Invalid(
        "database.url must start with sqlite:// or postgres://".into(),
    ))
}

impl Db {
    /// Connects, creating the SQLite folder when needed, and applies pending migrations.
    pub fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        let (backend, target) = parse_url(url)?;
        if backend == Backend::Sqlite {
            if let Some(dir) = std::path::Path::new(&target)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DbError::Invalid(format!(
                        "cannot create database folder {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            // WAL is a property of the file. Switching to it takes an exclusive lock, which the
            // pool's connections, opened at once, would contend for ("database is locked"):
            // one connection switches first, the pool's then find it done.
            let mut first = SqliteConnection::establish(&target).map_err(|e| {
                DbError::Invalid(format!("cannot open the SQLite database {target}: {e}"))
            })?;
            first.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;")?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .connection_timeout(Duration::from_secs(10))
            // A server connection can drop while idle, so PostgreSQL's are pinged before use; an
            // SQLite file handle cannot, and the ping would be a query on every request.
            .test_on_check_out(backend == Backend::Postgres)
            .build(Manager { backend, target })?;
        let db = Db { pool, backend };
        db.migrate()?;
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn migrate(&self) -> Result<(), DbError> {
        let mut conn = self.pool.get()?;
        let result = match &mut *conn {
            DbConnection::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
            DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        };
        result.map_err(|e| DbError::Migration(e.to_string()))
    }

    /// True when the database answers and every embedded migration is applied (`/readyz`).
    pub async fn is_ready(&self) -> bool {
        self.run(|conn| {
            let pending = match conn {
                DbConnection::Pg(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
                DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
            };
            pending.map_err(|e| DbError::Migration(e.to_string()))
        })
        .await
        .map(|pending| !pending)
        .unwrap_or(false)
    }

    /// Runs `f` on the calling thread: only for start-up checks, before the server runs.
    pub fn run_now<T>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut conn = self.pool.get()?;
        f(&mut conn)
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|_| DbError::Cancelled)?
    }
}

pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Work<'a> = &'a mut dyn FnMut(&mut DbConnection) -> Result<(), DbError>;
    type Begin = fn(&mut DbConnection, Work<'_>) -> Result<(), DbError>;

    /// Writer A reads, writer B writes and commits, then A writes: `begin` opens A's transaction.
    fn two_writers(begin: Begin) -> (Result<(), DbError>, Result<(), DbError>, i64) {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let db = Db::connect(&url, 2).expect("db");
        db.run_now(|c| Ok(c.batch_execute("CREATE TABLE t (x INTEGER)")?))
            .expect("table");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let a = {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                db.run_now(|c| {
                    begin(c, &mut |c| {
                        c.batch_execute("SELECT COUNT(*) FROM t")?;
                        barrier.wait();
                        std::thread::sleep(Duration::from_millis(300));
                        Ok(c.batch_execute("INSERT INTO t VALUES (1)")?)
                    })
                })
            })
        };
        barrier.wait();
        let b = db.run_now(|c| Ok(c.batch_execute("INSERT INTO t VALUES (2)")?));
        let a = a.join().expect("writer a");
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let rows = db
            .run_now(|c| {
                use diesel::RunQueryDsl;
                Ok(diesel::sql_query("SELECT COUNT(*) AS n FROM t").get_result::<N>(c)?)
            })
            .expect("count")
            .n;
        (a, b, rows)
    }

    #[test]
    fn a_write_transaction_that_reads_first_waits_for_another_writer_instead_of_failing() {
        // A deferred transaction: B commits while A only reads, and A's write then fails at
        // once ("database is locked") — what write_transaction exists to prevent.
        let (a, b, rows) = two_writers(|c, f| c.transaction(|c| f(c)));
        assert!(b.is_ok(), "{b:?}");
        assert!(
            matches!(&a, Err(DbError::Query(e)) if e.to_string().contains("locked")),
            "{a:?}"
        );
        assert_eq!(rows, 1);
        // BEGIN IMMEDIATE: B waits for A's commit, and both writes land.
        let (a, b, rows) = two_writers(|c, f| c.write_transaction(|c| f(c)));
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert_eq!(rows, 2);
    }

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(
            parse_url("sqlite://data/x.db").expect("ok"),
            (Backend::Sqlite, "data/x.db".into())
        );
        assert_eq!(
            parse_url("sqlite:/tmp/x.db").expect("ok"),
            (Backend::Sqlite, "/tmp/x.db".into())
        );
        assert_eq!(
            parse_url("postgres://u@h/db").expect("ok").0,
            Backend::Postgres
        );
        assert!(parse_url("mysql://x").is_err());
        assert!(parse_url("sqlite://").is_err());
    }
}
