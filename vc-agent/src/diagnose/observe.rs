//! What `vc-agent diagnose` looks at: the agent's status, a ping over each tunnel, and the
//! status again, so that counters which moved in between are live evidence. In IPsec mode the
//! SA counters only move when the agent refreshes them from charon (every [`SA_REFRESH`]):
//! when the tree leans on them (a tunnel's keepalives do not flow), the second look waits
//! for a refresh, else "no ESP in during the probe" would only mean "not refreshed yet".
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use super::{Diagnosis, Observation, Step, diagnose, probe};
use crate::{config::Config, ipsec::control::TICK as SA_REFRESH, socket::query, status::Mode};

/// After a refresh, time for the agent to have it in its status.
const MARGIN: Duration = Duration::from_millis(500);

/// `vc-agent diagnose` (R24): observes the running agent of `config` and walks the tree.
pub async fn run(config: &Config) -> Result<Diagnosis> {
    let started = Instant::now();
    let before = query(config).await?;
    let probed = before.clone();
    let pings = tokio::task::spawn_blocking(move || probe::ping_tunnels(&probed)).await?;
    let mut o = Observation {
        status: query(config).await?,
        before: Some(before),
        pings,
    };
    let mut d = diagnose(&o);
    if needs_sa_refresh(&d) {
        tokio::time::sleep_until(started + SA_REFRESH + MARGIN).await;
        o.status = query(config).await?;
        d = diagnose(&o);
    }
    Ok(d)
}

/// IPsec mode, and a tunnel fails at the keepalives: the ESP counters decide the cause.
fn needs_sa_refresh(d: &Diagnosis) -> bool {
    d.mode == Mode::Ipsec
        && d.tunnels
            .iter()
            .any(|t| t.first_failure == Some(Step::Keepalives))
}

#[cfg(test)]
mod tests {
    use super::needs_sa_refresh;
    use crate::{
        diagnose::{Diagnosis, Step, TunnelDiagnosis},
        status::{Mode, TunnelEnds, TunnelId},
    };

    fn failing_at(mode: Mode, step: Option<Step>) -> Diagnosis {
        Diagnosis {
            region: "LAB".into(),
            mode,
            uptime_s: 60,
            datapath_faults: Vec::new(),
            tunnels: vec![TunnelDiagnosis {
                ends: TunnelEnds {
                    id: TunnelId::A,
                    region: "EMEA".into(),
                    dc: 1,
                    interface: "vc-dc1".into(),
                    local_gre: [198, 51, 100, 1].into(),
                    remote_gre: [198, 18, 1, 1].into(),
                    local_tunnel_ip: "100.64.0.1/30".parse().expect("prefix"),
                    dc_tunnel_ip: [100, 64, 0, 2].into(),
                },
                steps: Vec::new(),
                first_failure: step,
            }],
        }
    }

    #[test]
    fn waits_for_esp_counters_only_when_they_decide() {
        assert!(needs_sa_refresh(&failing_at(
            Mode::Ipsec,
            Some(Step::Keepalives)
        )));
        assert!(!needs_sa_refresh(&failing_at(Mode::Ipsec, Some(Step::Bgp))));
        assert!(!needs_sa_refresh(&failing_at(Mode::Ipsec, None)));
        assert!(!needs_sa_refresh(&failing_at(
            Mode::ExternalIpsec,
            Some(Step::Keepalives)
        )));
    }
}
