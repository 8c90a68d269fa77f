//! The diagnosis as a network engineer's checklist: per tunnel, six numbered checks with
//! their verdict, what was seen, and under the first failing one its likely causes and the
//! evidence for each.
use std::{fmt, time::Duration};

use super::{Diagnosis, StepReport, TunnelDiagnosis, Verdict};
use crate::duration::format_duration;

impl Verdict {
    /// Six characters, so the checklist lines up.
    #[must_use]
    pub const fn tag(self) -> &'static str {
        match self {
            Verdict::Pass => "[PASS]",
            Verdict::Warn => "[WARN]",
            Verdict::Fail => "[FAIL]",
            Verdict::NotChecked => "[ -- ]",
            Verdict::NotApplicable => "[ n/a]",
            Verdict::Skipped => "[skip]",
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Virtual Connect {} · {} mode · agent up {}",
            self.region,
            self.mode,
            format_duration(Duration::from_secs(self.uptime_s))
        )?;
        if !self.datapath_faults.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "[FAIL] the datapath is not whole (the agent re-attaches within 2 s; until \
                 then the backstop routes keep the protected prefixes off the WAN):"
            )?;
            for fault in &self.datapath_faults {
                writeln!(f, "       {fault}")?;
            }
        }
        for t in &self.tunnels {
            writeln!(f)?;
            write!(f, "{t}")?;
        }
        writeln!(f)?;
        let failing: Vec<String> = self
            .tunnels
            .iter()
            .filter_map(|t| {
                let step = t.step(t.first_failure?);
                let causes: Vec<&str> = step.causes.iter().map(|c| c.cause.label()).collect();
                let cause = if causes.is_empty() {
                    String::new()
                } else {
                    format!(", likely {}", causes.join(" or "))
                };
                Some(format!(
                    "tunnel {} fails at step {} ({}){cause}",
                    t.ends.id.key().to_uppercase(),
                    step.number,
                    step.title
                ))
            })
            .collect();
        let mut failing = failing;
        if !self.datapath_faults.is_empty() {
            failing.insert(0, "the datapath is not whole".to_string());
        }
        if failing.is_empty() {
            writeln!(f, "Result: every step passes on every tunnel.")
        } else {
            writeln!(f, "Result: {}.", failing.join("; "))
        }
    }
}

impl fmt::Display for TunnelDiagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Tunnel {}", self.ends.headline(None))?;
        for step in &self.steps {
            write!(f, "{step}")?;
        }
        match self.first_failure {
            Some(s) => writeln!(f, "  => first failing step: {}. {}", s.number(), s.title()),
            None => writeln!(f, "  => all steps pass"),
        }
    }
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {} {}. {}",
            self.verdict.tag(),
            self.number,
            self.title
        )?;
        if self.verdict == Verdict::NotChecked {
            writeln!(
                f,
                "         not checked, an earlier step failed (seen: {})",
                self.detail
            )?;
        } else {
            writeln!(f, "         {}", self.detail)?;
        }
        for c in &self.causes {
            writeln!(f, "         likely cause ({}): {}", c.cause.label(), c.text)?;
            for e in &c.evidence {
                writeln!(f, "           evidence: {e}")?;
            }
        }
        Ok(())
    }
}
