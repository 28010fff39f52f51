//! The storage suite: every test runs on SQLite and again on a fresh PostgreSQL
//! database, so both backends keep the same promises.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::{DateOfBirth, Email, Login, Username};
use carekey_domain::ids::PatientId;
use carekey_domain::ids::{FlowId, MessageId};
use carekey_domain::lockout::FailureOutcome;
use carekey_domain::message::{Channel, MessageData, MessageKind, MessageStatus, NewMessage};
use carekey_domain::model::{Language, NewAccount, NewPatient, SessionOwner};
use carekey_domain::policy::{LockoutPolicy, Policy};
use carekey_domain::ports::{FlowParcel, NewRecoveryFlow};
use carekey_domain::ports::{NewSession, NewToken, Store, StoreError, TokenState};
use carekey_domain::rate_limit::RateLimit;
use carekey_domain::recovery::Purpose;
use carekey_domain::session::SessionExpiry;
use carekey_domain::token::{OpaqueToken, TokenHash, TokenPurpose};
use carekey_store::testing::{fresh_postgres_url, fresh_sqlite_url};
use carekey_store::{connect, StoreOptions};
use chrono::{Duration, TimeZone, Utc};
use std::sync::Arc;

struct Db {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Option<Db> {
    let dir = tempfile::tempdir().unwrap();
    let store = connect(&fresh_sqlite_url(dir.path()), &StoreOptions::default())
        .await
        .unwrap();
    Some(Db {
        store,
        _dir: Some(dir),
    })
}

async fn postgres() -> Option<Db> {
    let url = fresh_postgres_url("store suite").await?;
    let store = connect(&url, &StoreOptions::default()).await.unwrap();
    Some(Db { store, _dir: None })
}

/// Runs each listed test body against both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { if let Some(db) = super::sqlite().await { super::$name(db.store.clone()).await } } )* }
        mod on_postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { if let Some(db) = super::postgres().await { super::$name(db.store.clone()).await } } )* }
    };
}

on_both_backends!(
    policy_defaults_until_saved_then_round_trips,
    a_second_patient_with_the_same_mrn_is_a_conflict,
    accounts_are_found_by_username_and_by_email,
    a_taken_username_is_a_conflict,
    concurrent_failures_are_all_counted,
    concurrent_failures_lock_the_account_exactly_once,
    sessions_are_stored_hashed_touched_and_revoked,
    concurrent_audit_appends_each_get_their_own_place_in_the_chain,
    concurrent_claims_never_take_one_message_twice,
    a_lapsed_lease_lets_another_worker_take_over,
    failures_retry_then_fail_and_can_be_requeued,
    provider_reports_move_sent_messages_forward_only,
    writes_abandoned_midway_leave_the_store_usable,
    concurrent_recovery_requests_share_transactions_but_count_exactly,
    a_failing_recovery_request_does_not_fail_its_batch,
    batched_requests_count_a_destination_only_for_requests_let_through,
    batched_requests_for_one_account_leave_only_the_newest_open,
    batched_requests_with_one_lookup_key_leave_only_the_newest_open,
    thousands_of_messages_queue_in_one_change,
    rate_limits_refuse_past_the_limit_until_the_window_passes,
    concurrent_rate_limit_hits_let_exactly_the_limit_through,
    a_counter_key_of_any_text_counts_alike_batched_and_alone,
    recovery_batches_and_other_audit_writes_share_one_chain,
);

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
}

fn event(action: AuditAction) -> AuditEvent {
    AuditEvent::new(at(), Actor::System, action, Outcome::Success)
}

fn patient(mrn: &str, email: &str) -> NewPatient {
    NewPatient {
        mrn: mrn.into(),
        given_name: "Maria".into(),
        family_name: "García López".into(),
        date_of_birth: DateOfBirth::parse("1958-03-14").unwrap(),
        postal_code: Some("78205".into()),
        preferred_language: Some("es".into()),
        email: Some(Email::parse(email).unwrap()),
        phone: Some(carekey_domain::identifiers::PhoneE164::parse("(210) 555-0142", "US").unwrap()),
    }
}

async fn patient_with_account(
    store: &Arc<dyn Store>,
    mrn: &str,
    username: &str,
    email: &str,
) -> (PatientId, carekey_domain::ids::AccountId) {
    let patient_id = store
        .create_patient(&patient(mrn, email), event(AuditAction::PatientCreated))
        .await
        .unwrap();
    let account = NewAccount {
        patient_id,
        username: Username::parse(username).unwrap(),
        password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
    };
    let account_id = store
        .create_account(&account, event(AuditAction::AccountCreated))
        .await
        .unwrap();
    (patient_id, account_id)
}

async fn policy_defaults_until_saved_then_round_trips(store: Arc<dyn Store>) {
    assert_eq!(store.load_policy().await.unwrap(), Policy::default());
    let mut policy = Policy::default();
    policy.lockout.max_failures = 7;
    policy.password.max_age_days = Some(365);
    store
        .save_policy(&policy, event(AuditAction::PolicyChanged))
        .await
        .unwrap();
    assert_eq!(store.load_policy().await.unwrap(), policy);
    assert_eq!(store.count_audit("policy.changed").await.unwrap(), 1);
}

