//! A strongSwan charon in a test namespace: a real IKEv2 peer (e.g. the "DC" responder) for
//! tests, without systemd or starter.
//!
//! ```no_run
//! # use vc_testkit::{NetNs, charon::{Charon, Conn}};
//! let dc = NetNs::new("dc").unwrap();
//! let charon = Charon::start(&dc, "dc").unwrap();
//! charon.load(&[Conn::gre_psk("vc-a", "198.51.100.2", "198.51.100.1", "psk")]).unwrap();
//! println!("{}", charon.swanctl(&["--list-sas"]).unwrap());
//! ```
//!
//! How: `ip netns exec NS sh -c 'mount -t tmpfs tmpfs /run
//! && exec charon'` gives charon its own mount namespace with a private `/run`, so its fixed
//! pid file and VICI socket do not collide with any other charon; `ip`, `sh` and charon all
//! exec, so the spawned pid is charon's. `swanctl` reaches it with `nsenter -t PID -m -n`.
//! charon logs at level 1 (never keys) into `log_path()`; the files live in a per-instance
//! directory under the system temp dir, removed on drop.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::netns::{Daemon, NetNs, run, wait_for};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// charon's minimal plugin list (each one needed; see the note).
pub const PLUGINS: &str = "nonce openssl kdf kernel-netlink socket-default vici";

/// strongswan.conf for a test charon logging to `log` at level 1. `retransmit_timeout` is
/// short because tests wait on it.
#[must_use]
pub fn strongswan_conf(log: &Path) -> String {
    format!(
        "charon {{\n  load = {PLUGINS}\n  install_routes = no\n  install_virtual_ip = no\n  \
         retransmit_timeout = 2\n  retransmit_tries = 3\n  filelog {{\n    test {{\n      \
         path = {}\n      flush_line = yes\n      time_format = %T\n      ike_name = yes\n      \
         default = 1\n    }}\n  }}\n}}\nswanctl {{\n  load = pem\n}}\n",
        log.display()
    )
}

/// A running test charon; killed (SIGKILL) with its files removed on drop.
pub struct Charon {
    daemon: Daemon,
    dir: PathBuf,
    name: String,
}

impl Charon {
    /// Starts charon in `ns` and waits for its VICI socket. `name` labels its files.
    pub fn start(ns: &NetNs, name: &str) -> Result<Charon> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vc-charon-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("strongswan.conf");
        let log = dir.join("charon.log");
        std::fs::write(&conf, strongswan_conf(&log))?;
        let child = ns
            .command("sh")
            .args([
                "-c",
                "mount -t tmpfs tmpfs /run && exec /usr/lib/ipsec/charon",
            ])
            .env("STRONGSWAN_CONF", &conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting charon")?;
        let charon = Charon {
            daemon: Daemon::new(child, "charon"),
            dir,
            name: name.to_string(),
        };
        wait_for(Duration::from_secs(15), "charon's VICI socket", || {
            charon
                .in_ns("test")
                .args(["-S", "/run/charon.vici"])
                .status()
                .ok()?
                .success()
                .then_some(())
        })
        .with_context(|| format!("charon {name}: {}", charon.log()))?;
        Ok(charon)
    }

