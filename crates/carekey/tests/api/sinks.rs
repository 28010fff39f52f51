//! Real peers for delivery tests: an SMTP server (Python's aiosmtpd, writing
//! each message into a Maildir) and a local HTTP server that answers like a
//! Twilio-compatible provider and records every request it checks.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use carekey_delivery::twilio::{TwilioAccount, TwilioResource, TwilioSender};
use carekey_delivery::{Sender, Senders};
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

/// An SMTP sender into a sink.
pub fn smtp(url: &str) -> Arc<dyn Sender> {
    Arc::new(
        carekey_delivery::smtp::SmtpSender::new(
            url,
            "Hill Clinic <noreply@hill-clinic.example>",
            4,
        )
        .unwrap(),
    )
}

/// A Twilio sender (messages or calls) into the provider stand-in.
pub fn twilio(provider: &ProviderStandIn, resource: TwilioResource) -> Arc<dyn Sender> {
    Arc::new(
        TwilioSender::new(
            TwilioAccount {
                base_url: provider.base_url.clone(),
                account_sid: ACCOUNT_SID.into(),
                auth_token: AUTH_TOKEN.into(),
                from: "+12105550000".into(),
                status_callback: Some("https://portal.example/hooks/twilio/status".into()),
            },
            resource,
        )
        .unwrap(),
    )
}

/// One email as the sink received it: recipient, subject and plain text.
#[derive(Debug, Clone)]
pub struct ReceivedEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Where a test's messages really go: an SMTP sink for email and the
/// provider stand-in for text messages and calls.
pub struct Mailroom {
    pub smtp: SmtpSink,
    pub provider: ProviderStandIn,
}

impl Mailroom {
    /// `None` (with a message) where aiosmtpd is missing outside CI.
    pub async fn open() -> Option<Self> {
        Some(Self {
            smtp: SmtpSink::start().await?,
            provider: ProviderStandIn::start().await,
        })
    }

    /// Runs the app's delivery worker against the real peers until nothing is
    /// waiting (a send that failed for a moment is retried after its backoff,
    /// which the test clock skips); the number of messages handed over.
    pub async fn deliver(&self, app: &crate::helpers::TestApp) -> usize {
        use carekey_domain::message::MessageStatus;
        let senders = Senders {
            email: smtp(&self.smtp.url()),
            sms: twilio(&self.provider, TwilioResource::Messages),
            voice: twilio(&self.provider, TwilioResource::Calls),
        };
        let worker = carekey::delivery::worker(&app.settings, &app.services, senders);
        let mut sent = 0;
        for _ in 0..5 {
            sent += worker.run_once().await.unwrap();
            let waiting = app
                .messages(500)
                .await
                .iter()
                .any(|m| matches!(m.status, MessageStatus::Queued | MessageStatus::Sending));
            if !waiting {
                break;
            }
            app.advance(chrono::Duration::minutes(1));
        }
        sent
    }

    pub fn emails(&self) -> Vec<ReceivedEmail> {
        use mailparse::MailHeaderMap;
        self.smtp
            .messages()
            .iter()
            .map(|raw| {
                let mail = mailparse::parse_mail(raw).unwrap();
                let text = match mail.subparts.first() {
                    Some(part) => part.get_body().unwrap(),
                    None => mail.get_body().unwrap(),
                };
                ReceivedEmail {
                    to: mail.headers.get_first_value("To").unwrap_or_default(),
                    subject: mail.headers.get_first_value("Subject").unwrap_or_default(),
                    text,
                }
            })
            .collect()
    }

    /// Emails to one address, oldest first.
    pub fn emails_to(&self, to: &str) -> Vec<ReceivedEmail> {
        self.emails().into_iter().filter(|e| e.to == to).collect()
    }

    /// Text messages (`Body`) and calls (`Twiml`) to one number, oldest first.
    pub fn phone_messages_to(&self, to: &str) -> Vec<ProviderRequest> {
        self.provider
            .requests()
            .into_iter()
            .filter(|r| r.field("To") == Some(to))
            .collect()
    }
}

/// The first run of `digits` digits in a text (a code in a message).
pub fn code_in(text: &str, digits: usize) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(digits)
        .enumerate()
        .find(|(i, window)| {
            window.iter().all(char::is_ascii_digit)
                && (*i == 0 || !chars[i - 1].is_ascii_digit())
                && chars.get(i + digits).is_none_or(|c| !c.is_ascii_digit())
        })
        .map(|(_, window)| window.iter().collect())
}

/// Every reset link in a text.
pub fn links_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|word| word.contains("/reset?token="))
        .map(str::to_owned)
        .collect()
}
