//! The patient pages: server-rendered askama templates that work without
//! JavaScript, in English and Spanish, on a 360 px phone and with a keyboard.
//!
//! [`PageContext`] gathers what every page needs — its language, the CSRF token,
//! the chrome around the content — and [`PageContext::render`] turns a template
//! into a response, setting the cookies the context decided on.

mod account;
mod dev;
mod enroll;
mod me;
mod recovery;
mod signin;
mod staff;

use crate::csrf;
use crate::i18n::{self, Tr, LANG_COOKIE};
use crate::state::{AppState, WebSettings};
use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar};
use carekey_domain::model::Language;
use std::convert::Infallible;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    signin::router()
        .merge(dev::router())
        .merge(account::router())
        .merge(recovery::router())
        .merge(enroll::router())
        .merge(me::router())
        .merge(staff::router())
        .route("/static/app.css", get(stylesheet))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
}

/// What surrounds every page's content.
pub struct Chrome {
    pub clinic_name: String,
    pub help_phone: String,
    /// The same page in the other language.
    pub switch_href: String,
    /// On a page behind sign-in, the header's sign-out button.
    pub sign_out: Option<SignOut>,
}

/// The sign-out form every signed-in page carries in its header.
pub struct SignOut {
    /// `/signout` for patients, `/staff/signout` for staff.
    pub action: &'static str,
    pub csrf: String,
}

/// What every page handler needs from the request.
pub struct PageContext {
    settings: Arc<WebSettings>,
    query_lang: Option<String>,
    cookie_lang: Option<String>,
    accept_language: Option<String>,
    path: String,
    pub csrf: String,
    csrf_is_new: bool,
}

