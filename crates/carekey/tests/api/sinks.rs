//! Real peers for delivery tests: an SMTP server (Python's aiosmtpd, writing
//! each message into a Maildir) and a local HTTP server that answers like a
//! Twilio-compatible provider and records every request it checks.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An aiosmtpd process on loopback; ends with the test.
pub struct SmtpSink {
    process: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A Python that can import aiosmtpd (Debian's python3-aiosmtpd, or a pip install).
fn python_with_aiosmtpd() -> Option<String> {
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .map(str::to_owned)
        .find(|python| {
            Command::new(python)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    /// Starts a sink on a free port, or `None` (with a message) where aiosmtpd is missing outside CI.
    pub async fn start() -> Option<Self> {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Option<Self> {
        let Some(python) = python_with_aiosmtpd() else {
            assert!(
                !carekey_store::testing::in_ci(),
                "CI=true but aiosmtpd is not installed (apt-get install python3-aiosmtpd)"
            );
            eprintln!("SKIPPED SMTP test: aiosmtpd not found (apt-get install python3-aiosmtpd)");
            return None;
        };
        let maildir = tempfile::tempdir().unwrap();
        let mut process = Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(Self {
                    process,
                    port,
                    maildir,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = process.kill();
        let _ = process.wait();
        panic!("aiosmtpd did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.maildir.path().join("mail").join("new");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(new)
            .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
}

/// One request the provider stand-in received.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub form: Vec<(String, String)>,
}

impl ProviderRequest {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Recorder {
    requests: Arc<Mutex<Vec<ProviderRequest>>>,
}

/// A Twilio-compatible provider on loopback: checks the account in the path and
/// basic auth as Twilio does, and records each request.
pub struct ProviderStandIn {
    pub base_url: String,
    recorder: Recorder,
}

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "provider-auth-token";

async fn create(
    State(recorder): State<Recorder>,
    Path((account, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    use base64::Engine;
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    recorder.requests.lock().unwrap().push(ProviderRequest {
        path: format!("/2010-04-01/Accounts/{account}/{resource}"),
        authorization: authorization.clone(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form,
    });
    if account != ACCOUNT_SID || authorization.as_deref() != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"code": 20003, "message": "Authenticate"})),
        );
    }
    let prefix = if resource == "Calls.json" { "CA" } else { "SM" };
    let sid = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"sid": sid, "status": "queued"})),
    )
}

impl ProviderStandIn {
    pub async fn start() -> Self {
        let recorder = Recorder::default();
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/{resource}", post(create))
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, recorder }
    }

    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.recorder.requests.lock().unwrap().clone()
    }
}
