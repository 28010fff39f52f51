//! The recovery pages over plain HTTP, as a browser without JavaScript uses
//! them: forms with CSRF, the code page, the reset cookie, the expired-link
//! page with its one-click new link, and the staff-code page.

use crate::helpers::{TestApp, BIRTH_DATE};
use crate::on_both_backends;
use crate::pages::csrf_field;
use carekey_domain::audit::Actor;
use chrono::Duration;

on_both_backends!(
    the_whole_reset_works_without_javascript,
    an_expired_link_offers_a_new_one_in_one_click,
    a_staff_code_opens_the_reset_form,
    recovery_forms_refuse_posts_without_the_csrf_token,
);

const NEW_PASSWORD: &str = "orange tugboat whistles quietly";

/// GETs a page with the cookie-keeping client: its status and body.
async fn open(app: &TestApp, path: &str) -> (u16, String) {
    let page = app.client.get(app.url(path)).send().await.unwrap();
    (page.status().as_u16(), page.text().await.unwrap())
}

/// POSTs a form with the page's CSRF token: the response.
async fn submit(
    app: &TestApp,
    path: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    app.client
        .post(app.url(path))
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn the_whole_reset_works_without_javascript(app: TestApp) {
    app.patient("alex", "Alex").await;
    let (status, page) = open(&app, "/forgot-password").await;
    assert_eq!(status, 200);
    assert!(page.contains("Email me a link") && page.contains("Text me a code"));
    let csrf = csrf_field(&page);
    let sent = submit(
        &app,
        "/forgot-password",
        &csrf,
        &[("identifier", "alex"), ("channel", "email")],
    )
    .await;
    assert_eq!(sent.status(), 303);
    let recover = location(&sent);
    assert!(recover.starts_with("/recover/"), "{recover}");
    let (status, page) = open(&app, &recover).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Check your email") && page.contains("spam"),
        "{page}"
    );

    let code = app.messages(1).await[0].data.code.clone().unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = submit(&app, &recover, &csrf, &[("code", wrong)]).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("4 more times"));
    let accepted = submit(&app, &recover, &csrf, &[("code", &code)]).await;
    assert_eq!(accepted.status(), 303);
    assert_eq!(location(&accepted), "/reset");
    let cookie = accepted.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("Path=/reset") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    let (status, form) = open(&app, "/reset").await;
    assert_eq!(status, 200);
    assert!(form.contains("For the account alex."), "{form}");
    let mismatch = submit(
        &app,
        "/reset",
        &csrf,
        &[
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", "other"),
        ],
    )
    .await;
    assert_eq!(mismatch.status(), 400);
    let weak = submit(
        &app,
        "/reset",
        &csrf,
        &[
            ("new_password", "password123"),
            ("new_password_confirm", "password123"),
        ],
    )
    .await;
    assert_eq!(weak.status(), 422);
    assert!(weak.text().await.unwrap().contains("class=\"unmet\""));
    let done = submit(
        &app,
        "/reset",
        &csrf,
        &[
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/signin?reset=1");
    assert_eq!(app.sign_in("alex", NEW_PASSWORD).await.status(), 200);
    let (status, _) = open(&app, "/reset").await;
    assert_eq!(status, 410, "the cookie no longer opens the form");
}

async fn an_expired_link_offers_a_new_one_in_one_click(app: TestApp) {
    app.patient("alex", "Alex").await;
    let flow = app
        .post_json(
            "/api/v1/recovery",
            serde_json::json!({ "purpose": "password", "channel": "email", "username": "alex" }),
        )
        .await;
    assert_eq!(flow.status(), 202);
    let link = app.messages(1).await[0].data.link.clone().unwrap();
    app.advance(Duration::minutes(61));
    let opened = app.client.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), 303);
    let (status, page) = open(&app, "/reset").await;
    assert_eq!(status, 410);
    assert!(page.contains("This link has expired") && page.contains("Email me a new link"));
    let renewed = submit(&app, "/reset/renew", &csrf_field(&page), &[]).await;
    assert_eq!(renewed.status(), 303);
    assert!(location(&renewed).starts_with("/recover/"));
    let messages = app.messages(5).await;
    assert_eq!(messages.len(), 2, "a fresh link went out");
    assert_ne!(messages[0].data.link, Some(link));

    let stranger = reqwest::Client::new()
        .get(app.url("/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 410);
    let page = stranger.text().await.unwrap();
    assert!(!page.contains("Email me a new link") && page.contains("/forgot-password"));
}

async fn a_staff_code_opens_the_reset_form(app: TestApp) {
    let account = app.patient("alex", "Alex").await;
    let (code, _) = app
        .services
        .issue_staff_code(account, Actor::System, serde_json::json!({}))
        .await
        .unwrap();
    let (status, page) = open(&app, "/have-a-code").await;
    assert_eq!(status, 200);
    let csrf = csrf_field(&page);
    let (year, rest) = BIRTH_DATE.split_once('-').unwrap();
    let (month, day) = rest.split_once('-').unwrap();
    let wrong = submit(
        &app,
        "/have-a-code",
        &csrf,
        &[
            ("code", &code),
            ("birth_month", month),
            ("birth_day", "1"),
            ("birth_year", year),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.unwrap().contains("date of birth don"));
    let typed = code.to_lowercase();
    let right = submit(
        &app,
        "/have-a-code",
        &csrf,
        &[
            ("code", &typed),
            ("birth_month", month),
            ("birth_day", day),
            ("birth_year", year),
        ],
    )
    .await;
    assert_eq!(right.status(), 303);
    assert_eq!(location(&right), "/reset");
    let (status, form) = open(&app, "/reset").await;
    assert_eq!(status, 200);
    assert!(form.contains("new_password"));
}

async fn recovery_forms_refuse_posts_without_the_csrf_token(app: TestApp) {
    app.patient("alex", "Alex").await;
    for path in [
        "/forgot-password",
        "/forgot-username",
        "/have-a-code",
        "/reset",
        "/reset/renew",
        "/reset/choose",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .form(&[("identifier", "alex"), ("code", "123456")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    assert!(app.messages(5).await.is_empty(), "nothing was sent");
}
