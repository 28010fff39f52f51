//! A walk through every page a patient or the front desk can reach, in one
//! language, stopping at each normal and error state (wrong code, rejected
//! password, expired link, locked account, timed-out form, …) so that an
//! [`Inspector`] can look at it. The accessibility, phone and screenshot tests
//! all take this one walk, so a new page is added here once.

use crate::driver::{click, fill, text_of, wait_for_path, wait_for_path_prefix};
use crate::helpers::{TestApp, BIRTH_DATE, PASSWORD};
use crate::inspect::Inspector;
use carekey_domain::audit::Actor;
use carekey_domain::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use carekey_domain::model::{NewPatient, StaffRole};
use carekey_domain::secret::Password;
use chrono::Duration;
use fantoccini::Client;

pub const STAFF_USERNAME: &str = "frontdesk";
pub const STAFF_PASSWORD: &str = "front desk long passphrase here";
pub const AUDITOR_USERNAME: &str = "auditor";
/// The password the tour's patients end up with after their reset.
pub const NEW_PASSWORD: &str = "orange tugboat whistles quietly";

/// The people the walk needs, each set up for the states they show.
pub async fn populate(app: &TestApp) {
    // Alex: email on file; resets, signs in, and changes a contact.
    app.patient("alex.rivera", "Alex").await;
    // Sam: will be locked out by wrong passwords.
    app.patient("sam.locked", "Sam").await;
    // María: a mobile phone only; resets by text message.
    app.patient_with("maria.garcia", "María", None, Some("(210) 555-0142"))
        .await;
    // The Thompsons: two accounts sharing one family email.
    for (username, name) in [("ann.thompson", "Ann"), ("ben.thompson", "Ben")] {
        app.patient_with_email(username, name, "thompson.family@example.com")
            .await;
    }
    // José: on the clinic's record, no portal account yet (enrollment).
    app.services
        .create_patient(
            &NewPatient {
                mrn: "MRN-JN".into(),
                given_name: "José".into(),
                family_name: "Núñez".into(),
                date_of_birth: DateOfBirth::parse(BIRTH_DATE).unwrap(),
                postal_code: None,
                preferred_language: None,
                email: Some(Email::parse("jose.nunez@example.com").unwrap()),
                phone: Some(PhoneE164::parse("(210) 555-0199", "US").unwrap()),
            },
            Actor::System,
        )
        .await
        .unwrap();
    for (username, role) in [
        (STAFF_USERNAME, StaffRole::FrontDesk),
        (AUDITOR_USERNAME, StaffRole::Auditor),
    ] {
        app.services
            .create_staff(
                Username::parse(username).unwrap(),
                role,
                &Password::new(STAFF_PASSWORD),
                Actor::System,
            )
            .await
            .unwrap();
    }
}

/// The newest message to `recipient` (the tests read what the patient would
/// receive from the outbox rather than from a mail server). Ids are
/// time-ordered; the test clock stands still, so timestamps tie.
async fn newest_message(app: &TestApp, recipient: &str) -> carekey_domain::message::MessageData {
    app.messages(500)
        .await
        .into_iter()
        .filter(|m| m.recipient == recipient)
        .max_by_key(|m| m.id.to_string())
        .unwrap_or_else(|| panic!("no message to {recipient}"))
        .data
}

