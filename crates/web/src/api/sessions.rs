//! `POST/GET/DELETE /api/v1/sessions…`: patient sign-in over JSON.

use crate::client::Client;
use crate::error::{ApiError, ApiJson, Problem};
use crate::session_cookie::{patient_session, patient_session_removal, presented_patient_token};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use carekey_domain::secret::Password;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(current_session, delete_current_session))
}

/// A sign-in attempt. (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
pub struct SignInRequest {
    /// Username or email address.
    pub login: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountRef {
    pub username: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignInResponse {
    pub account: AccountRef,
    /// The session id, for `Authorization: Bearer`; the same value is set as a cookie.
    pub session_token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct PatientRef {
    pub given_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionAccount {
    pub username: String,
    pub patient: PatientRef,
}

#[derive(Serialize, ToSchema)]
pub struct CurrentSessionResponse {
    pub account: SessionAccount,
    pub expires_at: DateTime<Utc>,
    /// The organisation's maximum password age has passed: ask for a new password
    /// (`POST /api/v1/me/password`) before anything else.
    pub password_expired: bool,
}

/// Sign in with a username or email and a password.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "sessions",
    request_body = SignInRequest,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = SignInResponse),
        (status = 401, description = "`invalid_credentials`: the same for unknown login, wrong password, locked or disabled account", body = Problem),
        (status = 422, description = "`invalid_request`: the body is not a sign-in request", body = Problem)
    )
)]
async fn create_session(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(request): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let password = Password::new(&request.password);
    let signed_in = state
        .services
        .sign_in(&request.login, &password, &client)
        .await?;
    let jar = CookieJar::new().add(patient_session(&state.settings, &signed_in.session_token));
    let body = SignInResponse {
        account: AccountRef {
            username: signed_in.username,
        },
        session_token: signed_in.session_token.expose().to_owned(),
        expires_at: signed_in.expires_at,
    };
    Ok((jar, Json(body)).into_response())
}

/// The signed-in patient.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/current",
    tag = "sessions",
    responses(
        (status = 200, description = "The session is live", body = CurrentSessionResponse),
        (status = 401, description = "`unauthenticated`", body = Problem)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
async fn current_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<CurrentSessionResponse>, ApiError> {
    let token =
        presented_patient_token(&state.settings, &headers).ok_or(ApiError::Unauthenticated)?;
    let session = state.services.patient_session(&token).await?;
    Ok(Json(CurrentSessionResponse {
        account: SessionAccount {
            username: session.username,
            patient: PatientRef {
                given_name: session.given_name,
            },
        },
        expires_at: session.expires_at,
        password_expired: session.password_expired,
    }))
}

/// Sign out: the session ends on the server and the cookie is removed.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/current",
    tag = "sessions",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "`unauthenticated`", body = Problem)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
async fn delete_current_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
) -> Result<Response, ApiError> {
    let token =
        presented_patient_token(&state.settings, &headers).ok_or(ApiError::Unauthenticated)?;
    state.services.sign_out(&token, &client).await?;
    let jar = CookieJar::new().add(patient_session_removal(&state.settings));
    Ok((StatusCode::NO_CONTENT, jar).into_response())
}
