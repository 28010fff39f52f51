//! `/enroll`: first access with a clinic-issued activation code. The code and
//! date of birth open enrollment (its token moves into a cookie scoped to
//! `/enroll`); the patient then chooses a username and password and signs in.

use super::account::{rule_lines, RuleLine};
use super::{internal_error, see_other, Chrome, MessagePage, PageContext};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::i18n::Tr;
use crate::session_cookie::ScopedTokenCookie;
use crate::state::{AppState, WebSettings};
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use carekey_domain::password_rules::Rule;
use carekey_domain::ports::TokenState;
use carekey_domain::secret::Password;
use carekey_domain::token::{OpaqueToken, TokenPurpose};
use carekey_service::ServiceError;
use serde::Deserialize;

use super::recovery::BirthDate;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/enroll", get(code_page).post(code_submit))
        .route("/enroll/account", get(account_page).post(account_submit))
}

/// The cookie that holds the enrollment token between the two steps.
const ENROLL_COOKIE: ScopedTokenCookie = ScopedTokenCookie {
    name: "carekey_enroll",
    secure_name: "__Secure-carekey_enroll",
    path: "/enroll",
};

fn presented(settings: &WebSettings, headers: &HeaderMap) -> Option<OpaqueToken> {
    ENROLL_COOKIE.presented(settings, headers)
}

#[derive(Template)]
#[template(path = "enroll.html")]
struct CodePage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    code: String,
    birth: BirthDate,
    postal: bool,
    problem: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeForm {
    code: String,
    #[serde(flatten)]
    birth: BirthDate,
    postal_code: String,
}

async fn render_code(
    state: &AppState,
    ctx: &PageContext,
    status: StatusCode,
    form: CodeForm,
    problem: Option<&str>,
) -> Response {
    let postal = state
        .services
        .store
        .load_policy()
        .await
        .map(|p| p.activation.require_postal_code)
        .unwrap_or(false);
    let tr = ctx.tr(None);
    let page = CodePage {
        chrome: ctx.chrome(&tr),
        csrf: ctx.csrf.clone(),
        code: form.code.chars().take(32).collect(),
        birth: form.birth,
        postal,
        problem: problem.map(|key| tr.t(key)),
        tr,
    };
    ctx.render(status, &page, vec![])
}

async fn code_page(State(state): State<AppState>, ctx: PageContext) -> Response {
    render_code(&state, &ctx, StatusCode::OK, CodeForm::default(), None).await
}

async fn code_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let Some(date_of_birth) = form.birth.iso() else {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return render_code(&state, &ctx, status, form, Some("forgot-bad-birth-date")).await;
    };
    let postal = Some(form.postal_code.trim()).filter(|p| !p.is_empty());
    match state
        .services
        .start_enrollment(&form.code, &date_of_birth, postal, &client)
        .await
    {
        Ok(started) => see_other(
            "/enroll/account",
            CookieJar::new()
                .add(ENROLL_COOKIE.carrying(&state.settings, started.enrollment_token.expose())),
        ),
        Err(ServiceError::InvalidCode { .. }) => {
            render_code(
                &state,
                &ctx,
                StatusCode::BAD_REQUEST,
                form,
                Some("enroll-wrong"),
            )
            .await
        }
        Err(ServiceError::InvalidRequest(_)) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            render_code(&state, &ctx, status, form, Some("forgot-bad-birth-date")).await
        }
        Err(ServiceError::RateLimited { .. }) => {
            let tr = ctx.tr(None);
            let page = MessagePage::new(
                tr,
                ctx.chrome(&tr),
                "too-many-title",
                "too-many-body",
                "/enroll",
                "back-to-signin",
            );
            ctx.render(StatusCode::TOO_MANY_REQUESTS, &page, vec![])
        }
        Err(error) => {
            tracing::error!(%error, "enrollment page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

#[derive(Template)]
#[template(path = "enroll_account.html")]
struct AccountPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    given_name: String,
    username: String,
    suggestions: Vec<String>,
    problem: Option<String>,
    rules: Vec<RuleLine>,
    any_failed: bool,
}

async fn render_account(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    status: StatusCode,
    username: &str,
    problem: Option<&str>,
    failed: &[Rule],
) -> Response {
    let now = state.services.clock.now();
    let patient = match presented(&state.settings, headers) {
        Some(token) => state
            .services
            .store
            .token(&token.hash(), TokenPurpose::Enrollment, now)
            .await
            .ok()
            .flatten()
            .filter(|t| t.state == TokenState::Usable)
            .and_then(|t| t.patient),
        None => None,
    };
    let tr = ctx.tr(None);
    let Some(patient) = patient else {
        let page = MessagePage::new(
            tr,
            ctx.chrome(&tr),
            "enroll-title",
            "enroll-timed-out",
            "/enroll",
            "have-code-submit",
        );
        return ctx.render(StatusCode::GONE, &page, vec![]);
    };
    let (policy, record) = match (
        state.services.store.load_policy().await,
        state.services.patient_record(patient).await,
    ) {
        (Ok(policy), Ok(record)) => (policy, record),
        _ => return internal_error(&state.settings, headers),
    };
    let suggestions = match presented(&state.settings, headers) {
        Some(token) => state
            .services
            .username_suggestions(&token)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let page = AccountPage {
        chrome: ctx.chrome(&tr),
        csrf: ctx.csrf.clone(),
        suggestions,
        given_name: record.given_name,
        username: username.chars().take(64).collect(),
        problem: problem.map(|key| tr.t(key)),
        rules: rule_lines(&tr, &policy.password, failed),
        any_failed: !failed.is_empty(),
        tr,
    };
    ctx.render(status, &page, vec![])
}

async fn account_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
) -> Response {
    render_account(&state, &ctx, &headers, StatusCode::OK, "", None, &[]).await
}

/// (No `Debug`: it holds passwords.)
#[derive(Deserialize)]
struct AccountForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

async fn account_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<AccountForm>,
) -> Response {
    let Some(token) = presented(&state.settings, &headers) else {
        return see_other("/enroll", CookieJar::new());
    };
    let outcome = state
        .services
        .complete_enrollment(
            &token,
            &form.username,
            &Password::new(&form.new_password),
            &Password::new(&form.new_password_confirm),
            (None, None),
            &client,
        )
        .await;
    let again = |status, key, failed: Vec<Rule>| {
        let (state, ctx, headers, username) = (&state, &ctx, &headers, form.username.clone());
        async move { render_account(state, ctx, headers, status, &username, Some(key), &failed).await }
    };
    match outcome {
        Ok(_) => see_other(
            "/signin?enrolled=1",
            CookieJar::new().add(ENROLL_COOKIE.removal(&state.settings)),
        ),
        Err(ServiceError::Conflict(_)) => {
            again(StatusCode::CONFLICT, "enroll-username-taken", vec![]).await
        }
        Err(ServiceError::InvalidRequest(_)) => {
            again(
                StatusCode::UNPROCESSABLE_ENTITY,
                "enroll-username-bad",
                vec![],
            )
            .await
        }
        Err(ServiceError::PasswordMismatch) => {
            again(StatusCode::BAD_REQUEST, "pw-mismatch", vec![]).await
        }
        Err(ServiceError::PasswordPolicy(rules)) => {
            again(StatusCode::UNPROCESSABLE_ENTITY, "pw-fix", rules).await
        }
        Err(ServiceError::TokenExpired) => {
            render_account(&state, &ctx, &headers, StatusCode::GONE, "", None, &[]).await
        }
        Err(error) => {
            tracing::error!(%error, "enrollment page failed");
            internal_error(&state.settings, &headers)
        }
    }
}
