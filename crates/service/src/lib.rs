//! CareKey's use cases. Each public function is one step a person takes — sign
//! in, sign out, unlock an account — run against the injected store, clock and
//! password hasher, with the organisation's policy read fresh from storage.

pub mod accounts;
pub mod answer_floor;
pub mod contacts;
mod deadline;
pub mod enrollment;
pub mod hashing;
pub mod messages;
pub mod notices;
pub mod passwords;
pub mod recovery;
pub mod sessions;
pub mod signin;
pub mod staff;

use carekey_domain::clock::Clock;
use carekey_domain::ports::{Store, StoreError};
use hashing::PasswordHasher;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What every use case runs against.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub hasher: PasswordHasher,
    pub settings: Arc<ServiceSettings>,
    /// How long the answers that must not tell whether an account matched
    /// wait: `settings.answer_floor`, raised when lone requests run slower.
    pub floors: Arc<answer_floor::AnswerFloors>,
}

/// What use cases need from configuration.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The portal's public address, the only base for links in messages
    /// (never a request's Host header). No trailing slash.
    pub public_url: String,
    /// Region for phone numbers typed without a country code (ISO 3166).
    pub default_region: String,
    /// The identifier system of MRNs in FHIR imports, besides those typed `MR`.
    pub fhir_mrn_system: Option<String>,
    /// The least time a recovery request (or a request for an activation
    /// code) takes to answer, so that the time never tells whether an account
    /// matched: longer than the database work of one request ever takes
    /// (raised while it is not: [`answer_floor`]).
    pub answer_floor: std::time::Duration,
}

impl ServiceSettings {
    pub fn new(public_url: &str, default_region: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            default_region: default_region.to_owned(),
            fhir_mrn_system: None,
            answer_floor: carekey_domain::recovery::ANSWER_FLOOR,
        }
    }

    /// An absolute link to `path` (which starts with `/`) on the portal.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }
}

/// Where a request came from, for audit events and session records.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Why a use case did not do what was asked. The web layer maps each variant to
/// one status and error code (API.md) in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Wrong password, unknown login, locked or disabled account: one answer for all.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No live session.
    #[error("not signed in")]
    Unauthenticated,
    /// Input that cannot be taken, with the reason per field.
    #[error("invalid request")]
    InvalidRequest(BTreeMap<String, String>),
    /// The new password and its confirmation differ.
    #[error("the passwords do not match")]
    PasswordMismatch,
    /// The new password breaks these rules of the organisation's policy.
    #[error("the password breaks the policy")]
    PasswordPolicy(Vec<carekey_domain::password_rules::Rule>),
    /// A unique value (`mrn`, `username`) is taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// Too many requests for one key; try again after this many seconds.
    #[error("rate limited")]
    RateLimited { retry_after_seconds: i64 },
    /// A wrong code; `attempts_left` only where telling it reveals nothing.
    #[error("invalid code")]
    InvalidCode { attempts_left: Option<u32> },
    /// The recovery flow is expired, used up, revoked or unknown.
    #[error("the recovery flow has ended")]
    FlowExpired,
    /// A staff session that must enrol a second factor before anything else.
    #[error("TOTP enrolment required")]
    TotpEnrollmentRequired,
    /// The staff member's role does not reach this.
    #[error("forbidden")]
    Forbidden,
    /// The reset (or enrollment) token is expired, used, revoked or unknown.
    #[error("the token is invalid or expired")]
    TokenExpired,
    /// Storage or hashing failed; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A single-field validation error.
    pub fn invalid(field: &str, why: impl Into<String>) -> Self {
        ServiceError::InvalidRequest(BTreeMap::from([(field.to_owned(), why.into())]))
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => ServiceError::Conflict(what),
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Backend(message) => ServiceError::Internal(message),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// The per-client-address limit on an anonymous or code-sending request,
/// counted apart for each `what` (`recovery`, `enrollment`, …): the policy's
/// recovery allowance per 15 minutes (an IPv6 client counted by its /64).
pub(crate) fn per_address_limit(
    what: &str,
    policy: &carekey_domain::policy::Policy,
    client: &ClientInfo,
) -> carekey_domain::rate_limit::RateLimit {
    carekey_domain::rate_limit::RateLimit::new(
        format!(
            "{what}:ip:{}",
            carekey_domain::rate_limit::client_key(client.ip.as_deref())
        ),
        policy.recovery.per_ip_per_15_minutes,
        chrono::Duration::minutes(15),
    )
}

impl From<carekey_domain::rate_limit::RetryAfter> for ServiceError {
    fn from(wait: carekey_domain::rate_limit::RetryAfter) -> Self {
        ServiceError::RateLimited {
            retry_after_seconds: wait.seconds(),
        }
    }
}
