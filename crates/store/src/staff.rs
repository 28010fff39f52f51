//! The staff console's storage, shared by both backends like [`crate::shared`]:
//! staff sign-in and TOTP, staff accounts, patient search and records, the
//! assisted actions that are not recovery's, and reading the audit chain.

macro_rules! impl_staff_store {
    ($store:ident, $db:ident, for_update = $for_update:literal) => {
      mod staff_queries {
        use super::{$store, $db};
        use $crate::backend_error;
        use $crate::shared::{from_millis, lock_state, millis};
        use async_trait::async_trait;
        use carekey_domain::audit::AuditEvent;
        use carekey_domain::identifiers::Username;
        use carekey_domain::ids::{AccountId, FlowId, PatientId, StaffId};
        use carekey_domain::lockout::FailureOutcome;
        use carekey_domain::message::{MessageRecord, NewMessage};
        use carekey_domain::model::SessionOwner;
        use carekey_domain::policy::LockoutPolicy;
        use carekey_domain::ports::{
            NewSession, NewToken, PatientQuery, SeenContacts, StaffConsoleStore, StoreError,
            StoreResult,
        };
        use carekey_domain::staff::{
            ContactView, PatientRecord, PatientSummary, PortalPanel, PortalStatus, RecoveryAttempt,
            StaffForSignIn, StaffMember, StoredAuditEvent,
        };
        use chrono::{DateTime, Utc};
        use sqlx::Row;
        use uuid::Uuid;

        use super::queries::lock_state_of;
        use $crate::shared::LOCK_COLUMNS;

        fn member_of(row: &<$db as sqlx::Database>::Row) -> StoreResult<StaffMember> {
            let role: String = row.try_get("role").map_err(backend_error)?;
            let confirmed: Option<i64> = row.try_get("totp_confirmed_at").map_err(backend_error)?;
            Ok(StaffMember {
                id: StaffId(row.try_get("id").map_err(backend_error)?),
                username: row.try_get("username").map_err(backend_error)?,
                role: role.parse().map_err(StoreError::Backend)?,
                disabled: row.try_get("disabled").map_err(backend_error)?,
                totp_enrolled: confirmed.is_some(),
            })
        }

        fn audit_of(row: &<$db as sqlx::Database>::Row) -> StoreResult<StoredAuditEvent> {
            Ok(StoredAuditEvent {
                seq: row.try_get("seq").map_err(backend_error)?,
                at: from_millis(row.try_get("at").map_err(backend_error)?),
                actor_kind: row.try_get("actor_kind").map_err(backend_error)?,
                actor_id: row.try_get("actor_id").map_err(backend_error)?,
                action: row.try_get("action").map_err(backend_error)?,
                account_id: row.try_get("account_id").map_err(backend_error)?,
                patient_id: row.try_get("patient_id").map_err(backend_error)?,
                ip: row.try_get("ip").map_err(backend_error)?,
                outcome: row.try_get("outcome").map_err(backend_error)?,
                details: row.try_get("details").map_err(backend_error)?,
                prev_hash: row.try_get("prev_hash").map_err(backend_error)?,
                hash: row.try_get("hash").map_err(backend_error)?,
            })
        }

        const AUDIT_COLUMNS: &str = "seq, at, actor_kind, actor_id, action, account_id, patient_id, ip, \
            outcome, details, prev_hash, hash";

        #[async_trait]
        impl StaffConsoleStore for $store {
            async fn find_staff_for_sign_in(&self, username: &Username) -> StoreResult<Option<StaffForSignIn>> {
                let sql = format!(
                    "SELECT id, username, role, password_hash, disabled, totp_secret, totp_confirmed_at, \
                     totp_last_step, {LOCK_COLUMNS} FROM staff_users WHERE username = $1"
                );
                let row = sqlx::query(&sql)
                    .bind(username.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend_error)?;
                let Some(row) = row else { return Ok(None) };
                let role: String = row.try_get("role").map_err(backend_error)?;
                let confirmed: Option<i64> = row.try_get("totp_confirmed_at").map_err(backend_error)?;
                let last_step: Option<i64> = row.try_get("totp_last_step").map_err(backend_error)?;
                Ok(Some(StaffForSignIn {
                    id: StaffId(row.try_get("id").map_err(backend_error)?),
                    username: row.try_get("username").map_err(backend_error)?,
                    role: role.parse().map_err(StoreError::Backend)?,
                    password_hash: row.try_get("password_hash").map_err(backend_error)?,
                    disabled: row.try_get("disabled").map_err(backend_error)?,
                    lock: lock_state_of(&row)?,
                    totp_secret: row.try_get("totp_secret").map_err(backend_error)?,
                    totp_confirmed: confirmed.is_some(),
                    totp_last_step: last_step.and_then(|s| u64::try_from(s).ok()),
                }))
            }

            async fn record_staff_sign_in_failure(
                &self,
                staff: StaffId,
                policy: &LockoutPolicy,
                audit: AuditEvent,
            ) -> StoreResult<FailureOutcome> {
                let mut tx = self.begin_write().await?;
                let sql = format!("SELECT {LOCK_COLUMNS} FROM staff_users WHERE id = $1{}", $for_update);
                let row = sqlx::query(&sql)
                    .bind(staff.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend_error)?
                    .ok_or(StoreError::NotFound)?;
                let state = lock_state_of(&row)?;
                let (next, outcome) = state.after_failure(policy, audit.at);
                sqlx::query(
                    "UPDATE staff_users SET failed_attempts = $2, failure_window_started_at = $3, \
                     locked_until = $4, lock_held = $5, consecutive_lockouts = $6 WHERE id = $1",
                )
                .bind(staff.0)
                .bind(i64::from(next.failed_attempts))
                .bind(next.window_started_at.map(millis))
                .bind(next.locked_until.map(millis))
                .bind(next.held)
                .bind(i64::from(next.consecutive_lockouts))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                let mut event = audit;
                if let FailureOutcome::Locked { .. } = outcome {
                    event.details["locked"] = true.into();
                }
                Self::append_in(&mut tx, &event).await?;
                Self::commit(tx).await?;
                Ok(outcome)
            }

            async fn complete_staff_sign_in(
                &self,
                session: &NewSession,
                totp_step: Option<u64>,
                audit: AuditEvent,
            ) -> StoreResult<bool> {
                let SessionOwner::Staff(staff) = session.owner else {
                    return Err(StoreError::Backend("complete_staff_sign_in takes a staff session".into()));
                };
                let mut tx = self.begin_write().await?;
                let sql = format!(
                    "SELECT disabled, totp_last_step, {LOCK_COLUMNS} FROM staff_users WHERE id = $1{}",
                    $for_update
                );
                let row = sqlx::query(&sql)
                    .bind(staff.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend_error)?
                    .ok_or(StoreError::NotFound)?;
                let disabled: bool = row.try_get("disabled").map_err(backend_error)?;
                let last_step: Option<i64> = row.try_get("totp_last_step").map_err(backend_error)?;
                let replayed = match (totp_step, last_step) {
                    (Some(step), Some(last)) => i64::try_from(step).unwrap_or(i64::MAX) <= last,
                    _ => false,
                };
                if disabled || replayed || lock_state_of(&row)?.is_locked(session.created_at) {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE staff_users SET failed_attempts = 0, failure_window_started_at = NULL, \
                     consecutive_lockouts = 0, last_sign_in_at = $2, \
                     totp_last_step = COALESCE($3, totp_last_step) WHERE id = $1",
                )
                .bind(staff.0)
                .bind(millis(session.created_at))
                .bind(totp_step.and_then(|s| i64::try_from(s).ok()))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                sqlx::query(
                    "INSERT INTO sessions (id_hash, owner_kind, account_id, staff_id, created_at, last_seen_at, \
                     idle_expires_at, absolute_expires_at, ip, user_agent) \
                     VALUES ($1, 'staff', NULL, $2, $3, $3, $4, $5, $6, $7)",
                )
                .bind(session.id_hash.as_bytes())
                .bind(staff.0)
                .bind(millis(session.created_at))
                .bind(millis(session.expiry.idle_expires_at))
                .bind(millis(session.expiry.absolute_expires_at))
                .bind(&session.ip)
                .bind(&session.user_agent)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await?;
                Ok(true)
            }

            async fn staff_member(&self, staff: StaffId) -> StoreResult<Option<StaffMember>> {
                let row = sqlx::query(
                    "SELECT id, username, role, disabled, totp_confirmed_at FROM staff_users WHERE id = $1",
                )
                .bind(staff.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?;
                row.as_ref().map(member_of).transpose()
            }

            async fn set_totp_secret(&self, staff: StaffId, secret: &str, audit: AuditEvent) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE staff_users SET totp_secret = $2, totp_confirmed_at = NULL, totp_last_step = NULL \
                     WHERE id = $1 AND totp_confirmed_at IS NULL",
                )
                .bind(staff.0)
                .bind(secret)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await
            }

            async fn confirm_totp(&self, staff: StaffId, step: u64, audit: AuditEvent) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE staff_users SET totp_confirmed_at = $2, totp_last_step = $3 WHERE id = $1",
                )
                .bind(staff.0)
                .bind(millis(audit.at))
                .bind(i64::try_from(step).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await
            }

            async fn list_staff(&self) -> StoreResult<Vec<StaffMember>> {
                let rows = sqlx::query(
                    "SELECT id, username, role, disabled, totp_confirmed_at FROM staff_users ORDER BY username",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
                rows.iter().map(member_of).collect()
            }

            async fn patients_without_account(&self) -> StoreResult<Vec<PatientId>> {
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT p.id FROM patients p WHERE NOT EXISTS \
                     (SELECT 1 FROM portal_accounts a WHERE a.patient_id = p.id) ORDER BY p.created_at",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
                Ok(ids.into_iter().map(PatientId).collect())
            }

            async fn disable_staff(&self, staff: StaffId, audit: AuditEvent) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE staff_users SET disabled = TRUE WHERE id = $1")
                    .bind(staff.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE staff_id = $1 AND revoked_at IS NULL")
                    .bind(staff.0)
                    .bind(millis(audit.at))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await?;
                Ok(true)
            }

            async fn search_patients(
                &self,
                query: &PatientQuery,
                now: DateTime<Utc>,
                limit: u32,
            ) -> StoreResult<Vec<PatientSummary>> {
                // A name prefix is a range over the lower-cased name indexes.
                let (condition, value, upper) = match query {
                    PatientQuery::Mrn(mrn) => ("p.mrn = $1", mrn.clone(), String::new()),
                    PatientQuery::DateOfBirth(born) => ("p.date_of_birth = $1", born.to_string(), String::new()),
                    PatientQuery::Name(name) => {
                        let prefix = name.to_lowercase();
                        let upper = format!("{prefix}\u{ffff}");
                        (
                            "((lower(p.family_name) >= $1 AND lower(p.family_name) < $4) \
                              OR (lower(p.given_name) >= $1 AND lower(p.given_name) < $4))",
                            prefix,
                            upper,
                        )
                    }
                };
                let sql = format!(
                    "SELECT p.id, p.mrn, p.given_name, p.family_name, p.date_of_birth, a.status, \
                     a.failed_attempts, a.failure_window_started_at, a.locked_until, a.lock_held, \
                     a.consecutive_lockouts, \
                     (SELECT COUNT(*) FROM account_tokens t WHERE t.patient_id = p.id AND t.account_id IS NULL \
                       AND t.purpose = 'activation' \
                       AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > $2) AS invitations \
                     FROM patients p LEFT JOIN portal_accounts a ON a.patient_id = p.id \
                     WHERE {condition} ORDER BY p.family_name, p.given_name, p.date_of_birth LIMIT $3"
                );
                let rows = sqlx::query(&sql)
                    .bind(value)
                    .bind(millis(now))
                    .bind(i64::from(limit))
                    .bind(upper)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend_error)?;
                rows.iter()
                    .map(|row| {
                        Ok(PatientSummary {
                            id: PatientId(row.try_get("id").map_err(backend_error)?),
                            mrn: row.try_get("mrn").map_err(backend_error)?,
                            given_name: row.try_get("given_name").map_err(backend_error)?,
                            family_name: row.try_get("family_name").map_err(backend_error)?,
                            date_of_birth: row.try_get("date_of_birth").map_err(backend_error)?,
                            portal_status: portal_status_of(row, now)?,
                        })
                    })
                    .collect()
            }

            async fn patient_record(&self, patient: PatientId, now: DateTime<Utc>) -> StoreResult<Option<PatientRecord>> {
                let row = sqlx::query(
                    "SELECT p.id, p.mrn, p.given_name, p.family_name, p.date_of_birth, p.postal_code, \
                     p.preferred_language, a.id AS account_id, a.username, a.status, a.last_sign_in_at, \
                     a.failed_attempts, a.failure_window_started_at, a.locked_until, a.lock_held, \
                     a.consecutive_lockouts, \
                     (SELECT COUNT(*) FROM account_tokens t WHERE t.patient_id = p.id AND t.account_id IS NULL \
                       AND t.purpose = 'activation' \
                       AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > $2) AS invitations \
                     FROM patients p LEFT JOIN portal_accounts a ON a.patient_id = p.id WHERE p.id = $1",
                )
                .bind(patient.0)
                .bind(millis(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_error)?;
                let Some(row) = row else { return Ok(None) };
                let contacts = sqlx::query("SELECT kind, value, verified_by FROM contacts WHERE patient_id = $1")
                    .bind(patient.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend_error)?;
                let (mut email, mut phone) = (None, None);
                for contact in &contacts {
                    let kind: String = contact.try_get("kind").map_err(backend_error)?;
                    let verified_by: Option<String> = contact.try_get("verified_by").map_err(backend_error)?;
                    let view = ContactView {
                        value: contact.try_get("value").map_err(backend_error)?,
                        verified: verified_by.is_some(),
                        verified_by,
                    };
                    if kind == "email" { email = Some(view) } else { phone = Some(view) }
                }
                let account: Option<Uuid> = row.try_get("account_id").map_err(backend_error)?;
                let mut recent_recovery = Vec::new();
                if let Some(account) = account {
                    let flows = sqlx::query(
                        "SELECT f.id, f.purpose, f.channel, f.created_at, f.expires_at, f.finished_at, \
                         m.recipient, m.revoked_at FROM recovery_flow_accounts m \
                         JOIN recovery_flows f ON f.id = m.flow_id WHERE m.account_id = $1 \
                         ORDER BY f.created_at DESC LIMIT 10",
                    )
                    .bind(account)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend_error)?;
                    for flow in &flows {
                        let finished: Option<i64> = flow.try_get("finished_at").map_err(backend_error)?;
                        let revoked: Option<i64> = flow.try_get("revoked_at").map_err(backend_error)?;
                        let expires: i64 = flow.try_get("expires_at").map_err(backend_error)?;
                        let state = if finished.is_some() {
                            "finished"
                        } else if revoked.is_some() {
                            "revoked"
                        } else if expires <= millis(now) {
                            "expired"
                        } else {
                            "open"
                        };
                        recent_recovery.push(RecoveryAttempt {
                            flow_id: FlowId(flow.try_get("id").map_err(backend_error)?),
                            purpose: flow.try_get("purpose").map_err(backend_error)?,
                            channel: flow.try_get("channel").map_err(backend_error)?,
                            to: flow.try_get("recipient").map_err(backend_error)?,
                            created_at: from_millis(flow.try_get("created_at").map_err(backend_error)?),
                            state: state.into(),
                        });
                    }
                }
                let message_ids: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM outbox_messages WHERE patient_id = $1 ORDER BY created_at DESC LIMIT 10",
                )
                .bind(patient.0)
                .fetch_all(&self.pool)
                .await
                .map_err(backend_error)?;
                let mut recent_messages: Vec<MessageRecord> = Vec::new();
                for id in message_ids {
                    if let Some(message) = carekey_domain::ports::OutboxStore::message(self, carekey_domain::ids::MessageId(id)).await? {
                        recent_messages.push(message);
                    }
                }
                let failed: Option<i64> = row.try_get("failed_attempts").map_err(backend_error)?;
                let locked_until: Option<i64> = row.try_get("locked_until").map_err(backend_error)?;
                let last_sign_in: Option<i64> = row.try_get("last_sign_in_at").map_err(backend_error)?;
                Ok(Some(PatientRecord {
                    id: patient,
                    mrn: row.try_get("mrn").map_err(backend_error)?,
                    given_name: row.try_get("given_name").map_err(backend_error)?,
                    family_name: row.try_get("family_name").map_err(backend_error)?,
                    date_of_birth: row.try_get("date_of_birth").map_err(backend_error)?,
                    postal_code: row.try_get("postal_code").map_err(backend_error)?,
                    preferred_language: row.try_get("preferred_language").map_err(backend_error)?,
                    portal: PortalPanel {
                        status: portal_status_of(&row, now)?,
                        account_id: account.map(AccountId),
                        username: row.try_get("username").map_err(backend_error)?,
                        last_sign_in_at: last_sign_in.map(from_millis),
                        failed_attempts: failed.and_then(|f| u32::try_from(f).ok()).unwrap_or(0),
                        locked_until: locked_until.map(from_millis),
                        email,
                        phone,
                        recent_recovery,
                        recent_messages,
                    },
                }))
            }

            async fn issue_reset_link(&self, token: &NewToken, message: &NewMessage, audit: AuditEvent) -> StoreResult<()> {
                let account = token
                    .account
                    .ok_or_else(|| StoreError::Backend("a reset link needs an account".into()))?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE account_tokens SET revoked_at = $2 WHERE account_id = $1 \
                     AND purpose = 'reset' AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(account.0)
                .bind(millis(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                sqlx::query(
                    "INSERT INTO account_tokens (hash, purpose, account_id, patient_id, flow_id, attempts_left, \
                     created_at, expires_at) VALUES ($1, 'reset', $2, $3, NULL, NULL, $4, $5)",
                )
                .bind(token.hash.as_bytes())
                .bind(account.0)
                .bind(token.patient.map(|p| p.0))
                .bind(millis(audit.at))
                .bind(millis(token.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                Self::insert_messages_in(&mut tx, std::slice::from_ref(message), audit.at).await?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await
            }

            async fn issue_activation(
                &self,
                code: &NewToken,
                message: Option<&NewMessage>,
                audit: AuditEvent,
            ) -> StoreResult<()> {
                let patient = code
                    .patient
                    .ok_or_else(|| StoreError::Backend("an activation code needs a patient".into()))?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE account_tokens SET revoked_at = $2 WHERE patient_id = $1 AND account_id IS NULL \
                     AND purpose = 'activation' AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(patient.0)
                .bind(millis(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                sqlx::query(
                    "INSERT INTO account_tokens (hash, purpose, account_id, patient_id, flow_id, attempts_left, \
                     created_at, expires_at) VALUES ($1, 'activation', NULL, $2, NULL, $3, $4, $5)",
                )
                .bind(code.hash.as_bytes())
                .bind(patient.0)
                .bind(code.attempts.map(i64::from))
                .bind(millis(audit.at))
                .bind(millis(code.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
                if let Some(message) = message {
                    Self::insert_messages_in(&mut tx, std::slice::from_ref(message), audit.at).await?;
                }
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await
            }

            async fn update_contacts(
                &self,
                patient: PatientId,
                seen: &SeenContacts,
                email: Option<Option<String>>,
                phone: Option<Option<String>>,
                notices: &[NewMessage],
                audit: AuditEvent,
            ) -> StoreResult<bool> {
                let at = millis(audit.at);
                let mut tx = self.begin_write().await?;
                // The patient row first: concurrent changes to one patient
                // queue here (a row lock on PostgreSQL; SQLite has one writer).
                sqlx::query("UPDATE patients SET updated_at = $2 WHERE id = $1")
                    .bind(patient.0)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                for (kind, change, expected) in [
                    ("email", email.is_some(), &seen.email),
                    ("phone", phone.is_some(), &seen.phone),
                ] {
                    if !change {
                        continue;
                    }
                    let current: Option<String> = sqlx::query_scalar(
                        "SELECT value FROM contacts WHERE patient_id = $1 AND kind = $2",
                    )
                    .bind(patient.0)
                    .bind(kind)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                    if current.as_ref() != expected.as_ref() {
                        tx.rollback().await.map_err(backend_error)?;
                        return Ok(false);
                    }
                }
                for (kind, change) in [("email", email), ("phone", phone)] {
                    let Some(value) = change else { continue };
                    sqlx::query("DELETE FROM contacts WHERE patient_id = $1 AND kind = $2")
                        .bind(patient.0)
                        .bind(kind)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend_error)?;
                    if let Some(value) = value {
                        sqlx::query(
                            "INSERT INTO contacts (patient_id, kind, value, verified_by, verified_at, updated_at) \
                             VALUES ($1, $2, $3, 'staff', $4, $4)",
                        )
                        .bind(patient.0)
                        .bind(kind)
                        .bind(value)
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend_error)?;
                    }
                }
                Self::insert_messages_in(&mut tx, notices, audit.at).await?;
                Self::append_in(&mut tx, &audit).await?;
                Self::commit(tx).await?;
                Ok(true)
            }

            async fn list_audit(
                &self,
                patient: Option<PatientId>,
                since: Option<DateTime<Utc>>,
                limit: u32,
            ) -> StoreResult<Vec<StoredAuditEvent>> {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE ($1 IS NULL OR patient_id = $1) \
                     AND at >= $2 ORDER BY seq DESC LIMIT $3"
                );
                let rows = sqlx::query(&sql)
                    .bind(patient.map(|p| p.0))
                    .bind(since.map(millis).unwrap_or(i64::MIN))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend_error)?;
                rows.iter().map(audit_of).collect()
            }

            async fn audit_segment(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<StoredAuditEvent>> {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
                );
                let rows = sqlx::query(&sql)
                    .bind(after_seq)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend_error)?;
                rows.iter().map(audit_of).collect()
            }

            async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>)> {
                let row = sqlx::query("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(backend_error)?;
                Ok((
                    row.try_get("seq").map_err(backend_error)?,
                    row.try_get("hash").map_err(backend_error)?,
                ))
            }
        }

        /// A record's portal status from its joined account columns.
        fn portal_status_of(row: &<$db as sqlx::Database>::Row, now: DateTime<Utc>) -> StoreResult<PortalStatus> {
            let status: Option<String> = row.try_get("status").map_err(backend_error)?;
            let invitations: i64 = row.try_get("invitations").map_err(backend_error)?;
            let lock = match status {
                Some(_) => Some(lock_state(
                    row.try_get::<Option<i64>, _>("failed_attempts").map_err(backend_error)?.unwrap_or(0),
                    row.try_get("failure_window_started_at").map_err(backend_error)?,
                    row.try_get("locked_until").map_err(backend_error)?,
                    row.try_get::<Option<bool>, _>("lock_held").map_err(backend_error)?.unwrap_or(false),
                    row.try_get::<Option<i64>, _>("consecutive_lockouts").map_err(backend_error)?.unwrap_or(0),
                )),
                None => None,
            };
            let active = status.as_deref() == Some("active");
            Ok(PortalStatus::of(lock.as_ref().map(|l| (active, l)), invitations > 0, now))
        }
      }
    };
}

pub(crate) use impl_staff_store;
