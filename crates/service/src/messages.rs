//! Messages after they were queued: their delivery status (for the staff
//! console's "I never got the email" question and `carekey outbox`), a retry of
//! a failed one, and provider reports.

use crate::{ServiceError, ServiceResult, Services};
use carekey_domain::ids::MessageId;
use carekey_domain::message::{MessageRecord, MessageStatus};

impl Services {
    /// One message's status, attempts and last error.
    pub async fn message_status(&self, id: MessageId) -> ServiceResult<MessageRecord> {
        self.store.message(id).await?.ok_or(ServiceError::NotFound)
    }

    /// The newest messages, optionally of one status.
    pub async fn recent_messages(
        &self,
        status: Option<MessageStatus>,
        limit: u32,
    ) -> ServiceResult<Vec<MessageRecord>> {
        Ok(self.store.list_messages(status, limit).await?)
    }

    /// Sends a `failed` message again from its first attempt.
    pub async fn retry_message(&self, id: MessageId) -> ServiceResult<()> {
        if self.store.requeue_message(id, self.clock.now()).await? {
            Ok(())
        } else {
            match self.store.message(id).await? {
                None => Err(ServiceError::NotFound),
                Some(message) => Err(ServiceError::invalid(
                    "id",
                    format!(
                        "only failed messages can be retried; this one is {}",
                        message.status.as_str()
                    ),
                )),
            }
        }
    }

    /// A provider's later report about a message it accepted.
    pub async fn record_provider_status(
        &self,
        provider_id: &str,
        status: MessageStatus,
        error: Option<&str>,
    ) -> ServiceResult<bool> {
        Ok(self
            .store
            .record_provider_status(provider_id, status, error, self.clock.now())
            .await?)
    }
}
