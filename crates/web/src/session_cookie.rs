//! The session cookies of API.md: `carekey_session` for patients, `__Host-`
//! prefixed and `Secure` when the portal is served over https; always HttpOnly
//! and SameSite=Lax. API clients may send `Authorization: Bearer` instead.

use crate::state::WebSettings;
use axum::http::{header, HeaderMap};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use carekey_domain::token::OpaqueToken;

/// The patient session cookie's name under these settings.
pub fn patient_cookie_name(settings: &WebSettings) -> &'static str {
    if settings.secure_cookies() {
        "__Host-carekey_session"
    } else {
        "carekey_session"
    }
}

/// A cookie with the attributes every CareKey cookie shares.
pub fn hardened(settings: &WebSettings, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(settings.secure_cookies())
        .build()
}

/// The cookie that carries a new patient session.
pub fn patient_session(settings: &WebSettings, token: &OpaqueToken) -> Cookie<'static> {
    hardened(
        settings,
        patient_cookie_name(settings),
        token.expose().to_owned(),
    )
}

/// A cookie that removes the patient session from the browser.
pub fn patient_session_removal(settings: &WebSettings) -> Cookie<'static> {
    let mut cookie = hardened(settings, patient_cookie_name(settings), String::new());
    cookie.make_removal();
    cookie
}

/// The session token a request presents: the Bearer header first, else the cookie.
pub fn presented_patient_token(settings: &WebSettings, headers: &HeaderMap) -> Option<OpaqueToken> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(OpaqueToken::from_presented);
    bearer
        .or_else(|| {
            CookieJar::from_headers(headers)
                .get(patient_cookie_name(settings))
                .map(|c| OpaqueToken::from_presented(c.value()))
        })
        .filter(|token| !token.expose().is_empty() && token.expose().len() <= 128)
}

/// The staff session cookie's name under these settings.
pub fn staff_cookie_name(settings: &WebSettings) -> &'static str {
    if settings.secure_cookies() {
        "__Host-carekey_staff"
    } else {
        "carekey_staff"
    }
}

/// The cookie that carries a new staff session.
pub fn staff_session(settings: &WebSettings, token: &OpaqueToken) -> Cookie<'static> {
    hardened(
        settings,
        staff_cookie_name(settings),
        token.expose().to_owned(),
    )
}

/// The staff session token a request presents: the Bearer header first, else the cookie.
pub fn presented_staff_token(settings: &WebSettings, headers: &HeaderMap) -> Option<OpaqueToken> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(OpaqueToken::from_presented);
    bearer
        .or_else(|| {
            CookieJar::from_headers(headers)
                .get(staff_cookie_name(settings))
                .map(|c| OpaqueToken::from_presented(c.value()))
        })
        .filter(|token| !token.expose().is_empty() && token.expose().len() <= 128)
}

/// A cookie that carries a one-step token (a reset or an enrollment) to the
/// pages under one path only: `HttpOnly`, `SameSite=Lax`, and over https
/// `Secure` with the `__Secure-` prefix (`__Host-` would need path `/`).
#[derive(Debug, Clone, Copy)]
pub struct ScopedTokenCookie {
    /// The name without prefix, e.g. `carekey_reset`.
    pub name: &'static str,
    pub secure_name: &'static str,
    pub path: &'static str,
}

impl ScopedTokenCookie {
    fn name(&self, settings: &WebSettings) -> &'static str {
        if settings.secure_cookies() {
            self.secure_name
        } else {
            self.name
        }
    }

    pub fn carrying(&self, settings: &WebSettings, token: &str) -> Cookie<'static> {
        Cookie::build((self.name(settings), token.to_owned()))
            .path(self.path)
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(settings.secure_cookies())
            .build()
    }

    pub fn removal(&self, settings: &WebSettings) -> Cookie<'static> {
        let mut cookie = self.carrying(settings, "");
        cookie.make_removal();
        cookie
    }

    pub fn presented(&self, settings: &WebSettings, headers: &HeaderMap) -> Option<OpaqueToken> {
        CookieJar::from_headers(headers)
            .get(self.name(settings))
            .map(|c| OpaqueToken::from_presented(c.value()))
            .filter(|t| !t.expose().is_empty() && t.expose().len() <= 128)
    }
}
