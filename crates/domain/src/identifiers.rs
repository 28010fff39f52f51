//! Identifiers patients type — usernames, emails, dates of birth — parsed once at
//! the edge into types that are normalised and valid by construction.
//!
//! Normalisation (API.md): trim, Unicode NFKC, compare case-insensitively. The
//! stored and looked-up form is the normalised one, so `Maria@Example.com ` and
//! `maria@example.com` are the same person.

use chrono::NaiveDate;
use serde::Serialize;
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// Why an identifier was refused; shown to the caller as a field error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("is empty")]
    Empty,
    #[error("must be between {min} and {max} characters")]
    Length { min: usize, max: usize },
    #[error("may contain only letters, digits, '.', '_' and '-'")]
    UsernameCharacters,
    #[error("is not an email address")]
    Email,
    #[error("must be a real date written YYYY-MM-DD")]
    Date,
    #[error("is not a phone number we can reach")]
    Phone,
}

/// Trims and applies NFKC, the first step of every identifier's normalisation.
fn normalise(raw: &str) -> String {
    raw.trim().nfkc().collect()
}

/// A portal username: 3–64 letters, digits, `.`, `_` or `-`, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        let value = normalise(raw).to_lowercase();
        if value.is_empty() {
            return Err(IdentifierError::Empty);
        }
        let length = value.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&length) {
            return Err(IdentifierError::Length {
                min: Self::MIN,
                max: Self::MAX,
            });
        }
        if !value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(IdentifierError::UsernameCharacters);
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, lower-cased whole (mailboxes are case-insensitive in practice,
/// and patients type them every which way).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        let value = normalise(raw).to_lowercase();
        if value.is_empty() {
            return Err(IdentifierError::Empty);
        }
        if value.chars().count() > Self::MAX {
            return Err(IdentifierError::Length {
                min: 3,
                max: Self::MAX,
            });
        }
        // email_address follows RFC 5322's addr-spec; control characters (and so
        // header injection through CR/LF) are refused by it and by this guard.
        if value.chars().any(char::is_control) || !email_address::EmailAddress::is_valid(&value) {
            return Err(IdentifierError::Email);
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, used by the password policy's personal-information rule.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164 form (`+12105550142`), parsed with the configured
/// default region for numbers written without a country code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// `default_region` is an ISO 3166 code such as `US`.
    pub fn parse(raw: &str, default_region: &str) -> Result<Self, IdentifierError> {
        let value = normalise(raw);
        if value.is_empty() {
            return Err(IdentifierError::Empty);
        }
        if value.len() > 32 || value.chars().any(char::is_control) {
            return Err(IdentifierError::Phone);
        }
        // A number written with its country code is read without the default
        // region: the phonenumber crate otherwise strips a leading 1 from, for
        // example, `+44 151 …` (a Liverpool number) when the region is US.
        let region = if value.starts_with('+') {
            None
        } else {
            default_region.parse::<phonenumber::country::Id>().ok()
        };
        let number = phonenumber::parse(region, &value).map_err(|_| IdentifierError::Phone)?;
        if !phonenumber::is_valid(&number) {
            return Err(IdentifierError::Phone);
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        // The stored form must read back as the same valid number: some
        // national spellings (found by fuzzing: `15 1234 5 1S.S` in GB) format
        // to an E.164 string that is itself invalid, which no patient could
        // ever type to match.
        let again = phonenumber::parse(None, &e164).map_err(|_| IdentifierError::Phone)?;
        if !phonenumber::is_valid(&again)
            || again.format().mode(phonenumber::Mode::E164).to_string() != e164
        {
            return Err(IdentifierError::Phone);
        }
        Ok(Self(e164))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stored value, already in E.164 form.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a patient types into the sign-in form: a username or an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Username(Username),
    Email(Email),
}

impl Login {
    /// An `@` makes it an email; anything else must be a username.
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        if raw.contains('@') {
            Email::parse(raw).map(Login::Email)
        } else {
            Username::parse(raw).map(Login::Username)
        }
    }
}

/// A date of birth, written `YYYY-MM-DD`, a real calendar date after 1870.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DateOfBirth(NaiveDate);

impl DateOfBirth {
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        let raw = raw.trim();
        let shape_ok = raw.len() == 10
            && raw.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(IdentifierError::Date);
        }
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| IdentifierError::Date)?;
        Self::from_date(date)
    }

    pub fn from_date(date: NaiveDate) -> Result<Self, IdentifierError> {
        match NaiveDate::from_ymd_opt(1870, 1, 1) {
            Some(earliest) if date >= earliest => Ok(Self(date)),
            _ => Err(IdentifierError::Date),
        }
    }

    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