async fn a_second_patient_with_the_same_mrn_is_a_conflict(store: Arc<dyn Store>) {
    store
        .create_patient(
            &patient("MRN1", "a@example.com"),
            event(AuditAction::PatientCreated),
        )
        .await
        .unwrap();
    let again = store
        .create_patient(
            &patient("MRN1", "b@example.com"),
            event(AuditAction::PatientCreated),
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict("mrn"))),
        "{again:?}"
    );
    assert!(store.find_patient_by_mrn("MRN1").await.unwrap().is_some());
    assert!(store.find_patient_by_mrn("MRN2").await.unwrap().is_none());
}

async fn accounts_are_found_by_username_and_by_email(store: Arc<dyn Store>) {
    let (_, account) =
        patient_with_account(&store, "MRN1", "mariag", "mjgarcia58@example.com").await;
    let by_name = store
        .find_accounts_for_sign_in(&Login::parse("MariaG").unwrap())
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].id, account);
    let by_email = store
        .find_accounts_for_sign_in(&Login::parse("MJGarcia58@Example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].username, "mariag");
    let nobody = store
        .find_accounts_for_sign_in(&Login::parse("nobody").unwrap())
        .await
        .unwrap();
    assert!(nobody.is_empty());
}

async fn a_taken_username_is_a_conflict(store: Arc<dyn Store>) {
    patient_with_account(&store, "MRN1", "mariag", "a@example.com").await;
    let other = store
        .create_patient(
            &patient("MRN2", "b@example.com"),
            event(AuditAction::PatientCreated),
        )
        .await
        .unwrap();
    let account = NewAccount {
        patient_id: other,
        username: Username::parse("mariag").unwrap(),
        password_hash: "x".into(),
    };
    let result = store
        .create_account(&account, event(AuditAction::AccountCreated))
        .await;
    assert!(
        matches!(result, Err(StoreError::Conflict("username"))),
        "{result:?}"
    );
}

async fn concurrent_failures_are_all_counted(store: Arc<dyn Store>) {
    let (_, account) = patient_with_account(&store, "MRN1", "mariag", "a@example.com").await;
    let policy = LockoutPolicy {
        max_failures: 1000,
        ..LockoutPolicy::default()
    };
    let attempts = (0..20).map(|_| {
        let store = Arc::clone(&store);
        let policy = policy.clone();
        tokio::spawn(async move {
            let failed = AuditEvent::new(
                at(),
                Actor::Anonymous,
                AuditAction::SignInFailed,
                Outcome::Failure,
            );
            store
                .record_sign_in_failure(account, &policy, failed, &[])
                .await
                .unwrap()
        })
    });
    for attempt in attempts.collect::<Vec<_>>() {
        assert_eq!(attempt.await.unwrap(), FailureOutcome::Counted);
    }
    assert_eq!(store.lock_state(account).await.unwrap().failed_attempts, 20);
    assert_eq!(store.count_audit("sign_in.failed").await.unwrap(), 20);
}

async fn concurrent_failures_lock_the_account_exactly_once(store: Arc<dyn Store>) {
    let (_, account) = patient_with_account(&store, "MRN1", "mariag", "a@example.com").await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let failed = AuditEvent::new(
                    at(),
                    Actor::Anonymous,
                    AuditAction::SignInFailed,
                    Outcome::Failure,
                );
                store
                    .record_sign_in_failure(account, &LockoutPolicy::default(), failed, &[])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let locks = outcomes
        .iter()
        .filter(|o| matches!(o, FailureOutcome::Locked { .. }))
        .count();
    let counted = outcomes
        .iter()
        .filter(|o| **o == FailureOutcome::Counted)
        .count();
    assert_eq!((locks, counted), (1, 4), "{outcomes:?}");
    let state = store.lock_state(account).await.unwrap();
    assert_eq!(state.consecutive_lockouts, 1);
    assert_eq!(state.locked_until, Some(at() + Duration::minutes(15)));
    assert_eq!(store.count_audit("account.locked").await.unwrap(), 1);
}

async fn sessions_are_stored_hashed_touched_and_revoked(store: Arc<dyn Store>) {
    let (_, account) = patient_with_account(&store, "MRN1", "mariag", "a@example.com").await;
    let token = OpaqueToken::generate();
    let policy = Policy::default().session;
    let expiry = SessionExpiry::starting(&policy, at());
    let session = NewSession {
        id_hash: token.hash(),
        owner: SessionOwner::Patient(account),
        created_at: at(),
        expiry,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
    };
    assert!(store
        .complete_sign_in(&session, event(AuditAction::SignInSucceeded))
        .await
        .unwrap());
    let found = store.find_session(&token.hash()).await.unwrap().unwrap();
    assert_eq!(found.owner, SessionOwner::Patient(account));
    assert_eq!(found.given_name.as_deref(), Some("Maria"));
    assert_eq!(found.expiry, expiry);
    assert!(store
        .find_session(&OpaqueToken::generate().hash())
        .await
        .unwrap()
        .is_none());

    let later = at() + Duration::minutes(10);
    let touched = expiry.touched(&policy, later);
    store
        .touch_session(&token.hash(), &touched, later)
        .await
        .unwrap();
    assert_eq!(
        store
            .find_session(&token.hash())
            .await
            .unwrap()
            .unwrap()
            .expiry,
        touched
    );

    assert!(store
        .revoke_session(&token.hash(), event(AuditAction::SessionEnded))
        .await
        .unwrap());
    assert!(
        store
            .find_session(&token.hash())
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(!store
        .revoke_session(&token.hash(), event(AuditAction::SessionEnded))
        .await
        .unwrap());
}

async fn concurrent_audit_appends_each_get_their_own_place_in_the_chain(store: Arc<dyn Store>) {
    let appends: Vec<_> = (0..30)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append_audit(event(AuditAction::SignInFailed)).await })
        })
        .collect();
    for append in appends {
        append.await.unwrap().unwrap();
    }
    assert_eq!(store.count_audit("sign_in.failed").await.unwrap(), 30);
}

