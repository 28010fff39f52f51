//! Configuration: defaults that run with no file at all, then a TOML file, then
//! `CAREKEY_*` environment variables (DESIGN.md). [`Config::validate`] turns the
//! raw values into checked settings or a list of clear problems.

use carekey_service::hashing::Argon2Settings;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// Sections whose keys read `CAREKEY_<SECTION>_<KEY>`; every other variable
/// names a top-level key (`CAREKEY_DATABASE_URL` → `database_url`).
const SECTIONS: [&str; 7] = [
    "clinic", "argon2", "email", "sms", "voice", "delivery", "fhir",
];

/// The configuration as written, before checking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: String,
    /// The portal's public address; every link CareKey sends is built from it.
    pub public_url: String,
    /// `sqlite://path` (default) or `postgres://user@host/db`.
    pub database_url: String,
    pub database_max_connections: u32,
    /// Where the SQLite file and development mail live.
    pub data_dir: PathBuf,
    /// Development conveniences; never in production.
    pub dev: bool,
    /// Log filter (`info`, `carekey=debug,…`); `RUST_LOG` overrides it.
    pub log: String,
    /// A header from a trusted reverse proxy holding the client address
    /// (`X-Forwarded-For`); unset, the socket address is used.
    pub trusted_proxy_header: Option<String>,
    /// Region for phone numbers written without a country code (ISO 3166, `US`).
    pub default_region: String,
    /// The least time, in milliseconds, a recovery request takes to answer,
    /// so that the time never tells whether an account matched. Unset: 3 on
    /// SQLite, 6 on PostgreSQL (docs/DEPLOY.md says how to check yours).
    pub recovery_answer_floor_ms: Option<u64>,
    pub clinic: ClinicConfig,
    pub argon2: Argon2Config,
    pub email: EmailConfig,
    pub sms: ProviderConfig,
    pub voice: ProviderConfig,
    pub delivery: DeliveryConfig,
    pub fhir: FhirConfig,
}

/// FHIR import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FhirConfig {
    /// The identifier system of your MRNs, for EHRs that do not type them `MR`.
    pub mrn_system: Option<String>,
}

/// Outgoing email. Without a URL, messages are written as files (development).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp` or `file`; unset means `smtp` when `url` is set, else `file`.
    pub transport: Option<String>,
    /// `smtp://host:port`, `smtp://host?tls=required` (STARTTLS), `smtps://user:pass@host`.
    pub url: Option<String>,
    pub from: String,
}

/// An SMS or voice provider: `file` (development), `twilio`, or `webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    pub provider: String,
    pub base_url: String,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub from: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

/// The outbox worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Run the worker inside `carekey serve` (turn off when running `carekey worker` apart).
    pub in_process: bool,
    pub max_attempts: u32,
    pub base_delay_seconds: u32,
    pub batch: u32,
    pub concurrency: usize,
    /// How long a claimed message is a worker's alone; after a crash its
    /// messages are sent by another worker (or the restarted one) once it ends.
    pub lease_seconds: u32,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            transport: None,
            url: None,
            from: "CareKey Clinic <noreply@localhost>".into(),
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            provider: "file".into(),
            base_url: "https://api.twilio.com".into(),
            account_sid: None,
            auth_token: None,
            from: None,
            webhook_url: None,
            webhook_secret: None,
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            in_process: true,
            max_attempts: 6,
            base_delay_seconds: 30,
            batch: 64,
            concurrency: 32,
            lease_seconds: 120,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClinicConfig {
    pub name: String,
    /// The help line patients are told to call when they are stuck.
    pub help_phone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; unset means one per core.
    pub workers: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            database_url: "sqlite://./carekey-data/carekey.db".into(),
            database_max_connections: 16,
            data_dir: PathBuf::from("./carekey-data"),
            dev: false,
            log: "info".into(),
            trusted_proxy_header: None,
            default_region: "US".into(),
            recovery_answer_floor_ms: None,
            clinic: ClinicConfig::default(),
            argon2: Argon2Config::default(),
            email: EmailConfig::default(),
            sms: ProviderConfig::default(),
            voice: ProviderConfig::default(),
            delivery: DeliveryConfig::default(),
            fhir: FhirConfig::default(),
        }
    }
}

/// The help line shipped as a default; `config check` warns while it is in use.
pub const PLACEHOLDER_HELP_PHONE: &str = "(555) 010-0100";

