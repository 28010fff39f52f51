//! The staff console's use cases: staff sign-in with a second factor, the
//! role and enrolment gate every staff request passes, patient search and
//! records, the assisted actions (each with the identity check on its audit
//! event), the audit trail and its chain check, and administration.

use crate::notices::notices;
use crate::signin::internal;
use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use carekey_domain::ids::{MessageId, PatientId, StaffId};
use carekey_domain::message::{Channel, MessageData, MessageKind, NewMessage};
use carekey_domain::model::{Language, SessionOwner};
use carekey_domain::policy::Policy;
use carekey_domain::ports::{NewSession, NewToken, NoticeContacts, PatientQuery, SeenContacts};
use carekey_domain::secret::Password;
use carekey_domain::session::SessionExpiry;
use carekey_domain::staff::{
    chain_start, check_chain_segment, Area, ChainCheck, PatientRecord, PatientSummary, StaffMember,
    StoredAuditEvent, Verification,
};
use carekey_domain::token::{OpaqueToken, TokenPurpose};
use carekey_domain::totp;
use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::instrument;

/// Characters in an activation code (DESIGN.md: 12 or more, grouped for reading aloud).
const ACTIVATION_CODE_LENGTH: usize = 12;
/// How often a staff contact change reads again when another change won the race.
const CONTACT_CHANGE_ATTEMPTS: usize = 20;

/// A new staff session, handed over once.
#[derive(Debug)]
pub struct StaffSignedIn {
    pub session_token: OpaqueToken,
    pub expires_at: DateTime<Utc>,
    pub staff: StaffMember,
}

/// A live staff session that passed the gate.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub staff: StaffMember,
    pub expires_at: DateTime<Utc>,
}

impl StaffSession {
    fn actor(&self) -> Actor {
        Actor::Staff(self.staff.id)
    }
}

/// The attestation as it goes on an audit event.
fn attested(verification: &Verification, extra: serde_json::Value) -> serde_json::Value {
    let mut details = json!({ "verification": verification });
    if let (Some(details), Some(extra)) = (details.as_object_mut(), extra.as_object()) {
        details.extend(extra.clone());
    }
    details
}

fn require_attestation(verification: &Verification) -> ServiceResult<()> {
    match verification.problem() {
        Some(why) => Err(ServiceError::invalid("verification", why)),
        None => Ok(()),
    }
}

