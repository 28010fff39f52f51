//! Enrollment end to end (API.md, "Patient: enrollment"): a printed or
//! emailed activation code with the birth date opens enrollment once; the
//! patient chooses a username and password and signs in. Wrong codes and
//! wrong details answer alike; a new code voids the old one.

use crate::helpers::TestApp;
use crate::on_both_backends;
use carekey_domain::audit::Actor;
use carekey_domain::identifiers::{DateOfBirth, Email};
use carekey_domain::ids::PatientId;
use carekey_domain::model::NewPatient;
use carekey_domain::staff::{Verification, VerificationMethod};
use serde_json::{json, Value};

on_both_backends!(
    a_printed_code_enrolls_the_patient_who_then_signs_in,
    an_emailed_code_arrives_and_a_new_code_voids_the_old,
    a_wrong_code_and_a_wrong_birth_date_answer_alike,
    the_command_line_invites_everyone_without_an_account,
    self_registration_sends_a_code_only_to_a_contact_on_file,
    contacts_given_at_enrollment_are_kept_never_silently_dropped,
);

const PASSWORD: &str = "harbor lanterns glow at dusk";

async fn unenrolled(app: &TestApp) -> PatientId {
    let patient = NewPatient {
        mrn: "MRN-JN".into(),
        given_name: "José".into(),
        family_name: "Núñez".into(),
        date_of_birth: DateOfBirth::parse("1949-11-02").unwrap(),
        postal_code: Some("78205".into()),
        preferred_language: Some("es".into()),
        email: Some(Email::parse("jose.nunez@example.com").unwrap()),
        phone: None,
    };
    app.services
        .create_patient(&patient, Actor::System)
        .await
        .unwrap()
}

/// An invitation as the front desk issues it; the printed code, if printed.
async fn invite(app: &TestApp, patient: PatientId, print: bool) -> Option<String> {
    let staff = carekey_service::staff::StaffSession {
        staff: carekey_domain::staff::StaffMember {
            id: carekey_domain::ids::StaffId::generate(),
            username: "desk".into(),
            role: carekey_domain::model::StaffRole::FrontDesk,
            disabled: false,
            totp_enrolled: true,
        },
        expires_at: app.now(),
    };
    let channel = (!print).then_some(carekey_domain::message::Channel::Email);
    let verification = Verification {
        method: VerificationMethod::PhotoId,
        note: None,
    };
    app.services
        .staff_invite(&staff, patient, channel, &verification)
        .await
        .unwrap()
        .0
}

async fn start(app: &TestApp, code: &str, born: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/enrollment",
        json!({ "activation_code": code, "date_of_birth": born }),
    )
    .await
}

async fn complete(app: &TestApp, token: &str, username: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/enrollment/complete",
        json!({ "enrollment_token": token, "username": username, "password": PASSWORD, "password_confirm": PASSWORD }),
    )
    .await
}

async fn a_printed_code_enrolls_the_patient_who_then_signs_in(app: TestApp) {
    app.patient("taken.name", "Other").await;
    let patient = unenrolled(&app).await;
    let code = invite(&app, patient, true).await.unwrap();
    let typed = code.to_lowercase().replace('-', " ");
    let started = start(&app, &typed, "1949-11-02").await;
    assert_eq!(started.status(), 200);
    let body: Value = started.json().await.unwrap();
    assert_eq!(body["patient"]["given_name"], "José");
    let token = body["enrollment_token"].as_str().unwrap().to_owned();
    assert_eq!(
        start(&app, &code, "1949-11-02").await.status(),
        400,
        "a code works once"
    );

    let taken = complete(&app, &token, "taken.name").await;
    assert_eq!(taken.status(), 409);
    let body: Value = taken.json().await.unwrap();
    assert_eq!(body["error"], "username_taken");
    let weak = app
        .post_json(
            "/api/v1/enrollment/complete",
            json!({ "enrollment_token": token, "username": "jose.n", "password": "jose1949 nunez", "password_confirm": "jose1949 nunez" }),
        )
        .await;
    assert_eq!(weak.status(), 422);
    let done = complete(&app, &token, "jose.n").await;
    assert_eq!(done.status(), 201, "the refusals left the token usable");
    assert_eq!(
        complete(&app, &token, "jose.n2").await.status(),
        410,
        "once"
    );
    assert_eq!(app.sign_in("jose.n", PASSWORD).await.status(), 200);
}

