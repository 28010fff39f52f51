//! Whole journeys through the pages in a real browser: sign-in and out,
//! Spanish, the live password rules, resets by link, text and front-desk code,
//! and enrollment with a printed code.

use crate::driver::{
    browser, click, fill, submit_sign_in, text_of, wait_for_path, wait_for_path_prefix,
};
use crate::helpers::{spawn_app, Backend, PASSWORD};
use crate::sinks;
use fantoccini::{Client, Locator};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_signs_in_and_out_through_the_pages_and_reads_them_in_spanish() {
    let Some((client, _driver)) = browser().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex.rivera", "Alex").await;

    client.goto(&app.url("/signin")).await.unwrap();
    assert_eq!(
        text_of(&client, "h1").await,
        "Sign in to your patient portal"
    );
    submit_sign_in(&client, "wrong.person", PASSWORD).await;
    let alert = text_of(&client, "[role=alert]").await;
    assert!(alert.contains("That didn't work"), "{alert}");

    submit_sign_in(&client, "Alex.Rivera", PASSWORD).await;
    wait_for_path(&client, "/home").await;
    assert_eq!(text_of(&client, "h1").await, "Hello, Alex");

    client
        .find(Locator::Css("form[action='/signout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&client, "/signin").await;
    assert!(text_of(&client, "[role=status]")
        .await
        .contains("signed out"));

    client
        .find(Locator::Css("a.lang-switch"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&client, "/signin").await;
    // The path does not change: wait for the Spanish page itself.
    text_of(&client, "html[lang='es'] h1").await;
    assert_eq!(
        text_of(&client, "h1").await,
        "Entre a su portal del paciente"
    );
    let lang = client
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    assert_eq!(lang.as_deref(), Some("es"));
    assert_eq!(text_of(&client, "label[for=password]").await, "Contraseña");

    client.set_window_size(360, 640).await.unwrap();
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow.as_i64(),
        Some(0),
        "no sideways scrolling on a 360 px phone"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_password_rules_tick_as_the_patient_types() {
    let Some((client, _driver)) = browser().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex.rivera", "Alex").await;
    client.goto(&app.url("/signin")).await.unwrap();
    submit_sign_in(&client, "alex.rivera", PASSWORD).await;
    wait_for_path(&client, "/home").await;
    client
        .find(Locator::Css("a[href='/account/password']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&client, "/account/password").await;

    let rule = |codes: &'static str| format!("li[data-rules='{codes}']");
    let wait_for_class = |codes: &'static str, class: &'static str| {
        let client = client.clone();
        let css = rule(codes);
        async move {
            for _ in 0..50 {
                let item = client.find(Locator::Css(&css)).await.unwrap();
                if item.attr("class").await.unwrap().as_deref() == Some(class) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{css} never became {class}");
        }
    };
    let new_password = client.find(Locator::Id("new_password")).await.unwrap();
    new_password.send_keys("password123").await.unwrap();
    wait_for_class("blocklist", "unmet").await;
    wait_for_class("min_length max_length", "unmet").await;

    let toggle = client
        .find(Locator::Css("[data-toggle-password]"))
        .await
        .unwrap();
    toggle.click().await.unwrap();
    assert_eq!(
        new_password.attr("type").await.unwrap().as_deref(),
        Some("text"),
        "show reveals the password"
    );
    toggle.click().await.unwrap();
    assert_eq!(
        new_password.attr("type").await.unwrap().as_deref(),
        Some("password")
    );

    new_password.clear().await.unwrap();
    new_password
        .send_keys("orange tugboat whistles quietly")
        .await
        .unwrap();
    for codes in [
        "min_length max_length",
        "blocklist",
        "personal_info",
        "strength",
    ] {
        wait_for_class(codes, "met").await;
    }
    client
        .find(Locator::Id("current_password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    client
        .find(Locator::Id("new_password_confirm"))
        .await
        .unwrap()
        .send_keys("orange tugboat whistles quietly")
        .await
        .unwrap();
    client
        .find(Locator::Css(
            "form[action='/account/password'] button[type=submit]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&client, "/home").await;
    assert!(text_of(&client, "[role=status]")
        .await
        .contains("Your password was changed"));
    client.close().await.unwrap();
}

/// Waits until the rule line for `codes` shows `class` (the live check answered).
async fn wait_for_rule(client: &Client, codes: &str, class: &str) {
    let css = format!("li[data-rules='{codes}']");
    for _ in 0..50 {
        let item = client.find(Locator::Css(&css)).await.unwrap();
        if item.attr("class").await.unwrap().as_deref() == Some(class) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never became {class}");
}

/// On `/reset`: checks the account's own rules apply live, then saves a new
/// password and signs in with it.
async fn choose_new_password_and_sign_in(client: &Client, username: &str) {
    let new = "orange tugboat whistles quietly";
    assert!(text_of(client, "main").await.contains(username));
    fill(
        client,
        "new_password",
        &format!("{username} tugboat whistles"),
    )
    .await;
    wait_for_rule(client, "personal_info", "unmet").await;
    fill(client, "new_password", new).await;
    wait_for_rule(client, "personal_info", "met").await;
    fill(client, "new_password_confirm", new).await;
    click(client, "form[action='/reset'] button[type=submit]").await;
    wait_for_path(client, "/signin").await;
    assert!(text_of(client, "[role=status]")
        .await
        .contains("Your password was changed"));
    submit_sign_in(client, username, new).await;
    wait_for_path(client, "/home").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_resets_by_the_emailed_link_through_the_pages() {
    let Some((client, _driver)) = browser().await else {
        return;
    };
    let Some(mailroom) = sinks::Mailroom::open().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex.rivera", "Alex").await;

    client.goto(&app.url("/signin")).await.unwrap();
    click(&client, "a[href='/forgot-password']").await;
    wait_for_path(&client, "/forgot-password").await;
    fill(&client, "identifier", "Alex.Rivera").await;
    click(
        &client,
        "form[action='/forgot-password'] button[type=submit]",
    )
    .await;
    wait_for_path_prefix(&client, "/recover/").await;
    assert_eq!(text_of(&client, "h1").await, "Check your email");
    assert!(text_of(&client, "main").await.contains("spam"));

    assert_eq!(mailroom.deliver(&app).await, 1);
    let email = &mailroom.emails_to("alex.rivera@example.com")[0];
    let link = sinks::links_in(&email.text).pop().unwrap();
    client.goto(&link).await.unwrap();
    wait_for_path(&client, "/reset").await;
    let address = client.current_url().await.unwrap();
    assert_eq!(
        address.query(),
        None,
        "the token left the address bar: {address}"
    );
    choose_new_password_and_sign_in(&client, "alex.rivera").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_resets_with_a_texted_code_through_the_pages() {
    let Some((client, _driver)) = browser().await else {
        return;
    };
    let Some(mailroom) = sinks::Mailroom::open().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient_with("maria.garcia", "María", None, Some("(210) 555-0142"))
        .await;

    client.goto(&app.url("/forgot-password")).await.unwrap();
    fill(&client, "identifier", "210 555 0142").await;
    click(&client, "#channel-sms").await;
    click(
        &client,
        "form[action='/forgot-password'] button[type=submit]",
    )
    .await;
    wait_for_path_prefix(&client, "/recover/").await;
    assert_eq!(text_of(&client, "h1").await, "Check your text messages");

    mailroom.deliver(&app).await;
    let texts = mailroom.phone_messages_to("+12105550142");
    let code = sinks::code_in(texts[0].field("Body").unwrap(), 6).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    fill(&client, "code", wrong).await;
    click(&client, "form[action^='/recover/'] button[type=submit]").await;
    let alert = client
        .wait()
        .for_element(Locator::Css("[role=alert]"))
        .await
        .unwrap();
    let said = alert.text().await.unwrap();
    assert!(said.contains("4 more times"), "{said}");
    fill(&client, "code", &code).await;
    click(&client, "form[action^='/recover/'] button[type=submit]").await;
    wait_for_path(&client, "/reset").await;
    choose_new_password_and_sign_in(&client, "maria.garcia").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_desk_code_lets_the_patient_choose_a_new_password() {
    use carekey_domain::audit::Actor;
    use carekey_domain::identifiers::Username;
    use carekey_domain::model::StaffRole;
    use carekey_domain::secret::Password;
    let Some((client, _driver)) = browser().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex.rivera", "Alex").await;
    app.services
        .create_staff(
            Username::parse("frontdesk").unwrap(),
            StaffRole::FrontDesk,
            &Password::new("front desk long passphrase here"),
            Actor::System,
        )
        .await
        .unwrap();

    // The front desk signs in and enrols an authenticator app.
    client.goto(&app.url("/staff/signin")).await.unwrap();
    fill(&client, "username", "frontdesk").await;
    fill(&client, "password", "front desk long passphrase here").await;
    click(&client, "form[action='/staff/signin'] button[type=submit]").await;
    wait_for_path(&client, "/staff/totp").await;
    let secret = text_of(&client, "#totp-secret").await;
    let now = u64::try_from(app.now().timestamp()).unwrap();
    let code = carekey_domain::totp::code_at(&secret, now).unwrap();
    fill(&client, "totp", &code).await;
    click(&client, "form[action='/staff/totp'] button[type=submit]").await;
    wait_for_path(&client, "/staff").await;

    // Search, open the record (one match opens at once), generate a code.
    fill(&client, "query", "Tester").await;
    click(&client, "form[role=search] button[type=submit]").await;
    wait_for_path_prefix(&client, "/staff/patients/").await;
    assert_eq!(text_of(&client, "#portal-status").await, "Active");
    click(&client, "#generate-code").await;
    wait_for_path_prefix(&client, "/staff/patients/").await;
    let code = client
        .wait()
        .for_element(Locator::Css("#one-time-code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(code.len(), 14, "{code}");

    // The patient redeems it at home and chooses a new password.
    client.goto(&app.url("/signin")).await.unwrap();
    click(&client, "a[href='/have-a-code']").await;
    wait_for_path(&client, "/have-a-code").await;
    fill(&client, "code", &code.to_lowercase()).await;
    fill(&client, "birth_month", "1").await;
    fill(&client, "birth_day", "31").await;
    fill(&client, "birth_year", "1970").await;
    click(&client, "form[action='/have-a-code'] button[type=submit]").await;
    wait_for_path(&client, "/reset").await;
    choose_new_password_and_sign_in(&client, "alex.rivera").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_enrolls_in_spanish_with_a_printed_code() {
    use carekey_domain::audit::Actor;
    use carekey_domain::identifiers::DateOfBirth;
    use carekey_domain::model::NewPatient;
    use carekey_domain::staff::{StaffMember, Verification, VerificationMethod};
    let Some((client, _driver)) = browser().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let patient = app
        .services
        .create_patient(
            &NewPatient {
                mrn: "MRN-JN".into(),
                given_name: "José".into(),
                family_name: "Núñez".into(),
                date_of_birth: DateOfBirth::parse("1949-11-02").unwrap(),
                postal_code: None,
                preferred_language: Some("es".into()),
                email: None,
                phone: None,
            },
            Actor::System,
        )
        .await
        .unwrap();
    let desk = carekey_service::staff::StaffSession {
        staff: StaffMember {
            id: carekey_domain::ids::StaffId::generate(),
            username: "desk".into(),
            role: carekey_domain::model::StaffRole::FrontDesk,
            disabled: false,
            totp_enrolled: true,
        },
        expires_at: app.now(),
    };
    let verification = Verification {
        method: VerificationMethod::PhotoId,
        note: None,
    };
    let (code, _, _) = app
        .services
        .staff_invite(&desk, patient, None, &verification)
        .await
        .unwrap();
    let code = code.unwrap();

    client.goto(&app.url("/signin?lang=es")).await.unwrap();
    click(&client, "a[href='/enroll']").await;
    wait_for_path(&client, "/enroll").await;
    assert_eq!(
        text_of(&client, "h1").await,
        "Configure su portal del paciente"
    );
    fill(&client, "code", &code).await;
    fill(&client, "birth_month", "11").await;
    fill(&client, "birth_day", "2").await;
    fill(&client, "birth_year", "1949").await;
    click(&client, "form[action='/enroll'] button[type=submit]").await;
    wait_for_path(&client, "/enroll/account").await;
    assert!(text_of(&client, "main")
        .await
        .contains("Bienvenido(a), José"));
    let ideas = text_of(&client, "#username-ideas").await;
    assert!(
        ideas.starts_with("Disponibles:") && ideas.contains("jose.nunez"),
        "{ideas}"
    );
    fill(&client, "username", "jose.nunez").await;
    let password = "faroles del puerto brillan";
    fill(&client, "new_password", password).await;
    fill(&client, "new_password_confirm", password).await;
    click(
        &client,
        "form[action='/enroll/account'] button[type=submit]",
    )
    .await;
    wait_for_path(&client, "/signin").await;
    assert!(text_of(&client, "[role=status]")
        .await
        .contains("Su cuenta del portal está lista"));
    submit_sign_in(&client, "jose.nunez", password).await;
    wait_for_path(&client, "/home").await;
    client.close().await.unwrap();
}