/// The longest answer floor accepted: the longest a floor ever waits.
const MOST_ANSWER_FLOOR_MS: u64 = carekey_service::answer_floor::MOST.as_millis() as u64;

impl Default for ClinicConfig {
    fn default() -> Self {
        Self {
            name: "CareKey Clinic".into(),
            help_phone: PLACEHOLDER_HELP_PHONE.into(),
        }
    }
}

impl Default for Argon2Config {
    fn default() -> Self {
        let defaults = Argon2Settings::default();
        Self {
            memory_kib: defaults.memory_kib,
            iterations: defaults.iterations,
            parallelism: defaults.parallelism,
            workers: None,
        }
    }
}

/// Checked settings, ready to start the service with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub database_url: String,
    pub database_max_connections: u32,
    pub data_dir: PathBuf,
    pub dev: bool,
    pub log: String,
    pub trusted_proxy_header: Option<axum::http::HeaderName>,
    pub clinic: ClinicConfig,
    pub argon2: Argon2Settings,
    pub hash_workers: usize,
    pub default_region: String,
    /// See [`Config::recovery_answer_floor_ms`].
    pub answer_floor: std::time::Duration,
    pub email: EmailConfig,
    pub sms: ProviderConfig,
    pub voice: ProviderConfig,
    pub fhir: FhirConfig,
    pub delivery: DeliveryConfig,
    /// Settings that work but deserve a second look.
    pub warnings: Vec<String>,
}

