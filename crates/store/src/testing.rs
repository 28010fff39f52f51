//! Throwaway databases for tests: a fresh SQLite file or a fresh PostgreSQL
//! database per test, so tests never see each other's rows.

// Test support fails loudly by design: a test without its database must not pass.
#![allow(clippy::panic)]

use sqlx::{Connection, Executor, PgConnection};
use std::sync::atomic::{AtomicBool, Ordering};

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
    let name = format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(connection) => connection,
        Err(error) => panic!("cannot reach PostgreSQL at CAREKEY_TEST_POSTGRES_URL: {error}"),
    };
    if !DROPPED_LEFT_BEHIND.swap(true, Ordering::SeqCst) {
        drop_left_behind(&mut admin).await;
    }
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

/// The start of every test database's name; the creating process's id follows.
const TEST_DATABASE_PREFIX: &str = "carekey_test_";

/// Whether this process has dropped the test databases ended processes left.
static DROPPED_LEFT_BEHIND: AtomicBool = AtomicBool::new(false);

/// Drops the test databases of test processes that have ended. A test
/// process cannot drop its own as it exits, so each one's are dropped by the
/// next; without this every run of the suite left about fifty behind. Only
/// where `/proc` tells which processes are alive; a database that cannot be
/// dropped now (in use, or another process got there first) is left for the
/// next run.
async fn drop_left_behind(admin: &mut PgConnection) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let names: Vec<String> =
        match sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(TEST_DATABASE_PREFIX)
            .fetch_all(&mut *admin)
            .await
        {
            Ok(names) => names,
            Err(error) => {
                eprintln!("cannot list left-behind test databases: {error}");
                return;
            }
        };
    for name in names.iter().filter(|name| creator_has_ended(name)) {
        // The name came from pg_database and matched the prefix; quoted
        // anyway. Without FORCE, a database someone is still connected to
        // (a process this one cannot see) is not dropped.
        let drop = format!("DROP DATABASE IF EXISTS \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = admin.execute(drop.as_str()).await {
            eprintln!("left test database {name} for a later run: {error}");
        }
    }
}

/// Whether the process that created the test database `name` has ended.
/// Names without a process id come from before ids were written in.
fn creator_has_ended(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEST_DATABASE_PREFIX) else {
        return false;
    };
    match rest.split_once('_').map(|(pid, _)| pid.parse::<u32>()) {
        Some(Ok(pid)) => {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => true,
    }
}

/// A URL for a new SQLite database file inside `dir`.
pub fn fresh_sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("carekey.db").display())
}

#[cfg(test)]
mod tests {
    use super::creator_has_ended;

    #[test]
    #[cfg(target_os = "linux")]
    fn only_databases_of_ended_processes_count_as_left_behind() {
        let mine = format!("carekey_test_{}_0123abcd", std::process::id());
        assert!(!creator_has_ended(&mine));
        // PID 1 is always alive; a pid past the kernel's limit never is.
        assert!(!creator_has_ended("carekey_test_1_0123abcd"));
        assert!(creator_has_ended("carekey_test_4294967295_0123abcd"));
        // Named before process ids were written in.
        assert!(creator_has_ended(
            "carekey_test_6441d3629d5848fa96e72ae50b745744"
        ));
        // Not a test database at all.
        assert!(!creator_has_ended("carekey_bench_6441d3629d5848fa"));
        assert!(!creator_has_ended("postgres"));
    }
}
