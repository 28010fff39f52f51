//! Self-service recovery over JSON (API.md, "Patient: recovery"): start a
//! flow, verify its code, redeem a staff code, and reset the password.

use crate::api::passwords::localized;
use crate::client::Client;
use crate::error::{ApiError, ApiJson, Problem};
use crate::i18n::{LanguageSignals, Tr};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use carekey_domain::message::Channel;
use carekey_domain::model::Language;
use carekey_domain::recovery::Purpose;
use carekey_domain::secret::Password;
use carekey_domain::token::OpaqueToken;
use carekey_service::recovery::{RecoveryRequest, ResetGrant};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_recovery))
        .routes(routes!(verify_code))
        .routes(routes!(redeem_staff_code))
        .routes(routes!(reset_password))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PurposeField {
    Password,
    Username,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelField {
    Email,
    Sms,
    Voice,
}

/// A recovery request; which identifiers it needs is the organisation's policy.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoveryBody {
    pub purpose: PurposeField,
    pub channel: ChannelField,
    pub username: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// `en` or `es`: the language of the message sent.
    pub locale: Option<String>,
}

/// The same answer for every well-formed request.
#[derive(Serialize, ToSchema)]
pub struct RecoveryAccepted {
    pub flow_id: String,
    pub expires_at: DateTime<Utc>,
    pub message: String,
}

/// Start recovering a password or username.
#[utoipa::path(
    post,
    path = "/api/v1/recovery",
    tag = "recovery",
    request_body = RecoveryBody,
    responses(
        (status = 202, description = "Accepted; a message went out only if the identifiers match an account with the channel verified on file", body = RecoveryAccepted),
        (status = 422, description = "`invalid_request`: an identifier cannot be read, or the identifiers fit no combination the policy accepts", body = Problem),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = Problem)
    )
)]
async fn start_recovery(
    State(state): State<AppState>,
    Client(client): Client,
    languages: LanguageSignals,
    ApiJson(body): ApiJson<RecoveryBody>,
) -> Result<Response, ApiError> {
    let chosen = body
        .locale
        .as_deref()
        .and_then(Language::from_tag)
        .or(languages.chosen);
    let request = RecoveryRequest {
        purpose: match body.purpose {
            PurposeField::Password => Purpose::Password,
            PurposeField::Username => Purpose::Username,
        },
        channel: match body.channel {
            ChannelField::Email => Channel::Email,
            ChannelField::Sms => Channel::Sms,
            ChannelField::Voice => Channel::Voice,
        },
        username: body.username,
        email: body.email,
        phone: body.phone,
        date_of_birth: body.date_of_birth,
        language: chosen,
        fallback_language: languages.browser,
    };
    let started = state.services.request_recovery(&request, &client).await?;
    let tr = Tr::new(chosen.or(languages.browser).unwrap_or_default());
    let body = RecoveryAccepted {
        flow_id: started.flow_id.to_string(),
        expires_at: started.expires_at,
        message: tr.t("recovery-accepted"),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyBody {
    pub code: String,
}

/// One account a verified code unlocks.
#[derive(Serialize, ToSchema)]
pub struct AccountGrant {
    pub username: String,
    /// Use once with `POST /api/v1/password/reset`.
    pub reset_token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct VerifiedAccounts {
    pub accounts: Vec<AccountGrant>,
}

fn granted(grants: Vec<ResetGrant>) -> Json<VerifiedAccounts> {
    Json(VerifiedAccounts {
        accounts: grants
            .into_iter()
            .map(|grant| AccountGrant {
                username: grant.username,
                reset_token: grant.reset_token.expose().to_owned(),
                expires_at: grant.expires_at,
            })
            .collect(),
    })
}

/// Check the code a recovery flow sent.
#[utoipa::path(
    post,
    path = "/api/v1/recovery/{flow_id}/verify",
    tag = "recovery",
    params(("flow_id" = String, Path, description = "From `POST /api/v1/recovery`")),
    request_body = VerifyBody,
    responses(
        (status = 200, description = "Each account the code unlocks, with a reset token", body = VerifiedAccounts),
        (status = 400, description = "`invalid_code` with `attempts_left`", body = Problem),
        (status = 410, description = "`flow_expired`: expired, used up, revoked or unknown", body = Problem)
    )
)]
async fn verify_code(
    State(state): State<AppState>,
    Client(client): Client,
    Path(flow_id): Path<String>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<VerifiedAccounts>, ApiError> {
    let grants = state
        .services
        .verify_recovery_code(&flow_id, &body.code, &client)
        .await?;
    Ok(granted(grants))
}

#[derive(Deserialize, ToSchema)]
pub struct StaffCodeBody {
    pub code: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
}

/// Redeem a one-time code from clinic staff.
#[utoipa::path(
    post,
    path = "/api/v1/recovery/staff-code",
    tag = "recovery",
    request_body = StaffCodeBody,
    responses(
        (status = 200, description = "The account, with a reset token", body = VerifiedAccounts),
        (status = 400, description = "`invalid_code`: the same for an unknown, expired or used code and a wrong date of birth", body = Problem),
        (status = 422, description = "`invalid_request`: the date cannot be read", body = Problem),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = Problem)
    )
)]
async fn redeem_staff_code(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<StaffCodeBody>,
) -> Result<Json<VerifiedAccounts>, ApiError> {
    let grants = state
        .services
        .redeem_staff_code(&body.code, &body.date_of_birth, &client)
        .await?;
    Ok(granted(grants))
}

/// A new password with a reset token. (No `Debug`: it holds passwords.)
#[derive(Deserialize, ToSchema)]
pub struct ResetBody {
    pub token: String,
    pub new_password: String,
    pub new_password_confirm: String,
}

#[derive(Serialize, ToSchema)]
pub struct ResetDone {
    pub username: String,
}

/// Set a new password with a reset token; the patient then signs in afresh.
#[utoipa::path(
    post,
    path = "/api/v1/password/reset",
    tag = "recovery",
    request_body = ResetBody,
    responses(
        (status = 200, description = "Changed; every session, flow and token of the account revoked; each verified contact told", body = ResetDone),
        (status = 400, description = "`password_mismatch`", body = Problem),
        (status = 410, description = "`invalid_or_expired_token`", body = Problem),
        (status = 422, description = "`password_policy` with `violations`", body = Problem)
    )
)]
async fn reset_password(
    State(state): State<AppState>,
    Client(client): Client,
    languages: LanguageSignals,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<ResetDone>, ApiError> {
    let outcome = state
        .services
        .reset_password(
            &OpaqueToken::from_presented(&body.token),
            &Password::new(&body.new_password),
            &Password::new(&body.new_password_confirm),
            &client,
        )
        .await;
    match outcome {
        Ok(username) => Ok(Json(ResetDone { username })),
        Err(error) => Err(localized(&state, error, Tr::new(languages.resolve())).await),
    }
}
