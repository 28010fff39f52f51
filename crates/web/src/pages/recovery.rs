//! The recovery pages: `/forgot-password`, `/forgot-username`, the
//! confirmation and code page `/recover/{flow_id}`, `/reset` (the link's
//! token moves into a cookie scoped to `/reset`, so it leaves the address bar),
//! and `/have-a-code` for a code from clinic staff.

use super::account::{rule_lines, RuleLine};
use super::{internal_error, see_other, Chrome, MessagePage, PageContext};
use crate::client::Client;
use crate::csrf::CsrfForm;
use crate::i18n::Tr;
use crate::session_cookie::ScopedTokenCookie;
use crate::state::{AppState, WebSettings};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use carekey_domain::message::Channel;
use carekey_domain::password_rules::Rule;
use carekey_domain::policy::Policy;
use carekey_domain::ports::TokenState;
use carekey_domain::recovery::Purpose;
use carekey_domain::secret::Password;
use carekey_domain::token::OpaqueToken;
use carekey_service::recovery::{RecoveryRequest, ResetGrant};
use carekey_service::ServiceError;
use fluent_templates::fluent_bundle::FluentValue;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/forgot-password",
            get(forgot_password).post(forgot_password_submit),
        )
        .route(
            "/forgot-username",
            get(forgot_username).post(forgot_username_submit),
        )
        .route("/recover/{flow_id}", get(recover_page).post(recover_submit))
        .route("/reset", get(reset_page).post(reset_submit))
        .route("/reset/choose", post(reset_choose))
        .route("/reset/renew", post(reset_renew))
        .route("/reset/check", post(reset_check))
        .route("/have-a-code", get(have_code).post(have_code_submit))
}

// ---------------------------------------------------------------------------
// The reset cookie

/// The cookie that holds a reset token between the link and the form. Scoped
/// to `/reset`, so no other page ever receives it.
const RESET_COOKIE: ScopedTokenCookie = ScopedTokenCookie {
    name: "carekey_reset",
    secure_name: "__Secure-carekey_reset",
    path: "/reset",
};

fn reset_cookie(settings: &WebSettings, token: &str) -> Cookie<'static> {
    RESET_COOKIE.carrying(settings, token)
}

fn reset_cookie_removal(settings: &WebSettings) -> Cookie<'static> {
    RESET_COOKIE.removal(settings)
}

fn presented_reset_token(settings: &WebSettings, headers: &HeaderMap) -> Option<OpaqueToken> {
    RESET_COOKIE.presented(settings, headers)
}

/// Hands a granted reset token to the browser and sends it to the form.
fn go_to_reset(settings: &WebSettings, token: &OpaqueToken) -> Response {
    see_other(
        "/reset",
        CookieJar::new().add(reset_cookie(settings, token.expose())),
    )
}

// ---------------------------------------------------------------------------
// Shared form parts

/// A channel the patient may pick, worded for the page.
pub struct ChannelChoice {
    pub value: &'static str,
    pub label: String,
    pub checked: bool,
}

fn channel_choices(tr: &Tr, policy: &Policy, purpose: Purpose, chosen: &str) -> Vec<ChannelChoice> {
    let offered: Vec<&'static str> = ["email", "sms", "voice"]
        .into_iter()
        .filter(|c| policy.recovery.channels.iter().any(|p| p == c))
        .collect();
    let chosen = if offered.contains(&chosen) {
        chosen
    } else {
        offered.first().copied().unwrap_or("email")
    };
    offered
        .into_iter()
        .map(|value| ChannelChoice {
            value,
            label: tr.t(&format!("channel-{}-{}", purpose.as_str(), value)),
            checked: value == chosen,
        })
        .collect()
}

/// A date of birth typed as three boxes (easier than a date picker for many);
/// forms take it flattened from `birth_month`, `birth_day` and `birth_year`.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct BirthDate {
    #[serde(rename = "birth_month")]
    pub month: String,
    #[serde(rename = "birth_day")]
    pub day: String,
    #[serde(rename = "birth_year")]
    pub year: String,
}

impl BirthDate {
    fn is_blank(&self) -> bool {
        self.month.trim().is_empty() && self.day.trim().is_empty() && self.year.trim().is_empty()
    }

