//! First access over JSON (API.md, "Patient: enrollment"): an activation code
//! with the date of birth, then a username and password.

use crate::api::passwords::localized;
use crate::client::Client;
use crate::error::{ApiError, ApiJson, Problem};
use crate::i18n::{LanguageSignals, Tr};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use carekey_domain::secret::Password;
use carekey_domain::token::OpaqueToken;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(complete))
        .routes(routes!(request_code))
}

#[derive(Deserialize, ToSchema)]
pub struct SelfRegistration {
    pub given_name: String,
    pub family_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    pub postal_code: String,
}

#[derive(Serialize, ToSchema)]
pub struct Requested {
    pub message: String,
}

/// Self-registration (when the organisation's policy enables it): a code goes
/// to a verified contact already on file of the one patient these details
/// match. The same answer whatever matched.
#[utoipa::path(post, path = "/api/v1/enrollment/request", tag = "enrollment", request_body = SelfRegistration,
    responses((status = 202, body = Requested),
        (status = 403, description = "`forbidden`: self-registration is off", body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn request_code(
    State(state): State<AppState>,
    Client(client): Client,
    languages: LanguageSignals,
    ApiJson(body): ApiJson<SelfRegistration>,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    state
        .services
        .request_activation_code(
            &body.given_name,
            &body.family_name,
            &body.date_of_birth,
            &body.postal_code,
            &client,
        )
        .await?;
    let tr = Tr::new(languages.resolve());
    Ok((
        StatusCode::ACCEPTED,
        Json(Requested {
            message: tr.t("recovery-accepted"),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct StartBody {
    pub activation_code: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    pub postal_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PatientName {
    pub given_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    pub enrollment_token: String,
    pub expires_at: DateTime<Utc>,
    pub patient: PatientName,
}

/// Check an activation code with the date of birth.
#[utoipa::path(post, path = "/api/v1/enrollment", tag = "enrollment", request_body = StartBody,
    responses((status = 200, body = Started),
        (status = 400, description = "`invalid_code`: the same for an unknown code and wrong details", body = Problem),
        (status = 429, description = "`rate_limited`", body = Problem)))]
async fn start(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Json<Started>, ApiError> {
    let started = state
        .services
        .start_enrollment(
            &body.activation_code,
            &body.date_of_birth,
            body.postal_code.as_deref(),
            &client,
        )
        .await?;
    Ok(Json(Started {
        enrollment_token: started.enrollment_token.expose().to_owned(),
        expires_at: started.expires_at,
        patient: PatientName {
            given_name: started.given_name,
        },
    }))
}

/// (No `Debug`: it holds passwords.)
#[derive(Deserialize, ToSchema)]
pub struct CompleteBody {
    pub enrollment_token: String,
    pub username: String,
    pub password: String,
    pub password_confirm: String,
    /// Added (unverified) when none is on file; confirm it from `/account`.
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Enrolled {
    pub username: String,
}

/// Choose a username and password; the account is then active.
#[utoipa::path(post, path = "/api/v1/enrollment/complete", tag = "enrollment", request_body = CompleteBody,
    responses((status = 201, body = Enrolled),
        (status = 400, description = "`password_mismatch`", body = Problem),
        (status = 409, description = "`username_taken`", body = Problem),
        (status = 410, description = "`invalid_or_expired_token`", body = Problem),
        (status = 422, description = "`password_policy` or `invalid_request`", body = Problem)))]
async fn complete(
    State(state): State<AppState>,
    Client(client): Client,
    languages: LanguageSignals,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let outcome = state
        .services
        .complete_enrollment(
            &OpaqueToken::from_presented(&body.enrollment_token),
            &body.username,
            &Password::new(&body.password),
            &Password::new(&body.password_confirm),
            (body.email.as_deref(), body.phone.as_deref()),
            &client,
        )
        .await;
    match outcome {
        Ok(username) => Ok((StatusCode::CREATED, Json(Enrolled { username }))),
        Err(error) => Err(localized(&state, error, Tr::new(languages.resolve())).await),
    }
}
