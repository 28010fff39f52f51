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

    /// Claims one batch of due messages under this worker's lease.
    async fn claim(&self) -> StoreResult<Vec<MessageRecord>> {
        let now = self.clock.now();
        self.store
            .claim_messages(
                now,
                now + self.settings.lease,
                self.owner,
                self.settings.batch,
            )
            .await
    }

    /// Claims one batch of due messages and delivers it; returns how many were claimed.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let claimed = self.claim().await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.settings.concurrency.max(1), |message| {
                self.deliver(message)
            })
            .await;
        Ok(count)
    }

    /// Delivers until a claim comes back empty, keeping up to `concurrency`
    /// messages in flight: the next batch is claimed as soon as the last
    /// one's messages are all handed out, so sending never waits for a
    /// batch's slowest message. Claims and deliveries are polled together: a
    /// delivery recording its outcome may hold the connection a claim needs.
    async fn run_until_empty(&self) {
        use futures::future::{Either, FutureExt};
        let most = self.settings.concurrency.max(1);
        let mut running = futures::stream::FuturesUnordered::new();
        let mut waiting = std::collections::VecDeque::new();
        let (mut sending, mut claiming, mut outbox_empty) = (0, false, false);
        loop {
            while sending < most {
                let Some(message) = waiting.pop_front() else {
                    break;
                };
                running.push(Either::Left(self.deliver(message).map(|()| None)));
                sending += 1;
            }
            if waiting.is_empty() && !claiming && !outbox_empty && sending < most {
                running.push(Either::Right(self.claim().map(Some)));
                claiming = true;
            }
            match running.next().await {
                None => return,
                Some(None) => sending -= 1,
                Some(Some(claimed)) => {
                    claiming = false;
                    match claimed {
                        Ok(batch) => {
                            outbox_empty = batch.is_empty();
                            waiting.extend(batch);
                        }
                        Err(error) => {
                            tracing::error!(%error, "outbox worker could not claim messages");
                            outbox_empty = true;
                        }
                    }
                }
            }
        }
    }

    /// Runs until `shutdown` resolves, resting when the outbox is empty.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.run_until_empty().await;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
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