    /// `YYYY-MM-DD`, or `None` when any part is missing or not a number.
    pub fn iso(&self) -> Option<String> {
        let number = |text: &str| text.trim().parse::<u32>().ok();
        let (month, day, year) = (
            number(&self.month)?,
            number(&self.day)?,
            number(&self.year)?,
        );
        (year >= 1000).then(|| format!("{year:04}-{month:02}-{day:02}"))
    }
}

/// Which identifier fields the policy asks for.
pub struct IdentifierFields {
    /// One box for a username, an email or a phone (every combination is one of those alone).
    pub single: bool,
    pub username: bool,
    pub email: bool,
    pub phone: bool,
    pub date_of_birth: bool,
    /// What to fill in, said plainly, when the fields are separate.
    pub hint: String,
}

fn identifier_fields(tr: &Tr, policy: &Policy, purpose: Purpose) -> IdentifierFields {
    let combos = &policy.recovery.identifiers;
    let uses = |name: &str| combos.iter().flatten().any(|i| i == name);
    let date_of_birth = uses("date_of_birth");
    if purpose == Purpose::Username {
        return IdentifierFields {
            single: true,
            username: false,
            email: true,
            phone: true,
            date_of_birth,
            hint: String::new(),
        };
    }
    let single = combos
        .iter()
        .all(|combo| combo.len() == 1 && combo[0] != "date_of_birth");
    let hint = combos
        .iter()
        .map(|combo| {
            combo
                .iter()
                .map(|i| tr.t(&format!("identifier-{i}")))
                .collect::<Vec<_>>()
                .join(&format!(" {} ", tr.t("word-and")))
        })
        .collect::<Vec<_>>()
        .join(&format!(" {} ", tr.t("word-or")));
    IdentifierFields {
        single,
        username: uses("username"),
        email: uses("email"),
        phone: uses("phone"),
        date_of_birth,
        hint: tr.t1("forgot-fill-in", "what", &hint),
    }
}

/// Reads a single box as an email (has `@`), a phone (digits and phone
/// punctuation only) or a username.
fn classify(typed: &str) -> (Option<String>, Option<String>, Option<String>) {
    let typed = typed.trim();
    if typed.is_empty() {
        return (None, None, None);
    }
    if typed.contains('@') {
        return (None, Some(typed.to_owned()), None);
    }
    let phone_like = typed.chars().filter(char::is_ascii_digit).count() >= 7
        && typed
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if phone_like {
        (None, None, Some(typed.to_owned()))
    } else {
        (Some(typed.to_owned()), None, None)
    }
}

// ---------------------------------------------------------------------------
// /forgot-password and /forgot-username

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    /// `password` or `username`.
    purpose: &'static str,
    action: &'static str,
    fields: IdentifierFields,
    form: ForgotForm,
    birth: BirthDate,
    channels: Vec<ChannelChoice>,
    problem: Option<String>,
}

/// The forgot-password or forgot-username form as typed.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct ForgotForm {
    identifier: String,
    username: String,
    email: String,
    phone: String,
    #[serde(flatten)]
    birth: BirthDate,
    channel: String,
}

impl ForgotPage {
    /// The page's words for its purpose (`forgot-password-…`, `forgot-username-…`).
    fn words(&self, suffix: &str) -> String {
        self.tr.t(&format!("forgot-{}-{suffix}", self.purpose))
    }
}

async fn render_forgot(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    purpose: Purpose,
    status: StatusCode,
    form: ForgotForm,
    problem: Option<&str>,
) -> Response {
    let policy = match state.services.store.load_policy().await {
        Ok(policy) => policy,
        Err(_) => return internal_error(&state.settings, headers),
    };
    let tr = ctx.tr(None);
    let page = ForgotPage {
        chrome: ctx.chrome(&tr),
        csrf: ctx.csrf.clone(),
        purpose: purpose.as_str(),
        action: match purpose {
            Purpose::Username => "/forgot-username",
            Purpose::Password | Purpose::Contact => "/forgot-password",
        },
        fields: identifier_fields(&tr, &policy, purpose),
        channels: channel_choices(&tr, &policy, purpose, &form.channel),
        birth: form.birth.clone(),
        form,
        problem: problem.map(|key| tr.t(key)),
        tr,
    };
    ctx.render(status, &page, vec![])
}

