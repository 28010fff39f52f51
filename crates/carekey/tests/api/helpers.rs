//! `spawn_app`: the real application on port 0 with its own fresh database
//! (a temporary SQLite file, or a new PostgreSQL database), a clock the test
//! moves, and an HTTP client that keeps cookies like a browser.

use carekey::config::{Argon2Config, Config};
use carekey_domain::audit::Actor;
use carekey_domain::clock::ManualClock;
use carekey_domain::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use carekey_domain::ids::AccountId;
use carekey_domain::model::NewPatient;
use carekey_domain::secret::Password;
use carekey_service::Services;
use carekey_store::testing::{fresh_postgres_url, fresh_sqlite_url};
use chrono::{Duration, TimeZone, Utc};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    /// A client that keeps cookies, as a browser would.
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub services: Services,
    pub settings: carekey::config::Settings,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// Options for the app under test.
#[derive(Default)]
pub struct Options {
    pub public_url: Option<String>,
    /// Changes to the configuration before the app starts.
    pub configure: Option<fn(&mut Config)>,
}

/// Starts the app, or `None` when its backend is not available outside CI.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, Options::default()).await
}

pub async fn spawn_app_with(backend: Backend, options: Options) -> Option<TestApp> {
    // `RUST_LOG=warn cargo test …` shows the server's own account of a failure.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend {
        Backend::Sqlite => fresh_sqlite_url(dir.path()),
        Backend::Postgres => fresh_postgres_url("end-to-end test").await?,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let mut config = Config {
        database_url,
        data_dir: dir.path().to_owned(),
        public_url: options.public_url.unwrap_or_else(|| address.clone()),
        // Cheaper than production so the suite stays quick; the algorithm and code path are the same.
        argon2: Argon2Config {
            memory_kib: 4096,
            iterations: 1,
            parallelism: 1,
            workers: Some(2),
        },
        ..Config::default()
    };
    if let Some(configure) = options.configure {
        configure(&mut config);
    }
    let settings = config.validate().unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    ));
    let services = carekey::services(&settings, clock.clone()).await.unwrap();
    let app = carekey::app(&settings, services.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(carekey::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Some(TestApp {
        address,
        client,
        clock,
        services,
        settings,
        _dir: Some(dir),
        shutdown: Some(stop),
    })
}

pub const PASSWORD: &str = "tall lighthouse by the quiet bay";

/// Every test patient's date of birth.
pub const BIRTH_DATE: &str = "1970-01-31";

impl TestApp {
    /// The Prometheus text of /metrics.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The recovery and activation answer floors /metrics gives, in seconds.
    pub async fn answer_floors(&self) -> (f64, f64) {
        let metrics = self.metrics().await;
        let floor = |answer: &str| -> f64 {
            let prefix = format!("carekey_answer_floor_seconds{{answer=\"{answer}\"}} ");
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {answer} floor in {metrics}"))
                .parse()
                .unwrap()
        };
        (floor("recovery"), floor("activation"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A patient with a portal account; the MRN and email derive from the username.
    pub async fn patient(&self, username: &str, given_name: &str) -> AccountId {
        self.patient_with_email(username, given_name, &format!("{username}@example.com"))
            .await
    }

    pub async fn patient_with_email(
        &self,
        username: &str,
        given_name: &str,
        email: &str,
    ) -> AccountId {
        self.patient_with(username, given_name, Some(email), None)
            .await
    }

    /// A patient born on [`BIRTH_DATE`] with these contacts (entered by staff,
    /// so verified) and a portal account.
    pub async fn patient_with(
        &self,
        username: &str,
        given_name: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> AccountId {
        let patient = NewPatient {
            mrn: format!("MRN-{username}"),
            given_name: given_name.into(),
            family_name: "Tester".into(),
            date_of_birth: DateOfBirth::parse(BIRTH_DATE).unwrap(),
            postal_code: None,
            preferred_language: None,
            email: email.map(|e| Email::parse(e).unwrap()),
            phone: phone.map(|p| PhoneE164::parse(p, "US").unwrap()),
        };
        let patient_id = self
            .services
            .create_patient(&patient, Actor::System)
            .await
            .unwrap();
        self.services
            .create_account(
                patient_id,
                Username::parse(username).unwrap(),
                &Password::new(PASSWORD),
                Actor::System,
            )
            .await
            .unwrap()
    }

    /// `POST /api/v1/sessions` with a fresh client (no cookies carried over).
    pub async fn sign_in(&self, login: &str, password: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/api/v1/sessions"))
            .json(&serde_json::json!({ "login": login, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Signs in and returns the session token.
    pub async fn session_token(&self, login: &str) -> String {
        let response = self.sign_in(login, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["session_token"].as_str().unwrap().to_owned()
    }

    /// `POST` a JSON body with a fresh client.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn current_session(&self, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url("/api/v1/sessions/current"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The newest queued or sent messages, newest first.
    pub async fn messages(&self, limit: u32) -> Vec<carekey_domain::message::MessageRecord> {
        self.services.recent_messages(None, limit).await.unwrap()
    }

    /// A number read straight from the app's database (`SELECT COUNT(*) …`).
    pub async fn count(&self, sql: &str) -> i64 {
        let url = &self.settings.database_url;
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        } else {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        }
    }

    /// The time on the app's clock.
    pub fn now(&self) -> chrono::DateTime<Utc> {
        carekey_domain::clock::Clock::now(&*self.clock)
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Changes the organisation's policy, as an administrator would.
    pub async fn set_policy(&self, change: impl FnOnce(&mut carekey_domain::policy::Policy)) {
        use carekey_domain::audit::{AuditAction, AuditEvent, Outcome};
        use carekey_domain::clock::Clock;
        let mut policy = self.services.store.load_policy().await.unwrap();
        change(&mut policy);
        let event = AuditEvent::new(
            self.clock.now(),
            Actor::System,
            AuditAction::PolicyChanged,
            Outcome::Success,
        );
        self.services
            .store
            .save_policy(&policy, event)
            .await
            .unwrap();
    }

    /// The body of a page fetched with the cookie-keeping client.
    pub async fn page_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Declares each test once per backend: `mod sqlite` and `mod postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await {
                       super::$name(app).await
                   }
               } )*
        }
        mod on_postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                       super::$name(app).await
                   }
               } )*
        }
    };
}
