//! The run's figures as Markdown: printed as they come, then written into
//! docs/BENCHMARKS.md between its generated-section markers.

use anyhow::Context;
use std::fmt::Write as _;
use std::path::Path;

const BEGIN: &str = "<!-- carekey-bench: generated, do not edit by hand -->";
const END: &str = "<!-- carekey-bench: end -->";

/// One goal and whether the run met it.
pub struct Goal {
    pub figure: String,
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Default)]
pub struct Report {
    goals: Vec<Goal>,
    sections: Vec<String>,
}

impl Report {
    pub fn goal(&mut self, figure: &str, goal: &str, measured: String, met: bool) {
        println!(
            "  goal {figure}: {goal} — {measured} — {}",
            if met { "met" } else { "missed" }
        );
        self.goals.push(Goal {
            figure: figure.into(),
            goal: goal.into(),
            measured,
            met,
        });
    }

    /// A section: a heading, then Markdown (tables, notes).
    pub fn section(&mut self, title: &str, body: String) {
        println!("\n## {title}\n{body}");
        self.sections.push(format!("### {title}\n\n{body}"));
    }

    pub fn markdown(&self, machine: &str, command: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}");
        let _ = writeln!(
            out,
            "## Latest run: `{command}`\n\nMachine: {machine}. Run {} (UTC). Release build; server, database and load generator share the machine.\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M")
        );
        let _ = writeln!(out, "| figure | goal | measured | |\n|---|---|---|---|");
        for goal in &self.goals {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                goal.figure,
                goal.goal,
                goal.measured,
                if goal.met { "met" } else { "**missed**" }
            );
        }
        for section in &self.sections {
            let _ = writeln!(out, "\n{section}");
        }
        let _ = writeln!(out, "{END}");
        out
    }

    /// Replaces the generated section of `path` (or puts it after the first heading).
    pub fn write_into(&self, path: &Path, machine: &str, command: &str) -> anyhow::Result<()> {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let generated = self.markdown(machine, command);
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(begin), Some(end)) if end > begin => {
                format!(
                    "{}{}\n{}",
                    &old[..begin],
                    generated,
                    old[end + END.len()..].trim_start_matches('\n')
                )
            }
            _ => {
                let split = old.find("\n## ").map_or(old.len(), |i| i + 1);
                format!("{}{}\n{}", &old[..split], generated, &old[split..])
            }
        };
        std::fs::write(path, new)?;
        Ok(())
    }
}

/// `1,234` for counts in tables.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
