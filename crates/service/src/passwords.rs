//! Setting passwords: the one path every new password takes (policy engine,
//! history, near-copy), live feedback for the password field, and a signed-in
//! patient's change of password.

use crate::signin::internal;
use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::ids::{AccountId, MessageId};
use carekey_domain::message::{Channel, MessageData, MessageKind, NewMessage};
use carekey_domain::password_rules::{assess, Assessment, PersonalInfo, Rule};
use carekey_domain::policy::PasswordPolicy;
use carekey_domain::ports::PasswordChange;
use carekey_domain::secret::Password;
use carekey_domain::token::OpaqueToken;
use tracing::instrument;

impl Services {
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
        previous: Option<&Password>,
        history: &[String],
    ) -> ServiceResult<()> {
        let policy = self.store.load_policy().await?.password;
        let mut violations = assess(password, &policy, personal, previous).violations;
        let too_long = violations.contains(&Rule::MaxLength);
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
        if !self
            .hasher
            .verify(current, &context.password_hash)
            .await
            .map_err(internal)?
        {
            let failed = AuditEvent::new(
                self.clock.now(),
                Actor::Patient(account),
                AuditAction::SignInFailed,
                Outcome::Failure,
            )
            .ip(client.ip.clone())
            .details(serde_json::json!({ "reason": "wrong_current_password" }));
            self.store
                .record_sign_in_failure(account, &policy.lockout, failed)
                .await?;
            return Err(ServiceError::InvalidCredentials);
        }
        if new.expose() != confirm.expose() {
            return Err(ServiceError::PasswordMismatch);
        }
        self.require_acceptable(new, &context.personal, Some(current), &context.history)
            .await?;
        let password_hash = self.hasher.hash(new).await.map_err(internal)?;
        let now = self.clock.now();
        let notices = context
            .verified_contacts
            .iter()
            .map(|(kind, value)| NewMessage {
                id: MessageId::generate(),
                kind: MessageKind::PasswordChanged,
                channel: if kind == "email" {
                    Channel::Email
                } else {
                    Channel::Sms
                },
                recipient: value.clone(),
                language: context.language,
                patient_id: Some(context.patient_id),
                data: MessageData {
                    given_name: context.personal.given_name.clone(),
                    ..MessageData::default()
                },
            })
            .collect();
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
