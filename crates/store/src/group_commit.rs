//! Group commit: writes that arrive while a transaction is running wait and
//! share the next one. A burst of recovery requests then pays for one `BEGIN`,
//! one `COMMIT` (on PostgreSQL one WAL flush) and one turn of the audit chain's
//! lock per batch instead of one per request. Each job still runs on its own
//! in order, so rate limits and single use count exactly as before; if a batch
//! fails, each of its jobs is run again in a transaction of its own, so one
//! bad job never fails its neighbours.

use carekey_domain::ports::{StoreError, StoreResult};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The most jobs one transaction takes.
const MOST_PER_BATCH: usize = 64;
/// Jobs that may wait for a turn before callers wait to join the queue.
const QUEUE: usize = 1024;

type Entry<Job, Answer> = (Arc<Job>, oneshot::Sender<StoreResult<Answer>>);

/// A queue of jobs and the task that runs them in shared transactions. The
/// task ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct GroupCommit<Job, Answer> {
    queue: mpsc::Sender<Entry<Job, Answer>>,
}

impl<Job, Answer> GroupCommit<Job, Answer>
where
    Job: Send + Sync + 'static,
    Answer: Send + 'static,
{
    /// Starts the task. `run` executes the jobs it is given, in order, in one
    /// transaction, and answers each (or fails them all, rolled back).
    pub(crate) fn spawn<Run, Ran>(run: Run) -> Self
    where
        Run: Fn(Vec<Arc<Job>>) -> Ran + Send + 'static,
        Ran: Future<Output = StoreResult<Vec<Answer>>> + Send + 'static,
    {
        let (queue, mut waiting) = mpsc::channel::<Entry<Job, Answer>>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MOST_PER_BATCH);
            while waiting.recv_many(&mut batch, MOST_PER_BATCH).await > 0 {
                let jobs = batch.iter().map(|(job, _)| Arc::clone(job)).collect();
                match run(jobs).await {
                    // A job left without an answer has its reply dropped with
                    // the rest of the batch, which its caller reads as an error.
                    Ok(answers) => {
                        for ((_, reply), answer) in batch.drain(..).zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(error) if batch.len() == 1 => {
                        if let Some((_, reply)) = batch.pop() {
                            let _ = reply.send(Err(error));
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, jobs = batch.len(), "a batch failed; each job runs alone");
                        for (job, reply) in batch.drain(..) {
                            let alone = run(vec![job]).await.and_then(|answers| {
                                answers.into_iter().next().ok_or_else(|| {
                                    StoreError::Backend("a job went unanswered".into())
                                })
                            });
                            let _ = reply.send(alone);
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues a job and waits for its answer. A caller that stops waiting
    /// does not stop the job: it runs and commits like the others.
    pub(crate) async fn run(&self, job: Job) -> StoreResult<Answer> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((Arc::new(job), reply))
            .await
            .map_err(|_| StoreError::Backend("the write queue has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the write queue dropped a job".into()))?
    }
}
