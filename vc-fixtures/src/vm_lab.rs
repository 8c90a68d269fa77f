//! The IPsec lab inside the VM (for the VM datapath tests and `vc-bench vm`): LAN host, CPE,
//! DC.
//!
//! ```text
//!  lan ──eth0/lan0── cpe ──wan0/wan0── dc (ip_gre gre1, 203.0.113.10 on lo)
//!  10.1.0.10         10.1.0.1  198.51.100.1   198.51.100.2
//!                    100.64.0.1/30 ~~~~~~~~~~ gre1 100.64.0.2/30   (GRE in ESP, reqid 1)
//! ```
//! The DC is Linux `ip_gre` + XFRM, keyed by hand (the IKE daemon's part is proven by the
//! IPsec tests). The CPE is vc, or, as the benchmarks' baseline, Linux `ip_gre` with the
//! same XFRM state.
use std::{net::Ipv4Addr, sync::Arc};

use vc_agent::datapath::{
    AttachMode, Datapath, DatapathMaps, DatapathSpec, Mode, TunnelSpec, reassembled,
};
use vc_common::{DropReason, Hook};
use vc_testkit::{NetNs, bpffs::TempBpfFs, veth};

pub use crate::block_on;

pub const CPE_GRE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const DC_GRE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const DC_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
/// An address outside the GRE-only policy: GRE to it leaves in clear (the negative control).
pub const OUTSIDE_POLICY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);

const KEY_TO_DC: &str = "0x0123456789abcdef0123456789abcdef01020304";
const KEY_TO_CPE: &str = "0xfedcba9876543210fedcba987654321004030201";
pub const KEY_OTHER: &str = "0x00112233445566778899aabbccddeeff0a0b0c0d";

/// What terminates the tunnel on the CPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cpe {
    Vc,
    KernelGre,
    /// Linux `ip_gre` set to build the outer header as vc does (`tos inherit`: DSCP and ECN
    /// from the inner header; `nopmtudisc`: DF from the inner header): the differential
    /// test's oracle.
    KernelGreCopying,
    /// A prototype of the one-pass design, for the benchmark: vc's LAN fast path
    /// redirects the GRE it built straight to an XFRM interface (`vcx1`, `if_id` 7, the
    /// CPE's SAs and policies carry it), whose transmit encrypts, instead of into the
    /// tunnel interface for a second pass through the stack. Inbound, the decrypted GRE
    /// arrives on `vcx1` and Linux `ip_gre` decapsulates it (vc has no program for an L3
    /// device yet), which carries the TCP acknowledgements of a LAN→DC transfer. vc's slow
    /// path has no policy here (its GRE would leave in clear, and the guard drops it): only
    /// the fast path is measured.
    VcXfrmInterface,
}

/// The `if_id` of the prototype's XFRM interface and of the CPE's SAs and policies with it.
const PROTOTYPE_IF_ID: u32 = 7;

/// ESP tunnel-mode SAs with reqid 1 and GRE-only policies, one side; with `if_id`, SAs and
/// policies of that XFRM interface only.
fn xfrm(
    ns: &NetNs,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    keys: [(&str, &str); 2],
    if_id: Option<u32>,
) {
    let [(spi_out, key_out), (spi_in, key_in)] = keys;
    let aead = "aead 'rfc4106(gcm(aes))'";
    let esp = "proto esp reqid 1 mode tunnel";
    let if_id = if_id.map(|id| format!("if_id {id}")).unwrap_or_default();
    ns.sh(&format!(
        "ip xfrm state add src {local} dst {remote} proto esp spi {spi_out} reqid 1 mode tunnel {aead} {key_out} 128 {if_id}
         ip xfrm state add src {remote} dst {local} proto esp spi {spi_in} reqid 1 mode tunnel {aead} {key_in} 128 {if_id}
         ip xfrm policy add src {local}/32 dst {remote}/32 proto gre dir out tmpl src {local} dst {remote} {esp} {if_id}
         ip xfrm policy add src {remote}/32 dst {local}/32 proto gre dir in tmpl src {remote} dst {local} {esp} {if_id}"
    ))
    .unwrap_or_else(|e| panic!("xfrm in {}: {e:#}", ns.name()));
}

/// The CPE's WAN link to the DC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WanLink {
    /// A veth pair made for the lab.
    Veth,
    /// Two devices of this box linked to each other (two NICs cabled back to back, or a veth
    /// pair standing in for them): `cpe` becomes the CPE's WAN device, `dc` the DC's. They are
    /// moved into the lab's namespaces as `wan0` (losing their addresses) and given back,
    /// under their own names, when the lab is dropped.
    Cabled { cpe: String, dc: String },
}

