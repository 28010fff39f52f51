//! The development sender: each email becomes an `.eml` file and each text or
//! call a `.json` file in the data folder, so a new user can read what a
//! patient would receive (listed at `/dev/mailbox` when `dev = true`).

use crate::render::Rendered;
use crate::senders::{SendError, Sender};
use crate::smtp::build_email;
use async_trait::async_trait;
use carekey_domain::message::MessageRecord;
use lettre::message::Mailbox;
use std::path::PathBuf;

pub struct FileSender {
    dir: PathBuf,
    from: Mailbox,
}

impl FileSender {
    pub fn new(dir: PathBuf, from: &str) -> Result<Self, String> {
        let from = from
            .parse()
            .map_err(|e| format!("email.from is not an address: {e}"))?;
        Ok(Self { dir, from })
    }
}

#[async_trait]
impl Sender for FileSender {
    async fn send(
        &self,
        message: &MessageRecord,
        rendered: &Rendered,
    ) -> Result<Option<String>, SendError> {
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| {
            SendError::transient(format!("cannot create {}: {e}", self.dir.display()))
        })?;
        let stamp = message.created_at.format("%Y%m%dT%H%M%S");
        let (name, bytes) = match rendered {
            Rendered::Email { .. } => {
                let (email, _) = build_email(&self.from, message, rendered)?;
                (
                    format!("{stamp}-{}-email.eml", message.id),
                    email.formatted(),
                )
            }
            Rendered::Sms { body } => {
                let json =
                    serde_json::json!({ "channel": "sms", "to": message.recipient, "body": body });
                (
                    format!("{stamp}-{}-sms.json", message.id),
                    json.to_string().into_bytes(),
                )
            }
            Rendered::Voice { twiml } => {
                let json = serde_json::json!({ "channel": "voice", "to": message.recipient, "twiml": twiml });
                (
                    format!("{stamp}-{}-voice.json", message.id),
                    json.to_string().into_bytes(),
                )
            }
        };
        // Named by the message alone and renamed into place whole: a resend
        // after a crash replaces the same file, never adds a second or half one.
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        tokio::fs::write(&partial, bytes).await.map_err(|e| {
            SendError::transient(format!("cannot write {}: {e}", partial.display()))
        })?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| SendError::transient(format!("cannot write {}: {e}", path.display())))?;
        Ok(Some(name))
    }
}
