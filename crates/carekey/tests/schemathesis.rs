//! The API against its own OpenAPI document, by schemathesis (from PyPI): a
//! real `carekey serve` gets thousands of generated requests — valid, edge
//! and broken — on every route, signed in as a portal administrator (so the
//! staff routes are reached too), and must answer each without a 5xx, within
//! 5 seconds, with a status, content type, headers and body the document
//! describes. Skipped with a message where schemathesis is not installed,
//! except under `CI=true` (`.ci/run` installs it).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use process::{free_port, prepare, staff_session, Server};
use std::process::Command;

fn schemathesis() -> Option<String> {
    let candidates = [
        std::env::var("CAREKEY_TEST_SCHEMATHESIS").ok(),
        Some("/var/tmp/carekey-venv/bin/schemathesis".into()),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|path| std::path::Path::new(path).exists())
        .or_else(|| {
            let on_path = Command::new("schemathesis").arg("--version").output();
            on_path
                .is_ok_and(|o| o.status.success())
                .then(|| "schemathesis".to_owned())
        });
    if found.is_none() {
        assert!(
            !carekey_store::testing::in_ci(),
            "CI=true but schemathesis is not installed (pip install schemathesis; .ci/run does it)"
        );
        eprintln!(
            "SKIPPED schemathesis test: schemathesis not installed (pip install schemathesis)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_its_openapi_document_says() {
    let Some(schemathesis) = schemathesis() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let database_url = carekey_store::testing::fresh_sqlite_url(data);
    prepare(data, &database_url);
    let server = Server::start(data, &database_url, free_port()).await;
    let staff = staff_session(&server.base).await;
    let document = format!("{}/api/openapi.json", server.base);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .args(["run", &document])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,\
                 content_type_conformance,response_headers_conformance",
                "--max-examples",
                "25",
                "--request-timeout",
                "5",
                "--generation-deterministic",
                "--no-color",
                "--header",
            ])
            .arg(format!("Authorization: Bearer {staff}"))
            .env("SCHEMATHESIS_HOOKS", "")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains(" passed") && !report.contains(" 0 generated"),
        "schemathesis ran nothing:\n{report}"
    );
    drop(server);
}
