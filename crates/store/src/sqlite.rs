//! SQLite: one file in WAL mode. Readers share a pool; every write goes
//! through one writer connection (`BEGIN IMMEDIATE` transactions), so writers
//! queue in order in the process instead of sleeping on SQLite's busy handler.
//! The WAL is checkpointed by a background task ten times a second rather than by
//! whichever commit happens to cross the threshold, so no request waits on
//! the checkpoint's fsync, and keeps the WAL's disk blocks allocated ahead of
//! its end ([`wal_blocks`]).

mod recovery_batch;
mod wal_blocks;

use crate::group_commit::{GroupCommit, Hold};
use crate::kept::KeptConnections;
use crate::policy_cache::PolicyCache;
use crate::recovery::RecoveryStarts;
use crate::{backend_error, StoreOptions};
use carekey_domain::ports::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use wal_blocks::WalBlocks;

/// Storage in an embedded SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The single connection that writes.
    writer: SqlitePool,
    /// Stops the checkpoint task when the last clone of the store is dropped.
    _checkpointer: Arc<AbortOnDrop>,
    /// Recovery requests, written in shared transactions.
    pub(crate) recovery_starts: Arc<RecoveryStarts>,
    /// The organisation's policy as last read.
    pub(crate) policy: Arc<PolicyCache>,
    /// Connections for the lookup of every recovery request.
    pub(crate) lookups: Arc<KeptConnections<Sqlite>>,
}

/// A background task that ends with its owner.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A write transaction takes the write lock at once, so it never has to
/// upgrade a read lock midway.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Prepared statements the writer keeps (sqlx's default is 100).
const WRITER_STATEMENTS: usize = 256;

/// Where the writer keeps its temporary files, statement journals among
/// them. A statement that may stop midway (every write of a batch, whose rows
/// arrive as JSON) journals the pages it changes, so that it can be undone
/// alone; past 64 KiB SQLite spilled that journal to a temporary file, created
/// and deleted each time: about a hundred such files in three seconds of
/// reset requests, and a third of the bytes the server wrote per known
/// request. In memory a journal holds the pages one statement of a batch
/// changes, a few hundred KiB at most (docs/BENCHMARKS.md, "What it took").
const WRITER_TEMP_STORE: &str = "MEMORY";

/// How often the background task moves the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// What the WAL file is cut back to when it starts over. While lookups never
/// all pause SQLite cannot start it over, and it grows (by about 100 MB a
/// second in the reset benchmark); afterwards it keeps at most this much.
const WAL_KEPT_BYTES: u64 = 64 * 1024 * 1024;

impl SqliteStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(backend_error)?
            .create_if_missing(options.migrate)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Checkpoints are the background task's job, not a commit's.
            .pragma("wal_autocheckpoint", "0")
            // A WAL grown large under load is cut back when it next starts over.
            .pragma("journal_size_limit", WAL_KEPT_BYTES.to_string());
        if let Some(folder) = connect.get_filename().parent().filter(|_| options.migrate) {
            if !folder.as_os_str().is_empty() {
                std::fs::create_dir_all(folder).map_err(|e| {
                    StoreError::Backend(format!("cannot create {}: {e}", folder.display()))
                })?;
            }
        }
        let wal = WalBlocks::of(connect.get_filename());
        // An embedded database has no link to test: a ping before each use
        // would only cost another hand-off to the connection's thread.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            // Room for every write statement and every size of batched script
            // (crate::script), so none is prepared again.
            .connect_with(
                connect
                    .clone()
                    .statement_cache_capacity(WRITER_STATEMENTS)
                    .pragma("temp_store", WRITER_TEMP_STORE),
            )
            .await
            .map_err(backend_error)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .test_before_acquire(false)
            .connect_with(connect.create_if_missing(false))
            .await
            .map_err(backend_error)?;
        if options.migrate {
            sqlx::migrate!("./migrations/sqlite")
                .run(&writer)
                .await
                .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        }
        let checkpointer = tokio::spawn(checkpoint_regularly(pool.clone(), wal));
        // The writer is every write's one connection.
        let recovery_starts = Arc::new(GroupCommit::spawn(
            writer.clone(),
            Hold::SHARED,
            Self::start_recoveries,
        ));
        Ok(Self {
            lookups: Arc::new(KeptConnections::new(pool.clone())),
            pool,
            writer,
            _checkpointer: Arc::new(AbortOnDrop(checkpointer)),
            recovery_starts,
            policy: Arc::default(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Starts a write transaction on a task of its own (see [`crate::detached`]).
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        let writer = self.writer.clone();
        crate::detached(async move { writer.begin_with(BEGIN_WRITE).await }).await
    }

    /// The same as [`Self::begin_write`]: without `ANALYZE` SQLite's planner
    /// has no statistics to mislead it, and the index-plan test below reads
    /// its plans for these statements.
    async fn begin_by_index(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.begin_write().await
    }
}

/// Copies committed pages from the WAL into the database file without
/// blocking readers or the writer (`PASSIVE`); the WAL starts over once
/// everything in it is copied and no reader still needs it. While writes
/// never pause that moment never comes, and the WAL grows until they do
/// (docs/BENCHMARKS-LOG.md); each time, its blocks are kept allocated ahead of
/// its end ([`WalBlocks`]).
async fn checkpoint_regularly(pool: SqlitePool, mut wal: WalBlocks) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
        // File system calls that may wait on the disk: off the runtime.
        wal = match tokio::task::spawn_blocking(move || {
            wal.keep_ahead();
            wal
        })
        .await
        {
            Ok(wal) => wal,
            Err(_) => return,
        };
    }
}

