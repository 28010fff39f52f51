//! The staff console over JSON (API.md, "Staff"): sign-in with TOTP, patient
//! records and the assisted actions, messages, the audit trail, and
//! administration. Every route passes one gate: a live staff session, a
//! second factor when the policy wants one, and a role that reaches the area.

use crate::client::Client;
use crate::error::{ApiError, ApiJson, Problem};
use crate::session_cookie::{presented_staff_token, staff_session};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use carekey_domain::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use carekey_domain::ids::{MessageId, PatientId, StaffId};
use carekey_domain::message::Channel;
use carekey_domain::model::{NewPatient, StaffRole};
use carekey_domain::policy::Policy;
use carekey_domain::secret::Password;
use carekey_domain::staff::{Area, ContactView, PatientRecord, StaffMember, Verification};
use carekey_service::staff::StaffSession;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in))
        .routes(routes!(start_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(search_patients, create_patient))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import_patients))
                .layer(axum::extract::DefaultBodyLimit::max(IMPORT_LIMIT_BYTES)),
        )
        .routes(routes!(patient_record))
        .routes(routes!(send_reset_link))
        .routes(routes!(generate_reset_code))
        .routes(routes!(unlock))
        .routes(routes!(invite))
        .routes(routes!(disable))
        .routes(routes!(update_contacts))
        .routes(routes!(message_status))
        .routes(routes!(audit_events))
        .routes(routes!(verify_audit))
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(list_staff, create_staff))
        .routes(routes!(disable_staff))
}

/// The gate: a live staff session whose role reaches `area`.
async fn gate(state: &AppState, headers: &HeaderMap, area: Area) -> Result<StaffSession, ApiError> {
    let token = presented_staff_token(&state.settings, headers).ok_or(ApiError::Unauthenticated)?;
    Ok(state.services.staff_session(&token, area).await?)
}

fn patient_id(id: &str) -> Result<PatientId, ApiError> {
    id.parse().map(PatientId).map_err(|_| ApiError::NotFound)
}

// ---------------------------------------------------------------------------
// Sign-in and second factor

