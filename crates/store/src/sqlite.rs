//! SQLite: one file in WAL mode. Readers share a pool; every write goes
//! through one writer connection (`BEGIN IMMEDIATE` transactions), so writers
//! queue in order in the process instead of sleeping on SQLite's busy handler.

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
    /// The single connection that writes.
    writer: SqlitePool,
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await
            .map_err(backend_error)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .connect_with(connect.create_if_missing(false))
            .await
            .map_err(backend_error)?;
        if options.migrate {
            sqlx::migrate!("./migrations/sqlite")
                .run(&writer)
                .await
                .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        }
        Ok(Self { pool, writer })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)
    }
}

crate::shared::impl_store!(SqliteStore, Sqlite, for_update = "", skip_locked = "");
crate::recovery::impl_recovery_store!(SqliteStore, Sqlite, for_update = "");
crate::staff::impl_staff_store!(SqliteStore, Sqlite, for_update = "");
