//! The password policy through the API: live, explained feedback, and a
//! signed-in patient's change of password with history and near-copy rules.

use crate::helpers::{TestApp, PASSWORD};
use crate::on_both_backends;
use carekey_domain::message::{MessageKind, MessageStatus};
use serde_json::{json, Value};

on_both_backends!(
    a_signed_in_patient_changes_their_password_and_other_sessions_end,
    a_new_password_may_not_repeat_or_nearly_copy_an_old_one,
    a_wrong_current_password_or_a_mismatch_changes_nothing,
    a_long_multibyte_password_is_never_truncated,
);

async fn check(app: &TestApp, password: &str, lang: &str, token: Option<&str>) -> Value {
    let mut request = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/password/check?lang={lang}")))
        .json(&json!({ "password": password }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn rules(body: &Value) -> Vec<String> {
    body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn live_feedback_explains_each_rule_in_the_patients_language() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let short = check(&app, "sunshine", "en", None).await;
    assert_eq!(short["ok"], false);
    assert!(rules(&short).contains(&"min_length".to_owned()));
    assert!(rules(&short).contains(&"blocklist".to_owned()));
    let first = &short["violations"][0];
    assert_eq!(first["message"], "Use at least 15 characters.");
    assert!(!short["suggestions"].as_array().unwrap().is_empty());

    let spanish = check(&app, "sunshine", "es", None).await;
    assert_eq!(
        spanish["violations"][0]["message"],
        "Use por lo menos 15 caracteres."
    );

    let passphrase = check(&app, "orange tugboat whistles quietly", "en", None).await;
    assert_eq!(passphrase["ok"], true, "{passphrase}");
    assert!(passphrase["strength"].as_u64().unwrap() >= 3);

    app.patient_with_email("maria.garcia", "María", "mjgarcia58@example.com")
        .await;
    let token = app.session_token("maria.garcia").await;
    let personal = check(&app, "maria garcia loves the garden", "en", Some(&token)).await;
    assert!(
        rules(&personal).contains(&"personal_info".to_owned()),
        "{personal}"
    );
    let anonymous = check(&app, "maria garcia loves the garden", "en", None).await;
    assert!(
        !rules(&anonymous).contains(&"personal_info".to_owned()),
        "no account, no personal rule"
    );
}

async fn change(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
    confirm: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(token)
        .json(&json!({ "current_password": current, "new_password": new, "new_password_confirm": confirm }))
        .send()
        .await
        .unwrap()
}

const NEW_PASSWORD: &str = "orange tugboat whistles quietly";

async fn a_signed_in_patient_changes_their_password_and_other_sessions_end(app: TestApp) {
    app.patient("alex", "Alex").await;
    let phone = app.session_token("alex").await;
    let laptop = app.session_token("alex").await;
    let response = change(&app, &laptop, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.current_session(&phone).await.status(),
        401,
        "other sessions end"
    );
    assert_eq!(
        app.current_session(&laptop).await.status(),
        200,
        "this session stays"
    );
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        401,
        "the old password no longer works"
    );
    assert_eq!(app.sign_in("alex", NEW_PASSWORD).await.status(), 200);

    let queued = app
        .services
        .recent_messages(Some(MessageStatus::Queued), 10)
        .await
        .unwrap();
    let notices: Vec<_> = queued
        .iter()
        .filter(|m| m.kind == MessageKind::PasswordChanged)
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "one notice per verified contact (email only on file)"
    );
    assert_eq!(notices[0].recipient, "alex@example.com");
    assert_eq!(
        app.services
            .store
            .count_audit("password.changed")
            .await
            .unwrap(),
        1
    );
}

async fn a_new_password_may_not_repeat_or_nearly_copy_an_old_one(app: TestApp) {
    app.patient("alex", "Alex").await;
    let token = app.session_token("alex").await;
    let near = change(
        &app,
        &token,
        PASSWORD,
        "tall lighthouse by the quiet bay!",
        "tall lighthouse by the quiet bay!",
    )
    .await;
    assert_eq!(near.status(), 422);
    let body: Value = near.json().await.unwrap();
    assert_eq!(body["error"], "password_policy");
    assert!(rules(&body).contains(&"near_copy".to_owned()), "{body}");

    assert_eq!(
        change(&app, &token, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
            .await
            .status(),
        204
    );
    let back = change(&app, &token, NEW_PASSWORD, PASSWORD, PASSWORD).await;
    assert_eq!(back.status(), 422);
    let body: Value = back.json().await.unwrap();
    assert!(rules(&body).contains(&"history".to_owned()), "{body}");
}

async fn a_wrong_current_password_or_a_mismatch_changes_nothing(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    let token = app.session_token("alex").await;
    let wrong = change(
        &app,
        &token,
        "not my password at all",
        NEW_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_credentials"
    );
    assert_eq!(
        app.services
            .store
            .lock_state(account)
            .await
            .unwrap()
            .failed_attempts,
        1,
        "counts toward lockout"
    );
    let mismatch = change(
        &app,
        &token,
        PASSWORD,
        NEW_PASSWORD,
        "orange tugboat whistles loudly",
    )
    .await;
    assert_eq!(mismatch.status(), 400);
    assert_eq!(
        mismatch.json::<Value>().await.unwrap()["error"],
        "password_mismatch"
    );
    assert_eq!(
        app.sign_in("alex", PASSWORD).await.status(),
        200,
        "the password is unchanged"
    );
    let unauthenticated = change(
        &app,
        "no-such-session",
        PASSWORD,
        NEW_PASSWORD,
        NEW_PASSWORD,
    )
    .await;
    assert_eq!(unauthenticated.status(), 401);
}

async fn a_long_multibyte_password_is_never_truncated(app: TestApp) {
    app.patient("alex", "Alex").await;
    let token = app.session_token("alex").await;
    let long: String = "日本語のパスワードは長くても大丈夫ですよね安心しました春夏秋冬"
        .chars()
        .cycle()
        .take(64)
        .collect();
    assert_eq!(long.chars().count(), 64);
    assert_eq!(
        change(&app, &token, PASSWORD, &long, &long).await.status(),
        204
    );
    assert_eq!(app.sign_in("alex", &long).await.status(), 200);
    let first_63: String = long.chars().take(63).collect();
    assert_eq!(app.sign_in("alex", &first_63).await.status(), 401);
}

#[tokio::test]
async fn an_organisation_that_insists_on_a_maximum_age_gets_new_passwords_asked_for() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    app.patient("alex", "Alex").await;
    app.set_policy(|policy| policy.password.max_age_days = Some(90))
        .await;

    let fresh = app.session_token("alex").await;
    let body: Value = app.current_session(&fresh).await.json().await.unwrap();
    assert_eq!(body["password_expired"], false);

    app.advance(chrono::Duration::days(90));
    let token = app.session_token("alex").await;
    let body: Value = app.current_session(&token).await.json().await.unwrap();
    assert_eq!(body["password_expired"], true);
    let home = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/home"))
        .header("cookie", format!("carekey_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(home.headers()["location"], "/account/password?expired=1");

    assert_eq!(
        change(&app, &token, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
            .await
            .status(),
        204
    );
    let body: Value = app.current_session(&token).await.json().await.unwrap();
    assert_eq!(
        body["password_expired"], false,
        "a new password resets the clock"
    );
}
