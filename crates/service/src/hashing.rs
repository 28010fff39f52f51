//! Password hashing with Argon2id on a bounded pool: at most one hash per core
//! runs at a time, so a flood of sign-ins queues here instead of starving the
//! async runtime or allocating 19 MiB per request without limit.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use carekey_domain::secret::Password;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Argon2id cost parameters (OWASP: m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("Argon2 parameters are not usable: {0}")]
    Parameters(String),
    #[error("hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords on the blocking pool, a bounded number at once.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified for unknown logins so they cost the
    /// same as known ones.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `workers` bounds concurrent hashes; the number of cores is the right value.
    pub fn new(settings: Argon2Settings, workers: usize) -> Result<Self, HashingError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashingError::Parameters(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_secret = carekey_domain::token::OpaqueToken::generate();
        let dummy_hash = argon2
            .hash_password(dummy_secret.expose().as_bytes(), &salt)
            .map_err(|e| HashingError::Failed(e.to_string()))?
            .to_string();
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(workers.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| HashingError::Failed(e.to_string()))?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            let result = work(&argon2);
            drop(permit);
            result
        })
        .await
        .map_err(|e| HashingError::Failed(e.to_string()))
    }

    /// A PHC string (`$argon2id$v=19$m=…`) for a new password.
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let password = password.clone();
        self.run(move |argon2| {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashingError::Failed(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches a stored PHC string. A malformed stored hash
    /// never matches.
    pub async fn verify(&self, password: &Password, phc: &str) -> Result<bool, HashingError> {
        let password = password.clone();
        let phc = phc.to_owned();
        self.run(move |argon2| match PasswordHash::new(&phc) {
            Ok(parsed) => argon2
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        })
        .await
    }

    /// Spends the same effort as a real verification, for a login that matched nothing.
    pub async fn verify_dummy(&self, password: &Password) -> Result<(), HashingError> {
        let dummy = Arc::clone(&self.dummy_hash);
        self.verify(password, &dummy).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(
            Argon2Settings {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hasher = cheap();
        let hash = hasher
            .hash(&Password::new("tall lighthouse by the quiet bay"))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(hasher
            .verify(&Password::new("tall lighthouse by the quiet bay"), &hash)
            .await
            .unwrap());
        assert!(!hasher
            .verify(&Password::new("tall lighthouse by the quiet ba"), &hash)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_never_matches() {
        let hasher = cheap();
        assert!(!hasher
            .verify(&Password::new("x"), "not a hash")
            .await
            .unwrap());
    }

    #[test]
    fn unusable_parameters_are_refused() {
        let settings = Argon2Settings {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1,
        };
        assert!(PasswordHasher::new(settings, 1).is_err());
    }
}
