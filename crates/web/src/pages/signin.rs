//! `/signin`, `/home` and `/signout`: the patient's way in and out.

use super::{internal_error, see_other, Chrome, PageContext};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::i18n::Tr;
use crate::session_cookie::{patient_session, patient_session_removal, presented_patient_token};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use carekey_domain::secret::Password;
use carekey_service::ServiceError;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { see_other("/signin", CookieJar::new()) }),
        )
        .route("/signin", get(signin_page).post(signin_submit))
        .route("/home", get(home_page))
        .route("/signout", post(signout_submit))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    login: String,
    failed: bool,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct SigninQuery {
    signed_out: Option<String>,
    ended: Option<String>,
    reset: Option<String>,
    enrolled: Option<String>,
}

async fn signin_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Query(query): Query<SigninQuery>,
) -> Response {
    if let Some(token) = presented_patient_token(&state.settings, &headers) {
        if state.services.patient_session(&token).await.is_ok() {
            return see_other("/home", CookieJar::new());
        }
    }
    let tr = ctx.tr(None);
    let notice = if query.signed_out.is_some() {
        Some(tr.t("signin-signed-out"))
    } else if query.ended.is_some() {
        Some(tr.t("signin-session-ended"))
    } else if query.reset.is_some() {
        Some(tr.t("signin-reset-done"))
    } else if query.enrolled.is_some() {
        Some(tr.t("signin-enrolled"))
    } else {
        None
    };
    let page = SigninPage {
        chrome: ctx.chrome(&tr),
        tr,
        csrf: ctx.csrf.clone(),
        login: String::new(),
        failed: false,
        notice,
    };
    ctx.render(StatusCode::OK, &page, vec![])
}

#[derive(Deserialize)]
struct SigninForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

async fn signin_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<SigninForm>,
) -> Response {
    let password = Password::new(&form.password);
    match state
        .services
        .sign_in(&form.login, &password, &client)
        .await
    {
        Ok(signed_in) => see_other(
            "/home",
            CookieJar::new().add(patient_session(&state.settings, &signed_in.session_token)),
        ),
        Err(ServiceError::InvalidCredentials | ServiceError::InvalidRequest(_)) => {
            let tr = ctx.tr(None);
            let page = SigninPage {
                chrome: ctx.chrome(&tr),
                tr,
                csrf: ctx.csrf.clone(),
                login: form.login.chars().take(254).collect(),
                failed: true,
                notice: None,
            };
            ctx.render(StatusCode::UNAUTHORIZED, &page, vec![])
        }
        Err(error) => {
            tracing::error!(%error, "sign-in page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    tr: Tr,
    chrome: Chrome,
    given_name: String,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct HomeQuery {
    changed: Option<String>,
}

async fn home_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Query(query): Query<HomeQuery>,
) -> Response {
    let Some(token) = presented_patient_token(&state.settings, &headers) else {
        return see_other("/signin", CookieJar::new());
    };
    match state.services.patient_session(&token).await {
        Ok(session) if session.password_expired => {
            see_other("/account/password?expired=1", CookieJar::new())
        }
        Ok(session) => {
            let tr = ctx.tr(session.preferred_language);
            let page = HomePage {
                chrome: ctx.signed_in_chrome(&tr, "/signout"),
                tr,
                given_name: session.given_name,
                notice: query.changed.map(|_| tr.t("pw-changed")),
            };
            ctx.render(StatusCode::OK, &page, vec![])
        }
        Err(ServiceError::Unauthenticated) => see_other(
            "/signin?ended=1",
            CookieJar::new().add(patient_session_removal(&state.settings)),
        ),
        Err(error) => {
            tracing::error!(%error, "home page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

/// A form that carries nothing but its CSRF token.
#[derive(Deserialize)]
struct NoFields {}

async fn signout_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Response {
    if let Some(token) = presented_patient_token(&state.settings, &headers) {
        // Signing out of a session that already ended is still a sign-out.
        if let Err(error @ ServiceError::Internal(_)) =
            state.services.sign_out(&token, &client).await
        {
            tracing::error!(%error, "sign-out failed");
            return internal_error(&state.settings, &headers);
        }
    }
    see_other(
        "/signin?signed_out=1",
        CookieJar::new().add(patient_session_removal(&state.settings)),
    )
}