/// A request whose client hangs up is dropped wherever it is, even between
/// sending `BEGIN` and reading its answer; the connection must not stay in a
/// transaction nobody owns (which failed every later write on SQLite's single
/// writer connection).
async fn writes_abandoned_midway_leave_the_store_usable(store: Arc<dyn Store>) {
    for polls in 0..400usize {
        let abandoned = store.append_audit(event(AuditAction::SignInFailed));
        abandon_after(polls % 40, abandoned).await;
    }
    for _ in 0..5 {
        store
            .append_audit(event(AuditAction::SignInFailed))
            .await
            .expect("writes still work after abandoned ones");
    }
}

/// Polls `work` at most `polls` times (asking to be polled again at once
/// each time), then drops it unfinished, like a server dropping the request
/// of a client that hung up.
async fn abandon_after<F: std::future::Future>(polls: usize, work: F) {
    let mut work = std::pin::pin!(work);
    let mut left = polls;
    std::future::poll_fn(|cx| {
        if work.as_mut().poll(cx).is_ready() || left == 0 {
            return std::task::Poll::Ready(());
        }
        left -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

fn message(n: usize) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        kind: MessageKind::PasswordReset,
        channel: Channel::Email,
        recipient: format!("patient{n}@example.com"),
        language: Language::Es,
        patient_id: None,
        data: MessageData {
            code: Some("123456".into()),
            link: Some("https://portal.example/reset?token=t".into()),
            ..MessageData::default()
        },
    }
}

async fn concurrent_claims_never_take_one_message_twice(store: Arc<dyn Store>) {
    let messages: Vec<_> = (0..60).map(message).collect();
    store.enqueue_messages(&messages, at()).await.unwrap();
    let claims: Vec<_> = (0..6)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .claim_messages(at(), at() + Duration::minutes(1), uuid::Uuid::new_v4(), 15)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claim in claims {
        claimed.extend(claim.await.unwrap().into_iter().map(|m| m.id));
    }
    let unique: std::collections::HashSet<_> = claimed.iter().collect();
    assert_eq!(unique.len(), claimed.len(), "a message was claimed twice");
    assert_eq!(claimed.len(), 60);
    let first = store.message(messages[0].id).await.unwrap().unwrap();
    assert_eq!((first.status, first.attempts), (MessageStatus::Sending, 1));
    assert_eq!(first.language, Language::Es);
}

async fn a_lapsed_lease_lets_another_worker_take_over(store: Arc<dyn Store>) {
    let sent = message(1);
    store
        .enqueue_messages(std::slice::from_ref(&sent), at())
        .await
        .unwrap();
    let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    assert_eq!(
        store
            .claim_messages(at(), at() + Duration::minutes(1), first, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .claim_messages(at(), at() + Duration::minutes(1), second, 10)
        .await
        .unwrap()
        .is_empty());
    let later = at() + Duration::minutes(2);
    let taken = store
        .claim_messages(later, later + Duration::minutes(1), second, 10)
        .await
        .unwrap();
    assert_eq!(taken[0].attempts, 2);
    let kept = sent.data.redacted();
    assert!(
        !store
            .record_sent(sent.id, first, Some("x"), &kept, later)
            .await
            .unwrap(),
        "the first worker lost its lease"
    );
    assert!(store
        .record_sent(sent.id, second, Some("provider-1"), &kept, later)
        .await
        .unwrap());
    let record = store.message(sent.id).await.unwrap().unwrap();
    assert_eq!(record.status, MessageStatus::Sent);
    assert_eq!(record.provider_id.as_deref(), Some("provider-1"));
    assert_eq!(
        (record.data.code, record.data.link),
        (None, None),
        "secrets are gone once sent"
    );
}

async fn failures_retry_then_fail_and_can_be_requeued(store: Arc<dyn Store>) {
    let failing = message(1);
    store
        .enqueue_messages(std::slice::from_ref(&failing), at())
        .await
        .unwrap();
    let owner = uuid::Uuid::new_v4();
    store
        .claim_messages(at(), at() + Duration::minutes(1), owner, 10)
        .await
        .unwrap();
    let retry_at = at() + Duration::seconds(30);
    assert!(store
        .record_send_failure(
            failing.id,
            owner,
            "connection refused",
            Some(retry_at),
            at()
        )
        .await
        .unwrap());
    let queued = store.message(failing.id).await.unwrap().unwrap();
    assert_eq!(
        (queued.status, queued.next_attempt_at),
        (MessageStatus::Queued, retry_at)
    );
    assert!(
        store
            .claim_messages(at(), at() + Duration::minutes(1), owner, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    store
        .claim_messages(retry_at, retry_at + Duration::minutes(1), owner, 10)
        .await
        .unwrap();
    assert!(store
        .record_send_failure(failing.id, owner, "550 no such user", None, retry_at)
        .await
        .unwrap());
    let failed = store.message(failing.id).await.unwrap().unwrap();
    assert_eq!(failed.status, MessageStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("550 no such user"));
    assert_eq!(
        store
            .list_messages(Some(MessageStatus::Failed), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.requeue_message(failing.id, retry_at).await.unwrap());
    let again = store.message(failing.id).await.unwrap().unwrap();
    assert_eq!((again.status, again.attempts), (MessageStatus::Queued, 0));
    assert!(
        !store.requeue_message(failing.id, retry_at).await.unwrap(),
        "only failed messages are requeued"
    );
}

async fn provider_reports_move_sent_messages_forward_only(store: Arc<dyn Store>) {
    let sms = message(1);
    store
        .enqueue_messages(std::slice::from_ref(&sms), at())
        .await
        .unwrap();
    let owner = uuid::Uuid::new_v4();
    store
        .claim_messages(at(), at() + Duration::minutes(1), owner, 10)
        .await
        .unwrap();
    store
        .record_sent(sms.id, owner, Some("SM123"), &sms.data.redacted(), at())
        .await
        .unwrap();
    assert!(store
        .record_provider_status("SM123", MessageStatus::Delivered, None, at())
        .await
        .unwrap());
    assert!(!store
        .record_provider_status("SM123", MessageStatus::Sent, None, at())
        .await
        .unwrap());
    assert_eq!(
        store.message(sms.id).await.unwrap().unwrap().status,
        MessageStatus::Delivered
    );
    assert!(!store
        .record_provider_status("SM999", MessageStatus::Delivered, None, at())
        .await
        .unwrap());
}

/// A recovery request for nobody (no parcels), under the given limits.
fn recovery_flow(id: FlowId, limits_key: &str) -> (NewRecoveryFlow, Vec<RateLimit>) {
    let flow = NewRecoveryFlow {
        id,
        purpose: Purpose::Password,
        channel: Channel::Email,
        attempts: 5,
        created_at: at(),
        expires_at: at() + Duration::minutes(15),
        client_ip: Some("192.0.2.7".into()),
        lookup_key: OpaqueToken::generate().hash(),
        parcels: Vec::new(),
        contact: None,
        notices: Vec::new(),
        per_destination: RateLimit::new("test:to:", 5, Duration::hours(1)),
    };
    (
        flow,
        vec![RateLimit::new(limits_key, 5, Duration::hours(1))],
    )
}

/// Requests that arrive together are written in shared transactions (group
/// commit); each must still count against the limit on its own.
async fn concurrent_recovery_requests_share_transactions_but_count_exactly(store: Arc<dyn Store>) {
    let requests = (0..40).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let (flow, limits) = recovery_flow(FlowId::generate(), "test:one-address");
            let answer = store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
                .unwrap();
            (flow.id, answer)
        })
    });
    let answers: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let accepted: Vec<_> = answers.iter().filter(|(_, a)| a.is_ok()).collect();
    assert_eq!(accepted.len(), 5, "the limit is five: {answers:?}");
    for (id, _) in &accepted {
        assert!(
            store.recovery_flow(*id).await.unwrap().is_some(),
            "{id:?} stored"
        );
    }
    for (id, _) in answers.iter().filter(|(_, a)| a.is_err()) {
        assert!(
            store.recovery_flow(*id).await.unwrap().is_none(),
            "{id:?} refused"
        );
    }
    assert_eq!(
        store.count_audit("recovery.requested").await.unwrap(),
        40,
        "every request audited, the refused ones too"
    );
    assert_chain_links(&store).await;
}

/// One request that cannot be stored (its flow id is taken) fails alone; the
/// requests batched with it are stored.
async fn a_failing_recovery_request_does_not_fail_its_batch(store: Arc<dyn Store>) {
    let ids: Vec<FlowId> = (0..19).map(|_| FlowId::generate()).collect();
    let mut all = ids.clone();
    all.insert(10, ids[3]);
    let requests = all.into_iter().enumerate().map(|(n, id)| {
        let store = store.clone();
        tokio::spawn(async move {
            let (flow, limits) = recovery_flow(id, &format!("test:address-{n}"));
            store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
        })
    });
    let answers = futures::future::join_all(requests).await;
    let failed = answers
        .iter()
        .filter(|a| matches!(a, Ok(Err(StoreError::Backend(_)))))
        .count();
    let stored = answers
        .iter()
        .filter(|a| matches!(a, Ok(Ok(Ok(0)))))
        .count();
    assert_eq!((failed, stored), (1, 19), "{answers:?}");
    for id in &ids {
        assert!(store.recovery_flow(*id).await.unwrap().is_some());
    }
    assert_eq!(store.count_audit("recovery.requested").await.unwrap(), 19);
    assert_chain_links(&store).await;
}

/// A batch counts every request's own limits before any destination's. A
/// request its own limit refuses must not count against its destination, and
/// the destination's limit must still let exactly its allowance through.
async fn batched_requests_count_a_destination_only_for_requests_let_through(store: Arc<dyn Store>) {
    let (patient, account) =
        patient_with_account(&store, "MRN-DEST", "dana", "dana@example.com").await;
    let requests = (0..30).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let (mut flow, _) = recovery_flow(FlowId::generate(), "unused");
            flow.per_destination = RateLimit::new("test:to:", 8, Duration::hours(1));
            let mut message = message(n);
            message.recipient = "dana@example.com".into();
            flow.parcels.push(FlowParcel {
                recipient: "dana@example.com".into(),
                accounts: vec![(account, patient)],
                code_hash: None,
                links: Vec::new(),
                message,
                decoy: false,
            });
            // Every other request comes from an address with no allowance.
            let own = if n % 2 == 0 {
                RateLimit::new("test:blocked-address", 0, Duration::hours(1))
            } else {
                RateLimit::new("test:open-address", 100, Duration::hours(1))
            };
            let limits = vec![own];
            store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
                .unwrap()
        })
    });
    let answers: Vec<_> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let refused = answers.iter().filter(|a| a.is_err()).count();
    let sent = answers.iter().filter(|a| matches!(a, Ok(1))).count();
    let limited = answers.iter().filter(|a| matches!(a, Ok(0))).count();
    assert_eq!((refused, sent, limited), (15, 8, 7), "{answers:?}");
    let queued = store
        .claim_messages(at(), at() + Duration::minutes(1), uuid::Uuid::new_v4(), 100)
        .await
        .unwrap();
    assert_eq!(
        queued.len(),
        8,
        "one message per request its destination let through"
    );
    assert_eq!(store.count_audit("recovery.requested").await.unwrap(), 30);
    assert_chain_links(&store).await;
}

