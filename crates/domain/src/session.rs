//! Session lifetimes: idle and absolute timeouts (HIPAA automatic logoff).

use crate::policy::SessionPolicy;
use chrono::{DateTime, Duration, Utc};

/// When a session stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpiry {
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
}

impl SessionExpiry {
    /// The expiry of a session created at `now`.
    pub fn starting(policy: &SessionPolicy, now: DateTime<Utc>) -> Self {
        let absolute_expires_at = now + Duration::hours(i64::from(policy.absolute_hours));
        Self {
            idle_expires_at: (now + Duration::minutes(i64::from(policy.idle_minutes)))
                .min(absolute_expires_at),
            absolute_expires_at,
        }
    }

    /// The expiry after activity at `now`: the idle clock restarts, the absolute one never does.
    pub fn touched(&self, policy: &SessionPolicy, now: DateTime<Utc>) -> Self {
        Self {
            idle_expires_at: (now + Duration::minutes(i64::from(policy.idle_minutes)))
                .min(self.absolute_expires_at),
            absolute_expires_at: self.absolute_expires_at,
        }
    }

    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.idle_expires_at && now < self.absolute_expires_at
    }

    /// The moment the session ends if left alone.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn activity_extends_the_idle_timeout_but_never_the_absolute_one() {
        let policy = SessionPolicy::default();
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        let mut expiry = SessionExpiry::starting(&policy, start);
        assert_eq!(expiry.expires_at(), start + Duration::minutes(15));
        let mut now = start;
        for _ in 0..51 {
            now += Duration::minutes(14);
            assert!(expiry.is_live(now));
            expiry = expiry.touched(&policy, now);
        }
        assert!(!expiry.is_live(start + Duration::hours(12)));
    }

    #[test]
    fn an_idle_session_ends_after_fifteen_minutes() {
        let policy = SessionPolicy::default();
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        let expiry = SessionExpiry::starting(&policy, start);
        assert!(expiry.is_live(start + Duration::minutes(14)));
        assert!(!expiry.is_live(start + Duration::minutes(15)));
    }
}
