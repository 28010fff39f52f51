//! Messages to patients: what kinds exist, what each carries, how delivery
//! status moves, and how failed sends back off. Rendering and sending live in
//! the delivery crate; this is the data the outbox stores.

use crate::ids::{MessageId, PatientId};
use crate::model::Language;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Voice,
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }
}

impl FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(Channel::Email),
            "sms" => Ok(Channel::Sms),
            "voice" => Ok(Channel::Voice),
            other => Err(format!("unknown channel {other:?}")),
        }
    }
}

/// Every kind of message CareKey sends (DESIGN.md, API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A reset link and code (email) or a code (SMS, voice).
    PasswordReset,
    /// The usernames tied to a contact.
    UsernameReminder,
    /// "Your password was changed."
    PasswordChanged,
    /// "Your account was locked", with a way to reset.
    AccountLocked,
    /// An enrollment invitation with an activation code.
    Invitation,
    /// A code proving a new email or phone belongs to the patient.
    ContactVerification,
    /// "Your email or phone on file was changed" (to the old contact).
    ContactChanged,
    /// "Clinic staff did this to your account" (a code made, an unlock, a disable).
    AccountHelp,
}

impl MessageKind {
    pub const ALL: [MessageKind; 8] = [
        MessageKind::PasswordReset,
        MessageKind::UsernameReminder,
        MessageKind::PasswordChanged,
        MessageKind::AccountLocked,
        MessageKind::Invitation,
        MessageKind::ContactVerification,
        MessageKind::ContactChanged,
        MessageKind::AccountHelp,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            MessageKind::PasswordReset => "password_reset",
            MessageKind::UsernameReminder => "username_reminder",
            MessageKind::PasswordChanged => "password_changed",
            MessageKind::AccountLocked => "account_locked",
            MessageKind::Invitation => "invitation",
            MessageKind::ContactVerification => "contact_verification",
            MessageKind::ContactChanged => "contact_changed",
            MessageKind::AccountHelp => "account_help",
        }
    }
}

impl FromStr for MessageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown message kind {s:?}"))
    }
}

/// What a message says, beyond its kind. `link` and `code` are secrets: they
/// are dropped from storage once the message is sent ([`MessageData::redacted`]).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageData {
    pub given_name: Option<String>,
    pub usernames: Vec<String>,
    pub link: Option<String>,
    /// One reset link per account when a contact holds several (a family).
    pub account_links: Vec<AccountLink>,
    pub code: Option<String>,
    /// How long the link or code works.
    pub valid_minutes: Option<u32>,
    /// What staff did, for an `account_help` notice: `code`, `unlock` or `disable`.
    pub action: Option<String>,
    /// Set once the secrets were removed after sending.
    pub redacted: bool,
}

impl MessageData {
    /// The same data without its secrets, as kept after sending.
    pub fn redacted(&self) -> Self {
        Self {
            link: None,
            account_links: self
                .account_links
                .iter()
                .map(|l| AccountLink {
                    username: l.username.clone(),
                    link: String::new(),
                })
                .collect(),
            code: None,
            redacted: true,
            ..self.clone()
        }
    }
}

impl fmt::Debug for MessageData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageData")
            .field("given_name", &self.given_name)
            .field("usernames", &self.usernames)
            .field("link", &self.link.as_ref().map(|_| "<redacted>"))
            .field("account_links", &self.account_links.len())
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("valid_minutes", &self.valid_minutes)
            .finish()
    }
}

/// A reset link for one of several accounts a message covers. The link is a
/// secret: emptied once the message is sent.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLink {
    pub username: String,
    pub link: String,
}

impl fmt::Debug for AccountLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountLink")
            .field("username", &self.username)
            .field("link", &"<redacted>")
            .finish()
    }
}

/// A message to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub kind: MessageKind,
    pub channel: Channel,
    /// An email address or an E.164 phone number.
    pub recipient: String,
    pub language: Language,
    pub patient_id: Option<PatientId>,
    pub data: MessageData,
}

