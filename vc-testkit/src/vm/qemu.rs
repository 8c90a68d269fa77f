//! The QEMU command line, and a QEMU process that cannot outlive its test.
use std::{
    fmt::Write as _,
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::dir::VmDir;

/// The emulator. KVM does not work on the machines vc is developed on (nested KVM fails at
/// `IA32_ARCH_CAPABILITIES`), and TCG boots the guest in a few seconds anyway.
pub const QEMU: &str = "qemu-system-x86_64";

/// Whether QEMU is installed.
#[must_use]
pub fn available() -> bool {
    Command::new(QEMU)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Who runs the guest's command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestInit {
    /// vc's init script itself (quick, nothing else running).
    #[default]
    Script,
    /// systemd as PID 1, the command as a unit beside journald: for vc as a service.
    Systemd,
}

/// What the guest's clocks follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestClock {
    /// The host's clock, with one host thread per vCPU (`thread=multi`): fast, but what the
    /// guest measures depends on how much CPU the host gives it.
    #[default]
    Host,
    /// Virtual time counted in instructions (`-icount shift=N,sleep=on`): while the guest
    /// runs, each instruction advances its clock by 2^N ns, whatever the host's load; while
    /// it is idle, the clock follows the host's. Every vCPU runs on one host thread (icount
    /// needs `thread=single`). Work the guest does is then timed by the instructions it takes:
    /// for benchmarks, whose same-run ratios must not move with what else runs on the
    /// machine. (`sleep=off`, skipping idle time, is not usable: while the guest waits for
    /// its 9p root the clock races through timers, and the crypto module loads time out.)
    /// Slower than `Host`,
    /// and with one vCPU: QEMU 7.2 under icount hangs bringing up a second one ("Booting SMP
    /// configuration").
    Instructions { shift: u8 },
}

/// QEMU booting the guest. With `run` the guest's init runs that script with its results in
/// `results`; without, it starts a shell on the console. Stdio is left to the caller.
#[must_use]
pub fn command(dir: &VmDir, run: Option<&Path>, results: Option<&Path>) -> Command {
    command_with(dir, run, results, GuestInit::Script, GuestClock::Host)
}

/// [`command`], with `init` running the guest's command and `clock` driving its time.
#[must_use]
pub fn command_with(
    dir: &VmDir,
    run: Option<&Path>,
    results: Option<&Path>,
    init: GuestInit,
    clock: GuestClock,
) -> Command {
    let mut append = String::from(
        // panic=-1 with -no-reboot: a guest panic ends QEMU instead of hanging it.
        // cryptomgr.notests: the crypto self-tests are slow under TCG.
        // mitigations=off: only speed, in an emulated guest.
        "console=ttyS0 panic=-1 cryptomgr.notests=1 loglevel=4 mitigations=off edd=off",
    );
    if let Some(run) = run {
        let _ = write!(append, " vcrun={}", run.display());
    }
    if let Some(results) = results {
        let _ = write!(append, " vcresults={}", results.display());
    }
    if init == GuestInit::Systemd {
        append.push_str(" vcinit=systemd");
    }
    let mut cmd = Command::new(QEMU);
    let smp = match clock {
        GuestClock::Host => {
            cmd.args(["-accel", "tcg,thread=multi"]);
            env_or("VC_VM_SMP", "2")
        }
        GuestClock::Instructions { shift } => {
            cmd.args(["-accel", "tcg,thread=single", "-icount"])
                .arg(format!("shift={shift},sleep=on"));
            "1".into()
        }
    };
    cmd.args(["-cpu", "max"])
        .args(["-smp", &smp])
        .args(["-m", &env_or("VC_VM_MEM", "1024")])
        // Every test network is namespaces and veths inside the guest: no NIC.
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(dir.kernel())
        .arg("-initrd")
        .arg(dir.initramfs())
        .args(["-append", &append])
        // The host's root, read-only; remap keeps inode numbers of its submounts apart.
        .args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=modules,security_model=none,readonly=on",
            dir.modules().display()
        ));
    if let Some(results) = results {
        cmd.arg("-virtfs").arg(format!(
            "local,path={},mount_tag=results,security_model=none",
            results.display()
        ));
    }
    cmd
}

/// A running QEMU, killed and reaped on drop (a failed or timed-out test leaves none).
pub struct Qemu {
    child: Child,
}

impl Qemu {
    pub fn spawn(cmd: &mut Command) -> Result<Self> {
        // SAFETY: the closure only calls prctl, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                // If the test process dies without unwinding (SIGKILL, abort), the kernel
                // kills QEMU too. The signal follows the spawning thread: callers wait for
                // QEMU on the thread that started it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {QEMU}"))?;
        Ok(Qemu { child })
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for QEMU to exit; `None` if it still runs at `deadline` (it is killed then).
    pub fn wait_until(&mut self, deadline: Instant) -> Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for QEMU")? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}
