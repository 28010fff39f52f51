//! SQLite's recovery batch (see [`crate::group_commit`]): statements joined
//! into a few calls to the writer's thread. The `BEGIN IMMEDIATE`, the audit
//! chain's head and the batch's counters are read in the first call; the
//! counters, counted in memory ([`Counters`]), and the writes go a few
//! requests per call; the audit events and the `COMMIT` in the last.

use super::SqliteStore;
use crate::recovery::{self, Answer, CounterColumns, Counters, RecoveryStart, RecoveryWrites};
use crate::script::Script;
use crate::shared::millis;
use carekey_domain::ids::AccountId;
use carekey_domain::message::NewMessage;
use carekey_domain::ports::{FlowParcel, NewRecoveryFlow, NewToken, StoreError, StoreResult};
use carekey_domain::recovery::Purpose;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection};
use std::sync::Arc;

/// Requests whose writes go to the database in one call; the statement cache
/// keeps one entry per mix of requests' shapes.
const RECOVERIES_PER_CALL: usize = 4;

impl SqliteStore {
    /// Stores the recovery requests of one batch in one transaction, in the
    /// order they came: first every request's own limits, then the
    /// destinations of those let through, then each request's writes. Each
    /// counter ends with the value, hit by hit, that one request at a time
    /// would give it: a request's own keys (`recovery:ip:`, `recovery:email:`,
    /// …) never meet a destination's (`recovery:to:`).
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
        .push(
            "SELECT key, window_start, count FROM rate_limits \
             WHERE key IN (SELECT value FROM json_each($1))",
        )
        .bind(Value::from(Counters::keys_of(jobs)).to_string());
    let mut rows = first.run(connection).await?.into_iter();
    let chain_head = rows
        .next()
        .ok_or_else(|| StoreError::Backend("the audit chain has no head".into()))?;
    let mut counters = Counters::from_rows(rows)?;
    let own = recovery::own_hits(jobs);
    let refusals = recovery::refusals_of(jobs, counters.count(&own));
    let destinations = recovery::destinations_of(jobs, &refusals);
    let mut hits = recovery::destination_hits(jobs, &destinations);
    let destination_waits = counters.count(&hits);
    hits.extend(&own);
    let mut writes = Calls::default();
    store_counters(&mut writes.current, &counters.stored(&hits));
    let (answers, events) = recovery::write_batch(
        &mut writes,
        jobs,
        refusals,
        &destinations,
        destination_waits,
    )?;
    for call in writes.done.into_iter().chain([writes.current]) {
        call.run(connection).await?;
    }
    let mut last = Script::<Sqlite>::new();
    SqliteStore::push_appends(&mut last, &chain_head, &events)?;
    last.push("COMMIT");
    last.run(connection).await?;
    Ok(answers)
}

/// Adds to `script` the statement that stores counted counters.
fn store_counters(script: &mut Script<'_, Sqlite>, (keys, starts, counts): &CounterColumns) {
    let rows: Vec<Value> = keys
        .iter()
        .zip(starts)
        .zip(counts)
        .map(|((key, start), count)| {
            Value::from(vec![
                Value::from(key.as_str()),
                (*start).into(),
                (*count).into(),
            ])
        })
        .collect();
    script
        .push(
            "INSERT INTO rate_limits (key, window_start, count) \
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each($1) WHERE true \
             ON CONFLICT (key) DO UPDATE SET window_start = excluded.window_start, count = excluded.count",
        )
        .bind(Value::from(rows).to_string());
}

/// A batch's writes as statements, [`RECOVERIES_PER_CALL`] requests a call.
#[derive(Default)]
struct Calls<'q> {
    done: Vec<Script<'q, Sqlite>>,
    current: Script<'q, Sqlite>,
    requests: usize,
}

impl<'q> RecoveryWrites<'q> for Calls<'q> {
    fn revoke_flows(&mut self, flow: &'q NewRecoveryFlow) {
        self.current
            .push(
                "UPDATE recovery_flows SET revoked_at = $2 WHERE lookup_key = $1 \
                 AND finished_at IS NULL AND revoked_at IS NULL",
            )
            .bind(flow.lookup_key.as_bytes())
            .bind(millis(flow.created_at));
    }

    fn insert_flow(&mut self, flow: &'q NewRecoveryFlow) {
        self.current
            .push(
                "INSERT INTO recovery_flows (id, purpose, channel, attempts_left, created_at, \
                 expires_at, lookup_key, client_ip, contact_kind, contact_value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(flow.id.0)
            .bind(flow.purpose.as_str())
            .bind(flow.channel.as_str())
            .bind(i64::from(flow.attempts))
            .bind(millis(flow.created_at))
            .bind(millis(flow.expires_at))
            .bind(flow.lookup_key.as_bytes())
            .bind(flow.client_ip.as_deref())
            .bind(flow.contact.as_ref().map(|(kind, _)| kind.as_str()))
            .bind(flow.contact.as_ref().map(|(_, value)| value.as_str()));
    }

    fn revoke_members(&mut self, account: AccountId, purpose: Purpose, at: DateTime<Utc>) {
        self.current
            .push(
                "UPDATE recovery_flow_accounts SET revoked_at = $2 \
                 WHERE account_id = $1 AND purpose = $3 AND revoked_at IS NULL",
            )
            .bind(account.0)
            .bind(millis(at))
            .bind(purpose.as_str());
    }

    fn revoke_reset_links(&mut self, account: AccountId, at: DateTime<Utc>) {
        self.current
            .push(
                "UPDATE account_tokens SET revoked_at = $2 WHERE account_id = $1 \
                 AND purpose = 'reset' AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(account.0)
            .bind(millis(at));
    }

    fn insert_member(
        &mut self,
        flow: &'q NewRecoveryFlow,
        parcel: &'q FlowParcel,
        account: AccountId,
        real: bool,
    ) {
        self.current
            .push(
                "INSERT INTO recovery_flow_accounts (flow_id, account_id, purpose, recipient, code_hash) \
                 SELECT $1, $2, $3, $4, $5 WHERE $6",
            )
            .bind(flow.id.0)
            .bind(account.0)
            .bind(flow.purpose.as_str())
            .bind(parcel.recipient.as_str())
            .bind(parcel.code_hash.as_ref().map(|hash| hash.as_bytes()))
            .bind(real);
    }

    fn insert_token(&mut self, token: &'q NewToken, at: DateTime<Utc>, real: bool) {
        SqliteStore::push_token(&mut self.current, token, None, at, real);
    }

    fn insert_message(
        &mut self,
        message: &'q NewMessage,
        at: DateTime<Utc>,
        real: bool,
    ) -> StoreResult<()> {
        SqliteStore::push_message(&mut self.current, message, at, real)
    }

    fn request_done(&mut self) {
        self.requests += 1;
        if self.requests.is_multiple_of(RECOVERIES_PER_CALL) {
            let full = std::mem::take(&mut self.current);
            self.done.push(full);
        }
    }
}
