//! One guest run: a fresh results directory, the generated runner script, QEMU under a
//! timeout, and what came back.
use std::{
    fmt::Write as _,
    fs::{self, File},
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{
    dir::{VmDir, check_path},
    qemu::{self, GuestClock, GuestInit, Qemu},
    slots,
};

/// Environment passed from the host to the guest command, besides `VC_*` variables.
const FORWARDED_ENV: &[&str] = &[
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_LOG",
    "CARGO_MANIFEST_DIR",
];

/// Lines of guest output a report shows (verifier logs run to thousands).
const OUTPUT_LINES: usize = 150;

/// How long a run waits for a VM slot before it gives up.
const SLOT_PATIENCE: Duration = Duration::from_mins(30);

/// A command to run in a fresh VM.
pub struct VmRun {
    name: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    echo: bool,
    interactive: bool,
    init: GuestInit,
    clock: GuestClock,
}

impl VmRun {
    /// Runs `argv` in the guest. `name` names the results directory.
    #[must_use]
    pub fn new(name: &str, argv: &[&str]) -> Self {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("VC_") || FORWARDED_ENV.contains(&k.as_str()))
            .filter(|(k, _)| k != super::RESULTS_DIR)
            .collect();
        env.push((super::IN_VM.into(), "1".into()));
        VmRun {
            name: name.to_string(),
            argv: argv.iter().map(ToString::to_string).collect(),
            env,
            cwd: std::env::current_dir().ok(),
            timeout: super::default_timeout(),
            echo: false,
            interactive: false,
            init: GuestInit::Script,
            clock: GuestClock::Host,
        }
    }

    /// Runs the test `test` (its full path, `--exact`) of the test binary `binary`.
    #[must_use]
    pub fn test(binary: &Path, test: &str) -> Self {
        let binary = binary.to_string_lossy();
        VmRun::new(
            test,
            &[
                &binary,
                "--exact",
                test,
                "--nocapture",
                "--test-threads=1",
                // guest-only tests may be #[ignore]d on the host
                "--include-ignored",
            ],
        )
    }

    /// Sets a variable for the guest command.
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs the command under systemd as PID 1 (see [`GuestInit::Systemd`]).
    #[must_use]
    pub fn under_systemd(mut self) -> Self {
        self.init = GuestInit::Systemd;
        self
    }

    /// Drives the guest's clock by `clock` (see [`GuestClock::Instructions`]: for benchmarks).
    #[must_use]
    pub fn clock(mut self, clock: GuestClock) -> Self {
        self.clock = clock;
        self
    }

    /// Bounds the whole run, boot included (waiting for a slot is not counted).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Copies the command's output to this process's stdout while it runs (it is still in
    /// [`VmOutcome::output`] afterwards): for a person watching, not for tests.
    #[must_use]
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// Gives QEMU this process's terminal: the guest's serial console is the terminal (kernel
    /// messages included), and the command may open `/dev/ttyS0` to talk to a person. No
    /// console log is kept.
    #[must_use]
    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self
    }

    /// Boots a VM, runs the command, and reports. An error means the run could not be made;
    /// a command that fails, a guest that crashes or a timeout are outcomes.
    pub fn run(self) -> Result<VmOutcome> {
        let dir = VmDir::locate();
        dir.ready().map_err(anyhow::Error::msg)?;
        let results = RunDir::create(&dir, &self.name)?;
        let script = results.path().join("run.sh");
        fs::write(&script, self.script(results.path()))
            .with_context(|| format!("{}", script.display()))?;
        let _slot = slots::acquire(SLOT_PATIENCE)?;
        let mut cmd = qemu::command_with(
            &dir,
            Some(&script),
            Some(results.path()),
            self.init,
            self.clock,
        );
        if self.interactive {
            cmd.stdin(Stdio::inherit())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
        } else {
            let console_path = results.path().join("console.log");
            let console = File::create(&console_path)
                .with_context(|| format!("creating {}", console_path.display()))?;
            cmd.stdin(Stdio::null())
                .stdout(console.try_clone().context("console log")?)
                .stderr(console);
        }
        let echo = self
            .echo
            .then(|| Follower::start(results.path().join("output.log")));
        let start = Instant::now();
        let mut vm = Qemu::spawn(&mut cmd)?;
        let status = vm.wait_until(start + self.timeout)?;
        let wall = start.elapsed();
        drop(vm);
        drop(echo);

        let read = |name: &str| fs::read_to_string(results.path().join(name)).unwrap_or_default();
        let timing = read("timing");
        Ok(VmOutcome {
            name: self.name,
            rc: read("rc").trim().parse().ok(),
            timed_out: status.is_none(),
            qemu_status: status.map(|s| s.to_string()),
            output: read("output.log"),
            console: read("console.log"),
            boot: timing_field(&timing, "boot_s"),
            test: timing_field(&timing, "test_s"),
            wall,
            timeout: self.timeout,
            dir: results,
        })
    }

    /// The script the guest's init runs: the environment, the host's working directory, then
    /// the command.
    fn script(&self, results: &Path) -> String {
        let mut s = String::from("#!/bin/sh\n# written by vc_testkit::vm for one guest run\n");
        let results = (
            super::RESULTS_DIR.to_string(),
            results.to_string_lossy().into_owned(),
        );
        for (k, v) in self.env.iter().chain([&results]) {
            if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let _ = writeln!(s, "export {k}={}", quote(v));
            }
        }
        if let Some(cwd) = &self.cwd {
            let _ = writeln!(s, "cd {}", quote(&cwd.to_string_lossy()));
        }
        let argv: Vec<String> = self.argv.iter().map(|a| quote(a)).collect();
        let _ = writeln!(s, "exec {}", argv.join(" "));
        s
    }
}

