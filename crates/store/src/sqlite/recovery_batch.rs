//! SQLite's recovery batch (see [`crate::group_commit`]): two calls to the
//! writer's thread however many requests it holds. The first begins the
//! transaction (`BEGIN IMMEDIATE` takes SQLite's only write lock) and reads
//! the audit chain's head and the batch's counters; the counters are counted
//! in memory ([`Counters`]) and the rows gathered table by table ([`Rows`]),
//! as on PostgreSQL; the second writes each table once, from a JSON array of
//! its rows, appends the audit events and commits. Its text never changes,
//! so SQLite prepares it once per connection.

use super::SqliteStore;
use crate::backend_error;
use crate::recovery::{self, Answer, CounterColumns, Counters, PlannedBatch, RecoveryStart};
use crate::script::Script;
use crate::shared::{chain_after, millis};
use carekey_domain::audit::AuditEvent;
use carekey_domain::ports::{StoreError, StoreResult};
use serde_json::{json, Value};
use sqlx::pool::PoolConnection;
use sqlx::{Row, Sqlite, SqliteConnection};
use std::sync::Arc;
use uuid::Uuid;

impl SqliteStore {
    /// Stores the recovery requests of one batch in one transaction, as
    /// [`recovery::plan_batch`] counts and gathers them.
    pub(crate) async fn start_recoveries(
        mut connection: PoolConnection<Sqlite>,
        jobs: Vec<Arc<RecoveryStart>>,
    ) -> (PoolConnection<Sqlite>, StoreResult<Vec<Answer>>) {
        let answers = start_recoveries_on(&mut connection, &jobs).await;
        if answers.is_err() {
            // The transaction begins and ends inside the batch's calls, so a
            // failure midway leaves it open: roll it back, and if even that
            // fails, never lend the connection out again.
            if let Err(error) = sqlx::query("ROLLBACK").execute(&mut *connection).await {
                tracing::debug!(%error, "closing the connection of a failed batch");
                connection.close_on_drop();
            }
        }
        (connection, answers)
    }
}

async fn start_recoveries_on(
    connection: &mut SqliteConnection,
    jobs: &[Arc<RecoveryStart>],
) -> StoreResult<Vec<Answer>> {
    let mut first = Script::<Sqlite>::new();
    first.push(super::BEGIN_WRITE);
    // BEGIN IMMEDIATE already holds SQLite's only write lock: nobody else
    // changes the head or the counters until this batch commits.
    first.push(super::queries::READ_CHAIN_HEAD);
    first
        .push(READ_COUNTERS)
        .bind(Value::from(Counters::keys_of(jobs)).to_string());
    let mut rows = first.run(connection).await?.into_iter();
    let head = rows
        .next()
        .ok_or_else(|| StoreError::Backend("the audit chain has no head".into()))?;
    let PlannedBatch {
        rows: batch,
        answers,
        events,
        counters,
    } = recovery::plan_batch(jobs, Counters::from_rows(rows)?)?;
    let seq: i64 = head.try_get("seq").map_err(backend_error)?;
    let hash: Vec<u8> = head.try_get("hash").map_err(backend_error)?;
    sqlx::query(STORE_BATCH)
        .bind(counter_rows(&counters))
        .bind(json_rows(
            &batch.flows_revoked.keys,
            &batch.flows_revoked.at,
            |key, at| json!([hex::encode(key), at]),
        ))
        .bind(json_of(batch.flows.iter().map(|row| {
            let flow = row.flow;
            let (contact_kind, contact_value) = flow
                .contact
                .as_ref()
                .map(|(kind, value)| (kind.as_str(), value.as_str()))
                .unzip();
            json!([
                uuid(flow.id.0),
                flow.purpose.as_str(),
                flow.channel.as_str(),
                flow.attempts,
                millis(flow.created_at),
                millis(flow.expires_at),
                hex::encode(flow.lookup_key.as_bytes()),
                flow.client_ip,
                contact_kind,
                contact_value,
                row.revoked_at,
            ])
        })))
        .bind(json_rows(
            &batch.members_revoked.keys,
            &batch.members_revoked.at,
            |(account, purpose), at| json!([uuid(*account), purpose, at]),
        ))
        .bind(json_rows(
            &batch.links_revoked.keys,
            &batch.links_revoked.at,
            |account, at| json!([uuid(*account), at]),
        ))
        .bind(json_of(batch.members.iter().map(|row| {
            json!([
                uuid(row.flow.id.0),
                uuid(row.account.0),
                row.flow.purpose.as_str(),
                row.parcel.recipient,
                row.parcel
                    .code_hash
                    .as_ref()
                    .map(|hash| hex::encode(hash.as_bytes())),
                row.revoked_at,
                row.real,
            ])
        })))
        .bind(json_of(batch.tokens.iter().map(|row| {
            let token = row.token;
            json!([
                hex::encode(token.hash.as_bytes()),
                token.purpose.as_str(),
                token.account.map(|id| uuid(id.0)),
                token.patient.map(|id| uuid(id.0)),
                token.flow.map(|id| uuid(id.0)),
                token.attempts,
                row.at,
                millis(token.expires_at),
                row.revoked_at,
                row.real,
            ])
        })))
        .bind(json_of(batch.messages.iter().map(|row| {
            let message = row.message;
            json!([
                uuid(message.id.0),
                message.kind.as_str(),
                message.channel.as_str(),
                message.recipient,
                message.language.code(),
                message.patient_id.map(|id| uuid(id.0)),
                row.payload,
                row.at,
                row.real,
            ])
        })))
        .bind(event_rows(seq, hash, &events))
        .execute(&mut *connection)
        .await
        .map_err(backend_error)?;
    Ok(answers)
}

