//! BIRD 2 as a real BGP peer in a test namespace, without systemd: `bird -f` with its own
//! config, control socket, pid and log file in a private temporary directory (so parallel
//! tests never share one), killed and cleaned up on drop.
//!
//! ```no_run
//! # use vc_testkit::{NetNs, bird::{Bird, BgpPeer}};
//! let ns = NetNs::new("dc1").unwrap();
//! let peer = BgpPeer::new("vc", "100.64.0.2".parse().unwrap(), 65010, "100.64.0.1".parse().unwrap(), 65001)
//!     .export("dc", &["198.18.10.0/25", "198.18.10.0/24"]);
//! let bird = Bird::start(&ns, &peer.config()).unwrap();
//! bird.wait_established("vc", std::time::Duration::from_secs(10)).unwrap();
//! ```
use std::{
    fmt::Write as _,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::netns::{Daemon, NetNs, run, wait_for};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One eBGP session of a BIRD instance, with static routes to export, as a config text.
#[derive(Clone, Debug)]
pub struct BgpPeer {
    /// The `protocol bgp` name (what `birdc show protocols` lists).
    pub name: String,
    pub local: Ipv4Addr,
    pub local_as: u32,
    pub neighbor: Ipv4Addr,
    pub neighbor_as: u32,
    pub password: Option<String>,
    pub hold_time: Option<u16>,
    /// Never connect, only accept.
    pub passive: bool,
    /// Static protocols (name, prefixes) exported to the neighbour; each can be withdrawn
    /// alone with `birdc disable <name>`.
    pub statics: Vec<(String, Vec<String>)>,
    /// Extra lines inside `protocol bgp { }`.
    pub extra: Vec<String>,
}

impl BgpPeer {
    /// BIRD at `local` AS `local_as`, peering with `neighbor` AS `neighbor_as`, with test
    /// timers (connect delay 1 s, retry 2 s, error wait 1–10 s), importing everything.
    #[must_use]
    pub fn new(
        name: &str,
        local: Ipv4Addr,
        local_as: u32,
        neighbor: Ipv4Addr,
        neighbor_as: u32,
    ) -> Self {
        BgpPeer {
            name: name.to_string(),
            local,
            local_as,
            neighbor,
            neighbor_as,
            password: None,
            hold_time: None,
            passive: false,
            statics: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Adds a static protocol `name` whose blackhole routes are exported.
    #[must_use]
    pub fn export(mut self, name: &str, prefixes: &[&str]) -> Self {
        self.statics.push((
            name.to_string(),
            prefixes.iter().map(ToString::to_string).collect(),
        ));
        self
    }

    #[must_use]
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    #[must_use]
    pub fn hold_time(mut self, seconds: u16) -> Self {
        self.hold_time = Some(seconds);
        self
    }

    /// The whole `bird.conf` (without the `log` line, which [`Bird`] adds).
    #[must_use]
    pub fn config(&self) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "router id {};", self.local);
        c.push_str("protocol device { }\n");
        for (name, prefixes) in &self.statics {
            let _ = writeln!(c, "protocol static {name} {{\n  ipv4;");
            for p in prefixes {
                let _ = writeln!(c, "  route {p} blackhole;");
            }
            c.push_str("}\n");
        }
        let _ = writeln!(c, "protocol bgp {} {{", self.name);
        let _ = writeln!(c, "  local {} as {};", self.local, self.local_as);
        let _ = writeln!(c, "  neighbor {} as {};", self.neighbor, self.neighbor_as);
        c.push_str("  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 10;\n");
        if let Some(p) = &self.password {
            let _ = writeln!(c, "  password \"{p}\";");
        }
        if let Some(h) = self.hold_time {
            let _ = writeln!(c, "  hold time {h};\n  keepalive time {};", (h / 3).max(1));
        }
        if self.passive {
            c.push_str("  passive on;\n");
        }
        for line in &self.extra {
            let _ = writeln!(c, "  {line}");
        }
        // eBGP needs explicit filters (RFC 8212).
        c.push_str("  ipv4 {\n    import all;\n    export where source = RTS_STATIC;\n  };\n}\n");
        c
    }
}

/// A running BIRD.
pub struct Bird {
    daemon: Option<Daemon>,
    ns_name: String,
    dir: PathBuf,
}

impl Bird {
    /// Writes `config` (plus a log file line) and starts BIRD in `ns`; returns once its
    /// control socket answers.
    pub fn start(ns: &NetNs, config: &str) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vc-bird-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut bird = Bird {
            daemon: None,
            ns_name: ns.name().to_string(),
            dir,
        };
        bird.write_config(config)?;
        bird.launch()?;
        Ok(bird)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn write_config(&self, config: &str) -> Result<()> {
        let log = self.path("bird.log");
        let text = format!("log \"{}\" all;\n{config}", log.display());
        fs::write(self.path("bird.conf"), text).context("writing bird.conf")
    }

    fn launch(&mut self) -> Result<()> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns_name, "bird", "-f", "-c"])
            .arg(self.path("bird.conf"))
            .arg("-s")
            .arg(self.path("bird.ctl"))
            .arg("-P")
            .arg(self.path("bird.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.path("bird.stderr")).context("bird.stderr")?)
            .spawn()
            .context("starting bird (is the bird2 package installed?)")?;
        self.daemon = Some(Daemon::new(child, "bird"));
        wait_for(Duration::from_secs(10), "BIRD's control socket", || {
            self.birdc("show status").ok()
        })
        .with_context(|| format!("BIRD did not start: {}", self.stderr()))?;
        Ok(())
    }

    /// The directory holding its config, socket and logs.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs one `birdc` command on its control socket.
    pub fn birdc(&self, command: &str) -> Result<String> {
        let mut cmd = Command::new("birdc");
        cmd.arg("-s").arg(self.path("bird.ctl"));
        cmd.args(command.split_whitespace());
        run(&mut cmd)
    }

    /// The `BGP state:` of protocol `name` (Established, Active, Connect, Idle, ...).
    pub fn bgp_state(&self, name: &str) -> Result<String> {
        let out = self.birdc(&format!("show protocols all {name}"))?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("BGP state:"))
            .map(|s| s.trim().to_string())
            .with_context(|| format!("no BGP state for {name} in: {out}"))
    }

    /// The `Last error:` line of protocol `name`, if any.
    pub fn last_error(&self, name: &str) -> Result<Option<String>> {
        let out = self.birdc(&format!("show protocols all {name}"))?;
        Ok(out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Last error:"))
            .map(|s| s.trim().to_string()))
    }

    /// Waits until protocol `name` is Established; returns how long that took.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        wait_for(
            timeout,
            &format!("BIRD protocol {name} Established"),
            || (self.bgp_state(name).ok()? == "Established").then_some(()),
        )
        .with_context(|| {
            format!(
                "BIRD says: {}",
                self.birdc(&format!("show protocols all {name}"))
                    .unwrap_or_default()
            )
        })?;
        Ok(start.elapsed())
    }

    /// The prefixes `show route <filter>` lists (e.g. `protocol vc`).
    pub fn routes(&self, filter: &str) -> Result<Vec<String>> {
        let out = self.birdc(&format!("show route {filter}"))?;
        Ok(out
            .lines()
            .filter(|l| !l.starts_with(char::is_whitespace) && !l.starts_with("BIRD"))
            .filter(|l| !l.starts_with("Table"))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|p| p.contains('/'))
            .map(ToString::to_string)
            .collect())
    }

    /// Replaces the configuration and tells BIRD to reload it.
    pub fn reconfigure(&self, config: &str) -> Result<()> {
        self.write_config(config)?;
        let out = self.birdc("configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!("birdc configure: {out}");
        }
        Ok(())
    }

    /// Kills BIRD (SIGKILL: a crash, its kernel closes the sockets) and starts it again with
    /// the same configuration.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch()
    }

    /// Kills BIRD now.
    pub fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        let _ = fs::remove_file(self.path("bird.ctl"));
    }

    /// What BIRD logged (its `log` file).
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("bird.log")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.path("bird.stderr")).unwrap_or_default()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("BIRD log ({}):\n{}", self.dir.display(), self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
