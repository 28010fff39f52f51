//! First access (API.md, "Patient: enrollment"): a clinic-issued activation
//! code with the date of birth (and postal code when the policy asks) opens
//! a short-lived enrollment; the patient then chooses a username and a
//! password, and signs in like everyone else. Every failure of the code step
//! is the same `invalid_code`.

use crate::passwords::Replacing;
use crate::signin::internal;
use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use carekey_domain::model::NewAccount;
use carekey_domain::password_rules::PersonalInfo;
use carekey_domain::ports::{ActivationRedemption, NewToken, TokenState};
use carekey_domain::recovery::normalise_crockford;
use carekey_domain::secret::Password;
use carekey_domain::token::{OpaqueToken, TokenHash, TokenPurpose};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tracing::instrument;

/// A trimmed value, or `None` when blank.
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// How long a patient has to choose a username and password once the code was accepted.
const ENROLLMENT_MINUTES: i64 = 30;

/// An accepted activation code: the token for the next step, once.
#[derive(Debug)]
pub struct EnrollmentStarted {
    pub enrollment_token: OpaqueToken,
    pub expires_at: DateTime<Utc>,
    pub given_name: String,
}

impl Services {
    /// `POST /api/v1/enrollment`.
    #[instrument(skip_all)]
    pub async fn start_enrollment(
        &self,
        code: &str,
        date_of_birth: &str,
        postal_code: Option<&str>,
        client: &ClientInfo,
    ) -> ServiceResult<EnrollmentStarted> {
        let date_of_birth = DateOfBirth::parse(date_of_birth)
            .map_err(|e| ServiceError::invalid("date_of_birth", e.to_string()))?;
        let policy = self.store.load_policy().await?;
        let now = self.clock.now();
        let token = OpaqueToken::generate();
        let expires_at = now + Duration::minutes(ENROLLMENT_MINUTES);
        let redemption = ActivationRedemption {
            code_hash: TokenHash::of(&normalise_crockford(code).unwrap_or_default()),
            date_of_birth,
            postal_code: postal_code.map(str::to_owned),
            require_postal_code: policy.activation.require_postal_code,
            at: now,
            offer: NewToken {
                hash: token.hash(),
                purpose: TokenPurpose::Enrollment,
                account: None,
                patient: None,
                flow: None,
                attempts: None,
                expires_at,
            },
        };
        let limits = [crate::per_address_limit("enrollment", &policy, client)];
        let event = AuditEvent::new(
            now,
            Actor::Anonymous,
            AuditAction::EnrollmentCodeAccepted,
            Outcome::Success,
        )
        .ip(client.ip.clone());
        match self
            .store
            .redeem_activation(&redemption, &limits, event)
            .await?
        {
            Err(wait) => Err(ServiceError::from(wait)),
            Ok(None) => Err(ServiceError::InvalidCode {
                attempts_left: None,
            }),
            Ok(Some((_, given_name))) => Ok(EnrollmentStarted {
                enrollment_token: token,
                expires_at,
                given_name,
            }),
        }
    }

    /// Usernames still free that suit the patient an enrollment token is for.
    pub async fn username_suggestions(&self, token: &OpaqueToken) -> ServiceResult<Vec<String>> {
        let now = self.clock.now();
        let record = self
            .store
            .token(&token.hash(), TokenPurpose::Enrollment, now)
            .await?
            .filter(|t| t.state == TokenState::Usable);
        let Some(patient) = record.and_then(|t| t.patient) else {
            return Ok(Vec::new());
        };
        let Some(details) = self.store.patient_record(patient, now).await? else {
            return Ok(Vec::new());
        };
        let ideas = carekey_domain::identifiers::username_ideas(
            &details.given_name,
            &details.family_name,
            DateOfBirth::parse(&details.date_of_birth).ok(),
        );
        let mut free = Vec::new();
        for idea in ideas {
            let login = carekey_domain::identifiers::Login::parse(&idea).map_err(internal)?;
            if self
                .store
                .find_accounts_for_sign_in(&login)
                .await?
                .is_empty()
            {
                free.push(idea);
            }
        }
        Ok(free)
    }

    /// `POST /api/v1/enrollment/complete`: the username and password; the
    /// account is active and the patient signs in next.
    #[instrument(skip_all)]
    /// An email or phone given here is added, unverified, where the record has
    /// none of that kind (the patient confirms it from `/account`); one that
    /// differs from a contact already on file is refused, so nothing is lost.
    pub async fn complete_enrollment(
        &self,
        token: &OpaqueToken,
        username: &str,
        password: &Password,
        confirm: &Password,
        contacts: (Option<&str>, Option<&str>),
        client: &ClientInfo,
    ) -> ServiceResult<String> {
        let now = self.clock.now();
        let record = self
            .store
            .token(&token.hash(), TokenPurpose::Enrollment, now)
            .await?
            .filter(|t| t.state == TokenState::Usable);
        let Some(patient) = record.and_then(|t| t.patient) else {
            return Err(ServiceError::TokenExpired);
        };
        let username = Username::parse(username)
            .map_err(|e| ServiceError::invalid("username", e.to_string()))?;
        if password.expose() != confirm.expose() {
            return Err(ServiceError::PasswordMismatch);
        }
        let details = self
            .store
            .patient_record(patient, now)
            .await?
            .ok_or(ServiceError::TokenExpired)?;
        let mut new_contacts = Vec::new();

        let typed = [
            (
                "email",
                given(contacts.0).map(|e| {
                    Email::parse(e)
                        .map(|e| e.as_str().to_owned())
                        .map_err(|e| e.to_string())
                }),
                details.portal.email.as_ref(),
            ),
            (
                "phone",
                given(contacts.1).map(|p| {
                    PhoneE164::parse(p, &self.settings.default_region)
                        .map(|p| p.as_str().to_owned())
                        .map_err(|e| e.to_string())
                }),
                details.portal.phone.as_ref(),
            ),
        ];
        for (kind, value, on_file) in typed {
            let Some(value) = value else { continue };
            let value = value.map_err(|why| ServiceError::invalid(kind, why))?;
            match on_file {
                None => new_contacts.push((kind.to_owned(), value)),
                Some(current) if current.value == value => {}
                Some(_) => {
                    return Err(ServiceError::invalid(
                        kind,
                        "a different one is already on file: change it from your account page after signing in",
                    ))
                }
            }
        }
        let personal = PersonalInfo {
            username: Some(username.as_str().to_owned()),
            given_name: Some(details.given_name.clone()),
            family_name: Some(details.family_name.clone()),
            email: details.portal.email.as_ref().map(|e| e.value.clone()),
            date_of_birth: DateOfBirth::parse(&details.date_of_birth).ok(),
        };
        self.require_acceptable(password, &personal, Replacing::Nothing, &[])
            .await?;
        let account = NewAccount {
            patient_id: patient,
            username: username.clone(),
            password_hash: self.hasher.hash(password).await.map_err(internal)?,
        };
        let event = AuditEvent::new(
            now,
            Actor::Anonymous,
            AuditAction::EnrollmentCompleted,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(json!({ "username": username.as_str() }));
        if !self
            .store
            .complete_enrollment(&token.hash(), &account, &new_contacts, event)
            .await?
        {
            return Err(ServiceError::TokenExpired);
        }
        Ok(username.as_str().to_owned())
    }
}
