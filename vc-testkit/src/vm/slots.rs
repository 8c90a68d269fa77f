//! A machine-wide limit on running VMs: each holds an exclusive `flock` on one of
//! `$VC_VM_SLOTS` (default 2) lock files. Under TCG a VM keeps a host core busy, and cargo runs
//! tests (and other people's test runs) in parallel: without a limit, boots slow each other
//! down until they time out. The locks sit in a directory shared by every run on purpose;
//! the kernel drops a lock when its holder exits, however it exits.
use std::{
    fs::{self, File, OpenOptions},
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// A held slot; released on drop.
pub struct Slot {
    _lock: File,
}

fn count() -> usize {
    std::env::var("VC_VM_SLOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

fn dir() -> PathBuf {
    std::env::temp_dir().join("vc-vm-slots")
}

/// Waits up to `patience` for a free slot.
pub fn acquire(patience: Duration) -> Result<Slot> {
    let dir = dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = (0..count())
        .map(|i| {
            let path = dir.join(format!("slot-{i}"));
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let deadline = Instant::now() + patience;
    loop {
        for file in &files {
            // flock(2): held by the open file description, so by the clone we keep
            if file.try_lock().is_ok() {
                let lock = file.try_clone().context("keeping the slot's lock")?;
                return Ok(Slot { _lock: lock });
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "no free VM slot in {} after {patience:?} (VC_VM_SLOTS={})",
                dir.display(),
                count()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}
