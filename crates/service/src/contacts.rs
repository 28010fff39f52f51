//! A signed-in patient's own contacts (API.md `/me/contacts`): a new email or
//! phone, after re-entering the password (ASVS 7.5.1), gets a code; the old
//! contact is told at once; the new one is on file, verified, when the code
//! comes back.

use crate::notices::notices;
use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::{Email, PhoneE164};
use carekey_domain::ids::FlowId;
use carekey_domain::message::{Channel, MessageData, MessageKind};
use carekey_domain::ports::{CodeAttempt, NewRecoveryFlow};
use carekey_domain::rate_limit::RateLimit;
use carekey_domain::recovery::{
    code_hash, lifetime, normalise_numeric_code, AttemptOutcome, Destination, Purpose,
    RecoveryCandidate,
};
use carekey_domain::secret::Password;
use carekey_domain::token::{OpaqueToken, TokenHash};
use chrono::Duration;
use serde_json::json;

/// Which contact a patient changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    Email,
    Phone,
}

impl ContactKind {
    fn as_str(self) -> &'static str {
        match self {
            ContactKind::Email => "email",
            ContactKind::Phone => "phone",
        }
    }
}

impl Services {
    /// `PUT /api/v1/me/contacts/{email|phone}`: a code to the new value.
    pub async fn request_contact_change(
        &self,
        session_token: &OpaqueToken,
        kind: ContactKind,
        value: &str,
        password: &Password,
        client: &ClientInfo,
    ) -> ServiceResult<FlowId> {
        let session = self.patient_session(session_token).await?;
        let account = session.account_id;
        let policy = self.store.load_policy().await?;
        let context = self.store.password_context(account, 0).await?;
        self.require_current_password(
            account,
            &context.password_hash,
            password,
            client,
            "wrong_password_for_contact_change",
        )
        .await?;
        let (value, channel) = match kind {
            ContactKind::Email => (
                Email::parse(value)
                    .map_err(|e| ServiceError::invalid("value", e.to_string()))?
                    .as_str()
                    .to_owned(),
                Channel::Email,
            ),
            ContactKind::Phone => (
                PhoneE164::parse(value, &self.settings.default_region)
                    .map_err(|e| ServiceError::invalid("value", e.to_string()))?
                    .as_str()
                    .to_owned(),
                Channel::Sms,
            ),
        };
        let now = self.clock.now();
        let flow_id = FlowId::generate();
        let expires_at = now + lifetime(&policy.recovery, channel);
        let holder = RecoveryCandidate {
            account_id: account,
            patient_id: context.patient_id,
            username: context.personal.username.clone().unwrap_or_default(),
            active: true,
            given_name: context.personal.given_name.clone().unwrap_or_default(),
            date_of_birth: context.personal.date_of_birth,
            language: Some(context.language),
            email: None,
            phone: None,
        };
        let request = crate::recovery::RecoveryRequest {
            purpose: Purpose::Contact,
            channel,
            username: None,
            email: None,
            phone: None,
            date_of_birth: None,
            language: Some(context.language),
            fallback_language: None,
        };
        let destination = Destination {
            recipient: value.clone(),
            accounts: vec![holder],
        };
        let parcel = self.parcel(&request, flow_id, expires_at, now, destination);
        let mut old = context.notice_contacts();
        old.verified
            .retain(|(k, v)| k == kind.as_str() && *v != value);
        let flow = NewRecoveryFlow {
            id: flow_id,
            purpose: Purpose::Contact,
            channel,
            attempts: policy.recovery.code_attempts,
            created_at: now,
            expires_at,
            client_ip: client.ip.clone(),
            // A newer change of this account's contact replaces the older one.
            lookup_key: TokenHash::of(&format!("contact:{account}")),
            parcels: vec![parcel],
            contact: Some((kind.as_str().to_owned(), value)),
            notices: notices(&old, MessageKind::ContactChanged, &MessageData::default()),
            per_destination: RateLimit::new(
                "contact:to:",
                policy.recovery.per_account_per_hour,
                Duration::hours(1),
            ),
        };
        let limits = [crate::per_address_limit("contact", &policy, client)];
        let event = AuditEvent::new(
            now,
            Actor::Patient(account),
            AuditAction::ContactsChanged,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(json!({ "step": "code_sent", "kind": kind.as_str(), "flow": flow_id.0 }));
        match self.store.start_recovery(&flow, &limits, event).await? {
            Ok(_) => Ok(flow_id),
            Err(wait) => Err(ServiceError::from(wait)),
        }
    }

    /// `POST /api/v1/me/contacts/verify`: the code from the new contact.
    pub async fn verify_contact_change(
        &self,
        session_token: &OpaqueToken,
        flow_id: &str,
        code: &str,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        let session = self.patient_session(session_token).await?;
        let Ok(id) = flow_id.parse::<uuid::Uuid>() else {
            return Err(ServiceError::FlowExpired);
        };
        let flow = FlowId(id);
        let summary = self.store.recovery_flow(flow).await?;
        let mine = summary.is_some_and(|s| {
            s.purpose == Purpose::Contact
                && s.accounts.iter().any(|(a, _)| *a == session.account_id)
        });
        if !mine {
            return Err(ServiceError::FlowExpired);
        }
        let now = self.clock.now();
        let attempt = CodeAttempt {
            flow,
            code_hash: normalise_numeric_code(code).map(|code| code_hash(flow, &code)),
            at: now,
            offers: Vec::new(),
        };
        let event = AuditEvent::new(
            now,
            Actor::Patient(session.account_id),
            AuditAction::ContactsChanged,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(json!({ "step": "verified", "flow": flow.0 }));
        match self
            .store
            .attempt_recovery_code(&attempt, event)
            .await?
            .outcome
        {
            AttemptOutcome::Accepted => Ok(()),
            AttemptOutcome::Wrong { attempts_left } => Err(ServiceError::InvalidCode {
                attempts_left: Some(attempts_left),
            }),
            AttemptOutcome::Gone => Err(ServiceError::FlowExpired),
        }
    }
}
