//! Staff work: what each role may reach, the identity check recorded with
//! every assisted action, what the patient record's portal panel holds, and
//! checking the audit hash chain for edits and deletions.

use crate::audit::{chain_hash, ChainedFields, GENESIS_HASH};
use crate::ids::{AccountId, FlowId, PatientId, StaffId};
use crate::lockout::LockState;
use crate::message::MessageRecord;
use crate::model::StaffRole;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A part of the staff API, guarded by role (API.md: staff section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Patient records and every assisted action.
    Patients,
    /// Policy and staff accounts.
    Admin,
    /// The audit trail.
    Audit,
}

impl StaffRole {
    /// Whether this role may use `area`: front desk the patients; portal
    /// administrators the patients, staff and policy, and the audit trail they
    /// answer for; auditors the audit trail only.
    pub fn may(&self, area: Area) -> bool {
        matches!(
            (self, area),
            (StaffRole::FrontDesk, Area::Patients)
                | (StaffRole::PortalAdmin, _)
                | (StaffRole::Auditor, Area::Audit)
        )
    }
}

/// How staff confirmed who the patient is before acting (API.md `verification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    PhotoId,
    InPersonKnowledge,
    CallbackOnFile,
    Other,
}

impl VerificationMethod {
    pub const ALL: [VerificationMethod; 4] = [
        VerificationMethod::PhotoId,
        VerificationMethod::InPersonKnowledge,
        VerificationMethod::CallbackOnFile,
        VerificationMethod::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            VerificationMethod::PhotoId => "photo_id",
            VerificationMethod::InPersonKnowledge => "in_person_knowledge",
            VerificationMethod::CallbackOnFile => "callback_on_file",
            VerificationMethod::Other => "other",
        }
    }
}

/// The identity check behind an assisted action; it goes on the audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub method: VerificationMethod,
    #[serde(default)]
    pub note: Option<String>,
}

impl Verification {
    /// The longest note kept.
    pub const NOTE_MAX: usize = 500;

    /// Why this attestation cannot be recorded, if it cannot: `other` needs a
    /// note saying what was checked; a note is plain text of bounded length.
    pub fn problem(&self) -> Option<&'static str> {
        let note = self.note.as_deref().map(str::trim).unwrap_or_default();
        if self.method == VerificationMethod::Other && note.is_empty() {
            return Some("say in the note how the patient's identity was checked");
        }
        if note.chars().count() > Self::NOTE_MAX {
            return Some("the note is longer than 500 characters");
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Some("the note holds control characters");
        }
        None
    }
}

/// Where a patient stands with the portal (API.md `portal.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalStatus {
    NotEnrolled,
    Invited,
    Active,
    Locked,
    Disabled,
}

impl PortalStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PortalStatus::NotEnrolled => "not_enrolled",
            PortalStatus::Invited => "invited",
            PortalStatus::Active => "active",
            PortalStatus::Locked => "locked",
            PortalStatus::Disabled => "disabled",
        }
    }

    /// The status from what is stored: an account's state and lock at `now`,
    /// or, without an account, whether an invitation is open.
    pub fn of(
        account: Option<(bool, &LockState)>,
        open_invitation: bool,
        now: DateTime<Utc>,
    ) -> Self {
        match account {
            Some((false, _)) => PortalStatus::Disabled,
            Some((true, lock)) if lock.is_locked(now) => PortalStatus::Locked,
            Some((true, _)) => PortalStatus::Active,
            None if open_invitation => PortalStatus::Invited,
            None => PortalStatus::NotEnrolled,
        }
    }
}

/// A staff user as sign-in needs them.
#[derive(Debug, Clone)]
pub struct StaffForSignIn {
    pub id: StaffId,
    pub username: String,
    pub role: StaffRole,
    pub password_hash: String,
    pub disabled: bool,
    pub lock: LockState,
    pub totp_secret: Option<String>,
    pub totp_confirmed: bool,
    pub totp_last_step: Option<u64>,
}

/// A staff user as the console and the admin list show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    pub id: StaffId,
    pub username: String,
    pub role: StaffRole,
    pub disabled: bool,
    pub totp_enrolled: bool,
}

/// One line of a patient search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatientSummary {
    pub id: PatientId,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: String,
    pub portal_status: PortalStatus,
}

/// An email or phone on the record, as staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactView {
    pub value: String,
    pub verified: bool,
    /// `code` (the patient proved it) or `staff` (staff or the EHR entered it).
    pub verified_by: Option<String>,
}

/// A recent recovery attempt on the account, for "I never got the email".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryAttempt {
    pub flow_id: FlowId,
    pub purpose: String,
    pub channel: String,
    pub to: String,
    pub created_at: DateTime<Utc>,
    /// `open`, `finished`, `expired` or `revoked`.
    pub state: String,
}

/// The portal panel of a patient record (API.md).
#[derive(Debug, Clone)]
pub struct PortalPanel {
    pub status: PortalStatus,
    pub account_id: Option<AccountId>,
    pub username: Option<String>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub failed_attempts: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub email: Option<ContactView>,
    pub phone: Option<ContactView>,
    pub recent_recovery: Vec<RecoveryAttempt>,
    pub recent_messages: Vec<MessageRecord>,
}