impl FromRequestParts<AppState> for PageContext {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let settings = Arc::clone(&state.settings);
        let query_lang = parts.uri.query().and_then(|query| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .ok()?
                .into_iter()
                .find(|(name, _)| name == "lang")
                .map(|(_, value)| value)
        });
        let (csrf, csrf_is_new) = csrf::token_of(&settings, &parts.headers);
        Ok(Self {
            query_lang,
            cookie_lang: CookieJar::from_headers(&parts.headers)
                .get(LANG_COOKIE)
                .map(|c| c.value().to_owned()),
            accept_language: header_text(&parts.headers, header::ACCEPT_LANGUAGE),
            path: parts.uri.path().to_owned(),
            csrf,
            csrf_is_new,
            settings,
        })
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl PageContext {
    /// The page's language, given the signed-in patient's preference if any.
    pub fn tr(&self, preferred: Option<Language>) -> Tr {
        Tr::new(i18n::negotiate(
            self.query_lang.as_deref(),
            self.cookie_lang.as_deref(),
            preferred,
            self.accept_language.as_deref(),
        ))
    }

    pub fn chrome(&self, tr: &Tr) -> Chrome {
        Chrome {
            clinic_name: self.settings.clinic_name.clone(),
            help_phone: self.settings.help_phone.clone(),
            switch_href: format!("{}?lang={}", self.path, tr.other().code()),
            sign_out: None,
        }
    }

    /// The chrome of a page behind sign-in: with a sign-out button to `action`.
    pub fn signed_in_chrome(&self, tr: &Tr, action: &'static str) -> Chrome {
        Chrome {
            sign_out: Some(SignOut {
                action,
                csrf: self.csrf.clone(),
            }),
            ..self.chrome(tr)
        }
    }

    pub fn settings(&self) -> &WebSettings {
        &self.settings
    }

    /// Renders a page, with the CSRF cookie when it is new and the language
    /// cookie when `?lang=` chose one; `extra` cookies ride along.
    pub fn render(
        &self,
        status: StatusCode,
        page: &impl Template,
        extra: Vec<Cookie<'static>>,
    ) -> Response {
        let mut jar = CookieJar::new();
        if self.csrf_is_new {
            jar = jar.add(csrf::cookie(&self.settings, &self.csrf));
        }
        if let Some(lang) = self.query_lang.as_deref().and_then(Language::from_tag) {
            let mut cookie = Cookie::new(LANG_COOKIE, lang.code());
            cookie.set_path("/");
            cookie.set_same_site(axum_extra::extract::cookie::SameSite::Lax);
            jar = jar.add(cookie);
        }
        for cookie in extra {
            jar = jar.add(cookie);
        }
        match page.render() {
            Ok(html) => (status, jar, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(%error, "page failed to render");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// A page that says one thing and offers one way on.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub tr: Tr,
    pub chrome: Chrome,
    pub title: String,
    pub body: String,
    pub next_href: String,
    pub next_label: String,
}

impl MessagePage {
    pub fn new(
        tr: Tr,
        chrome: Chrome,
        title_key: &str,
        body_key: &str,
        next_href: &str,
        next_key: &str,
    ) -> Self {
        Self {
            title: tr.t(title_key),
            body: tr.t(body_key),
            next_href: next_href.to_owned(),
            next_label: tr.t(next_key),
            tr,
            chrome,
        }
    }
}

/// A language and chrome for responses made outside a page handler.
fn bare_context(settings: &WebSettings, headers: &HeaderMap) -> (Tr, Chrome) {
    let cookie_lang = CookieJar::from_headers(headers)
        .get(LANG_COOKIE)
        .map(|c| c.value().to_owned());
    let accept = header_text(headers, header::ACCEPT_LANGUAGE);
    let tr = Tr::new(i18n::negotiate(
        None,
        cookie_lang.as_deref(),
        None,
        accept.as_deref(),
    ));
    let chrome = Chrome {
        clinic_name: settings.clinic_name.clone(),
        help_phone: settings.help_phone.clone(),
        switch_href: format!("/signin?lang={}", tr.other().code()),
        sign_out: None,
    };
    (tr, chrome)
}

fn html_response(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => status.into_response(),
    }
}

/// The page shown when a form post's CSRF token is missing or wrong.
pub fn form_expired(settings: &WebSettings, headers: &HeaderMap) -> Response {
    let (tr, chrome) = bare_context(settings, headers);
    let page = MessagePage::new(
        tr,
        chrome,
        "form-expired-title",
        "form-expired-body",
        "/signin",
        "back-to-signin",
    );
    html_response(StatusCode::FORBIDDEN, &page)
}

/// The page for a form post far bigger than any real one (a 10 MB password).
pub fn too_large(settings: &WebSettings, headers: &HeaderMap) -> Response {
    let (tr, chrome) = bare_context(settings, headers);
    let page = MessagePage::new(
        tr,
        chrome,
        "too-large-title",
        "too-large-body",
        "/signin",
        "back-to-signin",
    );
    html_response(StatusCode::PAYLOAD_TOO_LARGE, &page)
}

/// The page for a staff member whose role does not reach a page.
pub fn role_forbidden(settings: &WebSettings, headers: &HeaderMap) -> Response {
    let (tr, chrome) = bare_context(settings, headers);
    let page = MessagePage::new(
        tr,
        chrome,
        "staff-forbidden-title",
        "staff-forbidden-body",
        "/staff",
        "staff-search-title",
    );
    html_response(StatusCode::FORBIDDEN, &page)
}

/// The page for "something broke", never showing what.
pub fn internal_error(settings: &WebSettings, headers: &HeaderMap) -> Response {
    let (tr, chrome) = bare_context(settings, headers);
    let page = MessagePage::new(
        tr,
        chrome,
        "error-title",
        "error-body",
        "/signin",
        "back-to-signin",
    );
    html_response(StatusCode::INTERNAL_SERVER_ERROR, &page)
}

/// Unknown paths: a page for browsers, a problem document for everyone else.
pub async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: HeaderMap,
) -> Response {
    nothing_here(&state, &headers, StatusCode::NOT_FOUND)
}

/// A served path asked with the wrong method (a typed-in `/signout`): the
/// same kind page for browsers, a problem document for everyone else.
pub async fn method_not_allowed(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: HeaderMap,
) -> Response {
    nothing_here(&state, &headers, StatusCode::METHOD_NOT_ALLOWED)
}

fn nothing_here(state: &AppState, headers: &HeaderMap, status: StatusCode) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return if status == StatusCode::METHOD_NOT_ALLOWED {
            crate::error::ApiError::MethodNotAllowed.into_response()
        } else {
            crate::error::ApiError::NoSuchRoute.into_response()
        };
    }
    let (tr, chrome) = bare_context(&state.settings, headers);
    let page = MessagePage::new(
        tr,
        chrome,
        "not-found-title",
        "not-found-body",
        "/signin",
        "back-to-signin",
    );
    html_response(status, &page)
}

/// A `303 See Other` to `location`, the answer to a successful form post.
pub fn see_other(location: &'static str, jar: CookieJar) -> Response {
    let mut response = (StatusCode::SEE_OTHER, jar).into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    response
}
