//! What a reload (`vc-agent reload`, SIGHUP) may change on a running agent, and what it must
//! leave to a restart. Pure: the old and the new config (and their plans) in, a typed list of
//! changes out; the agent carries them out.
//!
//! Applied live, each touching only its tunnel:
//! - the BGP password and the ASNs (what the tunnel's [`crate::bgp::NeighborConfig`] is made
//!   of): that session alone is reset (Cease, then a new session with the new settings);
//! - the IKE/ESP settings and the PSK: the tunnel's connection and secret are loaded into
//!   charon again (new proposals apply from the next negotiation; the SAs stay up).
//!
//! Everything else (interfaces, addresses, prefixes, MTU/MSS, keepalives, the agent's and
//! charon's settings, the graceful-restart time) shapes the datapath or a task built at start:
//! the reload is refused, naming those fields, and nothing is changed.
use std::collections::BTreeSet;

use serde_json::Value;

use super::Plan;
use crate::{
    bgp::{NeighborConfig, fsm::GracefulRestart},
    config::{Config, Secret, SecretError, TunnelId},
};

/// The fields of `[tunnel.x]` a reload applies by resetting that tunnel's BGP session (the
/// BGP password is a secret, never serialized, and is compared resolved).
const BGP_FIELDS: [&str; 2] = ["cisco_asn", "cpe_asn"];
/// The fields of `[tunnel.x]` a reload applies by loading the tunnel's IKE connection again
/// (the PSK likewise compared resolved).
const IKE_FIELDS: [&str; 8] = [
    "ike_proposals",
    "esp_proposals",
    "ike_lifetime_s",
    "esp_lifetime_s",
    "dpd_interval_s",
    "replay_window",
    "cpe_ike_id",
    "dc_ike_id",
];

/// What a new config changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Tunnels whose BGP session is reset with the new neighbour settings.
    pub bgp: Vec<TunnelId>,
    /// Tunnels whose IKE connection (proposals, lifetimes, identities, PSK) is loaded again.
    pub ike: Vec<TunnelId>,
    /// Fields that changed and only a restart applies (dotted, as in `vc.toml`).
    pub need_restart: Vec<String>,
}

impl Changes {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bgp.is_empty() && self.ike.is_empty() && self.need_restart.is_empty()
    }
}

/// Compares the running config with a new one (both valid; the plans made from them). Reads
/// the PSKs, to see a changed one in a file or the environment.
pub fn changes(
    old: &Config,
    old_plan: &Plan,
    new: &Config,
    new_plan: &Plan,
) -> Result<Changes, SecretError> {
    let mut need_restart = BTreeSet::new();
    let old_value = serde_json::to_value(old).unwrap_or_default();
    let new_value = serde_json::to_value(new).unwrap_or_default();
    differing("", &old_value, &new_value, &mut need_restart);
    need_restart.retain(|field| !live(field));
    let terminated = |c: &Config| c.terminated().map(|(id, _)| id).collect::<Vec<_>>();
    if terminated(old) != terminated(new) {
        need_restart.insert("deployment (the tunnels this CPE terminates)".into());
    }
    if old_plan.datapath != new_plan.datapath && need_restart.is_empty() {
        // Every field the datapath is made of is named above; this only guards that rule.
        need_restart.insert("the datapath".into());
    }
    let mut bgp = Vec::new();
    let mut ike = Vec::new();
    for (id, _) in new.terminated() {
        if !same_neighbor(neighbor(old_plan, id), neighbor(new_plan, id)) {
            bgp.push(id);
        }
        if ike_changed(old, new, id)? {
            ike.push(id);
        }
    }
    Ok(Changes {
        bgp,
        ike,
        need_restart: need_restart.into_iter().collect(),
    })
}

/// A field a reload applies: `tunnel.<x>.<one of BGP_FIELDS or IKE_FIELDS>`, in the file's
/// region or an `extra_region[i]`.
fn live(field: &str) -> bool {
    let in_region = field
        .strip_prefix("extra_region[")
        .and_then(|rest| rest.split_once("]."))
        .map_or(field, |(_, rest)| rest);
    let mut parts = in_region.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("tunnel"), Some("a" | "b"), Some(name), None)
            if BGP_FIELDS.contains(&name) || IKE_FIELDS.contains(&name)
    )
}

fn neighbor(plan: &Plan, id: TunnelId) -> Option<&NeighborConfig> {
    plan.tunnels
        .iter()
        .find(|t| t.id == id)
        .map(|t| &t.neighbor)
}

/// The neighbours compared without graceful restart: the restart flag is the agent's run
/// state, and the restart time a field only a restart applies (named on its own).
fn same_neighbor(old: Option<&NeighborConfig>, new: Option<&NeighborConfig>) -> bool {
    let plain = |n: Option<&NeighborConfig>| {
        n.cloned().map(|mut n| {
            n.graceful_restart = GracefulRestart::default();
            n
        })
    };
    plain(old) == plain(new)
}

fn ike_changed(old: &Config, new: &Config, id: TunnelId) -> Result<bool, SecretError> {
    let (Some(o), Some(n)) = (old.tunnel(id), new.tunnel(id)) else {
        return Ok(true);
    };
    let fields = |t: &crate::config::Tunnel| {
        (
            t.ike_proposals.clone(),
            t.esp_proposals.clone(),
            t.ike_lifetime_s,
            t.esp_lifetime_s,
            t.dpd_interval_s,
            t.replay_window,
            t.cpe_ike_id.clone(),
            t.dc_ike_id.clone(),
        )
    };
    if fields(o) != fields(n) {
        return Ok(true);
    }
    let psk = |t: &crate::config::Tunnel| t.ike_psk.as_ref().map(Secret::resolve).transpose();
    Ok(psk(o)? != psk(n)?)
}

