//! Patient sign-in, lockout and sessions over `/api/v1/sessions`.

use crate::helpers::{TestApp, PASSWORD};
use crate::on_both_backends;
use carekey_domain::audit::Actor;
use carekey_domain::identifiers::Username;
use chrono::Duration;

on_both_backends!(
    patients_sign_in_by_username_or_email_in_any_case,
    every_kind_of_failure_gets_the_byte_identical_401,
    five_failures_lock_the_account_even_for_the_right_password,
    locks_escalate_then_hold_until_a_staff_unlock,
    a_success_clears_the_failure_count,
    twenty_concurrent_wrong_passwords_count_twenty_failures,
    each_sign_in_issues_a_new_session_id,
    signing_out_revokes_the_session,
    idle_and_absolute_expiry_end_the_session,
    a_shared_family_email_signs_nobody_in_but_usernames_work,
    malformed_bodies_are_problem_documents_that_echo_nothing,
    sign_in_events_are_audited,
    an_operator_ends_one_patients_or_everyones_sessions,
);

async fn patients_sign_in_by_username_or_email_in_any_case(app: TestApp) {
    app.patient("maria.garcia", "María").await;
    for login in [
        "maria.garcia",
        "  MARIA.Garcia ",
        "maria.garcia@example.com",
        "Maria.Garcia@EXAMPLE.com",
    ] {
        let response = app.sign_in(login, PASSWORD).await;
        assert_eq!(response.status(), 200, "login {login:?}");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.starts_with("carekey_session="), "{cookie}");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["account"]["username"], "maria.garcia");
        let token = body["session_token"].as_str().unwrap();
        assert_eq!(token.len(), 43, "256 bits as base64url");
        let current: serde_json::Value = app.current_session(token).await.json().await.unwrap();
        assert_eq!(current["account"]["patient"]["given_name"], "María");
        assert_eq!(current["expires_at"], body["expires_at"]);
    }
}

async fn failure_body(app: &TestApp, login: &str, password: &str) -> (u16, String, String) {
    let response = app.sign_in(login, password).await;
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

async fn every_kind_of_failure_gets_the_byte_identical_401(app: TestApp) {
    app.patient("alex", "Alex").await;
    app.patient("locked.out", "Lee").await;
    app.patient("gone.away", "Gail").await;
    for _ in 0..5 {
        app.sign_in("locked.out", "wrong password entirely").await;
    }
    app.services
        .disable_account(
            &Username::parse("gone.away").unwrap(),
            "moved to another clinic",
            Actor::System,
        )
        .await
        .unwrap();

    let wrong_password = failure_body(&app, "alex", "not the password at all").await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(wrong_password.1, "application/problem+json");
    let body: serde_json::Value = serde_json::from_str(&wrong_password.2).unwrap();
    assert_eq!(body["error"], "invalid_credentials");
    assert_eq!(body["status"], 401);
    for (case, login, password) in [
        ("unknown login", "nobody.here", PASSWORD),
        ("unknown email", "nobody@example.com", PASSWORD),
        ("unparseable login", "no such user!", PASSWORD),
        ("locked, right password", "locked.out", PASSWORD),
        ("disabled, right password", "gone.away", PASSWORD),
    ] {
        assert_eq!(
            failure_body(&app, login, password).await,
            wrong_password,
            "{case}"
        );
    }
}

async fn five_failures_lock_the_account_even_for_the_right_password(app: TestApp) {
    app.patient("alex", "Alex").await;
    for _ in 0..4 {
        assert_eq!(app.sign_in("alex", "wrong").await.status(), 401);
    }
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        200,
        "four failures do not lock"
    );
    for _ in 0..5 {
        assert_eq!(app.sign_in("alex", "wrong").await.status(), 401);
    }
    assert_eq!(app.sign_in("alex", PASSWORD).await.status(), 401, "locked");
    app.advance(Duration::minutes(14));
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        401,
        "still locked at 14 minutes"
    );
    app.advance(Duration::minutes(1));
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        200,
        "open after 15 minutes"
    );
}

async fn locks_escalate_then_hold_until_a_staff_unlock(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    let fail_five = || async {
        for _ in 0..5 {
            app.sign_in("alex", "wrong").await;
        }
    };
    fail_five().await;
    app.advance(Duration::minutes(15));
    fail_five().await;
    app.advance(Duration::minutes(59));
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        401,
        "second lock lasts an hour"
    );
    app.advance(Duration::minutes(1));
    fail_five().await;
    app.advance(Duration::days(30));
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        401,
        "third lock holds"
    );
    let state = app.services.store.lock_state(account).await.unwrap();
    assert!(state.held);
    assert_eq!(state.consecutive_lockouts, 3);
    assert_eq!(
        app.services
            .store
            .count_audit("account.locked")
            .await
            .unwrap(),
        3
    );

    app.services
        .unlock_account(
            &Username::parse("alex").unwrap(),
            Actor::System,
            serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        200,
        "unlocked"
    );
}

async fn a_success_clears_the_failure_count(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    for _ in 0..4 {
        app.sign_in("alex", "wrong").await;
    }
    assert_eq!(
        app.services
            .store
            .lock_state(account)
            .await
            .unwrap()
            .failed_attempts,
        4
    );
    assert_eq!(app.sign_in("alex", PASSWORD).await.status(), 200);
    assert_eq!(
        app.services
            .store
            .lock_state(account)
            .await
            .unwrap()
            .failed_attempts,
        0
    );
    for _ in 0..4 {
        app.sign_in("alex", "wrong").await;
    }
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        200,
        "the count started over"
    );
}

