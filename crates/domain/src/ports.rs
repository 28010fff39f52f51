//! Ports: what the use cases need from storage, one trait per aggregate.
//!
//! Each method that changes state is one transaction in the implementation,
//! holding the change together with its audit event, so a crash leaves either
//! all of a step or none of it.

use crate::audit::AuditEvent;
use crate::identifiers::{Login, Username};
use crate::ids::{AccountId, FlowId, MessageId, PatientId};
use crate::lockout::FailureOutcome;
use crate::message::Channel;
use crate::message::{MessageData, MessageRecord, MessageStatus, NewMessage};
use crate::model::{
    AccountForSignIn, NewAccount, NewPatient, NewStaff, SessionOwner, SessionRecord,
};
use crate::policy::{LockoutPolicy, Policy};
use crate::rate_limit::{RateLimit, RetryAfter};
use crate::recovery::{Anchor, AttemptOutcome, Purpose, RecoveryCandidate};
use crate::session::SessionExpiry;
use crate::token::TokenHash;
use crate::token::TokenPurpose;
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

impl PasswordContext {
    /// Where notices about this account go.
    pub fn notice_contacts(&self) -> NoticeContacts {
        NoticeContacts {
            patient_id: self.patient_id,
            given_name: self.personal.given_name.clone().unwrap_or_default(),
            language: self.language,
            verified: self.verified_contacts.clone(),
        }
    }
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

/// Where to tell an account holder about something that happened to the
/// account, and how to address them.
#[derive(Debug, Clone)]
pub struct NoticeContacts {
    pub patient_id: PatientId,
    pub given_name: String,
    pub language: crate::model::Language,
    /// Verified contacts: (`email` or `phone`, value).
    pub verified: Vec<(String, String)>,
}

/// A single-use secret about to be stored (only its hash).
#[derive(Debug, Clone)]
pub struct NewToken {
    pub hash: TokenHash,
    pub purpose: TokenPurpose,
    pub account: Option<AccountId>,
    pub patient: Option<PatientId>,
    pub flow: Option<FlowId>,
    /// Failed redemptions allowed (staff and activation codes).
    pub attempts: Option<u32>,
    pub expires_at: DateTime<Utc>,
}

/// One destination of a recovery flow: the accounts it covers, the code sent
/// there (as a hash), the reset links minted for it, and the message itself.
#[derive(Debug, Clone)]
pub struct FlowParcel {
    pub recipient: String,
    pub accounts: Vec<(AccountId, PatientId)>,
    pub code_hash: Option<TokenHash>,
    pub links: Vec<NewToken>,
    pub message: NewMessage,
    /// Built for a request that matched nothing: storage runs the very same
    /// statements with a guard that stores none of it, so unknown accounts
    /// cost what known ones do.
    pub decoy: bool,
}

/// A recovery request about to be stored. A flow without parcels is a decoy.
#[derive(Debug, Clone)]
pub struct NewRecoveryFlow {
    pub id: FlowId,
    pub purpose: Purpose,
    pub channel: Channel,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub client_ip: Option<String>,
    /// [`crate::recovery::RecoveryIdentifiers::lookup_key`]: older open flows
    /// with the same key are revoked.
    pub lookup_key: TokenHash,
    pub parcels: Vec<FlowParcel>,
    /// For a contact change: the kind (`email`, `phone`) and the new value,
    /// stored on the account's patient once the code comes back.
    pub contact: Option<(String, String)>,
    /// Messages queued with the flow whatever happens (the old contact told).
    pub notices: Vec<NewMessage>,
    /// Messages one destination may receive per window; a parcel past it is
    /// dropped without a word (the answer stays the same).
    pub per_destination: RateLimit,
}

/// A recovery flow as stored, for its pages and code checks.
#[derive(Debug, Clone)]
pub struct FlowSummary {
    pub purpose: Purpose,
    pub channel: Channel,
    pub attempts_left: u32,
    pub expires_at: DateTime<Utc>,
    pub finished: bool,
    /// Replaced by a newer request, or every account it covered revoked.
    pub revoked: bool,
    /// The accounts still covered (none for a decoy): id and username.
    pub accounts: Vec<(AccountId, String)>,
}

/// A code typed for a flow, with a reset token ready for each account the
/// flow covers; storage keeps only those of the accounts the code unlocks.
#[derive(Debug, Clone)]
pub struct CodeAttempt {
    pub flow: FlowId,
    pub code_hash: Option<TokenHash>,
    pub at: DateTime<Utc>,
    pub offers: Vec<NewToken>,
}

/// What a code attempt did: its outcome and, when accepted, the accounts unlocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeAttemptResult {
    pub outcome: AttemptOutcome,
    pub accepted: Vec<AccountId>,
}

