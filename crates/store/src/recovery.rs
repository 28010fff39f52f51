//! Recovery's storage, shared by both backends like [`crate::shared`]: flows
//! and their codes, single-use tokens, resets, staff codes, and the rate-limit
//! counters they count. Every change is one transaction with its audit event.

use crate::backend_error;
use crate::shared::{from_millis, millis};
use carekey_domain::audit::{AuditEvent, Outcome};
use carekey_domain::ids::AccountId;
use carekey_domain::message::NewMessage;
use carekey_domain::ports::{FlowParcel, NewRecoveryFlow, NewToken, StoreError, StoreResult};
use carekey_domain::rate_limit::{RateLimit, RetryAfter, WindowCount};
use carekey_domain::recovery::Purpose;
use carekey_domain::token::TokenPurpose;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// One recovery request waiting for its turn in a group commit.
#[derive(Debug)]
pub(crate) struct RecoveryStart {
    pub flow: NewRecoveryFlow,
    pub limits: Vec<RateLimit>,
    pub audit: AuditEvent,
}

/// The group commit that stores recovery requests: each answers the number of
/// messages queued, or the wait when a rate limit refused it.
pub(crate) type RecoveryStarts = crate::group_commit::GroupCommit<
    RecoveryStart,
    Result<u32, carekey_domain::rate_limit::RetryAfter>,
>;

/// What a batch answers each request: the messages queued, or the wait when
/// a rate limit refused it.
pub(crate) type Answer = Result<u32, RetryAfter>;

/// One hit on a counter, at its request's time.
pub(crate) type Hit<'l> = (&'l RateLimit, DateTime<Utc>);

/// A batch's rate-limit counters: read as the batch begins (SQLite's write
/// lock or PostgreSQL's row locks keep anyone else from changing them until
/// it commits), counted here hit by hit with the domain's rule
/// ([`RateLimit::count_hit`]), and stored with the batch's writes. A counter
/// not stored yet is one never hit.
#[derive(Default)]
pub(crate) struct Counters(HashMap<String, WindowCount>);

/// Counters as stored: keys, window starts, counts.
pub(crate) type CounterColumns = (Vec<String>, Vec<i64>, Vec<i64>);

impl Counters {
    /// The keys a batch reads: every request's own limits and every
    /// destination any of them could send to (only those of requests let
    /// through are counted), sorted, each once.
    pub(crate) fn keys_of(jobs: &[Arc<RecoveryStart>]) -> Vec<String> {
        let let_through = vec![None; jobs.len()];
        let destinations = destinations_of(jobs, &let_through);
        let own = own_hits(jobs);
        Self::keys_of_hits(own.iter().chain(&destination_hits(jobs, &destinations)))
    }

    /// The keys `hits` count, sorted (the order PostgreSQL locks them in, so
    /// two transactions never wait on each other in a circle), each once.
    pub(crate) fn keys_of_hits<'h, 'l: 'h>(
        hits: impl IntoIterator<Item = &'h Hit<'l>>,
    ) -> Vec<String> {
        let mut keys: Vec<String> = hits
            .into_iter()
            .map(|(limit, _)| limit.key.clone())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Counters as read from their rows (`key`, `window_start`, `count`).
    pub(crate) fn from_rows<R>(rows: impl IntoIterator<Item = R>) -> StoreResult<Self>
    where
        R: Row,
        for<'r> &'r str: ColumnIndex<R>,
        for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    {
        let mut counters = Self::default();
        for row in rows {
            let window_start: i64 = row.try_get("window_start").map_err(backend_error)?;
            let count: i64 = row.try_get("count").map_err(backend_error)?;
            let counter = WindowCount {
                window_start: from_millis(window_start),
                count: u32::try_from(count).unwrap_or(u32::MAX),
            };
            counters
                .0
                .insert(row.try_get("key").map_err(backend_error)?, counter);
        }
        Ok(counters)
    }

    /// Counts each hit in order; for each, the wait when it is past its limit.
    pub(crate) fn count(&mut self, hits: &[Hit<'_>]) -> Vec<Option<chrono::Duration>> {
        hits.iter()
            .map(|(limit, at)| {
                let never_hit = WindowCount {
                    window_start: from_millis(0),
                    count: 0,
                };
                let counter = self.0.entry(limit.key.clone()).or_insert(never_hit);
                let hit = limit.count_hit(*counter, *at);
                // Stored, and so compared, in whole milliseconds.
                *counter = WindowCount {
                    window_start: from_millis(millis(hit.window_start)),
                    count: hit.count,
                };
                limit.retry_after(counter.count, counter.window_start, *at)
            })
            .collect()
    }

    /// The counters `hits` counted, each once, as they are to be stored.
    pub(crate) fn stored(&self, hits: &[Hit<'_>]) -> CounterColumns {
        let mut columns = CounterColumns::default();
        for (key, counter) in self
            .0
            .iter()
            .filter(|(key, _)| hits.iter().any(|(limit, _)| limit.key == **key))
        {
            columns.0.push(key.clone());
            columns.1.push(millis(counter.window_start));
            columns.2.push(i64::from(counter.count));
        }
        columns
    }
}

/// Every request's own limits, in order, each hit at its request's time.
fn own_hits(jobs: &[Arc<RecoveryStart>]) -> Vec<Hit<'_>> {
    jobs.iter()
        .flat_map(|job| job.limits.iter().map(|limit| (limit, job.flow.created_at)))
        .collect()
}

/// For each request, the longest wait among its own limits that refuse
/// (`own_waits` in the order of [`own_hits`]).
fn refusals_of(
    jobs: &[Arc<RecoveryStart>],
    own_waits: Vec<Option<chrono::Duration>>,
) -> Vec<Option<RetryAfter>> {
    let mut waits = own_waits.into_iter();
    jobs.iter()
        .map(|job| longest_wait(waits.by_ref().take(job.limits.len())))
        .collect()
}

/// For each request its own limits let through, the counter of each
/// destination it would send to, in order; none for a refused one.
fn destinations_of(
    jobs: &[Arc<RecoveryStart>],
    refusals: &[Option<RetryAfter>],
) -> Vec<Vec<RateLimit>> {
    jobs.iter()
        .zip(refusals)
        .map(|(job, refusal)| match refusal {
            Some(_) => Vec::new(),
            None => {
                let flow = &job.flow;
                flow.parcels
                    .iter()
                    .map(|parcel| RateLimit {
                        key: format!("{}{}", flow.per_destination.key, parcel.recipient),
                        ..flow.per_destination.clone()
                    })
                    .collect()
            }
        })
        .collect()
}

/// Each destination hit, in order, at its request's time.
fn destination_hits<'j>(
    jobs: &[Arc<RecoveryStart>],
    destinations: &'j [Vec<RateLimit>],
) -> Vec<(&'j RateLimit, DateTime<Utc>)> {
    jobs.iter()
        .zip(destinations)
        .flat_map(|(job, limits)| limits.iter().map(|limit| (limit, job.flow.created_at)))
        .collect()
}

