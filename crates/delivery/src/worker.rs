//! The outbox worker: claims due messages under a lease, renders and sends
//! them a bounded number at a time, and records each outcome — sent, retried
//! with backoff and jitter, or failed with its last error. Several workers (in
//! one process or many) share the outbox without sending a message twice.

use crate::render::{render, RenderContext};
use crate::senders::{SendError, Senders};
use carekey_domain::clock::Clock;
use carekey_domain::message::{MessageRecord, RetryPolicy};
use carekey_domain::ports::{Store, StoreResult};
use chrono::Duration;
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub retry: RetryPolicy,
    /// How long a claimed message is this worker's before another may take it.
    pub lease: Duration,
    /// Messages claimed at once.
    pub batch: u32,
    /// Messages sent at once.
    pub concurrency: usize,
    /// Pause between looks at an empty outbox.
    pub poll_interval: std::time::Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: Duration::minutes(2),
            batch: 64,
            concurrency: 16,
            poll_interval: std::time::Duration::from_millis(500),
        }
    }
}

pub struct Worker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    senders: Senders,
    context: RenderContext,
    settings: WorkerSettings,
    /// This worker's lease identity.
    owner: Uuid,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        senders: Senders,
        context: RenderContext,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            store,
            clock,
            senders,
            context,
            settings,
            owner: Uuid::new_v4(),
        }
    }

    /// Claims one batch of due messages and delivers it; returns how many were claimed.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_messages(
                now,
                now + self.settings.lease,
                self.owner,
                self.settings.batch,
            )
            .await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.settings.concurrency.max(1), |message| {
                self.deliver(message)
            })
            .await;
        Ok(count)
    }

    /// Runs until `shutdown` resolves, resting when the outbox is empty.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let rest = match self.run_once().await {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => {
                    tracing::error!(%error, "outbox worker could not claim messages");
                    true
                }
            };
            if rest {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
        }
    }

    async fn deliver(&self, message: MessageRecord) {
        let outcome = match render(
            message.kind,
            message.channel,
            message.language,
            &message.data,
            &self.context,
        ) {
            Ok(rendered) => {
                self.senders
                    .for_channel(message.channel)
                    .send(&message, &rendered)
                    .await
            }
            Err(error) => Err(SendError::permanent(error.to_string())),
        };
        let now = self.clock.now();
        let recorded = match outcome {
            Ok(provider_id) => {
                self.store
                    .record_sent(
                        message.id,
                        self.owner,
                        provider_id.as_deref(),
                        &message.data.redacted(),
                        now,
                    )
                    .await
            }
            Err(error) => {
                let retry_at = if error.permanent {
                    None
                } else {
                    self.settings
                        .retry
                        .next_attempt(message.attempts, now, rand::random::<f64>())
                };
                tracing::warn!(
                    message = %message.id,
                    channel = message.channel.as_str(),
                    attempt = message.attempts,
                    retry = retry_at.is_some(),
                    error = %error.message,
                    "message not delivered"
                );
                self.store
                    .record_send_failure(message.id, self.owner, &error.message, retry_at, now)
                    .await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(message = %message.id, "lease lost before the outcome was recorded")
            }
            Err(error) => {
                tracing::error!(message = %message.id, %error, "cannot record a delivery outcome")
            }
        }
    }
}
