//! CareKey's use cases. Each public function is one step a person takes — sign
//! in, sign out, unlock an account — run against the injected store, clock and
//! password hasher, with the organisation's policy read fresh from storage.

pub mod accounts;
pub mod hashing;
pub mod messages;
pub mod passwords;
pub mod sessions;
pub mod signin;

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
