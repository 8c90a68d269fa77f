//! Is the region up? Cisco's troubleshooting order per tunnel (R24): IKEv2 SA → IPsec child
//! SA (tunnel mode, GRE-only selectors) → GRE keepalives → tunnel-IP ping → BGP Established →
//! routes. Each step needs both sides to agree: the CPE's word (`vc-agent status --json`, its
//! kernel) and the DC's (its charon, its BIRD, its keepalive sender). A step is judged only
//! when the ones before it pass, as an engineer working down the list would.
use std::{
    collections::BTreeSet,
    fmt::{self, Write as _},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{dc::Dc, plan::DcPlan};
use crate::NetNs;

/// The steps, in order.
pub const STEPS: [&str; 6] = [
    "IKEv2 SA",
    "child SA",
    "GRE keepalives",
    "tunnel IP ping",
    "BGP session",
    "routes",
];

/// One step of one tunnel.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    /// `None`: not judged (an earlier step fails).
    pub ok: Option<bool>,
    pub detail: String,
    /// When it first passed, since the agent started.
    pub passed_after: Option<Duration>,
}

/// The steps of one tunnel.
#[derive(Clone, Debug)]
pub struct TunnelChecks {
    pub dc: &'static DcPlan,
    pub steps: Vec<Step>,
}

impl TunnelChecks {
    #[must_use]
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok == Some(true))
    }

    /// The first step that fails, if any.
    #[must_use]
    pub fn first_failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.ok == Some(false))
    }
}

/// Every tunnel's steps, updated in place so each step keeps the time it first passed.
#[derive(Clone, Debug)]
pub struct Checklist {
    pub since: Instant,
    pub tunnels: Vec<TunnelChecks>,
}

/// What one round of checks reads.
pub struct Evidence<'a> {
    /// `vc-agent status --json`, if the agent answered.
    pub status: Option<&'a Value>,
    /// `ip route show proto 201` on the CPE.
    pub kernel_routes: &'a str,
    pub cpe: &'a NetNs,
}

impl Checklist {
    #[must_use]
    pub fn new(since: Instant, dcs: &[Dc]) -> Checklist {
        Checklist {
            since,
            tunnels: dcs
                .iter()
                .map(|dc| TunnelChecks {
                    dc: dc.plan,
                    steps: STEPS
                        .iter()
                        .map(|name| Step {
                            name,
                            ok: None,
                            detail: String::new(),
                            passed_after: None,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[must_use]
    pub fn ok(&self) -> bool {
        self.tunnels.iter().all(TunnelChecks::ok)
    }

    /// Judges every step again; returns the steps that passed for the first time, as
    /// (tunnel index, step index).
    pub fn update(&mut self, evidence: &Evidence, dcs: &[Dc]) -> Vec<(usize, usize)> {
        let elapsed = self.since.elapsed();
        let mut newly = Vec::new();
        for (ti, (tunnel, dc)) in self.tunnels.iter_mut().zip(dcs).enumerate() {
            let results = judge(evidence, dc);
            for (si, step) in tunnel.steps.iter_mut().enumerate() {
                let (ok, detail) = results
                    .get(si)
                    .cloned()
                    .map_or((None, String::new()), |(ok, d)| (Some(ok), d));
                step.ok = ok;
                step.detail = detail;
                if ok == Some(true) && step.passed_after.is_none() {
                    step.passed_after = Some(elapsed);
                    newly.push((ti, si));
                }
            }
        }
        newly
    }

    /// One line about a step, for progress output.
    #[must_use]
    pub fn line(&self, tunnel: usize, step: usize) -> String {
        let t = &self.tunnels[tunnel];
        let s = &t.steps[step];
        format!(
            "{:>6}  tunnel {} → DC{}  ✓ {:<15} {}",
            s.passed_after
                .map_or_else(String::new, |d| format!("{:.1}s", d.as_secs_f64())),
            t.dc.key().to_ascii_uppercase(),
            t.dc.n,
            s.name,
            s.detail
        )
    }
}

impl fmt::Display for Checklist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tunnels {
            writeln!(
                f,
                "tunnel {} → DC{} ({}):",
                t.dc.key().to_ascii_uppercase(),
                t.dc.n,
                t.dc.interface()
            )?;
            for s in &t.steps {
                let mark = match s.ok {
                    Some(true) => "✓",
                    Some(false) => "✗",
                    None => "·",
                };
                let detail = if s.ok.is_none() {
                    "not checked: an earlier step fails"
                } else {
                    &s.detail
                };
                writeln!(f, "  {mark} {:<15} {detail}", s.name)?;
            }
        }
        Ok(())
    }
}

/// The tunnel's entry in the agent's status, by vc's key of it (`a`, `r2-a`, ...).
fn tunnel_status<'a>(status: Option<&'a Value>, dc: &DcPlan) -> Option<&'a Value> {
    status?["tunnels"]
        .as_array()?
        .iter()
        .find(|t| t["id"].as_str() == Some(dc.key().as_str()))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| text(s).to_string()).collect())
        .unwrap_or_default()
}