/// Where a message is on its way (API.md: `GET /api/v1/staff/messages/{id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Queued,
    Sending,
    /// Handed to the SMTP server or provider.
    Sent,
    /// The provider confirmed delivery.
    Delivered,
    /// Gave up after the last attempt.
    Failed,
    /// The provider reported it undeliverable after sending.
    Bounced,
}

impl MessageStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Bounced => "bounced",
        }
    }
}

impl FromStr for MessageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(MessageStatus::Queued),
            "sending" => Ok(MessageStatus::Sending),
            "sent" => Ok(MessageStatus::Sent),
            "delivered" => Ok(MessageStatus::Delivered),
            "failed" => Ok(MessageStatus::Failed),
            "bounced" => Ok(MessageStatus::Bounced),
            other => Err(format!("unknown message status {other:?}")),
        }
    }
}

/// A stored message with its delivery history.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub id: MessageId,
    pub kind: MessageKind,
    pub channel: Channel,
    pub recipient: String,
    pub language: Language,
    pub patient_id: Option<PatientId>,
    pub data: MessageData,
    pub status: MessageStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Retry timing for failed sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last the message is `failed`.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::seconds(30),
            max_delay: Duration::hours(1),
        }
    }
}

impl RetryPolicy {
    /// When to try again after failed attempt number `attempt` (1-based), or
    /// `None` when that was the last. `jitter` in `[0, 1)` spreads retries by
    /// ±20 % so a recovering server is not hit by every message at once.
    pub fn next_attempt(
        &self,
        attempt: u32,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> Option<DateTime<Utc>> {
        if attempt >= self.max_attempts {
            return None;
        }
        let doublings = attempt.saturating_sub(1).min(20);
        let exponential = self
            .base_delay
            .num_milliseconds()
            .saturating_mul(1_i64 << doublings);
        let capped = exponential.min(self.max_delay.num_milliseconds());
        let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        Some(now + Duration::milliseconds((capped as f64 * spread) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap_then_stop() {
        let policy = RetryPolicy::default();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let delay = |attempt| {
            policy
                .next_attempt(attempt, now, 0.5)
                .map(|at| (at - now).num_seconds())
        };
        assert_eq!(delay(1), Some(30));
        assert_eq!(delay(2), Some(60));
        assert_eq!(delay(3), Some(120));
        assert_eq!(delay(5), Some(480));
        assert_eq!(delay(6), None, "six attempts in all");
        let long = RetryPolicy {
            max_attempts: 30,
            ..policy
        };
        assert_eq!(
            long.next_attempt(20, now, 0.5)
                .map(|at| (at - now).num_seconds()),
            Some(3600)
        );
    }

    #[test]
    fn jitter_spreads_retries_by_a_fifth_either_way() {
        let policy = RetryPolicy::default();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let earliest = policy.next_attempt(2, now, 0.0).unwrap() - now;
        let latest = policy.next_attempt(2, now, 0.999_999).unwrap() - now;
        assert_eq!(earliest.num_seconds(), 48);
        assert_eq!(latest.num_seconds(), 71);
    }

    #[test]
    fn redaction_drops_the_secrets_and_debug_never_shows_them() {
        let data = MessageData {
            link: Some("https://portal/reset?token=SECRET".into()),
            code: Some("123456".into()),
            usernames: vec!["maria".into()],
            ..MessageData::default()
        };
        assert!(!format!("{data:?}").contains("SECRET"));
        let kept = data.redacted();
        assert_eq!((kept.link, kept.code), (None, None));
        assert_eq!(kept.usernames, ["maria"]);
        assert!(kept.redacted);
    }

    #[test]
    fn kinds_and_statuses_round_trip_through_their_stored_names() {
        for kind in MessageKind::ALL {
            assert_eq!(kind.as_str().parse::<MessageKind>().unwrap(), kind);
        }
        assert_eq!(
            "bounced".parse::<MessageStatus>().unwrap(),
            MessageStatus::Bounced
        );
    }
}