/// A password request for `account` with its own reset link, under a limit
/// that lets every one through; the flow and its link's hash.
fn password_request(
    patient: PatientId,
    account: carekey_domain::ids::AccountId,
    n: usize,
) -> (NewRecoveryFlow, Vec<RateLimit>, TokenHash) {
    let (mut flow, _) = recovery_flow(FlowId::generate(), "unused");
    flow.per_destination = RateLimit::new("test:to:", 1_000, Duration::hours(1));
    let link = OpaqueToken::generate().hash();
    let mut message = message(n);
    message.recipient = "ruth@example.com".into();
    flow.parcels.push(FlowParcel {
        recipient: "ruth@example.com".into(),
        accounts: vec![(account, patient)],
        code_hash: Some(OpaqueToken::generate().hash()),
        links: vec![NewToken {
            hash: link.clone(),
            purpose: TokenPurpose::Reset,
            account: Some(account),
            patient: Some(patient),
            flow: Some(flow.id),
            attempts: None,
            expires_at: at() + Duration::minutes(15),
        }],
        message,
        decoy: false,
    });
    let limits = vec![RateLimit::new(
        "test:open-address",
        1_000,
        Duration::hours(1),
    )];
    (flow, limits, link)
}

/// A newer request replaces the older ones of its account, even when they
/// share a batch: of one stored earlier and thirty sent together, exactly one
/// flow stays open, and its link is the only one still usable.
async fn batched_requests_for_one_account_leave_only_the_newest_open(store: Arc<dyn Store>) {
    let (patient, account) =
        patient_with_account(&store, "MRN-NEWEST", "ruth", "ruth@example.com").await;
    let (flow, limits, first_link) = password_request(patient, account, 0);
    store
        .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
        .await
        .unwrap()
        .unwrap();
    let mut requests = vec![(flow.id, first_link)];
    let together = (1..=30).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let (flow, limits, link) = password_request(patient, account, n);
            store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
                .unwrap()
                .unwrap();
            (flow.id, link)
        })
    });
    for request in futures::future::join_all(together).await {
        requests.push(request.unwrap());
    }
    let mut open = Vec::new();
    for (id, link) in &requests {
        let flow = store.recovery_flow(*id).await.unwrap().unwrap();
        let token = store
            .token(link, TokenPurpose::Reset, at())
            .await
            .unwrap()
            .unwrap();
        let usable = token.state == TokenState::Usable;
        assert_eq!(
            !flow.revoked, usable,
            "a flow and its link are open together: {id:?}"
        );
        if usable {
            open.push(*id);
        } else {
            assert_eq!(token.state, TokenState::Revoked);
        }
    }
    assert_eq!(open.len(), 1, "exactly one open: {open:?}");
    assert_eq!(store.count_audit("recovery.requested").await.unwrap(), 31);
    assert_chain_links(&store).await;
}

