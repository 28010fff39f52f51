//! Recovery's pure rules (API.md, "Patient: recovery"): which identifier
//! combinations a request may use, the one-time codes patients type, and how a
//! code attempt moves a flow. Storage and delivery of flows build on these.

use crate::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use crate::ids::{AccountId, FlowId, PatientId};
use crate::message::Channel;
use crate::model::Language;
use crate::policy::RecoveryPolicy;
use crate::token::TokenHash;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::OsRng;
use rand::Rng;
use std::collections::BTreeSet;
use std::str::FromStr;

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

/// What a recovery request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A code or link to set a new password.
    Password,
    /// The usernames tied to a contact.
    Username,
    /// Proving a new email or phone of a signed-in patient.
    Contact,
}

impl Purpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::Password => "password",
            Purpose::Username => "username",
            Purpose::Contact => "contact",
        }
    }
}

impl FromStr for Purpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "password" => Ok(Purpose::Password),
            "username" => Ok(Purpose::Username),
            "contact" => Ok(Purpose::Contact),
            other => Err(format!("unknown recovery purpose {other:?}")),
        }
    }
}

/// The least time a recovery request takes to answer on SQLite, unless
/// `recovery_answer_floor_ms` sets another. Known and unknown
/// accounts run the same statements, but their rows do not cost quite the same
/// to write; answering no sooner than this keeps that difference out of the
/// response time. Without it, on an idle server, the medians were 1.1 ms
/// (known) and 1.7 ms (unknown) and both 90th percentiles near 2.0 ms
/// (docs/BENCHMARKS-LOG.md); 3 ms covers them. The floor ends on a timerfd, to
/// the microsecond (`carekey_service`'s `deadline`): tokio's millisecond timer
/// ended it late by an amount that followed the work's own length, and so gave
/// the paths away. Each connection then makes at most about 300 requests a
/// second, so the floor sets how many requests a second 16 connections can
/// make, not how many the server can serve.
pub const ANSWER_FLOOR: std::time::Duration = std::time::Duration::from_millis(3);

/// The same on PostgreSQL, where one request's work is several round trips to
/// the database and a commit that waits for its WAL to reach the disk: with
/// the database on the same machine, about 1.8 ms (unknown) and 2.1 ms (known)
/// at the median and 4.1–4.4 ms at the 99th percentile, so 3 ms let the
/// known path's extra work show (docs/BENCHMARKS.md). A database across a
/// network needs more: `recovery_answer_floor_ms` sets it.
pub const ANSWER_FLOOR_POSTGRES: std::time::Duration = std::time::Duration::from_millis(6);

/// Digits in a delivered code (DESIGN.md).
pub const CODE_DIGITS: usize = 6;

/// Characters in a staff-issued one-time code (DESIGN.md: 10 or more).
pub const STAFF_CODE_LENGTH: usize = 12;

/// How long a patient has to choose a password once a code was accepted.
pub const RESET_AFTER_CODE_MINUTES: i64 = 30;

/// How long a flow's code and link work on `channel` under the policy.
pub fn lifetime(policy: &RecoveryPolicy, channel: Channel) -> Duration {
    let minutes = match channel {
        Channel::Email => policy.email_lifetime_minutes,
        Channel::Sms | Channel::Voice => policy.sms_lifetime_minutes,
    };
    Duration::minutes(i64::from(minutes))
}

/// The identifiers a request carried, each already normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryIdentifiers {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub phone: Option<PhoneE164>,
    pub date_of_birth: Option<DateOfBirth>,
}

/// The identifier an account lookup starts from; the others then filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    Username(Username),
    Email(Email),
    Phone(PhoneE164),
}

impl RecoveryIdentifiers {
    /// The names of the identifiers present, for [`request_fits`].
    pub fn names(&self) -> BTreeSet<&'static str> {
        [
            ("username", self.username.is_some()),
            ("email", self.email.is_some()),
            ("phone", self.phone.is_some()),
            ("date_of_birth", self.date_of_birth.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }

    /// Where the lookup starts: the username when given (it names one
    /// account), else the email, else the phone. Depends only on which
    /// identifiers were given, so known and unknown accounts cost the same query.
    pub fn anchor(&self) -> Option<Anchor> {
        if let Some(username) = &self.username {
            return Some(Anchor::Username(username.clone()));
        }
        if let Some(email) = &self.email {
            return Some(Anchor::Email(email.clone()));
        }
        self.phone.clone().map(Anchor::Phone)
    }

    /// A hash of the purpose and the identifiers given: a repeated request
    /// with the same key replaces the older flow, decoy or not.
    pub fn lookup_key(&self, purpose: Purpose) -> TokenHash {
        let part = |value: Option<&str>| value.unwrap_or("").to_owned();
        TokenHash::of(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            purpose.as_str(),
            part(self.username.as_ref().map(|u| u.as_str())),
            part(self.email.as_ref().map(|e| e.as_str())),
            part(self.phone.as_ref().map(|p| p.as_str())),
            self.date_of_birth
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ))
    }

