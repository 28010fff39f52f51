//! A real `carekey` process for the tests that need one (crash safety,
//! secrets in logs): the command with a test's data folder and database, a
//! served instance that can be killed, and a staff session with its second
//! factor enrolled.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const STAFF: &str = "testdesk";
pub const STAFF_PASSWORD: &str = "front desk process test passphrase";

pub fn carekey(data: &Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_carekey"));
    command
        .current_dir(data)
        .env_remove("RUST_LOG")
        .env("CAREKEY_DATABASE_URL", database_url)
        .env("CAREKEY_DATA_DIR", data)
        .env("CAREKEY_LOG", "warn")
        .env("CAREKEY_ARGON2_MEMORY_KIB", "4096")
        .env("CAREKEY_ARGON2_ITERATIONS", "1")
        // Messages a killed server had claimed go out again once their lease
        // ends; a short one lets the crash test see that happen.
        .env("CAREKEY_DELIVERY_LEASE_SECONDS", "2");
    command
}

/// A running `carekey serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub async fn start(data: &Path, database_url: &str, port: u16) -> Self {
        Self::start_logging(data, database_url, port, None).await
    }

    /// Starts `carekey serve`; with `log`, everything it prints (at the
    /// `RUST_LOG` level given) goes to that file.
    pub async fn start_logging(
        data: &Path,
        database_url: &str,
        port: u16,
        log: Option<(&Path, &str)>,
    ) -> Self {
        let base = format!("http://127.0.0.1:{port}");
        let mut command = carekey(data, database_url);
        command
            .arg("serve")
            .env("CAREKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAREKEY_PUBLIC_URL", &base);
        match log {
            Some((file, level)) => {
                let out = std::fs::File::create(file).unwrap();
                command
                    .env("RUST_LOG", level)
                    .stdout(out.try_clone().unwrap())
                    .stderr(out);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command.spawn().unwrap();
        let server = Self { child, base };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let ready = client.get(format!("{}/readyz", server.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("carekey serve did not become ready");
    }

    /// SIGKILL: no shutdown, no flushing, as when the power goes.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One staff session, enrolled in TOTP, reused across restarts (sessions
/// live in the database).
pub async fn staff_session(base: &str) -> String {
    staff_session_and_secret(base).await.0
}

/// A staff session and the TOTP secret enrolled for it.
pub async fn staff_session_and_secret(base: &str) -> (String, String) {
    let client = reqwest::Client::new();
    let signed_in: Value = client
        .post(format!("{base}/api/v1/staff/sessions"))
        .json(&json!({ "username": STAFF, "password": STAFF_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_in["session_token"].as_str().unwrap().to_owned();
    let enrol: Value = client
        .post(format!("{base}/api/v1/staff/me/totp"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = enrol["secret"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = carekey_domain::totp::code_at(secret, now).unwrap();
    let confirmed = client
        .post(format!("{base}/api/v1/staff/me/totp/confirm"))
        .bearer_auth(&token)
        .json(&json!({ "totp": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 204);
    (token, secret.to_owned())
}

pub fn verification() -> Value {
    json!({ "method": "photo_id", "note": "crash test" })
}

/// Posts JSON; `None` when the server went away before answering.
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Option<(u16, Value)> {
    let mut request = client.request(method, url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Some((status, body))
}

/// Applies migrations and adds the front-desk user the tests sign in as.
pub fn prepare(data: &Path, database_url: &str) {
    use std::io::Write;
    let migrate = carekey(data, database_url).arg("migrate").status().unwrap();
    assert!(migrate.success());
    let mut add = carekey(data, database_url)
        .args([
            "staff",
            "add",
            "--username",
            STAFF,
            "--role",
            "portal_admin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{STAFF_PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
}
