//! The storage suite: every test runs on SQLite and again on a fresh PostgreSQL
//! database, so both backends keep the same promises.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::{DateOfBirth, Email, Login, Username};
use carekey_domain::ids::PatientId;
use carekey_domain::lockout::FailureOutcome;
use carekey_domain::model::{NewAccount, NewPatient, SessionOwner};
use carekey_domain::policy::{LockoutPolicy, Policy};
use carekey_domain::ports::{NewSession, Store, StoreError};
use carekey_domain::session::SessionExpiry;
use carekey_domain::token::OpaqueToken;
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
        phone: Some("+12105550142".into()),
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
                .record_sign_in_failure(account, &policy, failed)
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
                    .record_sign_in_failure(account, &LockoutPolicy::default(), failed)
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
