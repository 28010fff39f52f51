//! Errors at the HTTP edge: every failure of the JSON API becomes one RFC 9457
//! problem document with a stable `error` code from API.md, mapped here once.
//! A 500 logs its cause and shows nothing internal.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use carekey_service::ServiceError;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A problem document (RFC 9457) as CareKey sends it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable machine code (API.md), e.g. `invalid_credentials`.
    pub error: String,
    /// Validation errors: why each named field was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
    /// Password-policy errors: each broken rule with a message in the caller's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<Violation>>,
    /// A wrong recovery code: how many more tries the flow allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
}

/// One broken password rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Violation {
    /// `min_length`, `max_length`, `blocklist`, `personal_info`, `history`, `near_copy`, `strength` or `classes`.
    pub rule: String,
    pub message: String,
}

/// An API failure; each variant has one status and one code.
#[derive(Debug)]
pub enum ApiError {
    InvalidCredentials,
    Unauthenticated,
    InvalidRequest(BTreeMap<String, String>),
    PasswordMismatch,
    PasswordPolicy(Vec<Violation>),
    MalformedBody(String),
    UnsupportedMediaType,
    PayloadTooLarge,
    Conflict(&'static str),
    NotFound,
    /// A provider callback whose signature does not verify.
    InvalidSignature,
    /// No route serves this path and method.
    NoSuchRoute,
    /// The path is served, but not with this method.
    MethodNotAllowed,
    /// Too many requests; try again after this many seconds (`Retry-After`).
    RateLimited(i64),
    /// A wrong code, with the attempts left where the contract gives them.
    InvalidCode(Option<u32>),
    FlowExpired,
    InvalidOrExpiredToken,
    TotpEnrollmentRequired,
    Forbidden,
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        match self {
            ApiError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Sign-in failed",
                "The login or password is not right, or the account cannot sign in now.".into(),
            ),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Not signed in",
                "This needs a live session; sign in again.".into(),
            ),
            ApiError::InvalidRequest(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "Invalid request",
                "Some fields could not be accepted; see `fields`.".into(),
            ),
            ApiError::PasswordMismatch => (
                StatusCode::BAD_REQUEST,
                "password_mismatch",
                "Passwords differ",
                "The new password and its confirmation are not the same.".into(),
            ),
            ApiError::PasswordPolicy(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "password_policy",
                "Password not accepted",
                "The new password breaks the rules listed in `violations`.".into(),
            ),
            ApiError::MalformedBody(why) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "Invalid request",
                why.clone(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "Send the body as application/json.".into(),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request too large",
                "The request body is larger than this service accepts.".into(),
            ),
            ApiError::Conflict(what) => (
                StatusCode::CONFLICT,
                match *what {
                    "mrn" => "mrn_taken",
                    _ => "username_taken",
                },
                "Already taken",
                format!("That {what} is already in use."),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "Nothing is here.".into(),
            ),
            ApiError::InvalidSignature => (
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "Invalid signature",
                "The request signature does not match.".into(),
            ),
            ApiError::NoSuchRoute => (
                StatusCode::NOT_FOUND,
                "no_such_route",
                "No such route",
                "Nothing is served at this path; see /api/openapi.json.".into(),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This path is served, but not with this method; see /api/openapi.json.".into(),
            ),
            ApiError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                "Too many requests like this one; try again after the time in Retry-After.".into(),
            ),
            ApiError::InvalidCode(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_code",
                "Code not accepted",
                "That code is not right.".into(),
            ),
            ApiError::FlowExpired => (
                StatusCode::GONE,
                "flow_expired",
                "Request ended",
                "This recovery request has expired or been used up; start a new one.".into(),
            ),
            ApiError::InvalidOrExpiredToken => (
                StatusCode::GONE,
                "invalid_or_expired_token",
                "Link expired",
                "This reset token has expired, been used, or been replaced; start a new request."
                    .into(),
            ),
            ApiError::TotpEnrollmentRequired => (
                StatusCode::FORBIDDEN,
                "totp_enrollment_required",
                "Second factor needed",
                "Enrol an authenticator app first: POST /api/v1/staff/me/totp, then .../confirm."
                    .into(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                "Your role does not reach this.".into(),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong",
                "The service could not finish this request. Please try again.".into(),
            ),
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, code, title, detail) = self.parts();
        Problem {
            kind: format!("urn:carekey:problem:{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
            error: code.into(),
            fields: match self {
                ApiError::InvalidRequest(fields) => Some(fields.clone()),
                _ => None,
            },
            violations: match self {
                ApiError::PasswordPolicy(violations) => Some(violations.clone()),
                _ => None,
            },
            attempts_left: match self {
                ApiError::InvalidCode(attempts_left) => *attempts_left,
                _ => None,
            },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::InvalidCredentials => ApiError::InvalidCredentials,
            ServiceError::Unauthenticated => ApiError::Unauthenticated,
            ServiceError::InvalidRequest(fields) => ApiError::InvalidRequest(fields),
            ServiceError::PasswordMismatch => ApiError::PasswordMismatch,
            ServiceError::PasswordPolicy(rules) => {
                ApiError::PasswordPolicy(crate::api::passwords::violations(
                    &rules,
                    crate::i18n::Tr::new(carekey_domain::model::Language::En),
                    &carekey_domain::policy::PasswordPolicy::default(),
                ))
            }
            ServiceError::Conflict(what) => ApiError::Conflict(what),
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::RateLimited {
                retry_after_seconds,
            } => ApiError::RateLimited(retry_after_seconds),
            ServiceError::InvalidCode { attempts_left } => ApiError::InvalidCode(attempts_left),
            ServiceError::FlowExpired => ApiError::FlowExpired,
            ServiceError::TokenExpired => ApiError::InvalidOrExpiredToken,
            ServiceError::TotpEnrollmentRequired => ApiError::TotpEnrollmentRequired,
            ServiceError::Forbidden => ApiError::Forbidden,
            ServiceError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::RateLimited(seconds) = &self {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON body whose rejections are problem documents too.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            // The rejection's own text can quote the body (a password, say): never echo it.
            Err(JsonRejection::JsonSyntaxError(_)) => Err(ApiError::MalformedBody(
                "The body is not valid JSON.".into(),
            )),
            Err(_) => Err(ApiError::MalformedBody(
                "The JSON body lacks a required field or has a field of the wrong type.".into(),
            )),
        }
    }
}
