//! A simulated Virtual Connect region in the test VM: what `cargo xtask lab` shows and what
//! the agent's end-to-end VM test (`vc-agent/tests/vm_agent.rs`) asserts on, built by this
//! one module.
//!
//! A LAN host; the CPE running the real `vc-agent run` in IPsec mode (one CPE, both
//! tunnels) from a generated `vc.toml`; a WAN router; DC1 and DC2 as Cisco's head ends
//! ([`dc`]): strongSwan responders, kernel `ip_gre`, BIRD 2, Cisco-format keepalives, a host in
//! each /25, and a backbone between them so that the other DC's half stays reachable after a
//! failover, as Cisco's network would carry it. [`plan::DRAWING`] shows it. With a second
//! region ([`config::Options::regions`]) the same CPE and agent serve DC3 and DC4 too, that
//! region's DC1 and DC2, built the same way with a backbone of their own
//! ([`plan::SECOND_REGION`]).
//!
//! Bring-up order: the DCs' charons wait with trap policies; the agent starts and initiates
//! both tunnels; once the DCs see their child SAs, BIRD and the DCs' keepalives start. (A DC
//! that sent GRE first would trap-initiate IKE at the same time as the CPE, and both ends
//! would end up with duplicate SAs: a race of the test rig, not something under test.)
//!
//! Only in the VM: it names namespaces `lan`, `cpe`, `wan`, `dc1`, `dc2` (and `dc3`, `dc4`)
//! for a person at a shell, writes `/etc/vc/vc.toml` and mounts a BPF filesystem under `/run`.
pub mod checks;
pub mod config;
pub mod dc;
pub mod fragments;
pub mod keepalive;
pub mod plan;
pub mod two_cpes;

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub use self::checks::Checklist;
use self::{
    checks::Evidence,
    dc::{Dc, tail},
    plan::{
        CPE_LAN, CPE_NAT_WAN, CPE_NAT_WAN_NET, CPE_PUBLIC, CPE_WAN2, DCS, DcPlan, LAN_HOST,
        NAT_GATEWAY, WAN_GATEWAY, WAN2_GATEWAY,
    },
};
use crate::{
    netns::{Daemon, NetNs, veth, wait_for},
    vm,
};

/// Where the agent's config goes: its default path, so `vc-agent status` needs no `-c`.
pub const CONFIG_PATH: &str = "/etc/vc/vc.toml";
/// vc's charon run directory (the agent's default), on the guest's tmpfs `/run`.
pub const CHARON_RUN_DIR: &str = "/run/vc/charon";

/// The region.
pub struct Region {
    // Dropped first: the agent, then the DCs' senders and daemons.
    agent: Option<Daemon>,
    pub dcs: Vec<Dc>,
    pub lan: NetNs,
    pub cpe: NetNs,
    pub wan: NetNs,
    /// Logs and captures: in the VM run's results directory, which outlives the guest.
    pub dir: PathBuf,
    agent_bin: PathBuf,
    agent_started: Option<Instant>,
}

/// In the VM, loads what the region needs before it starts: loaded on demand (over 9p, under
/// TCG) ESP and GCM make a DC's first SA install slow enough for IKE retransmits.
fn preload_modules() {
    let _ = Command::new("modprobe")
        .args([
            "-a",
            "-q",
            "esp4",
            "xfrm_user",
            "xfrm4_tunnel",
            "gcm",
            "ctr",
        ])
        .args([
            "seqiv",
            "ghash_generic",
            "ghash_clmulni_intel",
            "aesni_intel",
        ])
        .args(["ip_gre", "veth", "sch_ingress", "cls_bpf"])
        .args(["nft_chain_nat", "nft_nat"])
        .status();
}

/// Checks that this runs in the test VM and loads the modules the region needs.
fn in_the_vm() -> Result<()> {
    if !vm::inside() {
        bail!("the region runs in the test VM only (it names namespaces and writes /etc)");
    }
    preload_modules();
    Ok(())
}

/// The WAN router: forwards between the CPE side (`cpe_dev`, already linked) and the DCs'
/// links `d1` and `d2`.
fn wan_router(wan: &NetNs, cpe_dev: &str) -> Result<()> {
    wan_router_to(wan, cpe_dev, &format!("{WAN_GATEWAY}/24"), &DCS)
}

