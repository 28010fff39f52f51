//! The staff console end to end (API.md, "Staff"): sign-in with a second
//! factor, the role gate, each assisted action reaching the patient, the audit
//! trail and its hash chain (tampering found by `carekey audit verify`), and
//! administration.

use crate::helpers::{TestApp, BIRTH_DATE};
use crate::on_both_backends;
use carekey_domain::audit::Actor;
use carekey_domain::identifiers::Username;
use carekey_domain::message::MessageKind;
use carekey_domain::model::StaffRole;
use carekey_domain::secret::Password;
use chrono::Duration;
use serde_json::{json, Value};

on_both_backends!(
    a_staff_member_must_enrol_a_second_factor_before_anything_else,
    roles_are_kept_apart_and_patient_sessions_never_reach_staff_routes,
    each_assisted_action_reaches_the_patient_and_needs_an_attestation,
    patients_are_found_by_name_mrn_or_birth_date,
    an_edited_audit_row_is_named_by_audit_verify,
    administrators_edit_the_policy_and_staff,
    a_fhir_bundle_imports_its_good_entries_and_reports_the_bad,
    an_invitation_is_printed_or_sent_and_a_new_one_voids_the_old,
    the_command_line_makes_a_reset_code_by_mrn,
);

const STAFF_PASSWORD: &str = "front desk long passphrase here";
const PHOTO_ID: &str = r#"{"method":"photo_id","note":"driver's license"}"#;

pub(crate) fn verification() -> Value {
    serde_json::from_str(PHOTO_ID).unwrap()
}

/// A staff user of `role` with TOTP enrolled; returns a session token.
pub(crate) async fn staff(app: &TestApp, username: &str, role: StaffRole) -> String {
    app.services
        .create_staff(
            Username::parse(username).unwrap(),
            role,
            &Password::new(STAFF_PASSWORD),
            Actor::System,
        )
        .await
        .unwrap();
    let signed_in = app
        .post_json(
            "/api/v1/staff/sessions",
            json!({ "username": username, "password": STAFF_PASSWORD }),
        )
        .await;
    assert_eq!(signed_in.status(), 200);
    let body: Value = signed_in.json().await.unwrap();
    assert_eq!(body["totp_enrolled"], false);
    let token = body["session_token"].as_str().unwrap().to_owned();
    let secret = call(app, &token, "POST", "/api/v1/staff/me/totp", None)
        .await
        .1["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = totp_now(app, &secret);
    let confirmed = call(
        app,
        &token,
        "POST",
        "/api/v1/staff/me/totp/confirm",
        Some(json!({ "totp": code })),
    )
    .await;
    assert_eq!(confirmed.0, 204);
    token
}

fn totp_now(app: &TestApp, secret: &str) -> String {
    let seconds = u64::try_from(app.now().timestamp()).unwrap();
    carekey_domain::totp::code_at(secret, seconds).unwrap()
}

/// A request with a staff bearer token: status and JSON body (Null when empty).
pub(crate) async fn call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = app.url(path);
    let request = match method {
        "GET" => client.get(url),
        "PUT" => client.put(url),
        "PATCH" => client.patch(url),
        _ => client.post(url),
    }
    .bearer_auth(token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) async fn patient_id_of(app: &TestApp, token: &str, query: &str) -> String {
    let (status, body) = call(
        app,
        token,
        "GET",
        &format!("/api/v1/staff/patients?query={query}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    body["patients"][0]["id"].as_str().unwrap().to_owned()
}

async fn a_staff_member_must_enrol_a_second_factor_before_anything_else(app: TestApp) {
    app.services
        .create_staff(
            Username::parse("frontdesk").unwrap(),
            StaffRole::FrontDesk,
            &Password::new(STAFF_PASSWORD),
            Actor::System,
        )
        .await
        .unwrap();
    let sign_in = |totp: Option<String>| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/staff/sessions",
                json!({ "username": "frontdesk", "password": STAFF_PASSWORD, "totp": totp }),
            )
            .await
        }
    };
    let body: Value = sign_in(None).await.json().await.unwrap();
    let token = body["session_token"].as_str().unwrap().to_owned();
    let (status, problem) = call(&app, &token, "GET", "/api/v1/staff/patients?query=a", None).await;
    assert_eq!(
        (status, problem["error"].as_str()),
        (403, Some("totp_enrollment_required"))
    );

    let (_, enrol) = call(&app, &token, "POST", "/api/v1/staff/me/totp", None).await;
    let secret = enrol["secret"].as_str().unwrap().to_owned();
    assert!(enrol["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let wrong = call(
        &app,
        &token,
        "POST",
        "/api/v1/staff/me/totp/confirm",
        Some(json!({ "totp": "000000x" })),
    )
    .await;
    assert_eq!(wrong.0, 400);
    let code = totp_now(&app, &secret);
    assert_eq!(
        call(
            &app,
            &token,
            "POST",
            "/api/v1/staff/me/totp/confirm",
            Some(json!({ "totp": code }))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, &token, "GET", "/api/v1/staff/patients?query=a", None)
            .await
            .0,
        200
    );

    assert_eq!(
        sign_in(None).await.status(),
        401,
        "the second factor is now required"
    );
    assert_eq!(sign_in(Some("123456".into())).await.status(), 401);
    app.advance(Duration::seconds(30));
    let fresh = totp_now(&app, &secret);
    let accepted = sign_in(Some(fresh.clone())).await;
    assert_eq!(accepted.status(), 200);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["totp_enrolled"], true);
    assert_eq!(body["staff"]["role"], "front_desk");
    assert_eq!(
        sign_in(Some(fresh)).await.status(),
        401,
        "a code works once"
    );
}

