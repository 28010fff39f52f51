//! Group commit: writes that arrive while a transaction is running wait and
//! share the next one. A burst of recovery requests then pays for one `BEGIN`,
//! one `COMMIT` (on PostgreSQL one WAL flush) and one turn of the audit chain's
//! lock per batch instead of one per request. Each job still runs on its own
//! in order, so rate limits and single use count exactly as before; if a batch
//! fails, each of its jobs is run again in a transaction of its own, so one
//! bad job never fails its neighbours.
//!
//! While jobs keep arriving the task keeps its connection, for at most
//! [`HOLD_AT_MOST`]: sqlx tests a connection each time one goes back to the
//! pool, a round trip to the database per batch otherwise. On SQLite, where
//! every write shares one connection, other writes get their turn after that.

use carekey_domain::ports::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The most jobs one transaction takes.
const MOST_PER_BATCH: usize = 64;
/// Jobs that may wait for a turn before callers wait to join the queue.
const QUEUE: usize = 1024;
/// The longest the task keeps one connection across batches.
const HOLD_AT_MOST: Duration = Duration::from_millis(10);

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
    /// transaction on the connection it is lent, and answers each (or fails
    /// them all, rolled back); it gives the connection back.
    pub(crate) fn spawn<DB, Run, Ran>(pool: sqlx::Pool<DB>, run: Run) -> Self
    where
        DB: sqlx::Database,
        Run: Fn(PoolConnection<DB>, Vec<Arc<Job>>) -> Ran + Send + Sync + 'static,
        Ran: Future<Output = (PoolConnection<DB>, StoreResult<Vec<Answer>>)> + Send + 'static,
    {
        let (queue, mut waiting) = mpsc::channel::<Entry<Job, Answer>>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MOST_PER_BATCH);
            while waiting.recv_many(&mut batch, MOST_PER_BATCH).await > 0 {
                let mut connection = match pool.acquire().await {
                    Ok(connection) => connection,
                    Err(error) => {
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(StoreError::Backend(error.to_string())));
                        }
                        continue;
                    }
                };
                let held_since = Instant::now();
                loop {
                    let (returned, failed) = run_batch(&run, connection, &mut batch).await;
                    connection = returned;
                    if failed || held_since.elapsed() >= HOLD_AT_MOST {
                        break;
                    }
                    while batch.len() < MOST_PER_BATCH {
                        match waiting.try_recv() {
                            Ok(entry) => batch.push(entry),
                            Err(_) => break,
                        }
                    }
                    if batch.is_empty() {
                        break;
                    }
                }
                // Back to the pool (a failed connection is tested there).
                drop(connection);
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

/// Runs one batch on `connection` and answers every job in it, emptying
/// `batch`; gives the connection back, and whether the batch failed.
async fn run_batch<DB, Job, Answer, Run, Ran>(
    run: &Run,
    mut connection: PoolConnection<DB>,
    batch: &mut Vec<Entry<Job, Answer>>,
) -> (PoolConnection<DB>, bool)
where
    DB: sqlx::Database,
    Run: Fn(PoolConnection<DB>, Vec<Arc<Job>>) -> Ran,
    Ran: Future<Output = (PoolConnection<DB>, StoreResult<Vec<Answer>>)>,
{
    let jobs = batch.iter().map(|(job, _)| Arc::clone(job)).collect();
    let (returned, answers) = run(connection, jobs).await;
    connection = returned;
    match answers {
        // A job left without an answer has its reply dropped with
        // the rest of the batch, which its caller reads as an error.
        Ok(answers) => {
            for ((_, reply), answer) in batch.drain(..).zip(answers) {
                let _ = reply.send(Ok(answer));
            }
            (connection, false)
        }
        Err(error) if batch.len() == 1 => {
            if let Some((_, reply)) = batch.pop() {
                let _ = reply.send(Err(error));
            }
            (connection, true)
        }
        Err(error) => {
            tracing::debug!(%error, jobs = batch.len(), "a batch failed; each job runs alone");
            for (job, reply) in batch.drain(..) {
                let (returned, answers) = run(connection, vec![job]).await;
                connection = returned;
                let alone = answers.and_then(|answers| {
                    answers
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Backend("a job went unanswered".into()))
                });
                let _ = reply.send(alone);
            }
            (connection, true)
        }
    }
}
