//! Two `carekey serve` processes on one PostgreSQL database stay exact (issue
//! 8): lockout counts, rate limits, single use of a reset token, and outbox
//! delivery (each message sent once by one of the two workers), with requests
//! split between the instances and fired at once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use carekey_domain::ids::MessageId;
use carekey_domain::message::{Channel, MessageData, MessageKind, NewMessage};
use carekey_domain::model::Language;
use carekey_store::testing::fresh_postgres_url;
use futures::future::join_all;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Instance {
    child: Child,
    base: String,
    outbox: PathBuf,
    _data: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn carekey(database_url: &str, data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_carekey"));
    command
        .current_dir(data)
        .env_remove("RUST_LOG")
        .env("CAREKEY_DATABASE_URL", database_url)
        .env("CAREKEY_DATA_DIR", data)
        .env("CAREKEY_ARGON2_MEMORY_KIB", "4096")
        .env("CAREKEY_ARGON2_ITERATIONS", "1")
        // Small batches: many claims, so the two workers contend for the queue.
        .env("CAREKEY_DELIVERY_BATCH", "2");
    command
}

async fn start(database_url: &str, demo: bool) -> Instance {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut command = carekey(database_url, data.path());
    command.arg("serve");
    if demo {
        command.arg("--demo");
    }
    let instance = Instance {
        child: command
            .env("CAREKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAREKEY_PUBLIC_URL", &base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        outbox: data.path().join("outbox"),
        base,
        _data: data,
    };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{}/readyz", instance.base)).send().await {
            if response.status() == 200 {
                return instance;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("carekey serve did not become ready");
}

/// Sends `count` POSTs at once, alternating between the instances; the statuses.
async fn split(instances: [&Instance; 2], path: &str, bodies: Vec<serde_json::Value>) -> Vec<u16> {
    let client = reqwest::Client::new();
    let requests = bodies.into_iter().enumerate().map(|(n, body)| {
        let client = client.clone();
        let url = format!("{}{path}", instances[n % 2].base);
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    join_all(requests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_database_stay_exact() {
    let Some(database_url) =
        fresh_postgres_url("two_instances_on_one_postgres_database_stay_exact").await
    else {
        return;
    };
    let a = start(&database_url, true).await;
    let b = start(&database_url, false).await;
    let db = sqlx::PgPool::connect(&database_url).await.unwrap();

    // Lockout: four wrong passwords at once, split, count four, no more, no less.
    let wrong = |n: usize| json!({"login": "alex.rivera", "password": format!("wrong guess {n}")});
    let statuses = split([&a, &b], "/api/v1/sessions", (0..4).map(wrong).collect()).await;
    assert!(statuses.iter().all(|&s| s == 401), "{statuses:?}");
    let failures: i64 = sqlx::query_scalar(
        "SELECT failed_attempts FROM portal_accounts WHERE username = 'alex.rivera'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        failures, 4,
        "every failure counted once across the instances"
    );
    // The fifth, on the other instance, locks; then even the right password fails on both.
    split([&b, &a], "/api/v1/sessions", vec![wrong(5)]).await;
    let right = json!({"login": "alex.rivera", "password": "blue heron walks the marsh"});
    let statuses = split([&a, &b], "/api/v1/sessions", vec![right.clone(), right]).await;
    assert_eq!(statuses, [401, 401], "locked on both instances");

    // Rate limit per address: 30 per 15 minutes, counted across the instances.
    let asks = (0..40)
        .map(|n| json!({"purpose": "password", "channel": "email", "username": format!("nobody{n}")}))
        .collect();
    let statuses = split([&a, &b], "/api/v1/recovery", asks).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 202).count(),
        30,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        10,
        "{statuses:?}"
    );

    // A reset token works once, whichever instance is asked.
    let data = tempfile::tempdir().unwrap();
    let issued = carekey(&database_url, data.path())
        .args(["reset-code", "--mrn", "DEMO-1002"])
        .output()
        .unwrap();
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let code = String::from_utf8(issued.stdout).unwrap().trim().to_owned();
    let redeemed: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/recovery/staff-code", b.base))
        .json(&json!({"code": code, "date_of_birth": "1958-03-14"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = redeemed["accounts"][0]["reset_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resets = (0..8)
        .map(|n| {
            let password = format!("violet canyon ferry number {n}");
            json!({"token": token, "new_password": password, "new_password_confirm": password})
        })
        .collect();
    let statuses = split([&a, &b], "/api/v1/password/reset", resets).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 410).count(),
        7,
        "{statuses:?}"
    );

    // Outbox: both workers poll one queue; every message is sent exactly once.
    let store = carekey_store::connect(&database_url, &carekey_store::StoreOptions::default())
        .await
        .unwrap();
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_messages")
        .fetch_one(&db)
        .await
        .unwrap();
    let messages: Vec<NewMessage> = (0..200)
        .map(|n| NewMessage {
            id: MessageId::generate(),
            kind: MessageKind::PasswordChanged,
            channel: Channel::Email,
            recipient: format!("patient{n}@example.com"),
            language: Language::En,
            patient_id: None,
            data: MessageData::default(),
        })
        .collect();
    store
        .enqueue_messages(&messages, chrono::Utc::now())
        .await
        .unwrap();
    let total = before + 200;
    let mut sent = 0;
    for _ in 0..300 {
        sent = sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE status = 'sent'")
            .fetch_one(&db)
            .await
            .unwrap();
        if sent == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent, total, "every queued message was sent");
    let mut files = Vec::new();
    let mut per_instance = Vec::new();
    for instance in [&a, &b] {
        let names: Vec<String> = std::fs::read_dir(&instance.outbox)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        per_instance.push(names.len());
        files.extend(names);
    }
    let distinct: BTreeSet<&String> = files.iter().collect();
    assert_eq!(
        files.len() as i64,
        total,
        "no message written twice: {per_instance:?}"
    );
    assert_eq!(distinct.len(), files.len());
    for message in &messages {
        assert!(
            files.iter().any(|f| f.contains(&message.id.to_string())),
            "message {} was delivered",
            message.id
        );
    }
    assert!(
        per_instance.iter().all(|&n| n > 0),
        "both workers took part: {per_instance:?}"
    );
}
