//! How long an answer that must not tell whether an account matched waits:
//! the configured floor, raised to what a lone request's work has lately
//! needed.
//!
//! A fixed floor hides only the work that ends before it. On a starved or
//! slower machine, or with the database across a network, a request's own
//! work can run past it, and then a known account's extra work shows again
//! (docs/BENCHMARKS.md, "Where the goals stand": a run where most answers
//! ended after a 3 ms floor and the timing check caught the difference). So
//! each floor keeps the work times of its last [`WINDOW`] requests that ran
//! alone, the ones a prober timing requests one at a time sees, and once it
//! has [`FEWEST`] of them waits at least [`HEADROOM`] times their
//! [`QUANTILE`]. Known and unknown requests are counted together, so the
//! floor says nothing about any one of them. It rises within a few slow
//! requests and comes down only as they leave the window. A request is not
//! counted if it began while another was between its start and its answer,
//! or if another began during its work: under load a request's time is
//! mostly its wait for the batches ahead of it and for the cores, and a floor
//! raised to that would only slow everyone. The count is taken as the work
//! ends, so it too is hidden by the floor. The floor never falls below the
//! configured one nor rises past [`MOST`].

use crate::deadline::Deadline;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many lone requests' work times a floor keeps.
pub const WINDOW: usize = 512;

/// How many lone requests a floor must have seen before it moves: a prober
/// needs hundreds to tell a difference, and the first requests after a start
/// are slow for reasons of their own (cold caches, new connections).
pub const FEWEST: usize = 50;

/// The share of lone requests whose work a floor covers, before
/// [`HEADROOM`]: in a full window the ten slowest may be stalls of the
/// machine rather than the work.
pub const QUANTILE: f64 = 0.98;

/// The floor is at least this many times the [`QUANTILE`] of the window.
pub const HEADROOM: f64 = 1.25;

/// The longest a floor waits, however slow the work (the longest a
/// configured floor may be, too).
pub const MOST: Duration = Duration::from_secs(1);

/// How many samples pass between two computations of the percentile.
const RECOMPUTE_EVERY: usize = 8;

/// The answer floors of the requests that must answer alike for every account.
pub struct AnswerFloors {
    /// `POST /api/v1/recovery`.
    pub recovery: AnswerFloor,
    /// `POST /api/v1/enrollment/request` (an activation code asked for by name
    /// and date of birth).
    pub activation: AnswerFloor,
}

impl AnswerFloors {
    /// Both floors starting at `least`.
    pub fn new(least: Duration) -> Self {
        Self {
            recovery: AnswerFloor::new("recovery", least),
            activation: AnswerFloor::new("activation code", least),
        }
    }
}

/// One kind of answer's floor: the configured least, raised by the lone
/// requests' work (module docs).
pub struct AnswerFloor {
    what: &'static str,
    least: Duration,
    /// The floor now, in microseconds.
    current: AtomicU64,
    /// Requests of this kind between their start and their answer.
    in_flight: AtomicUsize,
    /// Requests of this kind ever started.
    started: AtomicUsize,
    lone: Mutex<LoneWork>,
}

/// The work times of the last lone requests, in microseconds.
#[derive(Default)]
struct LoneWork {
    samples: Vec<u64>,
    /// Where the next sample goes once the window is full.
    next: usize,
    since_recompute: usize,
    /// The floor last written to the log, in microseconds.
    logged: u64,
}

impl AnswerFloor {
    pub fn new(what: &'static str, least: Duration) -> Self {
        let least = least.min(MOST);
        Self {
            what,
            least,
            current: AtomicU64::new(micros(least)),
            in_flight: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            lone: Mutex::new(LoneWork {
                logged: micros(least),
                ..LoneWork::default()
            }),
        }
    }

    /// How long an answer waits now, counted from when its request began.
    pub fn current(&self) -> Duration {
        Duration::from_micros(self.current.load(Ordering::Relaxed))
    }