/// A patient record with its portal panel.
#[derive(Debug, Clone)]
pub struct PatientRecord {
    pub id: PatientId,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: String,
    pub postal_code: Option<String>,
    pub preferred_language: Option<String>,
    pub portal: PortalPanel,
}

/// An audit event as stored, with its chain fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<uuid::Uuid>,
    pub action: String,
    pub account_id: Option<uuid::Uuid>,
    pub patient_id: Option<uuid::Uuid>,
    pub ip: Option<String>,
    pub outcome: String,
    /// The stored JSON text, byte for byte (the hash covers it).
    pub details: String,
    #[serde(skip)]
    pub prev_hash: Vec<u8>,
    #[serde(skip)]
    pub hash: Vec<u8>,
}

/// What a walk along the audit chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCheck {
    pub ok: bool,
    /// Events checked.
    pub events: u64,
    /// The `seq` of the first event that was edited, or that follows a
    /// deleted one; for a deletion at the end, the head's `seq`.
    pub first_bad_event: Option<i64>,
}

/// Walks a stretch of the chain in `seq` order. `previous` is the last
/// checked event's `(seq, hash)` (`(0, GENESIS)` at the start); returns the
/// first bad `seq`, if any, and the new `previous`.
pub fn check_chain_segment(
    events: &[StoredAuditEvent],
    mut previous: (i64, Vec<u8>),
) -> (Option<i64>, (i64, Vec<u8>)) {
    for event in events {
        let linked = event.seq == previous.0 + 1 && event.prev_hash == previous.1;
        let fields = ChainedFields {
            seq: event.seq,
            at_millis: event.at.timestamp_millis(),
            actor_kind: &event.actor_kind,
            actor_id: event.actor_id,
            action: &event.action,
            account_id: event.account_id,
            patient_id: event.patient_id,
            ip: event.ip.as_deref(),
            outcome: &event.outcome,
            details: &event.details,
            prev_hash: &event.prev_hash,
        };
        if !linked || chain_hash(&fields).as_slice() != event.hash.as_slice() {
            return (Some(event.seq), previous);
        }
        previous = (event.seq, event.hash.clone());
    }
    (None, previous)
}

/// Where a chain walk starts.
pub fn chain_start() -> (i64, Vec<u8>) {
    (0, GENESIS_HASH.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn chain(n: i64) -> Vec<StoredAuditEvent> {
        let mut previous = GENESIS_HASH.to_vec();
        (1..=n)
            .map(|seq| {
                let at = Utc.timestamp_millis_opt(1_700_000_000_000 + seq).unwrap();
                let details = format!(r#"{{"n":{seq}}}"#);
                let hash = chain_hash(&ChainedFields {
                    seq,
                    at_millis: at.timestamp_millis(),
                    actor_kind: "system",
                    actor_id: None,
                    action: "account.unlocked",
                    account_id: None,
                    patient_id: None,
                    ip: None,
                    outcome: "success",
                    details: &details,
                    prev_hash: &previous,
                });
                let event = StoredAuditEvent {
                    seq,
                    at,
                    actor_kind: "system".into(),
                    actor_id: None,
                    action: "account.unlocked".into(),
                    account_id: None,
                    patient_id: None,
                    ip: None,
                    outcome: "success".into(),
                    details,
                    prev_hash: previous.clone(),
                    hash: hash.to_vec(),
                };
                previous = hash.to_vec();
                event
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_checks_and_an_edit_or_deletion_is_named() {
        let events = chain(5);
        assert_eq!(check_chain_segment(&events, chain_start()).0, None);
        let mut edited = events.clone();
        edited[2].outcome = "failure".into();
        assert_eq!(check_chain_segment(&edited, chain_start()).0, Some(3));
        let mut deleted = events.clone();
        deleted.remove(1);
        assert_eq!(check_chain_segment(&deleted, chain_start()).0, Some(3));
        let (bad, last) = check_chain_segment(&events[..2], chain_start());
        assert_eq!(bad, None);
        assert_eq!(
            check_chain_segment(&events[2..], last).0,
            None,
            "walks in stretches"
        );
    }

    #[test]
    fn roles_reach_their_areas_only() {
        assert!(StaffRole::FrontDesk.may(Area::Patients));
        assert!(!StaffRole::FrontDesk.may(Area::Admin));
        assert!(!StaffRole::FrontDesk.may(Area::Audit));
        assert!(StaffRole::PortalAdmin.may(Area::Admin));
        assert!(StaffRole::Auditor.may(Area::Audit));
        assert!(!StaffRole::Auditor.may(Area::Patients));
    }

    #[test]
    fn an_attestation_of_other_needs_a_note() {
        let other = Verification {
            method: VerificationMethod::Other,
            note: Some("  ".into()),
        };
        assert!(other.problem().is_some());
        let photo = Verification {
            method: VerificationMethod::PhotoId,
            note: None,
        };
        assert_eq!(photo.problem(), None);
    }
}
