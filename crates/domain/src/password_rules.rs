//! The password policy engine: every rule a new password must meet, in one
//! place, each failure named by its stable `rule` code (API.md). The rules that
//! need stored hashes (history, and near-copy at reset) are applied by the
//! service, which owns hashing; this module decides everything else.
//!
//! Following NIST 800-63B-4: length counted in Unicode code points, any
//! character allowed, nothing truncated, a blocklist of common and breached
//! passwords, no composition rules or expiry unless an organisation insists.

use crate::identifiers::DateOfBirth;
use crate::policy::PasswordPolicy;
use crate::secret::Password;
use std::sync::LazyLock;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Lower-case without accents, so `María` and `maria` compare alike.
fn folded(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

/// The shipped blocklist: the 100,000 most common passwords of the SecLists
/// "10 million passwords" list (MIT), most common first.
pub const BLOCKLIST_SOURCE: &str = include_str!("../data/common-passwords-100k.txt");

/// The blocklist, lower-cased and sorted once, searched by bisection.
static BLOCKLIST: LazyLock<Vec<Box<str>>> = LazyLock::new(|| {
    let mut entries: Vec<Box<str>> = BLOCKLIST_SOURCE
        .lines()
        .map(|line| line.trim().to_lowercase().into_boxed_str())
        .filter(|line| !line.is_empty())
        .collect();
    entries.sort_unstable();
    entries.dedup();
    entries
});

/// Whether a password is on the blocklist, ignoring case.
pub fn is_blocklisted(password: &str) -> bool {
    BLOCKLIST
        .binary_search(&password.to_lowercase().into_boxed_str())
        .is_ok()
}

/// A rule a password can break (API.md's `rule` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    MinLength,
    MaxLength,
    Blocklist,
    PersonalInfo,
    History,
    NearCopy,
    Strength,
    Classes,
}

impl Rule {
    pub fn code(&self) -> &'static str {
        match self {
            Rule::MinLength => "min_length",
            Rule::MaxLength => "max_length",
            Rule::Blocklist => "blocklist",
            Rule::PersonalInfo => "personal_info",
            Rule::History => "history",
            Rule::NearCopy => "near_copy",
            Rule::Strength => "strength",
            Rule::Classes => "classes",
        }
    }
}

/// What a patient has on file that must not appear in their password.
#[derive(Debug, Clone, Default)]
pub struct PersonalInfo {
    pub username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub date_of_birth: Option<DateOfBirth>,
}

impl PersonalInfo {
    /// Fragments (lower-case) that may not appear inside a password: names and
    /// email local parts of 3+ characters, and the birth date written the ways
    /// people write it, and its year.
    fn fragments(&self) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        let texts = [&self.username, &self.given_name, &self.family_name];
        for text in texts.into_iter().flatten() {
            words.push(folded(text));
            words.extend(text.split([' ', '-', '\'', '.', '_']).map(folded));
        }
        if let Some(email) = &self.email {
            let local = folded(email.split('@').next().unwrap_or_default());
            words.extend(local.split(['.', '_', '-', '+']).map(str::to_owned));
            words.push(local);
        }
        if let Some(born) = self.date_of_birth {
            let date = born.date();
            words.push(date.format("%Y").to_string());
            for format in [
                "%Y%m%d", "%m%d%Y", "%d%m%Y", "%m%d%y", "%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y",
            ] {
                words.push(date.format(format).to_string());
            }
        }
        words.retain(|w| w.chars().count() >= 3);
        words.sort();
        words.dedup();
        words
    }

    /// zxcvbn's user inputs: the same fragments.
    fn inputs(&self) -> Vec<String> {
        self.fragments()
    }
}

/// The character classes of the optional composition rule.
fn classes_present(password: &str) -> u8 {
    let has = |test: fn(&char) -> bool| u8::from(password.chars().any(|c| test(&c)));
    has(|c| c.is_lowercase())
        + has(|c| c.is_uppercase())
        + has(|c| c.is_numeric())
        + has(|c| !c.is_alphanumeric())
}

/// Whether `new` is a near copy of `old`: a few characters changed, added or
/// removed (`Summer2024!` → `Summer2025!`), ignoring case.
pub fn is_near_copy(old: &str, new: &str) -> bool {
    let (old, new) = (old.to_lowercase(), new.to_lowercase());
    strsim::levenshtein(&old, &new) <= 3
}