/// A recovery batch locks the audit chain's head only after its other
/// writes. Those writes' foreign-key checks wait on account rows, and a
/// sign-in holds its account's row while it waits for the head: a batch
/// holding the head by then would deadlock with it. Here a transaction holds
/// an account's row, a recovery request for that account waits on it, and
/// the transaction then asks for the head, ready to give up first (its
/// deadlock timeout is short) if the two ever wait on each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_a_recovery_batch_waiting_on_an_account_does_not_hold_the_audit_chain() {
    use sqlx::Connection;
    let Some(url) = fresh_postgres_url("store suite").await else {
        return;
    };
    let store = connect(&url, &StoreOptions::default()).await.unwrap();
    let (patient, account) =
        patient_with_account(&store, "MRN-ORDER", "olga", "olga@example.com").await;
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '10ms'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM portal_accounts WHERE id = $1 FOR UPDATE")
        .bind(account.0)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let request = {
        let store = store.clone();
        tokio::spawn(async move {
            let (flow, limits, _) = password_request(patient, account, 1);
            store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
        })
    };
    let mut watcher = sqlx::PgConnection::connect(&url).await.unwrap();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::query("SELECT seq FROM audit_chain_head WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await
        .expect("the head is free while the batch waits on the account");
    tx.commit().await.unwrap();
    assert_eq!(request.await.unwrap().unwrap(), Ok(1));
    assert_chain_links(&store).await;
}