/// The steps in order, up to and including the first that fails.
fn judge(evidence: &Evidence, dc: &Dc) -> Vec<(bool, String)> {
    let plan = dc.plan;
    let Some(t) = tunnel_status(evidence.status, plan) else {
        return vec![(false, "no answer from `vc-agent status` yet".into())];
    };
    let sas = dc.sas();
    let steps: [&dyn Fn() -> (bool, String); 6] = [
        &|| ike(t, &sas, plan),
        &|| child(t, &sas, dc),
        &|| keepalives(t, dc),
        &|| ping(evidence.cpe, plan),
        &|| bgp(t, dc),
        &|| routes(t, dc, evidence.kernel_routes),
    ];
    let mut out = Vec::new();
    for step in steps {
        let (ok, detail) = step();
        out.push((ok, detail));
        if !ok {
            break;
        }
    }
    out
}

fn ike(t: &Value, sas: &super::dc::DcSas, plan: &DcPlan) -> (bool, String) {
    let ike = &t["ipsec"]["ike"];
    let cpe_up = ike["up"].as_bool() == Some(true);
    if cpe_up && sas.ike_established {
        return (
            true,
            format!(
                "{}, {} (DC{} agrees)",
                text(&ike["state"]),
                sas.ike_proposal,
                plan.n
            ),
        );
    }
    let error = &t["ipsec"]["last_error"];
    let why = if error.is_object() {
        // The meaning starts with the IKEv2 name (`AUTHENTICATION_FAILED: ...`).
        format!(", last error {}", text(&error["meaning"]))
    } else {
        String::new()
    };
    (
        false,
        format!(
            "CPE: {}{why}; DC{}: {}",
            if ike.is_object() {
                text(&ike["state"])
            } else {
                "no IKE SA"
            },
            plan.n,
            if sas.ike_established {
                "ESTABLISHED"
            } else {
                "no IKE SA"
            }
        ),
    )
}

fn child(t: &Value, sas: &super::dc::DcSas, dc: &Dc) -> (bool, String) {
    let plan = dc.plan;
    let c = &t["ipsec"]["child"];
    let (cpe_ts, dc_ts) = dc.selectors();
    let cpe_ok = text(&c["state"]) == "INSTALLED"
        && text(&c["mode"]) == "TUNNEL"
        && c["reqid"].as_u64() == Some(u64::from(plan.reqid()))
        && strings(&c["local_ts"]) == [cpe_ts.clone()]
        && strings(&c["remote_ts"]) == [dc_ts.clone()];
    let dc_ok = sas.child_installed
        && sas.child.contains("TUNNEL")
        && sas.local_ts == dc_ts
        && sas.remote_ts == cpe_ts;
    let ours = format!(
        "{} {} {} reqid {}, {} ⇄ {}",
        text(&c["state"]),
        text(&c["mode"]),
        text(&c["proposal"]),
        c["reqid"],
        strings(&c["local_ts"]).join(","),
        strings(&c["remote_ts"]).join(","),
    );
    let n = plan.n;
    let theirs = if dc_ok {
        format!("DC{n} agrees")
    } else if sas.child_installed {
        format!("DC{n}: {} {} ⇄ {}", sas.child, sas.local_ts, sas.remote_ts)
    } else {
        format!("DC{n}: no child SA")
    };
    (cpe_ok && dc_ok, format!("{ours} ({theirs})"))
}