impl fmt::Display for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// Usernames to suggest to a patient choosing one: their names (accents and
/// punctuation dropped), with a birth-year variant, each a valid [`Username`].
pub fn username_ideas(given: &str, family: &str, born: Option<DateOfBirth>) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    let plain = |text: &str| -> String {
        text.nfkd()
            .filter(char::is_ascii_alphanumeric)
            .flat_map(|c| c.to_lowercase())
            .collect()
    };
    let (given, family) = (plain(given), plain(family));
    let year = born
        .map(|b| b.date().format("%y").to_string())
        .unwrap_or_default();
    let initial: String = given.chars().take(1).collect();
    let ideas = [
        format!("{given}.{family}"),
        format!("{given}{family}{year}"),
        format!("{initial}{family}"),
        format!("{given}.{family}.{year}"),
    ];
    let mut found: Vec<String> = Vec::new();
    for idea in ideas {
        if let Ok(username) = Username::parse(&idea) {
            let idea = username.as_str().to_owned();
            if !found.contains(&idea) {
                found.push(idea);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_ideas_are_plain_and_valid() {
        let born = DateOfBirth::parse("1949-11-02").ok();
        let ideas = username_ideas("José", "Núñez O'Brien", born);
        assert_eq!(ideas[0], "jose.nunezobrien");
        assert!(ideas.contains(&"josenunezobrien49".to_owned()));
        assert!(ideas.iter().all(|i| Username::parse(i).is_ok()));
        assert!(
            username_ideas("李", "王", None).is_empty(),
            "nothing ASCII to offer"
        );
    }

    #[test]
    fn usernames_are_trimmed_and_lower_cased() {
        assert_eq!(Username::parse("  MariaG ").unwrap().as_str(), "mariag");
    }

    #[test]
    fn usernames_fold_compatibility_characters() {
        // Fullwidth letters are NFKC-equivalent to ASCII ones.
        assert_eq!(Username::parse("ＭＡＲＩＡ").unwrap().as_str(), "maria");
    }

    #[test]
    fn usernames_refuse_spaces_at_signs_and_lengths_out_of_range() {
        assert_eq!(
            Username::parse("maria g"),
            Err(IdentifierError::UsernameCharacters)
        );
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert_eq!(Username::parse("   "), Err(IdentifierError::Empty));
    }

    #[test]
    fn emails_compare_case_insensitively() {
        assert_eq!(
            Email::parse(" Ahmed.Hassan@Example.COM ").unwrap(),
            Email::parse("ahmed.hassan@example.com").unwrap()
        );
    }

    #[test]
    fn emails_with_line_breaks_are_refused() {
        assert!(Email::parse("a@example.com\r\nBcc: x@evil.test").is_err());
        assert!(Email::parse("not-an-email").is_err());
    }

    #[test]
    fn phone_numbers_become_e164_in_any_written_form() {
        for written in [
            "(210) 555-0142",
            "210.555.0142",
            " +1 210 555 0142 ",
            "+12105550142",
        ] {
            assert_eq!(
                PhoneE164::parse(written, "US").unwrap().as_str(),
                "+12105550142",
                "{written}"
            );
        }
        assert_eq!(
            PhoneE164::parse("+33 6 12 34 56 78", "US")
                .unwrap()
                .as_str(),
            "+33612345678"
        );
        assert!(PhoneE164::parse("12", "US").is_err());
        assert!(PhoneE164::parse("+1 210 555 0142\r\nX", "US").is_err());
    }

    /// Found by the `identifiers` fuzz target: an accepted number is stored in
    /// a form that reads back as itself, or it is not accepted at all.
    #[test]
    fn an_accepted_number_reads_back_as_itself() {
        assert_eq!(
            PhoneE164::parse("+44 151 234 5177", "US").unwrap().as_str(),
            "+441512345177"
        );
        for (written, region) in [
            ("07911 123456", "GB"),
            ("55 1234 5678", "MX"),
            ("(210) 555-0142", "US"),
        ] {
            let phone = PhoneE164::parse(written, region).unwrap();
            assert_eq!(
                PhoneE164::parse(phone.as_str(), "US").unwrap(),
                phone,
                "{written}"
            );
        }
    }

    #[test]
    fn logins_with_an_at_sign_are_emails() {
        assert!(matches!(Login::parse("x@example.com"), Ok(Login::Email(_))));
        assert!(matches!(Login::parse("maria"), Ok(Login::Username(_))));
    }

    #[test]
    fn dates_of_birth_must_be_real_and_well_formed() {
        assert_eq!(
            DateOfBirth::parse("1958-03-14").unwrap().to_string(),
            "1958-03-14"
        );
        assert!(DateOfBirth::parse("1980-02-30").is_err());
        assert!(DateOfBirth::parse("1980-2-3").is_err());
        assert!(DateOfBirth::parse("14/03/1958").is_err());
        assert!(DateOfBirth::parse("1700-01-01").is_err());
    }
}
