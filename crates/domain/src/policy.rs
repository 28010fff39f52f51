//! The organisation's policy: every rule an administrator may change, with the
//! defaults of DESIGN.md. Its JSON shape is the one `GET /api/v1/admin/policy`
//! returns (API.md), so the stored document and the contract are one thing.

use serde::{Deserialize, Serialize};

/// The whole policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub recovery: RecoveryPolicy,
    pub lockout: LockoutPolicy,
    pub password: PasswordPolicy,
    pub staff_code: StaffCodePolicy,
    pub activation: ActivationPolicy,
    pub session: SessionPolicy,
    pub staff: StaffPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryPolicy {
    /// Accepted combinations of identifiers; a request must carry one whole combination.
    pub identifiers: Vec<Vec<String>>,
    pub channels: Vec<String>,
    pub email_lifetime_minutes: u32,
    pub sms_lifetime_minutes: u32,
    pub code_attempts: u32,
    pub per_account_per_hour: u32,
    pub per_ip_per_15_minutes: u32,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            identifiers: vec![
                vec!["username".into()],
                vec!["email".into()],
                vec!["phone".into()],
            ],
            channels: vec!["email".into(), "sms".into(), "voice".into()],
            email_lifetime_minutes: 60,
            sms_lifetime_minutes: 10,
            code_attempts: 5,
            per_account_per_hour: 5,
            per_ip_per_15_minutes: 30,
        }
    }
}

/// Lockout after repeated failed passwords (DESIGN.md: 5 in 15 min → 15 min,
/// then 1 h; the 3rd consecutive lock holds until reset or staff unlock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub window_minutes: u32,
    pub durations_minutes: Vec<u32>,
    pub max_lockouts: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_minutes: 15,
            durations_minutes: vec![15, 60],
            max_lockouts: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub min_length_with_second_factor: u32,
    pub max_length: u32,
    pub history: u32,
    pub blocklist: bool,
    pub personal_info: bool,
    pub near_copy: bool,
    pub min_strength: u8,
    pub require_classes: u8,
    pub max_age_days: Option<u32>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 15,
            min_length_with_second_factor: 8,
            max_length: 128,
            history: 5,
            blocklist: true,
            personal_info: true,
            near_copy: true,
            min_strength: 3,
            require_classes: 0,
            max_age_days: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaffCodePolicy {
    pub lifetime_hours: u32,
}

