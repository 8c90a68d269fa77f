//! Fail closed, the control-plane half: XFRM `block` policies for GRE between each tunnel's
//! transport IPs, below charon's own policies.
//!
//! While charon's policy for a tunnel exists (trap or with an SA), it matches first and GRE is
//! encrypted (or held until the SA is up). Whenever it does not (SA being replaced, charon
//! stopped, charon killed and restarting, connection not loaded yet), the block policy
//! matches and the kernel drops the GRE packet (`XfrmOutPolBlock`) instead of sending it in
//! clear. The BPF WAN egress guard is the datapath half.
//!
//! Precedence: a lower XFRM priority value wins. charon 5.9.8 gives a `/32 ↔ /32 proto gre`
//! policy `2 × 200000 − 64 × 512 − 256 − 1 = 366975` (`366976` for a trap), see
//! `get_priority()` in `kernel_netlink_ipsec.c`. [`BLOCK_PRIORITY`] is above that, and below
//! the `399999` charon gives a catch-all `0/0 ↔ 0/0` policy, so someone else's catch-all
//! tunnel cannot carry vc's GRE either. The block policies outlive the agent (the kernel
//! keeps them) and are reconciled at each start: vc's are those with exactly this priority,
//! `action block`, proto 47 (or ICMP type 3, below) and /32 selectors.
//!
//! One more, out only: ICMP destination-unreachable from our GRE address to the DC's. When
//! decrypted GRE reaches the kernel instead of vc's WAN receive (detached, or its clsact
//! qdisc deleted, until the datapath watch puts it back), the kernel answers "protocol
//! unreachable" quoting the decrypted packet: the DC's inner addresses, in clear. Blocked, the
//! kernel's ICMP route lookup fails and no error is sent (charon's GRE policies have no
//! `icmp` flag, so the quoted flow finds no SA either).
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_xfrm::{
    XfrmAttrs,
    constants::{XFRM_POLICY_BLOCK, XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_POLICY_TYPE_MAIN},
};

use crate::config::Config;

/// vc's block policies' priority: lower precedence than charon's GRE policies (≤ 366976),
/// higher than a catch-all (399999).
pub const BLOCK_PRIORITY: u32 = 383_000;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// ICMP destination unreachable (protocol and port unreachable among its codes).
pub const ICMP_DEST_UNREACH: u8 = 3;
/// The mark mask of vc's block policies (see the module doc); values 0 and 1.
const MARK_MASK: u32 = 1;

/// Which way a block policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Locally generated GRE towards the DC.
    Out,
    /// GRE from the DC delivered locally without ESP.
    In,
}

impl Direction {
    fn kernel(self) -> u8 {
        match self {
            Direction::Out => XFRM_POLICY_OUT,
            Direction::In => XFRM_POLICY_IN,
        }
    }
}

/// What a block policy blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Blocked {
    /// GRE.
    Gre,
    /// ICMP destination-unreachable (out only: see the module doc).
    IcmpUnreachable,
}

/// One block policy: `what` from `src` to `dst` (host /32s) in `dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockPolicy {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dir: Direction,
    pub what: Blocked,
}

/// What [`sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<BlockPolicy>,
    pub removed: Vec<BlockPolicy>,
    pub kept: Vec<BlockPolicy>,
}