    /// Runs `work` and answers no sooner than the floor after it began, so an
    /// answer's timing cannot tell which path the work took.
    pub async fn hold<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let earliest = Deadline::after(self.current());
        let turn = InFlight::enter(&self.in_flight, &self.started);
        let began = Instant::now();
        let answer = work.await;
        // Counted before the wait, so that the counting is hidden by the
        // floor too.
        if turn.alone_so_far() {
            self.record(began.elapsed());
        }
        earliest.wait().await;
        drop(turn);
        answer
    }

    /// Counts one lone request's work time and moves the floor when due.
    fn record(&self, took: Duration) {
        let Ok(mut lone) = self.lone.lock() else {
            // A panic while holding the lock left the window unreadable: the
            // floor stays where it is.
            return;
        };
        let sample = micros(took);
        if lone.samples.len() < WINDOW {
            lone.samples.push(sample);
        } else {
            let at = lone.next;
            lone.samples[at] = sample;
            lone.next = (at + 1) % WINDOW;
        }
        lone.since_recompute += 1;
        if lone.samples.len() < FEWEST || lone.since_recompute < RECOMPUTE_EVERY {
            return;
        }
        lone.since_recompute = 0;
        let floor = floor_for(self.least, &lone.samples);
        self.current.store(micros(floor), Ordering::Relaxed);
        // Say so when the floor has moved by a quarter since last said.
        let logged = Duration::from_micros(lone.logged);
        if floor > logged.mul_f64(1.25) || floor.mul_f64(1.25) < logged {
            lone.logged = micros(floor);
            tracing::info!(
                floor_ms = floor.as_secs_f64() * 1e3,
                configured_ms = self.least.as_secs_f64() * 1e3,
                "{} answers now wait at least this long, to cover the work of requests made alone (never less than the configured floor)",
                self.what
            );
        }
    }
}

/// The floor for these lone work times (microseconds): [`HEADROOM`] times their
/// [`QUANTILE`], no less than `least` and no more than [`MOST`].
fn floor_for(least: Duration, samples: &[u64]) -> Duration {
    let mut sorted = samples.to_vec();
    let Some(rank) = percentile_rank(sorted.len(), QUANTILE) else {
        return least;
    };
    let (_, quantile, _) = sorted.select_nth_unstable(rank);
    Duration::from_micros(*quantile)
        .mul_f64(HEADROOM)
        .clamp(least, MOST.max(least))
}

/// The index of the `q` quantile among `n` sorted values (nearest rank), or
/// none of none.
fn percentile_rank(n: usize, q: f64) -> Option<usize> {
    let rank = (q * n as f64).ceil() as usize;
    rank.checked_sub(1)
        .map(|rank| rank.min(n.saturating_sub(1)))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A request between its start and its answer.
struct InFlight<'f> {
    in_flight: &'f AtomicUsize,
    started: &'f AtomicUsize,
    /// Its number among the requests started, when none was in flight as it
    /// began.
    alone_as: Option<usize>,
}

impl<'f> InFlight<'f> {
    fn enter(in_flight: &'f AtomicUsize, started: &'f AtomicUsize) -> Self {
        let others = in_flight.fetch_add(1, Ordering::AcqRel);
        let number = started.fetch_add(1, Ordering::AcqRel);
        Self {
            in_flight,
            started,
            alone_as: (others == 0).then_some(number),
        }
    }

    /// Whether it has run alone so far: none other in flight as it began
    /// (another one's answer still to come counts), and none begun since.
    fn alone_so_far(&self) -> bool {
        let started = self.started.load(Ordering::Acquire);
        self.alone_as
            .is_some_and(|number| started == number.wrapping_add(1))
    }
}

