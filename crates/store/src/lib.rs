//! CareKey's storage: the domain's ports implemented over sqlx, once for SQLite
//! (the default, embedded) and once for PostgreSQL (many instances).
//!
//! Both backends share their SQL (numbered `$n` parameters, millisecond times)
//! through the [`shared`] macro; what differs — how a write transaction starts,
//! how a row is locked — is each backend's own module.

mod group_commit;
mod kept;
mod policy_cache;
mod postgres;
mod recovery;
mod script;
mod shared;
mod sqlite;
mod staff;
pub mod testing;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use carekey_domain::ports::{Store, StoreError};
use std::sync::Arc;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Connection settings that do not belong in the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Create the database if missing and apply migrations (off for read-only checks).
    pub migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            migrate: true,
        }
    }
}

/// Opens the database a URL names and brings its schema up to date.
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::of_url(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(SqliteStore::connect(url, options).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(PgStore::connect(url, options).await?)),
        None => Err(StoreError::Backend(format!(
            "database_url must start with sqlite: or postgres://, not {:?}",
            url.split(':').next().unwrap_or_default()
        ))),
    }
}

/// Starts a transaction on a task of its own and hands it over. A caller
/// dropped while `BEGIN` is in flight (a request whose client hung up) would
/// otherwise leave the connection inside a transaction nobody owns: sqlx
/// counts it open, and every later `BEGIN` on that connection fails. Here the
/// task always finishes; if its caller is gone, the transaction it made is
/// dropped, which rolls it back.
pub(crate) async fn detached<DB: sqlx::Database>(
    begin: impl std::future::Future<Output = Result<sqlx::Transaction<'static, DB>, sqlx::Error>>
        + Send
        + 'static,
) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
    tokio::spawn(begin)
        .await
        .map_err(|e| StoreError::Backend(format!("starting a transaction failed: {e}")))?
        .map_err(backend_error)
}

pub(crate) fn backend_error(error: sqlx::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// Maps a unique-constraint violation to a `Conflict` on `what`.
pub(crate) fn conflict_or_backend(error: sqlx::Error, what: &'static str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => backend_error(error),
    }
}
