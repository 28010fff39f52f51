//! Ports: what the use cases need from storage, one trait per aggregate.
//!
//! Each method that changes state is one transaction in the implementation,
//! holding the change together with its audit event, so a crash leaves either
//! all of a step or none of it.

use crate::audit::AuditEvent;
use crate::identifiers::{Login, Username};
use crate::ids::{AccountId, MessageId, PatientId};
use crate::lockout::FailureOutcome;
use crate::message::{MessageData, MessageRecord, MessageStatus, NewMessage};
use crate::model::{
    AccountForSignIn, NewAccount, NewPatient, NewStaff, SessionOwner, SessionRecord,
};
use crate::policy::{LockoutPolicy, Policy};
use crate::session::SessionExpiry;
use crate::token::TokenHash;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Why storage could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value is already taken (`what` names it: "mrn", "username").
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// The database failed; the message is for logs, never for clients.
    #[error("storage failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A session about to be stored: only the hash of its id is kept.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: TokenHash,
    pub owner: SessionOwner,
    pub created_at: DateTime<Utc>,
    pub expiry: SessionExpiry,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An account's password, history and personal details, for a password change.
#[derive(Debug, Clone)]
pub struct PasswordContext {
    pub patient_id: PatientId,
    pub password_hash: String,
    /// The newest `history` previous hashes, the current one first.
    pub history: Vec<String>,
    pub personal: crate::password_rules::PersonalInfo,
    pub language: crate::model::Language,
    /// Verified contacts: (`email` or `phone`, value).
    pub verified_contacts: Vec<(String, String)>,
}

/// A new password for an account, and what goes with it.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub account: AccountId,
    pub password_hash: String,
    pub at: DateTime<Utc>,
    /// The session the change was made from, which stays signed in.
    pub keep_session: Option<TokenHash>,
    pub notices: Vec<NewMessage>,
}

#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The organisation's policy; the defaults when none was saved.
    async fn load_policy(&self) -> StoreResult<Policy>;
    async fn save_policy(&self, policy: &Policy, audit: AuditEvent) -> StoreResult<()>;
}

#[async_trait]
pub trait PatientStore: Send + Sync {
    async fn create_patient(
        &self,
        patient: &NewPatient,
        audit: AuditEvent,
    ) -> StoreResult<PatientId>;
    async fn find_patient_by_mrn(&self, mrn: &str) -> StoreResult<Option<PatientId>>;
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_account(
        &self,
        account: &NewAccount,
        audit: AuditEvent,
    ) -> StoreResult<AccountId>;

    /// Accounts a sign-in login could mean: one per username; for an email, every
    /// account whose patient has that email on file (a family may share one).
    async fn find_accounts_for_sign_in(&self, login: &Login) -> StoreResult<Vec<AccountForSignIn>>;

    /// Counts one failed password against the account under a row lock, applies
    /// the lockout policy, and records the audit event (and the lock's, if any).
    async fn record_sign_in_failure(
        &self,
        account: AccountId,
        policy: &LockoutPolicy,
        audit: AuditEvent,
    ) -> StoreResult<FailureOutcome>;

    /// Clears the failure count, stamps the sign-in time and stores the new
    /// session, with its audit event, in one transaction. `false` when the account
    /// was locked or disabled meanwhile: then nothing is stored.
    async fn complete_sign_in(&self, session: &NewSession, audit: AuditEvent) -> StoreResult<bool>;

    /// What a password change needs to know about the account, in one read.
    async fn password_context(
        &self,
        account: AccountId,
        history: u32,
    ) -> StoreResult<PasswordContext>;

    /// Sets a new password in one transaction: the hash and its history entry,
    /// every session but `keep_session` revoked, the notices queued, the audit
    /// event written.
    async fn change_password(&self, change: &PasswordChange, audit: AuditEvent) -> StoreResult<()>;

    /// Stops the account from signing in and ends its sessions. `NotFound` for an
    /// unknown username.
    async fn disable_account(
        &self,
        username: &Username,
        reason: &str,
        audit: AuditEvent,
    ) -> StoreResult<AccountId>;

    /// Lifts any lock and clears the counters. `NotFound` for an unknown username.
    async fn unlock_account(
        &self,
        username: &Username,
        audit: AuditEvent,
    ) -> StoreResult<AccountId>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn find_session(&self, id_hash: &TokenHash) -> StoreResult<Option<SessionRecord>>;
    async fn touch_session(
        &self,
        id_hash: &TokenHash,
        expiry: &SessionExpiry,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Ends one session; returns whether a live one was ended.
    async fn revoke_session(&self, id_hash: &TokenHash, audit: AuditEvent) -> StoreResult<bool>;
}

#[async_trait]
pub trait StaffStore: Send + Sync {
    async fn create_staff(&self, staff: &NewStaff, audit: AuditEvent) -> StoreResult<()>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event that has no state change of its own (a failed sign-in
    /// for an unknown login, say).
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()>;
    /// How many events of one action exist; for tests and reports.
    async fn count_audit(&self, action: &str) -> StoreResult<i64>;
}

/// The outbox: messages written with the change that caused them, claimed by
/// delivery workers under a lease so no two workers send one message.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues messages on their own (use cases queue theirs inside their own transaction).
    async fn enqueue_messages(
        &self,
        messages: &[NewMessage],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Takes up to `limit` due messages (queued and due, or `sending` with an
    /// expired lease), marks them `sending` under `owner`'s lease until
    /// `lease_until`, and counts the attempt.
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: uuid::Uuid,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>>;

    /// Records a successful hand-off; the stored data loses its secrets.
    /// `false` when `owner` no longer holds the lease.
    async fn record_sent(
        &self,
        id: MessageId,
        owner: uuid::Uuid,
        provider_id: Option<&str>,
        kept_data: &MessageData,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Records a failed attempt: queued again at `retry_at`, or `failed` when `None`.
    async fn record_send_failure(
        &self,
        id: MessageId,
        owner: uuid::Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Applies a provider's later report (delivered, bounced) to the message it sent.
    async fn record_provider_status(
        &self,
        provider_id: &str,
        status: MessageStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    async fn message(&self, id: MessageId) -> StoreResult<Option<MessageRecord>>;

    /// The newest messages, optionally of one status.
    async fn list_messages(
        &self,
        status: Option<MessageStatus>,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>>;

    /// Puts a `failed` message back in the queue with a fresh set of attempts.
    async fn requeue_message(&self, id: MessageId, now: DateTime<Utc>) -> StoreResult<bool>;
}

/// Everything the service needs from storage.
#[async_trait]
pub trait Store:
    PolicyStore + PatientStore + AccountStore + SessionStore + StaffStore + AuditStore + OutboxStore
{
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// The account's lock counters as stored, for reports and tests.
    async fn lock_state(&self, account: AccountId) -> StoreResult<crate::lockout::LockState>;
}
