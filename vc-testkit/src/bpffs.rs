//! A private BPF filesystem per test: pins of parallel tests never meet, and unmounting it
//! removes every pin the test left.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::Result;

use crate::netns::run;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct TempBpfFs {
    path: PathBuf,
}

impl TempBpfFs {
    pub fn new() -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("vc-bpffs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&path))?;
        Ok(TempBpfFs { path })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBpfFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}
