//! The staff pages over plain HTTP: the gate sends strangers to sign-in, every
//! action form needs its CSRF token and an identity check, and each action
//! lands on the patient's record.

use crate::helpers::TestApp;
use crate::on_both_backends;
use crate::pages::csrf_field;
use carekey_domain::audit::Actor;
use carekey_domain::identifiers::Username;
use carekey_domain::model::StaffRole;
use carekey_domain::secret::Password;
use serde_json::{json, Value};

on_both_backends!(staff_pages_act_on_the_record_with_an_identity_check);

async fn staff_pages_act_on_the_record_with_an_identity_check(app: TestApp) {
    app.patient("alex", "Alex").await;
    let unsigned = app.client.get(app.url("/staff")).send().await.unwrap();
    assert_eq!(unsigned.status(), 303);
    assert_eq!(unsigned.headers()["location"], "/staff/signin");

    app.set_policy(|policy| policy.staff.require_totp = false)
        .await;
    app.services
        .create_staff(
            Username::parse("desk1").unwrap(),
            StaffRole::FrontDesk,
            &Password::new("front desk long passphrase here"),
            Actor::System,
        )
        .await
        .unwrap();
    let signed_in: Value = app
        .post_json(
            "/api/v1/staff/sessions",
            json!({ "username": "desk1", "password": "front desk long passphrase here" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = signed_in["session_token"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let (app, token) = (&app, &token);
        async move {
            app.client
                .get(app.url(&path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let found = get("/staff?query=alex".into()).await;
    assert_eq!(found.status(), 303, "one match opens the record");
    let record_path = found.headers()["location"].to_str().unwrap().to_owned();
    let record = get(record_path.clone()).await.text().await.unwrap();
    let csrf = csrf_field(&record);
    let post = |action: &str, form: Vec<(&'static str, &'static str)>, with_csrf: bool| {
        let (app, token, csrf) = (&app, &token, &csrf);
        let url = app.url(&format!("{record_path}/{action}"));
        async move {
            let mut fields: Vec<(&str, String)> =
                form.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
            if with_csrf {
                fields.push(("csrf", csrf.clone()));
            }
            app.client
                .post(url)
                .bearer_auth(token)
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        post("unlock", vec![("method", "photo_id")], false)
            .await
            .status(),
        403
    );
    let unattested = post("reset-code", vec![("method", "other")], true).await;
    assert_eq!(unattested.status(), 422);
    assert!(unattested
        .text()
        .await
        .unwrap()
        .contains("Choose how you confirmed"));
    let code = post("reset-code", vec![("method", "photo_id")], true).await;
    assert_eq!(code.status(), 201);
    let page = code.text().await.unwrap();
    assert!(page.contains("one-time-code"), "{page}");
    let unlocked = post("unlock", vec![("method", "callback_on_file")], true).await;
    assert_eq!(unlocked.status(), 303);
    let corrected = post(
        "contacts",
        vec![("method", "photo_id"), ("email", "alex.new@example.com")],
        true,
    )
    .await;
    assert_eq!(corrected.status(), 303);
    let record = get(record_path.clone()).await.text().await.unwrap();
    assert!(record.contains("alex.new@example.com"));
    let disabled = post("disable", vec![("reason", "moved away")], true).await;
    assert_eq!(disabled.status(), 303);
    let record = get(record_path).await.text().await.unwrap();
    assert!(record.contains(">Disabled<"), "{record}");

    // A printed invitation is a letter in the patient's language.
    let created: Value = reqwest::Client::new()
        .post(app.url("/api/v1/staff/patients"))
        .bearer_auth(&token)
        .json(&json!({ "mrn": "MRN-JN", "given_name": "José", "family_name": "Núñez", "date_of_birth": "1949-11-02", "preferred_language": "es" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let invite = app
        .client
        .post(app.url(&format!(
            "/staff/patients/{}/invite",
            created["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .form(&[
            ("csrf", csrf.as_str()),
            ("method", "photo_id"),
            ("channel", "print"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(invite.status(), 201);
    let letter = invite.text().await.unwrap();
    assert!(
        letter.contains("Estimado(a) José") && letter.contains("/enroll"),
        "{letter}"
    );
}