/// A PostgreSQL store on one pooled connection, shared by the store and the
/// test, so the read counters its statements leave can be flushed and read.
async fn postgres_on_one_connection() -> Option<(Arc<dyn Store>, sqlx::PgPool)> {
    let url = fresh_postgres_url("store suite").await?;
    let options = StoreOptions {
        max_connections: 1,
        ..StoreOptions::default()
    };
    let postgres = carekey_store::PgStore::connect(&url, &options)
        .await
        .unwrap();
    let pool = postgres.pool().clone();
    Some((Arc::new(postgres), pool))
}

/// PostgreSQL's counters for `tables` so far: whole-table scans, and rows
/// read through an index.
async fn table_reads(pool: &sqlx::PgPool, tables: &[&str]) -> Vec<(String, i64, i64)> {
    let mut connection = pool.acquire().await.unwrap();
    // The counters this connection's backend still holds go out when it next
    // waits for a query; the following query's snapshot sees them.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut *connection)
        .await
        .unwrap();
    let reads = sqlx::query_as::<_, (String, i64, i64)>(
        "SELECT relname::text, seq_scan, coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables \
         WHERE relname = ANY($1) ORDER BY relname",
    )
    .bind(tables)
    .fetch_all(&mut *connection)
    .await
    .unwrap();
    assert_eq!(reads.len(), tables.len(), "{reads:?}");
    reads
}

/// A recovery batch reaches every row it touches by key, however small the
/// tables and whatever the planner's statistics: a plan that scans a whole
/// table costs more with every request stored. Forty requests for five
/// accounts (so later ones revoke earlier ones) run on a fresh database, and
/// PostgreSQL's own counters then show no table was read end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_a_recovery_batch_never_scans_a_whole_table() {
    let Some((store, pool)) = postgres_on_one_connection().await else {
        return;
    };
    let mut accounts = Vec::new();
    for n in 0..5 {
        let (mrn, username) = (format!("MRN-SCAN-{n}"), format!("scan{n}"));
        accounts.push(patient_with_account(&store, &mrn, &username, "ruth@example.com").await);
    }
    let tables = [
        "account_tokens",
        "rate_limits",
        "recovery_flow_accounts",
        "recovery_flows",
    ];
    let scans = |reads: Vec<(String, i64, i64)>| -> Vec<(String, i64)> {
        reads
            .into_iter()
            .map(|(table, scans, _)| (table, scans))
            .collect()
    };
    let before = scans(table_reads(&pool, &tables).await);
    let requests = (0..40).map(|n| {
        let store = store.clone();
        let (patient, account) = accounts[n % accounts.len()];
        tokio::spawn(async move {
            let (flow, limits, _) = password_request(patient, account, n);
            store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
                .unwrap()
                .unwrap();
        })
    });
    for request in futures::future::join_all(requests).await {
        request.unwrap();
    }
    let after = scans(table_reads(&pool, &tables).await);
    assert_eq!(after, before, "tables read end to end by the batches");
    assert_eq!(store.count_audit("recovery.requested").await.unwrap(), 40);
}

/// The outbox worker's claim reads what it takes, not the whole backlog:
/// behind 2,000 due messages a claim of 10 reads a few dozen rows at most.
/// (One `OR` of due and lapsed messages read and sorted all 2,000 each time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_a_claim_reads_what_it_takes_not_the_backlog() {
    let Some((store, pool)) = postgres_on_one_connection().await else {
        return;
    };
    let backlog: Vec<_> = (0..2_000).map(message).collect();
    store.enqueue_messages(&backlog, at()).await.unwrap();
    let before = table_reads(&pool, &["outbox_messages"]).await;
    let claimed = store
        .claim_messages(at(), at() + Duration::minutes(1), uuid::Uuid::new_v4(), 10)
        .await
        .unwrap();
    let after = table_reads(&pool, &["outbox_messages"]).await;
    assert_eq!(claimed.len(), 10);
    let first: Vec<_> = backlog[..10].iter().map(|m| m.id).collect();
    let mut taken: Vec<_> = claimed.iter().map(|m| m.id).collect();
    taken.sort_by_key(|id| first.iter().position(|f| f == id));
    assert_eq!(taken, first, "the longest waiting are taken first");
    let (scans, rows) = (after[0].1 - before[0].1, after[0].2 - before[0].2);
    assert_eq!(scans, 0, "the claim scanned the table");
    assert!(rows <= 40, "the claim read {rows} rows to take 10");
}