/// The longest of the waits that refuse.
pub(crate) fn longest_wait(
    waits: impl IntoIterator<Item = Option<chrono::Duration>>,
) -> Option<RetryAfter> {
    waits.into_iter().flatten().max().map(RetryAfter)
}

/// What a batch stores, worked out from its counters as read under its lock:
/// the rows, each request's answer, the audit events to append, and the
/// counters it counted, as they are to be stored.
pub(crate) struct PlannedBatch<'q> {
    pub rows: Rows<'q>,
    pub answers: Vec<Answer>,
    pub events: Vec<AuditEvent>,
    pub counters: CounterColumns,
}

/// Counts a batch's hits in the order one request at a time would make them
/// (every request's own limits first, then the destinations of those let
/// through) and gathers its rows. A request's own keys (`recovery:ip:`,
/// `recovery:email:`, …) never meet a destination's (`recovery:to:`), so
/// each counter ends where one request at a time would leave it.
pub(crate) fn plan_batch(
    jobs: &[Arc<RecoveryStart>],
    mut counters: Counters,
) -> StoreResult<PlannedBatch<'_>> {
    let own = own_hits(jobs);
    let refusals = refusals_of(jobs, counters.count(&own));
    let destinations = destinations_of(jobs, &refusals);
    let mut hits = destination_hits(jobs, &destinations);
    let destination_waits = counters.count(&hits);
    let mut rows = Rows::default();
    let (answers, events) =
        write_batch(&mut rows, jobs, refusals, &destinations, destination_waits)?;
    hits.extend(&own);
    Ok(PlannedBatch {
        rows,
        answers,
        events,
        counters: counters.stored(&hits),
    })
}

/// A batch's writes once its counters are counted, request by request in
/// order: a refused request leaves only its audit event; one let through
/// writes its flow and each destination its limit let through
/// (`destination_waits` in the order of [`destination_hits`]). The answers,
/// and the audit events to append.
fn write_batch<'q>(
    writes: &mut Rows<'q>,
    jobs: &'q [Arc<RecoveryStart>],
    refusals: Vec<Option<RetryAfter>>,
    destinations: &[Vec<RateLimit>],
    destination_waits: Vec<Option<chrono::Duration>>,
) -> StoreResult<(Vec<Answer>, Vec<AuditEvent>)> {
    let mut waits = destination_waits.into_iter();
    let mut answers = Vec::with_capacity(jobs.len());
    let mut events = Vec::with_capacity(jobs.len());
    for ((job, refusal), destinations) in jobs.iter().zip(refusals).zip(destinations) {
        if let Some(wait) = refusal {
            // Recorded as the request it was, refused.
            let mut refused = job.audit.clone();
            refused.outcome = Outcome::Failure;
            refused.details["rate_limited"] = true.into();
            events.push(refused);
            answers.push(Err(wait));
            continue;
        }
        let limited: Vec<bool> = waits
            .by_ref()
            .take(destinations.len())
            .map(|wait| wait.is_some())
            .collect();
        answers.push(Ok(write_recovery(
            writes,
            &job.flow,
            &limited,
            job.audit.clone(),
            &mut events,
        )?));
    }
    Ok((answers, events))
}

/// One recovery request's writes, its limits counted: the flow, and for each
/// destination its limit let through (`limited` says which did not) the
/// accounts, links and message; its audit events are added to `events`.
/// Answers the number of messages it queues.
fn write_recovery<'q>(
    writes: &mut Rows<'q>,
    flow: &'q NewRecoveryFlow,
    limited: &[bool],
    audit: AuditEvent,
    events: &mut Vec<AuditEvent>,
) -> StoreResult<u32> {
    let at = flow.created_at;
    writes.revoke_flows(flow);
    writes.insert_flow(flow);
    let mut sent = 0u32;
    for (parcel, &limited) in flow.parcels.iter().zip(limited) {
        if limited {
            let mut limited = audit.clone();
            limited.details["destination_limited"] = true.into();
            events.push(limited);
            continue;
        }
        // A decoy makes every write below; its guard stores nothing.
        let real = !parcel.decoy;
        for (account, patient) in &parcel.accounts {
            // A newer request replaces the older ones of its purpose.
            writes.revoke_members(*account, flow.purpose, at);
            if flow.purpose == Purpose::Password {
                writes.revoke_reset_links(*account, at);
            }
            writes.insert_member(flow, parcel, *account, real);
            let event = if real {
                let mut event = audit.clone().account(*account).patient(*patient);
                event.details["recipient"] = parcel.recipient.clone().into();
                event
            } else {
                audit.clone()
            };
            events.push(event);
        }
        for link in &parcel.links {
            writes.insert_token(link, at, real);
        }
        writes.insert_message(&parcel.message, at, real)?;
        sent += u32::from(real);
    }
    if flow.parcels.is_empty() {
        events.push(audit);
    }
    for notice in &flow.notices {
        writes.insert_message(notice, at, true)?;
    }
    Ok(sent)
}

