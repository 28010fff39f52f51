//! Bearer secrets the server hands out — session ids and link tokens — and the
//! hashes under which they are stored. Only the hash ever reaches the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// 256 random bits, shown to the holder once as base64url.
#[derive(Clone)]
pub struct OpaqueToken(String);

impl OpaqueToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a token presented by a client (cookie, header or body).
    pub fn from_presented(value: &str) -> Self {
        Self(value.trim().to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken(<redacted>)")
    }
}

/// The SHA-256 of a token or code: what storage keeps and looks up by.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// Constant-time comparison, for the places a hash is compared in memory.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_carry_256_bits_and_differ() {
        let a = OpaqueToken::generate();
        let b = OpaqueToken::generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn a_token_matches_only_its_own_hash() {
        let token = OpaqueToken::generate();
        let presented = OpaqueToken::from_presented(token.expose());
        assert!(token.hash().matches(&presented.hash()));
        assert!(!token.hash().matches(&OpaqueToken::generate().hash()));
    }
}

/// What a stored single-use token is for; one never stands in for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Sets a new password once (from an emailed link or a verified code).
    Reset,
    /// A one-time code staff generated for a patient.
    StaffCode,
    /// A clinic-issued enrollment code.
    Activation,
    /// Finishes an enrollment once the activation code was accepted.
    Enrollment,
}

impl TokenPurpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenPurpose::Reset => "reset",
            TokenPurpose::StaffCode => "staff_code",
            TokenPurpose::Activation => "activation",
            TokenPurpose::Enrollment => "enrollment",
        }
    }
}
