//! vc's own charon: its strongswan.conf, starting it, finding it again, knowing when it dies.
//!
//! charon's pid file (`/var/run/charon.pid`) and default VICI socket are fixed at build time,
//! so a second charon beside a system one would refuse to start ("charon already running").
//! vc starts charon in a private mount namespace with its run directory bind-mounted over
//! `/run`: there, charon's `/run/charon.pid`, `/run/charon.vici` and `/run/charon.log` are the
//! run directory's files, visible to the agent and to `swanctl --uri`.
//!
//! charon outlives the agent on purpose (R11: restarting the agent must not drop the
//! tunnels): it runs in its own session, with no pipe to the agent (a closed stderr pipe would
//! kill it with SIGPIPE), and nothing kills it on drop. A restarted agent finds it by its pid
//! file and attaches. (Under systemd, the unit needs `KillMode=process` for the same reason.)
use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

use crate::config::CharonSettings;

/// Inside charon's mount namespace the run directory is `/run`.
const IN_NS_RUN: &str = "/run";
/// charon's plugins, each shown to be needed on strongSwan 5.9.8: nonce and openssl
/// (crypto, RNG), kdf (5.9.8's openssl lacks `KDF_PRF`), kernel-netlink (XFRM), socket-default
/// (UDP 500/4500), vici (the agent's control socket).
pub const PLUGINS: &str = "nonce openssl kdf kernel-netlink socket-default vici";

/// Why charon could not be started or found.
#[derive(Debug, thiserror::Error)]
pub enum CharonError {
    #[error("cannot prepare {path}: {source}")]
    RunDir { path: PathBuf, source: io::Error },
    #[error("cannot start {binary}: {source}")]
    Spawn { binary: String, source: io::Error },
    #[error("charon exited during start-up ({status}); its log: {log}")]
    Exited { status: String, log: String },
    #[error("charon did not open its VICI socket within {0:?}; its log: {1}")]
    NoSocket(Duration, String),
    #[error("pidfd for charon {pid}: {source}")]
    Pidfd { pid: u32, source: io::Error },
}

/// strongswan.conf for vc's charon. Log levels stay at 1: strongSwan prints keys only at
/// level 4 (and raw packet data at 3), so level 1 never writes a key or the PSK.
#[must_use]
pub fn strongswan_conf(settings: &CharonSettings) -> String {
    format!(
        "# Written by vc-agent at each start of its charon; edits are lost.\n\
         # charon sees the run directory as {IN_NS_RUN} (private mount namespace).\n\
         charon {{\n\
         \x20 load = {PLUGINS}\n\
         \x20 # GRE routing is vc's: no routes in table 220, no virtual IPs\n\
         \x20 install_routes = no\n\
         \x20 install_virtual_ip = no\n\
         \x20 retransmit_timeout = {timeout}\n\
         \x20 retransmit_tries = {tries}\n\
         \x20 plugins {{\n\
         \x20   vici {{\n\
         \x20     socket = unix://{IN_NS_RUN}/charon.vici\n\
         \x20   }}\n\
         \x20 }}\n\
         \x20 filelog {{\n\
         \x20   vc {{\n\
         \x20     path = {IN_NS_RUN}/charon.log\n\
         \x20     append = no\n\
         \x20     flush_line = yes\n\
         \x20     time_format = %Y-%m-%dT%H:%M:%S\n\
         \x20     ike_name = yes\n\
         \x20     # level 1 everywhere: never keys (level 4) nor packet dumps (level 3)\n\
         \x20     default = 1\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n\
         swanctl {{\n\
         \x20 # swanctl needs no crypto plugin for PSK; an explicit list stops it probing\n\
         \x20 load = pem\n\
         }}\n",
        timeout = settings.retransmit_timeout_s,
        tries = settings.retransmit_tries,
    )
}

/// A charon started (or found) by vc.
pub struct Supervised {
    run_dir: PathBuf,
    pid: u32,
    /// Set when this process started it: reaped on exit so it leaves no zombie.
    child: Option<Child>,
    pidfd: AsyncFd<OwnedFd>,
}

impl Supervised {
    /// The charon of `settings.run_dir` if it runs, else a new one. Returns once its VICI
    /// socket accepts connections. Must run inside a tokio runtime; the new charon is created
    /// in the calling thread's network namespace.
    pub async fn ensure(settings: &CharonSettings) -> Result<Supervised, CharonError> {
        let run_dir = PathBuf::from(&settings.run_dir);
        if let Some(pid) = running_pid(&run_dir) {
            let mut sup = Supervised::with_pid(run_dir, pid, None)?;
            if sup.wait_socket(Duration::from_secs(10)).await.is_ok() {
                tracing::info!(pid, "attached to vc's running charon");
                return Ok(sup);
            }
        }
        Supervised::start(settings).await
    }