/// Passwords a patient plausibly used before `new` (`Summer2025!` ←
/// `Summer2024!`, `Summer2025`), checked against the previous hash at reset,
/// when the old password is not known. Bounded: at most `limit` candidates.
pub fn likely_predecessors(new: &str, limit: usize) -> Vec<String> {
    let chars: Vec<char> = new.chars().collect();
    let mut candidates: Vec<String> = Vec::new();
    // A number one lower or higher wherever a run of digits ends.
    for (i, c) in chars.iter().enumerate() {
        let ends_number =
            c.is_ascii_digit() && chars.get(i + 1).is_none_or(|n| !n.is_ascii_digit());
        if !ends_number {
            continue;
        }
        let start = chars[..=i]
            .iter()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |p| p + 1);
        let digits: String = chars[start..=i].iter().collect();
        if let Ok(number) = digits.parse::<u64>() {
            for other in [number.checked_sub(1), number.checked_add(1)]
                .into_iter()
                .flatten()
            {
                let mut text: String = chars[..start].iter().collect();
                text.push_str(&format!("{other:0width$}", width = digits.len()));
                text.extend(&chars[i + 1..]);
                candidates.push(text);
            }
        }
    }
    // The same without its last one or two characters (a symbol or digit added).
    for drop in 1..=2 {
        if chars.len() > drop {
            candidates.push(chars[..chars.len() - drop].iter().collect());
        }
    }
    candidates.retain(|c| c != new);
    candidates.dedup();
    candidates.truncate(limit);
    candidates
}

/// Whether an organisation's `max_age_days` (a rule NIST advises against, kept
/// for organisations that insist) asks for a new password now.
pub fn password_expired(
    policy: &PasswordPolicy,
    changed_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    policy
        .max_age_days
        .is_some_and(|days| now >= changed_at + chrono::Duration::days(i64::from(days)))
}

/// The result of checking a password against every rule this module decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub violations: Vec<Rule>,
    /// zxcvbn's score, 0 (guessable) to 4 (very hard to guess).
    pub strength: u8,
}