/// Submits the form matching `form` (a CSS selector) and waits until the
/// browser shows the page that answered it.
async fn submit(client: &Client, form: &str) {
    client
        .execute("window.carekeyTourOldPage = true;", vec![])
        .await
        .unwrap();
    click(client, &format!("{form} button[type=submit]")).await;
    for _ in 0..100 {
        let fresh = client
            .execute(
                "return window.carekeyTourOldPage !== true && document.readyState === 'complete';",
                vec![],
            )
            .await;
        if fresh.is_ok_and(|v| v == serde_json::Value::Bool(true)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("submitting {form} never brought a new page");
}

/// Waits for the page's alert (an error state has rendered).
async fn alert(client: &Client) -> String {
    text_of(client, "[role=alert]").await
}

/// The front desk's pages, on a desktop: sign-in, authenticator set-up,
/// search, a record, a generated code, a printed invitation letter, the
/// audit log. Returns the activation code the letter printed for José.
pub async fn staff_tour(client: &Client, app: &TestApp, inspector: &mut Inspector) -> String {
    inspector.open(client, app, "/staff/signin").await;
    inspector.look(client, "staff-signin").await;

    fill(client, "username", STAFF_USERNAME).await;
    fill(client, "password", "not the password at all").await;
    submit(client, "form[action='/staff/signin']").await;
    alert(client).await;
    inspector.look(client, "staff-signin-failed").await;

    fill(client, "username", STAFF_USERNAME).await;
    fill(client, "password", STAFF_PASSWORD).await;
    submit(client, "form[action='/staff/signin']").await;
    wait_for_path(client, "/staff/totp").await;
    inspector.signed_in = true;
    inspector.look(client, "staff-totp").await;

    let secret = text_of(client, "#totp-secret").await;
    let now = u64::try_from(app.now().timestamp()).unwrap();
    let code = carekey_domain::totp::code_at(&secret, now).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    fill(client, "totp", wrong).await;
    submit(client, "form[action='/staff/totp']").await;
    alert(client).await;
    inspector.look(client, "staff-totp-wrong").await;
    // The page may show a fresh secret after a wrong code: use what it shows.
    let secret = text_of(client, "#totp-secret").await;
    let code = carekey_domain::totp::code_at(&secret, now).unwrap();
    fill(client, "totp", &code).await;
    submit(client, "form[action='/staff/totp']").await;
    wait_for_path(client, "/staff").await;
    inspector.look(client, "staff-search").await;

    fill(client, "query", "Tester").await;
    submit(client, "form[role=search]").await;
    text_of(client, "table.results").await;
    inspector.look(client, "staff-search-results").await;
    fill(client, "query", "nobody by this name").await;
    submit(client, "form[role=search]").await;
    wait_for_query(client, "query=nobody").await;
    inspector.look(client, "staff-search-none").await;

    fill(client, "query", "MRN-alex.rivera").await;
    submit(client, "form[role=search]").await;
    wait_for_path_prefix(client, "/staff/patients/").await;
    inspector.look(client, "staff-record").await;
    let record = client.current_url().await.unwrap().path().to_owned();

    submit(client, "form[action$='/reset-code']").await;
    text_of(client, "#one-time-code").await;
    inspector.look(client, "staff-code").await;

    inspector.open(client, app, &record).await;
    fill(client, "new-phone", "12").await;
    submit(client, &format!("form[action='{record}/contacts']")).await;
    alert(client).await;
    inspector.look(client, "staff-record-problem").await;

    inspector
        .open(client, app, "/staff?query=N%C3%BA%C3%B1ez")
        .await;
    wait_for_path_prefix(client, "/staff/patients/").await;
    inspector.look(client, "staff-record-no-account").await;
    submit(client, "form[action$='/invite']").await;
    let activation_code = text_of(client, "#one-time-code").await;
    inspector.look(client, "staff-letter").await;

    // The audit trail is not the front desk's: a page says so. An auditor's
    // console is the audit trail itself.
    inspector.open(client, app, "/staff/audit").await;
    // A message page with a way back to the console (which has sign-out).
    inspector.signed_in = false;
    inspector.look(client, "staff-role-forbidden").await;
    inspector.signed_in = true;
    inspector.open(client, app, "/staff").await;
    submit(client, "header form.sign-out").await;
    wait_for_path(client, "/staff/signin").await;
    fill(client, "username", AUDITOR_USERNAME).await;
    fill(client, "password", STAFF_PASSWORD).await;
    submit(client, "form[action='/staff/signin']").await;
    wait_for_path(client, "/staff/totp").await;
    let secret = text_of(client, "#totp-secret").await;
    fill(
        client,
        "totp",
        &carekey_domain::totp::code_at(&secret, now).unwrap(),
    )
    .await;
    submit(client, "form[action='/staff/totp']").await;
    wait_for_path(client, "/staff/audit").await;
    inspector.look(client, "staff-audit").await;
    // The trail says what happened in the page's words, the stored code beside them.
    let trail = text_of(client, "table.results tbody").await;
    let signed_in = match inspector.lang {
        "es" => "El personal inició sesión",
        _ => "Staff signed in",
    };
    assert!(
        trail.contains(signed_in) && trail.contains("staff.sign_in.succeeded"),
        "the audit trail shows no words for the auditor's own sign-in: {trail}"
    );
    inspector.signed_in = false;
    inspector
        .open(
            client,
            app,
            "/staff/patients/00000000-0000-4000-8000-000000000000",
        )
        .await;
    inspector.look(client, "staff-record-not-found").await;
    activation_code
}

async fn wait_for_query(client: &Client, part: &str) {
    for _ in 0..100 {
        let url = client.current_url().await.unwrap();
        if url.query().is_some_and(|q| q.contains(part)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never reached a page with {part} in its address");
}

/// Every patient page, on a phone, in its normal and error states.
pub async fn patient_tour(
    client: &Client,
    app: &TestApp,
    inspector: &mut Inspector,
    activation_code: &str,
) {
    // Sign-in: the page, a wrong password, and a locked account (which, so as
    // not to tell a stranger the account exists, reads like a wrong password).
    inspector.open(client, app, "/signin").await;
    inspector.look(client, "signin").await;
    sign_in(client, "alex.rivera", "not my password").await;
    alert(client).await;
    inspector.look(client, "signin-failed").await;
    for _ in 0..5 {
        app.sign_in("sam.locked", "wrong password again").await;
    }
    sign_in(client, "sam.locked", PASSWORD).await;
    alert(client).await;
    inspector.look(client, "signin-locked").await;

    // Forgot password: the form, an unreadable entry, the email sent.
    inspector.open(client, app, "/forgot-password").await;
    inspector.look(client, "forgot-password").await;
    fill(client, "identifier", "alex@@example").await;
    submit(client, "form[action='/forgot-password']").await;
    alert(client).await;
    inspector.look(client, "forgot-password-unreadable").await;
    fill(client, "identifier", "alex.rivera").await;
    submit(client, "form[action='/forgot-password']").await;
    wait_for_path_prefix(client, "/recover/").await;
    inspector.look(client, "recover-email").await;
    fill(client, "code", "000001").await;
    submit(client, "form[action^='/recover/']").await;
    alert(client).await;
    inspector.look(client, "recover-wrong-code").await;

    // The emailed link: the new-password form, a rejected password, success.
    let link = newest_message(app, "alex.rivera@example.com")
        .await
        .link
        .unwrap();
    client.goto(&link).await.unwrap();
    wait_for_path(client, "/reset").await;
    inspector.look(client, "reset").await;
    fill(client, "new_password", "password").await;
    fill(client, "new_password_confirm", "password").await;
    submit(client, "form[action='/reset']").await;
    alert(client).await;
    inspector.look(client, "reset-rejected").await;
    fill(client, "new_password", NEW_PASSWORD).await;
    fill(client, "new_password_confirm", NEW_PASSWORD).await;
    submit(client, "form[action='/reset']").await;
    wait_for_path(client, "/signin").await;
    text_of(client, "[role=status]").await;
    inspector.look(client, "signin-password-changed").await;

    // An old link: the expired page with its one-click new link.
    inspector.open(client, app, "/forgot-password").await;
    fill(client, "identifier", "alex.rivera").await;
    submit(client, "form[action='/forgot-password']").await;
    wait_for_path_prefix(client, "/recover/").await;
    let link = newest_message(app, "alex.rivera@example.com")
        .await
        .link
        .unwrap();
    app.advance(Duration::hours(2));
    client.goto(&link).await.unwrap();
    wait_for_path(client, "/reset").await;
    text_of(client, "form[action='/reset/renew']").await;
    inspector.look(client, "link-expired").await;

    // A text message code, and a code guessed wrong until it stops working.
    inspector.open(client, app, "/forgot-password").await;
    fill(client, "identifier", "210 555 0142").await;
    click(client, "#channel-sms").await;
    submit(client, "form[action='/forgot-password']").await;
    wait_for_path_prefix(client, "/recover/").await;
    inspector.look(client, "recover-sms").await;
    let code = newest_message(app, "+12105550142").await.code.unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        fill(client, "code", wrong).await;
        submit(client, "form[action^='/recover/']").await;
        text_of(client, "h1").await;
        if client.find(fantoccini::Locator::Id("code")).await.is_err() {
            break;
        }
    }
    inspector.look(client, "recover-code-expired").await;

    // A family email: the code opens a choice of accounts.
    inspector.open(client, app, "/forgot-password").await;
    fill(client, "identifier", "thompson.family@example.com").await;
    submit(client, "form[action='/forgot-password']").await;
    wait_for_path_prefix(client, "/recover/").await;
    let code = newest_message(app, "thompson.family@example.com")
        .await
        .code
        .unwrap();
    fill(client, "code", &code).await;
    submit(client, "form[action^='/recover/']").await;
    text_of(client, "ul.accounts").await;
    inspector.look(client, "choose-account").await;

    // Forgot username.
    inspector.open(client, app, "/forgot-username").await;
    inspector.look(client, "forgot-username").await;
    fill(client, "identifier", "maria.garcia@example.com").await;
    submit(client, "form[action='/forgot-username']").await;
    wait_for_path_prefix(client, "/recover/").await;
    inspector.look(client, "recover-username-email").await;

    // A code from the front desk: the form and a wrong code.
    inspector.open(client, app, "/have-a-code").await;
    inspector.look(client, "have-a-code").await;
    fill(client, "code", "7KQ4-M2XD-9PRT").await;
    fill_birth_date(client).await;
    submit(client, "form[action='/have-a-code']").await;
    alert(client).await;
    inspector.look(client, "have-a-code-wrong").await;

    // Enrollment with the letter's activation code.
    inspector.open(client, app, "/enroll").await;
    inspector.look(client, "enroll").await;
    fill(client, "code", "7KQ4-M2XD-9PRT").await;
    fill_birth_date(client).await;
    submit(client, "form[action='/enroll']").await;
    alert(client).await;
    inspector.look(client, "enroll-wrong-code").await;
    fill(client, "code", activation_code).await;
    fill_birth_date(client).await;
    submit(client, "form[action='/enroll']").await;
    wait_for_path(client, "/enroll/account").await;
    inspector.look(client, "enroll-account").await;
    fill(client, "username", "alex.rivera").await;
    fill(client, "new_password", NEW_PASSWORD).await;
    fill(client, "new_password_confirm", NEW_PASSWORD).await;
    submit(client, "form[action='/enroll/account']").await;
    alert(client).await;
    inspector
        .look(client, "enroll-account-username-taken")
        .await;
    fill(client, "username", "jose.nunez").await;
    fill(client, "new_password", NEW_PASSWORD).await;
    fill(client, "new_password_confirm", NEW_PASSWORD).await;
    submit(client, "form[action='/enroll/account']").await;
    wait_for_path(client, "/signin").await;
    inspector.look(client, "signin-account-ready").await;

    // Signed in: home, the account page, changing a contact, the password.
    sign_in(client, "alex.rivera", NEW_PASSWORD).await;
    wait_for_path(client, "/home").await;
    inspector.signed_in = true;
    inspector.look(client, "home").await;
    inspector.open(client, app, "/account").await;
    inspector.look(client, "account").await;
    fill(client, "new-email", "alex.new@example.com").await;
    fill(client, "password-email", NEW_PASSWORD).await;
    submit(client, "form[action='/account/contacts/email']").await;
    wait_for_path_prefix(client, "/account/verify/").await;
    inspector.look(client, "account-verify").await;
    fill(client, "code", "000001").await;
    submit(client, "form[action^='/account/verify/']").await;
    alert(client).await;
    inspector.look(client, "account-verify-wrong-code").await;
    inspector.open(client, app, "/account/password").await;
    inspector.look(client, "change-password").await;
    fill(client, "current_password", "not my password").await;
    fill(client, "new_password", "lantern harbour morning tide").await;
    fill(
        client,
        "new_password_confirm",
        "lantern harbour morning tide",
    )
    .await;
    submit(client, "form[action='/account/password']").await;
    alert(client).await;
    inspector.look(client, "change-password-rejected").await;

    inspector.signed_in = false;
    // Pages that are not there, and a form left open too long (its
    // protection cookie gone, as after a browser restart).
    inspector.open(client, app, "/no-such-page").await;
    inspector.look(client, "not-found").await;
    // A form's address typed into the address bar (GET where only POST is served).
    inspector.open(client, app, "/signout").await;
    inspector.look(client, "form-address-typed-in").await;
    inspector.open(client, app, "/forgot-password").await;
    client.delete_cookie("carekey_csrf").await.unwrap();
    fill(client, "identifier", "alex.rivera").await;
    submit(client, "form[action='/forgot-password']").await;
    wait_for_heading_change(client, "/forgot-password").await;
    inspector.look(client, "form-expired").await;

    // Too many requests from one place.
    app.set_policy(|policy| policy.recovery.per_ip_per_15_minutes = 0)
        .await;
    inspector.open(client, app, "/forgot-password").await;
    fill(client, "identifier", "alex.rivera").await;
    submit(client, "form[action='/forgot-password']").await;
    wait_for_heading_change(client, "/forgot-password").await;
    inspector.look(client, "too-many-requests").await;
}

async fn sign_in(client: &Client, login: &str, password: &str) {
    fill(client, "login", login).await;
    fill(client, "password", password).await;
    submit(client, "form[action='/signin']").await;
}

async fn fill_birth_date(client: &Client) {
    let (year, rest) = BIRTH_DATE.split_once('-').unwrap();
    let (month, day) = rest.split_once('-').unwrap();
    fill(client, "birth_month", month).await;
    fill(client, "birth_day", day).await;
    fill(client, "birth_year", year).await;
}

/// After a post back to `form_action`, waits until the page is no longer that form.
async fn wait_for_heading_change(client: &Client, form_action: &str) {
    let form = format!("form[action='{form_action}']");
    for _ in 0..100 {
        if client.find(fantoccini::Locator::Css(&form)).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the page still shows {form}");
}
