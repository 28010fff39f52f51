//! PostgreSQL's recovery batch (see [`crate::group_commit`]): each table is
//! written once per batch, from arrays, so a batch makes the same four round
//! trips however many requests it holds; one statement a round trip, ten or
//! so a request, was what bounded throughput. The round trips:
//! 1. `BEGIN` and the counters, locked, in one simple query ([`begin_and_lock_counters`]);
//! 2. the rows, and the audit chain's head as it stands;
//! 3. the events, chained after that head, and the head moved past them if it
//!    has not moved meanwhile (if it has, two more: the head locked, the events);
//! 4. `COMMIT`, which does not wait for the WAL to reach the disk
//!    ([`COMMIT_WITHOUT_SYNC`]).
//!
//! The rows stored are those one request at a time would leave:
//! - counters are read under their row locks and counted in memory
//!   ([`Counters`]);
//! - a request's revocations reach the rows stored before the batch through
//!   the statements, and the batch's own earlier rows in [`Rows`], as they
//!   are gathered.
//!
//! The chain's head is locked last, after every other write: those writes'
//! foreign-key checks wait on account rows that a sign-in may hold while it
//! waits for the head.

use super::PgStore;
use crate::backend_error;
use crate::recovery::{self, Answer, CounterColumns, Counters, RecoveryStart, Rows};
use crate::shared::{chain_after, millis};
use carekey_domain::audit::AuditEvent;
use carekey_domain::ports::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::{Executor, PgConnection, Postgres, Row};
use std::sync::Arc;

impl PgStore {
    /// Stores the recovery requests of one batch in one transaction, as
    /// [`recovery::plan_batch`] counts and gathers them.
    pub(crate) async fn start_recoveries(
        mut connection: PoolConnection<Postgres>,
        jobs: Vec<Arc<RecoveryStart>>,
    ) -> (PoolConnection<Postgres>, StoreResult<Vec<Answer>>) {
        let mut open = Unended {
            connection: &mut connection,
            ended: false,
        };
        let answers = start_recoveries_on(open.connection, &jobs).await;
        open.ended = match answers {
            Ok(_) => true,
            Err(_) => open
                .connection
                .execute(sqlx::raw_sql("ROLLBACK"))
                .await
                .is_ok(),
        };
        drop(open);
        (connection, answers)
    }
}

/// A connection in a transaction begun by hand (sqlx's own transactions send
/// `BEGIN` alone, a round trip of its own). Dropped before it is `ended`
/// (committed or rolled back), as when the batch's task stops midway or a
/// rollback fails, the connection is closed rather than given back to the
/// pool inside the transaction.
struct Unended<'c> {
    connection: &'c mut PoolConnection<Postgres>,
    ended: bool,
}

impl Drop for Unended<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.connection.close_on_drop();
        }
    }
}

async fn start_recoveries_on(
    connection: &mut PgConnection,
    jobs: &[Arc<RecoveryStart>],
) -> StoreResult<Vec<Answer>> {
    let counters = begin_and_lock_counters(connection, &Counters::keys_of(jobs)).await?;
    let batch = recovery::plan_batch(jobs, counters)?;
    let head = store_rows(connection, &batch.rows, &batch.counters).await?;
    if !append_events(connection, &head, &batch.events).await? {
        // Another writer moved the head after the rows' statement read it.
        let head = sqlx::query(super::queries::READ_CHAIN_HEAD)
            .fetch_one(&mut *connection)
            .await
            .map_err(backend_error)?;
        if !append_events(connection, &head, &batch.events).await? {
            return Err(StoreError::Backend(
                "the audit chain's head moved while locked".into(),
            ));
        }
    }
    connection
        .execute(sqlx::raw_sql("COMMIT"))
        .await
        .map_err(backend_error)?;
    Ok(batch.answers)
}