/// Checks a new password against the policy. `personal` is what is on file for
/// the account (empty when unknown); `previous` is the current password when
/// the patient typed it (change while signed in), for the near-copy rule.
pub fn assess(
    password: &Password,
    policy: &PasswordPolicy,
    personal: &PersonalInfo,
    previous: Option<&Password>,
) -> Assessment {
    let text = password.expose();
    let length = password.char_count();
    let mut violations = Vec::new();
    if length < policy.min_length as usize {
        violations.push(Rule::MinLength);
    }
    if length > policy.max_length as usize {
        violations.push(Rule::MaxLength);
        // Nothing else is worth computing for a password that cannot be used.
        return Assessment {
            violations,
            strength: 0,
        };
    }
    if policy.blocklist && is_blocklisted(text) {
        violations.push(Rule::Blocklist);
    }
    let lowered = folded(text);
    if policy.personal_info
        && personal
            .fragments()
            .iter()
            .any(|fragment| lowered.contains(fragment.as_str()))
    {
        violations.push(Rule::PersonalInfo);
    }
    if policy.near_copy {
        if let Some(previous) = previous {
            if is_near_copy(previous.expose(), text) {
                violations.push(Rule::NearCopy);
            }
        }
    }
    if classes_present(text) < policy.require_classes {
        violations.push(Rule::Classes);
    }
    let strength = if text.is_empty() {
        0
    } else {
        let inputs = personal.inputs();
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        u8::from(zxcvbn::zxcvbn(text, &inputs).score())
    };
    if strength < policy.min_strength {
        violations.push(Rule::Strength);
    }
    Assessment {
        violations,
        strength,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    fn rules(password: &str) -> Vec<Rule> {
        assess(
            &Password::new(password),
            &policy(),
            &PersonalInfo::default(),
            None,
        )
        .violations
    }

    fn maria() -> PersonalInfo {
        PersonalInfo {
            username: Some("mgarcia58".into()),
            given_name: Some("María".into()),
            family_name: Some("García López".into()),
            email: Some("mj.garcia58@example.com".into()),
            date_of_birth: Some(DateOfBirth::parse("1958-03-14").unwrap()),
        }
    }

    #[test]
    fn a_four_word_lowercase_passphrase_is_accepted() {
        assert_eq!(rules("orange tugboat whistles quietly"), vec![]);
        assert_eq!(rules("lantern meadow copper violin"), vec![]);
    }

    #[test]
    fn the_thousand_most_common_passwords_are_all_rejected() {
        for common in BLOCKLIST_SOURCE.lines().take(1000) {
            assert!(is_blocklisted(common), "{common}");
            assert!(
                is_blocklisted(&common.to_uppercase()),
                "{common} in capitals"
            );
        }
        assert!(BLOCKLIST_SOURCE.lines().count() >= 100_000);
        assert!(!is_blocklisted("orange tugboat whistles quietly"));
    }

    #[test]
    fn length_counts_code_points_and_nothing_is_truncated() {
        assert!(
            rules("ñandú koala ñu").contains(&Rule::MinLength),
            "14 characters, 17 bytes"
        );
        let multibyte = "日本語のパスワードは長くても大丈夫です".repeat(4);
        let sixty_four: String = multibyte.chars().take(64).collect();
        assert_eq!(sixty_four.len(), 192, "64 characters, 192 bytes");
        assert!(!rules(&sixty_four).contains(&Rule::MinLength));
        assert!(!rules(&sixty_four).contains(&Rule::MaxLength));
        let too_long: String = "a".repeat(129);
        assert_eq!(rules(&too_long), vec![Rule::MaxLength]);
    }

    #[test]
    fn short_passwords_break_the_minimum_length() {
        assert!(rules("Tr0ub4dor&3").contains(&Rule::MinLength));
        assert!(!rules("fifteen chars!!").contains(&Rule::MinLength));
    }

    #[test]
    fn names_email_and_birth_date_may_not_appear() {
        let check =
            |password: &str| assess(&Password::new(password), &policy(), &maria(), None).violations;
        for bad in [
            "my name is maria and i like tea",
            "garcia family vacation house",
            "mj.garcia58 is my old login here",
            "born in 1958 and still going strong",
            "03141958 orange tugboat whistles",
        ] {
            assert!(check(bad).contains(&Rule::PersonalInfo), "{bad}");
        }
        assert!(!check("orange tugboat whistles quietly").contains(&Rule::PersonalInfo));
    }

    #[test]
    fn a_near_copy_of_the_previous_password_is_refused() {
        let previous = Password::new("Summer2024! at the lake house");
        let check = |new: &str| {
            assess(
                &Password::new(new),
                &policy(),
                &PersonalInfo::default(),
                Some(&previous),
            )
            .violations
        };
        assert!(check("Summer2025! at the lake house").contains(&Rule::NearCopy));
        assert!(check("summer2024! at the lake house!!").contains(&Rule::NearCopy));
        assert!(!check("orange tugboat whistles quietly").contains(&Rule::NearCopy));
    }

    #[test]
    fn likely_predecessors_step_numbers_and_drop_endings() {
        let found = likely_predecessors("Summer2025!", 16);
        assert!(found.contains(&"Summer2024!".to_owned()), "{found:?}");
        assert!(found.contains(&"Summer2026!".to_owned()));
        assert!(found.contains(&"Summer2025".to_owned()));
        assert!(likely_predecessors("x9", 16).contains(&"x8".to_owned()));
        assert!(likely_predecessors(&"1a".repeat(50), 6).len() <= 6);
    }

    #[test]
    fn composition_rules_apply_only_when_an_organisation_asks() {
        let strict = PasswordPolicy {
            require_classes: 3,
            ..policy()
        };
        let check =
            |p: &str| assess(&Password::new(p), &strict, &PersonalInfo::default(), None).violations;
        assert!(check("orange tugboat whistles quietly").contains(&Rule::Classes));
        assert!(!check("Orange tugboat whistles quietly 7").contains(&Rule::Classes));
        assert!(!rules("orange tugboat whistles quietly").contains(&Rule::Classes));
    }

    #[test]
    fn passwords_expire_only_when_an_organisation_sets_a_maximum_age() {
        let changed = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let later = changed + chrono::Duration::days(400);
        assert!(!password_expired(&policy(), changed, later));
        let ninety = PasswordPolicy {
            max_age_days: Some(90),
            ..policy()
        };
        assert!(!password_expired(
            &ninety,
            changed,
            changed + chrono::Duration::days(89)
        ));
        assert!(password_expired(
            &ninety,
            changed,
            changed + chrono::Duration::days(90)
        ));
    }

    #[test]
    fn guessable_passwords_are_too_weak_even_when_long() {
        let assessment = assess(
            &Password::new("aaaaaaaaaaaaaaaaaaaa"),
            &policy(),
            &PersonalInfo::default(),
            None,
        );
        assert!(assessment.violations.contains(&Rule::Strength));
        assert!(assessment.strength < 3);
    }
}
