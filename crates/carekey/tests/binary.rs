//! The shipped binary end to end: `carekey serve --demo` starts, signs a demo
//! patient in, and its in-process outbox worker delivers the notice a password
//! change queues; SIGTERM stops it cleanly. Also `config check` and `staff add`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

fn carekey(data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_carekey"));
    command
        .current_dir(data)
        .env_remove("RUST_LOG")
        .env(
            "CAREKEY_DATABASE_URL",
            format!("sqlite://{}", data.join("carekey.db").display()),
        )
        .env("CAREKEY_DATA_DIR", data)
        .env("CAREKEY_ARGON2_MEMORY_KIB", "4096")
        .env("CAREKEY_ARGON2_ITERATIONS", "1");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_signs_in_and_its_worker_delivers_what_a_change_queues() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = carekey(data.path())
        .args(["serve", "--demo"])
        .env("CAREKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("CAREKEY_PUBLIC_URL", &base)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            ready = response.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "carekey serve did not become ready");

    let signed_in: serde_json::Value = client
        .post(format!("{base}/api/v1/sessions"))
        .json(
            &serde_json::json!({"login": "maria.garcia", "password": "blue heron walks the marsh"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_in["session_token"]
        .as_str()
        .expect("the demo patient signs in");
    let changed = client
        .post(format!("{base}/api/v1/me/password"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "current_password": "blue heron walks the marsh",
            "new_password": "orange tugboat whistles quietly",
            "new_password_confirm": "orange tugboat whistles quietly"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);

    let outbox = data.path().join("outbox");
    let mut email = None;
    for _ in 0..100 {
        email = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if email.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let email = std::fs::read_to_string(email.expect("the in-process worker delivered the notice"))
        .unwrap();
    assert!(email.contains("To: maria.garcia@example.com"));
    assert!(email.contains("multipart/alternative"), "{email}");

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "SIGTERM stops carekey serve cleanly: {status}"
    );
}

#[test]
fn config_check_reports_every_problem_and_staff_add_reads_the_password_from_stdin() {
    let data = tempfile::tempdir().unwrap();
    let bad = carekey(data.path())
        .args(["config", "check"])
        .env("CAREKEY_LISTEN", "everywhere")
        .env("CAREKEY_PUBLIC_URL", "ftp://x")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("listen:") && stderr.contains("public_url:"),
        "{stderr}"
    );

    let mut add = carekey(data.path())
        .args([
            "staff",
            "add",
            "--username",
            "Admin.One",
            "--role",
            "portal_admin",
        ])
        // Plenty of log lines, which must all go to standard error.
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin
        .take()
        .unwrap()
        .write_all(b"quiet harbor lanterns glow\n")
        .unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(added.status.success());
    assert_eq!(
        String::from_utf8_lossy(&added.stdout).trim(),
        "added staff user admin.one (portal_admin)"
    );

    let weak = carekey(data.path())
        .args([
            "staff",
            "add",
            "--username",
            "admin.two",
            "--role",
            "portal_admin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut weak = weak;
    weak.stdin.take().unwrap().write_all(b"password\n").unwrap();
    let refused = weak.wait_with_output().unwrap();
    assert!(
        !refused.status.success(),
        "the password policy applies to staff too"
    );
}