/// A batch commits without waiting for PostgreSQL to sync its WAL, much as
/// every SQLite commit does (`synchronous = NORMAL` in WAL mode): a crash of
/// the database server may lose the last fraction of a second of recovery
/// requests, whole (flows, counters, messages, audit events), never part of
/// one. Nothing has come of such a request yet: its only effect outside the
/// database is its message, and an outbox worker sends a message only after
/// its claim has committed, synchronously, which syncs the WAL up to and past
/// the request's own commit. So a lost request is like a lost packet, and the
/// patient asks again. Not waiting took 0.35 ms off a lone request's work at
/// the median and lifted the rate at 64 connections; a sync had now and then
/// stalled a batch for a few hundred milliseconds (docs/BENCHMARKS.md, "What
/// it took"). Every other change still waits for its sync.
const COMMIT_WITHOUT_SYNC: &str = "SET LOCAL synchronous_commit = off";

/// Locks the counters `$keys` (a `text[]`), each in key order (so
/// transactions on several instances never wait on each other in a circle),
/// creating the missing ones at zero (one never hit); the counters as they
/// stand.
macro_rules! lock_counters {
    ($keys:literal) => {
        concat!(
            "INSERT INTO rate_limits (key, window_start, count) \
             SELECT key, 0, 0 FROM UNNEST(",
            $keys,
            ") AS k (key) \
             ON CONFLICT (key) DO UPDATE SET count = rate_limits.count \
             RETURNING key, window_start, count"
        )
    };
}

/// [`lock_counters!`] of the keys bound as `$1`.
const LOCK_COUNTERS: &str = lock_counters!("$1::text[]");

/// Begins the batch's transaction ([`super::BEGIN_BY_INDEX`],
/// [`COMMIT_WITHOUT_SYNC`]) and locks its counters ([`lock_counters!`]) in one
/// round trip. A simple query carries no parameters, so each key travels as
/// the hex of its UTF-8 bytes: only the digits `0-9a-f` are ever written into
/// the statement, whatever a key holds.
async fn begin_and_lock_counters(
    connection: &mut PgConnection,
    keys: &[String],
) -> StoreResult<Counters> {
    let keys: Vec<String> = keys
        .iter()
        .map(|key| {
            format!(
                "convert_from(decode('{}', 'hex'), 'UTF8')",
                hex::encode(key)
            )
        })
        .collect();
    let sql = format!(
        concat!(
            "{begin}; {commit_without_sync}; ",
            lock_counters!("ARRAY[{keys}]::text[]")
        ),
        begin = super::BEGIN_BY_INDEX,
        commit_without_sync = COMMIT_WITHOUT_SYNC,
        keys = keys.join(", "),
    );
    let rows = connection
        .fetch_all(sqlx::raw_sql(&sql))
        .await
        .map_err(backend_error)?;
    Counters::from_rows(rows)
}

/// Stores counted counters (`$1` keys, `$2` window starts, `$3` counts), all
/// locked and so all present; also the first part of [`STORE_BATCH`].
macro_rules! store_counters {
    () => {
        "UPDATE rate_limits SET window_start = c.window_start, count = c.count \
         FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS c (key, window_start, count) \
         WHERE rate_limits.key = ANY($1::text[]) AND rate_limits.key = c.key"
    };
}

impl PgStore {
    /// Locks counters (sorted keys, see [`Counters::keys_of_hits`]) until
    /// the transaction ends, in one round trip.
    pub(crate) async fn lock_counters(
        tx: &mut PgConnection,
        keys: &[String],
    ) -> StoreResult<Counters> {
        let rows = sqlx::query(LOCK_COUNTERS)
            .bind(keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend_error)?;
        Counters::from_rows(rows)
    }

