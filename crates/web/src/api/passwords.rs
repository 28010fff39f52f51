//! `POST /api/v1/password/check` (live feedback on a new password) and
//! `POST /api/v1/me/password` (a signed-in patient's change of password).

use crate::client::Client;
use crate::error::{ApiError, ApiJson, Problem, Violation};
use crate::i18n::{RequestLanguage, Tr};
use crate::session_cookie::presented_patient_token;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use carekey_domain::password_rules::Rule;
use carekey_domain::policy::PasswordPolicy;
use carekey_domain::secret::Password;
use carekey_domain::token::OpaqueToken;
use carekey_service::ServiceError;
use fluent_templates::fluent_bundle::FluentValue;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_password))
        .routes(routes!(change_password))
}

/// Each broken rule with its message in the caller's language.
pub fn violations(rules: &[Rule], tr: Tr, policy: &PasswordPolicy) -> Vec<Violation> {
    rules
        .iter()
        .map(|rule| Violation {
            rule: rule.code().to_owned(),
            message: tr.with(
                &format!("rule-{}", rule.code()),
                &[
                    ("min", FluentValue::from(policy.min_length)),
                    ("max", FluentValue::from(policy.max_length)),
                    ("classes", FluentValue::from(policy.require_classes)),
                ],
            ),
        })
        .collect()
}

/// A service error, with password-policy violations in the caller's language.
pub(crate) async fn localized(state: &AppState, error: ServiceError, tr: Tr) -> ApiError {
    match error {
        ServiceError::PasswordPolicy(rules) => match state.services.store.load_policy().await {
            Ok(policy) => ApiError::PasswordPolicy(violations(&rules, tr, &policy.password)),
            Err(error) => ApiError::Internal(error.to_string()),
        },
        other => other.into(),
    }
}

/// A password being typed. (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
pub struct CheckRequest {
    pub password: String,
    /// A reset token, for the account-specific rules at reset.
    pub reset_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckResponse {
    /// Whether the password meets every rule checked here.
    pub ok: bool,
    pub violations: Vec<Violation>,
    /// 0 (easy to guess) to 4 (very hard to guess).
    pub strength: u8,
    pub suggestions: Vec<String>,
}

/// Live feedback on a new password: every rule, explained, in the caller's language.
#[utoipa::path(
    post,
    path = "/api/v1/password/check",
    tag = "passwords",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The rules the password meets and breaks", body = CheckResponse),
        (status = 422, description = "`invalid_request`", body = Problem)
    )
)]
async fn check_password(
    State(state): State<AppState>,
    RequestLanguage(lang): RequestLanguage,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CheckRequest>,
) -> Result<Json<CheckResponse>, ApiError> {
    let tr = Tr::new(lang);
    // The account's own details count: the reset token's account, else the signed-in patient's.
    let reset_account = match request.reset_token.as_deref() {
        Some(token) => {
            state
                .services
                .reset_token_account(&OpaqueToken::from_presented(token))
                .await?
        }
        None => None,
    };
    let account = match (
        reset_account,
        presented_patient_token(&state.settings, &headers),
    ) {
        (Some(account), _) => Some(account),
        (None, Some(token)) => state
            .services
            .patient_session(&token)
            .await
            .ok()
            .map(|s| s.account_id),
        (None, None) => None,
    };
    let password = Password::new(&request.password);
    let (assessment, policy) = state.services.check_password(&password, account).await?;
    let mut suggestions = Vec::new();
    if !assessment.violations.is_empty() {
        suggestions.push(tr.t("suggest-passphrase"));
        suggestions.push(tr.t("suggest-manager"));
    }
    Ok(Json(CheckResponse {
        ok: assessment.violations.is_empty(),
        violations: violations(&assessment.violations, tr, &policy),
        strength: assessment.strength,
        suggestions,
    }))
}

/// A password change. (No `Debug`: it holds passwords.)
#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
    pub new_password_confirm: String,
}

/// Change the signed-in patient's password; every other session ends.
#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    tag = "passwords",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; other sessions revoked; each verified contact told"),
        (status = 400, description = "`password_mismatch`", body = Problem),
        (status = 401, description = "`unauthenticated`, or `invalid_credentials` for a wrong current password", body = Problem),
        (status = 422, description = "`password_policy` with `violations`", body = Problem)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
async fn change_password(
    State(state): State<AppState>,
    RequestLanguage(lang): RequestLanguage,
    headers: HeaderMap,
    Client(client): Client,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let token =
        presented_patient_token(&state.settings, &headers).ok_or(ApiError::Unauthenticated)?;
    let outcome = state
        .services
        .change_password(
            &token,
            &Password::new(&request.current_password),
            &Password::new(&request.new_password),
            &Password::new(&request.new_password_confirm),
            &client,
        )
        .await;
    match outcome {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(localized(&state, error, Tr::new(lang)).await),
    }
}
