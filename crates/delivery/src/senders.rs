//! The sender interface every channel implements, and the set of senders a
//! worker uses.

use crate::render::Rendered;
use async_trait::async_trait;
use carekey_domain::message::{Channel, MessageRecord};
use std::sync::Arc;

/// Why a send failed, and whether trying again could help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// A refusal that will not change (an invalid address, a 5xx SMTP reply).
    pub permanent: bool,
    pub message: String,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            message: message.into(),
        }
    }
}

/// Sends one rendered message; returns the provider's id for it, if any.
#[async_trait]
pub trait Sender: Send + Sync {
    async fn send(
        &self,
        message: &MessageRecord,
        rendered: &Rendered,
    ) -> Result<Option<String>, SendError>;
}

/// One sender per channel.
#[derive(Clone)]
pub struct Senders {
    pub email: Arc<dyn Sender>,
    pub sms: Arc<dyn Sender>,
    pub voice: Arc<dyn Sender>,
}

impl Senders {
    pub fn for_channel(&self, channel: Channel) -> &Arc<dyn Sender> {
        match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
            Channel::Voice => &self.voice,
        }
    }
}

/// The HTTP client the provider senders share: a bounded wait, so a stuck
/// provider delays one message rather than the worker.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