    /// Stores counters counted after [`PgStore::lock_counters`].
    pub(crate) async fn store_counters(
        tx: &mut PgConnection,
        (keys, starts, counts): &CounterColumns,
    ) -> StoreResult<()> {
        sqlx::query(store_counters!())
            .bind(keys)
            .bind(starts)
            .bind(counts)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

/// Everything a batch writes once its counters are counted, but its audit
/// events, in one statement, which answers the audit chain's head as it
/// stands (unlocked: see [`APPEND_EVENTS`]). Each part reads the arrays it is given: revocations reach the
/// rows stored before this statement only (the batch's own new rows come
/// with theirs set), and a decoy's rows are dropped by their `real` guard.
/// Each `= ANY(…)` gives the plan an index condition to reach the rows by
/// (the batch's transaction allows no other way in, see
/// [`super::BEGIN_BY_INDEX`]).
const STORE_BATCH: &str = concat!(
    "WITH counted AS (",
    store_counters!(),
    "), \
    flows_revoked AS ( \
      UPDATE recovery_flows f SET revoked_at = r.at \
      FROM UNNEST($4::bytea[], $5::int8[]) AS r (lookup_key, at) \
      WHERE f.lookup_key = ANY($4::bytea[]) AND f.lookup_key = r.lookup_key AND f.finished_at IS NULL AND f.revoked_at IS NULL), \
    flows AS ( \
      INSERT INTO recovery_flows (id, purpose, channel, attempts_left, created_at, expires_at, \
        lookup_key, client_ip, contact_kind, contact_value, revoked_at) \
      SELECT * FROM UNNEST($6::uuid[], $7::text[], $8::text[], $9::int8[], $10::int8[], \
        $11::int8[], $12::bytea[], $13::text[], $14::text[], $15::text[], $16::int8[])), \
    members_revoked AS ( \
      UPDATE recovery_flow_accounts m SET revoked_at = r.at \
      FROM UNNEST($17::uuid[], $18::text[], $19::int8[]) AS r (account_id, purpose, at) \
      WHERE m.account_id = ANY($17::uuid[]) AND m.account_id = r.account_id AND m.purpose = r.purpose AND m.revoked_at IS NULL), \
    links_revoked AS ( \
      UPDATE account_tokens t SET revoked_at = r.at \
      FROM UNNEST($20::uuid[], $21::int8[]) AS r (account_id, at) \
      WHERE t.account_id = ANY($20::uuid[]) AND t.account_id = r.account_id AND t.purpose = 'reset' \
        AND t.used_at IS NULL AND t.revoked_at IS NULL), \
    members AS ( \
      INSERT INTO recovery_flow_accounts (flow_id, account_id, purpose, recipient, code_hash, revoked_at) \
      SELECT flow_id, account_id, purpose, recipient, code_hash, revoked_at \
      FROM UNNEST($22::uuid[], $23::uuid[], $24::text[], $25::text[], $26::bytea[], $27::int8[], \
        $28::bool[]) AS m (flow_id, account_id, purpose, recipient, code_hash, revoked_at, real) \
      WHERE real), \
    tokens AS ( \
      INSERT INTO account_tokens (hash, purpose, account_id, patient_id, flow_id, attempts_left, \
        created_at, expires_at, revoked_at) \
      SELECT hash, purpose, account_id, patient_id, flow_id, attempts_left, created_at, expires_at, revoked_at \
      FROM UNNEST($29::bytea[], $30::text[], $31::uuid[], $32::uuid[], $33::uuid[], $34::int8[], \
        $35::int8[], $36::int8[], $37::int8[], $38::bool[]) \
        AS t (hash, purpose, account_id, patient_id, flow_id, attempts_left, created_at, expires_at, \
          revoked_at, real) \
      WHERE real), \
    messages AS ( \
      INSERT INTO outbox_messages (id, kind, channel, recipient, language, patient_id, payload, \
        status, attempts, next_attempt_at, created_at, updated_at) \
      SELECT id, kind, channel, recipient, language, patient_id, payload, 'queued', 0, at, at, at \
      FROM UNNEST($39::uuid[], $40::text[], $41::text[], $42::text[], $43::text[], $44::uuid[], \
        $45::text[], $46::int8[], $47::bool[]) \
        AS o (id, kind, channel, recipient, language, patient_id, payload, at, real) \
      WHERE real) \
    SELECT seq, hash FROM audit_chain_head WHERE id = 1"
);

/// A batch's audit events, chained after the head whose `seq` is `$15`, and
/// the head moved past them; answers how many heads moved. If the head is no
/// longer `$15` (the batch read it unlocked, and another writer has moved it
/// since), nothing is written and it answers 0. The `UPDATE` waits for a
/// writer holding the head, then reads the head that writer left.
const APPEND_EVENTS: &str = "\
    WITH moved AS ( \
      UPDATE audit_chain_head SET seq = $13, hash = $14 WHERE id = 1 AND seq = $15 \
      RETURNING seq), \
    events AS ( \
      INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, account_id, patient_id, ip, \
        outcome, details, prev_hash, hash) \
      SELECT e.* FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::uuid[], $5::text[], \
        $6::uuid[], $7::uuid[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::bytea[]) \
        AS e, moved) \
    SELECT count(*) AS moved FROM moved";

/// Stores a batch's rows and the counters counted, in one round trip; the
/// audit chain's head as it stood.
async fn store_rows(
    tx: &mut PgConnection,
    rows: &Rows<'_>,
    counters: &CounterColumns,
) -> StoreResult<sqlx::postgres::PgRow> {
    let (flows, members, tokens, messages) =
        (&rows.flows, &rows.members, &rows.tokens, &rows.messages);
    sqlx::query(STORE_BATCH)
        .bind(&counters.0)
        .bind(&counters.1)
        .bind(&counters.2)
        .bind(&rows.flows_revoked.keys)
        .bind(&rows.flows_revoked.at)
        .bind(column(flows, |r| r.flow.id.0))
        .bind(column(flows, |r| r.flow.purpose.as_str()))
        .bind(column(flows, |r| r.flow.channel.as_str()))
        .bind(column(flows, |r| i64::from(r.flow.attempts)))
        .bind(column(flows, |r| millis(r.flow.created_at)))
        .bind(column(flows, |r| millis(r.flow.expires_at)))
        .bind(column(flows, |r| r.flow.lookup_key.as_bytes()))
        .bind(column(flows, |r| r.flow.client_ip.as_deref()))
        .bind(column(flows, |r| {
            r.flow.contact.as_ref().map(|(kind, _)| kind.as_str())
        }))
        .bind(column(flows, |r| {
            r.flow.contact.as_ref().map(|(_, value)| value.as_str())
        }))
        .bind(column(flows, |r| r.revoked_at))
        .bind(column(&rows.members_revoked.keys, |(account, _)| *account))
        .bind(column(&rows.members_revoked.keys, |(_, purpose)| *purpose))
        .bind(&rows.members_revoked.at)
        .bind(&rows.links_revoked.keys)
        .bind(&rows.links_revoked.at)
        .bind(column(members, |r| r.flow.id.0))
        .bind(column(members, |r| r.account.0))
        .bind(column(members, |r| r.flow.purpose.as_str()))
        .bind(column(members, |r| r.parcel.recipient.as_str()))
        .bind(column(members, |r| {
            r.parcel.code_hash.as_ref().map(|h| h.as_bytes())
        }))
        .bind(column(members, |r| r.revoked_at))
        .bind(column(members, |r| r.real))
        .bind(column(tokens, |r| r.token.hash.as_bytes()))
        .bind(column(tokens, |r| r.token.purpose.as_str()))
        .bind(column(tokens, |r| r.token.account.map(|id| id.0)))
        .bind(column(tokens, |r| r.token.patient.map(|id| id.0)))
        .bind(column(tokens, |r| r.token.flow.map(|id| id.0)))
        .bind(column(tokens, |r| r.token.attempts.map(i64::from)))
        .bind(column(tokens, |r| r.at))
        .bind(column(tokens, |r| millis(r.token.expires_at)))
        .bind(column(tokens, |r| r.revoked_at))
        .bind(column(tokens, |r| r.real))
        .bind(column(messages, |r| r.message.id.0))
        .bind(column(messages, |r| r.message.kind.as_str()))
        .bind(column(messages, |r| r.message.channel.as_str()))
        .bind(column(messages, |r| r.message.recipient.as_str()))
        .bind(column(messages, |r| r.message.language.code()))
        .bind(column(messages, |r| r.message.patient_id.map(|id| id.0)))
        .bind(column(messages, |r| r.payload.as_str()))
        .bind(column(messages, |r| r.at))
        .bind(column(messages, |r| r.real))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend_error)
}

/// Appends `events` to the audit chain after `head`, in one round trip;
/// whether `head` was still the head ([`APPEND_EVENTS`]).
async fn append_events(
    tx: &mut PgConnection,
    head: &sqlx::postgres::PgRow,
    events: &[AuditEvent],
) -> StoreResult<bool> {
    let seq: i64 = head.try_get("seq").map_err(backend_error)?;
    let hash: Vec<u8> = head.try_get("hash").map_err(backend_error)?;
    let chained = chain_after(seq, hash.clone(), events);
    let (head_seq, head_hash) = chained
        .last()
        .map_or((seq, hash), |last| (last.seq, last.hash.clone()));
    let moved: i64 = sqlx::query_scalar(APPEND_EVENTS)
        .bind(column(&chained, |c| c.seq))
        .bind(column(&chained, |c| millis(c.event.at)))
        .bind(column(&chained, |c| c.event.actor.kind()))
        .bind(column(&chained, |c| c.event.actor.id()))
        .bind(column(&chained, |c| c.event.action.as_str()))
        .bind(column(&chained, |c| c.event.account_id.map(|id| id.0)))
        .bind(column(&chained, |c| c.event.patient_id.map(|id| id.0)))
        .bind(column(&chained, |c| c.event.ip.as_deref()))
        .bind(column(&chained, |c| c.event.outcome.as_str()))
        .bind(column(&chained, |c| c.details.as_str()))
        .bind(column(&chained, |c| c.prev_hash.as_slice()))
        .bind(column(&chained, |c| c.hash.as_slice()))
        .bind(head_seq)
        .bind(head_hash)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend_error)?;
    Ok(moved == 1)
}

