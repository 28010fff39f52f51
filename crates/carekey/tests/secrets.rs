//! Secrets never leak: a real `carekey serve` logging at TRACE (every crate,
//! SQL statements included) is driven through every flow — enrollment,
//! sign-in, recovery by link and code, reset, password change, contact
//! change, staff sign-in with TOTP and a front-desk code — and no password,
//! token, code, session id or TOTP secret may appear in its log, in the audit
//! export, or in any error answer.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use process::{prepare, staff_session_and_secret, verification, Server, STAFF_PASSWORD};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const BIRTH_DATE: &str = "1958-03-14";

/// Every request the test makes, with what came back.
struct Driver {
    base: String,
    client: reqwest::Client,
    /// The bodies of every answer that was not a success.
    error_bodies: Vec<String>,
}

impl Driver {
    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if status >= 400 {
            self.error_bodies.push(text.clone());
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&mut self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }
}

/// The newest email the file sender wrote to `to` that was not seen before:
/// its decoded text.
async fn next_email(outbox: &Path, to: &str, seen: &mut Vec<String>) -> String {
    use mailparse::MailHeaderMap;
    for _ in 0..200 {
        let mut names: Vec<String> = std::fs::read_dir(outbox)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            let raw = std::fs::read(outbox.join(&name)).unwrap();
            let mail = mailparse::parse_mail(&raw).unwrap();
            if mail.headers.get_first_value("To").as_deref() != Some(to) {
                continue;
            }
            seen.push(name);
            let text = match mail.subparts.first() {
                Some(part) => part.get_body().unwrap(),
                None => mail.get_body().unwrap(),
            };
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new email to {to}");
}

fn reset_token_in(text: &str) -> String {
    let start = text.find("/reset?token=").expect("a reset link") + "/reset?token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn six_digits_in(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    for i in 0..chars.len().saturating_sub(5) {
        let window = &chars[i..i + 6];
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 6);
        if window.iter().all(char::is_ascii_digit)
            && !before.is_some_and(|c| c.is_ascii_digit())
            && !after.is_some_and(char::is_ascii_digit)
        {
            return window.iter().collect();
        }
    }
    panic!("no code in {text}");
}