/// (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
pub struct StaffSignInBody {
    pub username: String,
    pub password: String,
    pub totp: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StaffRef {
    pub id: String,
    pub username: String,
    pub role: String,
}

impl From<&StaffMember> for StaffRef {
    fn from(member: &StaffMember) -> Self {
        Self {
            id: member.id.to_string(),
            username: member.username.clone(),
            role: member.role.as_str().to_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StaffSignedInBody {
    pub session_token: String,
    pub expires_at: DateTime<Utc>,
    pub staff: StaffRef,
    pub totp_enrolled: bool,
}

/// Staff sign-in: password, and the TOTP code once enrolled.
#[utoipa::path(post, path = "/api/v1/staff/sessions", tag = "staff", request_body = StaffSignInBody,
    responses((status = 200, body = StaffSignedInBody), (status = 401, description = "`invalid_credentials`", body = Problem)))]
async fn sign_in(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<StaffSignInBody>,
) -> Result<Response, ApiError> {
    let signed_in = state
        .services
        .staff_sign_in(
            &body.username,
            &Password::new(&body.password),
            body.totp.as_deref(),
            &client,
        )
        .await?;
    let jar = CookieJar::new().add(staff_session(&state.settings, &signed_in.session_token));
    let answer = StaffSignedInBody {
        session_token: signed_in.session_token.expose().to_owned(),
        expires_at: signed_in.expires_at,
        staff: StaffRef::from(&signed_in.staff),
        totp_enrolled: signed_in.staff.totp_enrolled,
    };
    Ok((jar, Json(answer)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct TotpSecret {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
}

/// Start enrolling an authenticator app.
#[utoipa::path(post, path = "/api/v1/staff/me/totp", tag = "staff",
    responses((status = 200, body = TotpSecret), (status = 401, body = Problem), (status = 409, description = "already enrolled", body = Problem)))]
async fn start_totp(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TotpSecret>, ApiError> {
    let token =
        presented_staff_token(&state.settings, &headers).ok_or(ApiError::Unauthenticated)?;
    let (secret, otpauth_uri) = state.services.start_totp_enrolment(&token).await?;
    Ok(Json(TotpSecret {
        secret,
        otpauth_uri,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct TotpBody {
    pub totp: String,
}

/// Confirm the authenticator app with its first code.
#[utoipa::path(post, path = "/api/v1/staff/me/totp/confirm", tag = "staff", request_body = TotpBody,
    responses((status = 204), (status = 400, description = "`invalid_code`", body = Problem), (status = 401, body = Problem)))]
async fn confirm_totp(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TotpBody>,
) -> Result<StatusCode, ApiError> {
    let token =
        presented_staff_token(&state.settings, &headers).ok_or(ApiError::Unauthenticated)?;
    state.services.confirm_totp(&token, &body.totp).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// Patients

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// A name (or its start), an MRN, or a date of birth `YYYY-MM-DD`.
    pub query: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PatientLine {
    pub id: String,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: String,
    pub portal_status: String,
}

#[derive(Serialize, ToSchema)]
pub struct PatientList {
    pub patients: Vec<PatientLine>,
}

/// Find patients.
#[utoipa::path(get, path = "/api/v1/staff/patients", tag = "staff", params(SearchQuery),
    responses((status = 200, body = PatientList), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn search_patients(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Result<Json<PatientList>, ApiError> {
    gate(&state, &headers, Area::Patients).await?;
    let found = state
        .services
        .search_patients(query.query.as_deref().unwrap_or_default())
        .await?;
    Ok(Json(PatientList {
        patients: found
            .into_iter()
            .map(|p| PatientLine {
                id: p.id.to_string(),
                mrn: p.mrn,
                given_name: p.given_name,
                family_name: p.family_name,
                date_of_birth: p.date_of_birth,
                portal_status: p.portal_status.as_str().to_owned(),
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct NewPatientBody {
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: String,
    pub postal_code: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub preferred_language: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    pub id: String,
}

/// Create a patient record (contacts entered by staff count as verified).
#[utoipa::path(post, path = "/api/v1/staff/patients", tag = "staff", request_body = NewPatientBody,
    responses((status = 201, body = Created), (status = 409, description = "`mrn_taken`", body = Problem), (status = 422, body = Problem)))]
async fn create_patient(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewPatientBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    let mut fields = std::collections::BTreeMap::new();
    let mut note = |field: &str, why: String| {
        fields.insert(field.to_owned(), why);
    };
    let date_of_birth = DateOfBirth::parse(&body.date_of_birth)
        .map_err(|e| note("date_of_birth", e.to_string()))
        .ok();
    let email = match body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(raw) => Email::parse(raw)
            .map_err(|e| note("email", e.to_string()))
            .ok(),
        None => None,
    };
    let region = state.services.settings.default_region.clone();
    let phone = match body
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => PhoneE164::parse(raw, &region)
            .map_err(|e| note("phone", e.to_string()))
            .ok(),
        None => None,
    };
    for (field, value) in [
        ("mrn", &body.mrn),
        ("given_name", &body.given_name),
        ("family_name", &body.family_name),
    ] {
        if value.trim().is_empty() || value.chars().count() > 200 {
            note(field, "must be 1 to 200 characters".into());
        }
    }
    let Some(date_of_birth) = date_of_birth.filter(|_| fields.is_empty()) else {
        return Err(ApiError::InvalidRequest(fields));
    };
    let patient = NewPatient {
        mrn: body.mrn.trim().to_owned(),
        given_name: body.given_name.trim().to_owned(),
        family_name: body.family_name.trim().to_owned(),
        date_of_birth,
        postal_code: body
            .postal_code
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty()),
        preferred_language: body.preferred_language,
        email,
        phone,
    };
    let id = state
        .services
        .create_patient(
            &patient,
            carekey_domain::audit::Actor::Staff(session.staff.id),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id: id.to_string() })))
}

/// The largest FHIR document one import takes (about 20,000 patients).
const IMPORT_LIMIT_BYTES: usize = 32 * 1024 * 1024;

#[derive(Serialize, ToSchema)]
pub struct SkippedEntry {
    pub index: usize,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ImportBody {
    pub created: u32,
    pub updated: u32,
    pub skipped: Vec<SkippedEntry>,
}

/// Import FHIR R4 patients (`application/fhir+json`): a `Patient` or a `Bundle`.
#[utoipa::path(post, path = "/api/v1/staff/patients/import", tag = "staff", request_body(content = Object, content_type = "application/fhir+json"),
    responses((status = 200, body = ImportBody), (status = 422, body = Problem)))]
async fn import_patients(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ImportBody>, ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    let document: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::MalformedBody("The body is not valid JSON.".into()))?;
    let report = state
        .services
        .import_patients(
            &document,
            carekey_domain::audit::Actor::Staff(session.staff.id),
            None,
        )
        .await?;
    Ok(Json(ImportBody {
        created: report.created,
        updated: report.updated,
        skipped: report
            .skipped
            .into_iter()
            .map(|s| SkippedEntry {
                index: s.index,
                reason: s.reason,
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ContactBody {
    pub value: String,
    pub verified: bool,
    pub verified_by: Option<String>,
}

impl From<&ContactView> for ContactBody {
    fn from(view: &ContactView) -> Self {
        Self {
            value: view.value.clone(),
            verified: view.verified,
            verified_by: view.verified_by.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ContactsBody {
    pub email: Option<ContactBody>,
    pub phone: Option<ContactBody>,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryLine {
    pub flow_id: String,
    pub purpose: String,
    pub channel: String,
    pub to: String,
    pub created_at: DateTime<Utc>,
    pub state: String,
}

#[derive(Serialize, ToSchema)]
pub struct MessageLine {
    pub id: String,
    pub kind: String,
    pub channel: String,
    pub to: String,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PortalBody {
    pub status: String,
    pub username: Option<String>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub failed_attempts: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub contacts: ContactsBody,
    pub recent_recovery: Vec<RecoveryLine>,
    pub recent_messages: Vec<MessageLine>,
}

#[derive(Serialize, ToSchema)]
pub struct PatientBody {
    pub id: String,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: String,
    pub postal_code: Option<String>,
    pub preferred_language: Option<String>,
    pub portal: PortalBody,
}

impl From<PatientRecord> for PatientBody {
    fn from(record: PatientRecord) -> Self {
        let portal = record.portal;
        Self {
            id: record.id.to_string(),
            mrn: record.mrn,
            given_name: record.given_name,
            family_name: record.family_name,
            date_of_birth: record.date_of_birth,
            postal_code: record.postal_code,
            preferred_language: record.preferred_language,
            portal: PortalBody {
                status: portal.status.as_str().to_owned(),
                username: portal.username,
                last_sign_in_at: portal.last_sign_in_at,
                failed_attempts: portal.failed_attempts,
                locked_until: portal.locked_until,
                contacts: ContactsBody {
                    email: portal.email.as_ref().map(ContactBody::from),
                    phone: portal.phone.as_ref().map(ContactBody::from),
                },
                recent_recovery: portal
                    .recent_recovery
                    .into_iter()
                    .map(|r| RecoveryLine {
                        flow_id: r.flow_id.to_string(),
                        purpose: r.purpose,
                        channel: r.channel,
                        to: r.to,
                        created_at: r.created_at,
                        state: r.state,
                    })
                    .collect(),
                recent_messages: portal
                    .recent_messages
                    .into_iter()
                    .map(|m| MessageLine {
                        id: m.id.to_string(),
                        kind: m.kind.as_str().to_owned(),
                        channel: m.channel.as_str().to_owned(),
                        to: m.recipient,
                        status: m.status.as_str().to_owned(),
                        updated_at: m.updated_at,
                        error: m.last_error,
                    })
                    .collect(),
            },
        }
    }
}

/// A patient record with its portal panel.
#[utoipa::path(get, path = "/api/v1/staff/patients/{id}", tag = "staff", params(("id" = String, Path)),
    responses((status = 200, body = PatientBody), (status = 404, body = Problem)))]
async fn patient_record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<PatientBody>, ApiError> {
    gate(&state, &headers, Area::Patients).await?;
    let record = state.services.patient_record(patient_id(&id)?).await?;
    Ok(Json(PatientBody::from(record)))
}

/// An action's attestation, required (API.md `verification`).
fn attestation(value: Option<Verification>) -> Result<Verification, ApiError> {
    value.ok_or_else(|| {
        ApiError::InvalidRequest(std::collections::BTreeMap::from([(
            "verification".to_owned(),
            "say how you confirmed the patient's identity".to_owned(),
        )]))
    })
}

#[derive(Deserialize, ToSchema)]
pub struct ResetLinkBody {
    /// `email` or `sms`.
    pub channel: String,
    #[schema(value_type = Object)]
    pub verification: Option<Verification>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageQueued {
    pub message_id: String,
}

/// Send the patient a reset link on a verified contact.
#[utoipa::path(post, path = "/api/v1/staff/patients/{id}/portal/reset-link", tag = "staff", params(("id" = String, Path)),
    request_body = ResetLinkBody, responses((status = 202, body = MessageQueued), (status = 422, body = Problem)))]
async fn send_reset_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResetLinkBody>,
) -> Result<(StatusCode, Json<MessageQueued>), ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    let verification = attestation(body.verification)?;
    let channel = match body.channel.as_str() {
        "email" => Channel::Email,
        "sms" => Channel::Sms,
        _ => {
            return Err(ApiError::InvalidRequest(std::collections::BTreeMap::from(
                [("channel".to_owned(), "choose email or sms".to_owned())],
            )))
        }
    };
    let message = state
        .services
        .staff_reset_link(&session, patient_id(&id)?, channel, &verification, &client)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageQueued {
            message_id: message.to_string(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct AttestedBody {
    #[schema(value_type = Object)]
    pub verification: Option<Verification>,
}

#[derive(Serialize, ToSchema)]
pub struct ResetCode {
    /// Shown once: read it out or print it.
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

/// Generate a one-time code the patient redeems at `/have-a-code`.
#[utoipa::path(post, path = "/api/v1/staff/patients/{id}/portal/reset-code", tag = "staff", params(("id" = String, Path)),
    request_body = AttestedBody, responses((status = 201, body = ResetCode), (status = 422, body = Problem)))]
async fn generate_reset_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AttestedBody>,
) -> Result<(StatusCode, Json<ResetCode>), ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    let verification = attestation(body.verification)?;
    let (code, expires_at) = state
        .services
        .staff_reset_code(&session, patient_id(&id)?, &verification)
        .await?;
    Ok((StatusCode::CREATED, Json(ResetCode { code, expires_at })))
}

/// Lift the account's lock.
#[utoipa::path(post, path = "/api/v1/staff/patients/{id}/portal/unlock", tag = "staff", params(("id" = String, Path)),
    request_body = AttestedBody, responses((status = 204), (status = 422, body = Problem)))]
async fn unlock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AttestedBody>,
) -> Result<StatusCode, ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    let verification = attestation(body.verification)?;
    state
        .services
        .staff_unlock(&session, patient_id(&id)?, &verification)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct InviteBody {
    /// `email`, `sms` or `print`.
    pub channel: String,
    #[schema(value_type = Object)]
    pub verification: Option<Verification>,
}

#[derive(Serialize, ToSchema)]
pub struct Invitation {
    /// Only when printed: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_code: Option<String>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// Issue an enrollment invitation (a new activation code voids the older one).
#[utoipa::path(post, path = "/api/v1/staff/patients/{id}/portal/invite", tag = "staff", params(("id" = String, Path)),
    request_body = InviteBody, responses((status = 201, body = Invitation), (status = 422, body = Problem)))]
async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    let verification = attestation(body.verification)?;
    let channel = match body.channel.as_str() {
        "email" => Some(Channel::Email),
        "sms" => Some(Channel::Sms),
        "print" => None,
        _ => {
            return Err(ApiError::InvalidRequest(std::collections::BTreeMap::from(
                [(
                    "channel".to_owned(),
                    "choose email, sms or print".to_owned(),
                )],
            )))
        }
    };
    let (activation_code, expires_at, message) = state
        .services
        .staff_invite(&session, patient_id(&id)?, channel, &verification)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Invitation {
            activation_code,
            expires_at,
            message_id: message.map(|m| m.to_string()),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct DisableBody {
    pub reason: String,
}

/// Disable the portal account, ending its sessions.
#[utoipa::path(post, path = "/api/v1/staff/patients/{id}/portal/disable", tag = "staff", params(("id" = String, Path)),
    request_body = DisableBody, responses((status = 204), (status = 422, body = Problem)))]
async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DisableBody>,
) -> Result<StatusCode, ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    state
        .services
        .staff_disable(&session, patient_id(&id)?, &body.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct ContactsChange {
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Object)]
    pub verification: Option<Verification>,
}

/// Correct the patient's email or phone; the old contact is told.
#[utoipa::path(patch, path = "/api/v1/staff/patients/{id}/contacts", tag = "staff", params(("id" = String, Path)),
    request_body = ContactsChange, responses((status = 200, body = PatientBody), (status = 422, body = Problem)))]
async fn update_contacts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ContactsChange>,
) -> Result<Json<PatientBody>, ApiError> {
    let session = gate(&state, &headers, Area::Patients).await?;
    let verification = attestation(body.verification)?;
    let record = state
        .services
        .staff_update_contacts(
            &session,
            patient_id(&id)?,
            body.email.as_deref(),
            body.phone.as_deref(),
            &verification,
            &client,
        )
        .await?;
    Ok(Json(PatientBody::from(record)))
}

#[derive(Serialize, ToSchema)]
pub struct MessageStatusBody {
    pub status: String,
    pub attempts: u32,
    pub error: Option<String>,
}

/// Where a message is on its way.
#[utoipa::path(get, path = "/api/v1/staff/messages/{id}", tag = "staff", params(("id" = String, Path)),
    responses((status = 200, body = MessageStatusBody), (status = 404, body = Problem)))]
