//! The two-CPE model of the region ([`config::Model::TwoCpes`]): CPE 1 terminates tunnel A to
//! DC1, CPE 2 tunnel B to DC2, each a real `vc-agent run` with its own `vc.toml`
//! (`[deployment] model = "two-cpes"`), directories and public address, and each with BIRD 2
//! beside it running `docs/examples/two-cpes-bird.conf`: it redistributes vc's kernel routes
//! (proto vc, 201) to an enterprise router on the LAN, which is the LAN host's gateway and
//! learns from its BGP sessions which CPE reaches which /25. [`DRAWING`] shows it.
//!
//! The DCs, the WAN router and the checklist are the one-CPE region's ([`super::dc`],
//! [`super::checks`]); only the CPE side differs. Only in the VM, like [`super::Region`].
use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{
    Checklist,
    checks::Evidence,
    config::{self, CpeDirs, Model},
    dc::{Dc, tail},
    in_the_vm,
    plan::{DC1, DC2, DCS, DcPlan, LAN_HOST, WAN_GATEWAY},
    results_dir, wan_router,
};
use crate::{
    bird::Bird,
    netns::{Daemon, NetNs, veth, wait_for},
};

/// The enterprise router's address on the LAN host's network: the host's gateway.
pub const ENT_LAN: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// The LAN host's network, which the CPEs reach through the enterprise router.
pub const LAN_NET: &str = "10.1.0.0/24";
/// The enterprise router's address on the segment it shares with both CPEs.
pub const ENT_TRANSIT: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
/// The enterprise's ASN (private), and the CPEs' toward it (their `cpe_asn`).
pub const ENT_ASN: u32 = 65001;
/// The hold time of the enterprise router's sessions (`cpe1`, `cpe2` in its `birdc`): a CPE
/// cut off the LAN is forgotten in seconds, not BIRD's default four minutes.
const ENT_HOLD_TIME_S: u16 = 6;
/// The DCs' BGP hold time here: when the internet path between a CPE and its DC is lost, the
/// DC drops the session within seconds and sends the LAN's traffic over its backbone, as a
/// Cisco head end does once its GRE keepalives take the tunnel down. Longer than the CPEs'
/// own detection (3 keepalives, 2 s apart), so that is what a path cut measures.
pub const DC_HOLD_TIME_S: u16 = 12;
/// The CPEs' BIRD configuration: the documented example, run as it is (CPE 2 with its own
/// address).
pub const CPE_BIRD_EXAMPLE: &str = include_str!("../../../docs/examples/two-cpes-bird.conf");
/// The address the example is written for: CPE 1's.
const EXAMPLE_CPE_ADDRESS: &str = "10.1.1.2";

/// The ASCII drawing the lab prints.
pub const DRAWING: &str = r#"
  lan ──eth0── ent ══br0══ p1 ──lan0── cpe1 ──wan0── c1 ══br0══ wan ──d1── dc1  IPsec 192.0.2.10
  10.1.0.10  10.1.0.1  10.1.1.1    10.1.1.2   vc-agent  203.0.113.1      │    host 198.18.7.10
           enterprise router         tunnel A   203.0.113.10              bb   (198.18.7.0/25)
           BIRD, AS 65001     p2 ──lan0── cpe2 ──wan0── c2                │
                                   10.1.1.3   vc-agent                └─d2── dc2  IPsec 192.0.2.20
                                              tunnel B  203.0.113.20          host 198.18.7.140
                                                                              (198.18.7.128/25)
  each CPE: vc-agent (model two-cpes, one tunnel) + BIRD redistributing proto vc (AS 65010)
  to the enterprise router; each DC announces its /25 and 198.18.7.0/24; each CPE announces
  0.0.0.0/0 to its DC only while its LAN link is up ([lan] default_requires = ["link"])
"#;

