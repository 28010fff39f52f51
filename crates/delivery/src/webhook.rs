//! A clinic's own SMS/voice gateway: CareKey POSTs a JSON document signed with
//! HMAC-SHA256 (`X-CareKey-Signature: sha256=<hex>`) over the exact body.

use crate::render::Rendered;
use crate::senders::{SendError, Sender};
use async_trait::async_trait;
use carekey_domain::message::MessageRecord;
use hmac::{Hmac, Mac};

pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    secret: String,
}

impl WebhookSender {
    pub fn new(url: String, secret: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url,
            secret,
        })
    }
}

/// `sha256=<hex HMAC-SHA256 of body>` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[async_trait]
impl Sender for WebhookSender {
    async fn send(
        &self,
        message: &MessageRecord,
        rendered: &Rendered,
    ) -> Result<Option<String>, SendError> {
        let mut document = serde_json::json!({
            "id": message.id,
            "channel": message.channel.as_str(),
            "to": message.recipient,
            "language": message.language.code(),
        });
        match rendered {
            Rendered::Sms { body } => document["body"] = body.clone().into(),
            Rendered::Voice { twiml } => document["twiml"] = twiml.clone().into(),
            Rendered::Email { .. } => {
                return Err(SendError::permanent(
                    "the webhook carries texts and calls only",
                ))
            }
        }
        let body = document.to_string().into_bytes();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-carekey-signature", signature(&self.secret, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("gateway unreachable: {e}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(Some(message.id.to_string()))
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::transient(format!("gateway answered {status}")))
        } else {
            Err(SendError::permanent(format!("gateway answered {status}")))
        }
    }
}