pub struct Lab {
    /// With vc: the agent's delivery of reassembled outer GRE fragments, on a thread in the
    /// CPE's namespace until the lab is dropped (first, before its namespaces go).
    delivery: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
    pub lan: NetNs,
    pub cpe: NetNs,
    pub dc: NetNs,
    pub spec: DatapathSpec,
    link: WanLink,
    _bpffs: TempBpfFs,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The delivery thread first: it sends out of devices the rest of this takes away.
        if let Some((stop, thread)) = self.delivery.take() {
            drop(stop);
            let _ = thread.join();
        }
        if let WanLink::Cabled { cpe, dc } = &self.link {
            for (ns, name) in [(&self.cpe, cpe), (&self.dc, dc)] {
                // Best effort: a device left behind returns to the root namespace anyway
                // when its namespace goes, only under the name wan0.
                let _ = ns.sh(&format!(
                    "ip link set wan0 down; ip link set wan0 name {name}; ip link set {name} netns 1"
                ));
            }
        }
    }
}

fn spec(pins: &std::path::Path) -> DatapathSpec {
    DatapathSpec {
        mode: Mode::Ipsec,
        wan_if: "wan0".into(),
        lan_if: Some("lan0".into()),
        fast_path: true,
        xdp: false,
        pin_dir: pins.join("vc"),
        state_dir: pins.with_extension("state"),
        attach_mode: None,
        tunnels: vec![TunnelSpec {
            id: 0,
            name: "vc-dc1".into(),
            wan_if: "wan0".into(),
            local_gre: CPE_GRE,
            remote_gre: DC_GRE,
            remote_ipsec: DC_GRE,
            reqid: 1,
            local_tunnel: "100.64.0.1/30".parse().expect("prefix"),
            dc_tunnel_ip: Ipv4Addr::new(100, 64, 0, 2),
            cisco_prefix: "203.0.113.0/24".parse().expect("prefix"),
            mtu: 1400,
            mss: 1350,
        }],
    }
}

impl Lab {
    #[must_use]
    pub fn new(cpe_kind: Cpe) -> Self {
        Lab::on(cpe_kind, &WanLink::Veth)
    }

