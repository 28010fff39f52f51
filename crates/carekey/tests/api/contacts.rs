//! A signed-in patient changes an email or phone (API.md `/me/contacts`): the
//! password again, a code to the new contact, a notice to the old one, and
//! the new contact verified only when the code comes back.

use crate::helpers::{TestApp, PASSWORD};
use crate::on_both_backends;
use crate::pages::csrf_field;
use carekey_domain::message::MessageKind;
use serde_json::{json, Value};

on_both_backends!(
    a_new_email_is_proved_by_a_code_and_the_old_one_is_told,
    the_account_page_changes_a_phone_and_signs_out_other_devices,
);

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn a_new_email_is_proved_by_a_code_and_the_old_one_is_told(app: TestApp) {
    app.patient("alex", "Alex").await;
    let token = app.session_token("alex").await;
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;
    let (status, body) = call(
        &app,
        &token,
        put.clone(),
        "/api/v1/me/contacts/email",
        json!({ "value": "alex.new@example.com", "password": "wrong password entirely" }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, _) = call(
        &app,
        &token,
        put.clone(),
        "/api/v1/me/contacts/email",
        json!({ "value": "not an email", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 422);

    let (status, body) = call(
        &app,
        &token,
        put,
        "/api/v1/me/contacts/email",
        json!({ "value": "Alex.New@Example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 202);
    let flow = body["flow_id"].as_str().unwrap().to_owned();
    let messages = app.messages(10).await;
    let code_message = messages
        .iter()
        .find(|m| m.kind == MessageKind::ContactVerification)
        .unwrap();
    assert_eq!(code_message.recipient, "alex.new@example.com");
    let told = messages
        .iter()
        .find(|m| m.kind == MessageKind::ContactChanged)
        .unwrap();
    assert_eq!(
        told.recipient, "alex@example.com",
        "the old address is told"
    );
    let code = code_message.data.code.clone().unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let (status, body) = call(
        &app,
        &token,
        post.clone(),
        "/api/v1/me/contacts/verify",
        json!({ "flow_id": flow, "code": wrong }),
    )
    .await;
    assert_eq!((status, body["attempts_left"].as_u64()), (400, Some(4)));
    let other = app
        .patient_with_email("robin", "Robin", "robin@example.com")
        .await;
    let _ = other;
    let robin = app.session_token("robin").await;
    let (status, _) = call(
        &app,
        &robin,
        post.clone(),
        "/api/v1/me/contacts/verify",
        json!({ "flow_id": flow, "code": code }),
    )
    .await;
    assert_eq!(status, 410, "another patient cannot use the flow");
    let (status, _) = call(
        &app,
        &token,
        post.clone(),
        "/api/v1/me/contacts/verify",
        json!({ "flow_id": flow, "code": code }),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        &token,
        post,
        "/api/v1/me/contacts/verify",
        json!({ "flow_id": flow, "code": code }),
    )
    .await;
    assert_eq!(status, 410, "once");

    // The new address now signs in and receives recovery messages.
    assert_eq!(
        app.sign_in("alex.new@example.com", PASSWORD).await.status(),
        200
    );
    assert_eq!(
        app.sign_in("alex@example.com", PASSWORD).await.status(),
        401
    );
}

async fn the_account_page_changes_a_phone_and_signs_out_other_devices(app: TestApp) {
    app.patient_with(
        "alex",
        "Alex",
        Some("alex@example.com"),
        Some("210-555-0142"),
    )
    .await;
    let elsewhere = app.session_token("alex").await;
    let page = app
        .client
        .get(app.url("/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_field(&page);
    let form = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.clone())];
        all.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
        all.into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Vec<(String, String)>>()
    };
    let post = |path: &str, fields: Vec<(String, String)>| {
        app.client.post(app.url(path)).form(&fields).send()
    };
    let signed_in = post(
        "/signin",
        form(&[("login", "alex"), ("password", PASSWORD)]),
    )
    .await
    .unwrap();
    assert_eq!(signed_in.status(), 303);

    let account = app.client.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 200);
    let text = account.text().await.unwrap();
    assert!(text.contains("+12105550142") && text.contains("alex@example.com"));

    let wrong = post(
        "/account/contacts/phone",
        form(&[
            ("value", "210-555-0199"),
            ("password", "not my password at all"),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);
    let sent = post(
        "/account/contacts/phone",
        form(&[("value", "210-555-0199"), ("password", PASSWORD)]),
    )
    .await
    .unwrap();
    assert_eq!(sent.status(), 303);
    let verify = sent.headers()["location"].to_str().unwrap().to_owned();
    assert!(verify.starts_with("/account/verify/"));
    let code = app
        .messages(10)
        .await
        .into_iter()
        .find(|m| m.kind == MessageKind::ContactVerification)
        .unwrap()
        .data
        .code
        .unwrap();
    let done = post(&verify, form(&[("code", &code)])).await.unwrap();
    assert_eq!(done.status(), 303);
    let text = app
        .client
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("+12105550199"), "{text}");

    assert_eq!(app.current_session(&elsewhere).await.status(), 200);
    let out = post("/account/signout-others", form(&[])).await.unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        app.current_session(&elsewhere).await.status(),
        401,
        "the other device is signed out"
    );
    assert_eq!(
        app.client
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "this one is not"
    );
}