/// Whether a stored single-use token can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Usable,
    Expired,
    Used,
    Revoked,
}

/// A stored token, looked up by hash.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub account: Option<AccountId>,
    pub patient: Option<PatientId>,
    pub state: TokenState,
    pub expires_at: DateTime<Utc>,
}

/// A password set with a reset token, and everything that goes with it.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub token: TokenHash,
    pub account: AccountId,
    pub password_hash: String,
    pub at: DateTime<Utc>,
    pub notices: Vec<NewMessage>,
}

/// A staff code typed with a date of birth, with the reset token to mint if
/// both are right.
#[derive(Debug, Clone)]
pub struct StaffCodeRedemption {
    pub code_hash: TokenHash,
    pub date_of_birth: crate::identifiers::DateOfBirth,
    pub at: DateTime<Utc>,
    /// Its `account` is filled in by storage from the code.
    pub offer: NewToken,
}

/// An activation code typed with the patient's details, with the enrollment
/// token to store if they match.
#[derive(Debug, Clone)]
pub struct ActivationRedemption {
    pub code_hash: TokenHash,
    pub date_of_birth: crate::identifiers::DateOfBirth,
    /// Checked when the policy asks for it (`None` then never matches).
    pub postal_code: Option<String>,
    pub require_postal_code: bool,
    pub at: DateTime<Utc>,
    /// Its `patient` is filled in by storage from the code.
    pub offer: NewToken,
}

/// Recovery: flows, their codes, single-use tokens, and the resets they allow.
#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// Accounts a request's anchor identifier could mean (at most a few dozen),
    /// with what matching and delivery need. The same query whether or not
    /// anything matches.
    async fn find_recovery_candidates(
        &self,
        anchor: &Anchor,
    ) -> StoreResult<Vec<RecoveryCandidate>>;

    /// In one transaction: counts `limits`, and when all allow it revokes the
    /// older open flows with the same lookup key and stores the flow; for each parcel within its destination's limit, revokes the
    /// accounts' older open flows of the purpose (and, for a password, their
    /// unused reset links), stores its accounts, links and message; writes
    /// `audit`. `Err(RetryAfter)` (with only the counters and the audit event
    /// stored) when a limit refuses.
    async fn start_recovery(
        &self,
        flow: &NewRecoveryFlow,
        limits: &[RateLimit],
        audit: AuditEvent,
    ) -> StoreResult<Result<u32, RetryAfter>>;

    async fn recovery_flow(&self, flow: FlowId) -> StoreResult<Option<FlowSummary>>;

    /// Deletes rate-limit counters whose window began before `before`; how many.
    async fn purge_rate_limits(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Counts each limit once, in one transaction; the longest wait among
    /// those that refuse.
    async fn hit_rate_limits(
        &self,
        limits: &[RateLimit],
        at: DateTime<Utc>,
    ) -> StoreResult<Option<RetryAfter>>;

    /// Checks a code under the flow's row lock: counts the attempt, closes the
    /// flow when accepted or out of attempts, and stores the offered reset
    /// tokens of the accounts the code unlocks.
    async fn attempt_recovery_code(
        &self,
        attempt: &CodeAttempt,
        audit: AuditEvent,
    ) -> StoreResult<CodeAttemptResult>;

    async fn token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<TokenRecord>>;

    /// Uses a reset token and sets the password, in one transaction: the token
    /// is consumed only if still usable (`false` otherwise, and nothing
    /// changes); the password and its history entry are written, the lock is
    /// cleared, every session, open flow and other token of the account is
    /// revoked, the notices are queued and the audit event written.
    async fn reset_password(&self, reset: &PasswordReset, audit: AuditEvent) -> StoreResult<bool>;

    /// Redeems an activation code under its row lock after counting `limits`:
    /// a wrong birth date or postal code spends one of the code's attempts.
    /// Accepted (the patient has no account yet): the code is used and the
    /// offered enrollment token stored; the patient and their given name.
    async fn redeem_activation(
        &self,
        redemption: &ActivationRedemption,
        limits: &[RateLimit],
        audit: AuditEvent,
    ) -> StoreResult<Result<Option<(PatientId, String)>, RetryAfter>>;

    /// Uses an enrollment token and creates the account, in one transaction:
    /// `false` when the token is not usable; `Conflict("username")` when the
    /// username is taken (then nothing is stored and the token still works).
    /// `new_contacts` (`email`/`phone`, value) are added unverified where the
    /// patient has none of that kind.
    async fn complete_enrollment(
        &self,
        token: &TokenHash,
        account: &NewAccount,
        new_contacts: &[(String, String)],
        audit: AuditEvent,
    ) -> StoreResult<bool>;

    /// Stores a new staff code for an account, revoking its older ones.
    async fn issue_staff_code(
        &self,
        code: &NewToken,
        notices: &[NewMessage],
        audit: AuditEvent,
    ) -> StoreResult<()>;

    /// Redeems a staff code under its row lock after counting `limits`: a
    /// wrong date of birth spends one of the code's attempts. `Ok(Ok(Some))`
    /// with the account and its username when accepted (the offered reset
    /// token is then stored); `Ok(Ok(None))` for any failure.
    async fn redeem_staff_code(
        &self,
        redemption: &StaffCodeRedemption,
        limits: &[RateLimit],
        audit: AuditEvent,
    ) -> StoreResult<Result<Option<(AccountId, String)>, RetryAfter>>;
}