impl Services {
    /// `POST /api/v1/staff/sessions`: password, then the TOTP code for a user
    /// who enrolled one. Every failure is the same `InvalidCredentials`.
    #[instrument(skip_all)]
    pub async fn staff_sign_in(
        &self,
        username: &str,
        password: &Password,
        code: Option<&str>,
        client: &ClientInfo,
    ) -> ServiceResult<StaffSignedIn> {
        let policy = self.store.load_policy().await?;
        let now = self.clock.now();
        let failure = |reason: &str| {
            AuditEvent::new(
                now,
                Actor::Anonymous,
                AuditAction::StaffSignInFailed,
                Outcome::Failure,
            )
            .ip(client.ip.clone())
            .details(json!({ "reason": reason }))
        };
        let staff = match Username::parse(username) {
            Ok(username) => self.store.find_staff_for_sign_in(&username).await?,
            Err(_) => None,
        };
        let Some(staff) = staff else {
            self.hasher.verify_dummy(password).await.map_err(internal)?;
            self.store.append_audit(failure("unknown_login")).await?;
            return Err(ServiceError::InvalidCredentials);
        };
        let password_ok = self
            .hasher
            .verify(password, &staff.password_hash)
            .await
            .map_err(internal)?;
        let step = match (&staff.totp_secret, staff.totp_confirmed) {
            (Some(secret), true) => {
                let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
                code.and_then(|code| {
                    totp::accepted_step(secret, code, seconds, staff.totp_last_step)
                })
            }
            _ => None,
        };
        let second_factor_ok = !staff.totp_confirmed || step.is_some();
        if !password_ok || !second_factor_ok {
            let reason = if password_ok {
                "wrong_totp"
            } else {
                "wrong_password"
            };
            self.store
                .record_staff_sign_in_failure(staff.id, &policy.lockout, failure(reason))
                .await?;
            return Err(ServiceError::InvalidCredentials);
        }
        if staff.disabled || staff.lock.is_locked(now) {
            self.store
                .append_audit(failure("disabled_or_locked"))
                .await?;
            return Err(ServiceError::InvalidCredentials);
        }
        let session_token = OpaqueToken::generate();
        let expiry = SessionExpiry::starting(&policy.session, now);
        let session = NewSession {
            id_hash: session_token.hash(),
            owner: SessionOwner::Staff(staff.id),
            created_at: now,
            expiry,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        };
        let success = AuditEvent::new(
            now,
            Actor::Staff(staff.id),
            AuditAction::StaffSignInSucceeded,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(json!({ "second_factor": staff.totp_confirmed }));
        if !self
            .store
            .complete_staff_sign_in(&session, step, success)
            .await?
        {
            self.store
                .append_audit(failure("refused_at_commit"))
                .await?;
            return Err(ServiceError::InvalidCredentials);
        }
        let member = self
            .store
            .staff_member(staff.id)
            .await?
            .ok_or(ServiceError::InvalidCredentials)?;
        Ok(StaffSignedIn {
            session_token,
            expires_at: expiry.expires_at(),
            staff: member,
        })
    }

    /// The staff member a session token belongs to, without the gates.
    async fn staff_session_ungated(
        &self,
        token: &OpaqueToken,
    ) -> ServiceResult<(StaffSession, Policy)> {
        let live = self.live_session(token).await?;
        let SessionOwner::Staff(staff_id) = live.record.owner else {
            return Err(ServiceError::Unauthenticated);
        };
        let staff = self
            .store
            .staff_member(staff_id)
            .await?
            .filter(|s| !s.disabled)
            .ok_or(ServiceError::Unauthenticated)?;
        let session = StaffSession {
            staff,
            expires_at: live.expiry.expires_at(),
        };
        Ok((session, live.policy))
    }

    /// The gate of every staff route but enrolment: a live session, a second
    /// factor enrolled when the policy requires one, and a role that reaches `area`.
    pub async fn staff_session(
        &self,
        token: &OpaqueToken,
        area: Area,
    ) -> ServiceResult<StaffSession> {
        let (session, policy) = self.staff_session_ungated(token).await?;
        if policy.staff.require_totp && !session.staff.totp_enrolled {
            return Err(ServiceError::TotpEnrollmentRequired);
        }
        if !session.staff.role.may(area) {
            return Err(ServiceError::Forbidden);
        }
        Ok(session)
    }

    /// Ends a staff session.
    pub async fn staff_sign_out(&self, token: &OpaqueToken) -> ServiceResult<()> {
        let (session, _) = self.staff_session_ungated(token).await?;
        let event = AuditEvent::new(
            self.clock.now(),
            session.actor(),
            AuditAction::SessionEnded,
            Outcome::Success,
        )
        .details(json!({ "reason": "signed_out" }));
        self.store.revoke_session(&token.hash(), event).await?;
        Ok(())
    }

    /// `POST /api/v1/staff/me/totp`: a new secret to scan, until confirmed.
    pub async fn start_totp_enrolment(
        &self,
        token: &OpaqueToken,
    ) -> ServiceResult<(String, String)> {
        let (session, _) = self.staff_session_ungated(token).await?;
        if session.staff.totp_enrolled {
            return Err(ServiceError::Conflict("totp"));
        }
        let secret = totp::new_secret();
        let uri = totp::otpauth_uri(&secret, &session.staff.username)
            .ok_or_else(|| internal("TOTP secret could not be encoded"))?;
        let event = AuditEvent::new(
            self.clock.now(),
            session.actor(),
            AuditAction::TotpEnrolmentStarted,
            Outcome::Success,
        );
        self.store
            .set_totp_secret(session.staff.id, &secret, event)
            .await?;
        Ok((secret, uri))
    }

    /// `POST /api/v1/staff/me/totp/confirm`: the first code proves the app holds the secret.
    pub async fn confirm_totp(&self, token: &OpaqueToken, code: &str) -> ServiceResult<()> {
        let (session, _) = self.staff_session_ungated(token).await?;
        let username = Username::parse(&session.staff.username).map_err(internal)?;
        let staff = self
            .store
            .find_staff_for_sign_in(&username)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let now = self.clock.now();
        let step = staff.totp_secret.as_deref().and_then(|secret| {
            totp::accepted_step(
                secret,
                code,
                u64::try_from(now.timestamp()).unwrap_or(0),
                None,
            )
        });
        let Some(step) = step.filter(|_| !staff.totp_confirmed) else {
            return Err(ServiceError::InvalidCode {
                attempts_left: None,
            });
        };
        let event = AuditEvent::new(
            now,
            session.actor(),
            AuditAction::TotpConfirmed,
            Outcome::Success,
        );
        self.store.confirm_totp(staff.id, step, event).await?;
        Ok(())
    }

    /// Patients by MRN (exact), date of birth (`YYYY-MM-DD`) or name (prefix).
    pub async fn search_patients(&self, query: &str) -> ServiceResult<Vec<PatientSummary>> {
        let query = query.trim();
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        if let Ok(born) = DateOfBirth::parse(query) {
            return Ok(self
                .store
                .search_patients(&PatientQuery::DateOfBirth(born), now, 50)
                .await?);
        }
        let by_mrn = self
            .store
            .search_patients(&PatientQuery::Mrn(query.to_owned()), now, 50)
            .await?;
        if !by_mrn.is_empty() {
            return Ok(by_mrn);
        }
        Ok(self
            .store
            .search_patients(&PatientQuery::Name(query.to_owned()), now, 50)
            .await?)
    }

    pub async fn patient_record(&self, patient: PatientId) -> ServiceResult<PatientRecord> {
        self.store
            .patient_record(patient, self.clock.now())
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// The record's account username, or `NotFound` when the patient has no account.
    async fn account_username(&self, record: &PatientRecord) -> ServiceResult<Username> {
        let username = record
            .portal
            .username
            .as_deref()
            .ok_or(ServiceError::NotFound)?;
        Username::parse(username).map_err(internal)
    }

    /// `POST …/portal/reset-link`: a reset link to the verified email, or by text message.
    pub async fn staff_reset_link(
        &self,
        session: &StaffSession,
        patient: PatientId,
        channel: Channel,
        verification: &Verification,
        client: &ClientInfo,
    ) -> ServiceResult<MessageId> {
        require_attestation(verification)?;
        let record = self.patient_record(patient).await?;
        let account = record.portal.account_id.ok_or(ServiceError::NotFound)?;
        let contact = match channel {
            Channel::Email => record.portal.email.as_ref(),
            Channel::Sms => record.portal.phone.as_ref(),
            Channel::Voice => return Err(ServiceError::invalid("channel", "choose email or sms")),
        };
        let Some(contact) = contact.filter(|c| c.verified) else {
            return Err(ServiceError::invalid(
                "channel",
                "the patient has no verified contact for this channel: correct it first",
            ));
        };
        let policy = self.store.load_policy().await?;
        let now = self.clock.now();
        let lifetime = carekey_domain::recovery::lifetime(&policy.recovery, Channel::Email);
        let token = OpaqueToken::generate();
        let message = NewMessage {
            id: MessageId::generate(),
            kind: MessageKind::PasswordReset,
            channel,
            recipient: contact.value.clone(),
            language: record
                .preferred_language
                .as_deref()
                .and_then(Language::from_tag)
                .unwrap_or_default(),
            patient_id: Some(patient),
            data: MessageData {
                given_name: Some(record.given_name.clone()),
                link: Some(
                    self.settings
                        .link(&format!("/reset?token={}", token.expose())),
                ),
                valid_minutes: u32::try_from(lifetime.num_minutes()).ok(),
                ..MessageData::default()
            },
        };
        let stored = NewToken {
            hash: token.hash(),
            purpose: TokenPurpose::Reset,
            account: Some(account),
            patient: Some(patient),
            flow: None,
            attempts: None,
            expires_at: now + lifetime,
        };
        let event = AuditEvent::new(
            now,
            session.actor(),
            AuditAction::ResetLinkSent,
            Outcome::Success,
        )
        .account(account)
        .patient(patient)
        .ip(client.ip.clone())
        .details(attested(
            verification,
            json!({ "channel": channel.as_str(), "message_id": message.id }),
        ));
        self.store
            .issue_reset_link(&stored, &message, event)
            .await?;
        Ok(message.id)
    }

    /// `POST …/portal/reset-code`: a one-time code to read out or print.
    pub async fn staff_reset_code(
        &self,
        session: &StaffSession,
        patient: PatientId,
        verification: &Verification,
    ) -> ServiceResult<(String, DateTime<Utc>)> {
        require_attestation(verification)?;
        let record = self.patient_record(patient).await?;
        let account = record.portal.account_id.ok_or(ServiceError::NotFound)?;
        self.issue_staff_code(
            account,
            session.actor(),
            attested(verification, json!({ "patient_id": patient })),
        )
        .await
    }

    /// `POST …/portal/invite`: a new activation code (voiding the older one)
    /// sent by email or text, or returned for printing. Returns the code when
    /// printed, its expiry, and the message when sent.
    pub async fn staff_invite(
        &self,
        session: &StaffSession,
        patient: PatientId,
        channel: Option<Channel>,
        verification: &Verification,
    ) -> ServiceResult<(Option<String>, DateTime<Utc>, Option<MessageId>)> {
        require_attestation(verification)?;
        self.invite(
            session.actor(),
            patient,
            channel,
            attested(verification, json!({})),
        )
        .await
    }

    /// `carekey patient invite --all-without-account`: every patient without
    /// an account is sent a code by verified email, else by verified text.
    /// Returns (by email, by text, left out for want of a verified contact).
    pub async fn invite_all_without_account(&self) -> ServiceResult<(u32, u32, u32)> {
        let (mut by_email, mut by_text, mut left_out) = (0, 0, 0);
        for patient in self.store.patients_without_account().await? {
            let record = self.patient_record(patient).await?;
            let channel = if record.portal.email.as_ref().is_some_and(|c| c.verified) {
                by_email += 1;
                Channel::Email
            } else if record.portal.phone.as_ref().is_some_and(|c| c.verified) {
                by_text += 1;
                Channel::Sms
            } else {
                left_out += 1;
                continue;
            };
            self.invite(
                Actor::System,
                patient,
                Some(channel),
                json!({ "via": "bulk" }),
            )
            .await?;
        }
        Ok((by_email, by_text, left_out))
    }

    /// Self-registration, when the policy turns it on: a patient whose given
    /// name, family name, date of birth and postal code match exactly one
    /// record without an account is sent an activation code at a verified
    /// contact already on file. The answer is the same whatever matched, and
    /// takes no less than the recovery answer's floor.
    pub async fn request_activation_code(
        &self,
        given_name: &str,
        family_name: &str,
        date_of_birth: &str,
        postal_code: &str,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        let work = self.send_activation_code_if_matched(
            given_name,
            family_name,
            date_of_birth,
            postal_code,
            client,
        );
        self.floors.activation.hold(work).await
    }

    async fn send_activation_code_if_matched(
        &self,
        given_name: &str,
        family_name: &str,
        date_of_birth: &str,
        postal_code: &str,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        let policy = self.store.load_policy().await?;
        if !policy.activation.self_registration {
            return Err(ServiceError::Forbidden);
        }
        let born = DateOfBirth::parse(date_of_birth)
            .map_err(|e| ServiceError::invalid("date_of_birth", e.to_string()))?;
        let now = self.clock.now();
        let limits = [crate::per_address_limit(
            "self_registration",
            &policy,
            client,
        )];
        if let Some(wait) = self.store.hit_rate_limits(&limits, now).await? {
            return Err(ServiceError::from(wait));
        }
        let same = |a: &str, b: &str| fold(a) == fold(b) && !fold(a).is_empty();
        let matches: Vec<PatientSummary> = self
            .store
            .search_patients(&PatientQuery::DateOfBirth(born), now, 50)
            .await?
            .into_iter()
            .filter(|p| same(&p.given_name, given_name) && same(&p.family_name, family_name))
            .collect();
        let [only] = matches.as_slice() else {
            return Ok(());
        };
        let record = self.patient_record(only.id).await?;
        let postal_ok = record
            .postal_code
            .as_deref()
            .is_some_and(|on_file| same(on_file, postal_code));
        if record.portal.account_id.is_some() || !postal_ok {
            return Ok(());
        }
        let channel = if record.portal.email.as_ref().is_some_and(|c| c.verified) {
            Channel::Email
        } else if record.portal.phone.as_ref().is_some_and(|c| c.verified) {
            Channel::Sms
        } else {
            return Ok(());
        };
        self.invite(
            Actor::Anonymous,
            only.id,
            Some(channel),
            json!({ "via": "self_registration" }),
        )
        .await?;
        Ok(())
    }

    /// An invitation by `actor`, with `details` on its audit event.
    async fn invite(
        &self,
        actor: Actor,
        patient: PatientId,
        channel: Option<Channel>,
        details: serde_json::Value,
    ) -> ServiceResult<(Option<String>, DateTime<Utc>, Option<MessageId>)> {
        let record = self.patient_record(patient).await?;
        if record.portal.account_id.is_some() {
            return Err(ServiceError::invalid(
                "patient",
                "the patient already has a portal account",
            ));
        }
        let policy = self.store.load_policy().await?;
        let now = self.clock.now();
        let code = carekey_domain::recovery::crockford_code(ACTIVATION_CODE_LENGTH);
        let canonical = carekey_domain::recovery::normalise_crockford(&code)
            .ok_or_else(|| internal("bad activation code"))?;
        let lifetime = chrono::Duration::days(i64::from(policy.activation.lifetime_days));
        let stored = NewToken {
            hash: carekey_domain::token::TokenHash::of(&canonical),
            purpose: TokenPurpose::Activation,
            account: None,
            patient: Some(patient),
            flow: None,
            attempts: Some(policy.recovery.code_attempts),
            expires_at: now + lifetime,
        };
        let message = match channel {
            None => None,
            Some(channel) => {
                let contact = match channel {
                    Channel::Email => record.portal.email.as_ref(),
                    _ => record.portal.phone.as_ref(),
                };
                let Some(contact) = contact.filter(|c| c.verified) else {
                    return Err(ServiceError::invalid(
                        "channel",
                        "the patient has no verified contact for this channel",
                    ));
                };
                Some(NewMessage {
                    id: MessageId::generate(),
                    kind: MessageKind::Invitation,
                    channel,
                    recipient: contact.value.clone(),
                    language: record
                        .preferred_language
                        .as_deref()
                        .and_then(Language::from_tag)
                        .unwrap_or_default(),
                    patient_id: Some(patient),
                    data: MessageData {
                        given_name: Some(record.given_name.clone()),
                        code: Some(code.clone()),
                        link: Some(self.settings.link("/enroll")),
                        valid_minutes: u32::try_from(lifetime.num_minutes()).ok(),
                        ..MessageData::default()
                    },
                })
            }
        };
        let mut details = details;
        details["channel"] = channel.map_or("print", |c| c.as_str()).into();
        let event = AuditEvent::new(now, actor, AuditAction::InvitationIssued, Outcome::Success)
            .patient(patient)
            .details(details);
        self.store
            .issue_activation(&stored, message.as_ref(), event)
            .await?;
        let printed = message.is_none().then_some(code);
        Ok((printed, now + lifetime, message.map(|m| m.id)))
    }

    /// `POST …/portal/unlock`.
    pub async fn staff_unlock(
        &self,
        session: &StaffSession,
        patient: PatientId,
        verification: &Verification,
    ) -> ServiceResult<()> {
        require_attestation(verification)?;
        let record = self.patient_record(patient).await?;
        let username = self.account_username(&record).await?;
        self.unlock_account(
            &username,
            session.actor(),
            attested(verification, json!({})),
        )
        .await?;
        Ok(())
    }

    /// `POST …/portal/disable`: with a reason; no attestation needed.
    pub async fn staff_disable(
        &self,
        session: &StaffSession,
        patient: PatientId,
        reason: &str,
    ) -> ServiceResult<()> {
        let record = self.patient_record(patient).await?;
        let username = self.account_username(&record).await?;
        self.disable_account(&username, reason, session.actor())
            .await?;
        Ok(())
    }

    /// `PATCH …/contacts`: staff correct an email or phone (verified by staff);
    /// the old contact is told.
    pub async fn staff_update_contacts(
        &self,
        session: &StaffSession,
        patient: PatientId,
        email: Option<&str>,
        phone: Option<&str>,
        verification: &Verification,
        client: &ClientInfo,
    ) -> ServiceResult<PatientRecord> {
        require_attestation(verification)?;
        let email = email
            .map(|e| Email::parse(e).map_err(|e| ServiceError::invalid("email", e.to_string())))
            .transpose()?;
        let phone = phone
            .map(|p| {
                PhoneE164::parse(p, &self.settings.default_region)
                    .map_err(|e| ServiceError::invalid("phone", e.to_string()))
            })
            .transpose()?;
        if email.is_none() && phone.is_none() {
            return Err(ServiceError::invalid(
                "email",
                "give an email or a phone to change",
            ));
        }
        // Read, decide whom to tell, and write only if nobody changed the
        // contacts in between; else read again (no lost update, no notice
        // to an address that was already replaced).
        for _ in 0..CONTACT_CHANGE_ATTEMPTS {
            let record = self.patient_record(patient).await?;
            let seen = SeenContacts {
                email: record.portal.email.as_ref().map(|c| c.value.clone()),
                phone: record.portal.phone.as_ref().map(|c| c.value.clone()),
            };
            let mut old = Vec::new();
            if let (Some(new), Some(current)) = (&email, &record.portal.email) {
                if current.verified && current.value != new.as_str() {
                    old.push(("email".to_owned(), current.value.clone()));
                }
            }
            if let (Some(new), Some(current)) = (&phone, &record.portal.phone) {
                if current.verified && current.value != new.as_str() {
                    old.push(("phone".to_owned(), current.value.clone()));
                }
            }
            let told = NoticeContacts {
                patient_id: patient,
                given_name: record.given_name.clone(),
                language: record
                    .preferred_language
                    .as_deref()
                    .and_then(Language::from_tag)
                    .unwrap_or_default(),
                verified: old,
            };
            let event = AuditEvent::new(
                self.clock.now(),
                session.actor(),
                AuditAction::ContactsChanged,
                Outcome::Success,
            )
            .patient(patient)
            .ip(client.ip.clone())
            .details(attested(
                verification,
                json!({ "email_changed": email.is_some(), "phone_changed": phone.is_some() }),
            ));
            let event = match record.portal.account_id {
                Some(account) => event.account(account),
                None => event,
            };
            let applied = self
                .store
                .update_contacts(
                    patient,
                    &seen,
                    email.as_ref().map(|e| Some(e.as_str().to_owned())),
                    phone.as_ref().map(|p| Some(p.as_str().to_owned())),
                    &notices(&told, MessageKind::ContactChanged, &MessageData::default()),
                    event,
                )
                .await?;
            if applied {
                return self.patient_record(patient).await;
            }
        }
        Err(internal("contacts kept changing under a staff update"))
    }

    /// Audit events, newest first (at most 500).
    pub async fn audit_events(
        &self,
        patient: Option<PatientId>,
        since: Option<DateTime<Utc>>,
    ) -> ServiceResult<Vec<StoredAuditEvent>> {
        Ok(self.store.list_audit(patient, since, 500).await?)
    }

    /// Walks the whole audit chain: every event's hash and link, and the head.
    pub async fn verify_audit_chain(&self) -> ServiceResult<ChainCheck> {
        let mut previous = chain_start();
        let mut checked = 0u64;
        loop {
            let segment = self.store.audit_segment(previous.0, 1000).await?;
            if segment.is_empty() {
                break;
            }
            let (bad, last) = check_chain_segment(&segment, previous.clone());
            if let Some(seq) = bad {
                checked += u64::try_from(seq - previous.0 - 1).unwrap_or(0);
                return Ok(ChainCheck {
                    ok: false,
                    events: checked,
                    first_bad_event: Some(seq),
                });
            }
            checked += segment.len() as u64;
            previous = last;
        }
        let head = self.store.audit_head().await?;
        let head_ok = head.0 == previous.0 && (head.0 == 0 || head.1 == previous.1);
        Ok(ChainCheck {
            ok: head_ok,
            events: checked,
            first_bad_event: (!head_ok).then_some(previous.0 + 1),
        })
    }

    /// `PUT /api/v1/admin/policy`: any part of the policy, merged into the
    /// current one; a value that cannot work is refused with its field.
    pub async fn update_policy(
        &self,
        session: &StaffSession,
        change: &serde_json::Value,
    ) -> ServiceResult<Policy> {
        let current = self.store.load_policy().await?;
        let mut merged = serde_json::to_value(&current).map_err(internal)?;
        merge(&mut merged, change);
        let policy: Policy = serde_json::from_value(merged)
            .map_err(|e| ServiceError::invalid("policy", e.to_string()))?;
        let problems = policy.problems();
        if !problems.is_empty() {
            return Err(ServiceError::InvalidRequest(
                problems
                    .into_iter()
                    .map(|p| (p.field.to_owned(), p.reason.to_owned()))
                    .collect(),
            ));
        }
        let event = AuditEvent::new(
            self.clock.now(),
            session.actor(),
            AuditAction::PolicyChanged,
            Outcome::Success,
        )
        .details(json!({ "change": change }));
        self.store.save_policy(&policy, event).await?;
        Ok(policy)
    }

    /// `POST /api/v1/admin/staff/{id}/disable`.
    pub async fn disable_staff(&self, session: &StaffSession, staff: StaffId) -> ServiceResult<()> {
        let event = AuditEvent::new(
            self.clock.now(),
            session.actor(),
            AuditAction::StaffDisabled,
            Outcome::Success,
        )
        .details(json!({ "staff_id": staff }));
        if self.store.disable_staff(staff, event).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound)
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub created: u32,
    pub updated: u32,
    pub skipped: Vec<carekey_domain::fhir::Skipped>,
}

impl Services {
    /// Imports FHIR R4 patients (`Patient` or `Bundle`): the good entries in
    /// one transaction, the bad ones reported with index and reason.
    pub async fn import_patients(
        &self,
        document: &serde_json::Value,
        actor: Actor,
        progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
    ) -> ServiceResult<ImportReport> {
        let carekey_domain::fhir::FhirPatients { patients, skipped } =
            carekey_domain::fhir::read_patients(
                document,
                self.settings.fhir_mrn_system.as_deref(),
                &self.settings.default_region,
            )
            .map_err(|e| ServiceError::invalid("resourceType", e.to_string()))?;
        let patients: Vec<_> = patients.into_iter().map(|(_, patient)| patient).collect();
        let event = AuditEvent::new(
            self.clock.now(),
            actor,
            AuditAction::PatientsImported,
            Outcome::Success,
        )
        .details(json!({ "skipped": skipped.len() }));
        let total = patients.len() as u64;
        let written = |done: u64| {
            if let Some(progress) = progress {
                progress(done, total);
            }
        };
        let (created, updated) = self
            .store
            .import_patients(&patients, event, Some(&written))
            .await?;
        written(total);
        Ok(ImportReport {
            created,
            updated,
            skipped,
        })
    }
}

/// A name or postal code as compared for self-registration: case, spaces,
/// dashes and accents ignored.
fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkd()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Merges `change` into `target`: objects key by key, anything else replaced.
fn merge(target: &mut serde_json::Value, change: &serde_json::Value) {
    match (target, change) {
        (serde_json::Value::Object(target), serde_json::Value::Object(change)) => {
            for (key, value) in change {
                merge(
                    target.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
        (target, change) => *target = change.clone(),
    }
}