/// One of the two CPEs.
pub struct Cpe {
    /// 1 (tunnel A) or 2 (tunnel B).
    pub n: u8,
    pub dc: &'static DcPlan,
    pub ns: NetNs,
    pub dirs: CpeDirs,
    /// Its address on the segment shared with the enterprise router.
    pub lan: Ipv4Addr,
    // Dropped before the namespace.
    agent: Option<Daemon>,
    bird: Option<Bird>,
    started: Option<Instant>,
}

impl Cpe {
    /// Addresses and routes of the CPE that terminates `dc`'s tunnel in `ns` (linked already),
    /// its `vc.toml` (also copied to `dir`), and its BIRD, started.
    fn build(ns: NetNs, dc: &'static DcPlan, options: &config::Options, dir: &Path) -> Result<Cpe> {
        let lan = Ipv4Addr::new(10, 1, 1, 1 + dc.n);
        ns.sh(&format!(
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1
             ip addr add {lan}/24 dev lan0; ip route add {LAN_NET} via {ENT_TRANSIT}
             ip addr add {public}/24 dev wan0; ip route add default via {WAN_GATEWAY}",
            public = options.model.cpe_public(dc),
        ))?;
        let dirs = CpeDirs::of(dc.n);
        let text = config::vc_toml_two_cpes(options, dc);
        std::fs::write(&dirs.config, &text).context(dirs.config.clone())?;
        std::fs::write(dir.join(format!("cpe{}.toml", dc.n)), &text)?;
        let bird_conf = CPE_BIRD_EXAMPLE.replace(EXAMPLE_CPE_ADDRESS, &lan.to_string());
        std::fs::write(dir.join(format!("cpe{}-bird.conf", dc.n)), &bird_conf)?;
        let bird = Bird::start(&ns, &bird_conf).with_context(|| format!("CPE {}'s BIRD", dc.n))?;
        Ok(Cpe {
            n: dc.n,
            dc,
            ns,
            dirs,
            lan,
            agent: None,
            bird: Some(bird),
            started: None,
        })
    }

    /// `vc-agent ARGS -c <its config>` in its namespace.
    fn agent_command(&self, agent_bin: &Path, args: &[&str]) -> Command {
        let mut cmd = self.ns.command(&agent_bin.to_string_lossy());
        cmd.args(args).args(["-c", &self.dirs.config]);
        cmd
    }

    /// Its BIRD (redistributing vc's routes), once started.
    #[must_use]
    pub fn bird(&self) -> Option<&Bird> {
        self.bird.as_ref()
    }

    /// When its agent was started.
    #[must_use]
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// `ip route show proto NUMBER` on it.
    #[must_use]
    pub fn routes(&self, proto: u8) -> String {
        self.ns
            .sh(&format!("ip route show proto {proto}"))
            .unwrap_or_default()
    }
}

/// The two-CPE region.
pub struct TwoCpeRegion {
    // Dropped first: the CPEs (agents, BIRDs), the enterprise router, then the DCs.
    pub cpes: [Cpe; 2],
    ent_bird: Option<Bird>,
    pub dcs: Vec<Dc>,
    pub lan: NetNs,
    pub ent: NetNs,
    pub wan: NetNs,
    pub dir: PathBuf,
    agent_bin: PathBuf,
}

/// The enterprise router's BIRD: a session with each CPE (short hold time: a CPE cut off the
/// LAN is dropped in seconds), everything learnt installed in its kernel table.
fn ent_bird_config(cpes: &[Cpe; 2]) -> String {
    let mut c = format!("router id {ENT_TRANSIT};\nprotocol device {{ }}\n");
    c.push_str("protocol kernel {\n  ipv4 {\n    export where source = RTS_BGP;\n  };\n}\n");
    for cpe in cpes {
        let _ = write!(
            c,
            "protocol bgp cpe{n} {{
  local {ENT_TRANSIT} as {ENT_ASN};
  neighbor {addr} as {asn};
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 10;
  hold time {ENT_HOLD_TIME_S};
  keepalive time 2;
  ipv4 {{
    import all;
    export none;
  }};
}}
",
            n = cpe.n,
            addr = cpe.lan,
            asn = super::plan::CPE_ASN,
        );
    }
    c
}