/// What a patient search looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientQuery {
    /// A medical record number, exactly.
    Mrn(String),
    DateOfBirth(crate::identifiers::DateOfBirth),
    /// The start of a family or given name (case-insensitive).
    Name(String),
}

/// The staff console: staff sign-in and second factor, staff accounts,
/// patient records and the assisted actions, and reading the audit trail.
#[async_trait]
pub trait StaffConsoleStore: Send + Sync {
    async fn find_staff_for_sign_in(
        &self,
        username: &Username,
    ) -> StoreResult<Option<crate::staff::StaffForSignIn>>;

    /// Counts a failed staff sign-in under a row lock, applying the lockout policy.
    async fn record_staff_sign_in_failure(
        &self,
        staff: crate::ids::StaffId,
        policy: &LockoutPolicy,
        audit: AuditEvent,
    ) -> StoreResult<FailureOutcome>;

    /// Clears the failures, remembers the TOTP step used (a code works once)
    /// and stores the session; `false` when the user was disabled or locked
    /// meanwhile, or the step was already used.
    async fn complete_staff_sign_in(
        &self,
        session: &NewSession,
        totp_step: Option<u64>,
        audit: AuditEvent,
    ) -> StoreResult<bool>;

    async fn staff_member(
        &self,
        staff: crate::ids::StaffId,
    ) -> StoreResult<Option<crate::staff::StaffMember>>;

    /// Stores a new, unconfirmed TOTP secret.
    async fn set_totp_secret(
        &self,
        staff: crate::ids::StaffId,
        secret: &str,
        audit: AuditEvent,
    ) -> StoreResult<()>;

    /// Marks the secret confirmed with the step of the code that proved it.
    async fn confirm_totp(
        &self,
        staff: crate::ids::StaffId,
        step: u64,
        audit: AuditEvent,
    ) -> StoreResult<()>;

    async fn list_staff(&self) -> StoreResult<Vec<crate::staff::StaffMember>>;

    /// Every patient without a portal account, oldest record first.
    async fn patients_without_account(&self) -> StoreResult<Vec<PatientId>>;

    /// Disables a staff user and ends their sessions; `false` for an unknown id.
    async fn disable_staff(
        &self,
        staff: crate::ids::StaffId,
        audit: AuditEvent,
    ) -> StoreResult<bool>;

