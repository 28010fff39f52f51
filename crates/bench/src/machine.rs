//! The machine a run measured: cores, CPU model, memory, OS, and the tools' versions.

use std::future::Future;
use std::process::Command;

pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|l| l.trim_matches('"').to_owned())
        .unwrap_or_else(|| "unknown OS".into());
    let wrk = first_line("wrk", &["-v"]);
    let postgres = first_line("psql", &["--version"]);
    format!(
        "{cores} cores ({model}), {memory_gib:.0} GiB, {os}; load from {wrk} on the same machine; {postgres}"
    )
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("{program} (not found)"))
}

/// The cores' time since boot, and the part of it the hypervisor gave to
/// others (`steal`), in clock ticks, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTicks {
    total: u64,
    steal: u64,
}

impl CpuTicks {
    /// Now; `None` where `/proc/stat` cannot be read.
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// From `/proc/stat`: `cpu user nice system idle iowait irq softirq steal
    /// …`; guest time is counted in user and nice already, so it is left out.
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        (ticks.len() == 8).then(|| Self {
            total: ticks.iter().sum(),
            steal: ticks[7],
        })
    }

    /// The share of the cores' time the hypervisor took between `self` and
    /// `later`, in percent.
    fn stolen_until(self, later: Self) -> f64 {
        let total = later.total.saturating_sub(self.total);
        let steal = later.steal.saturating_sub(self.steal);
        if total == 0 {
            0.0
        } else {
            100.0 * steal as f64 / total as f64
        }
    }
}

/// The time the hypervisor took from the cores during each step of a run:
/// on a virtual machine a step is slower when the host gives its cores to
/// others, and this says when.
#[derive(Debug, Default)]
pub struct Steal {
    steps: Vec<(&'static str, f64)>,
}

impl Steal {
    /// Runs one step of the suite, noting the share of the cores' time the
    /// hypervisor took while it ran.
    pub async fn measure<T>(&mut self, step: &'static str, run: impl Future<Output = T>) -> T {
        let begun = CpuTicks::now();
        let outcome = run.await;
        if let (Some(begun), Some(ended)) = (begun, CpuTicks::now()) {
            self.steps.push((step, begun.stolen_until(ended)));
        }
        outcome
    }

    /// For the machine's description: "time the hypervisor took from the
    /// cores (steal): start-up 0.2 %, …", or nothing if none was recorded.
    pub fn summary(&self) -> Option<String> {
        if self.steps.is_empty() {
            return None;
        }
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(step, percent)| format!("{step} {percent:.1} %"))
            .collect();
        Some(format!(
            "time the hypervisor took from the cores (steal, `/proc/stat`): {}",
            steps.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{CpuTicks, Steal};

    #[test]
    fn steal_is_read_from_the_cpu_line() {
        let stat = "cpu  533952 63275 154717 327495 6944 0 16497 21982 0 0\n\
                    cpu0 266976 31637 77358 163747 3472 0 8248 10991 0 0\n";
        let ticks = CpuTicks::parse(stat).unwrap();
        assert_eq!(ticks.steal, 21982);
        assert_eq!(
            ticks.total,
            533952 + 63275 + 154717 + 327495 + 6944 + 16497 + 21982
        );
        assert_eq!(CpuTicks::parse("intr 1 2 3\n"), None);
    }

    #[test]
    fn a_step_shows_the_share_of_its_ticks_that_was_stolen() {
        let begun = CpuTicks {
            total: 1_000,
            steal: 10,
        };
        let ended = CpuTicks {
            total: 1_400,
            steal: 38,
        };
        assert_eq!(begun.stolen_until(ended), 7.0);
        let mut steal = Steal::default();
        assert_eq!(steal.summary(), None);
        steal.steps.push(("recovery", begun.stolen_until(ended)));
        assert_eq!(
            steal.summary().unwrap(),
            "time the hypervisor took from the cores (steal, `/proc/stat`): recovery 7.0 %"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_measured_step_gives_its_outcome_and_is_named_in_the_summary() {
        let mut steal = Steal::default();
        let outcome = steal.measure("start-up", async { 42 }).await;
        assert_eq!(outcome, 42);
        let summary = steal.summary().unwrap();
        // The share itself is whatever the host took meanwhile.
        assert!(
            summary.contains("`/proc/stat`): start-up ") && summary.ends_with(" %"),
            "{summary}"
        );
    }
}
