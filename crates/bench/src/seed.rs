//! Fresh databases for a run, seeded fast: accounts go in as multi-row INSERTs
//! of 1,000 rows in one transaction, all sharing one precomputed Argon2id hash
//! (the server verifies with the parameters the hash names, as for any other).
//! The schema is the store's own, applied by its migrations first.

use anyhow::Context;
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::policy::Policy;
use carekey_store::StoreOptions;
use sqlx::{Connection, Executor, QueryBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The password of every seeded account.
pub const PASSWORD: &str = "granite kettle rowing home";
const CHUNK: usize = 1000;

/// Inserts the three rows per account in chunks of [`CHUNK`] (one macro for
/// both backends: their bind types differ, the statements do not).
macro_rules! seed_rows {
    ($tx:expr, $db:ty, $count:expr, $hash:expr, $id_of:expr) => {{
        let now = chrono::Utc::now().timestamp_millis();
        let mut start = 0;
        while start < $count {
            let end = (start + CHUNK).min($count);
            let ids: Vec<_> = (start..end)
                .map(|_| ($id_of(uuid::Uuid::now_v7()), $id_of(uuid::Uuid::now_v7())))
                .collect();
            let mut patients = QueryBuilder::<$db>::new(
                "INSERT INTO patients (id, mrn, given_name, family_name, date_of_birth, created_at, updated_at) ",
            );
            patients.push_values((start..end).zip(&ids), |mut row, (n, (patient, _))| {
                row.push_bind(patient.clone())
                    .push_bind(format!("B{n}"))
                    .push_bind("Bench")
                    .push_bind(format!("Patient{n}"))
                    .push_bind("1960-06-15")
                    .push_bind(now)
                    .push_bind(now);
            });
            patients.build().execute(&mut *$tx).await?;
            let mut contacts = QueryBuilder::<$db>::new(
                "INSERT INTO contacts (patient_id, kind, value, verified_by, verified_at, updated_at) ",
            );
            contacts.push_values((start..end).zip(&ids), |mut row, (n, (patient, _))| {
                row.push_bind(patient.clone())
                    .push_bind("email")
                    .push_bind(format!("bench{n}@example.com"))
                    .push_bind("staff")
                    .push_bind(now)
                    .push_bind(now);
            });
            contacts.build().execute(&mut *$tx).await?;
            let mut accounts = QueryBuilder::<$db>::new(
                "INSERT INTO portal_accounts (id, patient_id, username, password_hash, password_changed_at, status, created_at) ",
            );
            accounts.push_values((start..end).zip(&ids), |mut row, (n, (patient, account))| {
                row.push_bind(account.clone())
                    .push_bind(patient.clone())
                    .push_bind(format!("bench{n}"))
                    .push_bind($hash.to_owned())
                    .push_bind(now)
                    .push_bind("active")
                    .push_bind(now);
            });
            accounts.build().execute(&mut *$tx).await?;
            start = end;
        }
    }};
}

/// Which database a run uses.
#[derive(Debug, Clone)]
pub enum Engine {
    Sqlite,
    /// A server URL; each run creates its own throwaway database there.
    Postgres(String),
}

impl Engine {
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A fresh, migrated database and a folder for the server's files.
pub struct Database {
    pub url: String,
    pub engine: Engine,
    folder: tempfile::TempDir,
    postgres_name: Option<String>,
}

impl Database {
    pub async fn create(engine: &Engine) -> anyhow::Result<Self> {
        let folder = tempfile::Builder::new().prefix("carekey-bench").tempdir()?;
        let (url, postgres_name) = match engine {
            Engine::Sqlite => (
                format!("sqlite://{}", folder.path().join("carekey.db").display()),
                None,
            ),
            Engine::Postgres(admin) => {
                let name = format!("carekey_bench_{}", uuid::Uuid::new_v4().simple());
                let mut connection = sqlx::PgConnection::connect(admin)
                    .await
                    .with_context(|| format!("cannot reach PostgreSQL at {admin}"))?;
                connection
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await?;
                (format!("{}/{name}", server_of(admin)), Some(name))
            }
        };
        let store = carekey_store::connect(&url, &StoreOptions::default()).await?;
        drop(store);
        Ok(Self {
            url,
            engine: engine.clone(),
            folder,
            postgres_name,
        })
    }

    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// Raises the recovery rate limits (as shipped they answer 429 after 30
    /// requests from one address; a load test is one address).
    pub async fn raise_rate_limits(&self) -> anyhow::Result<()> {
        let store = carekey_store::connect(&self.url, &StoreOptions::default()).await?;
        let mut policy: Policy = store.load_policy().await?;
        policy.recovery.per_ip_per_15_minutes = u32::MAX / 2;
        policy.recovery.per_account_per_hour = u32::MAX / 2;
        let event = AuditEvent::new(
            chrono::Utc::now(),
            Actor::System,
            AuditAction::PolicyChanged,
            Outcome::Success,
        );
        store.save_policy(&policy, event).await?;
        Ok(())
    }

    /// Refreshes PostgreSQL's statistics (nothing to do on SQLite).
    pub async fn analyze(&self) -> anyhow::Result<()> {
        if let Engine::Postgres(_) = self.engine {
            let mut connection = sqlx::PgConnection::connect(&self.url).await?;
            connection.execute("ANALYZE").await?;
        }
        Ok(())
    }

    /// Adds accounts `bench0`…`bench{count-1}` (patients with a verified email
    /// `bench{n}@example.com`), all with [`PASSWORD`] hashed as `hash`.
    pub async fn seed_accounts(&self, count: usize, hash: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        match self.engine {
            Engine::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url).await?;
                connection.execute("PRAGMA journal_mode = WAL").await?;
                let mut tx = connection.begin().await?;
                seed_rows!(tx, sqlx::Sqlite, count, hash, |id: uuid::Uuid| id
                    .as_bytes()
                    .to_vec());
                tx.commit().await?;
            }
            Engine::Postgres(_) => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await?;
                let mut tx = connection.begin().await?;
                seed_rows!(tx, sqlx::Postgres, count, hash, |id: uuid::Uuid| id);
                tx.commit().await?;
                connection.execute("ANALYZE").await?;
            }
        }
        Ok(started.elapsed())
    }

    /// Removes a PostgreSQL database (a SQLite one goes with its folder).
    pub async fn remove(self) -> anyhow::Result<()> {
        if let (Engine::Postgres(admin), Some(name)) = (&self.engine, &self.postgres_name) {
            let mut connection = sqlx::PgConnection::connect(admin).await?;
            connection
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
        }
        Ok(())
    }
}

/// Drops databases earlier runs left behind (interrupted runs).
pub async fn remove_leftovers(admin: &str) -> anyhow::Result<()> {
    let mut connection = sqlx::PgConnection::connect(admin).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'carekey\\_bench\\_%'",
    )
    .fetch_all(&mut connection)
    .await?;
    for name in names {
        connection
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
    }
    Ok(())
}

/// `postgres://user@host:port` of a URL that may name a database.
fn server_of(url: &str) -> &str {
    match url.rfind('/') {
        Some(slash) if url[..slash].ends_with(|c: char| c != '/') => &url[..slash],
        _ => url,
    }
}