/// Keys of the rows stored before the batch that a request revokes, each
/// with the time of the first request that does (later ones find it revoked).
pub(crate) struct Revocations<K> {
    pub keys: Vec<K>,
    pub at: Vec<i64>,
}

impl<K> Default for Revocations<K> {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            at: Vec::new(),
        }
    }
}

impl<K: PartialEq> Revocations<K> {
    fn revoke(&mut self, key: K, at: DateTime<Utc>) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
            self.at.push(millis(at));
        }
    }
}

pub(crate) struct FlowRow<'q> {
    pub flow: &'q NewRecoveryFlow,
    pub revoked_at: Option<i64>,
}

pub(crate) struct MemberRow<'q> {
    pub flow: &'q NewRecoveryFlow,
    pub parcel: &'q FlowParcel,
    pub account: AccountId,
    pub revoked_at: Option<i64>,
    pub real: bool,
}

pub(crate) struct TokenRow<'q> {
    pub token: &'q NewToken,
    pub at: i64,
    pub revoked_at: Option<i64>,
    pub real: bool,
}

pub(crate) struct MessageRow<'q> {
    pub message: &'q NewMessage,
    pub payload: String,
    pub at: i64,
    pub real: bool,
}

/// A batch's writes, gathered table by table in the order one request at a
/// time would make them. A request's revocations reach the batch's own
/// earlier rows here, as they are built, and the rows stored before the batch
/// through the `*_revoked` keys, which each backend applies before it inserts
/// the new rows. A decoy's rows are gathered too (`real` false), so a batch
/// costs the same whoever asked; the statements store only real ones.
#[derive(Default)]
pub(crate) struct Rows<'q> {
    pub flows_revoked: Revocations<&'q [u8]>,
    pub flows: Vec<FlowRow<'q>>,
    pub members_revoked: Revocations<(Uuid, &'static str)>,
    pub members: Vec<MemberRow<'q>>,
    pub links_revoked: Revocations<Uuid>,
    pub tokens: Vec<TokenRow<'q>>,
    pub messages: Vec<MessageRow<'q>>,
}

impl<'q> Rows<'q> {
    fn revoke_flows(&mut self, flow: &'q NewRecoveryFlow) {
        let at = flow.created_at;
        for row in &mut self.flows {
            if row.flow.lookup_key == flow.lookup_key && row.revoked_at.is_none() {
                row.revoked_at = Some(millis(at));
            }
        }
        self.flows_revoked.revoke(flow.lookup_key.as_bytes(), at);
    }

    fn insert_flow(&mut self, flow: &'q NewRecoveryFlow) {
        self.flows.push(FlowRow {
            flow,
            revoked_at: None,
        });
    }

    fn revoke_members(&mut self, account: AccountId, purpose: Purpose, at: DateTime<Utc>) {
        for row in &mut self.members {
            if row.real
                && row.account == account
                && row.flow.purpose == purpose
                && row.revoked_at.is_none()
            {
                row.revoked_at = Some(millis(at));
            }
        }
        self.members_revoked
            .revoke((account.0, purpose.as_str()), at);
    }

    fn revoke_reset_links(&mut self, account: AccountId, at: DateTime<Utc>) {
        for row in &mut self.tokens {
            if row.real
                && row.token.account == Some(account)
                && row.token.purpose == TokenPurpose::Reset
                && row.revoked_at.is_none()
            {
                row.revoked_at = Some(millis(at));
            }
        }
        self.links_revoked.revoke(account.0, at);
    }

    fn insert_member(
        &mut self,
        flow: &'q NewRecoveryFlow,
        parcel: &'q FlowParcel,
        account: AccountId,
        real: bool,
    ) {
        self.members.push(MemberRow {
            flow,
            parcel,
            account,
            revoked_at: None,
            real,
        });
    }

    fn insert_token(&mut self, token: &'q NewToken, at: DateTime<Utc>, real: bool) {
        self.tokens.push(TokenRow {
            token,
            at: millis(at),
            revoked_at: None,
            real,
        });
    }

    fn insert_message(
        &mut self,
        message: &'q NewMessage,
        at: DateTime<Utc>,
        real: bool,
    ) -> StoreResult<()> {
        let payload =
            serde_json::to_string(&message.data).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.messages.push(MessageRow {
            message,
            payload,
            at: millis(at),
            real,
        });
        Ok(())
    }
}