async fn an_emailed_code_arrives_and_a_new_code_voids_the_old(app: TestApp) {
    let patient = unenrolled(&app).await;
    let printed = invite(&app, patient, true).await.unwrap();
    assert!(invite(&app, patient, false).await.is_none());
    let message = app.messages(1).await.remove(0);
    assert_eq!(message.recipient, "jose.nunez@example.com");
    let emailed = message.data.code.clone().unwrap();
    assert_eq!(
        start(&app, &printed, "1949-11-02").await.status(),
        400,
        "the printed code was voided by the emailed one"
    );
    assert_eq!(start(&app, &emailed, "1949-11-02").await.status(), 200);
}

async fn a_wrong_code_and_a_wrong_birth_date_answer_alike(app: TestApp) {
    let patient = unenrolled(&app).await;
    let code = invite(&app, patient, true).await.unwrap();
    let wrong_birth = start(&app, &code, "1949-11-03").await;
    let wrong_code = start(&app, "ZZZZ-ZZZZ-ZZZZ", "1949-11-02").await;
    assert_eq!(
        (wrong_birth.status().as_u16(), wrong_code.status().as_u16()),
        (400, 400)
    );
    let (a, b): (Value, Value) = (
        wrong_birth.json().await.unwrap(),
        wrong_code.json().await.unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(a["error"], "invalid_code");
    for _ in 0..4 {
        start(&app, &code, "1949-11-03").await;
    }
    assert_eq!(
        start(&app, &code, "1949-11-02").await.status(),
        400,
        "five wrong birth dates end the code"
    );
}

async fn the_command_line_invites_everyone_without_an_account(app: TestApp) {
    app.patient("alex", "Alex").await;
    unenrolled(&app).await;
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_carekey"))
        .args(["patient", "invite", "--all-without-account"])
        .env("CAREKEY_DATABASE_URL", &app.settings.database_url)
        .env("CAREKEY_DATA_DIR", &app.settings.data_dir)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(said.contains("invited 1 by email and 0 by text"), "{said}");
    let messages = app.messages(5).await;
    assert_eq!(messages.len(), 1, "alex has an account already");
    assert_eq!(messages[0].recipient, "jose.nunez@example.com");
    let code = messages[0].data.code.clone().unwrap();
    assert_eq!(start(&app, &code, "1949-11-02").await.status(), 200);
}

async fn self_registration_sends_a_code_only_to_a_contact_on_file(app: TestApp) {
    unenrolled(&app).await;
    let ask = |given: &'static str, postal: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/enrollment/request",
                json!({ "given_name": given, "family_name": "NUNEZ", "date_of_birth": "1949-11-02", "postal_code": postal }),
            )
            .await
        }
    };
    assert_eq!(ask("Jose", "78205").await.status(), 403, "off by default");
    app.set_policy(|policy| policy.activation.self_registration = true)
        .await;
    let wrong = ask("Jose", "78206").await;
    assert_eq!(wrong.status(), 202);
    assert!(
        app.messages(5).await.is_empty(),
        "a wrong postal code sends nothing"
    );
    let right = ask("josé", "78205").await;
    assert_eq!(right.status(), 202);
    let (a, b): (Value, Value) = (wrong.json().await.unwrap(), right.json().await.unwrap());
    assert_eq!(a, b, "the same answer either way");
    let messages = app.messages(5).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].recipient, "jose.nunez@example.com",
        "only to the contact on file"
    );
}

async fn contacts_given_at_enrollment_are_kept_never_silently_dropped(app: TestApp) {
    let patient = unenrolled(&app).await;
    let code = invite(&app, patient, true).await.unwrap();
    let body: Value = start(&app, &code, "1949-11-02").await.json().await.unwrap();
    let token = body["enrollment_token"].as_str().unwrap();
    let with = |email: &str, phone: &str| {
        json!({ "enrollment_token": token, "username": "jose.n", "password": PASSWORD,
                "password_confirm": PASSWORD, "email": email, "phone": phone })
    };
    let other_email = app
        .post_json(
            "/api/v1/enrollment/complete",
            with("someone.else@example.com", "210-555-0177"),
        )
        .await;
    assert_eq!(other_email.status(), 422, "a different email is on file");
    let bad_phone = app
        .post_json(
            "/api/v1/enrollment/complete",
            with("jose.nunez@example.com", "12"),
        )
        .await;
    assert_eq!(bad_phone.status(), 422);
    let done = app
        .post_json(
            "/api/v1/enrollment/complete",
            with("JOSE.NUNEZ@example.com", "210-555-0177"),
        )
        .await;
    assert_eq!(done.status(), 201);
    let phone: i64 = app.count("SELECT COUNT(*) FROM contacts WHERE kind = 'phone' AND value = '+12105550177' AND verified_by IS NULL").await;
    assert_eq!(
        phone, 1,
        "the new phone is kept, unverified until confirmed"
    );
}