    /// charon's pid (also the pid to `nsenter`).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Its VICI socket, reachable from outside its mount namespace through `/proc/PID/root`.
    #[must_use]
    pub fn vici_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/run/charon.vici", self.pid()))
    }

    /// A command that runs in charon's network and mount namespaces.
    #[must_use]
    pub fn in_ns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid().to_string(), "-m", "-n", program]);
        cmd
    }

    /// Runs `swanctl ARGS` against this charon; its output, or an error with it.
    pub fn swanctl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.in_ns("swanctl");
        cmd.args(args)
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"));
        run(&mut cmd)
    }

    /// Loads these connections (and their PSKs), replacing what this helper loaded before.
    pub fn load(&self, conns: &[Conn]) -> Result<()> {
        let mut text = String::from("connections {\n");
        for c in conns {
            c.write_conn(&mut text);
        }
        text.push_str("}\nsecrets {\n");
        for c in conns {
            c.write_secret(&mut text);
        }
        text.push_str("}\n");
        let file = self.dir.join("swanctl.conf");
        std::fs::write(&file, text)?;
        let file = file.display().to_string();
        self.swanctl(&["--load-all", "--clear", "--file", &file])?;
        Ok(())
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("charon.log")
    }

    /// Waits until its log contains `needle`; returns the log.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Result<String> {
        wait_for(limit, needle, || {
            let log = self.log();
            log.contains(needle).then_some(log)
        })
        .with_context(|| format!("charon {} log:\n{}", self.name, self.log()))
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    /// Whether it still runs, without needing `&mut` (checks `/proc`).
    #[must_use]
    pub fn is_running_now(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    /// Stops it with SIGTERM (charon deletes its SAs and policies) and waits.
    pub fn stop(&mut self) -> Result<()> {
        self.daemon.signal(15);
        wait_for(Duration::from_secs(10), "charon to stop", || {
            (!self.daemon.is_running()).then_some(())
        })
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        self.daemon.stop();
        if std::env::var_os("VC_KEEP_TEST_FILES").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One PSK connection with a GRE-only child in tunnel mode (the shape Cisco's head end has).
#[derive(Debug, Clone)]
pub struct Conn {
    pub name: String,
    pub local_addr: String,
    pub remote_addr: String,
    pub local_id: String,
    pub remote_id: String,
    pub psk: String,
    pub proposals: String,
    pub esp_proposals: String,
    /// Traffic selectors (default: the IKE addresses, `/32[gre]`).
    pub local_ts: String,
    pub remote_ts: String,
    /// Extra `key = value` lines for the child (e.g. `rekey_time = 20s`).
    pub child_extra: Vec<String>,
    /// Extra `key = value` lines for the connection.
    pub conn_extra: Vec<String>,
}

impl Conn {
    /// A responder-style connection between two addresses, ids = addresses, AES-GCM
    /// proposals. Adjust the public fields for other cases.
    #[must_use]
    pub fn gre_psk(name: &str, local: &str, remote: &str, psk: &str) -> Conn {
        Conn {
            name: name.into(),
            local_addr: local.into(),
            remote_addr: remote.into(),
            local_id: local.into(),
            remote_id: remote.into(),
            psk: psk.into(),
            proposals: "aes256gcm16-prfsha384-ecp384".into(),
            esp_proposals: "aes256gcm16".into(),
            local_ts: format!("{local}/32[gre]"),
            remote_ts: format!("{remote}/32[gre]"),
            child_extra: Vec::new(),
            conn_extra: Vec::new(),
        }
    }

    // swanctl.conf rejects one-line blocks: one key per line.
    fn write_conn(&self, out: &mut String) {
        let _ = write!(
            out,
            "  {name} {{\n    version = 2\n    local_addrs = {la}\n    remote_addrs = {ra}\n    \
             proposals = {p}\n    mobike = no\n",
            name = self.name,
            la = self.local_addr,
            ra = self.remote_addr,
            p = self.proposals,
        );
        for l in &self.conn_extra {
            let _ = writeln!(out, "    {l}");
        }
        let _ = write!(
            out,
            "    local {{\n      auth = psk\n      id = {li}\n    }}\n    remote {{\n      auth = psk\n      \
             id = {ri}\n    }}\n    children {{\n      {name} {{\n        mode = tunnel\n        \
             local_ts = {lts}\n        remote_ts = {rts}\n        esp_proposals = {e}\n",
            name = self.name,
            li = self.local_id,
            ri = self.remote_id,
            lts = self.local_ts,
            rts = self.remote_ts,
            e = self.esp_proposals,
        );
        for l in &self.child_extra {
            let _ = writeln!(out, "        {l}");
        }
        out.push_str("      }\n    }\n  }\n");
    }

    fn write_secret(&self, out: &mut String) {
        let _ = write!(
            out,
            "  ike-{name} {{\n    id-1 = {li}\n    id-2 = {ri}\n    secret = \"{psk}\"\n  }}\n",
            name = self.name,
            li = self.local_id,
            ri = self.remote_id,
            psk = self.psk,
        );
    }
}

/// Whether charon is installed (tests skip with a reason when not, and fail under
/// `VC_REQUIRE_PRIV`).
#[must_use]
pub fn available() -> bool {
    // (`swanctl --version` would ask a running charon.)
    Path::new("/usr/lib/ipsec/charon").exists() && Path::new("/usr/sbin/swanctl").exists()
}

/// Fails (or lets the caller skip) when charon is missing.
pub fn require() -> Result<()> {
    if available() {
        return Ok(());
    }
    bail!("strongSwan (charon, swanctl) is not installed: run `cargo xtask setup`")
}
