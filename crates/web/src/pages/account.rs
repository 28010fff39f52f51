//! `/account/password`: a signed-in patient changes their password with the
//! new-password component (rules ticked live, or listed after submit).

use super::{internal_error, see_other, Chrome, PageContext};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::i18n::Tr;
use crate::session_cookie::presented_patient_token;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use carekey_domain::password_rules::Rule;
use carekey_domain::policy::PasswordPolicy;
use carekey_domain::secret::Password;
use carekey_service::ServiceError;
use fluent_templates::fluent_bundle::FluentValue;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/password", get(change_page).post(change_submit))
        .route("/static/password.js", get(script))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/password.js"),
    )
}

/// One line of the rule list, standing for one or more rule codes.
pub struct RuleLine {
    pub codes: &'static str,
    pub text: String,
    pub failed: bool,
}

/// The rule list the new-password component shows, with `failed` rules marked.
pub fn rule_lines(tr: &Tr, policy: &PasswordPolicy, failed: &[Rule]) -> Vec<RuleLine> {
    let mut lines = vec![
        (
            "min_length max_length",
            tr.with(
                "pw-rule-length",
                &[("min", FluentValue::from(policy.min_length))],
            ),
        ),
        ("blocklist", tr.t("pw-rule-common")),
        ("personal_info", tr.t("pw-rule-personal")),
        ("history near_copy", tr.t("pw-rule-old")),
        ("strength", tr.t("pw-rule-strength")),
    ];
    if policy.require_classes > 0 {
        lines.push((
            "classes",
            tr.with(
                "rule-classes",
                &[("classes", FluentValue::from(policy.require_classes))],
            ),
        ));
    }
    lines
        .into_iter()
        .map(|(codes, text)| RuleLine {
            failed: failed
                .iter()
                .any(|rule| codes.split(' ').any(|code| code == rule.code())),
            codes,
            text,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "change_password.html")]
struct ChangePasswordPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    problem: Option<String>,
    notice: Option<String>,
    rules: Vec<RuleLine>,
    any_failed: bool,
}

#[derive(Deserialize)]
struct ChangeQuery {
    expired: Option<String>,
}

async fn render(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    status: StatusCode,
    message: Message,
    failed: &[Rule],
) -> Response {
    let session = match presented_patient_token(&state.settings, headers) {
        Some(token) => state.services.patient_session(&token).await.ok(),
        None => None,
    };
    let Some(session) = session else {
        return see_other("/signin", CookieJar::new());
    };
    let policy = match state.services.store.load_policy().await {
        Ok(policy) => policy.password,
        Err(_) => return internal_error(&state.settings, headers),
    };
    let tr = ctx.tr(session.preferred_language);
    let page = ChangePasswordPage {
        chrome: ctx.signed_in_chrome(&tr, "/signout"),
        problem: match message {
            Message::Problem(key) => Some(tr.t(key)),
            _ => None,
        },
        notice: match message {
            Message::Notice(key) => Some(tr.t(key)),
            _ => None,
        },
        rules: rule_lines(&tr, &policy, failed),
        any_failed: !failed.is_empty(),
        csrf: ctx.csrf.clone(),
        tr,
    };
    ctx.render(status, &page, vec![])
}

/// What the page says above the form.
#[derive(Clone, Copy)]
enum Message {
    None,
    Notice(&'static str),
    Problem(&'static str),
}

async fn change_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Query(query): Query<ChangeQuery>,
) -> Response {
    let message = if query.expired.is_some() {
        Message::Notice("pw-expired")
    } else {
        Message::None
    };
    render(&state, &ctx, &headers, StatusCode::OK, message, &[]).await
}

/// The change-password form. (No `Debug`: it holds passwords.)
#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

async fn change_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<ChangeForm>,
) -> Response {
    let Some(token) = presented_patient_token(&state.settings, &headers) else {
        return see_other("/signin", CookieJar::new());
    };
    let outcome = state
        .services
        .change_password(
            &token,
            &Password::new(&form.current_password),
            &Password::new(&form.new_password),
            &Password::new(&form.new_password_confirm),
            &client,
        )
        .await;
    match outcome {
        Ok(()) => see_other("/home?changed=1", CookieJar::new()),
        Err(ServiceError::Unauthenticated) => see_other("/signin?ended=1", CookieJar::new()),
        Err(ServiceError::InvalidCredentials) => {
            render(
                &state,
                &ctx,
                &headers,
                StatusCode::UNAUTHORIZED,
                Message::Problem("pw-wrong-current"),
                &[],
            )
            .await
        }
        Err(ServiceError::PasswordMismatch) => {
            render(
                &state,
                &ctx,
                &headers,
                StatusCode::BAD_REQUEST,
                Message::Problem("pw-mismatch"),
                &[],
            )
            .await
        }
        Err(ServiceError::PasswordPolicy(rules)) => {
            render(
                &state,
                &ctx,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                Message::Problem("pw-fix"),
                &rules,
            )
            .await
        }
        Err(error) => {
            tracing::error!(%error, "password change failed");
            internal_error(&state.settings, &headers)
        }
    }
}
