//! A "CPE" and a "DC" network namespace joined over a WAN veth (optionally through a NAT
//! namespace), vc's config for tunnel A between them, and the DC's strongSwan connection to
//! match. For the host IKE tests and the VM ESP tests.
//!
//! ```text
//!  cpe  [wan 198.51.100.1/24] ========================= [wan 198.51.100.2/24]  dc
//!  cpe  [wan 10.0.0.2/24] == [in 10.0.0.1 | out 198.51.100.3] == [wan 198.51.100.2]  dc   (NAT)
//!  GRE transport IPs: the IPsec addresses, or 192.0.2.1 (cpe lo) / 192.0.2.2 (dc lo)
//!  tunnel IPs: 100.64.10.1/30 (dc) 100.64.10.2/30 (cpe), or 100.64.10.0/31 / .1/31
//! ```
use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use vc_agent::{
    config::{self, Config},
    ipsec::{Ipsec, Snapshot},
};
use vc_testkit::{
    NetNs,
    capture::Capture,
    charon::{Charon, Conn},
    traffic::Pinger,
    veth,
};

pub const PSK: &str = "vc-test-psk-Zq8v3Kx1";
pub const BGP_PASSWORD: &str = "vc-test-bgp-Jm4w9Tt2";

/// Variants of the topology.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// GRE transport IPs on loopbacks, different from the IPsec addresses.
    pub gre_differs: bool,
    /// A NAT namespace between CPE and DC (masquerade).
    pub nat: bool,
    /// A /31 tunnel subnet instead of a /30.
    pub slash31: bool,
}

pub struct Lab {
    pub cpe: NetNs,
    pub dc: NetNs,
    pub nat: Option<NetNs>,
    pub opts: Options,
    /// The CPE's address on its WAN interface.
    pub cpe_wan: Ipv4Addr,
    /// The CPE's public IPsec address (the NAT's outside address behind a NAT).
    pub cpe_public: Ipv4Addr,
    pub dc_wan: Ipv4Addr,
    pub cpe_gre: Ipv4Addr,
    pub dc_gre: Ipv4Addr,
    pub cpe_tunnel: &'static str,
    pub dc_tunnel: &'static str,
    /// Directory for test files (captures, configs); removed on drop except in the VM, where
    /// it is in the run's results directory and outlives the guest.
    pub dir: PathBuf,
    /// vc's charon run directory: on a local file system (a Unix socket cannot live on the
    /// VM's 9p results share). Its log is copied to `dir` on drop.
    pub run_dir: PathBuf,
}

fn sh(ns: &NetNs, script: &str) {
    ns.sh(script)
        .unwrap_or_else(|e| panic!("{}: {e}", ns.name()));
}

/// In the VM, loads ESP, GCM and GRE before the test: loaded on demand (over 9p, under TCG)
/// they make the DC's first SA install take seconds, long enough for the CPE to give up on
/// `IKE_AUTH` and leave the DC with a half-open duplicate.
fn preload_modules() {
    if vc_testkit::vm::inside() {
        let _ = std::process::Command::new("modprobe")
            .args([
                "-a",
                "-q",
                "esp4",
                "xfrm_user",
                "gcm",
                "ctr",
                "seqiv",
                "ghash_generic",
            ])
            .args([
                "ghash_clmulni_intel",
                "aesni_intel",
                "ip_gre",
                "veth",
                "nft_chain_nat",
            ])
            .args(["nft_masq", "xfrm4_tunnel"])
            .status();
    }
}