macro_rules! impl_recovery_store {
    ($store:ident, $db:ident, for_update = $for_update:literal) => {
      mod recovery_queries {
        use super::{$store, $db};
        use $crate::backend_error;
        use $crate::shared::{from_millis, millis};
        use async_trait::async_trait;
        use carekey_domain::audit::{AuditAction, AuditEvent, Outcome};
        use carekey_domain::identifiers::DateOfBirth;
        use carekey_domain::ids::{AccountId, FlowId, PatientId};
        use carekey_domain::message::NewMessage;
        use carekey_domain::model::NewAccount;
        use carekey_domain::model::Language;
        use carekey_domain::ports::{
            ActivationRedemption, CodeAttempt, CodeAttemptResult, FlowSummary, NewRecoveryFlow, NewToken, PasswordReset,
            RecoveryStore, StaffCodeRedemption, StoreError, StoreResult, TokenRecord, TokenState,
        };
        use carekey_domain::rate_limit::{RateLimit, RetryAfter};
        use carekey_domain::recovery::{
            Anchor, AttemptOutcome, CodeState, RecoveryCandidate, StoredContact,
        };
        use carekey_domain::token::{TokenHash, TokenPurpose};
        use chrono::{DateTime, Utc};
        use sqlx::Row;
        use uuid::Uuid;

        type Tx<'c> = sqlx::Transaction<'c, $db>;

        impl $store {
            /// Counts every limit (all of them, so each counter stays true) with
            /// the domain's rule, its counters read under the transaction's lock
            /// and stored back, and returns the longest wait among those that
            /// refuse.
            async fn hit_all_in(
                tx: &mut Tx<'_>,
                limits: &[RateLimit],
                now: DateTime<Utc>,
            ) -> StoreResult<Option<RetryAfter>> {
                let hits: Vec<_> = limits.iter().map(|limit| (limit, now)).collect();
                let keys = $crate::recovery::Counters::keys_of_hits(&hits);
                let mut counters = Self::lock_counters(&mut **tx, &keys).await?;
                let waits = counters.count(&hits);
                Self::store_counters(&mut **tx, &counters.stored(&hits)).await?;
                Ok($crate::recovery::longest_wait(waits))
            }

            /// Ends every way into the account that is still open: unused
            /// tokens and codes, and its part of any unfinished flow.
            pub(crate) async fn end_credentials_in(
                tx: &mut Tx<'_>,
                account: AccountId,
                at: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE account_tokens SET revoked_at = $2 \
                     WHERE account_id = $1 AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(account.0)
                .bind(millis(at))
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
                sqlx::query(
                    "UPDATE recovery_flow_accounts SET revoked_at = $2 \
                     WHERE account_id = $1 AND revoked_at IS NULL",
                )
                .bind(account.0)
                .bind(millis(at))
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn insert_token_in(
                tx: &mut Tx<'_>,
                token: &NewToken,
                account: Option<AccountId>,
                at: DateTime<Utc>,
            ) -> StoreResult<()> {
                let mut script = $crate::script::Script::<$db>::new();
                Self::push_token(&mut script, token, account, at, true);
                script.run(tx).await?;
                Ok(())
            }

            /// Adds to `script` the statement that stores a token when `real`;
            /// otherwise the same statement storing nothing (a decoy's equal cost).
            pub(crate) fn push_token<'q>(
                script: &mut $crate::script::Script<'q, $db>,
                token: &'q NewToken,
                account: Option<AccountId>,
                at: DateTime<Utc>,
                real: bool,
            ) {
                script
                    .push(
                        "INSERT INTO account_tokens (hash, purpose, account_id, patient_id, flow_id, \
                         attempts_left, created_at, expires_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE $9",
                    )
                    .bind(token.hash.as_bytes())
                    .bind(token.purpose.as_str())
                    .bind(account.or(token.account).map(|id| id.0))
                    .bind(token.patient.map(|id| id.0))
                    .bind(token.flow.map(|id| id.0))
                    .bind(token.attempts.map(i64::from))
                    .bind(millis(at))
                    .bind(millis(token.expires_at))
                    .bind(real);
            }
        }

        fn candidate_of(row: &<$db as sqlx::Database>::Row) -> StoreResult<RecoveryCandidate> {
            let contact = |value: &str, verified: &str| -> StoreResult<Option<StoredContact>> {
                let value: Option<String> = row.try_get(value).map_err(backend_error)?;
                let verified: Option<String> = row.try_get(verified).map_err(backend_error)?;
                Ok(value.map(|value| StoredContact {
                    value,
                    verified: verified.is_some(),
                }))
            };
            let status: String = row.try_get("status").map_err(backend_error)?;
            let born: String = row.try_get("date_of_birth").map_err(backend_error)?;
            let language: Option<String> = row.try_get("preferred_language").map_err(backend_error)?;
            Ok(RecoveryCandidate {
                account_id: AccountId(row.try_get("id").map_err(backend_error)?),
                patient_id: PatientId(row.try_get("patient_id").map_err(backend_error)?),
                username: row.try_get("username").map_err(backend_error)?,
                active: status == "active",
                given_name: row.try_get("given_name").map_err(backend_error)?,
                date_of_birth: DateOfBirth::parse(&born).ok(),
                language: language.as_deref().and_then(Language::from_tag),
                email: contact("email", "email_verified_by")?,
                phone: contact("phone", "phone_verified_by")?,
            })
        }

        /// Replaced by a newer request, or every account it covered revoked
        /// (a decoy, which never covered any, stays open like a real flow).
        fn flow_revoked(row: &<$db as sqlx::Database>::Row) -> StoreResult<bool> {
            let revoked: Option<i64> = row.try_get("revoked_at").map_err(backend_error)?;
            let members: i64 = row.try_get("members").map_err(backend_error)?;
            let live: i64 = row.try_get("live_members").map_err(backend_error)?;
            Ok(revoked.is_some() || (members > 0 && live == 0))
        }

        fn token_state(
            row: &<$db as sqlx::Database>::Row,
            now: DateTime<Utc>,
        ) -> StoreResult<TokenState> {
            let used: Option<i64> = row.try_get("used_at").map_err(backend_error)?;
            let revoked: Option<i64> = row.try_get("revoked_at").map_err(backend_error)?;
            let expires: i64 = row.try_get("expires_at").map_err(backend_error)?;
            Ok(if used.is_some() {
                TokenState::Used
            } else if revoked.is_some() {
                TokenState::Revoked
            } else if expires <= millis(now) {
                TokenState::Expired
            } else {
                TokenState::Usable
            })
        }

        #[async_trait]
        impl RecoveryStore for $store {
            async fn find_recovery_candidates(&self, anchor: &Anchor) -> StoreResult<Vec<RecoveryCandidate>> {
                let (condition, value) = match anchor {
                    Anchor::Username(username) => ("a.username = $1", username.as_str()),
                    Anchor::Email(email) => (
                        "a.patient_id IN (SELECT patient_id FROM contacts WHERE kind = 'email' AND value = $1)",
                        email.as_str(),
                    ),
                    Anchor::Phone(phone) => (
                        "a.patient_id IN (SELECT patient_id FROM contacts WHERE kind = 'phone' AND value = $1)",
                        phone.as_str(),
                    ),
                };
                let sql = format!(
                    "SELECT a.id, a.patient_id, a.username, a.status, p.given_name, p.date_of_birth, \
                     p.preferred_language, e.value AS email, e.verified_by AS email_verified_by, \
                     ph.value AS phone, ph.verified_by AS phone_verified_by \
                     FROM portal_accounts a JOIN patients p ON p.id = a.patient_id \
                     LEFT JOIN contacts e ON e.patient_id = a.patient_id AND e.kind = 'email' \
                     LEFT JOIN contacts ph ON ph.patient_id = a.patient_id AND ph.kind = 'phone' \
                     WHERE {condition} ORDER BY a.created_at LIMIT 20"
                );
                let lookup = || sqlx::query(&sql).bind(value);
                let mut kept = self.lookups.lend().await?;
                let rows = match lookup().fetch_all(kept.connection()?).await {
                    Ok(rows) => rows,
                    // A kept connection is lent untested and may have broken
                    // while kept (a restarted server): ask the pool, which
                    // tests its connections.
                    Err(_) => {
                        kept.failed();
                        lookup().fetch_all(&self.pool).await.map_err(backend_error)?
                    }
                };
                rows.iter().map(candidate_of).collect()
            }

            async fn start_recovery(
                &self,
                flow: &NewRecoveryFlow,
                limits: &[RateLimit],
                audit: AuditEvent,
            ) -> StoreResult<Result<u32, RetryAfter>> {
                self.recovery_starts
                    .run(crate::recovery::RecoveryStart {
                        flow: flow.clone(),
                        limits: limits.to_vec(),
                        audit,
                    })
                    .await
            }

            async fn purge_rate_limits(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
                    .bind(millis(before))
                    .execute(&self.writer)
                    .await
                    .map_err(backend_error)?;
                Ok(done.rows_affected())
            }

            async fn hit_rate_limits(&self, limits: &[RateLimit], at: DateTime<Utc>) -> StoreResult<Option<RetryAfter>> {
                let mut tx = self.begin_write().await?;
                let wait = Self::hit_all_in(&mut tx, limits, at).await?;
                Self::commit(tx).await?;
                Ok(wait)
            }

            async fn recovery_flow(&self, flow: FlowId) -> StoreResult<Option<FlowSummary>> {
                let row = sqlx::query(
                    "SELECT purpose, channel, attempts_left, expires_at, finished_at, revoked_at, \
                     (SELECT COUNT(*) FROM recovery_flow_accounts m WHERE m.flow_id = f.id) AS members, \
                     (SELECT COUNT(*) FROM recovery_flow_accounts m WHERE m.flow_id = f.id \
                       AND m.revoked_at IS NULL) AS live_members \
                     FROM recovery_flows f WHERE id = $1",
                )
                .bind(flow.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?;
                let Some(row) = row else { return Ok(None) };
                let members = sqlx::query(
                    "SELECT m.account_id, a.username FROM recovery_flow_accounts m \
                     JOIN portal_accounts a ON a.id = m.account_id \
                     WHERE m.flow_id = $1 AND m.revoked_at IS NULL ORDER BY a.username",
                )
                .bind(flow.0)
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
                let purpose: String = row.try_get("purpose").map_err(backend_error)?;
                let channel: String = row.try_get("channel").map_err(backend_error)?;
                let attempts: i64 = row.try_get("attempts_left").map_err(backend_error)?;
                let finished: Option<i64> = row.try_get("finished_at").map_err(backend_error)?;
                Ok(Some(FlowSummary {
                    purpose: purpose.parse().map_err(StoreError::Backend)?,
                    channel: channel.parse().map_err(StoreError::Backend)?,
                    attempts_left: u32::try_from(attempts).unwrap_or(0),
                    expires_at: from_millis(row.try_get("expires_at").map_err(backend_error)?),
                    finished: finished.is_some(),
                    revoked: flow_revoked(&row)?,
                    accounts: members
                        .iter()
                        .map(|m| {
                            Ok((
                                AccountId(m.try_get("account_id").map_err(backend_error)?),
                                m.try_get("username").map_err(backend_error)?,
                            ))
                        })
                        .collect::<StoreResult<_>>()?,
                }))
            }

            async fn attempt_recovery_code(
                &self,
                attempt: &CodeAttempt,
                audit: AuditEvent,
            ) -> StoreResult<CodeAttemptResult> {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(concat!(
                    "SELECT attempts_left, expires_at, finished_at, revoked_at, contact_kind, contact_value, \
                     (SELECT COUNT(*) FROM recovery_flow_accounts m WHERE m.flow_id = f.id) AS members, \
                     (SELECT COUNT(*) FROM recovery_flow_accounts m WHERE m.flow_id = f.id \
                       AND m.revoked_at IS NULL) AS live_members \
                     FROM recovery_flows f WHERE id = $1",
                    $for_update
                ))
                .bind(attempt.flow.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_error)?;
                let Some(row) = row else {
                    return Ok(CodeAttemptResult { outcome: AttemptOutcome::Gone, accepted: vec![] });
                };
                let attempts: i64 = row.try_get("attempts_left").map_err(backend_error)?;
                let finished: Option<i64> = row.try_get("finished_at").map_err(backend_error)?;
                let state = CodeState {
                    attempts_left: u32::try_from(attempts).unwrap_or(0),
                    expires_at: from_millis(row.try_get("expires_at").map_err(backend_error)?),
                    closed: finished.is_some() || flow_revoked(&row)?,
                };
                let mut unlocked: Vec<(AccountId, PatientId)> = Vec::new();
                if let Some(code_hash) = &attempt.code_hash {
                    let rows = sqlx::query(
                        "SELECT m.account_id, a.patient_id FROM recovery_flow_accounts m \
                         JOIN portal_accounts a ON a.id = m.account_id \
                         WHERE m.flow_id = $1 AND m.code_hash = $2 AND m.revoked_at IS NULL \
                         AND a.status = 'active'",
                    )
                    .bind(attempt.flow.0)
                    .bind(code_hash.as_bytes())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                    for row in &rows {
                        unlocked.push((
                            AccountId(row.try_get("account_id").map_err(backend_error)?),
                            PatientId(row.try_get("patient_id").map_err(backend_error)?),
                        ));
                    }
                }
                let (outcome, next) = state.attempt(attempt.at, !unlocked.is_empty());
                let mut event = audit;
                event.details["attempts_left"] = next.attempts_left.into();
                match outcome {
                    AttemptOutcome::Gone => {
                        event.action = AuditAction::RecoveryCodeRejected;
                        event.outcome = Outcome::Failure;
                        event.details["reason"] = "flow_expired".into();
                        Self::append_in(&mut tx, &event).await?;
                    }
                    AttemptOutcome::Wrong { .. } => {
                        sqlx::query("UPDATE recovery_flows SET attempts_left = $2 WHERE id = $1")
                            .bind(attempt.flow.0)
                            .bind(i64::from(next.attempts_left))
                            .execute(&mut *tx)
                            .await
                            .map_err(backend_error)?;
                        event.action = AuditAction::RecoveryCodeRejected;
                        event.outcome = Outcome::Failure;
                        event.details["reason"] = "wrong_code".into();
                        Self::append_in(&mut tx, &event).await?;
                    }
                    AttemptOutcome::Accepted => {
                        sqlx::query("UPDATE recovery_flows SET finished_at = $2 WHERE id = $1")
                            .bind(attempt.flow.0)
                            .bind(millis(attempt.at))
                            .execute(&mut *tx)
                            .await
                            .map_err(backend_error)?;
                        // A contact change takes effect with its code: the new value, proved.
                        let kind: Option<String> = row.try_get("contact_kind").map_err(backend_error)?;
                        let value: Option<String> = row.try_get("contact_value").map_err(backend_error)?;
                        if let (Some(kind), Some(value)) = (kind, value) {
                            for (_, patient) in &unlocked {
                                sqlx::query(
                                    "INSERT INTO contacts (patient_id, kind, value, verified_by, verified_at, updated_at) \
                                     VALUES ($1, $2, $3, 'code', $4, $4) ON CONFLICT (patient_id, kind) DO UPDATE SET \
                                     value = excluded.value, verified_by = 'code', verified_at = excluded.verified_at, \
                                     updated_at = excluded.updated_at",
                                )
                                .bind(patient.0)
                                .bind(&kind)
                                .bind(&value)
                                .bind(millis(attempt.at))
                                .execute(&mut *tx)
                                .await
                                .map_err(backend_error)?;
                            }
                        }
                        for (account, patient) in &unlocked {
                            if let Some(offer) = attempt.offers.iter().find(|o| o.account == Some(*account)) {
                                Self::insert_token_in(&mut tx, offer, None, attempt.at).await?;
                            }
                            let accepted = event.clone().account(*account).patient(*patient);
                            Self::append_in(&mut tx, &accepted).await?;
                        }
                    }
                }
                Self::commit(tx).await?;
                Ok(CodeAttemptResult {
                    outcome,
                    accepted: unlocked.into_iter().map(|(account, _)| account).collect(),
                })
            }

            async fn token(
                &self,
                hash: &TokenHash,
                purpose: TokenPurpose,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<TokenRecord>> {
                let row = sqlx::query(
                    "SELECT account_id, patient_id, expires_at, used_at, revoked_at FROM account_tokens \
                     WHERE hash = $1 AND purpose = $2",
                )
                .bind(hash.as_bytes())
                .bind(purpose.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(TokenRecord {
                    account: row
                        .try_get::<Option<Uuid>, _>("account_id")
                        .map_err(backend_error)?
                        .map(AccountId),
                    patient: row
                        .try_get::<Option<Uuid>, _>("patient_id")
                        .map_err(backend_error)?
                        .map(PatientId),
                    state: token_state(&row, now)?,
                    expires_at: from_millis(row.try_get("expires_at").map_err(backend_error)?),
                }))
            }

            async fn reset_password(&self, reset: &PasswordReset, audit: AuditEvent) -> StoreResult<bool> {
                let at = millis(reset.at);
                let mut tx = self.begin_write().await?;
                // The single use: of concurrent resets with one token, one updates this row.
                let used = sqlx::query(
                    "UPDATE account_tokens SET used_at = $3 WHERE hash = $1 AND account_id = $2 \
                     AND purpose = 'reset' AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
                )
                .bind(reset.token.as_bytes())
                .bind(reset.account.0)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                if used.rows_affected() != 1 {
                    return Ok(false);
                }
                let patient =
                    Self::set_password_in(&mut tx, reset.account, &reset.password_hash, reset.at, true).await?;
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL")
                    .bind(reset.account.0)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                Self::end_credentials_in(&mut tx, reset.account, reset.at).await?;
                Self::insert_messages_in(&mut tx, &reset.notices, reset.at).await?;
                Self::append_in(&mut tx, &audit.account(reset.account).patient(patient)).await?;
                Self::commit(tx).await?;
                Ok(true)
            }

            async fn redeem_activation(
                &self,
                redemption: &ActivationRedemption,
                limits: &[RateLimit],
                audit: AuditEvent,
            ) -> StoreResult<Result<Option<(PatientId, String)>, RetryAfter>> {
                let at = redemption.at;
                let mut tx = self.begin_write().await?;
                let mut event = audit;
                let refuse = |mut event: AuditEvent, reason: &str| {
                    event.action = AuditAction::EnrollmentCodeRejected;
                    event.outcome = Outcome::Failure;
                    event.details["reason"] = reason.into();
                    event
                };
                if let Some(wait) = Self::hit_all_in(&mut tx, limits, at).await? {
                    Self::append_in(&mut tx, &refuse(event, "rate_limited")).await?;
                    Self::commit(tx).await?;
                    return Ok(Err(wait));
                }
                let token = sqlx::query(concat!(
                    "SELECT patient_id, attempts_left, expires_at, used_at, revoked_at \
                     FROM account_tokens WHERE hash = $1 AND purpose = 'activation'",
                    $for_update
                ))
                .bind(redemption.code_hash.as_bytes())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_error)?;
                let patient: Option<Uuid> = match &token {
                    Some(row) => {
                        let attempts: Option<i64> = row.try_get("attempts_left").map_err(backend_error)?;
                        if token_state(row, at)? == TokenState::Usable && attempts.unwrap_or(0) > 0 {
                            row.try_get("patient_id").map_err(backend_error)?
                        } else {
                            None
                        }
                    }
                    None => None,
                };
                let Some(patient) = patient.map(PatientId) else {
                    Self::append_in(&mut tx, &refuse(event, "unknown_or_spent_code")).await?;
                    Self::commit(tx).await?;
                    return Ok(Ok(None));
                };
                let holder = sqlx::query(
                    "SELECT p.given_name, p.date_of_birth, p.postal_code, \
                     (SELECT COUNT(*) FROM portal_accounts a WHERE a.patient_id = p.id) AS accounts \
                     FROM patients p WHERE p.id = $1",
                )
                .bind(patient.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend_error)?;
                let born: String = holder.try_get("date_of_birth").map_err(backend_error)?;
                let postal: Option<String> = holder.try_get("postal_code").map_err(backend_error)?;
                let accounts: i64 = holder.try_get("accounts").map_err(backend_error)?;
                let same = |a: &Option<String>, b: &Option<String>| {
                    let clean = |v: &Option<String>| v.as_deref().map(|s| s.replace([' ', '-'], "").to_uppercase());
                    clean(a).is_some() && clean(a) == clean(b)
                };
                let matches = DateOfBirth::parse(&born).ok() == Some(redemption.date_of_birth)
                    && (!redemption.require_postal_code || same(&postal, &redemption.postal_code))
                    && accounts == 0;
                event = event.patient(patient);
                if !matches {
                    sqlx::query("UPDATE account_tokens SET attempts_left = attempts_left - 1 WHERE hash = $1")
                        .bind(redemption.code_hash.as_bytes())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend_error)?;
                    Self::append_in(&mut tx, &refuse(event, "details_do_not_match")).await?;
                    Self::commit(tx).await?;
                    return Ok(Ok(None));
                }
                sqlx::query("UPDATE account_tokens SET used_at = $2 WHERE hash = $1")
                    .bind(redemption.code_hash.as_bytes())
                    .bind(millis(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                let offer = NewToken {
                    patient: Some(patient),
                    ..redemption.offer.clone()
                };
                Self::insert_token_in(&mut tx, &offer, None, at).await?;
                Self::append_in(&mut tx, &event).await?;
                Self::commit(tx).await?;
                let given_name: String = holder.try_get("given_name").map_err(backend_error)?;
                Ok(Ok(Some((patient, given_name))))
            }

            async fn complete_enrollment(
                &self,
                token: &TokenHash,
                account: &NewAccount,
                new_contacts: &[(String, String)],
                audit: AuditEvent,
            ) -> StoreResult<bool> {
                let at = millis(audit.at);
                let mut tx = self.begin_write().await?;
                let used = sqlx::query(
                    "UPDATE account_tokens SET used_at = $3 WHERE hash = $1 AND patient_id = $2 \
                     AND purpose = 'enrollment' AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
                )
                .bind(token.as_bytes())
                .bind(account.patient_id.0)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                if used.rows_affected() != 1 {
                    return Ok(false);
                }
                let id = AccountId::generate();
                sqlx::query(
                    "INSERT INTO portal_accounts (id, patient_id, username, password_hash, \
                     password_changed_at, status, created_at) VALUES ($1, $2, $3, $4, $5, 'active', $5)",
                )
                .bind(id.0)
                .bind(account.patient_id.0)
                .bind(account.username.as_str())
                .bind(&account.password_hash)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    let is_username = e.to_string().contains("username");
                    $crate::conflict_or_backend(e, if is_username { "username" } else { "account" })
                })?;
                sqlx::query("INSERT INTO password_history (account_id, password_hash, set_at) VALUES ($1, $2, $3)")
                    .bind(id.0)
                    .bind(&account.password_hash)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                for (kind, value) in new_contacts {
                    sqlx::query(
                        "INSERT INTO contacts (patient_id, kind, value, verified_by, verified_at, updated_at) \
                         VALUES ($1, $2, $3, NULL, NULL, $4) ON CONFLICT (patient_id, kind) DO NOTHING",
                    )
                    .bind(account.patient_id.0)
                    .bind(kind)
                    .bind(value)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                }
                sqlx::query(
                    "UPDATE account_tokens SET revoked_at = $2 WHERE patient_id = $1 AND account_id IS NULL \
                     AND purpose IN ('activation', 'enrollment') AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(account.patient_id.0)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit.account(id).patient(account.patient_id)).await?;
                Self::commit(tx).await?;
                Ok(true)
            }

            async fn issue_staff_code(&self, code: &NewToken, notices: &[NewMessage], audit: AuditEvent) -> StoreResult<()> {
                let account = code
                    .account
                    .ok_or_else(|| StoreError::Backend("a staff code needs an account".into()))?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE account_tokens SET revoked_at = $2 WHERE account_id = $1 \
                     AND purpose = 'staff_code' AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(account.0)
                .bind(millis(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::insert_token_in(&mut tx, code, None, audit.at).await?;
                let patient: Uuid = sqlx::query_scalar("SELECT patient_id FROM portal_accounts WHERE id = $1")
                    .bind(account.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                Self::insert_messages_in(&mut tx, notices, audit.at).await?;
                Self::append_in(&mut tx, &audit.account(account).patient(PatientId(patient))).await?;
                Self::commit(tx).await
            }

            async fn redeem_staff_code(
                &self,
                redemption: &StaffCodeRedemption,
                limits: &[RateLimit],
                audit: AuditEvent,
            ) -> StoreResult<Result<Option<(AccountId, String)>, RetryAfter>> {
                let at = redemption.at;
                let mut tx = self.begin_write().await?;
                let mut event = audit;
                if let Some(wait) = Self::hit_all_in(&mut tx, limits, at).await? {
                    event.action = AuditAction::StaffCodeRejected;
                    event.outcome = Outcome::Failure;
                    event.details["reason"] = "rate_limited".into();
                    Self::append_in(&mut tx, &event).await?;
                    Self::commit(tx).await?;
                    return Ok(Err(wait));
                }
                let token = sqlx::query(concat!(
                    "SELECT account_id, attempts_left, expires_at, used_at, revoked_at \
                     FROM account_tokens WHERE hash = $1 AND purpose = 'staff_code'",
                    $for_update
                ))
                .bind(redemption.code_hash.as_bytes())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_error)?;
                let usable = match &token {
                    Some(row) => {
                        let attempts: Option<i64> = row.try_get("attempts_left").map_err(backend_error)?;
                        token_state(row, at)? == TokenState::Usable && attempts.unwrap_or(0) > 0
                    }
                    None => false,
                };
                let account: Option<Uuid> = match (&token, usable) {
                    (Some(row), true) => row.try_get("account_id").map_err(backend_error)?,
                    _ => None,
                };
                let Some(account) = account.map(AccountId) else {
                    event.action = AuditAction::StaffCodeRejected;
                    event.outcome = Outcome::Failure;
                    event.details["reason"] = "unknown_or_spent_code".into();
                    Self::append_in(&mut tx, &event).await?;
                    Self::commit(tx).await?;
                    return Ok(Ok(None));
                };
                let holder = sqlx::query(
                    "SELECT a.username, a.status, a.patient_id, p.date_of_birth FROM portal_accounts a \
                     JOIN patients p ON p.id = a.patient_id WHERE a.id = $1",
                )
                .bind(account.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend_error)?;
                let born: String = holder.try_get("date_of_birth").map_err(backend_error)?;
                let status: String = holder.try_get("status").map_err(backend_error)?;
                let patient = PatientId(holder.try_get("patient_id").map_err(backend_error)?);
                let event = event.account(account).patient(patient);
                if DateOfBirth::parse(&born).ok() != Some(redemption.date_of_birth) || status != "active" {
                    sqlx::query("UPDATE account_tokens SET attempts_left = attempts_left - 1 WHERE hash = $1")
                        .bind(redemption.code_hash.as_bytes())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend_error)?;
                    let mut refused = event;
                    refused.action = AuditAction::StaffCodeRejected;
                    refused.outcome = Outcome::Failure;
                    refused.details["reason"] = "wrong_date_of_birth".into();
                    Self::append_in(&mut tx, &refused).await?;
                    Self::commit(tx).await?;
                    return Ok(Ok(None));
                }
                sqlx::query("UPDATE account_tokens SET used_at = $2 WHERE hash = $1")
                    .bind(redemption.code_hash.as_bytes())
                    .bind(millis(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                Self::insert_token_in(&mut tx, &redemption.offer, Some(account), at).await?;
                Self::append_in(&mut tx, &event).await?;
                Self::commit(tx).await?;
                let username: String = holder.try_get("username").map_err(backend_error)?;
                Ok(Ok(Some((account, username))))
            }
        }
      }
    };
}

pub(crate) use impl_recovery_store;