async fn roles_are_kept_apart_and_patient_sessions_never_reach_staff_routes(app: TestApp) {
    app.patient("alex", "Alex").await;
    let auditor = staff(&app, "auditor1", StaffRole::Auditor).await;
    let desk = staff(&app, "desk1", StaffRole::FrontDesk).await;
    let (status, body) = call(
        &app,
        &auditor,
        "GET",
        "/api/v1/staff/patients?query=alex",
        None,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    assert_eq!(
        call(&app, &auditor, "GET", "/api/v1/staff/audit/verify", None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, &desk, "GET", "/api/v1/admin/policy", None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, &desk, "GET", "/api/v1/staff/audit", None)
            .await
            .0,
        403
    );

    let patient = app.session_token("alex").await;
    for path in [
        "/api/v1/staff/patients?query=alex",
        "/api/v1/staff/audit",
        "/api/v1/admin/staff",
    ] {
        assert_eq!(
            call(&app, &patient, "GET", path, None).await.0,
            401,
            "{path}"
        );
    }
    assert_eq!(
        call(&app, "", "GET", "/api/v1/staff/patients?query=a", None)
            .await
            .0,
        401
    );
}

async fn each_assisted_action_reaches_the_patient_and_needs_an_attestation(app: TestApp) {
    app.patient_with(
        "alex",
        "Alex",
        Some("alex@example.com"),
        Some("210-555-0142"),
    )
    .await;
    let desk = staff(&app, "desk1", StaffRole::FrontDesk).await;
    let id = patient_id_of(&app, &desk, "alex").await;
    let action = |name: &str| format!("/api/v1/staff/patients/{id}/portal/{name}");

    for name in ["reset-link", "reset-code", "unlock"] {
        let (status, body) = call(
            &app,
            &desk,
            "POST",
            &action(name),
            Some(json!({ "channel": "email" })),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("invalid_request")),
            "{name} without attestation"
        );
    }
    let other_without_note = json!({ "verification": { "method": "other" } });
    assert_eq!(
        call(
            &app,
            &desk,
            "POST",
            &action("reset-code"),
            Some(other_without_note)
        )
        .await
        .0,
        422
    );

    // A reset link: the patient receives it and it works.
    let (status, body) = call(
        &app,
        &desk,
        "POST",
        &action("reset-link"),
        Some(json!({ "channel": "email", "verification": verification() })),
    )
    .await;
    assert_eq!(status, 202);
    let message_id = body["message_id"].as_str().unwrap().to_owned();
    let (status, sent) = call(
        &app,
        &desk,
        "GET",
        &format!("/api/v1/staff/messages/{message_id}"),
        None,
    )
    .await;
    assert_eq!((status, sent["status"].as_str()), (200, Some("queued")));
    let message = app.messages(1).await.remove(0);
    assert_eq!(message.kind, MessageKind::PasswordReset);
    let token = message
        .data
        .link
        .unwrap()
        .split_once("token=")
        .unwrap()
        .1
        .to_owned();
    let reset = app
        .post_json("/api/v1/password/reset", json!({ "token": token, "new_password": "river stones hum at noon", "new_password_confirm": "river stones hum at noon" }))
        .await;
    assert_eq!(reset.status(), 200);

    // A one-time code: shown once, redeemed with the birth date.
    let (status, code) = call(
        &app,
        &desk,
        "POST",
        &action("reset-code"),
        Some(json!({ "verification": verification() })),
    )
    .await;
    assert_eq!(status, 201);
    let redeemed = app
        .post_json(
            "/api/v1/recovery/staff-code",
            json!({ "code": code["code"], "date_of_birth": BIRTH_DATE }),
        )
        .await;
    assert_eq!(redeemed.status(), 200);
    let told: Vec<_> = app
        .messages(50)
        .await
        .into_iter()
        .filter(|m| m.kind == MessageKind::AccountHelp)
        .map(|m| (m.recipient, m.data.action.unwrap_or_default()))
        .collect();
    assert!(
        told.contains(&("alex@example.com".into(), "code".into()))
            && told.contains(&("+12105550142".into(), "code".into())),
        "each verified contact is told a code was made: {told:?}"
    );

    // Unlock: a locked patient signs in again.
    for _ in 0..5 {
        app.sign_in("alex", "not the password at all").await;
    }
    let (_, record) = call(
        &app,
        &desk,
        "GET",
        &format!("/api/v1/staff/patients/{id}"),
        None,
    )
    .await;
    assert_eq!(record["portal"]["status"], "locked");
    assert!(record["portal"]["recent_messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["kind"] == "account_locked"));
    assert_eq!(
        call(
            &app,
            &desk,
            "POST",
            &action("unlock"),
            Some(json!({ "verification": verification() }))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        app.sign_in("alex", "river stones hum at noon")
            .await
            .status(),
        200
    );

    // A corrected contact: verified by staff, the old one told.
    let (status, record) = call(
        &app,
        &desk,
        "PATCH",
        &format!("/api/v1/staff/patients/{id}/contacts"),
        Some(json!({ "email": "alex.new@example.com", "verification": verification() })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        record["portal"]["contacts"]["email"]["value"],
        "alex.new@example.com"
    );
    assert_eq!(
        record["portal"]["contacts"]["email"]["verified_by"],
        "staff"
    );
    let told = app
        .messages(20)
        .await
        .into_iter()
        .find(|m| m.kind == MessageKind::ContactChanged)
        .unwrap();
    assert_eq!(told.recipient, "alex@example.com");

    // Disable: sessions end, status shows it.
    let signed_in: Value = app
        .sign_in("alex", "river stones hum at noon")
        .await
        .json()
        .await
        .unwrap();
    let session = signed_in["session_token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &app,
            &desk,
            "POST",
            &action("disable"),
            Some(json!({ "reason": "deceased" }))
        )
        .await
        .0,
        204
    );
    assert_eq!(app.current_session(&session).await.status(), 401);
    let (_, record) = call(
        &app,
        &desk,
        "GET",
        &format!("/api/v1/staff/patients/{id}"),
        None,
    )
    .await;
    assert_eq!(record["portal"]["status"], "disabled");

    // Every action is on the patient's audit trail with its attestation.
    let auditor = staff(&app, "auditor1", StaffRole::Auditor).await;
    let (_, audit) = call(
        &app,
        &auditor,
        "GET",
        &format!("/api/v1/staff/audit?patient_id={id}"),
        None,
    )
    .await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "reset_link.sent",
        "staff_code.issued",
        "account.unlocked",
        "contacts.changed",
        "account.disabled",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let link_event = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "reset_link.sent")
        .unwrap();
    assert_eq!(link_event["details"]["verification"]["method"], "photo_id");
    assert_eq!(link_event["actor_kind"], "staff");
    let everything = audit.to_string();
    assert!(
        !everything.contains(code["code"].as_str().unwrap()),
        "no code in the audit trail"
    );
    assert!(!everything.contains(&token), "no token in the audit trail");
}

async fn patients_are_found_by_name_mrn_or_birth_date(app: TestApp) {
    app.patient("alex", "Alex").await;
    app.patient("robin", "Robin").await;
    let desk = staff(&app, "desk1", StaffRole::FrontDesk).await;
    let names = |body: Value| -> Vec<String> {
        body["patients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["given_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, by_name) = call(&app, &desk, "GET", "/api/v1/staff/patients?query=rob", None).await;
    assert_eq!(names(by_name.clone()), ["Robin"]);
    assert_eq!(by_name["patients"][0]["portal_status"], "active");
    let (_, by_mrn) = call(
        &app,
        &desk,
        "GET",
        "/api/v1/staff/patients?query=MRN-alex",
        None,
    )
    .await;
    assert_eq!(names(by_mrn), ["Alex"]);
    let (_, by_birth) = call(
        &app,
        &desk,
        "GET",
        &format!("/api/v1/staff/patients?query={BIRTH_DATE}"),
        None,
    )
    .await;
    assert_eq!(names(by_birth).len(), 2);

    let (status, created) = call(
        &app,
        &desk,
        "POST",
        "/api/v1/staff/patients",
        Some(json!({ "mrn": "MRN-9", "given_name": "Dora", "family_name": "Lee", "date_of_birth": "1941-07-04", "phone": "210-555-0100" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (_, record) = call(
        &app,
        &desk,
        "GET",
        &format!("/api/v1/staff/patients/{}", created["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(record["portal"]["status"], "not_enrolled");
    assert_eq!(
        record["portal"]["contacts"]["phone"]["value"],
        "+12105550100"
    );
    let (status, taken) = call(
        &app,
        &desk,
        "POST",
        "/api/v1/staff/patients",
        Some(json!({ "mrn": "MRN-9", "given_name": "X", "family_name": "Y", "date_of_birth": "1950-01-01" })),
    )
    .await;
    assert_eq!((status, taken["error"].as_str()), (409, Some("mrn_taken")));
}

async fn an_edited_audit_row_is_named_by_audit_verify(app: TestApp) {
    app.patient("alex", "Alex").await;
    for _ in 0..3 {
        app.sign_in("alex", "not the password at all").await;
    }
    let auditor = staff(&app, "auditor1", StaffRole::Auditor).await;
    let (status, check) = call(&app, &auditor, "GET", "/api/v1/staff/audit/verify", None).await;
    assert_eq!(
        (status, check["ok"].as_bool()),
        (200, Some(true)),
        "{check}"
    );
    let events = check["events"].as_u64().unwrap();
    assert!(events >= 5, "{check}");
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_carekey"))
            .args(["audit", "verify"])
            .env("CAREKEY_DATABASE_URL", &app.settings.database_url)
            .env("CAREKEY_DATA_DIR", &app.settings.data_dir)
            .output()
            .unwrap()
    };
    let intact = verify();
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(String::from_utf8_lossy(&intact.stdout).contains("audit chain intact"));

    execute(
        &app,
        "UPDATE audit_events SET outcome = 'success' WHERE seq = 3",
    )
    .await;
    let broken = verify();
    assert!(!broken.status.success());
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(said.contains("broken at event 3"), "{said}");
    let (_, check) = call(&app, &auditor, "GET", "/api/v1/staff/audit/verify", None).await;
    assert_eq!(
        (check["ok"].as_bool(), check["first_bad_event"].as_i64()),
        (Some(false), Some(3))
    );

    // A deleted row breaks the link of the one after it.
    execute(
        &app,
        "UPDATE audit_events SET outcome = 'failure' WHERE seq = 3",
    )
    .await;
    assert!(verify().status.success(), "restored");
    execute(&app, "DELETE FROM audit_events WHERE seq = 4").await;
    let deleted = verify();
    assert!(!deleted.status.success());
    let said = String::from_utf8_lossy(&deleted.stderr);
    assert!(said.contains("broken at event 5"), "{said}");
}

/// Runs one statement on the app's database, as someone with database access would.
async fn execute(app: &TestApp, sql: &str) {
    let url = &app.settings.database_url;
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
}

async fn administrators_edit_the_policy_and_staff(app: TestApp) {
    let admin = staff(&app, "admin1", StaffRole::PortalAdmin).await;
    let (status, created) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/admin/staff",
        Some(json!({ "username": "desk2", "role": "front_desk", "password": STAFF_PASSWORD })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/admin/staff",
        Some(json!({ "username": "desk2", "role": "front_desk", "password": STAFF_PASSWORD })),
    )
    .await;
    assert_eq!(status, 409);
    let (status, weak) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/admin/staff",
        Some(json!({ "username": "desk3", "role": "front_desk", "password": "password" })),
    )
    .await;
    assert_eq!(
        (status, weak["error"].as_str()),
        (422, Some("password_policy"))
    );
    let desk2 = app
        .post_json(
            "/api/v1/staff/sessions",
            json!({ "username": "desk2", "password": STAFF_PASSWORD }),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        call(
            &app,
            &admin,
            "POST",
            &format!("/api/v1/admin/staff/{id}/disable"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, &desk2, "POST", "/api/v1/staff/me/totp", None)
            .await
            .0,
        401,
        "their session ended"
    );
    let (_, list) = call(&app, &admin, "GET", "/api/v1/admin/staff", None).await;
    let desk2 = list["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["username"] == "desk2")
        .unwrap()
        .clone();
    assert_eq!(desk2["disabled"], true);
    let (status, policy) = call(&app, &admin, "GET", "/api/v1/admin/policy", None).await;
    assert_eq!(status, 200);
    assert_eq!(policy["recovery"]["code_attempts"], 5);
    assert_eq!(policy["warnings"], json!([]));
    let (status, changed) = call(
        &app,
        &admin,
        "PUT",
        "/api/v1/admin/policy",
        Some(json!({ "password": { "require_classes": 3 } })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(changed["password"]["require_classes"], 3);
    assert_eq!(changed["password"]["min_length"], 15, "other values kept");
    assert!(
        !changed["warnings"].as_array().unwrap().is_empty(),
        "composition rules draw a warning"
    );
    let (status, bad) = call(
        &app,
        &admin,
        "PUT",
        "/api/v1/admin/policy",
        Some(json!({ "lockout": { "max_failures": 0 } })),
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (422, Some("invalid_request"))
    );
    assert!(bad["fields"]["lockout.max_failures"].is_string(), "{bad}");
}

/// Two instances (each its own connection pool) on one PostgreSQL database,
/// writing audit events at once, keep one valid chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_writing_at_once_keep_one_audit_chain() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let second = carekey::services(&app.settings, app.clock.clone())
        .await
        .unwrap();
    let client = carekey_service::ClientInfo::default();
    let attempts = (0..40).map(|i| {
        let services = if i % 2 == 0 { &app.services } else { &second };
        let client = &client;
        async move {
            let _ = services
                .sign_in(
                    &format!("nobody{i}"),
                    &Password::new("whatever it is"),
                    client,
                )
                .await;
        }
    });
    futures::future::join_all(attempts).await;
    let check = second.verify_audit_chain().await.unwrap();
    assert!(check.ok, "{check:?}");
    assert_eq!(
        app.services
            .store
            .count_audit("sign_in.failed")
            .await
            .unwrap(),
        40
    );
}

async fn a_fhir_bundle_imports_its_good_entries_and_reports_the_bad(app: TestApp) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/fhir/sample-patients.json");
    let Ok(bundle) = std::fs::read(&path) else {
        assert!(
            !carekey_store::testing::in_ci(),
            "CI=true but {} is missing",
            path.display()
        );
        eprintln!("SKIPPED: {} not found", path.display());
        return;
    };
    let desk = staff(&app, "desk1", StaffRole::FrontDesk).await;
    let import = || {
        reqwest::Client::new()
            .post(app.url("/api/v1/staff/patients/import"))
            .bearer_auth(&desk)
            .header("content-type", "application/fhir+json")
            .body(bundle.clone())
            .send()
    };
    let first: Value = import().await.unwrap().json().await.unwrap();
    assert_eq!(
        (first["created"].as_u64(), first["updated"].as_u64()),
        (Some(12), Some(0)),
        "{first}"
    );
    let skipped: Vec<u64> = first["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    assert_eq!(skipped, [12, 13, 14, 15]);
    assert!(
        first["skipped"][2]["reason"]
            .as_str()
            .unwrap()
            .contains("1980-02-30"),
        "{first}"
    );

    let (_, found) = call(
        &app,
        &desk,
        "GET",
        "/api/v1/staff/patients?query=Thompson",
        None,
    )
    .await;
    assert_eq!(found["patients"].as_array().unwrap().len(), 3, "{found}");
    let (_, maria) = call(
        &app,
        &desk,
        "GET",
        "/api/v1/staff/patients?query=MRN100200",
        None,
    )
    .await;
    let id = maria["patients"][0]["id"].as_str().unwrap();
    let (_, record) = call(
        &app,
        &desk,
        "GET",
        &format!("/api/v1/staff/patients/{id}"),
        None,
    )
    .await;
    assert_eq!(record["preferred_language"], "es");
    assert_eq!(
        record["portal"]["contacts"]["email"]["verified_by"],
        "staff"
    );

    let by_command = std::process::Command::new(env!("CARGO_BIN_EXE_carekey"))
        .args(["patient", "import"])
        .arg(&path)
        .env("CAREKEY_DATABASE_URL", &app.settings.database_url)
        .env("CAREKEY_DATA_DIR", &app.settings.data_dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&by_command.stdout);
    assert!(
        by_command.status.success(),
        "{}",
        String::from_utf8_lossy(&by_command.stderr)
    );
    assert!(
        said.contains("0 created, 12 updated, 4 skipped") && said.contains("entry 14: birthDate"),
        "{said}"
    );

    let again: Value = import().await.unwrap().json().await.unwrap();
    assert_eq!(
        (again["created"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(12)),
        "imports are idempotent by MRN"
    );
}

async fn an_invitation_is_printed_or_sent_and_a_new_one_voids_the_old(app: TestApp) {
    let desk = staff(&app, "desk1", StaffRole::FrontDesk).await;
    let (_, created) = call(
        &app,
        &desk,
        "POST",
        "/api/v1/staff/patients",
        Some(json!({ "mrn": "MRN-7", "given_name": "José", "family_name": "Núñez", "date_of_birth": "1949-11-02", "phone": "210-555-0177" })),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let invite = format!("/api/v1/staff/patients/{id}/portal/invite");
    assert_eq!(
        call(
            &app,
            &desk,
            "POST",
            &invite,
            Some(json!({ "channel": "print" }))
        )
        .await
        .0,
        422
    );
    let (status, printed) = call(
        &app,
        &desk,
        "POST",
        &invite,
        Some(json!({ "channel": "print", "verification": verification() })),
    )
    .await;
    assert_eq!(status, 201);
    let code = printed["activation_code"].as_str().unwrap();
    assert_eq!(code.len(), 14, "{code}");
    assert!(printed.get("message_id").is_none());
    let (_, record) = call(
        &app,
        &desk,
        "GET",
        &format!("/api/v1/staff/patients/{id}"),
        None,
    )
    .await;
    assert_eq!(record["portal"]["status"], "invited");

    let (status, emailed) = call(
        &app,
        &desk,
        "POST",
        &invite,
        Some(json!({ "channel": "email", "verification": verification() })),
    )
    .await;
    assert_eq!(
        (status, emailed["error"].as_str()),
        (422, Some("invalid_request")),
        "no email on file"
    );
    let (status, texted) = call(
        &app,
        &desk,
        "POST",
        &invite,
        Some(json!({ "channel": "sms", "verification": verification() })),
    )
    .await;
    assert_eq!(status, 201);
    assert!(
        texted.get("activation_code").is_none(),
        "a sent code is not shown"
    );
    let message = app.messages(1).await.remove(0);
    assert_eq!(message.kind, MessageKind::Invitation);
    assert_eq!(message.recipient, "+12105550177");
    assert!(message.data.link.unwrap().ends_with("/enroll"));
    let open: i64 = app.count("SELECT COUNT(*) FROM account_tokens WHERE purpose = 'activation' AND revoked_at IS NULL AND used_at IS NULL",
    )
    .await;
    assert_eq!(open, 1, "the printed code was voided by the new one");
}

async fn the_command_line_makes_a_reset_code_by_mrn(app: TestApp) {
    app.patient("alex", "Alex").await;
    let run = |mrn: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_carekey"))
            .args(["reset-code", "--mrn", mrn])
            .env("CAREKEY_DATABASE_URL", &app.settings.database_url)
            .env("CAREKEY_DATA_DIR", &app.settings.data_dir)
            .output()
            .unwrap()
    };
    let made = run("MRN-alex");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let code = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert_eq!(code.len(), 14, "{code}");
    let redeemed = app
        .post_json(
            "/api/v1/recovery/staff-code",
            json!({ "code": code, "date_of_birth": BIRTH_DATE }),
        )
        .await;
    assert_eq!(redeemed.status(), 200);
    let unknown = run("MRN-nobody");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no patient with MRN"));
}