/// What a guest run left behind.
pub struct VmOutcome {
    pub name: String,
    /// The guest command's exit status; `None` when the guest wrote none (it crashed, did
    /// not boot, or timed out).
    pub rc: Option<i32>,
    pub timed_out: bool,
    /// QEMU's own exit status (`None` when it was killed at the timeout).
    pub qemu_status: Option<String>,
    /// The command's stdout and stderr.
    pub output: String,
    /// The serial console: kernel messages, init's messages (and the output again).
    pub console: String,
    /// Guest uptime when the command started.
    pub boot: Option<Duration>,
    /// How long the command ran in the guest.
    pub test: Option<Duration>,
    /// Host wall time from QEMU's start to its exit.
    pub wall: Duration,
    pub timeout: Duration,
    pub dir: RunDir,
}

impl VmOutcome {
    /// Whether the guest command ran and exited 0.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.rc == Some(0)
    }

    /// One line: status and timings.
    #[must_use]
    pub fn summary(&self) -> String {
        let status = match (self.timed_out, self.rc) {
            (true, _) => format!("timed out after {:?}", self.timeout),
            (false, Some(rc)) => format!("rc={rc}"),
            (false, None) => format!(
                "no exit status from the guest (QEMU: {})",
                self.qemu_status.as_deref().unwrap_or("?")
            ),
        };
        let secs =
            |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.1}s", d.as_secs_f64()));
        format!(
            "VM run {}: {status}; wall {:.1}s, guest boot {}, command {}",
            self.name,
            self.wall.as_secs_f64(),
            secs(self.boot),
            secs(self.test)
        )
    }

    /// The summary, the guest command's output, and the end of the console: what a failing
    /// test shows.
    #[must_use]
    pub fn report(&self) -> String {
        let mut s = self.summary();
        let _ = write!(s, "\nresults: {}", self.dir.path().display());
        let output: Vec<&str> = self.output.trim_end().lines().collect();
        let shown = &output[output.len().saturating_sub(OUTPUT_LINES)..];
        if shown.len() < output.len() {
            let _ = write!(
                s,
                "\n--- guest output (last {} of {} lines: all in output.log) ---",
                shown.len(),
                output.len()
            );
        } else {
            s.push_str("\n--- guest output ---");
        }
        for line in shown {
            s.push('\n');
            s.push_str(line);
        }
        let tail: Vec<&str> = self.console.lines().rev().take(40).collect();
        let _ = write!(s, "\n--- console (last {} lines) ---\n", tail.len());
        for line in tail.iter().rev() {
            s.push_str(line.trim_end_matches('\r'));
            s.push('\n');
        }
        s
    }
}

/// A run's own results directory under `<vm dir>/runs`. Removed on drop unless kept (failed
/// runs keep theirs for a look) or `VC_VM_KEEP=1`.
pub struct RunDir {
    path: PathBuf,
    keep: bool,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl RunDir {
    fn create(dir: &VmDir, name: &str) -> Result<Self> {
        let slug: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir
            .runs()
            .join(format!("{slug}-{}-{n}", std::process::id()));
        check_path(&path).map_err(anyhow::Error::msg)?;
        if path.exists() {
            // a leftover of an earlier process with the same pid
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        if std::env::var_os("VC_VM_KEEP").is_some_and(|v| v == "1") {
            return Ok(RunDir { path, keep: true });
        }
        Ok(RunDir { path, keep: false })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Copies what the guest appends to a file (its `output.log`, written through 9p without
/// caching) to stdout, until dropped.
struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Follower {
    fn start(path: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut offset = 0;
            loop {
                // Read once more after the stop: the last lines land just before power-off.
                let last = flag.load(Ordering::Relaxed);
                let mut fresh = Vec::new();
                if let Ok(mut file) = File::open(&path)
                    && file.seek(SeekFrom::Start(offset)).is_ok()
                    && file.read_to_end(&mut fresh).is_ok()
                    && !fresh.is_empty()
                {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&fresh);
                    let _ = out.flush();
                    offset += fresh.len() as u64;
                }
                if last {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        Follower {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn timing_field(timing: &str, key: &str) -> Option<Duration> {
    timing
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
}

/// Single-quotes `s` for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Fails unless `outcome` is a passed run of the libtest test `test`: exit 0 alone could also
/// mean that the filter matched no test. (libtest's summary line, not its "test name ... ok":
/// with one test thread, what the test prints lands between the name and the "ok".)
pub(super) fn check_test_ran(outcome: &VmOutcome, test: &str) -> Result<()> {
    if !outcome.passed() {
        bail!("{}", outcome.report());
    }
    if !outcome.output.contains("test result: ok. 1 passed;") {
        bail!(
            "the guest ran no test named {test} (give the test's full path, e.g. module::name)\n{}",
            outcome.report()
        );
    }
    Ok(())
}
