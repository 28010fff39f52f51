//! Setting passwords: the one path every new password takes (policy engine,
//! history, near-copy), live feedback for the password field, and a signed-in
//! patient's change of password.

use crate::notices::notices;
use crate::signin::internal;
use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::ids::AccountId;
use carekey_domain::message::{MessageData, MessageKind};
use carekey_domain::password_rules::{assess, likely_predecessors, Assessment, PersonalInfo, Rule};
use carekey_domain::policy::PasswordPolicy;
use carekey_domain::ports::PasswordChange;
use carekey_domain::secret::Password;
use carekey_domain::token::OpaqueToken;
use tracing::instrument;

/// How many likely predecessors of a new password a reset tries against the
/// current hash (each try costs one Argon2id verification).
const NEAR_COPY_GUESSES: usize = 4;

/// What is known of the password being replaced.
#[derive(Clone, Copy)]
pub(crate) enum Replacing<'a> {
    /// A first password.
    Nothing,
    /// Typed by the patient (a signed-in change).
    Known(&'a Password),
    /// Only its hash (a reset): near copies are found by trying the likely
    /// predecessors of the new password against it.
    HashOnly(&'a str),
}

impl Services {
    /// Re-authentication of a signed-in patient: a wrong password counts
    /// toward lockout like a failed sign-in (`reason` goes on its audit event).
    pub(crate) async fn require_current_password(
        &self,
        account: AccountId,
        password_hash: &str,
        typed: &Password,
        client: &ClientInfo,
        reason: &str,
    ) -> ServiceResult<()> {
        if self
            .hasher
            .verify(typed, password_hash)
            .await
            .map_err(internal)?
        {
            return Ok(());
        }
        let policy = self.store.load_policy().await?;
        let failed = AuditEvent::new(
            self.clock.now(),
            Actor::Patient(account),
            AuditAction::SignInFailed,
            Outcome::Failure,
        )
        .ip(client.ip.clone())
        .details(serde_json::json!({ "reason": reason }));
        let lock_notices = self.lock_notices(account).await?;
        self.store
            .record_sign_in_failure(account, &policy.lockout, failed, &lock_notices)
            .await?;
        Err(ServiceError::InvalidCredentials)
    }

    /// Live feedback for a password being typed: every rule that does not need
    /// stored hashes, with the account's personal details when `account` is
    /// known; and the policy it was checked against, for explaining the rules.
    pub async fn check_password(
        &self,
        password: &Password,
        account: Option<AccountId>,
    ) -> ServiceResult<(Assessment, PasswordPolicy)> {
        let policy = self.store.load_policy().await?.password;
        let personal = match account {
            Some(account) => self.store.password_context(account, 0).await?.personal,
            None => PersonalInfo::default(),
        };
        Ok((assess(password, &policy, &personal, None), policy))
    }

    /// The policy check every new password passes, wherever it is set.
    pub(crate) async fn require_acceptable(
        &self,
        password: &Password,
        personal: &PersonalInfo,
        replacing: Replacing<'_>,
        history: &[String],
    ) -> ServiceResult<()> {
        let policy = self.store.load_policy().await?.password;
        let previous = match replacing {
            Replacing::Known(previous) => Some(previous),
            Replacing::HashOnly(_) | Replacing::Nothing => None,
        };
        let mut violations = assess(password, &policy, personal, previous).violations;
        let too_long = violations.contains(&Rule::MaxLength);
        if let Replacing::HashOnly(current) = replacing {
            if policy.near_copy && !too_long {
                for guess in likely_predecessors(password.expose(), NEAR_COPY_GUESSES) {
                    if self
                        .hasher
                        .verify(&Password::new(&guess), current)
                        .await
                        .map_err(internal)?
                    {
                        violations.push(Rule::NearCopy);
                        break;
                    }
                }
            }
        }
        if !too_long {
            for old in history.iter().take(policy.history as usize) {
                if self.hasher.verify(password, old).await.map_err(internal)? {
                    violations.push(Rule::History);
                    break;
                }
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::PasswordPolicy(violations))
        }
    }

    /// A signed-in patient changes their password: the current one is checked
    /// (a wrong one counts toward lockout), the new one must pass the policy,
    /// and in one transaction the password changes, every other session ends,
    /// and each verified contact is told.
    #[instrument(skip_all)]
    pub async fn change_password(
        &self,
        session_token: &OpaqueToken,
        current: &Password,
        new: &Password,
        confirm: &Password,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        let session = self.patient_session(session_token).await?;
        let account = session.account_id;
        let policy = self.store.load_policy().await?;
        let context = self
            .store
            .password_context(account, policy.password.history)
            .await?;
        self.require_current_password(
            account,
            &context.password_hash,
            current,
            client,
            "wrong_current_password",
        )
        .await?;
        if new.expose() != confirm.expose() {
            return Err(ServiceError::PasswordMismatch);
        }
        self.require_acceptable(
            new,
            &context.personal,
            Replacing::Known(current),
            &context.history,
        )
        .await?;
        let password_hash = self.hasher.hash(new).await.map_err(internal)?;
        let now = self.clock.now();
        let notices = notices(
            &context.notice_contacts(),
            MessageKind::PasswordChanged,
            &MessageData::default(),
        );
        let change = PasswordChange {
            account,
            password_hash,
            at: now,
            keep_session: Some(session_token.hash()),
            notices,
        };
        let event = AuditEvent::new(
            now,
            Actor::Patient(account),
            AuditAction::PasswordChanged,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(serde_json::json!({ "how": "signed_in_change" }));
        self.store.change_password(&change, event).await?;
        Ok(())
    }
}