impl Config {
    /// Defaults, then the file (when given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(format!(
                    "configuration file {} does not exist",
                    file.display()
                ));
            }
            figment = figment.merge(Toml::file(file));
        }
        // CAREKEY_CONFIG names the file; CAREKEY_TEST_* belong to the test suite.
        let env = Env::raw().filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            let key = key.strip_prefix("carekey_")?;
            if key == "config" || key.starts_with("test_") {
                return None;
            }
            Some(
                match SECTIONS.iter().find(|s| key.starts_with(&format!("{s}_"))) {
                    Some(section) => format!("{section}.{}", &key[section.len() + 1..]).into(),
                    None => key.to_owned().into(),
                },
            )
        });
        figment
            .merge(env)
            .extract()
            .map_err(|error| format!("configuration is not valid: {error}"))
    }

    /// Defaults, then the TOML text alone (no environment): what a file says.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|error| format!("configuration is not valid: {error}"))
    }

    /// Checks every value; all problems are reported together.
    pub fn validate(&self) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| {
                problems.push(format!(
                    "listen: {:?} is not an address like 127.0.0.1:8080",
                    self.listen
                ))
            })
            .ok();
        let public_url = match Url::parse(&self.public_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                problems.push(format!(
                    "public_url: {:?} must be an http:// or https:// address",
                    self.public_url
                ));
                None
            }
        };
        let backend = carekey_store::Backend::of_url(&self.database_url);
        if backend.is_none() {
            problems.push("database_url: must start with sqlite: or postgres://".into());
        }
        if self
            .recovery_answer_floor_ms
            .is_some_and(|ms| ms > MOST_ANSWER_FLOOR_MS)
        {
            problems.push(format!(
                "recovery_answer_floor_ms: at most {MOST_ANSWER_FLOOR_MS} (patients wait this long for every answer)"
            ));
        }
        let default_floor = match backend {
            Some(carekey_store::Backend::Postgres) => {
                carekey_domain::recovery::ANSWER_FLOOR_POSTGRES
            }
            _ => carekey_domain::recovery::ANSWER_FLOOR,
        };
        let answer_floor = self
            .recovery_answer_floor_ms
            .map_or(default_floor, std::time::Duration::from_millis);
        if self.database_max_connections == 0 {
            problems.push("database_max_connections: must be at least 1".into());
        }
        let trusted_proxy_header = match &self.trusted_proxy_header {
            None => None,
            Some(name) => axum::http::HeaderName::try_from(name.as_str())
                .map_err(|_| {
                    problems.push(format!(
                        "trusted_proxy_header: {name:?} is not a header name"
                    ))
                })
                .ok(),
        };
        let argon2 = Argon2Settings {
            memory_kib: self.argon2.memory_kib,
            iterations: self.argon2.iterations,
            parallelism: self.argon2.parallelism,
        };
        if argon2::Params::new(
            argon2.memory_kib,
            argon2.iterations,
            argon2.parallelism,
            None,
        )
        .is_err()
        {
            problems.push(
                "argon2: memory_kib, iterations and parallelism are not valid Argon2 parameters"
                    .into(),
            );
        }
        if self.argon2.workers == Some(0) {
            problems.push("argon2.workers: must be at least 1".into());
        }
        if self
            .default_region
            .parse::<phonenumber::country::Id>()
            .is_err()
        {
            problems.push(format!(
                "default_region: {:?} is not a two-letter country code",
                self.default_region
            ));
        }
        problems.extend(crate::delivery::check(self));
        if self.delivery.max_attempts == 0
            || self.delivery.batch == 0
            || self.delivery.concurrency == 0
            || self.delivery.lease_seconds == 0
        {
            problems.push(
                "delivery: max_attempts, batch, concurrency and lease_seconds must be at least 1"
                    .into(),
            );
        }
        if self.clinic.name.trim().is_empty() {
            problems.push("clinic.name: must not be empty".into());
        }
        if self.clinic.help_phone.trim().is_empty() {
            problems.push("clinic.help_phone: patients need a number to call".into());
        }
        let mut warnings = Vec::new();
        if answer_floor < default_floor {
            warnings.push(format!(
                "recovery_answer_floor_ms is below this database's default ({} ms): how long a recovery request takes may tell whether an account matched",
                default_floor.as_millis()
            ));
        }
        if self.clinic.help_phone == PLACEHOLDER_HELP_PHONE {
            warnings.push(
                "clinic.help_phone is the placeholder number: set your clinic's help line".into(),
            );
        }
        let owasp = Argon2Settings::default();
        if argon2.memory_kib < owasp.memory_kib || argon2.iterations < owasp.iterations {
            warnings.push("argon2: cost is below OWASP's minimum (m = 19456 KiB, t = 2)".into());
        }
        if let Some(url) = &public_url {
            if url.scheme() == "http" && !is_loopback(url) {
                warnings.push(
                    "public_url is plain http on a non-local host: cookies are not Secure".into(),
                );
            }
        }
        if self.dev {
            warnings
                .push("dev = true: development pages are on; never use this in production".into());
        }
        match (listen, public_url, problems.is_empty()) {
            (Some(listen), Some(public_url), true) => Ok(Settings {
                listen,
                public_url,
                database_url: self.database_url.clone(),
                database_max_connections: self.database_max_connections,
                data_dir: self.data_dir.clone(),
                dev: self.dev,
                log: self.log.clone(),
                trusted_proxy_header,
                clinic: self.clinic.clone(),
                argon2,
                hash_workers: self
                    .argon2
                    .workers
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)),
                default_region: self.default_region.clone(),
                answer_floor,
                email: self.email.clone(),
                sms: self.sms.clone(),
                voice: self.voice.clone(),
                delivery: self.delivery.clone(),
                fhir: self.fhir.clone(),
                warnings,
            }),
            _ => Err(problems),
        }
    }

    /// The configuration as TOML with every secret masked, for `config check`.
    pub fn masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = mask_url_password(&shown.database_url);
        shown.email.url = shown.email.url.as_deref().map(mask_url_password);
        for provider in [&mut shown.sms, &mut shown.voice] {
            for secret in [&mut provider.auth_token, &mut provider.webhook_secret] {
                if secret.is_some() {
                    *secret = Some("****".into());
                }
            }
        }
        toml::to_string_pretty(&shown)
            .unwrap_or_else(|e| format!("# cannot show configuration: {e}"))
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:****@host/db`.
fn mask_url_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            if url.set_password(Some("****")).is_ok() {
                url.to_string()
            } else {
                "****".into()
            }
        }
        _ => raw.to_owned(),
    }
}

// figment's Jail closures return its large error type; that is its API, not ours.
#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn no_file_and_no_environment_gives_working_defaults() {
        Jail::expect_with(|_| {
            let settings = Config::load(None).unwrap().validate().unwrap();
            assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
            assert!(settings.database_url.starts_with("sqlite:"));
            assert_eq!(settings.argon2, Argon2Settings::default());
            Ok(())
        });
    }

    #[test]
    fn the_environment_overrides_the_file_and_maps_sections() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "carekey.toml",
                "public_url = \"https://portal.example.org\"\n[clinic]\nname = \"Hill Clinic\"\n",
            )?;
            jail.set_env("CAREKEY_CLINIC_HELP_PHONE", "+1 210 555 0199");
            jail.set_env("CAREKEY_DATABASE_URL", "postgres://carekey@db/carekey");
            jail.set_env("CAREKEY_ARGON2_MEMORY_KIB", "65536");
            let config = Config::load(Some(Path::new("carekey.toml"))).unwrap();
            assert_eq!(config.public_url, "https://portal.example.org");
            assert_eq!(config.clinic.name, "Hill Clinic");
            assert_eq!(config.clinic.help_phone, "+1 210 555 0199");
            assert_eq!(config.database_url, "postgres://carekey@db/carekey");
            assert_eq!(config.argon2.memory_kib, 65536);
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_all_reported_clearly() {
        let config = Config {
            listen: "everywhere".into(),
            public_url: "ftp://x".into(),
            database_url: "mysql://x".into(),
            ..Config::default()
        };
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("listen:"));
        assert!(problems[1].starts_with("public_url:"));
        assert!(problems[2].starts_with("database_url:"));
    }

    /// Unset, the floor follows the database: PostgreSQL's work for one
    /// request takes longer than SQLite's. Set, it is what it says, within a
    /// second.
    #[test]
    fn the_answer_floor_follows_the_database_unless_set() {
        let on = |database_url: &str, floor: Option<u64>| Config {
            database_url: database_url.into(),
            recovery_answer_floor_ms: floor,
            ..Config::default()
        };
        let floor = |config: Config| config.validate().unwrap().answer_floor;
        assert_eq!(
            floor(on("sqlite://./x.db", None)),
            carekey_domain::recovery::ANSWER_FLOOR
        );
        assert_eq!(
            floor(on("postgres://carekey@db/carekey", None)),
            carekey_domain::recovery::ANSWER_FLOOR_POSTGRES
        );
        assert!(
            carekey_domain::recovery::ANSWER_FLOOR_POSTGRES
                > carekey_domain::recovery::ANSWER_FLOOR
        );
        assert_eq!(
            floor(on("postgres://carekey@db/carekey", Some(15))),
            std::time::Duration::from_millis(15)
        );
        // Zero is allowed (the benchmark measures a request's own work so).
        assert_eq!(
            floor(on("sqlite://./x.db", Some(0))),
            std::time::Duration::ZERO
        );
        let unprotected = on("postgres://carekey@db/carekey", Some(3))
            .validate()
            .unwrap();
        assert_eq!(
            unprotected.answer_floor,
            std::time::Duration::from_millis(3)
        );
        assert!(
            unprotected
                .warnings
                .iter()
                .any(|w| w.starts_with("recovery_answer_floor_ms is below")),
            "{:?}",
            unprotected.warnings
        );
        assert!(!on("sqlite://./x.db", Some(3))
            .validate()
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.starts_with("recovery_answer_floor_ms")));
        let problems = on("sqlite://./x.db", Some(1_001)).validate().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("recovery_answer_floor_ms:"),
            "{problems:?}"
        );
        Jail::expect_with(|jail| {
            jail.set_env("CAREKEY_RECOVERY_ANSWER_FLOOR_MS", "9");
            let settings = Config::load(None).unwrap().validate().unwrap();
            assert_eq!(settings.answer_floor, std::time::Duration::from_millis(9));
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_an_error_not_ignored() {
        Jail::expect_with(|jail| {
            jail.create_file("carekey.toml", "pubic_url = \"https://typo.example\"\n")?;
            let error = Config::load(Some(Path::new("carekey.toml"))).unwrap_err();
            assert!(error.contains("pubic_url"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_shown_configuration_masks_every_secret() {
        let provider = ProviderConfig {
            provider: "twilio".into(),
            auth_token: Some("twilio-token-secret".into()),
            webhook_secret: Some("webhook-secret".into()),
            ..ProviderConfig::default()
        };
        let config = Config {
            database_url: "postgres://carekey:hunter2-secret@db/carekey".into(),
            email: EmailConfig {
                url: Some("smtps://mailer:smtp-secret@mail.example.org".into()),
                ..EmailConfig::default()
            },
            sms: provider.clone(),
            voice: provider,
            ..Config::default()
        };
        let shown = config.masked_toml();
        for secret in [
            "hunter2-secret",
            "smtp-secret",
            "twilio-token-secret",
            "webhook-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(shown.contains("postgres://carekey:****@db/carekey"));
    }
}
