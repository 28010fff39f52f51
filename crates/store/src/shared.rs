//! The queries both backends share, written once as a macro over the backend's
//! database type. Every state change is one transaction with its audit event.

use carekey_domain::audit::{chain_hash, AuditEvent, ChainedFields};
use carekey_domain::lockout::LockState;
use chrono::{DateTime, TimeZone, Utc};

/// Unix milliseconds, the stored form of every time.
pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(value: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(value).single().unwrap_or_default()
}

/// Lock counters as read from a row's columns.
pub(crate) fn lock_state(
    failed_attempts: i64,
    window_started_at: Option<i64>,
    locked_until: Option<i64>,
    held: bool,
    consecutive_lockouts: i64,
) -> LockState {
    LockState {
        failed_attempts: u32::try_from(failed_attempts).unwrap_or(u32::MAX),
        window_started_at: window_started_at.map(from_millis),
        locked_until: locked_until.map(from_millis),
        held,
        consecutive_lockouts: u32::try_from(consecutive_lockouts).unwrap_or(u32::MAX),
    }
}

/// An audit event in its place in the chain.
pub(crate) struct Chained<'e> {
    pub event: &'e AuditEvent,
    pub seq: i64,
    /// The event's details as stored (and hashed).
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// `events`, in order, chained after the head `(seq, hash)`.
pub(crate) fn chain_after(
    mut seq: i64,
    mut prev_hash: Vec<u8>,
    events: &[AuditEvent],
) -> Vec<Chained<'_>> {
    events
        .iter()
        .map(|event| {
            seq += 1;
            let details = event.details.to_string();
            let hash = chain_hash(&ChainedFields {
                seq,
                at_millis: millis(event.at),
                actor_kind: event.actor.kind(),
                actor_id: event.actor.id(),
                action: event.action.as_str(),
                account_id: event.account_id.map(|id| id.0),
                patient_id: event.patient_id.map(|id| id.0),
                ip: event.ip.as_deref(),
                outcome: event.outcome.as_str(),
                details: &details,
                prev_hash: &prev_hash,
            })
            .to_vec();
            Chained {
                event,
                seq,
                details,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            }
        })
        .collect()
}

pub(crate) const LOCK_COLUMNS: &str =
    "failed_attempts, failure_window_started_at, locked_until, lock_held, consecutive_lockouts";

/// An outbox message's columns, as `message_of` reads them.
pub(crate) const MESSAGE_COLUMNS: &str = "id, kind, channel, recipient, language, patient_id, \
    payload, status, attempts, next_attempt_at, last_error, provider_id, created_at, updated_at";

/// Leases up to `$4` messages, the longest waiting first, to owner `$3` until
/// `$2`: those due by `$1` and those whose lease lapsed by then. Each kind is
/// read in order from `outbox_due` and stops at the limit, so a claim costs
/// the same behind a backlog of a hundred thousand as of ten (one `OR` of
/// the two read and sorted every due message). `skip_locked` is PostgreSQL's
/// `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's rows.
pub(crate) fn claim_messages_sql(skip_locked: &str) -> String {
    format!(
        "WITH due AS (SELECT id, next_attempt_at FROM outbox_messages \
           WHERE status = 'queued' AND next_attempt_at <= $1 \
           ORDER BY next_attempt_at LIMIT $4{skip_locked}), \
         lapsed AS (SELECT id, next_attempt_at FROM outbox_messages \
           WHERE status = 'sending' AND lease_until <= $1 \
           ORDER BY next_attempt_at LIMIT $4{skip_locked}), \
         taken AS (SELECT * FROM due UNION ALL SELECT * FROM lapsed \
           ORDER BY next_attempt_at LIMIT $4) \
         UPDATE outbox_messages SET status = 'sending', lease_until = $2, lease_owner = $3, \
           attempts = attempts + 1, updated_at = $1 \
         WHERE id IN (SELECT id FROM taken) \
         RETURNING {MESSAGE_COLUMNS}"
    )
}