async fn message_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<MessageStatusBody>, ApiError> {
    gate(&state, &headers, Area::Patients).await?;
    let id = id.parse().map(MessageId).map_err(|_| ApiError::NotFound)?;
    let message = state.services.message_status(id).await?;
    Ok(Json(MessageStatusBody {
        status: message.status.as_str().to_owned(),
        attempts: message.attempts,
        error: message.last_error,
    }))
}

// ---------------------------------------------------------------------------
// Audit

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub patient_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// Audit events, newest first: who did what to whom, when, from where.
#[utoipa::path(get, path = "/api/v1/staff/audit", tag = "staff", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 403, body = Problem)))]
async fn audit_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    gate(&state, &headers, Area::Audit).await?;
    let patient = query.patient_id.as_deref().map(patient_id).transpose()?;
    let events = state.services.audit_events(patient, query.since).await?;
    Ok(Json(AuditList {
        events: events
            .into_iter()
            .map(|e| {
                serde_json::json!({
                    "seq": e.seq, "at": e.at, "actor_kind": e.actor_kind, "actor_id": e.actor_id,
                    "action": e.action, "account_id": e.account_id, "patient_id": e.patient_id,
                    "ip": e.ip, "outcome": e.outcome,
                    "details": serde_json::from_str::<serde_json::Value>(&e.details).unwrap_or_default(),
                })
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ChainBody {
    pub ok: bool,
    pub events: u64,
    pub first_bad_event: Option<i64>,
}

/// Walk the audit hash chain and name the first broken link.
#[utoipa::path(get, path = "/api/v1/staff/audit/verify", tag = "staff",
    responses((status = 200, body = ChainBody), (status = 403, body = Problem)))]
async fn verify_audit(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ChainBody>, ApiError> {
    gate(&state, &headers, Area::Audit).await?;
    let check = state.services.verify_audit_chain().await?;
    Ok(Json(ChainBody {
        ok: check.ok,
        events: check.events,
        first_bad_event: check.first_bad_event,
    }))
}

// ---------------------------------------------------------------------------
// Administration

#[derive(Serialize, ToSchema)]
pub struct PolicyBody {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub policy: Policy,
    pub warnings: Vec<String>,
}

/// The organisation's policy.
#[utoipa::path(get, path = "/api/v1/admin/policy", tag = "admin",
    responses((status = 200, body = PolicyBody), (status = 403, body = Problem)))]
async fn get_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PolicyBody>, ApiError> {
    gate(&state, &headers, Area::Admin).await?;
    let policy = state
        .services
        .store
        .load_policy()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let warnings = policy.nist_warnings();
    Ok(Json(PolicyBody { policy, warnings }))
}

/// Change any part of the policy.
#[utoipa::path(put, path = "/api/v1/admin/policy", tag = "admin", request_body = Object,
    responses((status = 200, body = PolicyBody), (status = 422, body = Problem)))]
