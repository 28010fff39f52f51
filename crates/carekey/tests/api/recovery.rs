//! Self-service recovery end to end (API.md, "Patient: recovery"): the same
//! answer for every account, codes and links delivered through a real SMTP
//! server and the SMS/voice provider stand-in, single use under concurrency,
//! expiry, revocation, what a reset ends, shared family contacts, staff codes,
//! lockout notices and rate limits.

use crate::helpers::{spawn_app_with, Backend, Options, TestApp, BIRTH_DATE, PASSWORD};
use crate::on_both_backends;
use crate::sinks::{code_in, links_in, Mailroom};
use carekey_domain::audit::Actor;
use carekey_domain::message::MessageKind;
use carekey_service::answer_floor;
use chrono::Duration;
use serde_json::{json, Value};

const NEW_PASSWORD: &str = "seven quiet herons fish at dawn";

on_both_backends!(
    known_unknown_and_channel_not_on_file_answer_alike,
    an_emailed_link_works_once_and_opening_it_does_not_use_it,
    the_emailed_code_works_once_and_lists_the_account,
    a_texted_code_and_a_called_code_reach_the_phone,
    twenty_concurrent_resets_with_one_token_make_one_success,
    expired_and_replaced_links_are_gone,
    five_wrong_codes_end_a_flow_real_or_decoy,
    a_reset_ends_every_old_way_in_and_tells_every_contact,
    links_are_built_from_the_public_url_not_the_host_header,
    username_recovery_over_a_shared_email_names_every_account,
    password_recovery_over_a_shared_email_lets_the_patient_choose,
    staff_codes_work_once_with_the_birth_date_and_fail_alike,
    a_lock_tells_every_verified_contact_once,
    asking_for_a_code_does_not_reset_sign_in_failures,
    rate_limits_answer_429_alike_for_known_and_unknown,
    unreadable_identifiers_and_policy_misfits_are_422_for_everyone,
    a_reset_refuses_a_near_copy_of_the_old_password,
    old_rate_limit_counters_are_purged,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_waits_out_the_configured_floor_on_sqlite() {
    every_answer_waits_out_the_configured_floor(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_waits_out_the_configured_floor_on_postgres() {
    every_answer_waits_out_the_configured_floor(Backend::Postgres).await;
}

/// Recovery answers, for a known account as for an unknown one, and answers
/// to a request for an activation code wait out the floor the configuration
/// sets (here a quarter of a second, far beyond the work), not a built-in one.
async fn every_answer_waits_out_the_configured_floor(backend: Backend) {
    let floor = std::time::Duration::from_millis(250);
    let options = Options {
        configure: Some(|config| config.recovery_answer_floor_ms = Some(250)),
        ..Options::default()
    };
    let Some(app) = spawn_app_with(backend, options).await else {
        return;
    };
    assert_eq!(app.settings.answer_floor, floor);
    app.patient_with("alex", "Alex", Some("alex@example.com"), None)
        .await;
    app.set_policy(|policy| policy.activation.self_registration = true)
        .await;
    let requests = [
        (
            "/api/v1/recovery",
            json!({ "purpose": "password", "channel": "email", "username": "alex" }),
        ),
        (
            "/api/v1/recovery",
            json!({ "purpose": "password", "channel": "email", "username": "nobody.here" }),
        ),
        (
            "/api/v1/enrollment/request",
            json!({ "given_name": "Nobody", "family_name": "Here",
                    "date_of_birth": BIRTH_DATE, "postal_code": "78205" }),
        ),
    ];
    for (path, body) in requests {
        let asked = std::time::Instant::now();
        let status = app.post_json(path, body.clone()).await.status();
        let took = asked.elapsed();
        assert_eq!(status, 202, "{path} {body}");
        assert!(took >= floor, "{path} {body} answered after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_shorter_than_the_work_rises_to_cover_it() {
    a_floor_shorter_than_the_work_rises(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_shorter_than_the_work_rises_to_cover_it_on_postgres() {
    a_floor_shorter_than_the_work_rises(Backend::Postgres).await;
}

/// With no floor configured, enough requests made one at a time (as a prober
/// makes them) raise the recovery floor past their own work, known and
/// unknown alike, and /metrics shows it; the activation floor, not asked,
/// stays.
async fn a_floor_shorter_than_the_work_rises(backend: Backend) {
    let options = Options {
        configure: Some(|config| config.recovery_answer_floor_ms = Some(0)),
        ..Options::default()
    };
    let Some(app) = spawn_app_with(backend, options).await else {
        return;
    };
    app.patient_with("alex", "Alex", Some("alex@example.com"), None)
        .await;
    app.set_policy(|policy| policy.recovery.per_ip_per_15_minutes = 1_000)
        .await;
    assert_eq!(app.answer_floors().await, (0.0, 0.0));
    let known = (0..4).map(|_| "alex".to_owned());
    let unknown = (0..answer_floor::FEWEST).map(|n| format!("nobody.{n}"));
    for username in known.chain(unknown) {
        let body = json!({ "purpose": "password", "channel": "email", "username": username });
        assert_eq!(recover(&app, body).await.status(), 202);
    }
    let (recovery, activation) = app.answer_floors().await;
    assert!(recovery > 0.0, "the recovery floor stayed at {recovery} s");
    assert_eq!(activation, 0.0);
}

async fn recover(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/recovery", body).await
}

async fn flow_of(app: &TestApp, body: Value) -> String {
    let response = recover(app, body).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["flow_id"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, flow: &str, code: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/recovery/{flow}/verify"),
        json!({ "code": code }),
    )
    .await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/password/reset",
        json!({ "token": token, "new_password": password, "new_password_confirm": password }),
    )
    .await
}

/// The token of a reset link.
fn token_of(link: &str) -> String {
    link.split_once("token=").unwrap().1.to_owned()
}

async fn error_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// Everything a client could compare between two answers: the status, every
/// header but the date and request id, and the body without the flow id.
async fn observable(response: reqwest::Response) -> (u16, Vec<(String, String)>, Value) {
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let mut body: Value = response.json().await.unwrap();
    let flow = body["flow_id"].take();
    assert!(
        flow.as_str().is_some_and(|f| f.len() == 36),
        "{status}: {body}"
    );
    (status, headers, body)
}

async fn known_unknown_and_channel_not_on_file_answer_alike(app: TestApp) {
    app.patient_with(
        "alex",
        "Alex",
        Some("alex@example.com"),
        Some("210-555-0142"),
    )
    .await;
    app.patient_with("robin", "Robin", Some("robin@example.com"), None)
        .await;
    app.patient_with("casey", "Casey", None, Some("210-555-0177"))
        .await;
    let cases = [
        ("password", "email"),
        ("password", "sms"),
        ("password", "voice"),
        ("username", "email"),
        ("username", "sms"),
        ("username", "voice"),
    ];
    for (purpose, channel) in cases {
        // Casey has no email and Robin no phone: the channel has nowhere to go.
        let identifiers: [(&str, Value); 3] = match (purpose, channel) {
            ("password", "email") => [
                ("known", json!({ "username": "alex" })),
                ("unknown", json!({ "username": "nobody.here" })),
                ("no such channel", json!({ "username": "casey" })),
            ],
            ("password", _) => [
                ("known", json!({ "username": "alex" })),
                ("unknown", json!({ "username": "nobody.here" })),
                ("no such channel", json!({ "username": "robin" })),
            ],
            (_, "email") => [
                ("known", json!({ "email": "alex@example.com" })),
                ("unknown", json!({ "email": "nobody@example.com" })),
                ("no such channel", json!({ "phone": "210-555-0177" })),
            ],
            _ => [
                ("known", json!({ "phone": "210-555-0142" })),
                ("unknown", json!({ "phone": "210-555-0199" })),
                ("no such channel", json!({ "email": "robin@example.com" })),
            ],
        };
        let mut answers = Vec::new();
        for (case, ids) in identifiers {
            let mut body = ids.clone();
            body["purpose"] = purpose.into();
            body["channel"] = channel.into();
            answers.push((case, observable(recover(&app, body).await).await));
        }
        for (case, answer) in &answers[1..] {
            assert_eq!(
                answer, &answers[0].1,
                "{purpose} by {channel}: {case} differs from known"
            );
        }
        assert_eq!(answers[0].1 .0, 202);
    }
    let queued = app.messages(50).await;
    assert_eq!(queued.len(), 6, "one message per known case: {queued:?}");
    assert!(queued
        .iter()
        .all(|m| m.recipient == "alex@example.com" || m.recipient == "+12105550142"));
}

async fn an_emailed_link_works_once_and_opening_it_does_not_use_it(app: TestApp) {
    let Some(mailroom) = Mailroom::open().await else {
        return;
    };
    app.patient("alex", "Alex").await;
    flow_of(
        &app,
        json!({ "purpose": "password", "channel": "email", "username": "alex" }),
    )
    .await;
    assert_eq!(mailroom.deliver(&app).await, 1);
    let email = &mailroom.emails_to("alex@example.com")[0];
    assert!(email.subject.contains("Reset your"), "{email:?}");
    let link = links_in(&email.text).pop().expect("a reset link");
    assert!(
        link.starts_with(&format!("{}/reset?token=", app.address)),
        "{link}"
    );

    // A mail scanner (or the patient) opening the link does not use it up.
    for _ in 0..2 {
        let opened = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(&link)
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status(), 303);
        assert_eq!(opened.headers()["location"], "/reset");
        assert_eq!(opened.headers()["referrer-policy"], "no-referrer");
        assert_eq!(opened.headers()["cache-control"], "no-store");
    }

    let token = token_of(&link);
    let done = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(done.status(), 200);
    assert_eq!(error_of(done).await, json!({ "username": "alex" }));
    let again = reset(&app, &token, "another long and fine passphrase").await;
    assert_eq!(again.status(), 410);
    assert_eq!(error_of(again).await["error"], "invalid_or_expired_token");
    assert_eq!(app.sign_in("alex", NEW_PASSWORD).await.status(), 200);
}

async fn the_emailed_code_works_once_and_lists_the_account(app: TestApp) {
    let Some(mailroom) = Mailroom::open().await else {
        return;
    };
    app.patient("alex", "Alex").await;
    let flow = flow_of(
        &app,
        json!({ "purpose": "password", "channel": "email", "email": "ALEX@example.com " }),
    )
    .await;
    mailroom.deliver(&app).await;
    let code = code_in(&mailroom.emails_to("alex@example.com")[0].text, 6).unwrap();

    let verified = verify(&app, &flow, &code).await;
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.headers()["cache-control"], "no-store");
    let body: Value = verified.json().await.unwrap();
    let accounts = body["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["username"], "alex");
    let again = verify(&app, &flow, &code).await;
    assert_eq!(again.status(), 410, "a code works once");
    assert_eq!(error_of(again).await["error"], "flow_expired");

    let token = accounts[0]["reset_token"].as_str().unwrap();
    assert_eq!(reset(&app, token, NEW_PASSWORD).await.status(), 200);
    assert_eq!(app.sign_in("alex", NEW_PASSWORD).await.status(), 200);
    assert_eq!(app.sign_in("alex", PASSWORD).await.status(), 401);
}

async fn a_texted_code_and_a_called_code_reach_the_phone(app: TestApp) {
    let Some(mailroom) = Mailroom::open().await else {
        return;
    };
    app.patient_with("alex", "Alex", None, Some("(210) 555-0142"))
        .await;
    let flow = flow_of(
        &app,
        json!({ "purpose": "password", "channel": "sms", "phone": "+1 210 555 0142" }),
    )
    .await;
    mailroom.deliver(&app).await;
    let texts = mailroom.phone_messages_to("+12105550142");
    assert_eq!(texts.len(), 1);
    assert!(texts[0].path.ends_with("/Messages.json"));
    let code = code_in(texts[0].field("Body").unwrap(), 6).unwrap();
    let body: Value = verify(&app, &flow, &code).await.json().await.unwrap();
    assert_eq!(body["accounts"][0]["username"], "alex");

    flow_of(
        &app,
        json!({ "purpose": "password", "channel": "voice", "username": "alex" }),
    )
    .await;
    mailroom.deliver(&app).await;
    let calls = mailroom.phone_messages_to("+12105550142");
    let call = calls.last().unwrap();
    assert!(call.path.ends_with("/Calls.json"));
    let twiml = call.field("Twiml").unwrap();
    assert!(twiml.contains("<Say"), "{twiml}");
}

/// A reset token for the account, by way of a staff code.
async fn reset_token_for(app: &TestApp, account: carekey_domain::ids::AccountId) -> String {
    let (code, _) = app
        .services
        .issue_staff_code(account, Actor::System, json!({}))
        .await
        .unwrap();
    let redeemed: Value = app
        .post_json(
            "/api/v1/recovery/staff-code",
            json!({ "code": code, "date_of_birth": BIRTH_DATE }),
        )
        .await
        .json()
        .await
        .unwrap();
    redeemed["accounts"][0]["reset_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn twenty_concurrent_resets_with_one_token_make_one_success(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    let token = reset_token_for(&app, account).await;
    let attempts = (0..20).map(|i| {
        let app = &app;
        let token = token.clone();
        async move {
            reset(app, &token, &format!("{NEW_PASSWORD} number {i}"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 410),
        "{statuses:?}"
    );
    assert_eq!(
        app.services
            .store
            .count_audit("password.reset")
            .await
            .unwrap(),
        1
    );
}

async fn expired_and_replaced_links_are_gone(app: TestApp) {
    app.patient("alex", "Alex").await;
    let link_of = |message: &carekey_domain::message::MessageRecord| {
        token_of(message.data.link.as_deref().unwrap())
    };
    let request = json!({ "purpose": "password", "channel": "email", "username": "alex" });
    flow_of(&app, request.clone()).await;
    let first = link_of(&app.messages(1).await[0]);
    app.advance(Duration::minutes(61));
    let expired = reset(&app, &first, NEW_PASSWORD).await;
    assert_eq!(expired.status(), 410, "the email link works 60 minutes");

    let older = flow_of(&app, request.clone()).await;
    app.advance(Duration::seconds(1));
    let older_message = app.messages(1).await[0].clone();
    let older_link = link_of(&older_message);
    let older_code = older_message.data.code.clone().unwrap();
    flow_of(&app, request).await;
    let replaced = reset(&app, &older_link, NEW_PASSWORD).await;
    assert_eq!(
        replaced.status(),
        410,
        "a newer request revokes the older link"
    );
    assert_eq!(verify(&app, &older, &older_code).await.status(), 410);
    let newest = link_of(&app.messages(1).await[0]);
    assert_eq!(reset(&app, &newest, NEW_PASSWORD).await.status(), 200);
}

async fn five_wrong_codes_end_a_flow_real_or_decoy(app: TestApp) {
    app.patient("alex", "Alex").await;
    let real = flow_of(
        &app,
        json!({ "purpose": "password", "channel": "email", "username": "alex" }),
    )
    .await;
    let code = app.messages(1).await[0].data.code.clone().unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let decoy = flow_of(
        &app,
        json!({ "purpose": "password", "channel": "email", "username": "nobody.here" }),
    )
    .await;
    for flow in [&real, &decoy] {
        for left in (0..5).rev() {
            let answer = verify(&app, flow, wrong).await;
            assert_eq!(answer.status(), 400);
            let body = error_of(answer).await;
            assert_eq!(body["error"], "invalid_code");
            assert_eq!(body["attempts_left"], left);
        }
        assert_eq!(verify(&app, flow, wrong).await.status(), 410);
    }
    assert_eq!(
        verify(&app, &real, &code).await.status(),
        410,
        "the right code is too late once the flow is dead"
    );
    let unknown = verify(&app, "6f1c1d5e-0000-4000-8000-000000000000", "123456").await;
    assert_eq!(unknown.status(), 410);
    assert_eq!(verify(&app, "not-a-flow", "123456").await.status(), 410);
}

async fn a_reset_ends_every_old_way_in_and_tells_every_contact(app: TestApp) {
    let Some(mailroom) = Mailroom::open().await else {
        return;
    };
    let account = app
        .patient_with(
            "alex",
            "Alex",
            Some("alex@example.com"),
            Some("210-555-0142"),
        )
        .await;
    let sessions = [
        app.session_token("alex").await,
        app.session_token("alex").await,
    ];
    for _ in 0..5 {
        app.sign_in("alex", "not the password at all").await;
    }
    assert_eq!(app.sign_in("alex", PASSWORD).await.status(), 401, "locked");
    let (staff_code, _) = app
        .services
        .issue_staff_code(account, Actor::System, json!({}))
        .await
        .unwrap();
    app.advance(Duration::seconds(1));
    let sms_flow = flow_of(
        &app,
        json!({ "purpose": "password", "channel": "sms", "username": "alex" }),
    )
    .await;
    let texted = app.messages(1).await[0].data.code.clone().unwrap();
    let body: Value = verify(&app, &sms_flow, &texted).await.json().await.unwrap();
    let token = body["accounts"][0]["reset_token"]
        .as_str()
        .unwrap()
        .to_owned();
    mailroom.deliver(&app).await;
    let before = (
        mailroom.emails_to("alex@example.com").len(),
        mailroom.phone_messages_to("+12105550142").len(),
    );

    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), 200);

    for session in &sessions {
        assert_eq!(app.current_session(session).await.status(), 401);
    }
    let redeemed = app
        .post_json(
            "/api/v1/recovery/staff-code",
            json!({ "code": staff_code, "date_of_birth": BIRTH_DATE }),
        )
        .await;
    assert_eq!(redeemed.status(), 400, "the staff code died with the reset");
    assert_eq!(app.sign_in("alex", PASSWORD).await.status(), 401);
    assert_eq!(
        app.sign_in("alex", NEW_PASSWORD).await.status(),
        200,
        "the lock is cleared"
    );
    mailroom.deliver(&app).await;
    let emails = mailroom.emails_to("alex@example.com");
    let texts = mailroom.phone_messages_to("+12105550142");
    let changed_emails = emails
        .iter()
        .filter(|e| e.subject.contains("password was changed"))
        .count();
    let changed_texts = texts
        .iter()
        .filter(|t| {
            t.field("Body")
                .unwrap_or_default()
                .contains("password was changed")
        })
        .count();
    assert_eq!(
        (changed_emails, changed_texts),
        (1, 1),
        "one notice on each verified contact (before: {before:?})"
    );
}

async fn links_are_built_from_the_public_url_not_the_host_header(app: TestApp) {
    app.patient("alex", "Alex").await;
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/recovery"))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.example;proto=https")
        .json(&json!({ "purpose": "password", "channel": "email", "username": "alex" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let message = &app.messages(1).await[0];
    let link = message.data.link.as_deref().unwrap();
    assert!(
        link.starts_with(&format!("{}/reset?token=", app.address)),
        "{link}"
    );
    assert!(!link.contains("evil"));
}

async fn username_recovery_over_a_shared_email_names_every_account(app: TestApp) {
    let Some(mailroom) = Mailroom::open().await else {
        return;
    };
    for (username, name) in [
        ("sarah.t", "Sarah"),
        ("ethan.t", "Ethan"),
        ("lily.t", "Lily"),
    ] {
        app.patient_with_email(username, name, "thompson.family@example.com")
            .await;
    }
    flow_of(&app, json!({ "purpose": "username", "channel": "email", "email": "thompson.family@example.com" })).await;
    assert_eq!(mailroom.deliver(&app).await, 1, "one email names them all");
    let email = &mailroom.emails_to("thompson.family@example.com")[0];
    for username in ["sarah.t", "ethan.t", "lily.t"] {
        assert!(email.text.contains(username), "{username}: {}", email.text);
    }
    assert!(
        code_in(&email.text, 6).is_none(),
        "a reminder carries no code"
    );
}

async fn password_recovery_over_a_shared_email_lets_the_patient_choose(app: TestApp) {
    for (username, name) in [("sarah.t", "Sarah"), ("ethan.t", "Ethan")] {
        app.patient_with_email(username, name, "thompson.family@example.com")
            .await;
    }
    let flow = flow_of(&app, json!({ "purpose": "password", "channel": "email", "email": "thompson.family@example.com" })).await;
    let messages = app.messages(5).await;
    assert_eq!(messages.len(), 1);
    let data = &messages[0].data;
    assert_eq!(messages[0].kind, MessageKind::PasswordReset);
    let names: Vec<_> = data
        .account_links
        .iter()
        .map(|l| l.username.as_str())
        .collect();
    assert_eq!(names, ["sarah.t", "ethan.t"], "one link per account");
    let ethan_link = token_of(&data.account_links[1].link);

    let body: Value = verify(&app, &flow, data.code.as_deref().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let mut usernames: Vec<_> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap().to_owned())
        .collect();
    usernames.sort();
    assert_eq!(usernames, ["ethan.t", "sarah.t"]);

    assert_eq!(reset(&app, &ethan_link, NEW_PASSWORD).await.status(), 200);
    assert_eq!(app.sign_in("ethan.t", NEW_PASSWORD).await.status(), 200);
    assert_eq!(
        app.sign_in("sarah.t", PASSWORD).await.status(),
        200,
        "only the chosen account changed"
    );
}

async fn staff_codes_work_once_with_the_birth_date_and_fail_alike(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    let (code, expires_at) = app
        .services
        .issue_staff_code(account, Actor::System, json!({}))
        .await
        .unwrap();
    assert_eq!(code.len(), 14, "{code}");
    assert_eq!(expires_at - app.now(), Duration::hours(24));
    let redeem = |code: String, born: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/recovery/staff-code",
                json!({ "code": code, "date_of_birth": born }),
            )
            .await
        }
    };
    let wrong_birth = redeem(code.clone(), "1970-02-01").await;
    let unknown = redeem("ZZZZ-ZZZZ-ZZZZ".into(), BIRTH_DATE).await;
    assert_eq!(
        (wrong_birth.status().as_u16(), unknown.status().as_u16()),
        (400, 400)
    );
    let (wrong_birth, unknown) = (error_of(wrong_birth).await, error_of(unknown).await);
    assert_eq!(wrong_birth, unknown, "nothing tells which codes exist");
    assert!(wrong_birth.get("attempts_left").is_none());
    assert_eq!(
        redeem("garbage!".into(), "31/01/1970").await.status(),
        422,
        "an unreadable date is refused for everyone"
    );

    let typed = code.to_lowercase().replace('-', " ");
    let accepted = redeem(typed, BIRTH_DATE).await;
    assert_eq!(accepted.status(), 200, "case and dashes do not matter");
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["accounts"][0]["username"], "alex");
    assert_eq!(redeem(code, BIRTH_DATE).await.status(), 400, "used once");

    let (second, _) = app
        .services
        .issue_staff_code(account, Actor::System, json!({}))
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(redeem(second.clone(), "1999-09-09").await.status(), 400);
    }
    assert_eq!(
        redeem(second, BIRTH_DATE).await.status(),
        400,
        "five wrong birth dates end the code"
    );
}

async fn a_lock_tells_every_verified_contact_once(app: TestApp) {
    app.patient_with(
        "alex",
        "Alex",
        Some("alex@example.com"),
        Some("210-555-0142"),
    )
    .await;
    for _ in 0..7 {
        app.sign_in("alex", "not the password at all").await;
    }
    let notices: Vec<_> = app
        .messages(20)
        .await
        .into_iter()
        .filter(|m| m.kind == MessageKind::AccountLocked)
        .collect();
    let mut recipients: Vec<_> = notices.iter().map(|m| m.recipient.as_str()).collect();
    recipients.sort();
    assert_eq!(recipients, ["+12105550142", "alex@example.com"]);
    let link = notices[0].data.link.as_deref().unwrap();
    assert_eq!(link, format!("{}/forgot-password", app.address));
}

async fn asking_for_a_code_does_not_reset_sign_in_failures(app: TestApp) {
    app.patient("alex", "Alex").await;
    for _ in 0..3 {
        app.sign_in("alex", "not the password at all").await;
    }
    flow_of(
        &app,
        json!({ "purpose": "password", "channel": "email", "username": "alex" }),
    )
    .await;
    for _ in 0..2 {
        app.sign_in("alex", "not the password at all").await;
    }
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        401,
        "the fifth failure locked the account, request or not"
    );
}

async fn rate_limits_answer_429_alike_for_known_and_unknown(app: TestApp) {
    app.patient("alex", "Alex").await;
    let mut last = Vec::new();
    for username in ["alex", "nobody.here"] {
        let body = json!({ "purpose": "password", "channel": "email", "username": username });
        for _ in 0..5 {
            assert_eq!(recover(&app, body.clone()).await.status(), 202);
        }
        let refused = recover(&app, body).await;
        assert_eq!(refused.status(), 429, "{username}");
        let retry: i64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
        last.push((retry, error_of(refused).await));
    }
    assert_eq!(
        last[0], last[1],
        "the same refusal for a known and an unknown account"
    );
    assert_eq!(last[0].1["error"], "rate_limited");
    let alex_messages = app.messages(20).await.len();
    assert_eq!(alex_messages, 5, "five messages an hour at most");
    let store = &app.services.store;
    assert_eq!(
        store.count_audit("staff_code.rejected").await.unwrap(),
        0,
        "a refused recovery request is not a staff code"
    );
    assert_eq!(store.count_audit("recovery.requested").await.unwrap(), 12);

    // Per client address: 30 requests in 15 minutes, whatever they name.
    for i in 0..18 {
        let body = json!({ "purpose": "username", "channel": "email", "email": format!("someone{i}@example.com") });
        assert_eq!(recover(&app, body).await.status(), 202, "request {i}");
    }
    let body =
        json!({ "purpose": "username", "channel": "email", "email": "one.more@example.com" });
    assert_eq!(recover(&app, body.clone()).await.status(), 429);
    app.advance(Duration::minutes(16));
    assert_eq!(recover(&app, body).await.status(), 202, "the window passes");
}

async fn unreadable_identifiers_and_policy_misfits_are_422_for_everyone(app: TestApp) {
    app.patient("alex", "Alex").await;
    for body in [
        json!({ "purpose": "password", "channel": "email", "email": "not an email" }),
        json!({ "purpose": "password", "channel": "sms", "phone": "12" }),
        json!({ "purpose": "password", "channel": "email", "username": "alex", "date_of_birth": "31/01/1970" }),
        json!({ "purpose": "password", "channel": "email" }),
        json!({ "purpose": "password", "channel": "pigeon", "username": "alex" }),
        json!({ "purpose": "username", "channel": "email", "username": "alex" }),
    ] {
        let answer = recover(&app, body.clone()).await;
        assert_eq!(answer.status(), 422, "{body}");
        assert_eq!(error_of(answer).await["error"], "invalid_request", "{body}");
    }
    app.set_policy(|policy| {
        policy.recovery.identifiers = vec![vec!["username".into(), "date_of_birth".into()]];
    })
    .await;
    let alone = recover(
        &app,
        json!({ "purpose": "password", "channel": "email", "username": "alex" }),
    )
    .await;
    assert_eq!(alone.status(), 422, "the policy wants the birth date too");
    let wrong_birth = json!({ "purpose": "password", "channel": "email", "username": "alex", "date_of_birth": "1971-01-31" });
    assert_eq!(recover(&app, wrong_birth).await.status(), 202);
    assert!(
        app.messages(5).await.is_empty(),
        "every identifier must match"
    );
    let right = json!({ "purpose": "password", "channel": "email", "username": "alex", "date_of_birth": BIRTH_DATE });
    assert_eq!(recover(&app, right).await.status(), 202);
    assert_eq!(app.messages(5).await.len(), 1);
}

async fn a_reset_refuses_a_near_copy_of_the_old_password(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    let token = &reset_token_for(&app, account).await;
    let same = reset(&app, token, PASSWORD).await;
    assert_eq!(same.status(), 422);
    let rules: Vec<_> = error_of(same).await["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap().to_owned())
        .collect();
    assert!(rules.contains(&"history".to_owned()), "{rules:?}");
    let near = reset(&app, token, &format!("{PASSWORD}2")).await;
    assert_eq!(near.status(), 422);
    let rules = error_of(near).await["violations"].to_string();
    assert!(rules.contains("near_copy"), "{rules}");
    let mismatch = app
        .post_json(
            "/api/v1/password/reset",
            json!({ "token": token, "new_password": NEW_PASSWORD, "new_password_confirm": "something else" }),
        )
        .await;
    assert_eq!(mismatch.status(), 400);
    assert_eq!(error_of(mismatch).await["error"], "password_mismatch");
    assert_eq!(
        reset(&app, token, NEW_PASSWORD).await.status(),
        200,
        "refusals did not use the token"
    );
}

async fn old_rate_limit_counters_are_purged(app: TestApp) {
    for i in 0..3 {
        let body = json!({ "purpose": "username", "channel": "email", "email": format!("someone{i}@example.com") });
        assert_eq!(recover(&app, body).await.status(), 202);
    }
    let counters = app.count("SELECT COUNT(*) FROM rate_limits").await;
    assert!(
        counters >= 4,
        "one per address and per identifier: {counters}"
    );
    assert_eq!(
        app.services.housekeeping().await.unwrap(),
        0,
        "nothing old yet"
    );
    app.advance(Duration::days(2));
    assert_eq!(
        app.services.housekeeping().await.unwrap(),
        u64::try_from(counters).unwrap()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM rate_limits").await, 0);
}