/// Where `secret` shows up in `text`, in any of the forms a log could hold
/// it (as is, form-encoded, percent-encoded, JSON-escaped). Short numeric
/// codes count only standing alone: not inside a longer number or a
/// fraction of a second.
fn leaks(text: &str, secret: &str) -> Vec<String> {
    let forms = [
        secret.to_owned(),
        secret.replace(' ', "+"),
        secret.replace(' ', "%20"),
    ];
    let mut found = Vec::new();
    for form in forms {
        for (at, _) in text.match_indices(&form) {
            let before = text[..at].chars().next_back();
            let after = text[at + form.len()..].chars().next();
            if form.len() < 12 && form.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                let joined = |c: Option<char>| {
                    c.is_some_and(|c| c.is_ascii_alphanumeric() || ".:-+".contains(c))
                };
                if joined(before) || joined(after) {
                    continue;
                }
            }
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map_or(0, |(i, _)| i);
            let to = (at + form.len() + 80).min(text.len());
            let to = (to..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap();
            found.push(text[from..to].to_owned());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_the_audit_export_or_an_error_body() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let database_url = carekey_store::testing::fresh_sqlite_url(data);
    prepare(data, &database_url);
    let log = data.join("trace.log");
    let server = Server::start_logging(
        data,
        &database_url,
        process::free_port(),
        Some((&log, "trace")),
    )
    .await;
    let outbox = data.join("outbox");
    let mut seen_mail = Vec::new();
    let mut secrets: Vec<(&str, String)> = vec![("staff password", STAFF_PASSWORD.into())];
    let mut api = Driver {
        base: server.base.clone(),
        client: reqwest::Client::new(),
        error_bodies: Vec::new(),
    };

    // Staff: sign-in with a second factor, a patient, a printed invitation.
    let (staff, totp_secret) = staff_session_and_secret(&server.base).await;
    secrets.push(("staff session", staff.clone()));
    secrets.push(("TOTP secret", totp_secret));
    let wrong_staff = api
        .post(
            "/api/v1/staff/sessions",
            None,
            json!({ "username": process::STAFF, "password": "a wrong staff passphrase" }),
        )
        .await;
    assert_eq!(wrong_staff.0, 401);
    secrets.push(("wrong staff password", "a wrong staff passphrase".into()));
    let (status, patient) = api
        .post(
            "/api/v1/staff/patients",
            Some(&staff),
            json!({ "mrn": "MRN-SECRET", "given_name": "Rosa", "family_name": "Quill",
                    "date_of_birth": BIRTH_DATE, "email": "rosa.quill@example.com",
                    "phone": "(210) 555-0177" }),
        )
        .await;
    assert_eq!(status, 201, "{patient}");
    let id = patient["id"].as_str().unwrap().to_owned();
    let (_, invited) = api
        .post(
            &format!("/api/v1/staff/patients/{id}/portal/invite"),
            Some(&staff),
            json!({ "channel": "print", "verification": verification() }),
        )
        .await;
    let activation = invited["activation_code"].as_str().unwrap().to_owned();
    secrets.push(("activation code", activation.clone()));

    // Enrollment, with a wrong code first.
    let wrong = api
        .post(
            "/api/v1/enrollment",
            None,
            json!({ "activation_code": "ZZZZ-ZZZZ-ZZZZ", "date_of_birth": BIRTH_DATE }),
        )
        .await;
    assert_eq!(wrong.0, 400);
    let (_, started) = api
        .post(
            "/api/v1/enrollment",
            None,
            json!({ "activation_code": activation, "date_of_birth": BIRTH_DATE }),
        )
        .await;
    let enrollment = started["enrollment_token"].as_str().unwrap().to_owned();
    secrets.push(("enrollment token", enrollment.clone()));
    let first = "velvet otter paddles upstream";
    secrets.push(("first password", first.into()));
    let weak = api
        .post(
            "/api/v1/enrollment/complete",
            None,
            json!({ "enrollment_token": enrollment, "username": "rosa.quill",
                    "password": "password123", "password_confirm": "password123" }),
        )
        .await;
    assert_eq!(weak.0, 422);
    secrets.push(("rejected password", "password123".into()));
    let done = api
        .post(
            "/api/v1/enrollment/complete",
            None,
            json!({ "enrollment_token": enrollment, "username": "rosa.quill",
                    "password": first, "password_confirm": first }),
        )
        .await;
    assert_eq!(done.0, 201);

    // Sign-in: wrong, then right; the session used and ended.
    let wrong_password = "otter velvet paddles downstream";
    secrets.push(("wrong password", wrong_password.into()));
    let failed = api
        .post(
            "/api/v1/sessions",
            None,
            json!({ "login": "rosa.quill", "password": wrong_password }),
        )
        .await;
    assert_eq!(failed.0, 401);
    let (_, session) = api
        .post(
            "/api/v1/sessions",
            None,
            json!({ "login": "rosa.quill", "password": first }),
        )
        .await;
    let session = session["session_token"].as_str().unwrap().to_owned();
    secrets.push(("patient session", session.clone()));

    // Change the password while signed in (wrong current one first).
    let second = "copper kettle hums at dawn";
    secrets.push(("second password", second.into()));
    let refused = api
        .post(
            "/api/v1/me/password",
            Some(&session),
            json!({ "current_password": wrong_password, "new_password": second,
                    "new_password_confirm": second }),
        )
        .await;
    assert_eq!(refused.0, 401);
    let changed = api
        .post(
            "/api/v1/me/password",
            Some(&session),
            json!({ "current_password": first, "new_password": second,
                    "new_password_confirm": second }),
        )
        .await;
    assert_eq!(changed.0, 204);

    // Recovery by email: the link's token and the code, a wrong code, a reset.
    let (status, flow) = api
        .post(
            "/api/v1/recovery",
            None,
            json!({ "purpose": "password", "channel": "email", "username": "rosa.quill" }),
        )
        .await;
    assert_eq!(status, 202);
    let flow = flow["flow_id"].as_str().unwrap().to_owned();
    let email = loop {
        let text = next_email(&outbox, "rosa.quill@example.com", &mut seen_mail).await;
        if text.contains("/reset?token=") {
            break text;
        }
    };
    let link_token = reset_token_in(&email);
    let code = six_digits_in(&email);
    secrets.push(("reset link token", link_token.clone()));
    secrets.push(("emailed code", code.clone()));
    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    let refused = api
        .post(
            &format!("/api/v1/recovery/{flow}/verify"),
            None,
            json!({ "code": wrong_code }),
        )
        .await;
    assert_eq!(refused.0, 400);
    let (_, verified) = api
        .post(
            &format!("/api/v1/recovery/{flow}/verify"),
            None,
            json!({ "code": code }),
        )
        .await;
    let reset_token = verified["accounts"][0]["reset_token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(("reset token", reset_token.clone()));
    // The link as a browser opens it: the token is in the URL.
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/reset?token={link_token}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    let third = "maple lantern glows softly";
    secrets.push(("third password", third.into()));
    let reset = api
        .post(
            "/api/v1/password/reset",
            None,
            json!({ "token": reset_token, "new_password": third, "new_password_confirm": third }),
        )
        .await;
    assert_eq!(reset.0, 200);
    let again = api
        .post(
            "/api/v1/password/reset",
            None,
            json!({ "token": link_token, "new_password": third, "new_password_confirm": third }),
        )
        .await;
    assert_eq!(again.0, 410);

    // A contact change proved by a code.
    let (_, session) = api
        .post(
            "/api/v1/sessions",
            None,
            json!({ "login": "rosa.quill", "password": third }),
        )
        .await;
    let session = session["session_token"].as_str().unwrap().to_owned();
    secrets.push(("second patient session", session.clone()));
    let (status, change) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/me/contacts/email",
            Some(&session),
            Some(json!({ "value": "rosa.q@example.org", "password": third })),
        )
        .await;
    assert_eq!(status, 202, "{change}");
    let text = next_email(&outbox, "rosa.q@example.org", &mut seen_mail).await;
    let contact_code = six_digits_in(&text);
    secrets.push(("contact code", contact_code.clone()));
    let verified = api
        .post(
            "/api/v1/me/contacts/verify",
            Some(&session),
            json!({ "flow_id": change["flow_id"], "code": contact_code }),
        )
        .await;
    assert_eq!(verified.0, 204);

    // A front-desk code, redeemed with a wrong birth date first.
    let (_, staff_code) = api
        .post(
            &format!("/api/v1/staff/patients/{id}/portal/reset-code"),
            Some(&staff),
            json!({ "verification": verification() }),
        )
        .await;
    let staff_code = staff_code["code"].as_str().unwrap().to_owned();
    secrets.push(("front-desk code", staff_code.clone()));
    let wrong_birth = api
        .post(
            "/api/v1/recovery/staff-code",
            None,
            json!({ "code": staff_code, "date_of_birth": "1999-01-01" }),
        )
        .await;
    assert_eq!(wrong_birth.0, 400);
    let signed_out = api
        .send(
            reqwest::Method::DELETE,
            "/api/v1/sessions/current",
            Some(&session),
            None,
        )
        .await;
    assert_eq!(signed_out.0, 204);
    let ended = api
        .send(
            reqwest::Method::GET,
            "/api/v1/sessions/current",
            Some(&session),
            None,
        )
        .await;
    assert_eq!(ended.0, 401);

    let (status, audit) = api
        .send(
            reqwest::Method::GET,
            "/api/v1/staff/audit",
            Some(&staff),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let audit = audit.to_string();
    assert!(audit.contains("password.reset") && audit.contains("sign_in.failed"));
    drop(server);

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        // Nothing in the stack emits at TRACE itself; DEBUG's SQL statements
        // and request lines show the filter let everything through.
        log.contains("db.statement")
            && log.contains("started processing request")
            && log.lines().count() > 200,
        "the server did not log verbosely ({} lines):\n{}",
        log.lines().count(),
        log.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(
        api.error_bodies.len() >= 8,
        "too few error answers looked at"
    );
    // The search itself works: the flow id (not a secret) is in the request
    // paths the log records.
    assert!(
        !leaks(&log, &flow).is_empty(),
        "the search finds what is in the log"
    );
    let errors = api.error_bodies.join("\n");
    let mut found = Vec::new();
    for (what, secret) in &secrets {
        for (place, text) in [
            ("log", &log),
            ("audit export", &audit),
            ("error body", &errors),
        ] {
            for context in leaks(text, secret) {
                found.push(format!("{what} in the {place}: …{context}…"));
            }
        }
    }
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}