/// Counters as stored (`$1`, a JSON array of keys); in a write transaction,
/// SQLite's one write lock keeps anyone else from changing them until it ends.
const READ_COUNTERS: &str = "SELECT key, window_start, count FROM rate_limits \
     WHERE key IN (SELECT value FROM json_each($1))";

/// Stores counted counters (`$1`, a JSON array of `[key, window_start,
/// count]`); also the first statement of [`STORE_BATCH`].
macro_rules! store_counters {
    () => {
        "INSERT INTO rate_limits (key, window_start, count) \
         SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each($1) WHERE true \
         ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start, count = excluded.count"
    };
}

impl SqliteStore {
    /// Reads counters in a write transaction, whose lock keeps them as read
    /// until it ends.
    pub(crate) async fn lock_counters(
        connection: &mut SqliteConnection,
        keys: &[String],
    ) -> StoreResult<Counters> {
        let rows = sqlx::query(READ_COUNTERS)
            .bind(Value::from(keys).to_string())
            .fetch_all(&mut *connection)
            .await
            .map_err(backend_error)?;
        Counters::from_rows(rows)
    }

    /// Stores counters counted after [`SqliteStore::lock_counters`].
    pub(crate) async fn store_counters(
        connection: &mut SqliteConnection,
        counters: &CounterColumns,
    ) -> StoreResult<()> {
        sqlx::query(store_counters!())
            .bind(counter_rows(counters))
            .execute(&mut *connection)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

/// A batch's writes after its counters are counted, each table once, in one
/// call, then its audit events and the `COMMIT`. Revocations run before the
/// inserts, so they reach only the rows stored before the batch (the batch's
/// own rows come with theirs set); a decoy's rows are dropped by their `real`
/// guard. Each parameter is a JSON array of rows; a blob travels as hex.
pub(super) const STORE_BATCH: &str = concat!(
    store_counters!(),
    "; \
    UPDATE recovery_flows SET revoked_at = r.value ->> 1 FROM json_each($2) AS r \
      WHERE lookup_key = unhex(r.value ->> 0) AND finished_at IS NULL AND revoked_at IS NULL; \
    INSERT INTO recovery_flows (id, purpose, channel, attempts_left, created_at, expires_at, \
        lookup_key, client_ip, contact_kind, contact_value, revoked_at) \
      SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
        unhex(value ->> 6), value ->> 7, value ->> 8, value ->> 9, value ->> 10 \
      FROM json_each($3); \
    UPDATE recovery_flow_accounts SET revoked_at = r.value ->> 2 FROM json_each($4) AS r \
      WHERE account_id = unhex(r.value ->> 0) AND revoked_at IS NULL AND purpose = r.value ->> 1; \
    UPDATE account_tokens SET revoked_at = r.value ->> 1 FROM json_each($5) AS r \
      WHERE account_id = unhex(r.value ->> 0) AND purpose = 'reset' \
        AND used_at IS NULL AND revoked_at IS NULL; \
    INSERT INTO recovery_flow_accounts (flow_id, account_id, purpose, recipient, code_hash, revoked_at) \
      SELECT unhex(value ->> 0), unhex(value ->> 1), value ->> 2, value ->> 3, unhex(value ->> 4), \
        value ->> 5 \
      FROM json_each($6) WHERE value ->> 6; \
    INSERT INTO account_tokens (hash, purpose, account_id, patient_id, flow_id, attempts_left, \
        created_at, expires_at, revoked_at) \
      SELECT unhex(value ->> 0), value ->> 1, unhex(value ->> 2), unhex(value ->> 3), \
        unhex(value ->> 4), value ->> 5, value ->> 6, value ->> 7, value ->> 8 \
      FROM json_each($7) WHERE value ->> 9; \
    INSERT INTO outbox_messages (id, kind, channel, recipient, language, patient_id, payload, \
        status, attempts, next_attempt_at, created_at, updated_at) \
      SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
        unhex(value ->> 5), value ->> 6, 'queued', 0, value ->> 7, value ->> 7, value ->> 7 \
      FROM json_each($8) WHERE value ->> 8; \
    INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, account_id, patient_id, ip, \
        outcome, details, prev_hash, hash) \
      SELECT value ->> 0, value ->> 1, value ->> 2, unhex(value ->> 3), value ->> 4, \
        unhex(value ->> 5), unhex(value ->> 6), value ->> 7, value ->> 8, value ->> 9, \
        unhex(value ->> 10), unhex(value ->> 11) \
      FROM json_each($9); \
    UPDATE audit_chain_head SET seq = e.value ->> 0, hash = unhex(e.value ->> 11) \
      FROM (SELECT value FROM json_each($9) ORDER BY key DESC LIMIT 1) AS e WHERE id = 1; \
    COMMIT"
);

/// A UUID as the hex of the 16 bytes SQLite stores.
fn uuid(id: Uuid) -> String {
    hex::encode(id.as_bytes())
}

/// Rows as one JSON array.
fn json_of(rows: impl Iterator<Item = Value>) -> String {
    Value::Array(rows.collect()).to_string()
}

/// Revocations (keys with their times) as one JSON array.
fn json_rows<K>(keys: &[K], at: &[i64], row: impl Fn(&K, i64) -> Value) -> String {
    json_of(keys.iter().zip(at).map(|(key, at)| row(key, *at)))
}

/// Counted counters as one JSON array.
fn counter_rows((keys, starts, counts): &CounterColumns) -> String {
    json_of(
        keys.iter()
            .zip(starts)
            .zip(counts)
            .map(|((key, start), count)| json!([key, start, count])),
    )
}

/// `events` chained after the head `(seq, hash)`, as one JSON array.
fn event_rows(seq: i64, hash: Vec<u8>, events: &[AuditEvent]) -> String {
    json_of(chain_after(seq, hash, events).iter().map(|chained| {
        let event = chained.event;
        json!([
            chained.seq,
            millis(event.at),
            event.actor.kind(),
            event.actor.id().map(uuid),
            event.action.as_str(),
            event.account_id.map(|id| uuid(id.0)),
            event.patient_id.map(|id| uuid(id.0)),
            event.ip,
            event.outcome.as_str(),
            chained.details,
            hex::encode(&chained.prev_hash),
            hex::encode(&chained.hash),
        ])
    }))
}