#[derive(Deserialize, Default)]
struct ForgotQuery {
    username: Option<String>,
}

async fn forgot_password(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Query(query): Query<ForgotQuery>,
) -> Response {
    let username = query.username.unwrap_or_default();
    let form = ForgotForm {
        identifier: username.clone(),
        username,
        ..ForgotForm::default()
    };
    let ok = StatusCode::OK;
    render_forgot(&state, &ctx, &headers, Purpose::Password, ok, form, None).await
}

async fn forgot_username(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
) -> Response {
    let (ok, form) = (StatusCode::OK, ForgotForm::default());
    render_forgot(&state, &ctx, &headers, Purpose::Username, ok, form, None).await
}

async fn forgot_password_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> Response {
    submit_forgot(state, ctx, headers, client, form, Purpose::Password).await
}

async fn forgot_username_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<ForgotForm>,
) -> Response {
    submit_forgot(state, ctx, headers, client, form, Purpose::Username).await
}

async fn submit_forgot(
    state: AppState,
    ctx: PageContext,
    headers: HeaderMap,
    client: carekey_service::ClientInfo,
    form: ForgotForm,
    purpose: Purpose,
) -> Response {
    let birth = form.birth.clone();
    let date_of_birth = if birth.is_blank() {
        None
    } else {
        match birth.iso() {
            Some(date) => Some(date),
            None => {
                return render_forgot(
                    &state,
                    &ctx,
                    &headers,
                    purpose,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form,
                    Some("forgot-bad-birth-date"),
                )
                .await
            }
        }
    };
    let (mut username, mut email, mut phone) = classify(&form.identifier);
    let typed = |value: &str| Some(value.trim().to_owned()).filter(|v| !v.is_empty());
    username = username.or_else(|| typed(&form.username));
    email = email.or_else(|| typed(&form.email));
    phone = phone.or_else(|| typed(&form.phone));
    if purpose == Purpose::Username {
        username = None;
    }
    let channel = match form.channel.as_str() {
        "sms" => Channel::Sms,
        "voice" => Channel::Voice,
        _ => Channel::Email,
    };
    let tr = ctx.tr(None);
    let request = RecoveryRequest {
        purpose,
        channel,
        username,
        email,
        phone,
        date_of_birth,
        language: Some(tr.lang),
        fallback_language: None,
    };
    match state.services.request_recovery(&request, &client).await {
        Ok(started) => see_other_to(&format!("/recover/{}", started.flow_id)),
        Err(ServiceError::InvalidRequest(fields)) => {
            let key = if fields.contains_key("date_of_birth") {
                "forgot-bad-birth-date"
            } else if fields.contains_key("identifiers") {
                "forgot-missing"
            } else {
                "forgot-unreadable"
            };
            render_forgot(
                &state,
                &ctx,
                &headers,
                purpose,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                Some(key),
            )
            .await
        }
        Err(ServiceError::RateLimited { .. }) => too_many(&ctx),
        Err(error) => {
            tracing::error!(%error, "recovery request page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

/// A `303` to a path built at run time.
fn see_other_to(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn too_many(ctx: &PageContext) -> Response {
    let tr = ctx.tr(None);
    let page = MessagePage::new(
        tr,
        ctx.chrome(&tr),
        "too-many-title",
        "too-many-body",
        "/signin",
        "back-to-signin",
    );
    ctx.render(StatusCode::TOO_MANY_REQUESTS, &page, vec![])
}

// ---------------------------------------------------------------------------
// /recover/{flow_id}: where to look, and the code

#[derive(Template)]
#[template(path = "recover.html")]
struct RecoverPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    flow_id: String,
    title: String,
    sent: String,
    wait: String,
    takes_code: bool,
    minutes_text: String,
    problem: Option<String>,
    email_channel: bool,
}

async fn recover_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Path(flow_id): Path<String>,
) -> Response {
    show_flow(&state, &ctx, &headers, &flow_id, StatusCode::OK, None).await
}

async fn show_flow(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    flow_id: &str,
    status: StatusCode,
    problem: Option<String>,
) -> Response {
    let flow = match state.services.recovery_flow(flow_id).await {
        Ok(flow) => flow,
        Err(error) => {
            tracing::error!(%error, "recovery page failed");
            return internal_error(&state.settings, headers);
        }
    };
    let tr = ctx.tr(None);
    let Some(flow) = flow.filter(|f| f.open) else {
        return code_expired(ctx);
    };
    let channel = flow.channel.as_str();
    let purpose = flow.purpose.as_str();
    let minutes = (flow.expires_at - state.services.clock.now())
        .num_minutes()
        .max(1);
    let page = RecoverPage {
        chrome: ctx.chrome(&tr),
        csrf: ctx.csrf.clone(),
        flow_id: flow_id.to_owned(),
        title: tr.t(&format!("recover-title-{channel}")),
        sent: tr.t(&format!("recover-sent-{purpose}-{channel}")),
        wait: tr.t(&format!("recover-wait-{channel}")),
        takes_code: flow.purpose == Purpose::Password,
        minutes_text: tr.with(
            "recover-code-minutes",
            &[("minutes", FluentValue::from(minutes))],
        ),
        problem,
        email_channel: flow.channel == Channel::Email,
        tr,
    };
    ctx.render(status, &page, vec![])
}

fn code_expired(ctx: &PageContext) -> Response {
    let tr = ctx.tr(None);
    let page = MessagePage::new(
        tr,
        ctx.chrome(&tr),
        "code-expired-title",
        "code-expired-body",
        "/forgot-password",
        "start-again",
    );
    ctx.render(StatusCode::GONE, &page, vec![])
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

#[derive(Template)]
#[template(path = "choose_account.html")]
struct ChooseAccountPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    accounts: Vec<(String, String)>,
}

async fn recover_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    Path(flow_id): Path<String>,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let outcome = state
        .services
        .verify_recovery_code(&flow_id, &form.code, &client)
        .await;
    let tr = ctx.tr(None);
    match outcome {
        Ok(grants) => granted(&state, &ctx, grants),
        Err(ServiceError::InvalidCode { attempts_left }) => {
            let left = attempts_left.unwrap_or(0);
            if left == 0 {
                return code_expired(&ctx);
            }
            let problem = tr.with("recover-wrong-code", &[("left", FluentValue::from(left))]);
            show_flow(
                &state,
                &ctx,
                &headers,
                &flow_id,
                StatusCode::BAD_REQUEST,
                Some(problem),
            )
            .await
        }
        Err(ServiceError::FlowExpired) => code_expired(&ctx),
        Err(error) => {
            tracing::error!(%error, "code check page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

/// After a code: straight to the form for one account, or a choice for several.
fn granted(state: &AppState, ctx: &PageContext, grants: Vec<ResetGrant>) -> Response {
    match grants.as_slice() {
        [] => code_expired(ctx),
        [only] => go_to_reset(&state.settings, &only.reset_token),
        _ => {
            let tr = ctx.tr(None);
            let page = ChooseAccountPage {
                chrome: ctx.chrome(&tr),
                csrf: ctx.csrf.clone(),
                accounts: grants
                    .into_iter()
                    .map(|g| (g.username, g.reset_token.expose().to_owned()))
                    .collect(),
                tr,
            };
            ctx.render(StatusCode::OK, &page, vec![])
        }
    }
}

#[derive(Deserialize)]
struct ChooseForm {
    #[serde(default)]
    token: String,
}

async fn reset_choose(
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<ChooseForm>,
) -> Response {
    go_to_reset(&state.settings, &OpaqueToken::from_presented(&form.token))
}

// ---------------------------------------------------------------------------
// /reset

#[derive(Deserialize)]
struct ResetQuery {
    token: Option<String>,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    username: String,
    problem: Option<String>,
    rules: Vec<RuleLine>,
    any_failed: bool,
}

#[derive(Template)]
#[template(path = "link_expired.html")]
struct LinkExpiredPage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    /// The token is known, so one click can send a fresh link.
    renewable: bool,
}

async fn reset_page(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Query(query): Query<ResetQuery>,
) -> Response {
    // The link itself: never used here (mail scanners open links), only moved
    // into the cookie so the token leaves the address bar and history.
    if let Some(token) = query.token.filter(|t| !t.is_empty() && t.len() <= 128) {
        return go_to_reset(&state.settings, &OpaqueToken::from_presented(&token));
    }
    render_reset(&state, &ctx, &headers, StatusCode::OK, None, &[]).await
}

async fn render_reset(
    state: &AppState,
    ctx: &PageContext,
    headers: &HeaderMap,
    status: StatusCode,
    problem: Option<&str>,
    failed: &[Rule],
) -> Response {
    let token = presented_reset_token(&state.settings, headers);
    let record = match &token {
        Some(token) => match state.services.reset_token(token).await {
            Ok(record) => record,
            Err(_) => return internal_error(&state.settings, headers),
        },
        None => None,
    };
    let tr = ctx.tr(None);
    let account = record
        .as_ref()
        .filter(|r| r.state == TokenState::Usable)
        .and_then(|r| r.account);
    let Some(account) = account else {
        let page = LinkExpiredPage {
            chrome: ctx.chrome(&tr),
            csrf: ctx.csrf.clone(),
            renewable: record.is_some(),
            tr,
        };
        return ctx.render(StatusCode::GONE, &page, vec![]);
    };
    let (policy, context) = match (
        state.services.store.load_policy().await,
        state.services.store.password_context(account, 0).await,
    ) {
        (Ok(policy), Ok(context)) => (policy, context),
        _ => return internal_error(&state.settings, headers),
    };
    let page = ResetPage {
        chrome: ctx.chrome(&tr),
        csrf: ctx.csrf.clone(),
        username: context.personal.username.unwrap_or_default(),
        problem: problem.map(|key| tr.t(key)),
        rules: rule_lines(&tr, &policy.password, failed),
        any_failed: !failed.is_empty(),
        tr,
    };
    ctx.render(status, &page, vec![])
}

/// The new-password form. (No `Debug`: it holds passwords.)
#[derive(Deserialize)]
struct NewPasswordForm {
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_confirm: String,
}

async fn reset_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<NewPasswordForm>,
) -> Response {
    let Some(token) = presented_reset_token(&state.settings, &headers) else {
        return render_reset(&state, &ctx, &headers, StatusCode::GONE, None, &[]).await;
    };
    let outcome = state
        .services
        .reset_password(
            &token,
            &Password::new(&form.new_password),
            &Password::new(&form.new_password_confirm),
            &client,
        )
        .await;
    let again = |status, problem, failed: Vec<Rule>| {
        let (state, ctx, headers) = (&state, &ctx, &headers);
        async move { render_reset(state, ctx, headers, status, Some(problem), &failed).await }
    };
    match outcome {
        Ok(_) => see_other(
            "/signin?reset=1",
            CookieJar::new().add(reset_cookie_removal(&state.settings)),
        ),
        Err(ServiceError::PasswordMismatch) => {
            again(StatusCode::BAD_REQUEST, "pw-mismatch", vec![]).await
        }
        Err(ServiceError::PasswordPolicy(rules)) => {
            again(StatusCode::UNPROCESSABLE_ENTITY, "pw-fix", rules).await
        }
        Err(ServiceError::TokenExpired) => {
            render_reset(&state, &ctx, &headers, StatusCode::GONE, None, &[]).await
        }
        Err(error) => {
            tracing::error!(%error, "reset page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

#[derive(Deserialize)]
struct RenewForm {}

async fn reset_renew(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(_): CsrfForm<RenewForm>,
) -> Response {
    let Some(token) = presented_reset_token(&state.settings, &headers) else {
        return see_other("/forgot-password", CookieJar::new());
    };
    let tr = ctx.tr(None);
    match state
        .services
        .renew_reset_link(&token, Some(tr.lang), &client)
        .await
    {
        Ok(Some(started)) => {
            let mut response = see_other_to(&format!("/recover/{}", started.flow_id));
            let removal = reset_cookie_removal(&state.settings);
            if let Ok(value) = HeaderValue::from_str(&removal.to_string()) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => see_other("/forgot-password", CookieJar::new()),
        Err(ServiceError::RateLimited { .. }) => too_many(&ctx),
        Err(error) => {
            tracing::error!(%error, "renewing a reset link failed");
            internal_error(&state.settings, &headers)
        }
    }
}

/// A password being typed on the reset page. (No `Debug`: it holds a password.)
#[derive(Deserialize)]
struct CheckBody {
    password: String,
}

/// Live feedback for the reset page's password field, with the account's own
/// rules: the reset cookie (scoped to `/reset`) names the account.
async fn reset_check(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Json(body): Json<CheckBody>,
) -> Response {
    let account = match presented_reset_token(&state.settings, &headers) {
        Some(token) => state
            .services
            .reset_token_account(&token)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let tr = ctx.tr(None);
    match state
        .services
        .check_password(&Password::new(&body.password), account)
        .await
    {
        Ok((assessment, policy)) => Json(serde_json::json!({
            "ok": assessment.violations.is_empty(),
            "violations": crate::api::passwords::violations(&assessment.violations, tr, &policy),
            "strength": assessment.strength,
        }))
        .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

// ---------------------------------------------------------------------------
// /have-a-code

#[derive(Template)]
#[template(path = "have_code.html")]
struct HaveCodePage {
    tr: Tr,
    chrome: Chrome,
    csrf: String,
    code: String,
    birth: BirthDate,
    problem: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HaveCodeForm {
    code: String,
    #[serde(flatten)]
    birth: BirthDate,
}

fn render_have_code(
    ctx: &PageContext,
    status: StatusCode,
    form: HaveCodeForm,
    problem: Option<&str>,
) -> Response {
    let tr = ctx.tr(None);
    let page = HaveCodePage {
        chrome: ctx.chrome(&tr),
        csrf: ctx.csrf.clone(),
        code: form.code.chars().take(32).collect(),
        birth: form.birth,
        problem: problem.map(|key| tr.t(key)),
        tr,
    };
    ctx.render(status, &page, vec![])
}

async fn have_code(ctx: PageContext) -> Response {
    render_have_code(&ctx, StatusCode::OK, HaveCodeForm::default(), None)
}

async fn have_code_submit(
    State(state): State<AppState>,
    ctx: PageContext,
    headers: HeaderMap,
    Client(client): Client,
    CsrfForm(form): CsrfForm<HaveCodeForm>,
) -> Response {
    let Some(date_of_birth) = form.birth.iso() else {
        return render_have_code(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            Some("forgot-bad-birth-date"),
        );
    };
    match state
        .services
        .redeem_staff_code(&form.code, &date_of_birth, &client)
        .await
    {
        Ok(grants) => granted(&state, &ctx, grants),
        Err(ServiceError::InvalidCode { .. }) => {
            render_have_code(&ctx, StatusCode::BAD_REQUEST, form, Some("have-code-wrong"))
        }
        Err(ServiceError::InvalidRequest(_)) => render_have_code(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            Some("forgot-bad-birth-date"),
        ),
        Err(ServiceError::RateLimited { .. }) => too_many(&ctx),
        Err(error) => {
            tracing::error!(%error, "staff code page failed");
            internal_error(&state.settings, &headers)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_box_reads_as_email_phone_or_username() {
        assert_eq!(
            classify(" Alex@Example.com "),
            (None, Some("Alex@Example.com".into()), None)
        );
        assert_eq!(
            classify("(210) 555-0142"),
            (None, None, Some("(210) 555-0142".into()))
        );
        assert_eq!(
            classify("+1 210 555 0142"),
            (None, None, Some("+1 210 555 0142".into()))
        );
        assert_eq!(
            classify("alex.rivera"),
            (Some("alex.rivera".into()), None, None)
        );
        assert_eq!(
            classify("maria2024"),
            (Some("maria2024".into()), None, None)
        );
        assert_eq!(classify("   "), (None, None, None));
    }

    #[test]
    fn a_birth_date_needs_all_three_parts() {
        let date = |m: &str, d: &str, y: &str| BirthDate {
            month: m.into(),
            day: d.into(),
            year: y.into(),
        };
        assert_eq!(date("1", "31", "1970").iso().as_deref(), Some("1970-01-31"));
        assert_eq!(
            date(" 12", "5 ", "2001").iso().as_deref(),
            Some("2001-12-05")
        );
        assert_eq!(date("", "31", "1970").iso(), None);
        assert_eq!(
            date("1", "31", "70").iso(),
            None,
            "a two-digit year is ambiguous"
        );
        assert!(date("", " ", "").is_blank());
    }
}
