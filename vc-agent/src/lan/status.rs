//! The LAN piece of the agent's status: whether vc advertises 0.0.0.0/0 to the DCs, and why
//! (each `[lan] default_requires` check with what was seen).
use std::fmt;

use serde::{Deserialize, Serialize};

use super::check::{CheckOutcome, LanHealth};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanStatus {
    pub interface: String,
    /// 0.0.0.0/0 may be advertised: every check holds (or there are none).
    pub default_advertised: bool,
    pub checks: Vec<CheckOutcome>,
}

impl LanStatus {
    #[must_use]
    pub fn new(interface: &str, health: &LanHealth) -> LanStatus {
        LanStatus {
            interface: interface.to_string(),
            default_advertised: health.healthy(),
            checks: health.checks.clone(),
        }
    }
}

impl fmt::Display for LanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.default_advertised {
            "advertised"
        } else {
            "WITHDRAWN"
        };
        if self.checks.is_empty() {
            return writeln!(
                f,
                "LAN {}: 0.0.0.0/0 {verdict} (no conditions)",
                self.interface
            );
        }
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|c| {
                format!(
                    "{} {} ({})",
                    c.check,
                    if c.ok { "ok" } else { "FAILS" },
                    c.seen
                )
            })
            .collect();
        writeln!(
            f,
            "LAN {}: 0.0.0.0/0 {verdict}; requires {}",
            self.interface,
            checks.join(", ")
        )
    }
}