macro_rules! impl_store {
    ($store:ident, $db:ident, for_update = $for_update:literal, skip_locked = $skip_locked:literal) => {
      mod queries {
        use super::{$store, $db};
        use carekey_domain::ports::{StoreError, StoreResult};
        use $crate::shared::{
            claim_messages_sql, from_millis, lock_state, millis, LOCK_COLUMNS, MESSAGE_COLUMNS,
        };
        use $crate::{backend_error, conflict_or_backend};
        use async_trait::async_trait;
        use carekey_domain::audit::{AuditAction, AuditEvent, Outcome, Actor};
        use carekey_domain::identifiers::{Login, Username};
        use carekey_domain::ids::{AccountId, PatientId};
        use carekey_domain::lockout::{FailureOutcome, LockState};
        use carekey_domain::model::{
            AccountForSignIn, AccountStatus, Language, NewAccount, NewPatient, NewStaff, SessionOwner,
            SessionRecord,
        };
        use carekey_domain::ids::MessageId;
        use carekey_domain::message::{MessageData, MessageRecord, MessageStatus, NewMessage};
        use carekey_domain::policy::{LockoutPolicy, Policy};
        use carekey_domain::ports::{
            AccountStore, AuditStore, NewSession, NoticeContacts, OutboxStore, PasswordChange, PasswordContext, PatientStore, PolicyStore, SessionStore, StaffStore,
            Store,
        };
        use carekey_domain::session::SessionExpiry;
        use carekey_domain::token::TokenHash;
        use sqlx::Row;
        use uuid::Uuid;

        type Tx<'c> = sqlx::Transaction<'c, $db>;

        /// Reads the audit chain's head (on PostgreSQL locking it until the
        /// transaction ends, so concurrent writers never fork the chain).
        pub(crate) const READ_CHAIN_HEAD: &str =
            concat!("SELECT seq, hash FROM audit_chain_head WHERE id = 1", $for_update);

        impl $store {
            /// Appends one event to the audit chain inside `tx`, advancing the chain
            /// head under a row lock so concurrent writers never fork the chain.
            pub(crate) async fn append_in(tx: &mut Tx<'_>, event: &AuditEvent) -> StoreResult<()> {
                Self::append_all_in(tx, std::slice::from_ref(event)).await
            }

            /// Appends events to the audit chain in order: the head is read (and
            /// on PostgreSQL locked) once, the events inserted a few hundred rows
            /// per statement, the head moved once.
            pub(crate) async fn append_all_in(tx: &mut Tx<'_>, events: &[AuditEvent]) -> StoreResult<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let head = sqlx::query(READ_CHAIN_HEAD)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(backend_error)?;
                let mut script = $crate::script::Script::<$db>::new();
                Self::push_appends(&mut script, &head, events)?;
                script.run(tx).await?;
                Ok(())
            }

            /// Adds to `script` the statements that append `events` to the
            /// chain after `head` (a row read by [`READ_CHAIN_HEAD`] in the
            /// same transaction) and move the head past them.
            pub(crate) fn push_appends(
                script: &mut $crate::script::Script<'_, $db>,
                head: &<$db as sqlx::Database>::Row,
                events: &[AuditEvent],
            ) -> StoreResult<()> {
                /// Rows per INSERT: 12 values each stays well under either database's limit.
                const ROWS_PER_INSERT: usize = 200;
                const COLUMNS: usize = 12;
                let seq: i64 = head.try_get("seq").map_err(backend_error)?;
                let hash: Vec<u8> = head.try_get("hash").map_err(backend_error)?;
                let chained = $crate::shared::chain_after(seq, hash.clone(), events);
                for chunk in chained.chunks(ROWS_PER_INSERT) {
                    let rows: Vec<String> = (0..chunk.len())
                        .map(|row| {
                            let values: Vec<String> =
                                (1..=COLUMNS).map(|column| format!("${}", row * COLUMNS + column)).collect();
                            format!("({})", values.join(", "))
                        })
                        .collect();
                    script.push(&format!(
                        "INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, account_id, \
                         patient_id, ip, outcome, details, prev_hash, hash) VALUES {}",
                        rows.join(", ")
                    ));
                    for chained in chunk {
                        let event = chained.event;
                        script
                            .bind(chained.seq)
                            .bind(millis(event.at))
                            .bind(event.actor.kind())
                            .bind(event.actor.id())
                            .bind(event.action.as_str())
                            .bind(event.account_id.map(|id| id.0))
                            .bind(event.patient_id.map(|id| id.0))
                            .bind(event.ip.clone())
                            .bind(event.outcome.as_str())
                            .bind(chained.details.clone())
                            .bind(chained.prev_hash.clone())
                            .bind(chained.hash.clone());
                    }
                }
                let (seq, hash) = chained.last().map_or((seq, hash), |last| (last.seq, last.hash.clone()));
                script
                    .push("UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(seq)
                    .bind(hash);
                Ok(())
            }

            /// Writes a new password hash and its history entry; with `unlock`,
            /// the lock counters are cleared too. Returns the account's patient.
            pub(crate) async fn set_password_in(
                tx: &mut Tx<'_>,
                account: AccountId,
                password_hash: &str,
                at: chrono::DateTime<chrono::Utc>,
                unlock: bool,
            ) -> StoreResult<PatientId> {
                let unlock_sql = if unlock {
                    ", failed_attempts = 0, failure_window_started_at = NULL, locked_until = NULL, \
                     lock_held = FALSE, consecutive_lockouts = 0"
                } else {
                    ""
                };
                let sql = format!(
                    "UPDATE portal_accounts SET password_hash = $2, password_changed_at = $3{unlock_sql} \
                     WHERE id = $1 RETURNING patient_id"
                );
                let row = sqlx::query(&sql)
                    .bind(account.0)
                    .bind(password_hash)
                    .bind(millis(at))
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(backend_error)?
                    .ok_or(StoreError::NotFound)?;
                sqlx::query("INSERT INTO password_history (account_id, password_hash, set_at) VALUES ($1, $2, $3)")
                    .bind(account.0)
                    .bind(password_hash)
                    .bind(millis(at))
                    .execute(&mut **tx)
                    .await
                    .map_err(backend_error)?;
                Ok(PatientId(row.try_get("patient_id").map_err(backend_error)?))
            }

            pub(crate) async fn commit(tx: Tx<'_>) -> StoreResult<()> {
                tx.commit().await.map_err(backend_error)
            }

            /// Reads an account's lock counters with the row locked for this transaction.
            pub(crate) async fn locked_lock_state(tx: &mut Tx<'_>, account: AccountId) -> StoreResult<(LockState, PatientId, AccountStatus)> {
                let sql = format!(
                    "SELECT patient_id, status, {LOCK_COLUMNS} FROM portal_accounts WHERE id = $1{}",
                    $for_update
                );
                let row = sqlx::query(&sql)
                    .bind(account.0)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(backend_error)?
                    .ok_or(StoreError::NotFound)?;
                Ok((
                    lock_state_of(&row)?,
                    PatientId(row.try_get("patient_id").map_err(backend_error)?),
                    status_of(&row)?,
                ))
            }

            pub(crate) async fn write_lock_state(tx: &mut Tx<'_>, account: AccountId, state: &LockState) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE portal_accounts SET failed_attempts = $2, failure_window_started_at = $3, \
                     locked_until = $4, lock_held = $5, consecutive_lockouts = $6 WHERE id = $1",
                )
                .bind(account.0)
                .bind(i64::from(state.failed_attempts))
                .bind(state.window_started_at.map(millis))
                .bind(state.locked_until.map(millis))
                .bind(state.held)
                .bind(i64::from(state.consecutive_lockouts))
                .execute(&mut **tx)
                .await
                .map_err(backend_error)?;
                Ok(())
            }
        }

        impl $store {
            /// Queues messages inside `tx`, so they exist exactly when the change does.
            pub(crate) async fn insert_messages_in(tx: &mut Tx<'_>, messages: &[NewMessage], now: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
                let mut script = $crate::script::Script::<$db>::new();
                for message in messages {
                    Self::push_message(&mut script, message, now, true)?;
                }
                script.run(tx).await?;
                Ok(())
            }

            /// Adds to `script` the statement that queues one message when
            /// `real`; otherwise the same statement storing nothing (a decoy's
            /// equal cost).
            pub(crate) fn push_message<'q>(
                script: &mut $crate::script::Script<'q, $db>,
                message: &'q NewMessage,
                now: chrono::DateTime<chrono::Utc>,
                real: bool,
            ) -> StoreResult<()> {
                let payload = serde_json::to_string(&message.data)
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                script
                    .push(
                        "INSERT INTO outbox_messages (id, kind, channel, recipient, language, patient_id, payload, \
                         status, attempts, next_attempt_at, created_at, updated_at) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8, $8 WHERE $9",
                    )
                    .bind(message.id.0)
                    .bind(message.kind.as_str())
                    .bind(message.channel.as_str())
                    .bind(&message.recipient)
                    .bind(message.language.code())
                    .bind(message.patient_id.map(|id| id.0))
                    .bind(payload)
                    .bind(millis(now))
                    .bind(real);
                Ok(())
            }
        }

        fn message_of(row: &<$db as sqlx::Database>::Row) -> StoreResult<MessageRecord> {
            let text = |column: &str| -> StoreResult<String> { row.try_get(column).map_err(backend_error) };
            let payload = text("payload")?;
            let attempts: i64 = row.try_get("attempts").map_err(backend_error)?;
            Ok(MessageRecord {
                id: MessageId(row.try_get("id").map_err(backend_error)?),
                kind: text("kind")?.parse().map_err(StoreError::Backend)?,
                channel: text("channel")?.parse().map_err(StoreError::Backend)?,
                recipient: text("recipient")?,
                language: Language::from_tag(&text("language")?).unwrap_or_default(),
                patient_id: row.try_get::<Option<Uuid>, _>("patient_id").map_err(backend_error)?.map(PatientId),
                data: serde_json::from_str(&payload).map_err(|e| StoreError::Backend(e.to_string()))?,
                status: text("status")?.parse().map_err(StoreError::Backend)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                next_attempt_at: from_millis(row.try_get("next_attempt_at").map_err(backend_error)?),
                last_error: row.try_get("last_error").map_err(backend_error)?,
                provider_id: row.try_get("provider_id").map_err(backend_error)?,
                created_at: from_millis(row.try_get("created_at").map_err(backend_error)?),
                updated_at: from_millis(row.try_get("updated_at").map_err(backend_error)?),
            })
        }

        #[async_trait]
        impl OutboxStore for $store {
            async fn enqueue_messages(&self, messages: &[NewMessage], now: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::insert_messages_in(&mut tx, messages, now).await?;
                Self::commit(tx).await
            }

            async fn claim_messages(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                owner: Uuid,
                limit: u32,
            ) -> StoreResult<Vec<MessageRecord>> {
                let sql = claim_messages_sql($skip_locked);
                let mut tx = self.begin_by_index().await?;
                let rows = sqlx::query(&sql)
                    .bind(millis(now))
                    .bind(millis(lease_until))
                    .bind(owner)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                Self::commit(tx).await?;
                rows.iter().map(message_of).collect()
            }

            async fn record_sent(
                &self,
                id: MessageId,
                owner: Uuid,
                provider_id: Option<&str>,
                kept_data: &MessageData,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StoreResult<bool> {
                let payload = serde_json::to_string(kept_data).map_err(|e| StoreError::Backend(e.to_string()))?;
                let done = sqlx::query(
                    "UPDATE outbox_messages SET status = 'sent', provider_id = $3, payload = $4, \
                     last_error = NULL, lease_until = NULL, lease_owner = NULL, updated_at = $5 \
                     WHERE id = $1 AND lease_owner = $2 AND status = 'sending'",
                )
                .bind(id.0)
                .bind(owner)
                .bind(provider_id)
                .bind(payload)
                .bind(millis(now))
                .execute(&self.writer)
                .await
                .map_err(backend_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_send_failure(
                &self,
                id: MessageId,
                owner: Uuid,
                error: &str,
                retry_at: Option<chrono::DateTime<chrono::Utc>>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StoreResult<bool> {
                let status = if retry_at.is_some() { "queued" } else { "failed" };
                let done = sqlx::query(
                    "UPDATE outbox_messages SET status = $3, last_error = $4, \
                     next_attempt_at = COALESCE($5, next_attempt_at), lease_until = NULL, lease_owner = NULL, \
                     updated_at = $6 WHERE id = $1 AND lease_owner = $2 AND status = 'sending'",
                )
                .bind(id.0)
                .bind(owner)
                .bind(status)
                .bind(error.chars().take(1000).collect::<String>())
                .bind(retry_at.map(millis))
                .bind(millis(now))
                .execute(&self.writer)
                .await
                .map_err(backend_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_provider_status(
                &self,
                provider_id: &str,
                status: MessageStatus,
                error: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StoreResult<bool> {
                // Reports only move a sent message forward; a late "sent" never undoes "delivered".
                let done = sqlx::query(
                    "UPDATE outbox_messages SET status = $2, last_error = COALESCE($3, last_error), updated_at = $4 \
                     WHERE provider_id = $1 AND status IN ('sent', 'delivered', 'bounced') \
                     AND NOT (status = 'delivered' AND $2 = 'sent')",
                )
                .bind(provider_id)
                .bind(status.as_str())
                .bind(error)
                .bind(millis(now))
                .execute(&self.writer)
                .await
                .map_err(backend_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn message(&self, id: MessageId) -> StoreResult<Option<MessageRecord>> {
                let sql = format!("SELECT {MESSAGE_COLUMNS} FROM outbox_messages WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend_error)?;
                row.as_ref().map(message_of).transpose()
            }

            async fn list_messages(&self, status: Option<MessageStatus>, limit: u32) -> StoreResult<Vec<MessageRecord>> {
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM outbox_messages \
                     WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC LIMIT $2"
                );
                let rows = sqlx::query(&sql)
                    .bind(status.map(|s| s.as_str()))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend_error)?;
                rows.iter().map(message_of).collect()
            }

            async fn requeue_message(&self, id: MessageId, now: chrono::DateTime<chrono::Utc>) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE outbox_messages SET status = 'queued', attempts = 0, next_attempt_at = $2, \
                     updated_at = $2 WHERE id = $1 AND status = 'failed'",
                )
                .bind(id.0)
                .bind(millis(now))
                .execute(&self.writer)
                .await
                .map_err(backend_error)?;
                Ok(done.rows_affected() == 1)
            }
        }

        /// Lock counters from a row holding [`LOCK_COLUMNS`] (accounts and staff alike).
        pub(super) fn lock_state_of(row: &<$db as sqlx::Database>::Row) -> StoreResult<LockState> {
            Ok(lock_state(
                row.try_get("failed_attempts").map_err(backend_error)?,
                row.try_get("failure_window_started_at").map_err(backend_error)?,
                row.try_get("locked_until").map_err(backend_error)?,
                row.try_get("lock_held").map_err(backend_error)?,
                row.try_get("consecutive_lockouts").map_err(backend_error)?,
            ))
        }

        fn status_of(row: &<$db as sqlx::Database>::Row) -> StoreResult<AccountStatus> {
            let status: String = row.try_get("status").map_err(backend_error)?;
            status.parse().map_err(StoreError::Backend)
        }

        #[async_trait]
        impl PolicyStore for $store {
            /// Read from the database at most once per
            /// [`crate::policy_cache::FRESH_FOR`].
            async fn load_policy(&self) -> StoreResult<Policy> {
                let ticket = match self.policy.fresh() {
                    Ok(policy) => return Ok(policy),
                    Err(ticket) => ticket,
                };
                let document: Option<String> =
                    sqlx::query_scalar("SELECT document FROM org_policy WHERE id = 1")
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(backend_error)?;
                let policy = match document {
                    Some(text) => serde_json::from_str(&text)
                        .map_err(|e| StoreError::Backend(format!("stored policy is unreadable: {e}")))?,
                    None => Policy::default(),
                };
                self.policy.read(ticket, &policy);
                Ok(policy)
            }

            async fn save_policy(&self, policy: &Policy, audit: AuditEvent) -> StoreResult<()> {
                let document = serde_json::to_string(policy)
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO org_policy (id, document, updated_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
                )
                .bind(document)
                .bind(millis(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await?;
                self.policy.saved(policy);
                Ok(())
            }
        }

        #[async_trait]
        impl PatientStore for $store {
            async fn create_patient(&self, patient: &NewPatient, audit: AuditEvent) -> StoreResult<PatientId> {
                let id = PatientId::generate();
                let now = millis(audit.at);
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO patients (id, mrn, given_name, family_name, date_of_birth, postal_code, \
                     preferred_language, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(id.0)
                .bind(&patient.mrn)
                .bind(&patient.given_name)
                .bind(&patient.family_name)
                .bind(patient.date_of_birth.to_string())
                .bind(&patient.postal_code)
                .bind(&patient.preferred_language)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or_backend(e, "mrn"))?;
                let contacts = [
                    ("email", patient.email.as_ref().map(|e| e.as_str().to_owned())),
                    ("phone", patient.phone.as_ref().map(|p| p.as_str().to_owned())),
                ];
                for (kind, value) in contacts {
                    if let Some(value) = value {
                        sqlx::query(
                            "INSERT INTO contacts (patient_id, kind, value, verified_by, verified_at, updated_at) \
                             VALUES ($1, $2, $3, 'staff', $4, $4)",
                        )
                        .bind(id.0)
                        .bind(kind)
                        .bind(value)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend_error)?;
                    }
                }
                Self::append_in(&mut tx, &audit.patient(id)).await?;
                Self::commit(tx).await?;
                Ok(id)
            }

            async fn import_patients(
                &self,
                patients: &[NewPatient],
                audit: AuditEvent,
                progress: Option<&(dyn Fn(u64) + Send + Sync)>,
            ) -> StoreResult<(u32, u32)> {
                let now = millis(audit.at);
                let (mut created, mut updated) = (0u32, 0u32);
                let mut tx = self.begin_write().await?;
                for (done, patient) in patients.iter().enumerate() {
                    if let Some(progress) = progress {
                        progress(done as u64);
                    }
                    let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM patients WHERE mrn = $1")
                        .bind(&patient.mrn)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(backend_error)?;
                    let id = match existing {
                        Some(id) => {
                            sqlx::query(
                                "UPDATE patients SET given_name = $2, family_name = $3, date_of_birth = $4, \
                                 postal_code = $5, preferred_language = $6, updated_at = $7 WHERE id = $1",
                            )
                            .bind(id)
                            .bind(&patient.given_name)
                            .bind(&patient.family_name)
                            .bind(patient.date_of_birth.to_string())
                            .bind(&patient.postal_code)
                            .bind(&patient.preferred_language)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend_error)?;
                            updated += 1;
                            id
                        }
                        None => {
                            let id = PatientId::generate().0;
                            sqlx::query(
                                "INSERT INTO patients (id, mrn, given_name, family_name, date_of_birth, postal_code, \
                                 preferred_language, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                            )
                            .bind(id)
                            .bind(&patient.mrn)
                            .bind(&patient.given_name)
                            .bind(&patient.family_name)
                            .bind(patient.date_of_birth.to_string())
                            .bind(&patient.postal_code)
                            .bind(&patient.preferred_language)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend_error)?;
                            created += 1;
                            id
                        }
                    };
                    let contacts = [
                        ("email", patient.email.as_ref().map(|e| e.as_str().to_owned())),
                        ("phone", patient.phone.as_ref().map(|p| p.as_str().to_owned())),
                    ];
                    for (kind, value) in contacts {
                        let Some(value) = value else { continue };
                        sqlx::query(
                            "INSERT INTO contacts (patient_id, kind, value, verified_by, verified_at, updated_at) \
                             VALUES ($1, $2, $3, 'staff', $4, $4) ON CONFLICT (patient_id, kind) DO UPDATE SET \
                             value = excluded.value, verified_by = 'staff', verified_at = excluded.verified_at, \
                             updated_at = excluded.updated_at",
                        )
                        .bind(id)
                        .bind(kind)
                        .bind(value)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend_error)?;
                    }
                }
                let mut event = audit;
                event.details["created"] = created.into();
                event.details["updated"] = updated.into();
                Self::append_in(&mut tx, &event).await?;
                Self::commit(tx).await?;
                Ok((created, updated))
            }

            async fn find_patient_by_mrn(&self, mrn: &str) -> StoreResult<Option<PatientId>> {
                let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM patients WHERE mrn = $1")
                    .bind(mrn)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend_error)?;
                Ok(id.map(PatientId))
            }
        }

        #[async_trait]
        impl AccountStore for $store {
            async fn create_account(&self, account: &NewAccount, audit: AuditEvent) -> StoreResult<AccountId> {
                let id = AccountId::generate();
                let now = millis(audit.at);
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO portal_accounts (id, patient_id, username, password_hash, \
                     password_changed_at, status, created_at) VALUES ($1, $2, $3, $4, $5, 'active', $5)",
                )
                .bind(id.0)
                .bind(account.patient_id.0)
                .bind(account.username.as_str())
                .bind(&account.password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    let is_username = e.to_string().contains("username");
                    conflict_or_backend(e, if is_username { "username" } else { "account" })
                })?;
                sqlx::query(
                    "INSERT INTO password_history (account_id, password_hash, set_at) VALUES ($1, $2, $3)",
                )
                .bind(id.0)
                .bind(&account.password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit.account(id).patient(account.patient_id)).await?;
                Self::commit(tx).await?;
                Ok(id)
            }

            async fn find_accounts_for_sign_in(&self, login: &Login) -> StoreResult<Vec<AccountForSignIn>> {
                let columns = format!(
                    "a.id, a.patient_id, a.username, a.status, a.password_hash, a.{}",
                    LOCK_COLUMNS.replace(", ", ", a.")
                );
                let (sql, value) = match login {
                    Login::Username(username) => (
                        format!("SELECT {columns} FROM portal_accounts a WHERE a.username = $1"),
                        username.as_str(),
                    ),
                    Login::Email(email) => (
                        format!(
                            "SELECT {columns} FROM portal_accounts a JOIN contacts c \
                             ON c.patient_id = a.patient_id AND c.kind = 'email' \
                             WHERE c.value = $1 ORDER BY a.created_at LIMIT 20"
                        ),
                        email.as_str(),
                    ),
                };
                let rows = sqlx::query(&sql)
                    .bind(value)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend_error)?;
                rows.iter()
                    .map(|row| {
                        Ok(AccountForSignIn {
                            id: AccountId(row.try_get("id").map_err(backend_error)?),
                            patient_id: PatientId(row.try_get("patient_id").map_err(backend_error)?),
                            username: row.try_get("username").map_err(backend_error)?,
                            status: status_of(row)?,
                            password_hash: row.try_get("password_hash").map_err(backend_error)?,
                            lock: lock_state_of(row)?,
                        })
                    })
                    .collect()
            }

            async fn record_sign_in_failure(
                &self,
                account: AccountId,
                policy: &LockoutPolicy,
                audit: AuditEvent,
                lock_notices: &[NewMessage],
            ) -> StoreResult<FailureOutcome> {
                let mut tx = self.begin_write().await?;
                let (state, patient, _) = Self::locked_lock_state(&mut tx, account).await?;
                let (next, outcome) = state.after_failure(policy, audit.at);
                if next != state {
                    Self::write_lock_state(&mut tx, account, &next).await?;
                }
                let at = audit.at;
                let ip = audit.ip.clone();
                Self::append_in(&mut tx, &audit.account(account).patient(patient)).await?;
                if let FailureOutcome::Locked { until } = outcome {
                    let locked = AuditEvent::new(at, Actor::System, AuditAction::AccountLocked, Outcome::Success)
                        .account(account)
                        .patient(patient)
                        .ip(ip)
                        .details(serde_json::json!({
                            "until": until.map(|u| u.to_rfc3339()),
                            "held": next.held,
                            "consecutive_lockouts": next.consecutive_lockouts,
                        }));
                    Self::append_in(&mut tx, &locked).await?;
                    Self::insert_messages_in(&mut tx, lock_notices, at).await?;
                }
                Self::commit(tx).await?;
                Ok(outcome)
            }

            async fn complete_sign_in(&self, session: &NewSession, audit: AuditEvent) -> StoreResult<bool> {
                let SessionOwner::Patient(account) = session.owner else {
                    return Err(StoreError::Backend("complete_sign_in takes a patient session".into()));
                };
                let mut tx = self.begin_write().await?;
                let (state, patient, status) = Self::locked_lock_state(&mut tx, account).await?;
                // A lock or a disable may have landed while the password was being checked.
                if state.is_locked(session.created_at) || status != AccountStatus::Active {
                    return Ok(false);
                }
                Self::write_lock_state(&mut tx, account, &state.after_success()).await?;
                sqlx::query("UPDATE portal_accounts SET last_sign_in_at = $2 WHERE id = $1")
                    .bind(account.0)
                    .bind(millis(session.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                sqlx::query(
                    "INSERT INTO sessions (id_hash, owner_kind, account_id, staff_id, created_at, last_seen_at, \
                     idle_expires_at, absolute_expires_at, ip, user_agent) \
                     VALUES ($1, 'patient', $2, NULL, $3, $3, $4, $5, $6, $7)",
                )
                .bind(session.id_hash.as_bytes())
                .bind(account.0)
                .bind(millis(session.created_at))
                .bind(millis(session.expiry.idle_expires_at))
                .bind(millis(session.expiry.absolute_expires_at))
                .bind(&session.ip)
                .bind(&session.user_agent)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit.account(account).patient(patient)).await?;
                Self::commit(tx).await?;
                Ok(true)
            }

            async fn notice_contacts(&self, account: AccountId) -> StoreResult<NoticeContacts> {
                let row = sqlx::query(
                    "SELECT a.patient_id, p.given_name, p.preferred_language FROM portal_accounts a \
                     JOIN patients p ON p.id = a.patient_id WHERE a.id = $1",
                )
                .bind(account.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?
                .ok_or(StoreError::NotFound)?;
                let patient_id = PatientId(row.try_get("patient_id").map_err(backend_error)?);
                let verified = sqlx::query(
                    "SELECT kind, value FROM contacts WHERE patient_id = $1 AND verified_by IS NOT NULL ORDER BY kind",
                )
                .bind(patient_id.0)
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?
                .iter()
                .map(|c| Ok((c.try_get("kind").map_err(backend_error)?, c.try_get("value").map_err(backend_error)?)))
                .collect::<StoreResult<Vec<(String, String)>>>()?;
                let language: Option<String> = row.try_get("preferred_language").map_err(backend_error)?;
                Ok(NoticeContacts {
                    patient_id,
                    given_name: row.try_get("given_name").map_err(backend_error)?,
                    language: language.as_deref().and_then(Language::from_tag).unwrap_or_default(),
                    verified,
                })
            }

            async fn password_context(&self, account: AccountId, history: u32) -> StoreResult<PasswordContext> {
                let row = sqlx::query(
                    "SELECT a.patient_id, a.username, a.password_hash, p.given_name, p.family_name, \
                     p.date_of_birth, p.preferred_language FROM portal_accounts a \
                     JOIN patients p ON p.id = a.patient_id WHERE a.id = $1",
                )
                .bind(account.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?
                .ok_or(StoreError::NotFound)?;
                let patient_id = PatientId(row.try_get("patient_id").map_err(backend_error)?);
                let history: Vec<String> = sqlx::query_scalar(
                    "SELECT password_hash FROM password_history WHERE account_id = $1 \
                     ORDER BY set_at DESC, id DESC LIMIT $2",
                )
                .bind(account.0)
                .bind(i64::from(history))
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
                let contacts = sqlx::query(
                    "SELECT kind, value, verified_by FROM contacts WHERE patient_id = $1 ORDER BY kind",
                )
                .bind(patient_id.0)
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
                let mut email = None;
                let mut verified_contacts = Vec::new();
                for contact in &contacts {
                    let kind: String = contact.try_get("kind").map_err(backend_error)?;
                    let value: String = contact.try_get("value").map_err(backend_error)?;
                    let verified: Option<String> = contact.try_get("verified_by").map_err(backend_error)?;
                    if kind == "email" {
                        email = Some(value.clone());
                    }
                    if verified.is_some() {
                        verified_contacts.push((kind, value));
                    }
                }
                let born: String = row.try_get("date_of_birth").map_err(backend_error)?;
                let language: Option<String> = row.try_get("preferred_language").map_err(backend_error)?;
                Ok(PasswordContext {
                    patient_id,
                    password_hash: row.try_get("password_hash").map_err(backend_error)?,
                    history,
                    personal: carekey_domain::password_rules::PersonalInfo {
                        username: Some(row.try_get("username").map_err(backend_error)?),
                        given_name: Some(row.try_get("given_name").map_err(backend_error)?),
                        family_name: Some(row.try_get("family_name").map_err(backend_error)?),
                        email,
                        date_of_birth: carekey_domain::identifiers::DateOfBirth::parse(&born).ok(),
                    },
                    language: language.as_deref().and_then(Language::from_tag).unwrap_or_default(),
                    verified_contacts,
                })
            }

            async fn change_password(&self, change: &PasswordChange, audit: AuditEvent) -> StoreResult<()> {
                let at = millis(change.at);
                let mut tx = self.begin_write().await?;
                let patient = Self::set_password_in(&mut tx, change.account, &change.password_hash, change.at, false).await?;
                let keep = change.keep_session.as_ref().map(|h| h.as_bytes().to_vec()).unwrap_or_default();
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL AND id_hash <> $3",
                )
                .bind(change.account.0)
                .bind(at)
                .bind(keep)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::end_credentials_in(&mut tx, change.account, change.at).await?;
                Self::insert_messages_in(&mut tx, &change.notices, change.at).await?;
                Self::append_in(&mut tx, &audit.account(change.account).patient(patient)).await?;
                Self::commit(tx).await
            }

            async fn disable_account(&self, username: &Username, reason: &str, notices: &[NewMessage], audit: AuditEvent) -> StoreResult<AccountId> {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(
                    "UPDATE portal_accounts SET status = 'disabled', disabled_reason = $2 \
                     WHERE username = $1 RETURNING id, patient_id",
                )
                .bind(username.as_str())
                .bind(reason)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_error)?
                .ok_or(StoreError::NotFound)?;
                let account = AccountId(row.try_get("id").map_err(backend_error)?);
                let patient = PatientId(row.try_get("patient_id").map_err(backend_error)?);
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL")
                    .bind(account.0)
                    .bind(millis(audit.at))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                Self::insert_messages_in(&mut tx, notices, audit.at).await?;
                Self::append_in(&mut tx, &audit.account(account).patient(patient)).await?;
                Self::commit(tx).await?;
                Ok(account)
            }

            async fn unlock_account(&self, username: &Username, notices: &[NewMessage], audit: AuditEvent) -> StoreResult<AccountId> {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(
                    "UPDATE portal_accounts SET failed_attempts = 0, failure_window_started_at = NULL, \
                     locked_until = NULL, lock_held = FALSE, consecutive_lockouts = 0 \
                     WHERE username = $1 RETURNING id, patient_id",
                )
                .bind(username.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_error)?
                .ok_or(StoreError::NotFound)?;
                let account = AccountId(row.try_get("id").map_err(backend_error)?);
                let patient = PatientId(row.try_get("patient_id").map_err(backend_error)?);
                Self::insert_messages_in(&mut tx, notices, audit.at).await?;
                Self::append_in(&mut tx, &audit.account(account).patient(patient)).await?;
                Self::commit(tx).await?;
                Ok(account)
            }
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn find_session(&self, id_hash: &TokenHash) -> StoreResult<Option<SessionRecord>> {
                let row = sqlx::query(
                    "SELECT s.account_id, s.staff_id, s.last_seen_at, s.idle_expires_at, s.absolute_expires_at, \
                     s.revoked_at, COALESCE(a.username, st.username) AS username, p.given_name, \
                     p.preferred_language, a.password_changed_at FROM sessions s \
                     LEFT JOIN portal_accounts a ON a.id = s.account_id \
                     LEFT JOIN patients p ON p.id = a.patient_id \
                     LEFT JOIN staff_users st ON st.id = s.staff_id \
                     WHERE s.id_hash = $1",
                )
                .bind(id_hash.as_bytes())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?;
                let Some(row) = row else { return Ok(None) };
                let account: Option<Uuid> = row.try_get("account_id").map_err(backend_error)?;
                let staff: Option<Uuid> = row.try_get("staff_id").map_err(backend_error)?;
                let owner = match (account, staff) {
                    (Some(id), _) => SessionOwner::Patient(AccountId(id)),
                    (None, Some(id)) => SessionOwner::Staff(carekey_domain::ids::StaffId(id)),
                    (None, None) => return Err(StoreError::Backend("session without owner".into())),
                };
                let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(backend_error)?;
                let language: Option<String> = row.try_get("preferred_language").map_err(backend_error)?;
                Ok(Some(SessionRecord {
                    owner,
                    expiry: SessionExpiry {
                        idle_expires_at: from_millis(row.try_get("idle_expires_at").map_err(backend_error)?),
                        absolute_expires_at: from_millis(
                            row.try_get("absolute_expires_at").map_err(backend_error)?,
                        ),
                    },
                    last_seen_at: from_millis(row.try_get("last_seen_at").map_err(backend_error)?),
                    revoked: revoked_at.is_some(),
                    username: row.try_get("username").map_err(backend_error)?,
                    given_name: row.try_get("given_name").map_err(backend_error)?,
                    preferred_language: language.as_deref().and_then(Language::from_tag),
                    password_changed_at: row
                        .try_get::<Option<i64>, _>("password_changed_at")
                        .map_err(backend_error)?
                        .map(from_millis),
                }))
            }

            async fn touch_session(
                &self,
                id_hash: &TokenHash,
                expiry: &SessionExpiry,
                now: chrono::DateTime<chrono::Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 \
                     WHERE id_hash = $1 AND revoked_at IS NULL",
                )
                .bind(id_hash.as_bytes())
                .bind(millis(now))
                .bind(millis(expiry.idle_expires_at))
                .execute(&self.writer)
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn recent_sessions(
                &self,
                account: AccountId,
                limit: u32,
            ) -> StoreResult<Vec<(chrono::DateTime<chrono::Utc>, Option<String>, Option<String>)>> {
                let rows = sqlx::query(
                    "SELECT created_at, ip, user_agent FROM sessions WHERE account_id = $1 \
                     ORDER BY created_at DESC LIMIT $2",
                )
                .bind(account.0)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            from_millis(row.try_get("created_at").map_err(backend_error)?),
                            row.try_get("ip").map_err(backend_error)?,
                            row.try_get("user_agent").map_err(backend_error)?,
                        ))
                    })
                    .collect()
            }

            async fn revoke_other_sessions(&self, account: AccountId, keep: &TokenHash, audit: AuditEvent) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL AND id_hash <> $3",
                )
                .bind(account.0)
                .bind(millis(audit.at))
                .bind(keep.as_bytes())
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                let mut event = audit.account(account);
                event.details["sessions_ended"] = done.rows_affected().into();
                Self::append_in(&mut tx, &event).await?;
                Self::commit(tx).await?;
                Ok(done.rows_affected())
            }

            async fn revoke_all_sessions(&self, account: Option<AccountId>, audit: AuditEvent) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2 WHERE revoked_at IS NULL \
                     AND ($1 IS NULL OR account_id = $1)",
                )
                .bind(account.map(|a| a.0))
                .bind(millis(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                let mut event = match account {
                    Some(account) => audit.account(account),
                    None => audit,
                };
                event.details["sessions_ended"] = done.rows_affected().into();
                Self::append_in(&mut tx, &event).await?;
                Self::commit(tx).await?;
                Ok(done.rows_affected())
            }

            async fn revoke_session(&self, id_hash: &TokenHash, audit: AuditEvent) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL \
                     RETURNING account_id",
                )
                .bind(id_hash.as_bytes())
                .bind(millis(audit.at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_error)?;
                let Some(row) = row else { return Ok(false) };
                let account: Option<Uuid> = row.try_get("account_id").map_err(backend_error)?;
                let audit = match account {
                    Some(id) => audit.account(AccountId(id)),
                    None => audit,
                };
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await?;
                Ok(true)
            }
        }

        #[async_trait]
        impl StaffStore for $store {
            async fn create_staff(&self, staff: &NewStaff, audit: AuditEvent) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO staff_users (id, username, role, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(staff.id.0)
                .bind(staff.username.as_str())
                .bind(staff.role.as_str())
                .bind(&staff.password_hash)
                .bind(millis(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or_backend(e, "username"))?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await
            }
        }

        #[async_trait]
        impl AuditStore for $store {
            async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::append_in(&mut tx, &event).await?;
                Self::commit(tx).await
            }

            async fn count_audit(&self, action: &str) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = $1")
                    .bind(action)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend_error)
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(backend_error)?;
                Ok(())
            }

            async fn lock_state(&self, account: AccountId) -> StoreResult<LockState> {
                let sql = format!("SELECT {LOCK_COLUMNS} FROM portal_accounts WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(account.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend_error)?
                    .ok_or(StoreError::NotFound)?;
                lock_state_of(&row)
            }
        }
      }
    };
}

pub(crate) use impl_store;