crate::shared::impl_store!(SqliteStore, Sqlite, for_update = "", skip_locked = "");
crate::recovery::impl_recovery_store!(SqliteStore, Sqlite, for_update = "");
crate::staff::impl_staff_store!(SqliteStore, Sqlite, for_update = "");

#[cfg(test)]
mod tests {
    use super::{recovery_batch, SqliteStore, WAL_KEPT_BYTES};
    use crate::StoreOptions;
    use sqlx::Row;

    /// A new store in a folder of its own, kept while the folder lives.
    async fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
        let folder = tempfile::tempdir().unwrap();
        let url = crate::testing::fresh_sqlite_url(folder.path());
        let store = SqliteStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        (folder, store)
    }

    /// A WAL that grew past the limit (here in one large transaction, which
    /// no checkpoint can split) is cut back once it has been copied and the
    /// next write starts it over, rather than keeping its size on disk.
    #[tokio::test]
    async fn a_grown_wal_is_cut_back_when_it_starts_over() {
        const BLOB: u64 = 1024 * 1024;
        let (folder, store) = fresh_store().await;
        sqlx::query("CREATE TABLE filler (data BLOB NOT NULL)")
            .execute(&store.writer)
            .await
            .unwrap();
        let mut tx = store.writer.begin().await.unwrap();
        for _ in 0..(WAL_KEPT_BYTES / BLOB + 16) {
            sqlx::query("INSERT INTO filler (data) VALUES (zeroblob($1))")
                .bind(BLOB as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let wal = folder.path().join("carekey.db-wal");
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > WAL_KEPT_BYTES, "the WAL grew to {grown} bytes only");
        // Copied into the database (as the background task does), then a
        // write. The background task's own checkpoint may be under way and
        // keep either from taking effect at first: try again, a few times.
        let mut kept = grown;
        for row in 1..=20 {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&store.pool)
                .await
                .unwrap();
            sqlx::query("DELETE FROM filler WHERE rowid = $1")
                .bind(row)
                .execute(&store.writer)
                .await
                .unwrap();
            kept = std::fs::metadata(&wal).unwrap().len();
            if kept <= WAL_KEPT_BYTES {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            kept <= WAL_KEPT_BYTES,
            "the WAL keeps {kept} bytes after starting over (grown to {grown})"
        );
    }

    /// The writer's statement journals stay in memory, never spilled to a
    /// temporary file ([`super::WRITER_TEMP_STORE`]).
    #[tokio::test]
    async fn the_writer_keeps_its_statement_journals_in_memory() {
        let (_folder, store) = fresh_store().await;
        // 2 is MEMORY; 0, SQLite's default, leaves it to the build (a file).
        let on_writer: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(on_writer, 2, "the writer's temporary files go to disk");
    }

    /// The checkpoint task keeps blocks allocated past the WAL's end (so an
    /// append never waits for a checkpoint to allocate them), without changing
    /// the WAL's size, which is what SQLite reads.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_wal_keeps_blocks_allocated_ahead_of_its_end() {
        use super::wal_blocks::ALLOCATED_AHEAD;
        use std::os::unix::fs::MetadataExt;
        let (folder, store) = fresh_store().await;
        let probe = std::fs::File::create(folder.path().join("probe")).unwrap();
        let flags = rustix::fs::FallocateFlags::KEEP_SIZE;
        if let Err(error) = rustix::fs::fallocate(&probe, flags, 0, 4096) {
            eprintln!("skipped: this file system cannot allocate ahead ({error})");
            return;
        }
        sqlx::query("CREATE TABLE filler (data BLOB NOT NULL)")
            .execute(&store.writer)
            .await
            .unwrap();
        let wal = folder.path().join("carekey.db-wal");
        let written = std::fs::metadata(&wal).unwrap().len();
        assert!(written > 0, "the write left the WAL empty");
        // The task runs ten times a second; give it many turns.
        let mut ahead = 0;
        for _ in 0..200 {
            let size = std::fs::metadata(&wal).unwrap();
            assert_eq!(
                size.len(),
                written,
                "allocating ahead changed the WAL's size"
            );
            ahead = (size.blocks() * 512).saturating_sub(size.len());
            if ahead >= ALLOCATED_AHEAD {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            ahead >= ALLOCATED_AHEAD,
            "only {ahead} bytes allocated past the WAL's end of {written}"
        );
    }

    /// The lookups a reset request, a finished reset, an enrollment, the staff
    /// console and a delivery receipt make on tokens, flow members and
    /// messages each search an index
    /// (by the whole key they give) rather than scan a table that only grows.
    #[tokio::test]
    async fn token_and_member_lookups_search_an_index() {
        let (_folder, store) = fresh_store().await;
        let lookups = [
            (
                "UPDATE account_tokens SET revoked_at = 1 WHERE account_id = x'01' \
                 AND purpose = 'reset' AND used_at IS NULL AND revoked_at IS NULL",
                "account_tokens_open (account_id=? AND purpose=?)",
            ),
            (
                "UPDATE account_tokens SET revoked_at = 1 \
                 WHERE account_id = x'01' AND used_at IS NULL AND revoked_at IS NULL",
                "account_tokens_open (account_id=?)",
            ),
            (
                "UPDATE account_tokens SET revoked_at = 1 WHERE patient_id = x'01' AND account_id IS NULL \
                 AND purpose IN ('activation', 'enrollment') AND used_at IS NULL AND revoked_at IS NULL",
                "account_tokens_invitations (patient_id=? AND purpose=?)",
            ),
            (
                "SELECT COUNT(*) FROM account_tokens t WHERE t.patient_id = x'01' AND t.account_id IS NULL \
                 AND t.purpose = 'activation' AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > 0",
                "account_tokens_invitations (patient_id=? AND purpose=?)",
            ),
            (
                "UPDATE recovery_flow_accounts SET revoked_at = 1 \
                 WHERE account_id = x'01' AND revoked_at IS NULL",
                "recovery_flow_accounts_by_account (account_id=? AND revoked_at=?)",
            ),
            (
                "SELECT f.id FROM recovery_flow_accounts m JOIN recovery_flows f ON f.id = m.flow_id \
                 WHERE m.account_id = x'01' ORDER BY f.created_at DESC LIMIT 10",
                "recovery_flow_accounts_by_account (account_id=?)",
            ),
            (
                "UPDATE outbox_messages SET status = 'delivered' \
                 WHERE provider_id = 'sms-1' AND status IN ('sent', 'delivered', 'bounced')",
                "outbox_by_provider_id (provider_id=?)",
            ),
        ];
        // A recovery batch's revocations, one row of the batch's JSON at a time.
        let batch_revocations = [
            (
                "recovery_flows",
                "recovery_flows_open_by_lookup (lookup_key=?)",
            ),
            (
                "recovery_flow_accounts",
                "recovery_flow_accounts_by_account (account_id=? AND revoked_at=? AND purpose=?)",
            ),
            (
                "account_tokens",
                "account_tokens_open (account_id=? AND purpose=?)",
            ),
        ]
        .map(|(table, index)| {
            let statement = recovery_batch::STORE_BATCH
                .split(';')
                .map(str::trim)
                .find(|statement| statement.starts_with(&format!("UPDATE {table} ")))
                .unwrap();
            (statement, index)
        });
        // The outbox worker's claim reads due messages in order, up to its limit.
        let claim = crate::shared::claim_messages_sql("");
        let claim = [(
            claim.as_str(),
            "outbox_due (status=? AND next_attempt_at<?)",
        )];
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'table'")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        for (lookup, index) in lookups.into_iter().chain(batch_revocations).chain(claim) {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {lookup}"))
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect();
            assert!(
                plan.iter().any(|step| step.ends_with(index)),
                "{lookup}\nplanned as {plan:?}, not with {index}"
            );
            // Scans of a batch's JSON rows (virtual tables) and of a
            // statement's own few-row subqueries are fine; of a table, never.
            assert!(
                !plan.iter().any(|step| tables
                    .iter()
                    .any(|table| step.starts_with(&format!("SCAN {table}")))),
                "{lookup}\nscans a table: {plan:?}"
            );
        }
    }

    /// The outbox claim reads due messages inside the subquery that stops at
    /// its limit (`due`), so a claim reads what it takes, not the whole
    /// queue; the claim it replaced searched the same index under a
    /// `MULTI-INDEX OR` and sorted every due message.
    #[tokio::test]
    async fn the_outbox_claim_stops_reading_at_its_limit() {
        let (_folder, store) = fresh_store().await;
        let claim = crate::shared::claim_messages_sql("");
        let steps: Vec<(i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {claim}"))
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, parent, _, detail): (i64, i64, i64, String)| (id, parent, detail))
            .collect();
        let parent_of = |detail: &str| {
            let (_, parent, _) = steps.iter().find(|(_, _, d)| d == detail)?;
            steps
                .iter()
                .find(|(id, _, _)| id == parent)
                .map(|(_, _, d)| d.as_str())
        };
        let due = "SEARCH outbox_messages USING INDEX outbox_due (status=? AND next_attempt_at<?)";
        // `MATERIALIZE due` or `CO-ROUTINE due`, as SQLite's version chooses.
        assert!(
            parent_of(due).is_some_and(|parent| parent.ends_with(" due")),
            "due messages read outside the limited subquery: {steps:?}"
        );
    }
}
