//! Recovery's pure rules (API.md, "Patient: recovery"): which identifier
//! combinations a request may use, the one-time codes patients type, and how a
//! code attempt moves a flow. Storage and delivery of flows build on these.

use crate::policy::RecoveryPolicy;
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::Rng;
use std::collections::BTreeSet;

/// The identifiers a recovery request may carry.
pub const IDENTIFIERS: [&str; 4] = ["username", "email", "phone", "date_of_birth"];

/// Whether a request carrying `given` identifiers is well formed under the
/// policy. For a password, it must carry every identifier of at least one
/// accepted combination (any further identifier must then match too). For a
/// username reminder, it must carry an email or a phone (no username), plus a
/// date of birth when any combination requires one.
pub fn request_fits(
    policy: &RecoveryPolicy,
    username_reminder: bool,
    given: &BTreeSet<&str>,
) -> bool {
    if username_reminder {
        let needs_birth_date = policy
            .identifiers
            .iter()
            .flatten()
            .any(|i| i == "date_of_birth");
        return !given.contains("username")
            && (given.contains("email") || given.contains("phone"))
            && (!needs_birth_date || given.contains("date_of_birth"));
    }
    policy.identifiers.iter().any(|combination| {
        combination
            .iter()
            .all(|identifier| given.contains(identifier.as_str()))
    })
}

/// A code of `digits` random decimal digits, uniformly drawn (leading zeros kept).
pub fn numeric_code(digits: usize) -> String {
    (0..digits)
        .map(|_| char::from(b'0' + OsRng.gen_range(0..10u8)))
        .collect()
}

/// Crockford's base-32 alphabet: no I, L, O or U, so codes read aloud cleanly.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A code of `length` Crockford base-32 characters (5 bits each), grouped by
/// four with dashes for reading aloud: `7KQ4-M2XD-9PRT`.
pub fn crockford_code(length: usize) -> String {
    let symbols: Vec<char> = (0..length)
        .map(|_| char::from(CROCKFORD[OsRng.gen_range(0..32usize)]))
        .collect();
    symbols
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A typed Crockford code in its canonical form: case, spaces and dashes
/// ignored; `I`/`L` read as 1 and `O` as 0. `None` when a character is not
/// part of the alphabet.
pub fn normalise_crockford(typed: &str) -> Option<String> {
    typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\u{2010}'..='\u{2015}'))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => Some('1'),
            'O' => Some('0'),
            c if c.is_ascii() && CROCKFORD.contains(&(c as u8)) => Some(c),
            _ => None,
        })
        .collect()
}

/// A flow's code-checking state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeState {
    pub attempts_left: u32,
    pub expires_at: DateTime<Utc>,
    /// Used up, revoked by a newer request or a password change, or finished.
    pub closed: bool,
}

/// What one code attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Accepted,
    /// Wrong; this many attempts remain (0: the flow is now dead).
    Wrong {
        attempts_left: u32,
    },
    /// Expired, used up, revoked or out of attempts: `410 flow_expired`.
    Gone,
}

