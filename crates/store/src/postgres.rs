//! PostgreSQL: the backend for many instances. Rows changed by read-modify-write
//! steps are locked with `FOR UPDATE`, so instances never lose an update.

mod recovery_batch;

use crate::group_commit::{GroupCommit, Hold};
use crate::kept::KeptConnections;
use crate::policy_cache::PolicyCache;
use crate::recovery::RecoveryStarts;
use crate::{backend_error, StoreOptions};
use carekey_domain::ports::{StoreError, StoreResult};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// Storage in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Writes outside a transaction go here; on PostgreSQL the same pool.
    writer: PgPool,
    /// Recovery requests, written in shared transactions.
    pub(crate) recovery_starts: Arc<RecoveryStarts>,
    /// The organisation's policy as last read.
    pub(crate) policy: Arc<PolicyCache>,
    /// Connections for the lookup of every recovery request.
    pub(crate) lookups: Arc<KeptConnections<Postgres>>,
}

impl PgStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .connect(url)
            .await
            .map_err(backend_error)?;
        if options.migrate {
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        }
        // The batch task keeps its own connection while requests keep coming
        // (gaps of up to 50 ms) and lets the pool test it at least once a
        // second, where that still leaves one for other work beside the
        // lookups' (at most half the pool, see KeptConnections). A smaller
        // pool it shares as SQLite shares its writer.
        let hold = if options.max_connections >= 3 {
            Hold {
                at_most: Duration::from_secs(1),
                idle: Duration::from_millis(50),
            }
        } else {
            Hold::SHARED
        };
        let recovery_starts = Arc::new(GroupCommit::spawn(
            pool.clone(),
            hold,
            Self::start_recoveries,
        ));
        Ok(Self {
            writer: pool.clone(),
            lookups: Arc::new(KeptConnections::new(pool.clone())),
            pool,
            recovery_starts,
            policy: Arc::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a write transaction on a task of its own (see [`crate::detached`]).
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let pool = self.pool.clone();
        crate::detached(async move { pool.begin().await }).await
    }

    /// Starts a write transaction that reads only through indexes
    /// ([`BEGIN_BY_INDEX`]).
    async fn begin_by_index(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let pool = self.pool.clone();
        crate::detached(async move { pool.begin_with(BEGIN_BY_INDEX).await }).await
    }
}

/// Begins the transactions whose statements take a few rows by key from
/// tables that only grow (a recovery batch, the outbox worker's claim), where
/// reading a whole table, or every row of a long queue before taking the
/// first few, is never the right plan. The planner picks such plans anyway
/// while statistics are missing or stale (a new database, or tables grown
/// since autovacuum last analysed them): in the benchmark a batch's
/// revocations and counters each read their tables end to end, 2 to 6 ms a
/// batch apiece, and every claim read and sorted the whole queue. A claim must
/// still wait for its sync at `COMMIT` (see
/// [`recovery_batch::COMMIT_WITHOUT_SYNC`]), so that setting stays out of here.
pub(crate) const BEGIN_BY_INDEX: &str =
    "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";

crate::shared::impl_store!(
    PgStore,
    Postgres,
    for_update = " FOR UPDATE",
    skip_locked = " FOR UPDATE SKIP LOCKED"
);
crate::recovery::impl_recovery_store!(PgStore, Postgres, for_update = " FOR UPDATE");
crate::staff::impl_staff_store!(PgStore, Postgres, for_update = " FOR UPDATE");
