//! Patient sign-in: one answer for every failure, the same work for unknown
//! logins, lockout counted atomically, a fresh session id at every success.

use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::Login;
use carekey_domain::lockout::FailureOutcome;
use carekey_domain::model::{AccountForSignIn, AccountStatus, SessionOwner};
use carekey_domain::ports::NewSession;
use carekey_domain::secret::Password;
use carekey_domain::session::SessionExpiry;
use carekey_domain::token::OpaqueToken;
use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::instrument;

/// A new session, handed to the patient once.
#[derive(Debug)]
pub struct SignedIn {
    pub username: String,
    pub session_token: OpaqueToken,
    pub expires_at: DateTime<Utc>,
}

/// Why an attempt failed, for the audit trail only: the caller always sees
/// [`ServiceError::InvalidCredentials`].
#[derive(Debug, Clone, Copy)]
enum FailureReason {
    UnknownLogin,
    WrongPassword,
    Locked,
    Disabled,
}

impl FailureReason {
    fn as_str(self) -> &'static str {
        match self {
            FailureReason::UnknownLogin => "unknown_login",
            FailureReason::WrongPassword => "wrong_password",
            FailureReason::Locked => "locked",
            FailureReason::Disabled => "disabled",
        }
    }
}

impl Services {
    /// Signs a patient in by username or email and password.
    #[instrument(skip_all)]
    pub async fn sign_in(
        &self,
        login: &str,
        password: &Password,
        client: &ClientInfo,
    ) -> ServiceResult<SignedIn> {
        let policy = self.store.load_policy().await?;
        let account = match Login::parse(login) {
            Ok(login) => self.sole_account_for(&login).await?,
            Err(_) => None,
        };
        let now = self.clock.now();
        let failure = |reason: FailureReason| {
            AuditEvent::new(
                now,
                Actor::Anonymous,
                AuditAction::SignInFailed,
                Outcome::Failure,
            )
            .ip(client.ip.clone())
            .details(json!({ "reason": reason.as_str() }))
        };
        let Some(account) = account else {
            self.hasher.verify_dummy(password).await.map_err(internal)?;
            self.store
                .append_audit(failure(FailureReason::UnknownLogin))
                .await?;
            return Err(ServiceError::InvalidCredentials);
        };

        let password_ok = self
            .hasher
            .verify(password, &account.password_hash)
            .await
            .map_err(internal)?;
        if !password_ok {
            let lock_notices = self.lock_notices(account.id).await?;
            let outcome = self
                .store
                .record_sign_in_failure(
                    account.id,
                    &policy.lockout,
                    failure(FailureReason::WrongPassword),
                    &lock_notices,
                )
                .await?;
            if let FailureOutcome::Locked { until } = outcome {
                tracing::info!(account = %account.id, ?until, "account locked after repeated failures");
            }
            return Err(ServiceError::InvalidCredentials);
        }
        let refusal = if account.status == AccountStatus::Disabled {
            Some(FailureReason::Disabled)
        } else if account.lock.is_locked(now) {
            Some(FailureReason::Locked)
        } else {
            None
        };
        if let Some(reason) = refusal {
            let event = failure(reason)
                .account(account.id)
                .patient(account.patient_id);
            self.store.append_audit(event).await?;
            return Err(ServiceError::InvalidCredentials);
        }

        let session_token = OpaqueToken::generate();
        let expiry = SessionExpiry::starting(&policy.session, now);
        let session = NewSession {
            id_hash: session_token.hash(),
            owner: SessionOwner::Patient(account.id),
            created_at: now,
            expiry,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        };
        let success = AuditEvent::new(
            now,
            Actor::Patient(account.id),
            AuditAction::SignInSucceeded,
            Outcome::Success,
        )
        .ip(client.ip.clone());
        if !self.store.complete_sign_in(&session, success).await? {
            self.store
                .append_audit(failure(FailureReason::Locked).account(account.id))
                .await?;
            return Err(ServiceError::InvalidCredentials);
        }
        Ok(SignedIn {
            username: account.username,
            session_token,
            expires_at: expiry.expires_at(),
        })
    }

    /// The one account a login names. An email shared by a family names several
    /// accounts and so signs none in: those patients sign in by username.
    async fn sole_account_for(&self, login: &Login) -> ServiceResult<Option<AccountForSignIn>> {
        let mut accounts = self.store.find_accounts_for_sign_in(login).await?;
        Ok(if accounts.len() == 1 {
            accounts.pop()
        } else {
            None
        })
    }
}

pub(crate) fn internal(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(error.to_string())
}
