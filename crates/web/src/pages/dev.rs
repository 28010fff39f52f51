//! `/dev/mailbox`: in development (`dev = true`), the messages the file senders
//! wrote, so a newcomer can read the reset email a patient would get.

use super::{not_found, Chrome, PageContext};
use crate::i18n::Tr;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dev/mailbox", get(mailbox))
        .route("/dev/mailbox/{name}", get(mailbox_file))
}

#[derive(Template)]
#[template(path = "mailbox.html")]
struct MailboxPage {
    tr: Tr,
    chrome: Chrome,
    folder: String,
    files: Vec<String>,
}

async fn mailbox(State(state): State<AppState>, ctx: PageContext, headers: HeaderMap) -> Response {
    if !state.settings.dev {
        return not_found(State(state), headers).await;
    }
    let dir = &state.settings.mailbox_dir;
    let mut files: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| is_message_file(name))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort_unstable_by(|a, b| b.cmp(a));
    let tr = ctx.tr(None);
    let page = MailboxPage {
        chrome: ctx.chrome(&tr),
        tr,
        folder: dir.display().to_string(),
        files,
    };
    ctx.render(StatusCode::OK, &page, vec![])
}

fn is_message_file(name: &str) -> bool {
    !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && (name.ends_with(".eml") || name.ends_with(".json"))
}

async fn mailbox_file(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !state.settings.dev || !is_message_file(&name) {
        return not_found(State(state), headers).await;
    }
    match std::fs::read_to_string(state.settings.mailbox_dir.join(&name)) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Err(_) => not_found(State(state), headers).await,
    }
}