    async fn search_patients(
        &self,
        query: &PatientQuery,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::staff::PatientSummary>>;

    async fn patient_record(
        &self,
        patient: PatientId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<crate::staff::PatientRecord>>;

    /// Stores a reset token and its message for an account, revoking the
    /// account's older unused reset tokens, with the audit event.
    async fn issue_reset_link(
        &self,
        token: &NewToken,
        message: &NewMessage,
        audit: AuditEvent,
    ) -> StoreResult<()>;

    /// Replaces a patient's email and/or phone (`Some(None)` removes it); the
    /// new values are verified by staff. Notices (to the old contacts) are
    /// queued with the change. Only if each contact being replaced still
    /// holds the value in `seen` (what the notices were written for): `false`,
    /// with nothing changed, when someone else changed it first.
    async fn update_contacts(
        &self,
        patient: PatientId,
        seen: &SeenContacts,
        email: Option<Option<String>>,
        phone: Option<Option<String>>,
        notices: &[NewMessage],
        audit: AuditEvent,
    ) -> StoreResult<bool>;

    /// Stores a new activation code for a patient, voiding the older ones,
    /// with its invitation message (none when printed) and the audit event.
    async fn issue_activation(
        &self,
        code: &NewToken,
        message: Option<&NewMessage>,
        audit: AuditEvent,
    ) -> StoreResult<()>;

    /// Audit events, newest first, optionally about one patient and since a time.
    async fn list_audit(
        &self,
        patient: Option<PatientId>,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> StoreResult<Vec<crate::staff::StoredAuditEvent>>;

    /// Up to `limit` events after `after_seq`, in order, for the chain check.
    async fn audit_segment(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<crate::staff::StoredAuditEvent>>;

    /// The chain head: the last event's `seq` and hash.
    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>)>;
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

    /// Creates or updates (by MRN) every patient in one transaction, contacts
    /// verified by the EHR; returns how many were created and updated.
    /// `progress` hears how many patients are written so far.
    async fn import_patients(
        &self,
        patients: &[NewPatient],
        audit: AuditEvent,
        progress: Option<&(dyn Fn(u64) + Send + Sync)>,
    ) -> StoreResult<(u32, u32)>;
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
    /// When the failure locks the account, `lock_notices` are queued with it.
    async fn record_sign_in_failure(
        &self,
        account: AccountId,
        policy: &LockoutPolicy,
        audit: AuditEvent,
        lock_notices: &[NewMessage],
    ) -> StoreResult<FailureOutcome>;

    /// Where to tell the account holder about the account.
    async fn notice_contacts(&self, account: AccountId) -> StoreResult<NoticeContacts>;

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
    /// every session but `keep_session` revoked, every open flow and unused
    /// token of the account revoked, the notices queued, the audit event written.
    async fn change_password(&self, change: &PasswordChange, audit: AuditEvent) -> StoreResult<()>;

    /// Stops the account from signing in and ends its sessions. `NotFound` for an
    /// unknown username.
    async fn disable_account(
        &self,
        username: &Username,
        reason: &str,
        notices: &[NewMessage],
        audit: AuditEvent,
    ) -> StoreResult<AccountId>;

    /// Lifts any lock and clears the counters. `NotFound` for an unknown username.
    async fn unlock_account(
        &self,
        username: &Username,
        notices: &[NewMessage],
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
    /// The account's newest sessions: when each began, from where, on what.
    async fn recent_sessions(
        &self,
        account: AccountId,
        limit: u32,
    ) -> StoreResult<Vec<(DateTime<Utc>, Option<String>, Option<String>)>>;

    /// Ends every session of the account but `keep`; how many ended.
    async fn revoke_other_sessions(
        &self,
        account: AccountId,
        keep: &TokenHash,
        audit: AuditEvent,
    ) -> StoreResult<u64>;

    /// Ends one session; returns whether a live one was ended.
    async fn revoke_session(&self, id_hash: &TokenHash, audit: AuditEvent) -> StoreResult<bool>;

    /// Ends every live session of one patient account, or of everyone
    /// (patients and staff) when `account` is `None`; how many ended.
    async fn revoke_all_sessions(
        &self,
        account: Option<AccountId>,
        audit: AuditEvent,
    ) -> StoreResult<u64>;
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
    PolicyStore
    + PatientStore
    + AccountStore
    + SessionStore
    + StaffStore
    + AuditStore
    + OutboxStore
    + RecoveryStore
    + StaffConsoleStore
{
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// The account's lock counters as stored, for reports and tests.
    async fn lock_state(&self, account: AccountId) -> StoreResult<crate::lockout::LockState>;
}

/// A patient's email and phone as read before a change was decided on; the
/// change is applied only if they are still the same (no lost update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenContacts {
    pub email: Option<String>,
    pub phone: Option<String>,
}