/// Requests with the same identifiers replace each other even when they
/// matched nobody: of thirty stand-in flows sent together, one stays open.
async fn batched_requests_with_one_lookup_key_leave_only_the_newest_open(store: Arc<dyn Store>) {
    let lookup_key = OpaqueToken::generate().hash();
    let requests = (0..30).map(|n| {
        let store = store.clone();
        let lookup_key = lookup_key.clone();
        tokio::spawn(async move {
            let (mut flow, limits) =
                recovery_flow(FlowId::generate(), &format!("test:address-{n}"));
            flow.lookup_key = lookup_key;
            store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
                .unwrap()
                .unwrap();
            flow.id
        })
    });
    let mut open = 0;
    for id in futures::future::join_all(requests).await {
        let flow = store.recovery_flow(id.unwrap()).await.unwrap().unwrap();
        open += usize::from(!flow.revoked);
    }
    assert_eq!(open, 1);
}

/// A change far larger than any one call to the database (4,000 messages,
/// 36,000 values: more than SQLite's default limit on parameters) still goes
/// in whole.
async fn thousands_of_messages_queue_in_one_change(store: Arc<dyn Store>) {
    let messages: Vec<NewMessage> = (0..4_000).map(message).collect();
    store.enqueue_messages(&messages, at()).await.unwrap();
    let queued = store
        .claim_messages(
            at(),
            at() + Duration::minutes(1),
            uuid::Uuid::new_v4(),
            5_000,
        )
        .await
        .unwrap();
    assert_eq!(queued.len(), 4_000);
}

/// Every stored event follows the one before it (numbers without gaps, each
/// naming its predecessor's hash, each hash what its fields give), the head
/// naming the last.
async fn assert_chain_links(store: &Arc<dyn Store>) {
    use carekey_domain::staff::{chain_start, check_chain_segment};
    let events = store.audit_segment(0, 10_000).await.unwrap();
    let (first_bad, _) = check_chain_segment(&events, chain_start());
    assert_eq!(first_bad, None);
    let last = events.last().unwrap();
    assert_eq!(
        store.audit_head().await.unwrap(),
        (last.seq, last.hash.clone())
    );
}

/// A fixed window: the hits past the limit are refused with the wait until
/// the window that began at the first hit has passed; then it starts over.
/// Each key counts on its own, and a call counts every key it names.
async fn rate_limits_refuse_past_the_limit_until_the_window_passes(store: Arc<dyn Store>) {
    let start = at();
    let minutes = |n: i64| start + Duration::minutes(n);
    let address = RateLimit::new("test:ip:192.0.2.1", 3, Duration::minutes(10));
    let other = RateLimit::new("test:ip:192.0.2.2", 3, Duration::minutes(10));
    for minute in 0..3 {
        let hit = store.hit_rate_limits(std::slice::from_ref(&address), minutes(minute));
        assert_eq!(
            hit.await.unwrap(),
            None,
            "hit {} is within the limit",
            minute + 1
        );
    }
    let refused = store.hit_rate_limits(std::slice::from_ref(&address), minutes(4));
    assert_eq!(
        refused.await.unwrap().map(|wait| wait.0),
        Some(Duration::minutes(6))
    );

    let both = [other.clone(), address.clone()];
    let refused = store.hit_rate_limits(&both, minutes(5)).await.unwrap();
    assert_eq!(
        refused.map(|wait| wait.0),
        Some(Duration::minutes(5)),
        "the one past its limit refuses"
    );
    for minute in [6, 7] {
        let hit = store.hit_rate_limits(std::slice::from_ref(&other), minutes(minute));
        assert_eq!(hit.await.unwrap(), None, "the other key has its own count");
    }
    let refused = store.hit_rate_limits(std::slice::from_ref(&other), minutes(8));
    assert!(refused.await.unwrap().is_some(), "and its own limit");

    let again = store.hit_rate_limits(std::slice::from_ref(&address), minutes(10));
    assert_eq!(again.await.unwrap(), None, "the window has passed");
}

/// A key is whatever text a limit is named by (on PostgreSQL a batch writes
/// its keys into its first statement's text, as hex): quotes, backslashes,
/// SQL and letters beyond ASCII count under the same key in a recovery batch
/// and in a hit on its own.
async fn a_counter_key_of_any_text_counts_alike_batched_and_alone(store: Arc<dyn Store>) {
    let key = "test:o'brien\\\"; DROP TABLE rate_limits; -- ñ 🙂";
    for n in 1..=3 {
        let (flow, limits) = recovery_flow(FlowId::generate(), key);
        let answer = store
            .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
            .await;
        assert!(matches!(answer, Ok(Ok(_))), "request {n}: {answer:?}");
    }
    // recovery_flow's limit: five an hour.
    let limit = RateLimit::new(key, 5, Duration::hours(1));
    for n in 4..=5 {
        let hit = store.hit_rate_limits(std::slice::from_ref(&limit), at());
        assert_eq!(hit.await.unwrap(), None, "hit {n} is within the limit");
    }
    let refused = store.hit_rate_limits(std::slice::from_ref(&limit), at());
    assert!(
        refused.await.unwrap().is_some(),
        "the sixth hit on the key the batches counted is refused"
    );
}

