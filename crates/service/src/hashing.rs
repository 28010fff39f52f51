//! Password hashing with Argon2id on its own threads, one per core, each
//! keeping its Argon2 memory (19 MiB) from hash to hash: a flood of sign-ins
//! queues here instead of starving the async runtime, and memory stays at one
//! block per thread instead of a fresh allocation (and page faults) per hash.
//! The threads run at a lower priority than the request threads.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use carekey_domain::secret::Password;
use std::sync::{mpsc, Arc, Mutex};

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

fn failed(error: impl std::fmt::Display) -> HashingError {
    HashingError::Failed(error.to_string())
}

/// The Argon2 working memory a hashing thread keeps between hashes.
#[derive(Default)]
struct Memory {
    blocks: Vec<Block>,
}

impl Memory {
    /// Blocks enough for `params` (grown once for a stored hash of higher cost).
    fn for_params(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        &mut self.blocks[..needed]
    }
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Hashes and verifies passwords on `workers` dedicated threads.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password, verified for unknown logins so they cost the
    /// same as known ones.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `workers` hashing threads; the number of cores is the right value. The
    /// threads end when the last clone of the hasher is dropped.
    pub fn new(settings: Argon2Settings, workers: usize) -> Result<Self, HashingError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashingError::Parameters(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory = Memory::default();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(failed)?;
        }
        let dummy_secret = carekey_domain::token::OpaqueToken::generate();
        let dummy_hash = hash_with(&argon2, dummy_secret.expose(), &mut Memory::default())?;
        Ok(Self {
            argon2,
            jobs,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Runs `work` on a hashing thread and waits for its answer.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>, &mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let argon2 = self.argon2.clone();
        self.jobs
            .send(Box::new(move |memory: &mut Memory| {
                let _ = answer.send(work(&argon2, memory));
            }))
            .map_err(|_| failed("the hashing threads have stopped"))?;
        answered.await.map_err(failed)
    }

    /// A PHC string (`$argon2id$v=19$m=…`) for a new password.
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let password = password.clone();
        self.run(move |argon2, memory| hash_with(argon2, password.expose(), memory))
            .await?
    }

    /// Whether `password` matches a stored PHC string (whatever Argon2
    /// parameters it names). A malformed stored hash never matches.
    pub async fn verify(&self, password: &Password, phc: &str) -> Result<bool, HashingError> {
        let password = password.clone();
        let phc = phc.to_owned();
        self.run(move |_, memory| verify_with(password.expose(), &phc, memory))
            .await
    }

    /// Spends the same effort as a real verification, for a login that matched nothing.
    pub async fn verify_dummy(&self, password: &Password) -> Result<(), HashingError> {
        let dummy = Arc::clone(&self.dummy_hash);
        self.verify(password, &dummy).await.map(|_| ())
    }
}

/// Gives the calling hashing thread the lowest priority (nice 19), below the
/// threads that answer requests: under a flood of sign-ins every other request
/// still gets the CPU the moment it needs it, and the hashes use the rest.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(%error, "cannot lower the hashing thread's priority");
    }
}

/// Hashes `password` with a new salt into a PHC string, in `memory`.
fn hash_with(
    argon2: &Argon2<'_>,
    password: &str,
    memory: &mut Memory,
) -> Result<String, HashingError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).map_err(failed)?;
    let params = argon2.params();
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            &mut out,
            memory.for_params(params),
        )
        .map_err(failed)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(failed)?),
    };
    Ok(phc.to_string())
}

/// Recomputes a stored PHC hash for `password` and compares in constant time.
fn verify_with(password: &str, phc: &str, memory: &mut Memory) -> bool {
    let mut check = || -> Option<bool> {
        let stored = PasswordHash::new(phc).ok()?;
        let algorithm = Algorithm::try_from(stored.algorithm).ok()?;
        let version = match stored.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&stored).ok()?;
        let expected = stored.hash?;
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = stored.salt?.decode_b64(&mut salt_bytes).ok()?;
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                &mut out,
                memory.for_params(&params),
            )
            .ok()?;
        // `Output`'s equality is constant-time.
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
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
    async fn hashes_agree_with_the_argon2_crates_own_hasher_both_ways() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = cheap();
        let password = "tall lighthouse by the quiet bay";
        // A stored hash of other (higher) parameters, made by the crate itself.
        let stronger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2048, 2, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = stronger
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(hasher
            .verify(&Password::new(password), &theirs)
            .await
            .unwrap());
        assert!(!hasher
            .verify(&Password::new("tall lighthouse"), &theirs)
            .await
            .unwrap());
        // Ours verifies with the crate's own verifier.
        let ours = hasher.hash(&Password::new(password)).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"something else", &parsed)
            .is_err());
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
