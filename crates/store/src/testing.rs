//! Throwaway databases for tests: a fresh SQLite file or a fresh PostgreSQL
//! database per test, so tests never see each other's rows.

// Test support fails loudly by design: a test without its database must not pass.
#![allow(clippy::panic)]

use sqlx::{Connection, Executor, PgConnection};

/// Whether this run is CI, where a missing PostgreSQL must fail rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A URL for a new, empty PostgreSQL database, created on the server that
/// `CAREKEY_TEST_POSTGRES_URL` names. `None` (with a visible message) when the
/// variable is unset outside CI; under `CI=true` a missing server is an error.
pub async fn fresh_postgres_url(test: &str) -> Option<String> {
    let Ok(admin_url) = std::env::var("CAREKEY_TEST_POSTGRES_URL") else {
        assert!(
            !in_ci(),
            "CI=true but CAREKEY_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI"
        );
        eprintln!("SKIPPED {test} on PostgreSQL: set CAREKEY_TEST_POSTGRES_URL to run it");
        return None;
    };
    let name = format!("carekey_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(connection) => connection,
        Err(error) => panic!("cannot reach PostgreSQL at CAREKEY_TEST_POSTGRES_URL: {error}"),
    };
    if let Err(error) = admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
    {
        panic!("cannot create test database {name}: {error}");
    }
    let base = match admin_url.rfind('/') {
        Some(slash) if admin_url[..slash].ends_with(|c: char| c != '/') => &admin_url[..slash],
        _ => admin_url.as_str(),
    };
    Some(format!("{base}/{name}"))
}

/// A URL for a new SQLite database file inside `dir`.
pub fn fresh_sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("carekey.db").display())
}