/// A netlink failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("XFRM {what}: {source}")]
pub struct PolicyError {
    what: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn err(
    what: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> PolicyError {
    PolicyError {
        what: what.into(),
        source: Box::new(source),
    }
}

/// The block policies a config needs: GRE out and in and ICMP unreachable out for each
/// terminated tunnel, none in `external-ipsec` mode (the GRE leaves in clear on purpose, to
/// the box that encrypts it).
#[must_use]
pub fn desired(config: &Config) -> Vec<BlockPolicy> {
    if !config.ipsec() {
        return Vec::new();
    }
    let mut all: Vec<BlockPolicy> = config
        .terminated()
        .flat_map(|(_, t)| {
            [
                BlockPolicy {
                    src: t.cpe_gre_address,
                    dst: t.dc_gre_address,
                    dir: Direction::Out,
                    what: Blocked::Gre,
                },
                BlockPolicy {
                    src: t.dc_gre_address,
                    dst: t.cpe_gre_address,
                    dir: Direction::In,
                    what: Blocked::Gre,
                },
                BlockPolicy {
                    src: t.cpe_gre_address,
                    dst: t.dc_gre_address,
                    dir: Direction::Out,
                    what: Blocked::IcmpUnreachable,
                },
            ]
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

fn handle() -> Result<xfrmnetlink::Handle, PolicyError> {
    let (connection, handle, _) =
        xfrmnetlink::new_connection().map_err(|e| err("netlink socket", e))?;
    tokio::spawn(connection);
    Ok(handle)
}

/// One kernel entry of a block policy: the policy, its mark value (0 or 1), its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Installed {
    pub policy: BlockPolicy,
    pub mark: u32,
    pub index: u32,
}

/// vc's block policy entries now in the kernel (of the calling thread's network namespace).
pub async fn installed() -> Result<Vec<Installed>, PolicyError> {
    let handle = handle()?;
    let mut dump = handle.policy().get_dump().execute();
    let mut ours = Vec::new();
    while let Some(msg) = dump.try_next().await.map_err(|e| err("policy dump", e))? {
        let p = &msg.user_policy_info;
        let s = &p.selector;
        let dir = match p.direction {
            XFRM_POLICY_OUT => Direction::Out,
            XFRM_POLICY_IN => Direction::In,
            _ => continue,
        };
        let mark = msg.nlas.iter().find_map(|a| match a {
            XfrmAttrs::Mark(m) => Some((m.value, m.mask)),
            _ => None,
        });
        let Some((mark, MARK_MASK)) = mark else {
            continue;
        };
        let what = match (s.proto, s.sport, s.sport_mask) {
            (IPPROTO_GRE, 0, 0) => Blocked::Gre,
            (IPPROTO_ICMP, t, u16::MAX) if t == u16::from(ICMP_DEST_UNREACH) => {
                Blocked::IcmpUnreachable
            }
            _ => continue,
        };
        if p.priority == BLOCK_PRIORITY
            && p.action == XFRM_POLICY_BLOCK
            && s.family == u16::try_from(libc::AF_INET).unwrap_or_default()
            && s.prefixlen_s == 32
            && s.prefixlen_d == 32
        {
            let policy = BlockPolicy {
                src: s.saddr.to_ipv4(),
                dst: s.daddr.to_ipv4(),
                dir,
                what,
            };
            ours.push(Installed {
                policy,
                mark,
                index: p.index,
            });
        }
    }
    ours.sort();
    Ok(ours)
}

/// Makes vc's block policies exactly `want`: adds the missing ones first, then removes the
/// stale ones, so no GRE flow loses its block on the way.
pub async fn sync(want: &[BlockPolicy]) -> Result<SyncReport, PolicyError> {
    let have = installed().await?;
    let mut report = SyncReport::default();
    let handle = handle()?;
    for p in want {
        let mut added = false;
        for mark in [0, 1] {
            if have.iter().any(|h| h.policy == *p && h.mark == mark) {
                continue;
            }
            let add = handle
                .policy()
                .add(IpAddr::V4(p.src), 32, IpAddr::V4(p.dst), 32)
                .direction(p.dir.kernel())
                .action(XFRM_POLICY_BLOCK)
                .ptype(XFRM_POLICY_TYPE_MAIN)
                .priority(BLOCK_PRIORITY)
                .mark(mark, MARK_MASK);
            let add = match p.what {
                Blocked::Gre => add.selector_protocol(IPPROTO_GRE),
                Blocked::IcmpUnreachable => add
                    .selector_protocol(IPPROTO_ICMP)
                    .selector_protocol_type(ICMP_DEST_UNREACH),
            };
            add.execute()
                .await
                .map_err(|e| err(format!("adding block {p:?} mark {mark}"), e))?;
            added = true;
        }
        if added {
            report.added.push(*p);
        } else {
            report.kept.push(*p);
        }
    }
    for h in have {
        if want.contains(&h.policy) {
            continue;
        }
        handle
            .policy()
            .delete_index(h.index)
            .direction(h.policy.dir.kernel())
            .mark(h.mark, MARK_MASK)
            .execute()
            .await
            .map_err(|e| err(format!("removing block {:?}", h.policy), e))?;
        if !report.removed.contains(&h.policy) {
            report.removed.push(h.policy);
        }
    }
    if !report.added.is_empty() || !report.removed.is_empty() {
        tracing::info!(added = ?report.added, removed = ?report.removed, "XFRM block policies");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::{BLOCK_PRIORITY, Blocked, Direction, desired};
    use crate::config::{Mode, parse, tests::VALID};

    #[test]
    fn priority_sits_between_charons_gre_and_catch_all_policies() {
        // charon 5.9.8 get_priority(): PRIO_BASE 200000, /32+/32 (64 × 512), proto (256),
        // minus 1 unless routed (trap).
        let charon_gre_default = 2 * 200_000 - 64 * 512 - 256 - 1;
        let charon_catch_all = 2 * 200_000 - 1;
        assert_eq!(charon_gre_default, 366_975);
        assert!(BLOCK_PRIORITY > charon_gre_default + 1 && BLOCK_PRIORITY < charon_catch_all);
    }

    #[test]
    fn both_directions_per_terminated_tunnel_and_none_in_external_mode() {
        let mut c = parse(VALID).expect("config");
        let d = desired(&c);
        assert_eq!(d.len(), 6);
        assert!(d.iter().any(|p| p.dir == Direction::Out
            && p.what == Blocked::IcmpUnreachable
            && p.src.to_string() == "203.0.113.10"
            && p.dst.to_string() == "192.0.2.21"));
        assert!(
            d.iter()
                .all(|p| p.what == Blocked::Gre || p.dir == Direction::Out),
            "ICMP is blocked out only"
        );
        assert!(d.iter().any(|p| p.dir == Direction::Out
            && p.src.to_string() == "203.0.113.10"
            && p.dst.to_string() == "192.0.2.21"));
        assert!(d.iter().any(|p| p.dir == Direction::In
            && p.src.to_string() == "192.0.2.11"
            && p.dst.to_string() == "203.0.113.10"));
        c.mode = Mode::ExternalIpsec;
        assert!(desired(&c).is_empty());
    }
}