fn keepalives(t: &Value, dc: &Dc) -> (bool, String) {
    let k = &t["keepalive"];
    let n = |key: &str| k[key].as_u64().unwrap_or(0);
    let (dc_sent, dc_back) = dc.keepalives();
    let n_dc = dc.plan.n;
    // Each end that sends keepalives gets them back, and some flow (R13 allows either end's
    // off: `keepalive_interval_s = 0` here, `no keepalive` at the DC).
    let ours_on = k["enabled"].as_bool().unwrap_or(true);
    let ok = (!ours_on || n("replies") > 0)
        && (dc_sent == 0 || dc_back > 0)
        && (n("replies") > 0 || dc_back > 0);
    (
        ok,
        format!(
            "ours: {} sent, {} answered by DC{n_dc}; DC{n_dc}'s: {dc_sent} sent, {dc_back} answered",
            n("sent"),
            n("replies"),
        ),
    )
}

fn ping(cpe: &NetNs, plan: &DcPlan) -> (bool, String) {
    let Ok(out) = cpe.sh_output(&format!("ping -n -c1 -W1 {}", plan.tunnel_ip)) else {
        return (false, "cannot run ping".into());
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let time = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("time="))
        .map_or_else(String::new, |t| format!(": {t} ms"));
    (
        out.status.success(),
        format!(
            "{} → {}{}",
            plan.cpe_tunnel_ip,
            plan.tunnel_ip,
            if out.status.success() {
                time
            } else {
                ": no reply".into()
            }
        ),
    )
}

fn bgp(t: &Value, dc: &Dc) -> (bool, String) {
    let b = &t["bgp"];
    let cpe_ok = b["established"].as_bool() == Some(true);
    let dc_state = dc.bgp_state().unwrap_or_else(|| "not running".into());
    let mut detail = format!(
        "{} with {}, AS {} ↔ AS {} (DC{}'s BIRD: {dc_state})",
        text(&b["state"]),
        text(&b["peer"]),
        b["local_asn"],
        b["remote_asn"],
        dc.plan.n
    );
    if !cpe_ok {
        for key in ["last_error", "diagnosis"] {
            if let Some(s) = b[key].as_str() {
                let _ = write!(detail, "; {s}");
            }
        }
    }
    (cpe_ok && dc_state == "Established", detail)
}

fn routes(t: &Value, dc: &Dc, kernel_routes: &str) -> (bool, String) {
    let plan = dc.plan;
    let accepted: BTreeSet<String> = strings(&t["accepted_prefixes"]).into_iter().collect();
    let expected: BTreeSet<String> = [plan.prefix, plan.cisco_prefix].map(str::to_string).into();
    let advertised = t["bgp"]["advertised"].as_u64().unwrap_or(0);
    let received = dc.received();
    let kernel = kernel_routes
        .lines()
        .find(|l| l.starts_with(&format!("{} ", plan.prefix)))
        .unwrap_or("")
        .trim()
        .to_string();
    let ok = accepted == expected
        && advertised == 1
        && received == ["0.0.0.0/0"]
        && kernel.contains(&format!("dev {}", plan.interface()));
    // The /25 first, as the form lists them.
    let accepted = if accepted == expected {
        format!("{} + {}", plan.prefix, plan.cisco_prefix)
    } else {
        accepted.into_iter().collect::<Vec<_>>().join(" + ")
    };
    let received = if received.is_empty() {
        "nothing".into()
    } else {
        received.join(", ")
    };
    (
        ok,
        format!(
            "accepted {accepted}; advertised {advertised}, DC{} got {received}; kernel: {}",
            plan.n,
            if kernel.is_empty() {
                "no route"
            } else {
                &kernel
            }
        ),
    )
}
