//! The BPF filesystem the pins live on.
use std::{ffi::CString, fs, io, os::unix::ffi::OsStrExt, path::Path};

use anyhow::{Context, Result, bail};

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: libc::__fsword_t = 0xcafe_4a11;
const DEFAULT_MOUNT: &str = "/sys/fs/bpf";

/// Makes sure `pin_dir` exists on a BPF filesystem, mounting the conventional one at
/// /sys/fs/bpf when the pin directory is under it and nothing is mounted there (systemd
/// mounts it, a minimal host may not).
pub fn ensure(pin_dir: &Path) -> Result<()> {
    if pin_dir.starts_with(DEFAULT_MOUNT) && !is_bpffs(Path::new(DEFAULT_MOUNT))? {
        mount_bpffs(Path::new(DEFAULT_MOUNT))?;
    }
    let mut existing = pin_dir;
    while !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    if !is_bpffs(existing)? {
        bail!(
            "{} is not on a BPF filesystem (mount -t bpf bpf <dir>)",
            pin_dir.display()
        );
    }
    fs::create_dir_all(pin_dir).with_context(|| format!("creating {}", pin_dir.display()))
}

pub fn is_bpffs(path: &Path) -> Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes()).context("path with NUL")?;
    // SAFETY: an all-zero statfs is a valid out buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &raw mut st) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("statfs {}", path.display()));
    }
    Ok(st.f_type == BPF_FS_MAGIC)
}

pub fn mount_bpffs(at: &Path) -> Result<()> {
    fs::create_dir_all(at).with_context(|| format!("creating {}", at.display()))?;
    let target = CString::new(at.as_os_str().as_bytes()).context("path with NUL")?;
    let fstype = c"bpf";
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("mounting a BPF filesystem on {}", at.display()));
    }
    Ok(())
}