async fn twenty_concurrent_wrong_passwords_count_twenty_failures(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    app.set_policy(|policy| policy.lockout.max_failures = 50)
        .await;

    let attempts = (0..20).map(|_| app.sign_in("alex", "wrong password"));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses, vec![401; 20]);
    assert_eq!(
        app.services
            .store
            .lock_state(account)
            .await
            .unwrap()
            .failed_attempts,
        20
    );
}

async fn each_sign_in_issues_a_new_session_id(app: TestApp) {
    app.patient("alex", "Alex").await;
    let first = app.session_token("alex").await;
    let second = app.session_token("alex").await;
    assert_ne!(first, second);
    assert_eq!(app.current_session(&first).await.status(), 200);
    assert_eq!(app.current_session(&second).await.status(), 200);
}

async fn signing_out_revokes_the_session(app: TestApp) {
    app.patient("alex", "Alex").await;
    let response = app.sign_in("alex", PASSWORD).await;
    assert_eq!(response.status(), 200);
    // The cookie-carrying client signs in, checks, and signs out like a browser.
    let browser = &app.client;
    let signed_in = browser
        .post(app.url("/api/v1/sessions"))
        .json(&serde_json::json!({"login": "alex", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = signed_in.json::<serde_json::Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        browser
            .get(app.url("/api/v1/sessions/current"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let out = browser
        .delete(app.url("/api/v1/sessions/current"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        app.current_session(&token).await.status(),
        401,
        "revoked on the server"
    );
    let again = reqwest::Client::new()
        .delete(app.url("/api/v1/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
}

async fn idle_and_absolute_expiry_end_the_session(app: TestApp) {
    app.patient("alex", "Alex").await;
    let idle = app.session_token("alex").await;
    let busy = app.session_token("alex").await;
    for _ in 0..5 {
        app.advance(Duration::minutes(10));
        assert_eq!(
            app.current_session(&busy).await.status(),
            200,
            "activity keeps it alive"
        );
    }
    assert_eq!(
        app.current_session(&idle).await.status(),
        401,
        "15 minutes idle ends it"
    );
    for _ in 0..((12 * 60 - 50) / 10) {
        app.advance(Duration::minutes(10));
        app.current_session(&busy).await;
    }
    assert_eq!(
        app.current_session(&busy).await.status(),
        401,
        "12 hours is the absolute limit"
    );
}

async fn a_shared_family_email_signs_nobody_in_but_usernames_work(app: TestApp) {
    app.patient_with_email("sarah.t", "Sarah", "family@example.com")
        .await;
    app.patient_with_email("ethan.t", "Ethan", "family@example.com")
        .await;
    assert_eq!(
        app.sign_in("family@example.com", PASSWORD).await.status(),
        401
    );
    assert_eq!(app.sign_in("sarah.t", PASSWORD).await.status(), 200);
    assert_eq!(app.sign_in("ethan.t", PASSWORD).await.status(), 200);
}

async fn malformed_bodies_are_problem_documents_that_echo_nothing(app: TestApp) {
    let client = reqwest::Client::new();
    for body in [
        r#"{"login": "alex", "password": 12345678901}"#,
        r#"{"login": "alex""#,
        "[]",
    ] {
        let response = client
            .post(app.url("/api/v1/sessions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let text = response.text().await.unwrap();
        assert!(!text.contains("12345678901"), "{text}");
        let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(problem["error"], "invalid_request");
    }
    let form = client
        .post(app.url("/api/v1/sessions"))
        .body("login=alex")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let huge = client
        .post(app.url("/api/v1/sessions"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"login":"alex","password":"{}"}}"#,
            "x".repeat(256 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        huge.status(),
        413,
        "a 256 KiB password is refused before any hashing"
    );
}

async fn an_operator_ends_one_patients_or_everyones_sessions(app: TestApp) {
    use carekey_domain::identifiers::Username;
    app.patient("alex", "Alex").await;
    app.patient("sam", "Sam").await;
    let alex = [
        app.session_token("alex").await,
        app.session_token("alex").await,
    ];
    let sam = app.session_token("sam").await;
    let ended = app
        .services
        .end_sessions(Some(&Username::parse("alex").unwrap()))
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for token in &alex {
        assert_eq!(app.current_session(token).await.status(), 401);
    }
    assert_eq!(app.current_session(&sam).await.status(), 200, "only Alex's");
    let unknown = app
        .services
        .end_sessions(Some(&Username::parse("nobody").unwrap()))
        .await;
    assert!(unknown.is_err());
    let sam_again = app.session_token("sam").await;
    let everyone = app.services.end_sessions(None).await.unwrap();
    assert_eq!(everyone, 2, "Sam's two sessions; Alex's were already over");
    assert_eq!(app.current_session(&sam).await.status(), 401);
    assert_eq!(app.current_session(&sam_again).await.status(), 401);
    assert_eq!(
        app.services
            .store
            .count_audit("session.ended")
            .await
            .unwrap(),
        2
    );
}

async fn sign_in_events_are_audited(app: TestApp) {
    app.patient("alex", "Alex").await;
    app.sign_in("alex", PASSWORD).await;
    app.sign_in("alex", "wrong").await;
    app.sign_in("nobody", "wrong").await;
    let store = &app.services.store;
    assert_eq!(store.count_audit("sign_in.succeeded").await.unwrap(), 1);
    assert_eq!(store.count_audit("sign_in.failed").await.unwrap(), 2);
}
