//! A `carekey serve` (or `carekey worker`) process of the release build, started
//! on a free loopback port with its configuration in the environment, and
//! stopped when dropped. Reads the process's memory from /proc.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release `carekey` binary beside this one (built first by [`build_carekey`]).
pub fn carekey_binary() -> anyhow::Result<PathBuf> {
    let here = std::env::current_exe()?;
    let binary = here
        .parent()
        .context("the bench binary has no folder")?
        .join("carekey");
    Ok(binary)
}

/// Builds the release `carekey` binary into this target folder: the same
/// packages as `cargo run -p carekey-bench`, so the same dependency features
/// and nothing rebuilt when up to date.
pub fn build_carekey() -> anyhow::Result<PathBuf> {
    let binary = carekey_binary()?;
    let target = binary
        .parent()
        .and_then(Path::parent)
        .context("no target folder")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo run` gives this process its package's variables; a nested build
    // that saw them would rerun build scripts and rebuild their dependents.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
        {
            command.env_remove(key);
        }
    }
    let status = command
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "carekey",
            "-p",
            "carekey-bench",
        ])
        .env("CARGO_TARGET_DIR", target)
        .status()
        .context("cannot run cargo to build carekey")?;
    if !status.success() {
        bail!("cargo build --release -p carekey failed");
    }
    Ok(binary)
}

/// What a started server is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub database_url: String,
    pub data_dir: PathBuf,
    /// `CAREKEY_*` variables beyond the database, folder and address.
    pub env: Vec<(String, String)>,
}

impl ServerConfig {
    pub fn new(database_url: &str, data_dir: &Path) -> Self {
        Self {
            database_url: database_url.to_owned(),
            data_dir: data_dir.to_owned(),
            env: vec![
                ("CAREKEY_LOG".into(), "warn".into()),
                // Deliveries are measured on their own; here the queue only fills.
                ("CAREKEY_DELIVERY_IN_PROCESS".into(), "false".into()),
            ],
        }
    }

    /// `carekey SUBCOMMAND` with this configuration in its environment.
    fn command(&self, binary: &Path, subcommand: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .arg(subcommand)
            .current_dir(&self.data_dir)
            .env_remove("RUST_LOG")
            .env("CAREKEY_DATABASE_URL", &self.database_url)
            .env("CAREKEY_DATA_DIR", &self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

pub struct Server {
    child: Child,
    pub base: String,
    /// From spawning the process to its first `200` on `/readyz`.
    pub ready_after: Duration,
}

impl Server {
    /// Starts `carekey serve` and waits until it answers `/readyz`.
    pub async fn start(binary: &Path, config: &ServerConfig) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let child = config
            .command(binary, "serve")
            .env("CAREKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAREKEY_PUBLIC_URL", &base)
            .spawn()
            .with_context(|| format!("cannot start {} serve", binary.display()))?;
        let mut server = Self {
            child,
            base,
            ready_after: Duration::ZERO,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let ready = format!("{}/readyz", server.base);
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = server.child.try_wait()? {
                bail!("carekey serve exited early: {status}");
            }
            if let Ok(response) = client.get(&ready).send().await {
                if response.status() == 200 {
                    server.ready_after = started.elapsed();
                    return Ok(server);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!("carekey serve did not become ready within 60 s")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in MiB (`VmRSS`, `VmHWM`).
    pub fn memory_mib(&self) -> anyhow::Result<(f64, f64)> {
        memory_mib(self.pid())
    }

    /// CPU time the process has used so far, all its threads, user and
    /// kernel.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(self.pid())
    }

    /// Bytes the process has handed to `write` and its kin so far, to files
    /// and sockets alike (`wchar` in `/proc/<pid>/io`).
    pub fn written_bytes(&self) -> anyhow::Result<u64> {
        let pid = self.pid();
        let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
        written_chars(&io).with_context(|| format!("cannot read /proc/{pid}/io"))
    }
}

/// `wchar` from the text of a `/proc/<pid>/io`.
fn written_chars(io: &str) -> anyhow::Result<u64> {
    let value = io
        .lines()
        .find_map(|line| line.strip_prefix("wchar:"))
        .context("no wchar")?;
    Ok(value.trim().parse()?)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
pub fn memory_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: f64 = line.trim().trim_end_matches("kB").trim().parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Linux reports a process's CPU times in `USER_HZ` ticks, 100 a second on
/// every architecture (the kernel's own `HZ` may differ; this does not).
const USER_HZ: u64 = 100;

/// `utime` + `stime` of a process (`/proc/<pid>/stat`, fields 14 and 15).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// `utime` + `stime` from the text of a `/proc/<pid>/stat`.
fn cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    // The command name, in parentheses, may hold spaces and parentheses:
    // count the fields after the last `)`, the first of them field 3.
    let (_, after_name) = stat.rsplit_once(')').context("no command name")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> anyhow::Result<u64> {
        let value = fields
            .get(number - 3)
            .with_context(|| format!("no field {number}"))?;
        Ok(value.parse()?)
    };
    Ok(field(14)? + field(15)?)
}

/// A `carekey worker` process (the outbox worker alone), stopped when dropped.
pub struct Worker {
    child: Child,
}

impl Worker {
    pub fn start(binary: &Path, config: &ServerConfig) -> anyhow::Result<Self> {
        let child = config
            .command(binary, "worker")
            .spawn()
            .with_context(|| format!("cannot start {} worker", binary.display()))?;
        Ok(Self { child })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_ticks, written_chars};

    #[test]
    fn written_chars_are_read_from_their_own_line() {
        let io = "rchar: 4096\nwchar: 1112357632\nsyscr: 8\nsyscw: 510634\n\
                  read_bytes: 0\nwrite_bytes: 950288384\ncancelled_write_bytes: 0\n";
        assert_eq!(written_chars(io).unwrap(), 1_112_357_632);
        assert!(written_chars("rchar: 1\n").is_err());
    }

    #[test]
    fn cpu_ticks_are_user_and_kernel_counted_after_the_name() {
        // A name with a space and a parenthesis, as a thread may be named.
        let stat = "4242 (tokio rt) x) S 1 4242 4242 0 -1 4194560 2071 0 0 0 \
                    1234 567 0 0 20 0 9 0 8311 1200000000 5000 18446744073709551615";
        assert_eq!(cpu_ticks(stat).unwrap(), 1234 + 567);
        assert!(cpu_ticks("4242 (carekey) S 1 2").is_err());
    }
}