    /// Whether every identifier given matches this account.
    pub fn match_account(&self, candidate: &RecoveryCandidate) -> bool {
        let contact_is = |contact: &Option<StoredContact>, value: &str| {
            contact.as_ref().is_some_and(|c| c.value == value)
        };
        self.username
            .as_ref()
            .is_none_or(|u| u.as_str() == candidate.username)
            && self
                .email
                .as_ref()
                .is_none_or(|e| contact_is(&candidate.email, e.as_str()))
            && self
                .phone
                .as_ref()
                .is_none_or(|p| contact_is(&candidate.phone, p.as_str()))
            && self
                .date_of_birth
                .as_ref()
                .is_none_or(|d| candidate.date_of_birth.as_ref() == Some(d))
    }
}

/// An email or phone on a patient record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContact {
    pub value: String,
    /// Proved by a code, or entered by staff or the EHR. Only verified
    /// contacts receive recovery messages.
    pub verified: bool,
}

/// An account a recovery lookup found, with what matching and delivery need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCandidate {
    pub account_id: AccountId,
    pub patient_id: PatientId,
    pub username: String,
    /// Disabled accounts never recover.
    pub active: bool,
    pub given_name: String,
    pub date_of_birth: Option<DateOfBirth>,
    pub language: Option<Language>,
    pub email: Option<StoredContact>,
    pub phone: Option<StoredContact>,
}

impl RecoveryCandidate {
    /// The verified contact a message on `channel` goes to.
    pub fn destination(&self, channel: Channel) -> Option<&str> {
        let contact = match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms | Channel::Voice => self.phone.as_ref(),
        }?;
        contact.verified.then_some(contact.value.as_str())
    }
}

/// One message's destination and the accounts it covers: a family sharing an
/// email gets one message naming each of their accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub recipient: String,
    pub accounts: Vec<RecoveryCandidate>,
}

/// Where a request's messages go: the active accounts every identifier matches
/// that have a verified contact for `channel`, grouped by that contact. Empty
/// when nothing matches; the caller then starts a decoy flow.
pub fn destinations(
    candidates: Vec<RecoveryCandidate>,
    identifiers: &RecoveryIdentifiers,
    channel: Channel,
) -> Vec<Destination> {
    let mut found: Vec<Destination> = Vec::new();
    for candidate in candidates {
        if !candidate.active || !identifiers.match_account(&candidate) {
            continue;
        }
        let Some(recipient) = candidate.destination(channel).map(str::to_owned) else {
            continue;
        };
        match found.iter_mut().find(|d| d.recipient == recipient) {
            Some(destination) => destination.accounts.push(candidate),
            None => found.push(Destination {
                recipient,
                accounts: vec![candidate],
            }),
        }
    }
    found
}

/// A stand-in destination for a request that matched nothing: built, coded
/// and stored exactly like a real one (storage's guard keeps none of it), so
/// an unknown account costs what a known one does.
pub fn decoy_destination(identifiers: &RecoveryIdentifiers, purpose: Purpose) -> Destination {
    let recipient: String = identifiers
        .lookup_key(purpose)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Destination {
        recipient: format!("decoy:{recipient}"),
        accounts: vec![RecoveryCandidate {
            account_id: AccountId(uuid::Uuid::nil()),
            patient_id: PatientId(uuid::Uuid::nil()),
            username: identifiers
                .username
                .as_ref()
                .map_or_else(|| "decoy".to_owned(), |u| u.as_str().to_owned()),
            active: true,
            given_name: String::new(),
            date_of_birth: identifiers.date_of_birth,
            language: None,
            email: None,
            phone: None,
        }],
    }
}

/// The stored hash of a delivered code: bound to its flow, so one hash says
/// nothing about the same code in another flow.
pub fn code_hash(flow: FlowId, code: &str) -> TokenHash {
    TokenHash::of(&format!("{flow}:{code}"))
}

