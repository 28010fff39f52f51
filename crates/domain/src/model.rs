//! The records CareKey keeps about people: patients, their portal accounts and
//! contacts, and staff users.

use crate::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use crate::ids::{AccountId, PatientId, StaffId};
use crate::lockout::LockState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The languages CareKey speaks; anything else falls back to English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Es,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Es];

    pub fn code(&self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Es => "es",
        }
    }

    /// Reads a BCP 47 tag (`es`, `es-MX`, `ES`); `None` for a language we lack.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Language::En),
            "es" => Some(Language::Es),
            _ => None,
        }
    }
}

/// A patient record as staff or the EHR entered it.
#[derive(Debug, Clone)]
pub struct NewPatient {
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: DateOfBirth,
    pub postal_code: Option<String>,
    /// The patient's language as recorded (a BCP 47 tag), kept even when we lack it.
    pub preferred_language: Option<String>,
    /// Contacts that came from staff or the EHR are verified by them.
    pub email: Option<Email>,
    pub phone: Option<PhoneE164>,
}

/// Whether a portal account may be used at all (locks are separate, and timed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }
}

impl FromStr for AccountStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(AccountStatus::Active),
            "disabled" => Ok(AccountStatus::Disabled),
            other => Err(format!("unknown account status {other:?}")),
        }
    }
}

/// A new portal account for a patient.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub patient_id: PatientId,
    pub username: Username,
    /// An Argon2id PHC string; never a password.
    pub password_hash: String,
}

/// What sign-in needs to know about an account.
#[derive(Debug, Clone)]
pub struct AccountForSignIn {
    pub id: AccountId,
    pub patient_id: PatientId,
    pub username: String,
    pub status: AccountStatus,
    pub password_hash: String,
    pub lock: LockState,
}

/// A staff member's role (API.md: staff section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    FrontDesk,
    PortalAdmin,
    Auditor,
}

impl StaffRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            StaffRole::FrontDesk => "front_desk",
            StaffRole::PortalAdmin => "portal_admin",
            StaffRole::Auditor => "auditor",
        }
    }
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StaffRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "front_desk" => Ok(StaffRole::FrontDesk),
            "portal_admin" => Ok(StaffRole::PortalAdmin),
            "auditor" => Ok(StaffRole::Auditor),
            other => Err(format!(
                "unknown role {other:?}: choose front_desk, portal_admin or auditor"
            )),
        }
    }
}

/// A new staff user.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub id: StaffId,
    pub username: Username,
    pub role: StaffRole,
    pub password_hash: String,
}

/// Who a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOwner {
    Patient(AccountId),
    Staff(StaffId),
}

/// A live or dead session as stored, with what pages need about its owner.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub owner: SessionOwner,
    pub expiry: crate::session::SessionExpiry,
    pub last_seen_at: DateTime<Utc>,
    pub revoked: bool,
    pub username: String,
    /// The patient's first name (patients only).
    pub given_name: Option<String>,
    pub preferred_language: Option<Language>,
    /// When the patient's password was last set (patients only).
    pub password_changed_at: Option<DateTime<Utc>>,
}
