//! Tests that need a kernel this host lacks (ESP/XFRM SAs, kernel GRE, a 6.1 verifier) run
//! their body in a VM: Debian's stock kernel under QEMU, with the host's whole file system
//! visible read-only at the same paths, so the guest runs the very test binary.
//!
//! ```no_run
//! #[test]
//! fn esp_sa_installs() {
//!     // Host: boots a VM that runs this test alone, asserts it passed there, returns false.
//!     // Guest: returns true and the body runs.
//!     if !vc_testkit::vm::inside_or_boot("esp_sa_installs") {
//!         return;
//!     }
//!     // ... a body that needs kernel ESP ...
//! }
//! ```
//!
//! `cargo xtask vm-setup` (part of `cargo xtask setup`) provisions the kernel and initramfs in
//! `target/vm` (or `$VC_VM_DIR`); `vc-testkit/vm/init.sh` is the guest's PID 1.
//!
//! Knobs: `VC_VM_TIMEOUT` (seconds per run, default 300), `VC_VM_SLOTS` (VMs at once on this
//! machine, default 2), `VC_VM_SMP`, `VC_VM_MEM` (MiB), `VC_VM_KEEP=1` (keep every run's
//! results directory; failed runs always keep theirs).
mod dir;
pub mod qemu;
mod run;
mod slots;

use std::{path::Path, time::Duration};

use anyhow::Result;
pub use dir::{INIT_SCRIPT, VmDir};
pub use run::{RunDir, VmOutcome, VmRun};

/// Set in the guest's environment: the test is running inside the VM.
pub const IN_VM: &str = "VC_IN_VM";

/// Set in the guest's environment: the run's results directory, the one host directory the
/// guest can write (captures and logs left there survive the VM).
pub const RESULTS_DIR: &str = "VC_VM_RESULTS";

/// Whether this process runs inside the test VM.
#[must_use]
pub fn inside() -> bool {
    std::env::var_os(IN_VM).is_some_and(|v| v == "1")
}

/// `VC_VM_TIMEOUT` seconds, else 300: generous, because a VM shares two cores with builds and
/// other VMs, and a hung guest is killed at the limit anyway.
#[must_use]
pub fn default_timeout() -> Duration {
    let secs = std::env::var("VC_VM_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// Whether this host can boot the test VM, or why not.
pub fn ready() -> Result<VmDir, String> {
    if !crate::privilege::is_root() {
        return Err("needs root".into());
    }
    if !qemu::available() {
        return Err(format!("{} is not installed", qemu::QEMU));
    }
    let dir = VmDir::locate();
    dir.ready()?;
    Ok(dir)
}

/// Returns true when this host can boot the test VM. Otherwise prints why `test` skips, or
/// panics when `VC_REQUIRE_PRIV` forbids skipping (CI must never pass by skipping).
#[must_use]
pub fn can_boot(test: &str) -> bool {
    match ready() {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var_os("VC_REQUIRE_PRIV").is_none(),
                "{test}: cannot boot the test VM ({why}), and VC_REQUIRE_PRIV forbids skipping"
            );
            eprintln!("SKIP {test}: cannot boot the test VM: {why}");
            false
        }
    }
}

/// Runs the test `test` of the test binary `binary` in a fresh VM with `VC_IN_VM=1`.
pub fn run_in_vm(binary: &Path, test: &str, timeout: Duration) -> Result<VmOutcome> {
    VmRun::test(binary, test).timeout(timeout).run()
}

/// The guard at the top of a VM test. In the guest it returns true: run the body. On the
/// host it boots a VM running this test alone (`--exact`), panics with the guest's output if
/// the test failed there, and returns false. Without root, QEMU or a provisioned kernel it
/// skips with a reason, or panics when `VC_REQUIRE_PRIV` forbids skipping.
///
/// `test` is the calling test's name; inside a module, the path libtest prints
/// (`module::name`) also works, and the plain name is completed from the test thread's name.
#[must_use]
pub fn inside_or_boot(test: &str) -> bool {
    if inside() {
        return true;
    }
    let full = full_name(test);
    if can_boot(&full) {
        boot_test(&full);
    }
    false
}

/// [`inside_or_boot`], with systemd as the guest's PID 1 and the test body as one of its
/// units: for tests of vc as a systemd service (`systemctl`, the journal).
#[must_use]
pub fn inside_or_boot_under_systemd(test: &str) -> bool {
    if inside() {
        return true;
    }
    let full = full_name(test);
    if can_boot(&full) {
        boot_test_with(&full, qemu::GuestInit::Systemd);
    }
    false
}

/// Boots a VM running the test `test` (its full path) of this test binary, and panics with
/// the guest's output and console unless it passed there. The failed run's results stay.
pub fn boot_test(test: &str) {
    boot_test_with(test, qemu::GuestInit::Script);
}

fn boot_test_with(test: &str, init: qemu::GuestInit) {
    let binary = std::env::current_exe().expect("the test binary's path");
    let mut run = VmRun::test(&binary, test).timeout(default_timeout());
    if init == qemu::GuestInit::Systemd {
        run = run.under_systemd();
    }
    let mut outcome = run
        .run()
        .unwrap_or_else(|e| panic!("{test}: cannot run the test VM: {e:#}"));
    eprintln!("{}", outcome.summary());
    if let Err(e) = run::check_test_ran(&outcome, test) {
        outcome.dir.keep();
        panic!("{test} failed in the VM: {e:#}");
    }
}

/// The full path of the calling test, which libtest gives its thread as a name. A name that
/// is not the caller's would boot another test (a copied test with a stale name, say): refuse.
fn full_name(test: &str) -> String {
    match std::thread::current().name() {
        Some(thread) if thread == test || thread.ends_with(&format!("::{test}")) => {
            thread.to_string()
        }
        // not on a libtest thread (a test harness of one's own, `harness = false`)
        None | Some("main") => test.to_string(),
        Some(thread) => panic!(
            "inside_or_boot({test:?}) called from the test {thread}: pass the test's own name"
        ),
    }
}