impl Drop for InFlight<'_> {
    /// Leaves at its answer, or when the request is dropped midway (a client
    /// hung up).
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAST: Duration = Duration::from_millis(3);

    fn fed(samples: impl IntoIterator<Item = Duration>) -> AnswerFloor {
        let floor = AnswerFloor::new("test", LEAST);
        for took in samples {
            floor.record(took);
        }
        floor
    }

    fn ms(n: f64) -> Duration {
        Duration::from_secs_f64(n / 1e3)
    }

    #[test]
    fn work_within_the_configured_floor_leaves_it_as_configured() {
        let floor = fed((0..WINDOW).map(|i| ms(0.5 + (i % 20) as f64 * 0.1)));
        assert_eq!(floor.current(), LEAST);
    }

    #[test]
    fn slower_work_raises_the_floor_past_its_98th_percentile() {
        // A starved machine: lone requests take 4 to 6 ms.
        let floor = fed((0..WINDOW).map(|i| ms(4.0 + (i % 100) as f64 * 0.02)));
        let p98 = ms(4.0 + 97.0 * 0.02);
        assert!(
            floor.current() >= p98.mul_f64(HEADROOM),
            "{:?}",
            floor.current()
        );
        assert!(
            floor.current() < ms(6.0 * HEADROOM + 0.01),
            "{:?}",
            floor.current()
        );
    }

    #[test]
    fn a_floor_moves_once_it_has_seen_enough_lone_requests() {
        let floor = fed(std::iter::repeat_n(ms(8.0), FEWEST - 1));
        assert_eq!(floor.current(), LEAST);
        floor.record(ms(8.0));
        assert_eq!(floor.current(), ms(8.0).mul_f64(HEADROOM));
    }

    #[test]
    fn a_few_stalls_in_a_full_window_do_not_raise_it() {
        let mut samples: Vec<Duration> = vec![ms(1.0); WINDOW - 10];
        samples.extend([ms(200.0); 10]);
        let floor = fed(samples);
        assert_eq!(floor.current(), LEAST);
    }

    #[test]
    fn it_comes_down_once_the_slow_requests_leave_the_window() {
        let floor = fed(std::iter::repeat_n(ms(10.0), WINDOW));
        assert!(floor.current() > ms(10.0));
        for _ in 0..WINDOW {
            floor.record(ms(1.0));
        }
        assert_eq!(floor.current(), LEAST);
    }

    #[test]
    fn it_never_waits_past_the_most() {
        let floor = fed(std::iter::repeat_n(Duration::from_secs(30), FEWEST));
        assert_eq!(floor.current(), MOST);
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile_rank(0, 0.99), None);
        assert_eq!(percentile_rank(1, 0.99), Some(0));
        assert_eq!(percentile_rank(100, 0.99), Some(98));
        assert_eq!(percentile_rank(512, 0.99), Some(506));
        assert_eq!(percentile_rank(512, QUANTILE), Some(501));
    }

    #[tokio::test]
    async fn only_requests_that_ran_alone_are_counted() {
        let floor = AnswerFloor::new("test", Duration::ZERO);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        // The first request waits until the second has begun and ended, so
        // each ran while the other was in flight.
        let first = floor.hold(async {
            let _ = released.await;
        });
        let second = async {
            tokio::task::yield_now().await;
            floor.hold(async {}).await;
            let _ = release.send(());
        };
        tokio::join!(first, second);
        let lone = floor.lone.lock().unwrap().samples.len();
        assert_eq!(lone, 0, "an overlapping request was counted");
        // Nothing is in flight any more, so the next one is alone.
        floor.hold(async {}).await;
        assert_eq!(floor.lone.lock().unwrap().samples.len(), 1);
    }

    #[tokio::test]
    async fn a_request_dropped_midway_leaves_the_count() {
        let floor = AnswerFloor::new("test", Duration::ZERO);
        {
            let pending = floor.hold(std::future::pending::<()>());
            tokio::pin!(pending);
            let woke = poll_once(pending.as_mut()).await;
            assert!(!woke);
        }
        assert_eq!(floor.in_flight.load(Ordering::Acquire), 0);
    }

    /// Polls `future` once; whether it finished.
    async fn poll_once<F: std::future::Future + Unpin>(mut future: F) -> bool {
        std::future::poll_fn(|context| {
            std::task::Poll::Ready(std::pin::Pin::new(&mut future).poll(context).is_ready())
        })
        .await
    }
}
