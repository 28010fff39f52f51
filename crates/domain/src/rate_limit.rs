//! Rate limits: fixed windows counted in the database so they hold across
//! instances, keyed on values that never depend on whether an account exists
//! (a normalised identifier, a client address, a destination).

use chrono::{DateTime, Duration, Utc};
use std::net::IpAddr;

/// One counter to bump, and when it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub key: String,
    pub limit: u32,
    pub window: Duration,
}

impl RateLimit {
    pub fn new(key: impl Into<String>, limit: u32, window: Duration) -> Self {
        Self {
            key: key.into(),
            limit,
            window,
        }
    }

    /// The counter after one more hit at `at`: started afresh, at `at`, once
    /// its window has passed. Every store counts with this: it reads its
    /// counters under its transaction's lock, counts here, and stores them.
    pub fn count_hit(&self, counter: WindowCount, at: DateTime<Utc>) -> WindowCount {
        if counter.window_start <= at - self.window {
            WindowCount {
                window_start: at,
                count: 1,
            }
        } else {
            WindowCount {
                window_start: counter.window_start,
                count: counter.count.saturating_add(1),
            }
        }
    }

    /// Given the counter after this hit, how long until a request may succeed
    /// again; `None` when this one is within the limit.
    pub fn retry_after(
        &self,
        count: u32,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        (count > self.limit).then(|| (window_start + self.window - now).max(Duration::seconds(1)))
    }
}

/// A fixed-window counter: when its window began and the hits since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub window_start: DateTime<Utc>,
    pub count: u32,
}

/// A refusal: try again after this long (`Retry-After`, in whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least one.
    pub fn seconds(&self) -> i64 {
        let millis = self.0.num_milliseconds();
        ((millis + 999) / 1000).max(1)
    }
}

/// The part of a client address a limit counts: the whole IPv4 address, or the
/// /64 network of an IPv6 one (a single host usually holds a whole /64).
pub fn client_key(ip: Option<&str>) -> String {
    match ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_hit_counts_within_its_window_and_starts_a_new_one_once_it_has_passed() {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let limit = RateLimit::new("k", 5, Duration::minutes(15));
        let counter = WindowCount {
            window_start: start,
            count: 3,
        };
        let within = start + Duration::minutes(15) - Duration::milliseconds(1);
        assert_eq!(
            limit.count_hit(counter, within),
            WindowCount {
                window_start: start,
                count: 4
            }
        );
        let after = start + Duration::minutes(15);
        assert_eq!(
            limit.count_hit(counter, after),
            WindowCount {
                window_start: after,
                count: 1
            }
        );
    }

    #[test]
    fn the_hit_past_the_limit_is_refused_until_the_window_ends() {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let limit = RateLimit::new("k", 5, Duration::minutes(15));
        assert_eq!(limit.retry_after(5, start, start), None);
        assert_eq!(
            limit.retry_after(6, start, start + Duration::minutes(5)),
            Some(Duration::minutes(10))
        );
        assert_eq!(
            RetryAfter(Duration::milliseconds(1500)).seconds(),
            2,
            "rounded up"
        );
        assert_eq!(RetryAfter(Duration::zero()).seconds(), 1);
    }

    #[test]
    fn ipv6_clients_count_by_their_network() {
        assert_eq!(client_key(Some("203.0.113.9")), "203.0.113.9");
        assert_eq!(
            client_key(Some("2001:db8:1:2:aaaa::1")),
            client_key(Some("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_key(Some("2001:db8:1:2::1")),
            client_key(Some("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(Some("::ffff:203.0.113.9")), "203.0.113.9");
        assert_eq!(client_key(None), "unknown");
    }
}
