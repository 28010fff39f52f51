//! SQLite: one file, WAL mode, every write transaction `BEGIN IMMEDIATE` so
//! concurrent writers queue on the busy timeout instead of failing mid-way.

use crate::{backend_error, StoreOptions};
use carekey_domain::ports::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// Storage in an embedded SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(backend_error)?
            .create_if_missing(options.migrate)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(folder) = connect.get_filename().parent().filter(|_| options.migrate) {
            if !folder.as_os_str().is_empty() {
                std::fs::create_dir_all(folder).map_err(|e| {
                    StoreError::Backend(format!("cannot create {}: {e}", folder.display()))
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .connect_with(connect)
            .await
            .map_err(backend_error)?;
        if options.migrate {
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        }
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)
    }
}

crate::shared::impl_store!(SqliteStore, Sqlite, for_update = "", skip_locked = "");
crate::recovery::impl_recovery_store!(SqliteStore, Sqlite, for_update = "");
