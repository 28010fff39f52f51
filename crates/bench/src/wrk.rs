//! The load generator: Debian's `wrk`, driven by a Lua script that sends the
//! given request bodies in random order and prints its figures as one JSON line.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::io::Write;
use std::process::{Command, Stdio};

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Load {
    pub requests: u64,
    /// Responses other than 2xx, plus socket errors and timeouts.
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

/// What to send: a method and path, and for a POST the JSON bodies to choose from.
pub struct Traffic {
    pub path: String,
    pub bodies: Vec<String>,
}

impl Traffic {
    pub fn get(path: &str) -> Self {
        Self {
            path: path.into(),
            bodies: Vec::new(),
        }
    }

    pub fn post(path: &str, bodies: Vec<String>) -> Self {
        Self {
            path: path.into(),
            bodies,
        }
    }

    fn script(&self) -> String {
        let mut lua = String::new();
        if !self.bodies.is_empty() {
            lua.push_str("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal bodies = {\n");
            for body in &self.bodies {
                lua.push_str(&format!("  {},\n", lua_string(body)));
            }
            // Each request is formatted once, per wrk thread, not once per
            // request: the load generator shares the server's cores.
            lua.push_str(
                "}\nlocal requests = {}\n\
                 init = function(args)\n  for i, body in ipairs(bodies) do requests[i] = wrk.format(nil, nil, nil, body) end\nend\n\
                 request = function()\n  return requests[math.random(#requests)]\nend\n",
            );
        }
        lua.push_str(
            r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"errors":%d,"seconds":%f,"p50_ms":%f,"p99_ms":%f}\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"#,
        );
        lua
    }
}

fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether wrk is installed.
pub fn available() -> bool {
    Command::new("wrk")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs wrk against `base` for `seconds` over `connections` connections.
pub async fn run(
    base: &str,
    traffic: &Traffic,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<Load> {
    let mut script = tempfile::Builder::new().suffix(".lua").tempfile()?;
    script.write_all(traffic.script().as_bytes())?;
    let threads = connections.min(2);
    let output = tokio::process::Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(script.path())
        .arg(format!("{base}{}", traffic.path))
        .output()
        .await
        .context("cannot run wrk (apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("WRK ")) else {
        bail!(
            "wrk printed no figures: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    Ok(serde_json::from_str(line)?)
}