/// [`wan_router`] with `cpe_side` (address/prefix) on the CPE's link, toward `dcs` (each on
/// its [`DcPlan::router_device`], already linked).
fn wan_router_to(wan: &NetNs, cpe_dev: &str, cpe_side: &str, dcs: &[&DcPlan]) -> Result<()> {
    let mut router = format!(
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.disable_ipv6=1
         ip addr add {cpe_side} dev {cpe_dev}"
    );
    for dc in dcs {
        // Only the IPsec addresses are on the internet; the GRE transport IPs are not.
        let _ = write!(
            router,
            "\nip addr add {}/30 dev {}; ip route add {}/32 via {}",
            dc.router_link,
            dc.router_device(),
            dc.ipsec,
            dc.wan_link
        );
    }
    wan.sh(&router).map(drop)
}

/// A namespace per DC of `dcs` (its [`DcPlan::name`]), linked to the WAN router on its
/// [`DcPlan::router_device`] and, by `bb`, to the other DC of its region (Cisco's backbone):
/// in the order of `dcs`, which lists each region's two DCs together.
fn dc_namespaces(wan: &NetNs, dcs: &[&DcPlan]) -> Result<Vec<NetNs>> {
    let mut made = Vec::new();
    for dc in dcs {
        let ns = NetNs::named(&dc.name())?;
        veth(wan, &dc.router_device(), &ns, "wan")?;
        made.push(ns);
    }
    for region in made.chunks(2) {
        if let [first, second] = region {
            veth(first, "bb", second, "bb")?;
        }
    }
    Ok(made)
}

/// The WAN router as a NAT in front of the CPE ([`config::Options::nat`]): the CPE's private
/// link on `cpe_dev`, and everything from it toward the DCs translated to the public address
/// [`CPE_PUBLIC`], which the router holds (a home or branch router's masquerade to its one
/// public address; the lab's router has an address per DC link, so it names the public one).
/// Connection tracking maps the replies, and ICMP errors about them, back to the CPE; nothing
/// else from the DCs reaches the private link.
fn nat_router(wan: &NetNs, cpe_dev: &str) -> Result<()> {
    wan_router_to(wan, cpe_dev, &format!("{NAT_GATEWAY}/24"), &DCS)?;
    wan.sh(&format!(
        "ip addr add {CPE_PUBLIC}/32 dev lo
         nft -f - <<EOF
table ip vc_nat {{
  chain post {{
    type nat hook postrouting priority srcnat;
    ip saddr {CPE_NAT_WAN_NET} oifname {{ \"d1\", \"d2\" }} snat to {CPE_PUBLIC}
  }}
}}
EOF"
    ))
    .context("the router's NAT")
    .map(drop)
}

/// Builds the DCs of `options` in their namespaces, each on a thread of its own: most of a
/// DC's build is waiting for its charon to come up, and the DCs do not depend on each other.
fn build_dcs(options: &config::Options, namespaces: Vec<NetNs>) -> Result<Vec<Dc>> {
    std::thread::scope(|scope| {
        let builds: Vec<_> = options
            .dcs()
            .iter()
            .zip(namespaces)
            .map(|(plan, ns)| scope.spawn(move || Dc::build_with(plan, ns, options)))
            .collect();
        builds
            .into_iter()
            .map(|b| {
                b.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("building a DC panicked")))
            })
            .collect()
    })
}

/// Mounts the BPF filesystem the agents pin to, makes `/etc/vc`, and returns the directory for
/// logs and captures: in the VM run's results directory, which outlives the guest.
fn results_dir() -> Result<PathBuf> {
    std::fs::create_dir_all(config::BPF_MOUNT)?;
    crate::netns::run(
        Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(config::BPF_MOUNT),
    )?;
    let dir = std::env::var_os(vm::RESULTS_DIR)
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join("region");
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all("/etc/vc")?;
    Ok(dir)
}

impl Region {
    /// Builds the namespaces, links, addresses and the DCs (charons loaded and waiting), and
    /// writes the CPE's config. `agent_bin` is the `vc-agent` binary to run.
    pub fn build(agent_bin: &Path) -> Result<Region> {
        Region::build_with(agent_bin, &config::Options::default())
    }

