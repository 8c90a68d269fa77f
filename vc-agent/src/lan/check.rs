//! The judgement of `[lan] default_requires` ([`LanCheck`]) against what the kernel showed
//! (pure).
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use crate::config::LanCheck;

/// What the kernel showed at one look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The LAN interface exists and is operationally up; `None`: it does not exist.
    pub link_up: Option<bool>,
    /// The main table's IPv4 prefixes (routes of every protocol but vc's).
    pub routes: Vec<Ipv4Net>,
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub check: LanCheck,
    pub ok: bool,
    /// What was seen, for people: `lan0 is down`, `no route 10.0.0.0/8`.
    pub seen: String,
}

/// The LAN side's health as judged from one look.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanHealth {
    pub checks: Vec<CheckOutcome>,
}

impl LanHealth {
    /// Judges `checks` against what was observed on `interface`.
    #[must_use]
    pub fn judge(checks: &[LanCheck], interface: &str, seen: &Observed) -> LanHealth {
        let checks = checks
            .iter()
            .map(|check| {
                let (ok, seen) = match check {
                    LanCheck::Link => match seen.link_up {
                        Some(true) => (true, format!("{interface} is up")),
                        Some(false) => (false, format!("{interface} is down")),
                        None => (false, format!("{interface} does not exist")),
                    },
                    LanCheck::Route(p) => {
                        if seen.routes.contains(p) {
                            (true, format!("route {p} present"))
                        } else {
                            (false, format!("no route {p}"))
                        }
                    }
                };
                CheckOutcome {
                    check: *check,
                    ok,
                    seen,
                }
            })
            .collect();
        LanHealth { checks }
    }

    /// Every check holds (no checks: always).
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks that fail, for a log line: `lan0 is down; no route 10.0.0.0/8`.
    #[must_use]
    pub fn failing(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.seen.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::{LanCheck, LanHealth, Observed};

    #[test]
    fn healthy_only_while_every_check_holds() {
        let checks = [LanCheck::Link, "route 10.0.0.0/8".parse().expect("route")];
        let mut seen = Observed {
            link_up: Some(true),
            routes: vec!["10.0.0.0/8".parse().expect("net")],
        };
        assert!(LanHealth::judge(&checks, "lan0", &seen).healthy());
        seen.link_up = Some(false);
        let h = LanHealth::judge(&checks, "lan0", &seen);
        assert!(!h.healthy());
        assert_eq!(h.failing(), "lan0 is down");
        seen.link_up = None;
        seen.routes.clear();
        assert_eq!(
            LanHealth::judge(&checks, "lan0", &seen).failing(),
            "lan0 does not exist; no route 10.0.0.0/8"
        );
        assert!(
            LanHealth::judge(&[], "lan0", &seen).healthy(),
            "no checks: always"
        );
    }
}
