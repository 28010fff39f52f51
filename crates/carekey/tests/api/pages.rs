//! The patient pages over plain HTTP: language, CSRF, sign-in and sign-out
//! without JavaScript, and the security headers every page carries.

use crate::helpers::{spawn_app, spawn_app_with, Backend, Options, TestApp, PASSWORD};
use crate::on_both_backends;

on_both_backends!(signing_in_through_the_form_reaches_home_and_signing_out_leaves);

/// The value of the `csrf` hidden field in a page.
pub fn csrf_field(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("page has a CSRF field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Opens `/signin` with the app's cookie-keeping client; returns the form's CSRF token.
async fn signin_csrf(app: &TestApp) -> String {
    let page = app.client.get(app.url("/signin")).send().await.unwrap();
    csrf_field(&page.text().await.unwrap())
}

async fn signing_in_through_the_form_reaches_home_and_signing_out_leaves(app: TestApp) {
    app.patient("alex", "Alex").await;
    let browser = &app.client;
    let page = browser.get(app.url("/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_field(&page.text().await.unwrap());

    let wrong = browser
        .post(app.url("/signin"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("login", "alex"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.unwrap();
    assert!(
        html.contains(r#"role="alert""#)
            && html.contains("Check your username or email and your password"),
        "{html}"
    );
    assert!(html.contains(r#"value="alex""#), "the login is kept");

    let right = browser
        .post(app.url("/signin"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("login", "alex"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()["location"], "/home");
    let home = app.page_text("/home").await;
    assert!(home.contains("Hello, Alex"), "{home}");

    let out = browser
        .post(app.url("/signout"))
        .form(&[("csrf", csrf_field(&home).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = browser.get(app.url("/home")).send().await.unwrap();
    assert_eq!(after.status(), 303, "home needs a session again");
    assert_eq!(after.headers()["location"], "/signin");
}

#[tokio::test]
async fn form_posts_without_the_csrf_token_are_refused() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex", "Alex").await;
    let browser = &app.client;
    let csrf = signin_csrf(&app).await;
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        ("/signin", vec![("login", "alex"), ("password", PASSWORD)]),
        (
            "/signin",
            vec![
                ("csrf", "forged-token-forged-token-forged-token"),
                ("login", "alex"),
                ("password", PASSWORD),
            ],
        ),
        ("/signout", vec![]),
        ("/signout", vec![("csrf", "")]),
    ];
    for (path, form) in cases {
        let response = browser
            .post(app.url(path))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path} {form:?}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("This page timed out"));
    }
    // A token without its cookie (another browser) is refused too.
    let stranger = reqwest::Client::new()
        .post(app.url("/signin"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("login", "alex"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    assert_eq!(
        app.services
            .store
            .count_audit("sign_in.succeeded")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn pages_speak_spanish_when_asked_and_remember_it() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let by_header = reqwest::Client::new()
        .get(app.url("/signin"))
        .header("accept-language", "es-MX,es;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(by_header.contains(r#"<html lang="es">"#));
    assert!(by_header.contains("Entre a su portal del paciente"));

    let browser = &app.client;
    let chosen = app.page_text("/signin?lang=es").await;
    assert!(chosen.contains("Contraseña"));
    let remembered = browser
        .get(app.url("/signin"))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        remembered.contains(r#"<html lang="es">"#),
        "the ?lang= choice sticks"
    );
    assert!(
        remembered.contains(r#"href="/signin?lang=en""#),
        "a switch back to English is offered"
    );
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for path in [
        "/signin",
        "/home",
        "/no-such-page",
        "/api/v1/sessions/current",
    ] {
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.url(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(headers.contains_key("x-request-id"), "{path}");
    }
}

#[tokio::test]
async fn over_https_cookies_are_host_prefixed_and_secure() {
    let options = Options {
        public_url: Some("https://portal.example-clinic.org".into()),
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
    app.patient("alex", "Alex").await;
    let response = app.sign_in("alex", PASSWORD).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-carekey_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let page = reqwest::get(app.url("/signin")).await.unwrap();
    let csrf_cookie = page.headers()["set-cookie"].to_str().unwrap();
    assert!(csrf_cookie.starts_with("__Host-carekey_csrf=") && csrf_cookie.contains("Secure"));
    assert!(page.headers().contains_key("strict-transport-security"));
}

fn development(config: &mut carekey::config::Config) {
    config.dev = true;
}

#[tokio::test]
async fn the_dev_mailbox_shows_what_patients_would_receive_only_in_development() {
    use carekey_domain::ids::MessageId;
    use carekey_domain::message::{Channel, MessageData, MessageKind, NewMessage};
    use carekey_domain::model::Language;

    let options = Options {
        configure: Some(development),
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
    let message = NewMessage {
        id: MessageId::generate(),
        kind: MessageKind::UsernameReminder,
        channel: Channel::Email,
        recipient: "alex@example.com".into(),
        language: Language::En,
        patient_id: None,
        data: MessageData {
            usernames: vec!["alex.rivera".into()],
            ..MessageData::default()
        },
    };
    let now = carekey_domain::clock::Clock::now(app.clock.as_ref());
    app.services
        .store
        .enqueue_messages(&[message], now)
        .await
        .unwrap();
    let senders = carekey::delivery::senders(&app.settings).unwrap();
    carekey::delivery::worker(&app.settings, &app.services, senders)
        .run_once()
        .await
        .unwrap();

    let listing = reqwest::get(app.url("/dev/mailbox"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = listing
        .find("href=\"/dev/mailbox/")
        .expect("a message is listed")
        + 6;
    let href = &listing[start..start + listing[start..].find('"').unwrap()];
    assert!(href.ends_with("-email.eml"), "{href}");
    let eml = reqwest::get(app.url(href))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        eml.contains("alex.rivera") && eml.contains("Subject: Your CareKey Clinic portal username"),
        "{eml}"
    );
    let escape = reqwest::get(app.url("/dev/mailbox/..%2F..%2Fcarekey.db"))
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);

    let production = spawn_app(Backend::Sqlite).await.unwrap();
    assert_eq!(
        reqwest::get(production.url("/dev/mailbox"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn without_javascript_the_change_password_form_lists_what_failed() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.patient("alex", "Alex").await;
    let browser = &app.client;
    let csrf = signin_csrf(&app).await;
    browser
        .post(app.url("/signin"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("login", "alex"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let form = app.page_text("/account/password").await;
    assert!(
        form.contains(r#"autocomplete="new-password""#)
            && form.contains(r#"autocomplete="current-password""#)
    );
    assert!(form.contains("At least 15 characters"));
    // Without JavaScript the show/hide toggle stays hidden, and the stylesheet must not un-hide it.
    assert!(form.contains(r#"aria-pressed="false" hidden>"#));
    let css = app.page_text("/static/app.css").await;
    assert!(css.contains("[hidden] { display: none !important; }"));

    let weak = browser
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current_password", PASSWORD),
            ("new_password", "password123"),
            ("new_password_confirm", "password123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 422);
    let html = weak.text().await.unwrap();
    assert!(
        html.contains(r#"<li data-rules="blocklist" class="unmet">"#),
        "{html}"
    );
    assert!(html.contains(r#"<li data-rules="min_length max_length" class="unmet">"#));
    assert!(html.contains(r#"<li data-rules="personal_info" class="pending">"#));

    let good = browser
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current_password", PASSWORD),
            ("new_password", "orange tugboat whistles quietly"),
            ("new_password_confirm", "orange tugboat whistles quietly"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 303);
    assert_eq!(good.headers()["location"], "/home?changed=1");
    let home = app.page_text("/home?changed=1").await;
    assert!(home.contains("Your password was changed"));
}