/// Recovery batches and other writes append to one audit chain at once (on
/// PostgreSQL a batch reads the head unlocked and moves it only if no other
/// writer has moved it since, else reads it again under its lock): every
/// event is stored, and the chain links.
async fn recovery_batches_and_other_audit_writes_share_one_chain(store: Arc<dyn Store>) {
    let requests = (0..60).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let (flow, limits) = recovery_flow(FlowId::generate(), &format!("test:chain-{n}"));
            store
                .start_recovery(&flow, &limits, event(AuditAction::RecoveryRequested))
                .await
        })
    });
    let appends = (0..60).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.append_audit(event(AuditAction::SignInFailed)).await })
    });
    let (requests, appends) = futures::future::join(
        futures::future::join_all(requests),
        futures::future::join_all(appends),
    )
    .await;
    for answer in requests {
        let answer = answer.unwrap();
        assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
    }
    for append in appends {
        append.unwrap().unwrap();
    }
    assert_eq!(store.count_audit("recovery.requested").await.unwrap(), 60);
    assert_eq!(store.count_audit("sign_in.failed").await.unwrap(), 60);
    assert_chain_links(&store).await;
}

/// Hits that arrive together are each counted: exactly the limit gets through.
async fn concurrent_rate_limit_hits_let_exactly_the_limit_through(store: Arc<dyn Store>) {
    let limit = RateLimit::new("test:ip:198.51.100.7", 10, Duration::hours(1));
    let hits = (0..25).map(|_| {
        let store = store.clone();
        let limit = limit.clone();
        tokio::spawn(async move { store.hit_rate_limits(&[limit], at()).await.unwrap() })
    });
    let answers = futures::future::join_all(hits).await;
    let let_through = answers
        .into_iter()
        .filter(|answer| answer.as_ref().unwrap().is_none())
        .count();
    assert_eq!(let_through, 10);
}

/// A store keeps the policy it read for a moment (each request reads it);
/// a policy saved through another store on the same database, as another
/// instance would, still takes effect there within that moment.
async fn a_policy_saved_elsewhere_takes_effect(url: &str) {
    let here = connect(url, &StoreOptions::default()).await.unwrap();
    let elsewhere = connect(url, &StoreOptions::default()).await.unwrap();
    assert_eq!(here.load_policy().await.unwrap(), Policy::default());
    let mut policy = Policy::default();
    policy.lockout.max_failures = 7;
    elsewhere
        .save_policy(&policy, event(AuditAction::PolicyChanged))
        .await
        .unwrap();
    assert_eq!(elsewhere.load_policy().await.unwrap(), policy);
    // Kept for one second at most: five are ample.
    for _ in 0..50 {
        if here.load_policy().await.unwrap() == policy {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a policy saved on another store never took effect here");
}

#[tokio::test]
async fn on_sqlite_a_policy_saved_elsewhere_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    a_policy_saved_elsewhere_takes_effect(&fresh_sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn on_postgres_a_policy_saved_elsewhere_takes_effect() {
    if let Some(url) = fresh_postgres_url("policy elsewhere").await {
        a_policy_saved_elsewhere_takes_effect(&url).await;
    }
}

/// Ends every server process of `admin`'s database but its own, as
/// a restart of PostgreSQL would, and waits until they are gone.
async fn end_the_stores_connections(admin: &mut sqlx::PgConnection) {
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    assert!(
        ended.contains(&true),
        "no connection of the store was ended"
    );
    for _ in 0..2000 {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("the store's connections did not end");
}

/// The recovery lookup runs on connections lent without a test. One that
/// broke while kept (here its server process is ended, as when PostgreSQL
/// restarts) costs the lookup a second try on the pool, not an error.
#[tokio::test]
async fn on_postgres_a_recovery_lookup_outlives_a_broken_connection() {
    use carekey_domain::recovery::Anchor;
    use sqlx::Connection;
    let Some(url) = fresh_postgres_url("store suite").await else {
        return;
    };
    let store = connect(&url, &StoreOptions::default()).await.unwrap();
    patient_with_account(&store, "MRN-KEPT", "kim", "kim@example.com").await;
    let anchor = Anchor::Username(Username::parse("kim").unwrap());
    let found = store.find_recovery_candidates(&anchor).await.unwrap();
    assert_eq!(found.len(), 1);
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    end_the_stores_connections(&mut admin).await;
    let found = store.find_recovery_candidates(&anchor).await.unwrap();
    assert_eq!(found.len(), 1);
}

/// The recovery batch task keeps its connection while requests keep coming
/// (here the next one comes a few milliseconds after the last). One that
/// broke while kept costs the batch a second try on a connection the pool
/// has tested, not an error.
#[tokio::test]
async fn on_postgres_a_recovery_batch_outlives_a_broken_connection() {
    use sqlx::Connection;
    let Some(url) = fresh_postgres_url("store suite").await else {
        return;
    };
    let store = connect(&url, &StoreOptions::default()).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let (before, limits) = recovery_flow(FlowId::generate(), "test:before");
    let answer = store
        .start_recovery(&before, &limits, event(AuditAction::RecoveryRequested))
        .await;
    assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
    end_the_stores_connections(&mut admin).await;
    let (after, limits) = recovery_flow(FlowId::generate(), "test:after");
    let answer = store
        .start_recovery(&after, &limits, event(AuditAction::RecoveryRequested))
        .await;
    assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
    assert!(store.recovery_flow(after.id).await.unwrap().is_some());
    assert_eq!(store.count_audit("recovery.requested").await.unwrap(), 2);
}
