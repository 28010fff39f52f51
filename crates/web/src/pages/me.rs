//! `/account`: a signed-in patient's contacts (changed with the password
//! again and a code sent to the new one), recent sign-ins, and signing out of
//! every other device.

use super::{internal_error, see_other, Chrome, PageContext};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::i18n::Tr;
use crate::session_cookie::presented_patient_token;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use carekey_domain::secret::Password;
use carekey_domain::staff::ContactView;
use carekey_service::contacts::ContactKind;
use carekey_service::sessions::PatientSession;
use carekey_service::ServiceError;
use fluent_templates::fluent_bundle::FluentValue;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/contacts/{kind}", post(change_contact))
        .route(
            "/account/verify/{flow_id}",
            get(verify_page).post(verify_submit),
        )
        .route("/account/signout-others", post(signout_others))
}

/// The signed-in patient, or the response that sends them to sign in.
async fn patient(state: &AppState, headers: &HeaderMap) -> Result<PatientSession, Response> {
    let token = presented_patient_token(&state.settings, headers);
    match token {
        Some(token) => state
            .services
            .patient_session(&token)
            .await
            .map_err(|_| see_other("/signin?ended=1", CookieJar::new())),
        None => Err(see_other("/signin", CookieJar::new())),
    }
}

fn redirect_to(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// One contact-change form.
struct ContactForm {
    kind: &'static str,
    input_type: &'static str,
    label: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    email: Option<ContactView>,
    phone: Option<ContactView>,
    forms: Vec<ContactForm>,
    sign_ins: Vec<(String, Option<String>, Option<String>)>,
    notice: Option<String>,
    problem: Option<String>,
}

#[derive(Deserialize)]
struct AccountQuery {
    done: Option<String>,
}

async fn account_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Query(query): Query<AccountQuery>,
) -> Response {
    let notice = query.done.as_deref().map(|done| match done {
        "contact" => "account-contact-changed",
        _ => "account-signed-out-others",
    });
    show(&state, &ctx, &headers, StatusCode::OK, notice, None).await
}

async fn show(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<&str>,
    problem: Option<&str>,
) -> Response {
    let session = match patient(state, headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let Some(token) = presented_patient_token(&state.settings, headers) else {
        return see_other("/signin", CookieJar::new());
    };
    let record = match state
        .services
        .store
        .password_context(session.account_id, 0)
        .await
    {
        Ok(context) => state.services.patient_record(context.patient_id).await,
        Err(error) => Err(error.into()),
    };
    let (Ok(record), Ok(sign_ins)) = (record, state.services.recent_sign_ins(&token).await) else {
        return internal_error(&state.settings, headers);
    };
    let tr = ctx.tr(session.preferred_language);
    let page = AccountPage {
        chrome: ctx.signed_in_chrome(&tr, "/signout"),
        csrf: ctx.csrf.clone(),
        email: record.portal.email,
        phone: record.portal.phone,
        forms: vec![
            ContactForm {
                kind: "email",
                input_type: "email",
                label: tr.t("account-new-email"),
            },
            ContactForm {
                kind: "phone",
                input_type: "tel",
                label: tr.t("account-new-phone"),
            },
        ],
        sign_ins: sign_ins
            .into_iter()
            .map(|(when, ip, agent)| (when.format("%Y-%m-%d %H:%M UTC").to_string(), ip, agent))
            .collect(),
        notice: notice.map(|key| tr.t(key)),
        problem: problem.map(|key| tr.t(key)),
        tr,
    };
    ctx.render(status, &page, vec![])
}

/// (No `Debug`: it holds a password.)
#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    value: String,
    #[serde(default)]
    password: String,
}

async fn change_contact(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    Path(kind): Path<String>,
    CsrfForm(form): CsrfForm<ChangeForm>,
) -> Response {
    let Some(token) = presented_patient_token(&state.settings, &headers) else {
        return see_other("/signin", CookieJar::new());
    };
    let kind = if kind == "phone" {
        ContactKind::Phone
    } else {
        ContactKind::Email
    };
    match state
        .services
        .request_contact_change(
            &token,
            kind,
            &form.value,
            &Password::new(&form.password),
            &client,
        )
        .await
    {
        Ok(flow) => redirect_to(&format!("/account/verify/{flow}")),
        Err(ServiceError::InvalidCredentials) => {
            show(
                &state,
                &ctx,
                &headers,
                StatusCode::UNAUTHORIZED,
                None,
                Some("account-wrong-password"),
            )
            .await
        }
        Err(ServiceError::InvalidRequest(_)) => {
            show(
                &state,
                &ctx,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some("account-bad-value"),
            )
            .await
        }
        Err(ServiceError::Unauthenticated) => see_other("/signin?ended=1", CookieJar::new()),
        Err(error) => {
            tracing::error!(%error, "contact change page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

#[derive(Template)]
#[template(path = "account_verify.html")]
struct VerifyPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    flow_id: String,
    problem: Option<String>,
}

async fn render_verify(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    flow_id: String,
    status: StatusCode,
    problem: Option<String>,
) -> Response {
    let session = match patient(state, headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let tr = ctx.tr(session.preferred_language);
    let page = VerifyPage {
        chrome: ctx.signed_in_chrome(&tr, "/signout"),
        csrf: ctx.csrf.clone(),
        flow_id,
        problem,
        tr,
    };
    ctx.render(status, &page, vec![])
}

async fn verify_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(flow_id): Path<String>,
) -> Response {
    render_verify(&state, &ctx, &headers, flow_id, StatusCode::OK, None).await
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn verify_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    Path(flow_id): Path<String>,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let Some(token) = presented_patient_token(&state.settings, &headers) else {
        return see_other("/signin", CookieJar::new());
    };
    let tr = ctx.tr(None);
    match state
        .services
        .verify_contact_change(&token, &flow_id, &form.code, &client)
        .await
    {
        Ok(()) => see_other("/account?done=contact", CookieJar::new()),
        Err(ServiceError::InvalidCode { attempts_left }) if attempts_left.unwrap_or(0) > 0 => {
            let left = attempts_left.unwrap_or(0);
            let problem = tr.with("recover-wrong-code", &[("left", FluentValue::from(left))]);
            render_verify(
                &state,
                &ctx,
                &headers,
                flow_id,
                StatusCode::BAD_REQUEST,
                Some(problem),
            )
            .await
        }
        Err(ServiceError::InvalidCode { .. } | ServiceError::FlowExpired) => {
            let problem = tr.t("code-expired-body");
            render_verify(
                &state,
                &ctx,
                &headers,
                flow_id,
                StatusCode::GONE,
                Some(problem),
            )
            .await
        }
        Err(ServiceError::Unauthenticated) => see_other("/signin?ended=1", CookieJar::new()),
        Err(error) => {
            tracing::error!(%error, "contact verification page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn signout_others(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let Some(token) = presented_patient_token(&state.settings, &headers) else {
        return see_other("/signin", CookieJar::new());
    };
    match state.services.sign_out_elsewhere(&token, &client).await {
        Ok(_) => see_other("/account?done=others", CookieJar::new()),
        Err(_) => see_other("/signin?ended=1", CookieJar::new()),
    }
}