/// A typed numeric code with spaces and dashes removed; `None` when anything
/// else is left (it cannot be a code CareKey sent).
pub fn normalise_numeric_code(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\u{2010}'..='\u{2015}'))
        .collect();
    (!digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// A code of `digits` random decimal digits, uniformly drawn (leading zeros
/// kept): up to nine digits at a time, each group one number below 10⁹ (one
/// read of the system's random source rather than one a digit).
pub fn numeric_code(digits: usize) -> String {
    const DIGITS_PER_DRAW: usize = 9;
    let mut code = String::with_capacity(digits);
    while code.len() < digits {
        let group = (digits - code.len()).min(DIGITS_PER_DRAW);
        // `group` is at most 9, so the cast keeps it whole.
        let draw = OsRng.gen_range(0..10u32.pow(group as u32));
        code.push_str(&format!("{draw:0group$}"));
    }
    code
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

    fn candidate(username: &str, email: &str, verified: bool) -> RecoveryCandidate {
        RecoveryCandidate {
            account_id: AccountId::generate(),
            patient_id: PatientId::generate(),
            username: username.into(),
            active: true,
            given_name: "Sam".into(),
            date_of_birth: DateOfBirth::parse("1980-05-01").ok(),
            language: None,
            email: Some(StoredContact {
                value: email.into(),
                verified,
            }),
            phone: None,
        }
    }

    #[test]
    fn a_shared_email_is_one_destination_naming_each_account() {
        let by_email = RecoveryIdentifiers {
            email: Email::parse("family@example.com").ok(),
            ..RecoveryIdentifiers::default()
        };
        let found = destinations(
            vec![
                candidate("sarah", "family@example.com", true),
                candidate("ethan", "family@example.com", true),
            ],
            &by_email,
            Channel::Email,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].recipient, "family@example.com");
        let names: Vec<_> = found[0].accounts.iter().map(|a| &a.username).collect();
        assert_eq!(names, ["sarah", "ethan"]);
    }

    #[test]
    fn nothing_goes_to_unverified_or_missing_contacts_or_disabled_accounts() {
        let by_username = |name: &str| RecoveryIdentifiers {
            username: Username::parse(name).ok(),
            ..RecoveryIdentifiers::default()
        };
        let unverified = candidate("alex", "alex@example.com", false);
        assert!(destinations(vec![unverified], &by_username("alex"), Channel::Email).is_empty());
        let no_phone = candidate("alex", "alex@example.com", true);
        assert!(
            destinations(vec![no_phone.clone()], &by_username("alex"), Channel::Sms).is_empty()
        );
        let disabled = RecoveryCandidate {
            active: false,
            ..no_phone.clone()
        };
        assert!(destinations(vec![disabled], &by_username("alex"), Channel::Email).is_empty());
        assert_eq!(
            destinations(vec![no_phone], &by_username("alex"), Channel::Email).len(),
            1
        );
    }

    #[test]
    fn every_identifier_given_must_match_the_same_account() {
        let account = candidate("alex", "alex@example.com", true);
        let with = |email: &str, born: &str| RecoveryIdentifiers {
            username: Username::parse("alex").ok(),
            email: Email::parse(email).ok(),
            date_of_birth: DateOfBirth::parse(born).ok(),
            ..RecoveryIdentifiers::default()
        };
        assert!(with("alex@example.com", "1980-05-01").match_account(&account));
        assert!(!with("other@example.com", "1980-05-01").match_account(&account));
        assert!(!with("alex@example.com", "1980-05-02").match_account(&account));
        assert_eq!(
            with("alex@example.com", "1980-05-01").anchor(),
            Username::parse("alex").ok().map(Anchor::Username),
            "the username anchors the lookup when given"
        );
    }

    #[test]
    fn typed_codes_lose_spaces_and_dashes_but_nothing_else() {
        assert_eq!(
            normalise_numeric_code(" 482 913 ").as_deref(),
            Some("482913")
        );
        assert_eq!(normalise_numeric_code("482-913").as_deref(), Some("482913"));
        assert_eq!(normalise_numeric_code("48291x"), None);
        assert_eq!(normalise_numeric_code(""), None);
        let flow = FlowId::generate();
        assert_ne!(
            code_hash(flow, "482913"),
            code_hash(FlowId::generate(), "482913")
        );
        assert_eq!(code_hash(flow, "482913"), code_hash(flow, "482913"));
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
    fn numeric_codes_of_any_length_draw_every_digit_evenly() {
        for digits in [1, 6, 9, 10, 20] {
            assert_eq!(numeric_code(digits).len(), digits);
        }
        // Each position of 2,000 six-digit codes sees each digit about 200
        // times (give or take 13); a position stuck at zero (a number drawn
        // a digit too short, then padded) falls far outside 120..=280.
        let codes: Vec<String> = (0..2000).map(|_| numeric_code(6)).collect();
        for position in 0..6 {
            let mut seen = [0u32; 10];
            for code in &codes {
                seen[usize::from(code.as_bytes()[position] - b'0')] += 1;
            }
            assert!(
                seen.iter().all(|&n| (120..=280).contains(&n)),
                "digit counts at position {position}: {seen:?}"
            );
        }
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