    /// [`Region::build`] with a scenario's changes to both ends.
    pub fn build_with(agent_bin: &Path, options: &config::Options) -> Result<Region> {
        if let Some(fault) = options.one_cpe_fault() {
            bail!("{fault}");
        }
        in_the_vm()?;
        let lan = NetNs::named("lan")?;
        let cpe = NetNs::named("cpe")?;
        let wan = NetNs::named("wan")?;
        veth(&lan, "eth0", &cpe, "lan0")?;
        veth(&cpe, "wan0", &wan, "c0")?;
        if options.two_wans {
            veth(&cpe, "wan1", &wan, "c1")?;
        }
        let dc_nets = dc_namespaces(&wan, options.dcs())?;
        lan.sh(&format!(
            "ip addr add {LAN_HOST}/24 dev eth0; ip route add default via {CPE_LAN}"
        ))?;
        let (wan_address, gateway) = if options.nat {
            (format!("{CPE_NAT_WAN}/24"), NAT_GATEWAY)
        } else {
            (format!("{CPE_PUBLIC}/24"), WAN_GATEWAY)
        };
        cpe.sh(&format!(
            "ip addr add {CPE_LAN}/24 dev lan0; ip addr add {wan_address} dev wan0
             ip route add default via {gateway}"
        ))?;
        if options.nat {
            // The GRE transport IP (the public address) stays the CPE's own: the outer
            // fragments a DC sends to it are reassembled on local delivery.
            cpe.sh(&format!("ip addr add {CPE_PUBLIC}/32 dev lo"))?;
            nat_router(&wan, "c0")?;
        } else {
            wan_router_to(&wan, "c0", &format!("{WAN_GATEWAY}/24"), options.dcs())?;
        }
        if options.two_wans {
            // ISP 2: tunnel B's own address and link; the host routes DC2's IPsec address
            // out of it, as an operator would (vc does not route the underlay).
            wan.sh(&format!("ip addr add {WAN2_GATEWAY}/30 dev c1"))?;
            cpe.sh(&format!(
                "ip addr add {CPE_WAN2}/30 dev wan1
                 ip route add {}/32 via {WAN2_GATEWAY} dev wan1",
                DCS[1].ipsec
            ))?;
        }
        let dcs = build_dcs(options, dc_nets)?;

        let dir = results_dir()?;
        let text = config::vc_toml_with(options);
        std::fs::write(CONFIG_PATH, &text).context(CONFIG_PATH)?;
        std::fs::write(dir.join("vc.toml"), &text)?;
        Ok(Region {
            agent: None,
            dcs,
            lan,
            cpe,
            wan,
            dir,
            agent_bin: agent_bin.to_path_buf(),
            agent_started: None,
        })
    }

    /// The DC `n` ([`DcPlan::n`]: 1 to 4).
    #[must_use]
    pub fn dc(&self, n: u8) -> &Dc {
        &self.dcs[usize::from(n - 1)]
    }