impl CodeState {
    /// The outcome of an attempt at `now`, and the state after it. A decoy
    /// flow (nothing matched the request) passes `code_matches = false` always,
    /// so it behaves exactly like a real flow whose code is never right.
    pub fn attempt(&self, now: DateTime<Utc>, code_matches: bool) -> (AttemptOutcome, CodeState) {
        if self.closed || self.attempts_left == 0 || now >= self.expires_at {
            return (AttemptOutcome::Gone, *self);
        }
        if code_matches {
            return (
                AttemptOutcome::Accepted,
                CodeState {
                    closed: true,
                    ..*self
                },
            );
        }
        let attempts_left = self.attempts_left - 1;
        (
            AttemptOutcome::Wrong { attempts_left },
            CodeState {
                attempts_left,
                closed: attempts_left == 0,
                ..*self
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn given<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
        names.iter().copied().collect()
    }

    #[test]
    fn the_default_policy_accepts_any_one_identifier() {
        let policy = RecoveryPolicy::default();
        for one in ["username", "email", "phone"] {
            assert!(request_fits(&policy, false, &given(&[one])), "{one}");
        }
        assert!(request_fits(&policy, false, &given(&["username", "email"])));
        assert!(!request_fits(&policy, false, &given(&["date_of_birth"])));
        assert!(!request_fits(&policy, false, &given(&[])));
    }

    #[test]
    fn a_policy_requiring_both_refuses_either_alone() {
        let policy = RecoveryPolicy {
            identifiers: vec![vec!["username".into(), "email".into()]],
            ..RecoveryPolicy::default()
        };
        assert!(!request_fits(&policy, false, &given(&["username"])));
        assert!(!request_fits(&policy, false, &given(&["email"])));
        assert!(request_fits(&policy, false, &given(&["username", "email"])));
    }

    #[test]
    fn username_reminders_take_a_contact_and_the_birth_date_when_policy_asks() {
        let policy = RecoveryPolicy::default();
        assert!(request_fits(&policy, true, &given(&["email"])));
        assert!(request_fits(&policy, true, &given(&["phone"])));
        assert!(!request_fits(&policy, true, &given(&["username"])));
        let strict = RecoveryPolicy {
            identifiers: vec![vec!["email".into(), "date_of_birth".into()]],
            ..RecoveryPolicy::default()
        };
        assert!(!request_fits(&strict, true, &given(&["email"])));
        assert!(request_fits(
            &strict,
            true,
            &given(&["email", "date_of_birth"])
        ));
    }

    #[test]
    fn numeric_codes_have_six_digits_and_vary() {
        let codes: BTreeSet<String> = (0..200).map(|_| numeric_code(6)).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.len() > 190, "codes repeat too often: {}", codes.len());
    }

    #[test]
    fn crockford_codes_are_grouped_and_read_back_however_typed() {
        let code = crockford_code(12);
        assert_eq!(code.len(), 14, "{code}");
        assert_eq!(code.matches('-').count(), 2);
        let canonical = normalise_crockford(&code).unwrap();
        assert_eq!(
            normalise_crockford(&code.to_lowercase().replace('-', " ")),
            Some(canonical.clone())
        );
        assert_eq!(
            normalise_crockford("7kq4-m2xd-9prt").as_deref(),
            Some("7KQ4M2XD9PRT")
        );
        assert_eq!(
            normalise_crockford("ilo0").as_deref(),
            Some("1100"),
            "I and L read as 1, O as 0"
        );
        assert_eq!(
            normalise_crockford("7KQ4-M2XU"),
            None,
            "U is not in the alphabet"
        );
    }

    #[test]
    fn five_wrong_codes_kill_a_flow_and_a_right_one_works_once() {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let mut state = CodeState {
            attempts_left: 5,
            expires_at: start + Duration::minutes(10),
            closed: false,
        };
        for left in (0..5).rev() {
            let (outcome, next) = state.attempt(start, false);
            assert_eq!(
                outcome,
                AttemptOutcome::Wrong {
                    attempts_left: left
                }
            );
            state = next;
        }
        assert_eq!(
            state.attempt(start, true).0,
            AttemptOutcome::Gone,
            "dead after five wrong codes"
        );

        let fresh = CodeState {
            attempts_left: 5,
            expires_at: start + Duration::minutes(10),
            closed: false,
        };
        let (outcome, used) = fresh.attempt(start, true);
        assert_eq!(outcome, AttemptOutcome::Accepted);
        assert_eq!(
            used.attempt(start, true).0,
            AttemptOutcome::Gone,
            "a code works once"
        );
        assert_eq!(
            fresh.attempt(start + Duration::minutes(10), true).0,
            AttemptOutcome::Gone,
            "expired"
        );
    }
}
