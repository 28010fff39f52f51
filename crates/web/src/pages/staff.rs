//! The staff console pages under `/staff`: sign-in (with the TOTP code, or
//! enrolment by QR code), patient search, the patient record with its portal
//! panel and action forms (each with the identity check), the one-time code
//! shown large to read out or print, and the audit trail with its chain check.

use super::{internal_error, see_other, Chrome, PageContext};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::i18n::Tr;
use crate::session_cookie::{presented_staff_token, staff_cookie_name, staff_session};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar};
use carekey_domain::ids::PatientId;
use carekey_domain::message::Channel;
use carekey_domain::secret::Password;
use carekey_domain::staff::{
    Area, PatientRecord, PatientSummary, StoredAuditEvent, Verification, VerificationMethod,
};
use carekey_service::staff::StaffSession;
use carekey_service::ServiceError;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/staff/signin", get(signin_page).post(signin_submit))
        .route("/staff/signout", post(signout))
        .route("/staff/totp", get(totp_page).post(totp_submit))
        .route("/staff", get(search_page))
        .route("/staff/patients/{id}", get(patient_page))
        .route("/staff/patients/{id}/reset-code", post(reset_code))
        .route("/staff/patients/{id}/reset-link", post(reset_link))
        .route("/staff/patients/{id}/unlock", post(unlock))
        .route("/staff/patients/{id}/disable", post(disable))
        .route("/staff/patients/{id}/contacts", post(contacts))
        .route("/staff/patients/{id}/invite", post(invite))
        .route("/staff/audit", get(audit_page))
        .route("/static/staff.js", get(script))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/staff.js"),
    )
}

/// Where a staff page request stands: signed in and allowed, or sent elsewhere.
async fn staff_or_redirect(
    state: &AppState,
    headers: &HeaderMap,
    area: Area,
) -> Result<StaffSession, Response> {
    let Some(token) = presented_staff_token(&state.settings, headers) else {
        return Err(see_other("/staff/signin", CookieJar::new()));
    };
    match state.services.staff_session(&token, area).await {
        Ok(session) => Ok(session),
        Err(ServiceError::TotpEnrollmentRequired) => {
            Err(see_other("/staff/totp", CookieJar::new()))
        }
        Err(ServiceError::Forbidden) => Err(super::role_forbidden(&state.settings, headers)),
        Err(_) => Err(see_other("/staff/signin", CookieJar::new())),
    }
}

fn redirect_to(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

// ---------------------------------------------------------------------------
// Sign-in and enrolment

#[derive(Template)]
#[template(path = "staff/signin.html")]
struct SigninPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    username: String,
    failed: bool,
}

async fn signin_page(ctx: PageContext) -> Response {
    let tr = ctx.tr(None);
    let page = SigninPage {
        chrome: ctx.chrome(&tr),
        csrf: ctx.csrf.clone(),
        username: String::new(),
        failed: false,
        tr,
    };
    ctx.render(StatusCode::OK, &page, vec![])
}

/// (No `Debug`: it holds a password.)
#[derive(Deserialize)]
struct SigninForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: String,
}

async fn signin_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<SigninForm>,
) -> Response {
    let code = Some(form.totp.trim()).filter(|c| !c.is_empty());
    match state
        .services
        .staff_sign_in(
            &form.username,
            &Password::new(&form.password),
            code,
            &client,
        )
        .await
    {
        Ok(signed_in) => see_other(
            "/staff",
            CookieJar::new().add(staff_session(&state.settings, &signed_in.session_token)),
        ),
        Err(ServiceError::InvalidCredentials) => {
            let tr = ctx.tr(None);
            let page = SigninPage {
                chrome: ctx.chrome(&tr),
                csrf: ctx.csrf.clone(),
                username: form.username.chars().take(64).collect(),
                failed: true,
                tr,
            };
            ctx.render(StatusCode::UNAUTHORIZED, &page, vec![])
        }
        Err(error) => {
            tracing::error!(%error, "staff sign-in page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    if let Some(token) = presented_staff_token(&state.settings, &headers) {
        let _ = state.services.staff_sign_out(&token).await;
    }
    let mut removal = Cookie::new(staff_cookie_name(&state.settings), "");
    removal.set_path("/");
    removal.make_removal();
    see_other("/staff/signin", CookieJar::new().add(removal))
}

#[derive(Template)]
#[template(path = "staff/totp.html")]
struct TotpPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    secret: String,
    qr_svg: String,
    problem: Option<String>,
}

async fn totp_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
) -> Response {
    show_totp(&state, &ctx, &headers, None).await
}

