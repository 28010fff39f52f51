//! Secrets typed by patients: kept out of `Debug` and logs, normalised once.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// A password as typed, NFKC-normalised (NIST 800-63B-4 §3.1.1.2) so the same
/// passphrase typed on two keyboards hashes alike. Never truncated.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(raw: &str) -> Self {
        Self(raw.nfkc().collect())
    }

    /// The normalised text, for hashing and policy checks only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in Unicode code points, the unit every length rule counts in.
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_never_shows_the_secret() {
        let shown = format!("{:?}", Password::new("correct horse battery staple"));
        assert!(!shown.contains("horse"));
    }

    #[test]
    fn passwords_are_nfkc_normalised_not_truncated() {
        let composed = Password::new("caf\u{e9}");
        let decomposed = Password::new("cafe\u{301}");
        assert_eq!(composed.expose(), decomposed.expose());
        let long = "ñ".repeat(200);
        assert_eq!(Password::new(&long).char_count(), 200);
    }
}