/// One column of `rows`, to bind as an array.
fn column<'r, R, T>(rows: &'r [R], value: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

#[cfg(test)]
mod tests {
    use super::begin_and_lock_counters;
    use crate::testing::fresh_postgres_url;
    use crate::{PgStore, StoreOptions};
    use sqlx::Executor;

    /// What [`super::COMMIT_WITHOUT_SYNC`] rests on: a recovery batch commits
    /// without its sync, while the outbox claim's transaction
    /// ([`super::super::BEGIN_BY_INDEX`]) still waits for it, so a message
    /// goes out only once its request is on disk.
    #[tokio::test]
    async fn only_a_recovery_batch_commits_without_its_sync() {
        let Some(url) = fresh_postgres_url("only a recovery batch commits without its sync").await
        else {
            return;
        };
        let store = PgStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        let mut connection = store.pool().acquire().await.unwrap();

        begin_and_lock_counters(&mut connection, &["ip:192.0.2.1".to_owned()])
            .await
            .unwrap();
        let batch = setting_then_rollback(&mut connection).await;
        connection
            .execute(super::super::BEGIN_BY_INDEX)
            .await
            .unwrap();
        let claim = setting_then_rollback(&mut connection).await;

        assert_eq!((batch.as_str(), claim.as_str()), ("off", "on"));
    }

    /// The open transaction's `synchronous_commit`; the transaction is then
    /// rolled back.
    async fn setting_then_rollback(connection: &mut sqlx::PgConnection) -> String {
        let setting: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        connection.execute("ROLLBACK").await.unwrap();
        setting
    }
}