/// The dotted paths where `a` and `b` differ (a table's keys one by one, an array of tables
/// of unchanged length item by item as `name[i]`; anything else whole).
fn differing(path: &str, a: &Value, b: &Value, out: &mut BTreeSet<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                differing(
                    &sub,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b))
            if a.len() == b.len() && a.iter().all(Value::is_object) =>
        {
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                differing(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (a, b) if a != b => {
            out.insert(path.to_string());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{Changes, changes};
    use crate::{
        agent::plan,
        config::{Config, Secret, TunnelId, parse, tests::VALID},
    };

    fn config() -> Config {
        parse(VALID).expect("config")
    }

    fn diff(new: &Config) -> Changes {
        let old = config();
        changes(
            &old,
            &plan(&old).expect("plan"),
            new,
            &plan(new).expect("plan"),
        )
        .expect("changes")
    }

    fn tunnel_a(c: &mut Config) -> &mut crate::config::Tunnel {
        c.tunnel.a.as_mut().expect("tunnel a")
    }

    #[test]
    fn the_same_config_changes_nothing() {
        assert!(diff(&config()).is_empty());
    }

    #[test]
    fn a_bgp_password_or_asn_resets_only_its_session() {
        let mut c = config();
        tunnel_a(&mut c).bgp_password = Some(Secret::inline("another-password"));
        assert_eq!(
            diff(&c),
            Changes {
                bgp: vec![TunnelId::A],
                ..Changes::default()
            }
        );
        let mut c = config();
        c.tunnel.b.as_mut().expect("b").cisco_asn = 64_999;
        assert_eq!(diff(&c).bgp, vec![TunnelId::B]);
        assert!(diff(&c).need_restart.is_empty());
    }

    #[test]
    fn a_second_regions_tunnel_reloads_alone_and_its_prefixes_need_a_restart() {
        use crate::config::{Side, tests::two_regions};
        let old = parse(&two_regions("", "")).expect("config");
        let changes_to = |new: &Config| {
            changes(
                &old,
                &plan::plan(&old).expect("plan"),
                new,
                &plan::plan(new).expect("plan"),
            )
            .expect("changes")
        };
        let mut new = old.clone();
        let b = new.extra_region[0].tunnel.b.as_mut().expect("b");
        b.esp_proposals = vec!["aes128gcm16".into()];
        b.cisco_asn = 64_999;
        let second_b = TunnelId::new(1, Side::B);
        assert_eq!(
            changes_to(&new),
            Changes {
                bgp: vec![second_b],
                ike: vec![second_b],
                need_restart: vec![],
            }
        );
        let mut new = old.clone();
        new.extra_region[0].cisco.dc1_prefix = "198.18.9.128/25".parse().unwrap();
        new.extra_region[0].cisco.dc2_prefix = "198.18.9.0/25".parse().unwrap();
        assert_eq!(
            changes_to(&new).need_restart,
            [
                "extra_region[0].cisco.dc1_prefix",
                "extra_region[0].cisco.dc2_prefix"
            ]
        );
        let mut new = old.clone();
        new.extra_region.clear();
        assert!(
            changes_to(&new)
                .need_restart
                .iter()
                .any(|f| f == "extra_region"),
            "a region removed is a restart"
        );
    }

    #[test]
    fn an_ike_proposal_or_psk_reloads_only_its_connection() {
        let mut c = config();
        tunnel_a(&mut c).esp_proposals = vec!["aes128gcm16".into()];
        assert_eq!(
            diff(&c),
            Changes {
                ike: vec![TunnelId::A],
                ..Changes::default()
            }
        );
        let mut c = config();
        c.tunnel.b.as_mut().expect("b").ike_psk = Some(Secret::inline("a-new-psk-value"));
        assert_eq!(diff(&c).ike, vec![TunnelId::B]);
        assert!(diff(&c).bgp.is_empty());
    }

    #[test]
    fn what_shapes_the_datapath_needs_a_restart_and_is_named() {
        let mut c = config();
        c.interfaces.wan = "eth9".into();
        tunnel_a(&mut c).mtu = 1_300;
        tunnel_a(&mut c).cpe_asn = 65_011;
        c.agent.log_level = "debug".into();
        c.bgp.graceful_restart_time_s = 60;
        let d = diff(&c);
        assert_eq!(
            d.need_restart,
            [
                "agent.log_level",
                "bgp.graceful_restart_time_s",
                "interfaces.wan",
                "tunnel.a.mtu"
            ]
        );
        assert_eq!(d.bgp, vec![TunnelId::A], "the live part is still found");
    }

    #[test]
    fn a_tunnel_more_or_less_needs_a_restart() {
        let mut c = config();
        c.deployment.model = crate::config::DeploymentModel::TwoCpes;
        c.deployment.tunnel = Some(crate::config::Side::A);
        let d = diff(&c);
        assert!(
            d.need_restart.iter().any(|f| f.starts_with("deployment")),
            "{d:?}"
        );
    }
}
