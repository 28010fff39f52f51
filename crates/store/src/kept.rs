//! Connections kept out of sqlx's pool for the lookup every recovery request
//! makes. sqlx tests a pooled connection each time it comes back, on a task
//! of its own (on SQLite a second turn of the connection's thread, on
//! PostgreSQL a round trip), and on PostgreSQL again each time it is lent:
//! three trips to the database for one lookup. A kept connection goes back to
//! a short list untested instead; one whose lookup failed goes back to the
//! pool, which tests it (the lookup is then asked again of the pool, in case
//! the connection broke while kept), and the list never holds more than half
//! the pool, so other work always finds connections there.

use crate::backend_error;
use carekey_domain::ports::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use std::sync::Mutex;

/// Idle connections taken from `pool`, lent without a test.
#[derive(Debug)]
pub(crate) struct KeptConnections<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    idle: Mutex<Vec<PoolConnection<DB>>>,
    most: usize,
}

impl<DB: sqlx::Database> KeptConnections<DB> {
    /// Keeps at most half of `pool`'s connections (none of a pool of one).
    pub(crate) fn new(pool: sqlx::Pool<DB>) -> Self {
        let most = pool.options().get_max_connections() as usize / 2;
        Self {
            pool,
            idle: Mutex::default(),
            most,
        }
    }

    /// The connection kept last, or one from the pool.
    pub(crate) async fn lend(&self) -> StoreResult<Kept<'_, DB>> {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match kept {
            Some(connection) => connection,
            None => self.pool.acquire().await.map_err(backend_error)?,
        };
        Ok(Kept {
            connection: Some(connection),
            from: self,
        })
    }
}

/// A lent connection; kept again when dropped, unless [`Kept::failed`].
pub(crate) struct Kept<'a, DB: sqlx::Database> {
    connection: Option<PoolConnection<DB>>,
    from: &'a KeptConnections<DB>,
}

impl<DB: sqlx::Database> Kept<'_, DB> {
    /// The connection, to run statements on.
    pub(crate) fn connection(&mut self) -> StoreResult<&mut DB::Connection> {
        self.connection
            .as_deref_mut()
            .ok_or_else(|| StoreError::Backend("a kept connection was given back".into()))
    }

    /// A statement on it failed: it goes back to the pool, which tests it.
    pub(crate) fn failed(mut self) {
        drop(self.connection.take());
    }
}

impl<DB: sqlx::Database> Drop for Kept<'_, DB> {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        if let Ok(mut idle) = self.from.idle.lock() {
            if idle.len() < self.from.most {
                idle.push(connection);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeptConnections;
    use crate::testing::{fresh_postgres_url, fresh_sqlite_url};
    use sqlx::postgres::PgPoolOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use std::str::FromStr;
    use std::time::Duration;

    /// Connections lent all at once come back: half are kept, the rest go
    /// back to the pool, where other work still finds them.
    #[tokio::test]
    async fn kept_connections_leave_half_the_pool_to_others() {
        let folder = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&fresh_sqlite_url(folder.path()))
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .unwrap();
        let kept = KeptConnections::new(pool.clone());
        let mut lent = Vec::new();
        for _ in 0..4 {
            lent.push(kept.lend().await.unwrap());
        }
        drop(lent);
        assert_eq!(kept.idle.lock().unwrap().len(), 2);
        // Were all four kept, these would wait out the acquire timeout.
        let others = [pool.acquire().await, pool.acquire().await];
        assert!(others.iter().all(Result::is_ok), "{others:?}");
        // A kept one is lent again, and one that failed is not kept.
        let again = kept.lend().await.unwrap();
        assert_eq!(kept.idle.lock().unwrap().len(), 1);
        again.failed();
        assert_eq!(kept.idle.lock().unwrap().len(), 1);
    }

    /// A lookup whose caller stopped waiting mid-statement (a client that
    /// hung up) leaves its connection kept, untested; the next lookup on it
    /// reads its own answer, not the abandoned one's.
    #[tokio::test]
    async fn a_lookup_cut_short_leaves_its_connection_usable() {
        let Some(url) = fresh_postgres_url("a lookup cut short").await else {
            return;
        };
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        let kept = KeptConnections::new(pool);
        let mut first = kept.lend().await.unwrap();
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.5)")
                .fetch_one(first.connection().unwrap()),
        )
        .await;
        assert!(abandoned.is_err(), "the sleep finished: {abandoned:?}");
        drop(first);
        assert_eq!(kept.idle.lock().unwrap().len(), 1);
        let mut next = kept.lend().await.unwrap();
        let answer: i32 = sqlx::query_scalar("SELECT 42")
            .fetch_one(next.connection().unwrap())
            .await
            .unwrap();
        assert_eq!(answer, 42);
    }
}
