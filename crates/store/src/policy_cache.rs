//! The organisation's policy as last read, kept for at most [`FRESH_FOR`].
//! Every request reads the policy and an administrator seldom changes it, so
//! a store reads it from the database at most once per [`FRESH_FOR`] instead
//! of once per request. A save on this instance takes effect here at once;
//! one on another instance, sharing the database, within [`FRESH_FOR`].

use carekey_domain::policy::Policy;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a policy read from the database is used without reading it again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct PolicyCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    kept: Option<(Instant, Policy)>,
    /// Counts saves, so a read that began before one never replaces it.
    saves: u64,
}

/// What a read from the database must show to be kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTicket {
    saves: u64,
}

impl PolicyCache {
    /// The kept policy while it is fresh; otherwise a ticket for reading it.
    pub(crate) fn fresh(&self) -> Result<Policy, ReadTicket> {
        let state = self.lock();
        match &state.kept {
            Some((at, policy)) if at.elapsed() < FRESH_FOR => Ok(policy.clone()),
            _ => Err(ReadTicket { saves: state.saves }),
        }
    }

    /// Keeps a policy read from the database, unless a save came meanwhile.
    pub(crate) fn read(&self, ticket: ReadTicket, policy: &Policy) {
        let mut state = self.lock();
        if state.saves == ticket.saves {
            state.kept = Some((Instant::now(), policy.clone()));
        }
    }

    /// Keeps a policy this instance has just saved.
    pub(crate) fn saved(&self, policy: &Policy) {
        let mut state = self.lock();
        state.saves += 1;
        state.kept = Some((Instant::now(), policy.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_with_lockout(max_failures: u32) -> Policy {
        let mut policy = Policy::default();
        policy.lockout.max_failures = max_failures;
        policy
    }

    #[test]
    fn a_read_that_began_before_a_save_does_not_replace_it() {
        let cache = PolicyCache::default();
        let ticket = cache.fresh().unwrap_err();
        cache.saved(&policy_with_lockout(7));
        cache.read(ticket, &policy_with_lockout(3));
        assert_eq!(cache.fresh().unwrap().lockout.max_failures, 7);
    }

    #[test]
    fn a_read_is_kept_until_it_is_no_longer_fresh() {
        let cache = PolicyCache::default();
        let ticket = cache.fresh().unwrap_err();
        cache.read(ticket, &policy_with_lockout(4));
        assert_eq!(cache.fresh().unwrap().lockout.max_failures, 4);
        cache.lock().kept.as_mut().unwrap().0 -= FRESH_FOR;
        assert!(cache.fresh().is_err(), "a stale policy was used");
    }
}