    /// Starts a new charon (the caller knows none of vc's runs).
    pub async fn start(settings: &CharonSettings) -> Result<Supervised, CharonError> {
        let run_dir = PathBuf::from(&settings.run_dir);
        let prep = |source| CharonError::RunDir {
            path: run_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&run_dir).map_err(prep)?;
        std::fs::write(run_dir.join("strongswan.conf"), strongswan_conf(settings)).map_err(prep)?;
        // A stale socket would make wait_socket() connect to nothing.
        let _ = std::fs::remove_file(run_dir.join("charon.vici"));
        let child = spawn(&settings.binary, &run_dir).map_err(|source| CharonError::Spawn {
            binary: settings.binary.clone(),
            source,
        })?;
        let pid = child.id();
        tracing::info!(pid, run_dir = %run_dir.display(), "started charon");
        let mut sup = Supervised::with_pid(run_dir, pid, Some(child))?;
        match sup.wait_socket(Duration::from_secs(20)).await {
            Ok(()) => Ok(sup),
            Err(e) => {
                sup.kill();
                Err(e)
            }
        }
    }

    fn with_pid(
        run_dir: PathBuf,
        pid: u32,
        child: Option<Child>,
    ) -> Result<Supervised, CharonError> {
        let fd = pidfd_open(pid).map_err(|source| CharonError::Pidfd { pid, source })?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged until dropped, and the
        // AsyncFd owns it from here on.
        let pidfd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| {
                CharonError::Pidfd {
                    pid,
                    source: io::Error::other(e.to_string()),
                }
            })?;
        Ok(Supervised {
            run_dir,
            pid,
            child,
            pidfd,
        })
    }

    async fn wait_socket(&mut self, limit: Duration) -> Result<(), CharonError> {
        let socket = self.socket();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(CharonError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CharonError::NoSocket(limit, self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// charon's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its VICI socket, as seen from outside its mount namespace.
    #[must_use]
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("charon.vici")
    }

    /// Its log file.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.run_dir.join("charon.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Resolves when charon has exited (for whatever reason), reaping it if it is ours.
    pub async fn exited(&mut self) {
        loop {
            match self.pidfd.readable().await {
                Ok(mut guard) => {
                    guard.retain_ready();
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
        } else {
            reap(self.pid);
        }
    }

    /// Whether it still runs (without waiting).
    #[must_use]
    pub fn is_running(&mut self) -> bool {
        if let Some(child) = self.child.as_mut() {
            return matches!(child.try_wait(), Ok(None));
        }
        process_alive(self.pid)
    }

    /// Stops charon cleanly (SIGTERM: it deletes its SAs and policies and tells the peers),
    /// SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        self.signal(libc::SIGTERM);
        if tokio::time::timeout(grace, self.exited()).await.is_err() {
            self.kill();
            self.exited().await;
        }
    }

    fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    /// Sends a signal through the pidfd (never a recycled pid).
    pub fn signal(&self, signal: i32) {
        // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.get_ref().as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// The pid in `run_dir/charon.pid` if that process is alive and is a charon.
fn running_pid(run_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(run_dir.join("charon.pid")).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "charon").then_some(pid)
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Reaps `pid` if it is a child of this process that exited (e.g. a charon this process
/// started, then found again through its pid file); a no-op otherwise.
fn reap(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: waitpid with WNOHANG and no status pointer has no memory preconditions.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
        }
    }
}

/// The search path charon (and an updown script) gets: the agent's environment is not passed
/// on, since it may hold secrets (`VC_PSK_*`) that charon has no use for.
const CHARON_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts `binary` in its own session and mount namespace, with `run_dir` over `/run`, and
/// nothing of the agent's environment but what it needs.
fn spawn(binary: &str, run_dir: &Path) -> io::Result<Child> {
    let source = CString::new(run_dir.as_os_str().as_encoded_bytes())?;
    let target = CString::new(IN_NS_RUN)?;
    let root = CString::new("/")?;
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", CHARON_PATH)
        .env("STRONGSWAN_CONF", format!("{IN_NS_RUN}/strongswan.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe syscalls run, on C strings
    // allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Own session: no terminal hang-up or process-group signal reaches it.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Keep the bind mount private to charon's namespace.
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain syscall; on success it returns a new fd that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::strongswan_conf;
    use crate::config::CharonSettings;

    #[test]
    fn conf_has_the_minimal_plugins_and_no_key_logging() {
        let conf = strongswan_conf(&CharonSettings {
            retransmit_timeout_s: 1,
            retransmit_tries: 2,
            ..CharonSettings::default()
        });
        assert!(conf.contains("load = nonce openssl kdf kernel-netlink socket-default vici\n"));
        assert!(
            conf.contains("retransmit_timeout = 1\n") && conf.contains("retransmit_tries = 2\n")
        );
        assert!(conf.contains("socket = unix:///run/charon.vici"));
        assert!(conf.contains("default = 1\n"));
        // No level above 2 anywhere.
        for line in conf.lines().filter(|l| !l.trim_start().starts_with('#')) {
            if let Some((key, value)) = line.split_once(" = ")
                && [
                    "default", "ike", "cfg", "knl", "net", "enc", "lib", "chd", "asn", "tls", "esp",
                ]
                .contains(&key.trim())
            {
                assert!(value.trim().parse::<i32>().is_ok_and(|l| l <= 2), "{line}");
            }
        }
    }
}
