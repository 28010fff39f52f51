//! Crash safety: a real `carekey serve` is killed with SIGKILL at random
//! moments while front-desk staff create patients and issue codes, patients
//! enroll and reset their passwords, and staff unlock accounts and fix
//! contacts. After each restart the work goes on. At the end every change
//! must be whole or absent — no password changed without its audit event, its
//! revoked sessions and its notice; no account without its enrollment event —
//! every queued message delivered exactly once, and the audit chain intact.
//! On SQLite and on PostgreSQL.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use process::{call, carekey, free_port, prepare, staff_session, verification, Server};
use rand::Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIRTH_DATE: &str = "1961-07-04";
const ROUNDS: usize = 6;
const WORKERS: usize = 3;

/// What the test was told happened to one patient, and what it tried.
#[derive(Debug, Default, Clone)]
struct Patient {
    username: String,
    /// Enrollment answered 201 with this password.
    enrolled: Option<String>,
    /// A session opened before the reset.
    session: Option<String>,
    /// The reset was sent with this password (maybe cut off by the kill).
    reset_tried: Option<String>,
    /// The reset answered 200.
    reset_done: bool,
}

type Ledger = Arc<Mutex<BTreeMap<String, Patient>>>;

/// One patient's whole story: created by staff, invited with a printed code,
/// enrolled, signed in, then reset through a front-desk code. Stops at the
/// first request the dying server does not answer.
async fn patient_story(base: &str, staff: &str, name: &str, ledger: &Ledger) -> Option<()> {
    use reqwest::Method;
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{base}/api/v1{path}");
    let (status, created) = call(
        &client,
        Method::POST,
        api("/staff/patients"),
        Some(staff),
        json!({ "mrn": name, "given_name": "Crash", "family_name": name,
                "date_of_birth": BIRTH_DATE, "email": format!("{name}@example.com") }),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, invited) = call(
        &client,
        Method::POST,
        api(&format!("/staff/patients/{id}/portal/invite")),
        Some(staff),
        json!({ "channel": "print", "verification": verification() }),
    )
    .await?;
    assert_eq!(status, 201, "{invited}");
    let (status, started) = call(
        &client,
        Method::POST,
        api("/enrollment"),
        None,
        json!({ "activation_code": invited["activation_code"], "date_of_birth": BIRTH_DATE }),
    )
    .await?;
    assert_eq!(status, 200, "{started}");
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let first = format!("amber quiet harbour {n}");
    let username = name.to_lowercase();
    ledger.lock().unwrap().insert(
        name.to_owned(),
        Patient {
            username: username.clone(),
            ..Patient::default()
        },
    );
    let (status, body) = call(
        &client,
        Method::POST,
        api("/enrollment/complete"),
        None,
        json!({ "enrollment_token": started["enrollment_token"], "username": username,
                "password": first, "password_confirm": first }),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    ledger.lock().unwrap().get_mut(name).unwrap().enrolled = Some(first.clone());

    let (status, session) = call(
        &client,
        Method::POST,
        api("/sessions"),
        None,
        json!({ "login": username, "password": first }),
    )
    .await?;
    assert_eq!(status, 200, "{session}");
    ledger.lock().unwrap().get_mut(name).unwrap().session =
        Some(session["session_token"].as_str().unwrap().to_owned());

    let (status, code) = call(
        &client,
        Method::POST,
        api(&format!("/staff/patients/{id}/portal/reset-code")),
        Some(staff),
        json!({ "verification": verification() }),
    )
    .await?;
    assert_eq!(status, 201, "{code}");
    let (status, redeemed) = call(
        &client,
        Method::POST,
        api("/recovery/staff-code"),
        None,
        json!({ "code": code["code"], "date_of_birth": BIRTH_DATE }),
    )
    .await?;
    assert_eq!(status, 200, "{redeemed}");
    let second = format!("silver lantern morning {n}");
    ledger.lock().unwrap().get_mut(name).unwrap().reset_tried = Some(second.clone());
    let (status, body) = call(
        &client,
        Method::POST,
        api("/password/reset"),
        None,
        json!({ "token": redeemed["accounts"][0]["reset_token"],
                "new_password": second, "new_password_confirm": second }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    ledger.lock().unwrap().get_mut(name).unwrap().reset_done = true;

    // Staff help on the same record: unlock and a contact fix.
    let (status, _) = call(
        &client,
        Method::POST,
        api(&format!("/staff/patients/{id}/portal/unlock")),
        Some(staff),
        json!({ "verification": verification() }),
    )
    .await?;
    assert_eq!(status, 204);
    let (status, body) = call(
        &client,
        Method::PATCH,
        api(&format!("/staff/patients/{id}/contacts")),
        Some(staff),
        json!({ "phone": "(210) 555-0100", "verification": verification() }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    Some(())
}

/// Every request comes from 127.0.0.1: lift the per-address allowance (30
/// code redemptions in 15 minutes) so only kills interrupt the work.
async fn allow_one_address_everything(base: &str, staff: &str) {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/admin/policy");
    let (status, mut policy) = call(
        &client,
        reqwest::Method::GET,
        url.clone(),
        Some(staff),
        json!(null),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{policy}");
    policy["recovery"]["per_ip_per_15_minutes"] = json!(100_000);
    if let Some(fields) = policy.as_object_mut() {
        fields.remove("warnings");
    }
    let (status, saved) = call(&client, reqwest::Method::PUT, url, Some(staff), policy)
        .await
        .unwrap();
    assert_eq!(status, 200, "{saved}");
}

async fn scalar(database_url: &str, sql: &str) -> i64 {
    if database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        value
    } else {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        value
    }
}

/// The message ids the file sender wrote, with how many files each has.
fn delivered_files(data: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(data.join("outbox")) else {
        return ids;
    };
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // `{stamp}-{uuid}-{channel}.{ext}`: the uuid is the 36 characters after the stamp.
        let id = name.get(16..52).unwrap_or(&name).to_owned();
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

async fn survive_kills(database_url: String) {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    prepare(data, &database_url);

    let ledger: Ledger = Arc::default();
    let mut staff = None;
    for round in 0..ROUNDS {
        let server = Server::start(data, &database_url, free_port()).await;
        let base = server.base.clone();
        let token = match &staff {
            Some(token) => token,
            None => {
                let token = staff_session(&base).await;
                allow_one_address_everything(&base, &token).await;
                staff.insert(token)
            }
        };
        let mut workers = Vec::new();
        for worker in 0..WORKERS {
            let (base, token, ledger) = (base.clone(), token.clone(), Arc::clone(&ledger));
            workers.push(tokio::spawn(async move {
                for story in 0.. {
                    let name = format!("R{round}W{worker}S{story}");
                    if patient_story(&base, &token, &name, &ledger).await.is_none() {
                        return;
                    }
                }
            }));
        }
        let wait = rand::thread_rng().gen_range(500..2000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill();
        for worker in workers {
            worker.await.unwrap();
        }
    }

    // After the last kill: start again and let the worker drain the outbox.
    let server = Server::start(data, &database_url, free_port()).await;
    let base = server.base.clone();
    for _ in 0..300 {
        let waiting = scalar(
            &database_url,
            "SELECT COUNT(*) FROM outbox_messages WHERE status IN ('queued', 'sending')",
        )
        .await;
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let patients = ledger.lock().unwrap().clone();
    let finished = patients.values().filter(|p| p.reset_done).count();
    let cut_off = patients
        .values()
        .filter(|p| p.enrolled.is_none() || (p.reset_tried.is_some() && !p.reset_done))
        .count();
    eprintln!(
        "{} patient stories over {ROUNDS} kills: {finished} reset, {cut_off} cut off mid-request",
        patients.len()
    );
    assert!(finished >= 2, "too little work got done: {patients:?}");
    let client = reqwest::Client::new();
    let signs_in = |username: String, password: String| {
        let (client, base) = (&client, &base);
        async move {
            client
                .post(format!("{base}/api/v1/sessions"))
                .json(&json!({ "login": username, "password": password }))
                .send()
                .await
                .unwrap()
                .status()
                == 200
        }
    };
    let session_alive = |token: String| {
        let (client, base) = (&client, &base);
        async move {
            client
                .get(format!("{base}/api/v1/sessions/current"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                == 200
        }
    };
    for patient in patients.values() {
        let Some(first) = &patient.enrolled else {
            continue;
        };
        let second = patient.reset_tried.clone();
        let reset = match (&second, patient.reset_done) {
            (Some(second), true) => {
                assert!(signs_in(patient.username.clone(), second.clone()).await);
                true
            }
            (Some(second), false) => signs_in(patient.username.clone(), second.clone()).await,
            (None, _) => false,
        };
        if !reset {
            assert!(
                signs_in(patient.username.clone(), first.clone()).await,
                "{patient:?}: neither password works"
            );
        }
        if let Some(session) = &patient.session {
            assert_eq!(
                session_alive(session.clone()).await,
                !reset,
                "{patient:?}: a reset must end the sessions before it, and only a reset"
            );
        }
    }

    let orphans = [
        (
            "a password changed without its audit event",
            "SELECT COUNT(*) FROM portal_accounts a WHERE a.password_changed_at > a.created_at \
             AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.account_id = a.id \
             AND e.action IN ('password.reset', 'password.changed') AND e.at = a.password_changed_at)",
        ),
        (
            "a session older than its account's new password still open",
            "SELECT COUNT(*) FROM sessions s JOIN portal_accounts a ON s.account_id = a.id \
             WHERE s.created_at < a.password_changed_at AND s.revoked_at IS NULL",
        ),
        (
            "a password reset without its notice",
            "SELECT COUNT(*) FROM audit_events e JOIN portal_accounts a ON e.account_id = a.id \
             WHERE e.action = 'password.reset' AND NOT EXISTS (SELECT 1 FROM outbox_messages m \
             WHERE m.patient_id = a.patient_id AND m.kind = 'password_changed')",
        ),
        (
            "more notices than password resets",
            "SELECT COUNT(*) FROM portal_accounts a WHERE \
             (SELECT COUNT(*) FROM outbox_messages m WHERE m.patient_id = a.patient_id \
              AND m.kind = 'password_changed') > \
             (SELECT COUNT(*) FROM audit_events e WHERE e.account_id = a.id AND e.action = 'password.reset')",
        ),
        (
            "an account without its enrollment event",
            "SELECT COUNT(*) FROM portal_accounts a WHERE NOT EXISTS (SELECT 1 FROM audit_events e \
             WHERE e.account_id = a.id AND e.action = 'enrollment.completed')",
        ),
        (
            "a message not delivered",
            "SELECT COUNT(*) FROM outbox_messages WHERE status <> 'sent'",
        ),
    ];
    for (what, sql) in orphans {
        assert_eq!(scalar(&database_url, sql).await, 0, "{what}");
    }

    let messages = scalar(&database_url, "SELECT COUNT(*) FROM outbox_messages").await;
    let files = delivered_files(data);
    let twice: Vec<_> = files.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(
        i64::try_from(files.len()).unwrap(),
        messages,
        "every queued message is delivered once, and nothing else"
    );

    drop(server);
    let verify = carekey(data, &database_url)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "the audit chain breaks after the kills: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leaves_every_change_whole_or_absent_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    survive_kills(carekey_store::testing::fresh_sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leaves_every_change_whole_or_absent_on_postgres() {
    let Some(url) = carekey_store::testing::fresh_postgres_url("crash test").await else {
        return;
    };
    survive_kills(url).await;
}
