//! Sessions after sign-in: who a session token belongs to, keeping it alive
//! while in use, and ending it.

use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::ids::AccountId;
use carekey_domain::model::{Language, SessionOwner};
use carekey_domain::password_rules::password_expired;
use carekey_domain::token::OpaqueToken;
use chrono::{DateTime, Duration, Utc};
use tracing::instrument;

/// A patient's live session, as pages and the API show it.
#[derive(Debug, Clone)]
pub struct PatientSession {
    pub account_id: AccountId,
    pub username: String,
    pub given_name: String,
    pub preferred_language: Option<Language>,
    pub expires_at: DateTime<Utc>,
    /// The organisation's maximum password age has passed: the patient must
    /// choose a new password before anything else.
    pub password_expired: bool,
}

/// A session found live, as [`Services::live_session`] returns it.
pub(crate) struct LiveSession {
    pub record: carekey_domain::model::SessionRecord,
    pub expiry: carekey_domain::session::SessionExpiry,
    pub policy: carekey_domain::policy::Policy,
    pub now: DateTime<Utc>,
}

/// Activity within this long of the last recorded activity is not written again,
/// so reading pages does not turn every request into a database write.
const TOUCH_INTERVAL_SECONDS: i64 = 30;

impl Services {
    /// The patient a session token belongs to, restarting its idle timer.
    #[instrument(skip_all)]
    pub async fn patient_session(&self, token: &OpaqueToken) -> ServiceResult<PatientSession> {
        let live = self.live_session(token).await?;
        let (record, expiry, policy, now) = (live.record, live.expiry, live.policy, live.now);
        let SessionOwner::Patient(account_id) = record.owner else {
            return Err(ServiceError::Unauthenticated);
        };
        Ok(PatientSession {
            account_id,
            username: record.username,
            given_name: record.given_name.unwrap_or_default(),
            preferred_language: record.preferred_language,
            expires_at: expiry.expires_at(),
            password_expired: record
                .password_changed_at
                .is_some_and(|changed| password_expired(&policy.password, changed, now)),
        })
    }

    /// Any live session (patient or staff) a token names, its idle timer
    /// restarted (written at most every [`TOUCH_INTERVAL_SECONDS`]), with the
    /// policy it was checked against.
    pub(crate) async fn live_session(&self, token: &OpaqueToken) -> ServiceResult<LiveSession> {
        let id_hash = token.hash();
        let record = self
            .store
            .find_session(&id_hash)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let now = self.clock.now();
        if record.revoked || !record.expiry.is_live(now) {
            return Err(ServiceError::Unauthenticated);
        }
        let policy = self.store.load_policy().await?;
        let mut expiry = record.expiry;
        if now - record.last_seen_at >= Duration::seconds(TOUCH_INTERVAL_SECONDS) {
            expiry = expiry.touched(&policy.session, now);
            self.store.touch_session(&id_hash, &expiry, now).await?;
        }
        Ok(LiveSession {
            record,
            expiry,
            policy,
            now,
        })
    }

    /// The patient's newest sign-ins: when, from which address, on what.
    pub async fn recent_sign_ins(
        &self,
        token: &OpaqueToken,
    ) -> ServiceResult<Vec<(DateTime<Utc>, Option<String>, Option<String>)>> {
        let session = self.patient_session(token).await?;
        Ok(self.store.recent_sessions(session.account_id, 5).await?)
    }

    /// Signs the patient out everywhere but here; how many sessions ended.
    pub async fn sign_out_elsewhere(
        &self,
        token: &OpaqueToken,
        client: &ClientInfo,
    ) -> ServiceResult<u64> {
        let session = self.patient_session(token).await?;
        let event = AuditEvent::new(
            self.clock.now(),
            Actor::Patient(session.account_id),
            AuditAction::SessionEnded,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(serde_json::json!({ "reason": "signed_out_elsewhere" }));
        Ok(self
            .store
            .revoke_other_sessions(session.account_id, &token.hash(), event)
            .await?)
    }

    /// Ends the session the token names. `Unauthenticated` when it was not live.
    #[instrument(skip_all)]
    pub async fn sign_out(&self, token: &OpaqueToken, client: &ClientInfo) -> ServiceResult<()> {
        let session = self.patient_session(token).await?;
        let event = AuditEvent::new(
            self.clock.now(),
            Actor::Patient(session.account_id),
            AuditAction::SessionEnded,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(serde_json::json!({ "reason": "signed_out" }));
        if self.store.revoke_session(&token.hash(), event).await? {
            Ok(())
        } else {
            Err(ServiceError::Unauthenticated)
        }
    }
}