    /// The lab with its WAN link on `link`.
    #[must_use]
    pub fn on(cpe_kind: Cpe, link: &WanLink) -> Self {
        let [lan, cpe, dc] = ["vlan", "vcpe", "vdc"].map(|tag| NetNs::new(tag).expect("netns"));
        veth(&lan, "eth0", &cpe, "lan0").expect("veth");
        match link {
            WanLink::Veth => veth(&cpe, "wan0", &dc, "wan0").expect("veth"),
            WanLink::Cabled { cpe: a, dc: b } => {
                for (ns, dev) in [(&cpe, a), (&dc, b)] {
                    let moved = std::process::Command::new("ip")
                        .args(["link", "set", "dev", dev, "netns", ns.name()])
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(moved, "cannot move {dev} into {}", ns.name());
                    ns.sh(&format!(
                        "ip link set {dev} name wan0 && ip link set wan0 up"
                    ))
                    .unwrap_or_else(|e| panic!("{dev} as wan0: {e:#}"));
                }
            }
        }
        lan.sh("ip addr add 10.1.0.10/24 dev eth0; ip route add default via 10.1.0.1")
            .expect("lan");
        cpe.sh("ip addr add 10.1.0.1/24 dev lan0; ip addr add 198.51.100.1/24 dev wan0")
            .expect("cpe");
        dc.sh("ip addr add 198.51.100.2/24 dev wan0
             ip link add gre1 type gre local 198.51.100.2 remote 198.51.100.1 ttl 64
             ip addr add 100.64.0.2/30 dev gre1; ip link set gre1 mtu 1400 up
             ip addr add 203.0.113.10/32 dev lo
             ip route add 10.1.0.0/24 via 100.64.0.1 dev gre1
             sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0
             sysctl -qw net.ipv4.conf.gre1.rp_filter=0 net.ipv4.conf.gre1.accept_local=1
             ip neigh add 198.51.100.99 lladdr 02:00:00:00:99:99 dev wan0")
            .expect("dc");
        let if_id = (cpe_kind == Cpe::VcXfrmInterface).then_some(PROTOTYPE_IF_ID);
        xfrm(
            &cpe,
            CPE_GRE,
            DC_GRE,
            [("0x1001", KEY_TO_DC), ("0x2002", KEY_TO_CPE)],
            if_id,
        );
        xfrm(
            &dc,
            DC_GRE,
            CPE_GRE,
            [("0x2002", KEY_TO_CPE), ("0x1001", KEY_TO_DC)],
            None,
        );

        let bpffs = TempBpfFs::new().expect("bpffs");
        let spec = spec(bpffs.path());
        let mut lab = Lab {
            delivery: None,
            lan,
            cpe,
            dc,
            spec,
            link: link.clone(),
            _bpffs: bpffs,
        };
        match cpe_kind {
            Cpe::Vc => lab.vc_up(),
            Cpe::VcXfrmInterface => {
                lab.vc_up();
                lab.one_pass_through_xfrm_interface();
            }
            Cpe::KernelGre => lab.kernel_gre(""),
            Cpe::KernelGreCopying => lab.kernel_gre("tos inherit nopmtudisc"),
        }
        lab
    }

    fn kernel_gre(&self, options: &str) {
        self.cpe
            .sh(&format!(
                "ip link add gre1 type gre local 198.51.100.1 remote 198.51.100.2 ttl 64 {options}
                 ip addr add 100.64.0.1/30 dev gre1; ip link set gre1 mtu 1400 up
                 ip route add 203.0.113.0/24 via 100.64.0.2 dev gre1
                 sysctl -qw net.ipv4.ip_forward=1"
            ))
            .expect("kernel GRE on the CPE");
    }

    fn vc_up(&mut self) {
        let up = self.spec.clone();
        let mode = self
            .cpe
            .run_in(move || {
                block_on(async move { Datapath::up(up).await.map(|d| d.attach_mode()) })
            })
            .expect("thread")
            .unwrap_or_else(|e| panic!("datapath up on 6.1: {e:?}"));
        assert_eq!(mode, AttachMode::Clsact, "6.1 has no tcx");
        self.cpe
            .sh("ip route add 203.0.113.0/24 via 100.64.0.2 dev vc-dc1")
            .expect("route");
        self.maps()
            .set_route("203.0.113.0/24".parse().expect("prefix"), 1)
            .expect("LPM route");
    }

    /// The prototype's wiring ([`Cpe::VcXfrmInterface`]): the XFRM interface, Linux GRE for
    /// what arrives on it, and the fast path's redirect pointed at it.
    fn one_pass_through_xfrm_interface(&self) {
        self.cpe
            .sh(&format!(
                "ip link add vcx1 type xfrm dev wan0 if_id {PROTOTYPE_IF_ID}
                 sysctl -qw net.ipv6.conf.vcx1.disable_ipv6=1
                 ip link set vcx1 up
                 ip link add gre1 type gre local {CPE_GRE} remote {DC_GRE} ttl 64
                 sysctl -qw net.ipv6.conf.gre1.disable_ipv6=1
                 ip link set gre1 up
                 sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.gre1.rp_filter=0"
            ))
            .expect("XFRM interface on the CPE");
        let ifindex = self.cpe.ifindex("vcx1").expect("ifindex");
        let mut maps = self.maps();
        let mut entry = maps.tunnel(0).expect("tunnel");
        entry.tunnel_ifindex = ifindex;
        maps.set_tunnel(0, &entry).expect("tunnel");
        // What the LAN answers the DC's tunnel IP takes the fast path too (in vc it takes the
        // tunnel interface, whose GRE has no policy here).
        maps.set_route("100.64.0.2/32".parse().expect("prefix"), 1)
            .expect("LPM route");
    }

    /// Runs the agent's delivery of reassembled outer GRE fragments
    /// (`vc_agent::datapath::reassembled`) until the lab is dropped, as `vc-agent run` does
    /// beside the datapath. Only for a lab with vc's datapath.
    pub fn deliver_reassembled(&mut self) {
        let spec = self.spec.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = self
            .cpe
            .spawn_in(move || {
                block_on(async move {
                    let started = async {
                        let datapath = Arc::new(Datapath::open(spec).await?);
                        reassembled::deliver(datapath)
                    };
                    match started.await {
                        Ok(task) => {
                            let _ = ready_tx.send(Ok(()));
                            tokio::select! {
                                end = task.ended() => panic!("the delivery ended: {end}"),
                                _ = stopped => task.abort(),
                            }
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e:#}")));
                        }
                    }
                });
            })
            .expect("thread in the CPE");
        ready
            .recv()
            .expect("the delivery thread")
            .unwrap_or_else(|e| panic!("starting the delivery of reassembled GRE: {e}"));
        self.delivery = Some((stop, thread));
    }

    #[must_use]
    pub fn maps(&self) -> DatapathMaps {
        DatapathMaps::from_pins(&self.spec.pin_dir.join("maps")).expect("maps")
    }

    #[must_use]
    pub fn count(&self, hook: Hook, reason: DropReason) -> u64 {
        self.maps()
            .verdicts()
            .expect("verdicts")
            .iter()
            .filter(|v| v.hook == hook && v.reason == reason)
            .map(|v| v.packets)
            .sum()
    }
}