async fn show_totp(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    problem: Option<&str>,
) -> Response {
    let Some(token) = presented_staff_token(&state.settings, headers) else {
        return see_other("/staff/signin", CookieJar::new());
    };
    let (secret, uri) = match state.services.start_totp_enrolment(&token).await {
        Ok(pair) => pair,
        Err(ServiceError::Conflict(_)) => return see_other("/staff", CookieJar::new()),
        Err(_) => return see_other("/staff/signin", CookieJar::new()),
    };
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build()
        })
        .unwrap_or_default();
    let tr = ctx.tr(None);
    let page = TotpPage {
        chrome: ctx.signed_in_chrome(&tr, "/staff/signout"),
        csrf: ctx.csrf.clone(),
        secret,
        qr_svg,
        problem: problem.map(|key| tr.t(key)),
        tr,
    };
    ctx.render(StatusCode::OK, &page, vec![])
}

#[derive(Deserialize)]
struct TotpForm {
    #[serde(default)]
    totp: String,
}

async fn totp_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<TotpForm>,
) -> Response {
    let Some(token) = presented_staff_token(&state.settings, &headers) else {
        return see_other("/staff/signin", CookieJar::new());
    };
    match state.services.confirm_totp(&token, &form.totp).await {
        Ok(()) => see_other("/staff", CookieJar::new()),
        Err(_) => show_totp(&state, &ctx, &headers, Some("staff-totp-wrong")).await,
    }
}

// ---------------------------------------------------------------------------
// Search and the record

#[derive(Template)]
#[template(path = "staff/search.html")]
struct SearchPage {
    tr: Tr,
    chrome: Chrome,
    staff_name: String,
    /// Whether the audit trail is open to this role (else no link to it).
    can_audit: bool,
    query: String,
    patients: Vec<PatientSummary>,
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    query: String,
}

async fn search_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    let session = match staff_or_redirect(&state, &headers, Area::Patients).await {
        Ok(session) => session,
        // An auditor's console is the audit trail.
        Err(response) if response.status() == StatusCode::FORBIDDEN => {
            return redirect_to("/staff/audit")
        }
        Err(response) => return response,
    };
    let patients = match state.services.search_patients(&query.query).await {
        Ok(found) => found,
        Err(_) => return internal_error(&state.settings, &headers),
    };
    // One match is opened at once: the common case is two clicks from the search.
    if let [only] = patients.as_slice() {
        return redirect_to(&format!("/staff/patients/{}", only.id));
    }
    let tr = ctx.tr(None);
    let page = SearchPage {
        chrome: ctx.signed_in_chrome(&tr, "/staff/signout"),
        can_audit: session.staff.role.may(Area::Audit),
        staff_name: session.staff.username,
        query: query.query,
        patients,
        tr,
    };
    ctx.render(StatusCode::OK, &page, vec![])
}

#[derive(Template)]
#[template(path = "staff/patient.html")]
struct PatientPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    record: PatientRecord,
    notice: Option<String>,
    problem: Option<String>,
}

#[derive(Deserialize)]
struct RecordQuery {
    done: Option<String>,
}

async fn patient_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<RecordQuery>,
) -> Response {
    let tr = ctx.tr(None);
    let notice = query.done.as_deref().map(|done| {
        tr.t(&format!(
            "staff-done-{}",
            done.replace(|c: char| !c.is_ascii_alphabetic(), "")
        ))
    });
    show_record(&state, &ctx, &headers, &id, notice, None).await
}