impl Default for StaffCodePolicy {
    fn default() -> Self {
        Self { lifetime_hours: 24 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivationPolicy {
    pub lifetime_days: u32,
    pub require_postal_code: bool,
    pub self_registration: bool,
}

impl Default for ActivationPolicy {
    fn default() -> Self {
        Self {
            lifetime_days: 30,
            require_postal_code: false,
            self_registration: false,
        }
    }
}

/// Automatic logoff (HIPAA 164.312(a)(2)(iii)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionPolicy {
    pub idle_minutes: u32,
    pub absolute_hours: u32,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_minutes: 15,
            absolute_hours: 12,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaffPolicy {
    pub require_totp: bool,
}

impl Default for StaffPolicy {
    fn default() -> Self {
        Self { require_totp: true }
    }
}

/// A value an administrator set that cannot work, by field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub field: &'static str,
    pub reason: &'static str,
}

impl Policy {
    /// Values that would break the product (as opposed to merely weaken it).
    pub fn problems(&self) -> Vec<PolicyProblem> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field, reason| {
            if !ok {
                problems.push(PolicyProblem { field, reason });
            }
        };
        let lockout = &self.lockout;
        check(
            lockout.max_failures >= 1,
            "lockout.max_failures",
            "must be at least 1",
        );
        check(
            lockout.window_minutes >= 1,
            "lockout.window_minutes",
            "must be at least 1",
        );
        check(
            !lockout.durations_minutes.is_empty()
                && lockout.durations_minutes.iter().all(|&m| m >= 1),
            "lockout.durations_minutes",
            "must list at least one duration of 1 minute or more",
        );
        check(
            lockout.max_lockouts >= 1,
            "lockout.max_lockouts",
            "must be at least 1",
        );
        check(
            self.session.idle_minutes >= 1,
            "session.idle_minutes",
            "must be at least 1",
        );
        check(
            self.session.absolute_hours >= 1,
            "session.absolute_hours",
            "must be at least 1",
        );
        check(
            u64::from(self.session.idle_minutes) <= u64::from(self.session.absolute_hours) * 60,
            "session.idle_minutes",
            "must not exceed the absolute session lifetime",
        );
        let password = &self.password;
        check(
            password.min_length >= 1 && password.min_length <= password.max_length,
            "password.min_length",
            "must be between 1 and password.max_length",
        );
        check(
            password.max_length >= 64,
            "password.max_length",
            "must allow at least 64 characters",
        );
        check(
            password.min_strength <= 4,
            "password.min_strength",
            "must be 0 to 4",
        );
        check(
            password.require_classes <= 4,
            "password.require_classes",
            "must be 0 to 4",
        );
        problems
    }
}

impl Policy {
    /// Settings that work but go against NIST SP 800-63B-4; shown by
    /// `carekey config check` and the admin API so nobody sets them unawares.
    pub fn nist_warnings(&self) -> Vec<String> {
        let password = &self.password;
        let mut warnings = Vec::new();
        if password.require_classes > 0 {
            warnings.push(format!(
                "password.require_classes = {}: composition rules go against NIST 800-63B-4 (3.1.1.2), which says not to impose them",
                password.require_classes
            ));
        }
        if let Some(days) = password.max_age_days {
            warnings.push(format!(
                "password.max_age_days = {days}: NIST 800-63B-4 says not to require periodic password changes"
            ));
        }
        if password.min_length < 15 {
            warnings.push(format!(
                "password.min_length = {}: NIST 800-63B-4 requires at least 15 characters for a password used alone",
                password.min_length
            ));
        }
        if !password.blocklist {
            warnings.push("password.blocklist = false: NIST 800-63B-4 requires checking new passwords against a blocklist".into());
        }
        if self.lockout.max_failures > 100 {
            warnings.push(format!(
                "lockout.max_failures = {}: NIST 800-63B-4 limits consecutive failed attempts to 100",
                self.lockout.max_failures
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_serialises_to_the_shape_in_the_contract() {
        let json = serde_json::to_value(Policy::default()).unwrap();
        assert_eq!(
            json["lockout"]["durations_minutes"],
            serde_json::json!([15, 60])
        );
        assert_eq!(json["recovery"]["identifiers"][1][0], "email");
        assert_eq!(json["password"]["max_age_days"], serde_json::Value::Null);
        assert_eq!(json["staff"]["require_totp"], true);
        assert!(Policy::default().problems().is_empty());
    }

    #[test]
    fn a_partial_document_keeps_the_defaults_for_the_rest() {
        let policy: Policy = serde_json::from_str(r#"{"lockout":{"max_failures":3}}"#).unwrap();
        assert_eq!(policy.lockout.max_failures, 3);
        assert_eq!(policy.lockout.window_minutes, 15);
        assert_eq!(policy.session, SessionPolicy::default());
    }

    #[test]
    fn the_defaults_follow_nist_and_insisted_rules_are_flagged() {
        assert!(Policy::default().nist_warnings().is_empty());
        let mut insisting = Policy::default();
        insisting.password.require_classes = 3;
        insisting.password.max_age_days = Some(90);
        insisting.password.min_length = 8;
        let warnings = insisting.nist_warnings();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings.iter().all(|w| w.contains("NIST 800-63B-4")));
    }

    #[test]
    fn unworkable_values_are_reported_by_field() {
        let mut policy = Policy::default();
        policy.lockout.durations_minutes.clear();
        policy.session.idle_minutes = 0;
        let fields: Vec<_> = policy.problems().iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            ["lockout.durations_minutes", "session.idle_minutes"]
        );
    }
}
