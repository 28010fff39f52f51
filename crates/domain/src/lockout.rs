//! Lockout arithmetic: how failed passwords accumulate, when an account locks,
//! how locks escalate, and when they end. Storage applies these functions to a
//! row it holds locked, so concurrent failures are never lost.

use crate::policy::LockoutPolicy;
use chrono::{DateTime, Duration, Utc};

/// An account's failure counters and lock, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockState {
    /// Failed passwords in the current window.
    pub failed_attempts: u32,
    /// When the current window's first failure happened.
    pub window_started_at: Option<DateTime<Utc>>,
    /// The end of a timed lock, if one is in force or was.
    pub locked_until: Option<DateTime<Utc>>,
    /// Locked until a reset or staff unlock, whatever the time.
    pub held: bool,
    /// Locks in a row without a successful sign-in between them.
    pub consecutive_lockouts: u32,
}

/// What a failed password did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; the account is still open.
    Counted,
    /// This failure locked the account, until the given time or until held.
    Locked { until: Option<DateTime<Utc>> },
    /// The account was already locked; nothing more is counted.
    AlreadyLocked,
}

impl LockState {
    /// Whether sign-in is refused at `now` even for the right password.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.held || self.locked_until.is_some_and(|until| until > now)
    }

    /// The state after one more failed password at `now`.
    pub fn after_failure(
        &self,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> (Self, FailureOutcome) {
        if self.is_locked(now) {
            return (self.clone(), FailureOutcome::AlreadyLocked);
        }
        let window = Duration::minutes(i64::from(policy.window_minutes));
        let mut next = self.clone();
        match self.window_started_at {
            Some(started) if started + window > now => next.failed_attempts += 1,
            _ => {
                next.failed_attempts = 1;
                next.window_started_at = Some(now);
            }
        }
        if next.failed_attempts < policy.max_failures {
            return (next, FailureOutcome::Counted);
        }
        next.failed_attempts = 0;
        next.window_started_at = None;
        next.consecutive_lockouts += 1;
        if next.consecutive_lockouts >= policy.max_lockouts {
            next.held = true;
            next.locked_until = None;
        } else {
            let index = (next.consecutive_lockouts as usize - 1)
                .min(policy.durations_minutes.len().saturating_sub(1));
            let minutes = policy.durations_minutes.get(index).copied().unwrap_or(15);
            next.locked_until = Some(now + Duration::minutes(i64::from(minutes)));
        }
        let until = next.locked_until;
        (next, FailureOutcome::Locked { until })
    }

    /// A successful sign-in clears the count and the escalation.
    pub fn after_success(&self) -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
    }

    fn fail_times(state: LockState, n: u32, now: DateTime<Utc>) -> (LockState, FailureOutcome) {
        let policy = LockoutPolicy::default();
        let mut state = state;
        let mut outcome = FailureOutcome::Counted;
        for _ in 0..n {
            (state, outcome) = state.after_failure(&policy, now);
        }
        (state, outcome)
    }

    #[test]
    fn four_failures_leave_the_account_open() {
        let (state, outcome) = fail_times(LockState::default(), 4, start());
        assert_eq!(outcome, FailureOutcome::Counted);
        assert_eq!(state.failed_attempts, 4);
        assert!(!state.is_locked(start()));
    }

    #[test]
    fn the_fifth_failure_locks_for_fifteen_minutes() {
        let (state, outcome) = fail_times(LockState::default(), 5, start());
        let until = start() + Duration::minutes(15);
        assert_eq!(outcome, FailureOutcome::Locked { until: Some(until) });
        assert!(state.is_locked(until - Duration::seconds(1)));
        assert!(!state.is_locked(until));
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let (state, _) = fail_times(LockState::default(), 4, start());
        let later = start() + Duration::minutes(16);
        let (state, outcome) = fail_times(state, 1, later);
        assert_eq!(outcome, FailureOutcome::Counted);
        assert_eq!(state.failed_attempts, 1);
    }

    #[test]
    fn locks_escalate_to_an_hour_then_hold() {
        let (state, _) = fail_times(LockState::default(), 5, start());
        let second_try = start() + Duration::minutes(15);
        let (state, outcome) = fail_times(state, 5, second_try);
        assert_eq!(
            outcome,
            FailureOutcome::Locked {
                until: Some(second_try + Duration::minutes(60))
            }
        );
        let third_try = second_try + Duration::minutes(60);
        let (state, outcome) = fail_times(state, 5, third_try);
        assert_eq!(outcome, FailureOutcome::Locked { until: None });
        assert!(state.is_locked(third_try + Duration::days(365)));
    }

    #[test]
    fn failures_while_locked_are_not_counted() {
        let (state, _) = fail_times(LockState::default(), 5, start());
        let (after, outcome) = fail_times(state.clone(), 3, start() + Duration::minutes(1));
        assert_eq!(outcome, FailureOutcome::AlreadyLocked);
        assert_eq!(after, state);
    }

    #[test]
    fn a_success_clears_count_and_escalation() {
        let (state, _) = fail_times(LockState::default(), 5, start());
        let (state, _) = fail_times(state, 2, start() + Duration::minutes(20));
        assert_eq!(state.after_success(), LockState::default());
    }
}
