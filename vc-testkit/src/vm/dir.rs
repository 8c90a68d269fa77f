//! The VM directory: the guest kernel, its modules and the initramfs that `cargo xtask
//! vm-setup` provisions, and the per-run results directories.
use std::{
    fs,
    path::{Path, PathBuf},
};

/// The guest's PID 1. The initramfs holds a copy; [`VmDir::ready`] compares the two so a
/// changed init is never booted stale.
pub const INIT_SCRIPT: &str = include_str!("../../vm/init.sh");

/// Where the VM's files live: `$VC_VM_DIR`, else `<workspace>/target/vm`.
#[derive(Clone, Debug)]
pub struct VmDir {
    root: PathBuf,
}

impl VmDir {
    #[must_use]
    pub fn locate() -> Self {
        let root = std::env::var_os("VC_VM_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vm"),
            PathBuf::from,
        );
        // Absolute: the paths end up on QEMU's and the guest kernel's command lines.
        let root = std::path::absolute(&root).unwrap_or(root);
        VmDir {
            root: normalize(&root),
        }
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The guest kernel image.
    #[must_use]
    pub fn kernel(&self) -> PathBuf {
        self.root.join("vmlinuz")
    }

    #[must_use]
    pub fn initramfs(&self) -> PathBuf {
        self.root.join("initramfs.cpio.gz")
    }

    /// The copy of [`INIT_SCRIPT`] the initramfs was built from.
    #[must_use]
    pub fn init_stamp(&self) -> PathBuf {
        self.root.join("init.sh")
    }

    /// Exported to the guest, which mounts it on `/lib/modules`.
    #[must_use]
    pub fn modules(&self) -> PathBuf {
        self.root.join("lib/modules")
    }

    /// `<package> <version>` of the Debian kernel package; written last when the kernel is
    /// provisioned, so it marks a complete kernel.
    #[must_use]
    pub fn kernel_package_file(&self) -> PathBuf {
        self.root.join("kernel-package")
    }

    /// The guest kernel's release (`uname -r` in the guest), e.g. `6.1.0-56-amd64`.
    #[must_use]
    pub fn release_file(&self) -> PathBuf {
        self.root.join("kernel-release")
    }

    /// Parent of the per-run results directories.
    #[must_use]
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// The provisioned kernel release, if any.
    #[must_use]
    pub fn release(&self) -> Option<String> {
        read_trimmed(&self.release_file())
    }

    /// `<package> <version>`, if provisioned.
    #[must_use]
    pub fn kernel_package(&self) -> Option<String> {
        read_trimmed(&self.kernel_package_file())
    }

    /// Whether a VM can boot from here, or why not.
    pub fn ready(&self) -> Result<(), String> {
        let setup = "run `cargo xtask vm-setup`";
        if self.kernel_package().is_none() || !self.kernel().is_file() {
            return Err(format!(
                "no guest kernel in {}: {setup}",
                self.root.display()
            ));
        }
        if !self.initramfs().is_file() {
            return Err(format!("no initramfs in {}: {setup}", self.root.display()));
        }
        if fs::read_to_string(self.init_stamp()).ok().as_deref() != Some(INIT_SCRIPT) {
            return Err(format!(
                "the initramfs in {} was built from another vc-testkit/vm/init.sh: {setup}",
                self.root.display()
            ));
        }
        check_path(&self.root)?;
        Ok(())
    }
}

/// Paths go into QEMU's comma-separated options and the space-separated kernel command line.
pub(crate) fn check_path(path: &Path) -> Result<(), String> {
    let s = path.to_string_lossy();
    if s.contains([',', ' ', '\t', '\n']) {
        return Err(format!(
            "{s}: a VM path may contain no commas or white space"
        ));
    }
    Ok(())
}

fn read_trimmed(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Drops `..` and `.` components without touching the file system (the directory may not
/// exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}