impl TwoCpeRegion {
    /// Builds the namespaces, links, addresses, the DCs (charons waiting), the enterprise
    /// router and each CPE's BIRD (running: they redistribute whatever vc installs), and
    /// writes each CPE's `vc.toml`. `agent_bin` is the `vc-agent` binary to run.
    pub fn build(agent_bin: &Path) -> Result<TwoCpeRegion> {
        TwoCpeRegion::build_with(
            agent_bin,
            &config::Options {
                model: Model::TwoCpes,
                dc_hold_time_s: Some(DC_HOLD_TIME_S),
                ..config::Options::default()
            },
        )
    }

    /// [`TwoCpeRegion::build`] with a scenario's changes; `[lan] default_requires` defaults
    /// to `["link"]` here, the point of the model.
    pub fn build_with(agent_bin: &Path, options: &config::Options) -> Result<TwoCpeRegion> {
        if options.model != Model::TwoCpes {
            bail!("TwoCpeRegion needs Model::TwoCpes");
        }
        if options.nat {
            bail!("the lab's NAT is the one-CPE model's");
        }
        if options.regions != 1 {
            bail!("a second region is a one-CPE lab: the two-CPE model runs one region");
        }
        let mut options = options.clone();
        if options.default_requires.is_empty() {
            options.default_requires = vec!["link"];
        }
        in_the_vm()?;
        let mut made = Vec::new();
        for name in ["lan", "ent", "cpe1", "cpe2", "wan", "dc1", "dc2"] {
            made.push(NetNs::named(name)?);
        }
        let [lan, ent, cpe1, cpe2, wan, dc1, dc2]: [NetNs; 7] = made
            .try_into()
            .map_err(|_| anyhow::anyhow!("seven namespaces"))?;
        veth(&lan, "eth0", &ent, "eth0")?;
        veth(&ent, "p1", &cpe1, "lan0")?;
        veth(&ent, "p2", &cpe2, "lan0")?;
        veth(&cpe1, "wan0", &wan, "c1")?;
        veth(&cpe2, "wan0", &wan, "c2")?;
        veth(&wan, "d1", &dc1, "wan")?;
        veth(&wan, "d2", &dc2, "wan")?;
        veth(&dc1, "bb", &dc2, "bb")?;
        lan.sh(&format!(
            "ip addr add {LAN_HOST}/24 dev eth0; ip route add default via {ENT_LAN}"
        ))?;
        // Both CPEs on one segment with the router, as two boxes on one enterprise VLAN.
        ent.sh(&format!(
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.disable_ipv6=1
             ip addr add {ENT_LAN}/24 dev eth0
             ip link add br0 type bridge; ip link set br0 up
             ip link set p1 master br0; ip link set p2 master br0
             ip addr add {ENT_TRANSIT}/24 dev br0"
        ))?;
        wan.sh("ip link add br0 type bridge; ip link set br0 up
                ip link set c1 master br0; ip link set c2 master br0")?;
        wan_router(&wan, "br0")?;
        let dcs = vec![
            Dc::build_with(DCS[0], dc1, &options)?,
            Dc::build_with(DCS[1], dc2, &options)?,
        ];
        let dir = results_dir()?;
        let both = [
            Cpe::build(cpe1, &DC1, &options, &dir)?,
            Cpe::build(cpe2, &DC2, &options, &dir)?,
        ];
        let ent_bird = Bird::start(&ent, &ent_bird_config(&both)).context("the router's BIRD")?;
        Ok(TwoCpeRegion {
            cpes: both,
            ent_bird: Some(ent_bird),
            dcs,
            lan,
            ent,
            wan,
            dir,
            agent_bin: agent_bin.to_path_buf(),
        })
    }

    /// CPE `n` (1 or 2).
    #[must_use]
    pub fn cpe(&self, n: u8) -> &Cpe {
        &self.cpes[usize::from(n - 1)]
    }

    /// DC `n` (1 or 2).
    #[must_use]
    pub fn dc(&self, n: u8) -> &Dc {
        &self.dcs[usize::from(n - 1)]
    }

    /// The enterprise router's BIRD.
    pub fn ent_bird(&self) -> Result<&Bird> {
        self.ent_bird
            .as_ref()
            .context("the router's BIRD is not running")
    }

    /// CPE `n`'s agent log file.
    #[must_use]
    pub fn agent_log_path(&self, n: u8) -> PathBuf {
        self.dir.join(format!("agent-cpe{n}.log"))
    }

    /// `vc-agent ARGS -c <CPE n's config>` in CPE `n`'s namespace.
    #[must_use]
    pub fn agent_command(&self, n: u8, args: &[&str]) -> Command {
        self.cpe(n).agent_command(&self.agent_bin, args)
    }

    /// Starts `vc-agent run` on both CPEs.
    pub fn start_agents(&mut self) -> Result<()> {
        for i in 0..2 {
            let n = self.cpes[i].n;
            let log = std::fs::File::create(self.agent_log_path(n)).context("agent log")?;
            let child = self
                .agent_command(n, &["run"])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting vc-agent run on CPE {n}"))?;
            self.cpes[i].agent = Some(Daemon::new(child, "vc-agent"));
            self.cpes[i].started = Some(Instant::now());
        }
        Ok(())
    }

    /// Waits until both DCs list an installed child SA; then starts their BIRD and
    /// keepalives.
    pub fn start_dc_peers(&mut self, limit: Duration) -> Result<()> {
        for dc in &mut self.dcs {
            wait_for(limit, &format!("DC{}'s child SA", dc.plan.n), || {
                dc.sas().child_installed.then_some(())
            })?;
            dc.start_peers()?;
        }
        Ok(())
    }

    /// CPE `n`'s `vc-agent status --json`.
    pub fn status_json(&self, n: u8) -> Result<String> {
        let out = self
            .agent_command(n, &["status", "--json"])
            .output()
            .context("vc-agent status")?;
        if !out.status.success() {
            bail!(
                "vc-agent status on CPE {n}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `vc-agent <args>` on CPE `n` (stdout, then stderr), success or not.
    #[must_use]
    pub fn agent_text(&self, n: u8, args: &[&str]) -> String {
        match self.agent_command(n, args).output() {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("vc-agent {}: {e}\n", args.join(" ")),
        }
    }

    /// A fresh checklist per CPE: CPE `n` has tunnel `n` only.
    #[must_use]
    pub fn checklists(&self) -> [Checklist; 2] {
        [0, 1].map(|i| {
            let since = self.cpes[i].started.unwrap_or_else(Instant::now);
            Checklist::new(since, std::slice::from_ref(&self.dcs[i]))
        })
    }

    /// Judges CPE `i + 1`'s checklist once more; the steps that passed for the first time.
    pub fn check(&self, i: usize, list: &mut Checklist) -> Vec<(usize, usize)> {
        let cpe = &self.cpes[i];
        let status: Option<Value> = self
            .status_json(cpe.n)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let kernel_routes = cpe.routes(201);
        list.update(
            &Evidence {
                status: status.as_ref(),
                kernel_routes: &kernel_routes,
                cpe: &cpe.ns,
            },
            std::slice::from_ref(&self.dcs[i]),
        )
    }

    /// Checks until every step of both CPEs' tunnels passes or `limit` runs out; `progress`
    /// hears of each step the first time it passes (with the CPE's index). The checklists
    /// either way.
    pub fn wait_up(
        &self,
        limit: Duration,
        mut progress: impl FnMut(usize, &Checklist, usize),
    ) -> (bool, [Checklist; 2]) {
        let mut lists = self.checklists();
        let deadline = Instant::now() + limit;
        loop {
            for (i, list) in lists.iter_mut().enumerate() {
                for (_, s) in self.check(i, list) {
                    progress(i, list, s);
                }
            }
            if lists.iter().all(Checklist::ok) {
                return (true, lists);
            }
            if Instant::now() >= deadline {
                return (false, lists);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The prefixes the enterprise router learnt from CPE `n`.
    #[must_use]
    pub fn ent_learnt_from(&self, n: u8) -> Vec<String> {
        self.ent_bird()
            .and_then(|b| b.routes(&format!("protocol cpe{n}")))
            .unwrap_or_default()
    }

    /// `ip route get DST` on the enterprise router, one line.
    #[must_use]
    pub fn ent_route_get(&self, dst: Ipv4Addr) -> String {
        self.ent
            .sh(&format!("ip route get {dst}"))
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Whether the enterprise router forwards `dst` to CPE `n`.
    #[must_use]
    pub fn ent_routes_via(&self, dst: Ipv4Addr, n: u8) -> bool {
        self.ent_route_get(dst)
            .contains(&format!("via {} ", self.cpe(n).lan))
    }

    /// Waits until the enterprise router forwards `dst` to CPE `n`.
    pub fn wait_ent_via(&self, dst: Ipv4Addr, n: u8, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        wait_for(
            limit,
            &format!("the router to send {dst} to CPE {n}"),
            || self.ent_routes_via(dst, n).then_some(()),
        )
        .with_context(|| format!("the router says: {}", self.ent_route_get(dst)))?;
        Ok(start.elapsed())
    }

    /// Cuts CPE `n`'s LAN link at the router's end (its `lan0` loses carrier), or mends it.
    pub fn set_lan_link(&self, n: u8, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.ent
            .ip(&["link", "set", &format!("p{n}"), state])
            .map(drop)
    }

    /// Cuts the internet path between CPE `n` and its DC (both directions, at the WAN
    /// router: IKE, ESP, everything), or restores it.
    pub fn set_wan_path(&self, n: u8, up: bool) -> Result<()> {
        let dc = self.cpe(n).dc;
        let cpe = Model::TwoCpes.cpe_public(dc);
        let verb = if up { "del" } else { "add" };
        self.wan
            .sh(&format!(
                "ip rule {verb} from {cpe} to {dc} blackhole
                 ip rule {verb} from {dc} to {cpe} blackhole",
                dc = dc.ipsec
            ))
            .map(drop)
    }

    /// What to read when something did not come up: both agents' logs and their charons',
    /// the DCs', the BIRDs' beside the CPEs and the router's.
    #[must_use]
    pub fn logs(&self, lines: usize) -> String {
        let mut out = String::new();
        for cpe in &self.cpes {
            let agent = std::fs::read_to_string(self.agent_log_path(cpe.n)).unwrap_or_default();
            let charon_log = Path::new(&cpe.dirs.charon_run_dir).join("charon.log");
            let charon = std::fs::read_to_string(&charon_log).unwrap_or_default();
            let _ = write!(
                out,
                "---- CPE {n}: vc-agent log ----\n{}---- CPE {n}: vc's charon ({}) ----\n{}",
                tail(&agent, lines),
                charon_log.display(),
                tail(&charon, lines),
                n = cpe.n,
            );
            if let Some(bird) = &cpe.bird {
                let _ = write!(
                    out,
                    "---- CPE {}: BIRD ----\n{}",
                    cpe.n,
                    tail(&bird.log(), lines)
                );
            }
            let _ = write!(
                out,
                "---- CPE {}: ip route ----\n{}",
                cpe.n,
                cpe.ns.sh("ip route").unwrap_or_default()
            );
        }
        for dc in &self.dcs {
            out.push_str(&dc.logs(lines));
        }
        if let Ok(bird) = self.ent_bird() {
            let _ = write!(
                out,
                "---- router: BIRD ----\n{}---- router: ip route ----\n{}",
                tail(&bird.log(), lines),
                self.ent.sh("ip route").unwrap_or_default()
            );
        }
        out
    }
}
