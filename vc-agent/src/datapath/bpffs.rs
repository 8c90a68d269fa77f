//! The BPF filesystem the pins live on. What vc mounts and creates there is root's alone
//! (mode 0700): a pinned map opened by someone else could change the datapath.
use std::{
    ffi::CString,
    fs, io,
    os::unix::{
        ffi::OsStrExt,
        fs::{DirBuilderExt, PermissionsExt},
    },
    path::Path,
};

use anyhow::{Context, Result, bail};

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: libc::__fsword_t = 0xcafe_4a11;
const DEFAULT_MOUNT: &str = "/sys/fs/bpf";
/// The mode of what vc mounts and of the pin directory.
const PRIVATE: u32 = 0o700;

/// Makes sure `pin_dir` exists on a BPF filesystem, root's alone, mounting the conventional
/// one at /sys/fs/bpf (mode 0700, as systemd does) when the pin directory is under it and
/// nothing is mounted there (systemd mounts it, a minimal host may not).
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
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE)
        .create(pin_dir)
        .with_context(|| format!("creating {}", pin_dir.display()))?;
    // One left by an earlier version may be open to all.
    fs::set_permissions(pin_dir, fs::Permissions::from_mode(PRIVATE))
        .with_context(|| format!("restricting {} to root", pin_dir.display()))
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
    let options = c"mode=0700";
    // SAFETY: valid C strings; bpffs reads its data argument as a C string of options.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("mounting a BPF filesystem on {}", at.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{
        fs,
        os::unix::fs::{DirBuilderExt, PermissionsExt},
        path::{Path, PathBuf},
    };

    use super::{ensure, mount_bpffs};

    /// Unmounts (and removes) its directory when dropped, even after a failed assertion.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = fs::remove_dir(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn what_vc_mounts_and_pins_under_is_roots_alone() {
        if !vc_testkit::privileged("what_vc_mounts_and_pins_under_is_roots_alone") {
            return;
        }
        let at = std::env::temp_dir().join(format!("vc-bpffs-mode-{}", std::process::id()));
        mount_bpffs(&at).expect("mount");
        let _mounted = Mounted(at.clone());
        assert_eq!(mode(&at), 0o700, "the mount");
        let fresh = at.join("vc/fresh");
        ensure(&fresh).expect("pin dir");
        assert_eq!((mode(&at.join("vc")), mode(&fresh)), (0o700, 0o700));
        let old = at.join("old");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&old)
            .expect("old dir");
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure(&old).expect("pin dir");
        assert_eq!(mode(&old), 0o700, "an existing pin dir is restricted too");
    }
}
