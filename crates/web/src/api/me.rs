//! `PUT /api/v1/me/contacts/{email|phone}` and `POST /api/v1/me/contacts/verify`:
//! a signed-in patient changes an email or phone, proved by a code.

use crate::client::Client;
use crate::error::{ApiError, ApiJson, Problem};
use crate::session_cookie::presented_patient_token;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use carekey_domain::secret::Password;
use carekey_service::contacts::ContactKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_email))
        .routes(routes!(change_phone))
        .routes(routes!(verify))
}

/// (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
pub struct ContactChange {
    pub value: String,
    /// The current password, again.
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct CodeSent {
    pub flow_id: String,
}

async fn change(
    state: &AppState,
    headers: &HeaderMap,
    client: &carekey_service::ClientInfo,
    kind: ContactKind,
    body: ContactChange,
) -> Result<(StatusCode, Json<CodeSent>), ApiError> {
    let token =
        presented_patient_token(&state.settings, headers).ok_or(ApiError::Unauthenticated)?;
    let flow = state
        .services
        .request_contact_change(
            &token,
            kind,
            &body.value,
            &Password::new(&body.password),
            client,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CodeSent {
            flow_id: flow.to_string(),
        }),
    ))
}

/// Change the email on file: a code goes to the new address, a notice to the old one.
#[utoipa::path(put, path = "/api/v1/me/contacts/email", tag = "passwords", request_body = ContactChange,
    responses((status = 202, body = CodeSent), (status = 401, description = "`invalid_credentials` or `unauthenticated`", body = Problem), (status = 422, body = Problem)),
    security(("session_cookie" = []), ("bearer" = [])))]
async fn change_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    ApiJson(body): ApiJson<ContactChange>,
) -> Result<(StatusCode, Json<CodeSent>), ApiError> {
    change(&state, &headers, &client, ContactKind::Email, body).await
}

/// Change the phone on file: a code goes to the new number, a notice to the old one.
#[utoipa::path(put, path = "/api/v1/me/contacts/phone", tag = "passwords", request_body = ContactChange,
    responses((status = 202, body = CodeSent), (status = 401, description = "`invalid_credentials` or `unauthenticated`", body = Problem), (status = 422, body = Problem)),
    security(("session_cookie" = []), ("bearer" = [])))]
async fn change_phone(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    ApiJson(body): ApiJson<ContactChange>,
) -> Result<(StatusCode, Json<CodeSent>), ApiError> {
    change(&state, &headers, &client, ContactKind::Phone, body).await
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyContact {
    pub flow_id: String,
    pub code: String,
}

/// The code from the new contact: it is now on file, verified.
#[utoipa::path(post, path = "/api/v1/me/contacts/verify", tag = "passwords", request_body = VerifyContact,
    responses((status = 204), (status = 400, description = "`invalid_code`", body = Problem), (status = 410, description = "`flow_expired`", body = Problem)),
    security(("session_cookie" = []), ("bearer" = [])))]
async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(client): Client,
    ApiJson(body): ApiJson<VerifyContact>,
) -> Result<StatusCode, ApiError> {
    let token =
        presented_patient_token(&state.settings, &headers).ok_or(ApiError::Unauthenticated)?;
    state
        .services
        .verify_contact_change(&token, &body.flow_id, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