async fn show_record(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    id: &str,
    notice: Option<String>,
    problem: Option<String>,
) -> Response {
    if let Err(response) = staff_or_redirect(state, headers, Area::Patients).await {
        return response;
    }
    let Ok(patient) = id.parse().map(PatientId) else {
        return super::not_found(State(state.clone()), headers.clone()).await;
    };
    let record = match state.services.patient_record(patient).await {
        Ok(record) => record,
        Err(ServiceError::NotFound) => {
            return super::not_found(State(state.clone()), headers.clone()).await
        }
        Err(_) => return internal_error(&state.settings, headers),
    };
    let tr = ctx.tr(None);
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = PatientPage {
        chrome: ctx.signed_in_chrome(&tr, "/staff/signout"),
        csrf: ctx.csrf.clone(),
        record,
        notice,
        problem,
        tr,
    };
    ctx.render(status, &page, vec![])
}

/// An action form: the identity check, and what the action needs.
#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
}

impl ActionForm {
    fn verification(&self) -> Option<Verification> {
        let method = VerificationMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == self.method)?;
        Some(Verification {
            method,
            note: Some(self.note.trim().to_owned()).filter(|n| !n.is_empty()),
        })
    }
}

#[derive(Template)]
#[template(path = "staff/code.html")]
struct CodePage {
    tr: Tr,
    chrome: Chrome,
    patient_id: String,
    code: String,
    expires: String,
}

/// The printable invitation letter, in the patient's language.
#[derive(Template)]
#[template(path = "staff/letter.html")]
struct LetterPage {
    tr: Tr,
    chrome: Chrome,
    staff_back: String,
    staff_print: String,
    patient_id: String,
    given_name: String,
    enroll_url: String,
    code: String,
    expires: String,
}

/// What every action form needs first: the gate, the patient, the attestation.
async fn act(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    id: &str,
    form: &ActionForm,
) -> Result<(StaffSession, PatientId, Verification), Response> {
    let session = staff_or_redirect(state, headers, Area::Patients).await?;
    let Ok(patient) = id.parse().map(PatientId) else {
        return Err(super::not_found(State(state.clone()), headers.clone()).await);
    };
    let tr = ctx.tr(None);
    let Some(verification) = form.verification().filter(|v| v.problem().is_none()) else {
        return Err(show_record(
            state,
            ctx,
            headers,
            id,
            None,
            Some(tr.t("staff-need-verification")),
        )
        .await);
    };
    Ok((session, patient, verification))
}

async fn reset_code(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let (session, patient, verification) = match act(&state, &ctx, &headers, &id, &form).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    match state
        .services
        .staff_reset_code(&session, patient, &verification)
        .await
    {
        Ok((code, expires_at)) => {
            let tr = ctx.tr(None);
            let page = CodePage {
                chrome: ctx.signed_in_chrome(&tr, "/staff/signout"),
                patient_id: id,
                code,
                expires: expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                tr,
            };
            ctx.render(StatusCode::CREATED, &page, vec![])
        }
        Err(error) => action_failed(&state, &ctx, &headers, &id, error).await,
    }
}

async fn reset_link(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let (session, patient, verification) = match act(&state, &ctx, &headers, &id, &form).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let channel = if form.channel == "sms" {
        Channel::Sms
    } else {
        Channel::Email
    };
    let outcome = state
        .services
        .staff_reset_link(&session, patient, channel, &verification, &client)
        .await;
    back_to_record(&state, &ctx, &headers, &id, outcome, "link").await
}

async fn unlock(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let (session, patient, verification) = match act(&state, &ctx, &headers, &id, &form).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let outcome = state
        .services
        .staff_unlock(&session, patient, &verification)
        .await;
    back_to_record(&state, &ctx, &headers, &id, outcome, "unlock").await
}

#[derive(Deserialize)]
struct DisableForm {
    #[serde(default)]
    reason: String,
}

async fn disable(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DisableForm>,
) -> Response {
    let session = match staff_or_redirect(&state, &headers, Area::Patients).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let Ok(patient) = id.parse().map(PatientId) else {
        return super::not_found(State(state.clone()), headers.clone()).await;
    };
    let outcome = state
        .services
        .staff_disable(&session, patient, &form.reason)
        .await;
    back_to_record(&state, &ctx, &headers, &id, outcome, "disabled").await
}