    /// `vc-agent ARGS` in the CPE's namespace.
    #[must_use]
    pub fn agent_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.cpe.command(&self.agent_bin.to_string_lossy());
        cmd.args(args);
        cmd
    }

    /// The agent's log file.
    #[must_use]
    pub fn agent_log_path(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    /// Starts `vc-agent run -c /etc/vc/vc.toml` in the CPE's namespace. A later start (a
    /// restart) appends to the same log.
    pub fn start_agent(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.agent_started.is_some())
            .truncate(self.agent_started.is_none())
            .open(self.agent_log_path())
            .context("agent log")?;
        let child = self
            .agent_command(&["run", "-c", CONFIG_PATH])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting vc-agent run")?;
        self.agent = Some(Daemon::new(child, "vc-agent"));
        self.agent_started = Some(Instant::now());
        Ok(())
    }

    /// When the agent was started.
    #[must_use]
    pub fn agent_started(&self) -> Option<Instant> {
        self.agent_started
    }

    /// Waits until every DC lists an installed child SA; then starts their BIRD and
    /// keepalives.
    pub fn start_dc_peers(&mut self, limit: Duration) -> Result<()> {
        for i in 0..self.dcs.len() {
            let dc = &self.dcs[i];
            wait_for(limit, &format!("DC{}'s child SA", dc.plan.n), || {
                dc.sas().child_installed.then_some(())
            })?;
            self.dcs[i].start_peers()?;
        }
        Ok(())
    }

    /// The agent's state, as `vc-agent status --json` prints it.
    pub fn status_json(&self) -> Result<String> {
        let out = self
            .agent_command(&["status", "--json"])
            .output()
            .context("vc-agent status")?;
        if !out.status.success() {
            bail!(
                "vc-agent status: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `vc-agent <args>` output (stdout, then stderr), success or not.
    #[must_use]
    pub fn agent_text(&self, args: &[&str]) -> String {
        match self.agent_command(args).output() {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("vc-agent {}: {e}\n", args.join(" ")),
        }
    }

    /// Whether this `vc-agent` has a `diagnose` command.
    #[must_use]
    pub fn agent_can_diagnose(&self) -> bool {
        Command::new(&self.agent_bin)
            .args(["diagnose", "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Judges the checklist once more.
    pub fn check(&self, list: &mut Checklist) -> Vec<(usize, usize)> {
        let status: Option<Value> = self
            .status_json()
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let kernel_routes = self.cpe.sh("ip route show proto 201").unwrap_or_default();
        list.update(
            &Evidence {
                status: status.as_ref(),
                kernel_routes: &kernel_routes,
                cpe: &self.cpe,
            },
            &self.dcs,
        )
    }

    /// Checks until every step of every tunnel passes or `limit` runs out; `progress` hears
    /// of each step the first time it passes. The checklist either way.
    pub fn wait_up(
        &self,
        limit: Duration,
        mut progress: impl FnMut(&Checklist, usize, usize),
    ) -> (bool, Checklist) {
        let since = self.agent_started.unwrap_or_else(Instant::now);
        let mut list = Checklist::new(since, &self.dcs);
        let deadline = Instant::now() + limit;
        loop {
            for (t, s) in self.check(&mut list) {
                progress(&list, t, s);
            }
            if list.ok() {
                return (true, list);
            }
            if Instant::now() >= deadline {
                return (false, list);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `ping -c COUNT` from `ns` to `dst`: whether all came back, and ping's summary lines.
    #[must_use]
    pub fn ping(ns: &NetNs, dst: Ipv4Addr, count: u32) -> (bool, String) {
        match ns.sh_output(&format!("ping -n -q -c {count} -i 0.2 -W 2 {dst}")) {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let summary: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("packets transmitted") || l.starts_with("rtt"))
                    .collect();
                (out.status.success(), summary.join("\n"))
            }
            Err(e) => (false, format!("{e:#}")),
        }
    }

    /// How reports name the lab's tunnels: `both tunnels`, or `all 4 tunnels`.
    #[must_use]
    pub fn all_tunnels(&self) -> String {
        match self.dcs.len() {
            2 => "both tunnels".into(),
            n => format!("all {n} tunnels"),
        }
    }

    /// Panics, with the route, unless the CPE routes `dst` out of `interface`.
    pub fn assert_routed_via(&self, dst: Ipv4Addr, interface: &str) {
        let route = self.route_get(dst);
        assert!(
            route.contains(&format!("dev {interface} ")),
            "{dst} not routed via {interface}: {route}"
        );
    }

    /// `ip route get DST` on the CPE, one line.
    #[must_use]
    pub fn route_get(&self, dst: Ipv4Addr) -> String {
        self.cpe
            .sh(&format!("ip route get {dst}"))
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Waits until the CPE routes `dst` out of `dev`.
    pub fn wait_route(&self, dst: Ipv4Addr, dev: &str, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        wait_for(limit, &format!("{dst} routed via {dev}"), || {
            self.route_get(dst)
                .contains(&format!("dev {dev} "))
                .then_some(())
        })
        .with_context(|| format!("the CPE says: {}", self.route_get(dst)))?;
        Ok(start.elapsed())
    }

    /// Stops the agent with SIGTERM; its exit status.
    pub fn stop_agent(&mut self, limit: Duration) -> Result<ExitStatus> {
        let agent = self.agent.as_mut().context("the agent is not running")?;
        agent.signal(libc::SIGTERM);
        wait_for(limit, "the agent to exit", || agent.exit_status())
    }

    /// Whether the agent still runs.
    pub fn agent_running(&mut self) -> bool {
        self.agent.as_mut().is_some_and(Daemon::is_running)
    }

    /// The pid of the charon the agent started, from its pid file.
    #[must_use]
    pub fn cpe_charon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(Path::new(CHARON_RUN_DIR).join("charon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// What to read when something did not come up: the agent's log, vc's charon log, each
    /// DC's charon, SAs and BIRD, the CPE's XFRM policies and routes; `lines` per log.
    #[must_use]
    pub fn logs(&self, lines: usize) -> String {
        let agent = std::fs::read_to_string(self.agent_log_path()).unwrap_or_default();
        let charon = std::fs::read_to_string(Path::new(CHARON_RUN_DIR).join("charon.log"))
            .unwrap_or_default();
        let mut out = format!(
            "---- vc-agent log ({}) ----\n{}---- vc's charon ({CHARON_RUN_DIR}/charon.log) ----\n{}",
            self.agent_log_path().display(),
            tail(&agent, lines),
            tail(&charon, lines)
        );
        for dc in &self.dcs {
            out.push_str(&dc.logs(lines));
        }
        let _ = write!(
            out,
            "---- CPE: ip xfrm policy; ip route ----\n{}{}",
            self.cpe.sh("ip xfrm policy").unwrap_or_default(),
            self.cpe.sh("ip route").unwrap_or_default()
        );
        out
    }
}
