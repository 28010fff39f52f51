//! Waiting until an exact moment: the end of an answer floor.
//!
//! tokio's timer counts whole milliseconds, and its reactor sleeps for a count
//! of milliseconds measured from when it last went idle, so a tokio sleep ends
//! up to about 2 ms late, by an amount set by what the runtime did just before:
//! for a recovery request, by how long its own work took. That lateness carried
//! the very difference the floor is there to hide (docs/BENCHMARKS-LOG.md,
//! "Enumeration timing"). On Linux a timerfd armed with an absolute
//! `CLOCK_MONOTONIC` deadline wakes the reactor at that moment whatever ran
//! before it; elsewhere, or if the kernel refuses a timerfd, tokio's timer is
//! the fallback.

use std::time::Duration;

/// A moment a floor ends, taken when the floor begins.
pub(crate) struct Deadline {
    tokio: tokio::time::Instant,
    #[cfg(target_os = "linux")]
    monotonic: Option<rustix::time::Timespec>,
}

impl Deadline {
    /// `floor` from now.
    pub(crate) fn after(floor: Duration) -> Self {
        Self {
            tokio: tokio::time::Instant::now() + floor,
            #[cfg(target_os = "linux")]
            monotonic: rustix::time::Timespec::try_from(floor)
                .ok()
                .and_then(|floor| {
                    rustix::time::clock_gettime(rustix::time::ClockId::Monotonic).checked_add(floor)
                }),
        }
    }

    /// Returns at the deadline (at once if it has passed).
    pub(crate) async fn wait(self) {
        #[cfg(target_os = "linux")]
        if let Some(at) = self.monotonic {
            match linux::wait_until(at).await {
                Ok(()) => return,
                Err(error) => tracing::debug!(%error, "no timerfd; tokio's timer waits instead"),
            }
        }
        tokio::time::sleep_until(self.tokio).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use rustix::time::{
        timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags,
        TimerfdTimerFlags, Timespec,
    };
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// Arms a one-shot timerfd for `at` on the monotonic clock and waits until
    /// the reactor sees it fire. A moment already past fires at once.
    pub(super) async fn wait_until(at: Timespec) -> std::io::Result<()> {
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let once = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: at,
        };
        timerfd_settime(&timer, TimerfdTimerFlags::ABSTIME, &once)?;
        // The replacement, `register_with_interest`, is unsafe (forbidden
        // here) because an arbitrary `AsRawFd` may change or close its
        // descriptor; an `OwnedFd` cannot, which is all its safety asks.
        #[expect(
            deprecated,
            reason = "sound for an OwnedFd; the safe constructor's replacement is unsafe"
        )]
        let timer = AsyncFd::with_interest(timer, Interest::READABLE)?;
        let _fired = timer.readable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_until_the_deadline_and_not_before() {
        for floor in [
            Duration::ZERO,
            Duration::from_micros(300),
            Duration::from_millis(3),
        ] {
            let began = std::time::Instant::now();
            Deadline::after(floor).wait().await;
            assert!(
                began.elapsed() >= floor,
                "{floor:?} ended after {:?}",
                began.elapsed()
            );
        }
    }

    /// The timerfd itself works here, so the test above did not pass on
    /// tokio's fallback timer.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_timerfd_ends_the_wait_on_linux() {
        let floor = Duration::from_micros(500);
        let began = std::time::Instant::now();
        let Some(at) = Deadline::after(floor).monotonic else {
            panic!("no monotonic deadline was computed");
        };
        if let Err(error) = linux::wait_until(at).await {
            panic!("the timerfd could not be used: {error}");
        }
        assert!(
            began.elapsed() >= floor,
            "ended after {:?}",
            began.elapsed()
        );
    }
}
