//! Hostile input and web hardening: huge, deep, broken and injected bodies get
//! a clear 4xx and store nothing; every form post needs its CSRF token; no
//! parameter redirects off-site; token pages are not cached or referred; a
//! client too slow to send its headers is cut off.

use crate::helpers::{spawn_app, Backend, TestApp, PASSWORD};
use crate::on_both_backends;
use crate::staff::{call, staff, verification};
use carekey_domain::model::StaffRole;
use serde_json::json;

on_both_backends!(
    ten_megabyte_bodies_are_refused_and_nothing_is_stored,
    deep_and_broken_json_is_a_problem_document,
    line_breaks_in_contacts_are_refused_everywhere,
);

/// Rows that any accepted request would have added to.
async fn footprint(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "audit_events",
        "outbox_messages",
        "patients",
        "sessions",
        "recovery_flows",
    ] {
        counts.push(app.count(&format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts
}

/// Sends the headers of a 10 MB request and its first 64 KiB, then reads the
/// answer: the server must refuse on the declared length, without waiting
/// for (or storing) the rest.
async fn declared_ten_megabytes(
    app: &TestApp,
    path: &str,
    content_type: &str,
    start: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let length = 10 * 1024 * 1024;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n{start}"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&vec![b'x'; 64 * 1024]).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn ten_megabyte_bodies_are_refused_and_nothing_is_stored(app: TestApp) {
    app.patient("alex", "Alex").await;
    let before = footprint(&app).await;
    for path in [
        "/api/v1/sessions",
        "/api/v1/password/reset",
        "/api/v1/password/check",
        "/api/v1/recovery",
        "/api/v1/enrollment/complete",
    ] {
        let answer =
            declared_ten_megabytes(&app, path, "application/json", r#"{"password":""#).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(
            answer.contains("application/problem+json"),
            "{path}: {answer}"
        );
    }
    // A sign-in form with a 10 MB password, as a browser would post it.
    let answer = declared_ten_megabytes(
        &app,
        "/signin",
        "application/x-www-form-urlencoded",
        "login=alex&password=",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("That was too much to send"), "{answer}");
    assert_eq!(footprint(&app).await, before, "nothing was stored");
}

async fn deep_and_broken_json_is_a_problem_document(app: TestApp) {
    app.patient("alex", "Alex").await;
    let before = footprint(&app).await;
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let mut invalid_utf8 = br#"{"login":"alex","password":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    invalid_utf8.extend_from_slice(br#""}"#);
    let client = reqwest::Client::new();
    for (what, body) in [
        ("deep", deep.into_bytes()),
        ("invalid UTF-8", invalid_utf8),
        ("a lone NUL", b"\0".to_vec()),
        (
            "numbers for strings",
            br#"{"login": 1e999, "password": null}"#.to_vec(),
        ),
    ] {
        let response = client
            .post(app.url("/api/v1/sessions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{what}: {status}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status, "{what}");
    }
    assert_eq!(footprint(&app).await, before);
}

async fn line_breaks_in_contacts_are_refused_everywhere(app: TestApp) {
    app.patient("alex", "Alex").await;
    let desk = staff(&app, "clerk", StaffRole::FrontDesk).await;
    let before = footprint(&app).await;
    let injected_email = "alex@example.com\r\nBcc: everyone@evil.example";
    let injected_phone = "+12105550142\r\nX-Evil: 1";
    for body in [
        json!({ "purpose": "password", "channel": "email", "email": injected_email }),
        json!({ "purpose": "username", "channel": "sms", "phone": injected_phone }),
    ] {
        let response = app.post_json("/api/v1/recovery", body).await;
        assert_eq!(response.status(), 422);
    }
    let (status, _) = call(
        &app,
        &desk,
        "POST",
        "/api/v1/staff/patients",
        Some(
            json!({ "mrn": "MRN-X", "given_name": "Eve", "family_name": "Evil",
                     "date_of_birth": "1980-01-01", "email": injected_email }),
        ),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = call(
        &app,
        &desk,
        "POST",
        "/api/v1/staff/patients",
        Some(
            json!({ "mrn": "MRN-Y", "given_name": "Eve\r\nBcc: x@evil.example",
                     "family_name": "Evil", "date_of_birth": "1980-01-01",
                     "phone": injected_phone }),
        ),
    )
    .await;
    assert_eq!(status, 422);
    let found = app
        .count("SELECT COUNT(*) FROM patients WHERE mrn = 'MRN-alex'")
        .await;
    assert_eq!(found, 1);
    let (_, patients) = call(
        &app,
        &desk,
        "GET",
        "/api/v1/staff/patients?query=MRN-alex",
        None,
    )
    .await;
    let id = patients["patients"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &app,
        &desk,
        "PATCH",
        &format!("/api/v1/staff/patients/{id}/contacts"),
        Some(json!({ "email": injected_email, "verification": verification() })),
    )
    .await;
    assert_eq!(status, 422);
    // The staff session's own audit events aside, nothing changed.
    let after = footprint(&app).await;
    assert_eq!(
        after[1..],
        before[1..],
        "no message, patient, session or flow added"
    );
}

/// Every form the pages post to refuses a post without its token, before
/// anything else (sign-in state, the path's ids) is looked at.
#[tokio::test]
async fn every_form_post_needs_its_csrf_token() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let id = "00000000-0000-4000-8000-000000000000";
    let forms = [
        "/signin".to_owned(),
        "/signout".to_owned(),
        "/forgot-password".to_owned(),
        "/forgot-username".to_owned(),
        format!("/recover/{id}"),
        "/reset".to_owned(),
        "/reset/choose".to_owned(),
        "/reset/renew".to_owned(),
        "/have-a-code".to_owned(),
        "/enroll".to_owned(),
        "/enroll/account".to_owned(),
        "/account/password".to_owned(),
        "/account/contacts/email".to_owned(),
        format!("/account/verify/{id}"),
        "/account/signout-others".to_owned(),
        "/staff/signin".to_owned(),
        "/staff/signout".to_owned(),
        "/staff/totp".to_owned(),
        format!("/staff/patients/{id}/reset-code"),
        format!("/staff/patients/{id}/reset-link"),
        format!("/staff/patients/{id}/unlock"),
        format!("/staff/patients/{id}/disable"),
        format!("/staff/patients/{id}/contacts"),
        format!("/staff/patients/{id}/invite"),
    ];
    for path in forms {
        let response = app
            .client
            .post(app.url(&path))
            .form(&[
                ("csrf", "forged"),
                ("login", "alex"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("This page timed out"),
            "{path}"
        );
    }
}

/// No `next`, `return` or `redirect` parameter (nor a doubled slash) can send
/// a patient off-site after signing in.
#[tokio::test]
async fn no_parameter_redirects_off_site() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex", "Alex").await;
    for query in [
        "next=https://evil.example/",
        "return=//evil.example",
        "redirect=https:%2F%2Fevil.example",
        "returnTo=/\\evil.example",
    ] {
        // A fresh browser each time (the last one is signed in).
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = browser
            .get(app.url(&format!("/signin?{query}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !page.contains("evil.example"),
            "{query} echoed into the page"
        );
        let csrf = crate::pages::csrf_field(&page);
        let signed_in = browser
            .post(app.url(&format!("/signin?{query}")))
            .form(&[
                ("csrf", csrf.as_str()),
                ("login", "alex"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 303, "{query}");
        let location = signed_in.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with('/') && !location.starts_with("//") && !location.contains("evil"),
            "{query} → {location}"
        );
    }
    for path in ["//evil.example/", "/\\evil.example", "/%2F%2Fevil.example"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(!location.contains("evil"), "{path} → {location}");
    }
}

/// Pages and answers that carry a token are neither cached nor referred.
#[tokio::test]
async fn token_pages_are_not_cached_or_referred() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex", "Alex").await;
    app.post_json(
        "/api/v1/recovery",
        json!({ "purpose": "password", "channel": "email", "username": "alex" }),
    )
    .await;
    let link = app.messages(1).await[0].data.link.clone().unwrap();
    let opened = app.client.get(&link).send().await.unwrap();
    let form = app.client.get(app.url("/reset")).send().await.unwrap();
    let signed_in = app.sign_in("alex", PASSWORD).await;
    for (what, response) in [("link", opened), ("form", form), ("session", signed_in)] {
        let headers = response.headers();
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        assert_eq!(headers["cache-control"], "no-store", "{what}");
    }
}

/// A client that sends its headers a byte at a time is cut off (slowloris),
/// after `HEADER_READ_TIMEOUT` and well before it could tie up the server.
#[tokio::test]
async fn a_client_too_slow_to_send_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"GET /signin HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let limit = carekey::HEADER_READ_TIMEOUT * 3;
    let mut buffer = [0u8; 1024];
    loop {
        // Keep trickling: one header byte every second, never finishing.
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(1), stream.read(&mut buffer));
        match read.await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => break,
            Err(_) => {
                assert!(
                    started.elapsed() < limit,
                    "the slow client was never cut off"
                );
                if stream.write_all(b"X").await.is_err() {
                    break;
                }
            }
        }
    }
    assert!(
        started.elapsed() >= carekey::HEADER_READ_TIMEOUT / 2,
        "closed at once: the test did not exercise the timeout"
    );
}
