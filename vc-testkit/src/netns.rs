//! Network namespaces for tests: uniquely named, removed with everything in them on drop
//! (also when the test panics).
use std::{
    fs::File,
    os::fd::AsRawFd,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

use anyhow::{Context, Result, bail};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists while this value lives.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `vt<tag>-<pid>-<n>` with loopback up. Tags keep parallel tests (and parallel
    /// test binaries) apart and make leftovers recognisable.
    pub fn new(tag: &str) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("vt{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates the namespace `name` itself, with loopback up. Only where nothing else names
    /// namespaces (the test VM): short fixed names are for a person at a shell there
    /// (`ip netns exec cpe ...`); tests that may run side by side use [`NetNs::new`].
    pub fn named(name: &str) -> Result<Self> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = NetNs {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that will run inside the namespace.
    #[must_use]
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `ip <args>` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        run(&mut cmd)
    }

    /// Runs a shell script inside the namespace; fails with its output if it fails.
    pub fn sh(&self, script: &str) -> Result<String> {
        run(self.command("sh").args(["-ec", script]))
    }

    /// The interface index of its device `dev`.
    pub fn ifindex(&self, dev: &str) -> Result<u32> {
        let text = self.sh(&format!("cat /sys/class/net/{dev}/ifindex"))?;
        text.trim()
            .parse()
            .with_context(|| format!("{dev}'s ifindex in {}: {text:?}", self.name))
    }

    /// Runs a shell script inside the namespace and returns its output, success or not.
    pub fn sh_output(&self, script: &str) -> Result<Output> {
        self.command("sh")
            .args(["-c", script])
            .output()
            .with_context(|| format!("running in {}: {script}", self.name))
    }

    /// Starts a long-running process inside the namespace; it is killed when the returned
    /// guard drops (and when the namespace goes).
    pub fn spawn(&self, program: &str, args: &[&str]) -> Result<Daemon> {
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program} in {}", self.name))?;
        Ok(Daemon::new(child, program))
    }

    /// Runs `f` on a thread that lives in this namespace: sockets it creates (a tokio
    /// runtime built inside `f`, say) belong to the namespace. (`/proc/net` still shows the
    /// process's namespace there: read `/proc/thread-self/net`.)
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let handle = self.spawn_in(f)?;
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("the thread in {} panicked", self.name))
    }

    /// Like [`NetNs::run_in`] without waiting: the thread runs `f` in the namespace while the
    /// caller goes on (a peer talking to code under test in another namespace, say).
    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<thread::JoinHandle<T>> {
        let ns = self.open()?;
        Ok(thread::spawn(move || {
            enter(&ns).expect("setns");
            f()
        }))
    }

    /// Enters the namespace for the rest of the calling thread's life. For long-lived
    /// helper threads; prefer [`NetNs::run_in`].
    pub fn enter_current_thread(&self) -> Result<()> {
        enter(&self.open()?)
    }

    fn open(&self) -> Result<File> {
        let path = format!("/run/netns/{}", self.name);
        File::open(&path).with_context(|| format!("opening {path}"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Processes first: a daemon holding the namespace keeps its devices alive.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into the namespace `ns` refers to.
fn enter(ns: &File) -> Result<()> {
    // SAFETY: setns on a valid namespace fd affects only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Creates a veth pair between two namespaces.
pub fn veth(a: &NetNs, a_dev: &str, b: &NetNs, b_dev: &str) -> Result<()> {
    run(Command::new("ip").args([
        "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]))?;
    a.ip(&["link", "set", a_dev, "up"])?;
    b.ip(&["link", "set", b_dev, "up"])?;
    Ok(())
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Daemon {
    child: Option<Child>,
    what: String,
}

impl Daemon {
    #[must_use]
    pub fn new(child: Child, what: &str) -> Self {
        Daemon {
            child: Some(child),
            what: what.to_string(),
        }
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its exit status, once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill has no memory preconditions.
            unsafe {
                libc::kill(child.id().cast_signed(), signal);
            }
        }
    }

    /// Kills it now.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    #[must_use]
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cmd`, returning its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if std::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
}