impl Lab {
    pub fn new(tag: &str, opts: Options) -> Lab {
        preload_modules();
        let cpe = NetNs::new(&format!("{tag}c")).expect("cpe ns");
        let dc = NetNs::new(&format!("{tag}d")).expect("dc ns");
        let dc_wan = Ipv4Addr::new(198, 51, 100, 2);
        let (nat, cpe_wan, cpe_public) = if opts.nat {
            let nat = NetNs::new(&format!("{tag}n")).expect("nat ns");
            veth(&cpe, "wan", &nat, "in").expect("veth cpe-nat");
            veth(&nat, "out", &dc, "wan").expect("veth nat-dc");
            sh(
                &cpe,
                "ip addr add 10.0.0.2/24 dev wan; ip route add default via 10.0.0.1",
            );
            sh(
                &nat,
                "ip addr add 10.0.0.1/24 dev in; ip addr add 198.51.100.3/24 dev out; \
                 sysctl -qw net.ipv4.ip_forward=1; \
                 nft add table ip nat; \
                 nft 'add chain ip nat post { type nat hook postrouting priority 100; }'; \
                 nft add rule ip nat post oifname out masquerade",
            );
            sh(&dc, "ip addr add 198.51.100.2/24 dev wan");
            (
                Some(nat),
                Ipv4Addr::new(10, 0, 0, 2),
                Ipv4Addr::new(198, 51, 100, 3),
            )
        } else {
            veth(&cpe, "wan", &dc, "wan").expect("veth");
            sh(&cpe, "ip addr add 198.51.100.1/24 dev wan");
            sh(&dc, "ip addr add 198.51.100.2/24 dev wan");
            let a = Ipv4Addr::new(198, 51, 100, 1);
            (None, a, a)
        };
        // Behind a NAT the public address is the NAT's: GRE must come from an address the CPE
        // has, so the GRE transport IPs live on loopbacks.
        let (cpe_gre, dc_gre) = if opts.gre_differs || opts.nat {
            let (c, d) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
            sh(
                &cpe,
                &format!(
                    "ip addr add {c}/32 dev lo; ip route add {d}/32 dev wan via {}",
                    if opts.nat {
                        "10.0.0.1".into()
                    } else {
                        dc_wan.to_string()
                    }
                ),
            );
            sh(
                &dc,
                &format!("ip addr add {d}/32 dev lo; ip route add {c}/32 dev wan via {cpe_public}"),
            );
            (c, d)
        } else {
            (cpe_public, dc_wan)
        };
        let (cpe_tunnel, dc_tunnel) = if opts.slash31 {
            ("100.64.10.0/31", "100.64.10.1/31")
        } else {
            ("100.64.10.2/30", "100.64.10.1/30")
        };
        // In the VM, files go to the run's results directory, which outlives the guest.
        let base = std::env::var_os(vc_testkit::vm::RESULTS_DIR)
            .map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("vc-lab-{}", cpe.name()));
        std::fs::create_dir_all(&dir).expect("lab dir");
        let run_dir = std::env::temp_dir().join(format!("vc-run-{}", cpe.name()));
        Lab {
            cpe,
            dc,
            nat,
            opts,
            cpe_wan,
            cpe_public,
            dc_wan,
            cpe_gre,
            dc_gre,
            cpe_tunnel,
            dc_tunnel,
            dir,
            run_dir,
        }
    }

    /// vc's config: this CPE terminates tunnel A; fast retransmits; `extra` lines go into
    /// `[tunnel.a]`.
    #[must_use]
    pub fn config_text(&self, extra: &str) -> String {
        let local = if self.opts.nat {
            format!("cpe_local_address = \"{}\"\n", self.cpe_wan)
        } else {
            String::new()
        };
        format!(
            r#"region = "TEST"
[deployment]
model = "two-cpes"
tunnel = "a"
[interfaces]
wan = "wan"
lan = "lan"
[cisco]
prefix = "198.18.7.0/24"
dc1_prefix = "198.18.7.0/25"
dc2_prefix = "198.18.7.128/25"
[charon]
run_dir = "{run_dir}"
retransmit_timeout_s = {retransmit}
retransmit_tries = {tries}
[tunnel.a]
cpe_ipsec_address = "{cpe_public}"
cpe_gre_address = "{cpe_gre}"
dc_ipsec_address = "{dc_wan}"
dc_gre_address = "{dc_gre}"
cpe_tunnel_ip = "{cpe_tunnel}"
dc_tunnel_ip = "{dc_tunnel}"
cisco_asn = 64600
cpe_asn = 65010
ike_psk = "{PSK}"
bgp_password = "{BGP_PASSWORD}"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16"]
dpd_interval_s = 2
{local}{extra}
"#,
            run_dir = self.run_dir.display(),
            // 2 s under TCG: emulated crypto makes a first ESP SA install slow.
            retransmit = if vc_testkit::vm::inside() { 2 } else { 1 },
            tries = if vc_testkit::vm::inside() { 3 } else { 2 },
            cpe_public = self.cpe_public,
            cpe_gre = self.cpe_gre,
            dc_wan = self.dc_wan,
            dc_gre = self.dc_gre,
            cpe_tunnel = self.cpe_tunnel,
            dc_tunnel = self.dc_tunnel,
        )
    }

    /// The config, parsed and validated like `vc-agent` does.
    #[must_use]
    pub fn config(&self, extra: &str) -> Config {
        let path = self.dir.join("vc.toml");
        std::fs::write(&path, self.config_text(extra)).expect("write vc.toml");
        config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The DC side of tunnel A, as Cisco configures it (ids = addresses, GRE-only selectors).
    #[must_use]
    pub fn dc_conn(&self) -> Conn {
        let mut c = Conn::gre_psk("dc1", &self.dc_wan.to_string(), "%any", PSK);
        c.remote_id = self.cpe_public.to_string();
        c.local_ts = format!("{}/32[gre]", self.dc_gre);
        c.remote_ts = format!("{}/32[gre]", self.cpe_gre);
        c
    }

    /// Starts vc's IPsec controller for `config` on a thread inside the CPE namespace (so
    /// charon and the XFRM socket live there), with tracing captured for later checks.
    #[must_use]
    pub fn start_vc(&self, config: Config) -> Vc {
        let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = logs.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ns = self.cpe.name().to_string();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
            // SAFETY: setns on a valid namespace fd affects only this thread.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns");
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || SharedWriter(writer.clone()))
                .finish();
            let _guard = tracing::subscriber::set_default(subscriber);
            crate::block_on(async move {
                let started = Ipsec::start(config).await;
                let ok = started.is_ok();
                let _ = tx.send(started);
                if ok {
                    let _ = stop_rx.await;
                }
            });
        });
        let ipsec = rx
            .recv()
            .expect("controller thread")
            .unwrap_or_else(|e| panic!("Ipsec::start: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Vc {
            ipsec: Some(ipsec),
            rt,
            stop: Some(stop_tx),
            thread: Some(thread),
            logs,
        }
    }

    /// The DC, as Cisco's head end: strongSwan with the matching connection loaded, trap
    /// policies (like a crypto map, GRE to the CPE never leaves it in clear), DPD.
    pub fn start_dc(&self, tweak: impl FnOnce(&mut Conn)) -> Charon {
        let dc = Charon::start(&self.dc, "dc").expect("dc charon");
        let mut conn = self.dc_conn();
        conn.remote_addr = self.cpe_public.to_string();
        conn.child_extra.push("start_action = trap".into());
        conn.conn_extra.push("dpd_delay = 2s".into());
        tweak(&mut conn);
        dc.load(&[conn]).expect("dc conn");
        dc
    }

    /// Kernel GRE (`ip_gre`) on both sides between the GRE transport IPs, the tunnel IPs on
    /// it. Call after vc's block policies are in ([`Ipsec::start`]), so nothing leaks.
    pub fn kernel_gre(&self) {
        sh(
            &self.cpe,
            &format!(
                "ip link add gre1 type gre local {} remote {} ttl 64; ip addr add {} dev gre1; ip link set gre1 up",
                self.cpe_gre, self.dc_gre, self.cpe_tunnel
            ),
        );
        sh(
            &self.dc,
            &format!(
                "ip link add gre1 type gre local {} remote {} ttl 64; ip addr add {} dev gre1; ip link set gre1 up",
                self.dc_gre, self.cpe_gre, self.dc_tunnel
            ),
        );
    }

    /// Counters and tables of both sides, for failure messages.
    #[must_use]
    pub fn diagnose(&self) -> String {
        let script = "ip -s -d link show gre1; ip -s xfrm state; ip xfrm policy; ip route; \
                      nstat -az | grep -E 'Xfrm|InNoRoutes|InAddrErrors|InHdrErrors|InDiscards|OutNoRoutes' | grep -v ' 0 '; \
                      sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.wan.rp_filter net.ipv4.conf.gre1.rp_filter";
        let mut out = String::new();
        for ns in [&self.cpe, &self.dc] {
            let o = ns.sh_output(script).expect("diagnose");
            let _ = write!(
                out,
                "==== {}\n{}{}",
                ns.name(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        out
    }

    /// The DC's tunnel IP (the BGP neighbour), without the mask.
    #[must_use]
    pub fn dc_tunnel_ip(&self) -> String {
        self.dc_tunnel.split('/').next().expect("ip").to_string()
    }

    /// `count` pings over the tunnel; the number of replies.
    #[must_use]
    pub fn ping(&self, count: u32) -> u32 {
        let out = self
            .cpe
            .sh_output(&format!(
                "ping -n -q -c {count} -i 0.1 -W 2 {}",
                self.dc_tunnel_ip()
            ))
            .expect("ping");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Egress captures on both ends of the WAN (on the NAT's outside when there is one).
    #[must_use]
    pub fn capture(&self, name: &str) -> (Capture, Capture) {
        let near = match &self.nat {
            Some(nat) => Capture::egress(nat, "out", &self.dir.join(format!("{name}-nat.pcap"))),
            None => Capture::egress(&self.cpe, "wan", &self.dir.join(format!("{name}-cpe.pcap"))),
        }
        .expect("capture near");
        let far = Capture::egress(&self.dc, "wan", &self.dir.join(format!("{name}-dc.pcap")))
            .expect("capture dc");
        (near, far)
    }

    /// A steady 20 pps ping over the tunnel.
    #[must_use]
    pub fn pinger(&self, name: &str) -> Pinger {
        Pinger::start(
            &self.cpe,
            &self.dc_tunnel_ip(),
            Duration::from_millis(50),
            &self.dir.join(format!("{name}.ping")),
        )
        .expect("pinger")
    }

    /// vc's charon log.
    #[must_use]
    pub fn vc_charon_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("charon.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // vc's charon outlives the agent by design: kill it here (the namespace's drop
        // would too, but its files must go first).
        if let Ok(pid) = std::fs::read_to_string(self.run_dir.join("charon.pid")) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid.trim()])
                .status();
        }
        let _ = std::fs::copy(
            self.run_dir.join("charon.log"),
            self.dir.join("vc-charon.log"),
        );
        let _ = std::fs::remove_dir_all(&self.run_dir);
        if std::env::var_os("VC_KEEP_TEST_FILES").is_none() && !vc_testkit::vm::inside() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Records charon's events (as VICI packets, length-prefixed) into a file until dropped: real
/// event streams become replay fixtures for the SA table.
pub struct Recorder {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Recorder {
    #[must_use]
    pub fn start(socket: PathBuf, out: PathBuf) -> Recorder {
        use vc_agent::ipsec::vici::{Client, Packet};
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            crate::block_on(async move {
                let mut vici = Client::connect(&socket).await.expect("vici");
                for e in ["ike-updown", "child-updown", "ike-rekey", "child-rekey"] {
                    vici.register(e).await.expect("register");
                }
                let mut bytes = Vec::new();
                let mut n = 0;
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        ev = vici.next_event() => {
                            let Ok((event, message)) = ev else { break };
                            bytes.extend(Packet::Event { event, message }.encode().expect("encode"));
                            n += 1;
                        }
                    }
                }
                std::fs::write(&out, bytes).expect("write events");
                n
            })
        });
        Recorder {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops recording; the number of events written.
    #[must_use]
    pub fn stop(mut self) -> usize {
        self.finish()
    }

    fn finish(&mut self) -> usize {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

/// vc's IPsec controller running in the CPE namespace, driven from the test thread.
pub struct Vc {
    ipsec: Option<Ipsec>,
    pub rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    logs: Arc<Mutex<Vec<u8>>>,
}

impl Vc {
    pub fn ipsec(&self) -> &Ipsec {
        self.ipsec.as_ref().expect("running")
    }

    pub fn snapshot(&self) -> Snapshot {
        self.ipsec().snapshot()
    }

    /// Waits until `done` holds; panics with the last state otherwise.
    pub fn wait(
        &self,
        limit: Duration,
        what: &str,
        done: impl FnMut(&Snapshot) -> bool,
    ) -> Snapshot {
        self.rt
            .block_on(self.ipsec().wait_for(limit, done))
            .unwrap_or_else(|last| {
                panic!("timed out after {limit:?} waiting for {what}; state: {last:#?}")
            })
    }

    /// Runs one of the controller's async calls from the test thread.
    pub fn call<T>(&self, f: impl AsyncFnOnce(&Ipsec) -> T) -> T {
        self.rt.block_on(f(self.ipsec()))
    }

    /// The agent's log so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().expect("logs")).into_owned()
    }

    /// Stops the controller (and charon if asked); returns the agent's log.
    pub fn stop(mut self, stop_charon: bool) -> String {
        self.shutdown(stop_charon);
        self.logs()
    }

    fn shutdown(&mut self, stop_charon: bool) {
        if let Some(ipsec) = self.ipsec.take() {
            self.rt.block_on(ipsec.shutdown(stop_charon));
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Vc {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A process stopped (SIGSTOP) until this is dropped (SIGCONT): a wedged charon, resumed even
/// if the test fails first.
pub struct Stopped(u32);

impl Stopped {
    #[must_use]
    pub fn new(pid: u32) -> Stopped {
        signal(pid, libc::SIGSTOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: kill has no memory preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill -{signal} {pid}");
}

/// Waits (polling) for `what`, up to `limit`.
pub fn wait<T>(limit: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    vc_testkit::wait_for(limit, what, check).unwrap_or_else(|e| panic!("{e}"))
}
