//! A signed-in patient changes an email or phone (API.md `/me/contacts`): the
//! password again, a code to the new contact, a notice to the old one, and
//! the new contact verified only when the code comes back.

use crate::helpers::{TestApp, PASSWORD};
use crate::on_both_backends;
use carekey_domain::message::MessageKind;
use serde_json::{json, Value};

on_both_backends!(a_new_email_is_proved_by_a_code_and_the_old_one_is_told);

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
