//! Staff second factor: time-based one-time passwords (RFC 6238; SHA-1, 6
//! digits, 30-second steps, one step of clock drift either way), as authenticator
//! apps implement them. A code's time step is remembered, so a code works once.

use totp_rs::{Algorithm, Secret, TOTP};

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "CareKey";

fn totp(secret_base32: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_base32.to_owned()).to_bytes().ok()?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
    .ok()
}

/// A new random secret (160 bits), base32 as authenticator apps take it.
pub fn new_secret() -> String {
    Secret::generate_secret().to_encoded().to_string()
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(secret_base32: &str, account: &str) -> Option<String> {
    Some(totp(secret_base32, account)?.get_url())
}

/// The 30-second step a typed code matches at `unix_seconds` (±1 step), if
/// any, and only if it is later than `last_step` (a code works once).
pub fn accepted_step(
    secret_base32: &str,
    code: &str,
    unix_seconds: u64,
    last_step: Option<u64>,
) -> Option<u64> {
    let totp = totp(secret_base32, "staff")?;
    let code = code.trim().replace(' ', "");
    let step_now = unix_seconds / 30;
    [step_now.saturating_sub(1), step_now, step_now + 1]
        .into_iter()
        .filter(|step| last_step.is_none_or(|last| *step > last))
        .find(|step| {
            let expected = totp.generate(step * 30);
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into()
        })
}

/// The code for `unix_seconds`, for tests and the enrolment check.
pub fn code_at(secret_base32: &str, unix_seconds: u64) -> Option<String> {
    Some(totp(secret_base32, "staff")?.generate(unix_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_accepted_once_within_a_step_of_drift() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, now).unwrap();
        let step = accepted_step(&secret, &code, now, None).unwrap();
        assert_eq!(step, now / 30);
        assert_eq!(accepted_step(&secret, &code, now + 30, None), Some(step));
        assert_eq!(
            accepted_step(&secret, &code, now + 90, None),
            None,
            "too old"
        );
        assert_eq!(
            accepted_step(&secret, &code, now, Some(step)),
            None,
            "a used code is refused"
        );
        assert_eq!(accepted_step(&secret, "000000x", now, None), None);
        let uri = otpauth_uri(&secret, "frontdesk").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/CareKey:frontdesk?"),
            "{uri}"
        );
    }
}
