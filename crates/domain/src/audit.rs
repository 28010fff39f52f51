//! Audit events: who did what to whom, when, from where, with what outcome — and
//! the hash chain that makes any later edit or deletion detectable.
//!
//! No secret ever goes into an event: callers pass identifiers and outcomes,
//! never passwords, tokens or codes.

use crate::ids::{AccountId, PatientId, StaffId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// Someone not signed in (a sign-in attempt, a recovery request).
    Anonymous,
    Patient(AccountId),
    Staff(StaffId),
    /// The service itself or an operator at the command line.
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Anonymous => "anonymous",
            Actor::Patient(_) => "patient",
            Actor::Staff(_) => "staff",
            Actor::System => "system",
        }
    }

    pub fn id(&self) -> Option<uuid::Uuid> {
        match self {
            Actor::Patient(id) => Some(id.0),
            Actor::Staff(id) => Some(id.0),
            Actor::Anonymous | Actor::System => None,
        }
    }
}

/// What happened; the stored name is stable and searchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    SignInSucceeded,
    SignInFailed,
    AccountLocked,
    AccountUnlocked,
    AccountDisabled,
    PasswordChanged,
    SessionEnded,
    PatientCreated,
    AccountCreated,
    StaffCreated,
    PolicyChanged,
    RecoveryRequested,
    RecoveryCodeAccepted,
    RecoveryCodeRejected,
    PasswordReset,
    StaffCodeIssued,
    StaffCodeRedeemed,
    StaffCodeRejected,
    StaffSignInSucceeded,
    StaffSignInFailed,
    TotpEnrolmentStarted,
    TotpConfirmed,
    ResetLinkSent,
    ContactsChanged,
    StaffDisabled,
    PatientsImported,
    InvitationIssued,
    EnrollmentCodeAccepted,
    EnrollmentCodeRejected,
    EnrollmentCompleted,
}

impl AuditAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditAction::SignInSucceeded => "sign_in.succeeded",
            AuditAction::SignInFailed => "sign_in.failed",
            AuditAction::AccountLocked => "account.locked",
            AuditAction::AccountUnlocked => "account.unlocked",
            AuditAction::AccountDisabled => "account.disabled",
            AuditAction::PasswordChanged => "password.changed",
            AuditAction::SessionEnded => "session.ended",
            AuditAction::PatientCreated => "patient.created",
            AuditAction::AccountCreated => "account.created",
            AuditAction::StaffCreated => "staff.created",
            AuditAction::PolicyChanged => "policy.changed",
            AuditAction::RecoveryRequested => "recovery.requested",
            AuditAction::RecoveryCodeAccepted => "recovery.code_accepted",
            AuditAction::RecoveryCodeRejected => "recovery.code_rejected",
            AuditAction::PasswordReset => "password.reset",
            AuditAction::StaffCodeIssued => "staff_code.issued",
            AuditAction::StaffCodeRedeemed => "staff_code.redeemed",
            AuditAction::StaffCodeRejected => "staff_code.rejected",
            AuditAction::StaffSignInSucceeded => "staff.sign_in.succeeded",
            AuditAction::StaffSignInFailed => "staff.sign_in.failed",
            AuditAction::TotpEnrolmentStarted => "staff.totp.enrolment_started",
            AuditAction::TotpConfirmed => "staff.totp.confirmed",
            AuditAction::ResetLinkSent => "reset_link.sent",
            AuditAction::ContactsChanged => "contacts.changed",
            AuditAction::StaffDisabled => "staff.disabled",
            AuditAction::PatientsImported => "patients.imported",
            AuditAction::InvitationIssued => "invitation.issued",
            AuditAction::EnrollmentCodeAccepted => "enrollment.code_accepted",
            AuditAction::EnrollmentCodeRejected => "enrollment.code_rejected",
            AuditAction::EnrollmentCompleted => "enrollment.completed",
        }
    }
}

/// Whether the attempt achieved what it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// An event about to be appended. Storage fills in the subject ids it knows
/// (an account's patient) and the chain fields.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub account_id: Option<AccountId>,
    pub patient_id: Option<PatientId>,
    /// The client's address as seen by the service (after trusted proxies).
    pub ip: Option<String>,
    pub outcome: Outcome,
    /// Non-secret particulars, such as a failure reason or a lock's end.
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(at: DateTime<Utc>, actor: Actor, action: AuditAction, outcome: Outcome) -> Self {
        Self {
            at,
            actor,
            action,
            account_id: None,
            patient_id: None,
            ip: None,
            outcome,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn account(mut self, account: AccountId) -> Self {
        self.account_id = Some(account);
        self
    }

    pub fn patient(mut self, patient: PatientId) -> Self {
        self.patient_id = Some(patient);
        self
    }

    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.ip = ip;
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// The fields of a stored event that the chain hash covers, in stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedFields<'a> {
    pub seq: i64,
    pub at_millis: i64,
    pub actor_kind: &'a str,
    pub actor_id: Option<uuid::Uuid>,
    pub action: &'a str,
    pub account_id: Option<uuid::Uuid>,
    pub patient_id: Option<uuid::Uuid>,
    pub ip: Option<&'a str>,
    pub outcome: &'a str,
    pub details: &'a str,
    pub prev_hash: &'a [u8],
}

/// The hash of an event, covering its fields and its predecessor's hash.
///
/// Each field is length-prefixed so no two different events serialise alike.
pub fn chain_hash(fields: &ChainedFields<'_>) -> [u8; 32] {
    fn put(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    fn put_uuid(hasher: &mut Sha256, id: Option<uuid::Uuid>) {
        put(
            hasher,
            id.as_ref()
                .map(|id| id.as_bytes().as_slice())
                .unwrap_or_default(),
        );
    }
    let mut hasher = Sha256::new();
    put(&mut hasher, &fields.seq.to_be_bytes());
    put(&mut hasher, &fields.at_millis.to_be_bytes());
    put(&mut hasher, fields.actor_kind.as_bytes());
    put_uuid(&mut hasher, fields.actor_id);
    put(&mut hasher, fields.action.as_bytes());
    put_uuid(&mut hasher, fields.account_id);
    put_uuid(&mut hasher, fields.patient_id);
    put(&mut hasher, fields.ip.unwrap_or_default().as_bytes());
    put(&mut hasher, fields.outcome.as_bytes());
    put(&mut hasher, fields.details.as_bytes());
    put(&mut hasher, fields.prev_hash);
    hasher.finalize().into()
}

/// The hash the first event points back to.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(details: &str) -> ChainedFields<'_> {
        ChainedFields {
            seq: 1,
            at_millis: 1_700_000_000_000,
            actor_kind: "anonymous",
            actor_id: None,
            action: "sign_in.failed",
            account_id: None,
            patient_id: None,
            ip: Some("127.0.0.1"),
            outcome: "failure",
            details,
            prev_hash: &GENESIS_HASH,
        }
    }

    #[test]
    fn any_change_to_an_event_changes_its_hash() {
        let original = chain_hash(&fields("{}"));
        assert_eq!(original, chain_hash(&fields("{}")));
        assert_ne!(original, chain_hash(&fields(r#"{"reason":"x"}"#)));
        let mut moved = fields("{}");
        moved.seq = 2;
        assert_ne!(original, chain_hash(&moved));
    }
}