async fn contacts(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let (session, patient, verification) = match act(&state, &ctx, &headers, &id, &form).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let given = |value: &str| Some(value.trim().to_owned()).filter(|v| !v.is_empty());
    let (email, phone) = (given(&form.email), given(&form.phone));
    let outcome = state
        .services
        .staff_update_contacts(
            &session,
            patient,
            email.as_deref(),
            phone.as_deref(),
            &verification,
            &client,
        )
        .await;
    back_to_record(&state, &ctx, &headers, &id, outcome, "contacts").await
}

async fn invite(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Response {
    let (session, patient, verification) = match act(&state, &ctx, &headers, &id, &form).await {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let channel = match form.channel.as_str() {
        "email" => Some(Channel::Email),
        "sms" => Some(Channel::Sms),
        _ => None,
    };
    match state
        .services
        .staff_invite(&session, patient, channel, &verification)
        .await
    {
        Ok((Some(code), expires_at, _)) => {
            // The letter is in the patient's language; the staff links in the staff member's.
            let Ok(record) = state.services.patient_record(patient).await else {
                return internal_error(&state.settings, &headers);
            };
            let staff_tr = ctx.tr(None);
            let tr = record
                .preferred_language
                .as_deref()
                .and_then(carekey_domain::model::Language::from_tag)
                .map_or(staff_tr, Tr::new);
            let page = LetterPage {
                chrome: ctx.signed_in_chrome(&tr, "/staff/signout"),
                staff_back: staff_tr.t("staff-back-to-record"),
                staff_print: staff_tr.t("staff-print"),
                patient_id: id,
                given_name: record.given_name,
                enroll_url: state
                    .settings
                    .public_url
                    .join("enroll")
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                code,
                expires: expires_at.format("%Y-%m-%d").to_string(),
                tr,
            };
            ctx.render(StatusCode::CREATED, &page, vec![])
        }
        Ok((None, _, _)) => redirect_to(&format!("/staff/patients/{id}?done=invited")),
        Err(error) => action_failed(&state, &ctx, &headers, &id, error).await,
    }
}

/// After an action: back to the record saying what was `done`, or the
/// record with the reason it could not be.
async fn back_to_record<T>(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    id: &str,
    outcome: Result<T, ServiceError>,
    done: &str,
) -> Response {
    match outcome {
        Ok(_) => redirect_to(&format!("/staff/patients/{id}?done={done}")),
        Err(error) => action_failed(state, ctx, headers, id, error).await,
    }
}

async fn action_failed(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    id: &str,
    error: ServiceError,
) -> Response {
    match error {
        ServiceError::InvalidRequest(fields) => {
            let why = fields.values().cloned().collect::<Vec<_>>().join("; ");
            show_record(state, ctx, headers, id, None, Some(why)).await
        }
        error => {
            tracing::error!(%error, "staff action failed");
            internal_error(&state.settings, headers)
        }
    }
}

// ---------------------------------------------------------------------------
// Audit

#[derive(Template)]
#[template(path = "staff/audit.html")]
struct AuditPage {
    tr: Tr,
    chrome: Chrome,
    chain_ok: bool,
    events: String,
    first_bad: String,
    recent: Vec<StoredAuditEvent>,
}

async fn audit_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = staff_or_redirect(&state, &headers, Area::Audit).await {
        return response;
    }
    let (check, recent) = match (
        state.services.verify_audit_chain().await,
        state.services.audit_events(None, None).await,
    ) {
        (Ok(check), Ok(recent)) => (check, recent),
        _ => return internal_error(&state.settings, &headers),
    };
    let tr = ctx.tr(None);
    let page = AuditPage {
        chrome: ctx.signed_in_chrome(&tr, "/staff/signout"),
        chain_ok: check.ok,
        events: check.events.to_string(),
        first_bad: check
            .first_bad_event
            .map(|s| s.to_string())
            .unwrap_or_default(),
        recent: recent.into_iter().take(100).collect(),
        tr,
    };
    ctx.render(StatusCode::OK, &page, vec![])
}
