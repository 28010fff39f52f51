//! `POST /hooks/twilio/status`: the provider's delivery reports, accepted only
//! with a valid `X-Twilio-Signature` computed over the configured public URL
//! (never the request's Host).

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use carekey_delivery::twilio::{signature_is_valid, status_of};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(twilio_status))
}

pub const TWILIO_STATUS_PATH: &str = "/hooks/twilio/status";

/// A Twilio message or call status callback.
#[utoipa::path(
    post,
    path = "/hooks/twilio/status",
    tag = "hooks",
    request_body(content_type = "application/x-www-form-urlencoded", description = "Twilio's callback fields (MessageSid or CallSid, MessageStatus or CallStatus, ErrorCode)"),
    responses(
        (status = 204, description = "Recorded (or not about a message we know)"),
        (status = 403, description = "`invalid_signature`", body = Problem)
    )
)]
async fn twilio_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| ApiError::InvalidSignature)?;
    let presented = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let url = format!(
        "{}{TWILIO_STATUS_PATH}",
        state.settings.public_url.as_str().trim_end_matches('/')
    );
    let signed = state
        .settings
        .twilio_auth_tokens
        .iter()
        .any(|token| signature_is_valid(token, &url, &params, presented));
    if !signed {
        tracing::warn!("provider callback with a bad signature refused");
        return Err(ApiError::InvalidSignature);
    }
    let field = |names: [&str; 2]| {
        params
            .iter()
            .find(|(name, _)| names.contains(&name.as_str()))
            .map(|(_, value)| value.as_str())
    };
    let sid = field(["MessageSid", "CallSid"]);
    let status = field(["MessageStatus", "CallStatus"]).and_then(status_of);
    if let (Some(sid), Some(status)) = (sid, status) {
        let error = field(["ErrorCode", "ErrorCode"]).map(|code| format!("provider error {code}"));
        state
            .services
            .record_provider_status(sid, status, error.as_deref())
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
