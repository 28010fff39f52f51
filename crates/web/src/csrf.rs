//! CSRF protection for every form post: a random token in a `SameSite`,
//! HttpOnly cookie (`__Host-` prefixed over https) must come back in the form's
//! hidden `csrf` field. Page handlers take their body through [`CsrfForm`], so a
//! form post without a valid token cannot reach one.

use crate::pages;
use crate::state::{AppState, WebSettings};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use carekey_domain::token::OpaqueToken;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

/// The hidden form field that carries the token.
pub const FIELD: &str = "csrf";

pub fn cookie_name(settings: &WebSettings) -> &'static str {
    if settings.secure_cookies() {
        "__Host-carekey_csrf"
    } else {
        "carekey_csrf"
    }
}

/// The request's CSRF token, or a new one when it has none (set it with
/// [`cookie`]).
pub fn token_of(settings: &WebSettings, headers: &HeaderMap) -> (String, bool) {
    match CookieJar::from_headers(headers).get(cookie_name(settings)) {
        Some(cookie) if cookie.value().len() >= 32 => (cookie.value().to_owned(), false),
        _ => (OpaqueToken::generate().expose().to_owned(), true),
    }
}

pub fn cookie(settings: &WebSettings, token: &str) -> axum_extra::extract::cookie::Cookie<'static> {
    crate::session_cookie::hardened(settings, cookie_name(settings), token.to_owned())
}

/// A urlencoded form whose `csrf` field matched the CSRF cookie.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let settings = &state.settings;
        let headers = request.headers().clone();
        let expired = || pages::form_expired(settings, &headers);
        let cookie = CookieJar::from_headers(&headers)
            .get(cookie_name(settings))
            .map(|c| c.value().to_owned());
        let body = match Bytes::from_request(request, state).await {
            Ok(body) => body,
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(pages::too_large(settings, &headers))
            }
            Err(_) => return Err(expired()),
        };
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&body).map_err(|_| expired())?;
        let presented = pairs
            .iter()
            .find(|(name, _)| name == FIELD)
            .map(|(_, value)| value);
        let valid = match (cookie, presented) {
            (Some(cookie), Some(presented)) if cookie.len() >= 32 => {
                bool::from(cookie.as_bytes().ct_eq(presented.as_bytes()))
            }
            _ => false,
        };
        if !valid {
            tracing::info!("form post refused: missing or wrong CSRF token");
            return Err(expired());
        }
        let form = serde_urlencoded::from_bytes(&body).map_err(|_| expired())?;
        Ok(CsrfForm(form))
    }
}
