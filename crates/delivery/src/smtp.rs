//! Email over SMTP with lettre: `smtp://` (plain, or STARTTLS with
//! `?tls=required`), `smtps://` (implicit TLS), with credentials from the URL.
//! Each email is multipart (plain text and HTML) and carries a Message-ID we keep.

use crate::render::Rendered;
use crate::senders::{SendError, Sender};
use async_trait::async_trait;
use carekey_domain::message::MessageRecord;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Builds the email for a rendered message; shared by the SMTP and file senders.
pub fn build_email(
    from: &Mailbox,
    message: &MessageRecord,
    rendered: &Rendered,
) -> Result<(Message, String), SendError> {
    let Rendered::Email {
        subject,
        text,
        html,
    } = rendered
    else {
        return Err(SendError::permanent("not an email"));
    };
    let to: Mailbox = message
        .recipient
        .parse()
        .map_err(|e| SendError::permanent(format!("bad recipient address: {e}")))?;
    let domain = from.email.domain().to_owned();
    let message_id = format!("<{}@{domain}>", message.id);
    let email = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(message_id.clone()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
        )
        .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))?;
    Ok((email, message_id))
}

/// Sends email through an SMTP server.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    /// `connections`: how many SMTP connections to keep open at most (the
    /// worker's concurrency; lettre's own default is 10, which would leave
    /// sends waiting for a connection).
    pub fn new(url: &str, from: &str, connections: u32) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("email.url is not a usable SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .pool_config(PoolConfig::new().max_size(connections.max(1)))
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("email.from is not an address: {e}"))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Sender for SmtpSender {
    async fn send(
        &self,
        message: &MessageRecord,
        rendered: &Rendered,
    ) -> Result<Option<String>, SendError> {
        let (email, message_id) = build_email(&self.from, message, rendered)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(Some(message_id)),
            Err(error) if error.is_permanent() => {
                Err(SendError::permanent(format!("SMTP refused: {error}")))
            }
            Err(error) => Err(SendError::transient(format!("SMTP failed: {error}"))),
        }
    }
}