async fn put_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(change): ApiJson<serde_json::Value>,
) -> Result<Json<PolicyBody>, ApiError> {
    let session = gate(&state, &headers, Area::Admin).await?;
    let policy = state.services.update_policy(&session, &change).await?;
    let warnings = policy.nist_warnings();
    Ok(Json(PolicyBody { policy, warnings }))
}

#[derive(Serialize, ToSchema)]
pub struct StaffLine {
    pub id: String,
    pub username: String,
    pub role: String,
    pub disabled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct StaffList {
    pub staff: Vec<StaffLine>,
}

/// Every staff user.
#[utoipa::path(get, path = "/api/v1/admin/staff", tag = "admin",
    responses((status = 200, body = StaffList), (status = 403, body = Problem)))]
async fn list_staff(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<StaffList>, ApiError> {
    gate(&state, &headers, Area::Admin).await?;
    let staff = state
        .services
        .store
        .list_staff()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(StaffList {
        staff: staff
            .into_iter()
            .map(|s| StaffLine {
                id: s.id.to_string(),
                username: s.username,
                role: s.role.as_str().to_owned(),
                disabled: s.disabled,
            })
            .collect(),
    }))
}

/// (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
pub struct NewStaffBody {
    pub username: String,
    pub role: String,
    pub password: String,
}

