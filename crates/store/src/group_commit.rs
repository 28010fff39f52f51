//! Group commit: writes that arrive while a transaction is running wait and
//! share the next one. A burst of recovery requests then pays for one `BEGIN`,
//! one `COMMIT` (on PostgreSQL one WAL flush) and one turn of the audit chain's
//! lock per batch instead of one per request. Each job still runs on its own
//! in order, so rate limits and single use count exactly as before; if a batch
//! fails, each of its jobs is run again in a transaction of its own, on a
//! connection the pool has tested, so neither one bad job nor a broken
//! connection fails its neighbours.
//!
//! While jobs keep arriving the task keeps its connection ([`Hold`]): sqlx
//! tests a connection each time one goes back to the pool, and on PostgreSQL
//! again each time one is lent, a round trip to the database per batch
//! otherwise.

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

/// How long the task keeps its connection across batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hold {
    /// The longest it keeps one connection. On SQLite every write shares one
    /// connection, and other writes get their turn after this.
    pub(crate) at_most: Duration,
    /// How long it waits, connection in hand, for the next job when none is
    /// waiting.
    pub(crate) idle: Duration,
}

impl Hold {
    /// For a connection other writes need too: given back as soon as no job
    /// waits, and at least every 10 ms.
    pub(crate) const SHARED: Hold = Hold {
        at_most: Duration::from_millis(10),
        idle: Duration::ZERO,
    };
}

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
    pub(crate) fn spawn<DB, Run, Ran>(pool: sqlx::Pool<DB>, hold: Hold, run: Run) -> Self
    where
        DB: sqlx::Database,
        Run: Fn(PoolConnection<DB>, Vec<Arc<Job>>) -> Ran + Send + Sync + 'static,
        Ran: Future<Output = (PoolConnection<DB>, StoreResult<Vec<Answer>>)> + Send + 'static,
    {
        let (queue, mut waiting) = mpsc::channel::<Entry<Job, Answer>>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MOST_PER_BATCH);
            while waiting.recv_many(&mut batch, MOST_PER_BATCH).await > 0 {
                let Some(mut connection) = acquire(&pool, &mut batch).await else {
                    continue;
                };
                let held_since = Instant::now();
                loop {
                    let ran = run_batch(&run, &pool, connection, &mut batch).await;
                    let AfterBatch::Kept(returned) = ran else {
                        break;
                    };
                    connection = returned;
                    if held_since.elapsed() >= hold.at_most
                        || !next_jobs(&mut waiting, &mut batch, hold.idle).await
                    {
                        // Back to the pool.
                        drop(connection);
                        break;
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

/// A connection from `pool`, or `None` with every job in `batch` failed.
async fn acquire<DB, Job, Answer>(
    pool: &sqlx::Pool<DB>,
    batch: &mut Vec<Entry<Job, Answer>>,
) -> Option<PoolConnection<DB>>
where
    DB: sqlx::Database,
{
    match pool.acquire().await {
        Ok(connection) => Some(connection),
        Err(error) => {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Backend(error.to_string())));
            }
            None
        }
    }
}

/// Takes the jobs waiting into `batch`, up to a batch's worth; if none is
/// waiting, waits up to `idle` for the next. Whether there are jobs to run.
async fn next_jobs<Job, Answer>(
    waiting: &mut mpsc::Receiver<Entry<Job, Answer>>,
    batch: &mut Vec<Entry<Job, Answer>>,
    idle: Duration,
) -> bool {
    while batch.len() < MOST_PER_BATCH {
        match waiting.try_recv() {
            Ok(entry) => batch.push(entry),
            Err(_) => break,
        }
    }
    if batch.is_empty() && !idle.is_zero() {
        // Cancel-safe: a timeout loses no job.
        let _ = tokio::time::timeout(idle, waiting.recv_many(batch, MOST_PER_BATCH)).await;
    }
    !batch.is_empty()
}

/// What became of the connection a batch ran on.
enum AfterBatch<DB: sqlx::Database> {
    /// The batch was stored; the connection can take the next.
    Kept(PoolConnection<DB>),
    /// The batch failed: its connection went back to the pool, which tests it.
    Returned,
}

/// Runs one batch on `connection` and answers every job in it, emptying
/// `batch`. If the batch fails, its connection goes back to the pool and each
/// job runs again alone on a connection from the pool: one that broke while
/// the task kept it (a restarted PostgreSQL) costs no job an error.
async fn run_batch<DB, Job, Answer, Run, Ran>(
    run: &Run,
    pool: &sqlx::Pool<DB>,
    connection: PoolConnection<DB>,
    batch: &mut Vec<Entry<Job, Answer>>,
) -> AfterBatch<DB>
where
    DB: sqlx::Database,
    Run: Fn(PoolConnection<DB>, Vec<Arc<Job>>) -> Ran,
    Ran: Future<Output = (PoolConnection<DB>, StoreResult<Vec<Answer>>)>,
{
    let jobs = batch.iter().map(|(job, _)| Arc::clone(job)).collect();
    let (returned, answers) = run(connection, jobs).await;
    match answers {
        // A job left without an answer has its reply dropped with
        // the rest of the batch, which its caller reads as an error.
        Ok(answers) => {
            for ((_, reply), answer) in batch.drain(..).zip(answers) {
                let _ = reply.send(Ok(answer));
            }
            AfterBatch::Kept(returned)
        }
        Err(error) => {
            tracing::debug!(%error, jobs = batch.len(), "a batch failed; each job runs alone");
            drop(returned);
            let Some(mut connection) = acquire(pool, batch).await else {
                return AfterBatch::Returned;
            };
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
            AfterBatch::Returned
        }
    }
}
