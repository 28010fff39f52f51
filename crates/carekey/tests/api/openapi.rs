//! The OpenAPI document covers every API route that exists: each route of
//! shared/API.md that the server answers must be in `/api/openapi.json`.

use crate::helpers::{spawn_app, Backend};
use std::collections::BTreeSet;

/// `(METHOD, /path)` pairs named in API.md's tables and prose.
fn routes_in_api_md(text: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut last_prefix = String::new();
    for line in text.lines() {
        for (i, _) in line.match_indices('`') {
            let rest = &line[i + 1..];
            let Some(end) = rest.find('`') else { continue };
            let span = &rest[..end];
            let mut words = span.split_whitespace();
            let (Some(method), Some(path)) = (words.next(), words.next()) else {
                continue;
            };
            if !matches!(method, "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                continue;
            }
            // "`GET/PUT /api/...`" style is not used; "`PUT …/email` / `.../phone`" is expanded below.
            let path = if let Some(tail) = path.strip_prefix("...") {
                format!("{last_prefix}{tail}")
            } else {
                path.to_owned()
            };
            // A query (`?query=Q`) is not part of the route.
            let path = path.split('?').next().unwrap_or_default().to_owned();
            // Pages (`/reset?token=`) are HTML, not part of the OpenAPI document.
            if !(path.starts_with("/api/") || path.starts_with("/hooks/")) {
                continue;
            }
            if path.starts_with("/api/v1/staff/patients") {
                last_prefix = "/api/v1/staff/patients".into();
            }
            routes.insert((method.to_owned(), path));
        }
    }
    routes
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "0194f9a0-0000-7000-8000-000000000000")
        .replace("{flow_id}", "0194f9a0-0000-7000-8000-000000000000")
}

#[tokio::test]
async fn every_route_the_server_answers_is_in_the_openapi_document() {
    let api_md = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/API.md");
    let Ok(text) = std::fs::read_to_string(&api_md) else {
        assert!(
            !carekey_store::testing::in_ci(),
            "CI=true but {} is missing",
            api_md.display()
        );
        eprintln!("SKIPPED: {} not found", api_md.display());
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let document: serde_json::Value = reqwest::get(app.url("/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();

    let mut contract = routes_in_api_md(&text);
    for ops in ["/healthz", "/readyz", "/metrics", "/api/openapi.json"] {
        contract.insert(("GET".into(), ops.into()));
    }
    assert!(
        contract.len() > 30,
        "API.md parsing found only {contract:?}"
    );

    let client = reqwest::Client::new();
    let mut implemented = 0;
    for (method, path) in &contract {
        let response = client
            .request(method.parse().unwrap(), app.url(&concrete(path)))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let exists = match response.status().as_u16() {
            405 => false,
            404 => {
                // An unknown route and an unknown record both answer 404; only the
                // router's fallback (no matched route) means "not implemented".
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                body["error"] != "no_such_route"
            }
            _ => true,
        };
        if exists {
            implemented += 1;
            assert!(
                documented.contains(&(method.clone(), path.clone())),
                "{method} {path} is served but missing from /api/openapi.json"
            );
        }
    }
    assert!(
        implemented >= 7,
        "expected at least the sign-in and operations routes, found {implemented}"
    );
}

#[tokio::test]
async fn the_operational_endpoints_answer() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let health: serde_json::Value = reqwest::get(app.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    reqwest::get(app.url("/signin")).await.unwrap();
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"carekey_http_requests_total{method="GET",route="/signin",status="200"} 1"#
        ),
        "{metrics}"
    );
    // No recovery request has run, so the floor is the configured one.
    let (recovery, _) = app.answer_floors().await;
    assert_eq!(
        recovery,
        app.settings.answer_floor.as_secs_f64(),
        "{metrics}"
    );
}