/// Add a staff user.
#[utoipa::path(post, path = "/api/v1/admin/staff", tag = "admin", request_body = NewStaffBody,
    responses((status = 201, body = StaffRef), (status = 409, description = "`username_taken`", body = Problem), (status = 422, body = Problem)))]
async fn create_staff(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewStaffBody>,
) -> Result<(StatusCode, Json<StaffRef>), ApiError> {
    let session = gate(&state, &headers, Area::Admin).await?;
    let invalid = |field: &str, why: String| {
        ApiError::InvalidRequest(std::collections::BTreeMap::from([(field.to_owned(), why)]))
    };
    let username =
        Username::parse(&body.username).map_err(|e| invalid("username", e.to_string()))?;
    let role: StaffRole = body.role.parse().map_err(|e: String| invalid("role", e))?;
    let id: StaffId = state
        .services
        .create_staff(
            username.clone(),
            role,
            &Password::new(&body.password),
            carekey_domain::audit::Actor::Staff(session.staff.id),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(StaffRef {
            id: id.to_string(),
            username: username.as_str().to_owned(),
            role: role.as_str().to_owned(),
        }),
    ))
}

/// Disable a staff user and end their sessions.
#[utoipa::path(post, path = "/api/v1/admin/staff/{id}/disable", tag = "admin", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn disable_staff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = gate(&state, &headers, Area::Admin).await?;
    let staff = id.parse().map(StaffId).map_err(|_| ApiError::NotFound)?;
    state.services.disable_staff(&session, staff).await?;
    Ok(StatusCode::NO_CONTENT)
}
