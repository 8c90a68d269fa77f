//! The test VM: `cargo xtask vm-setup` provisions Debian's stock kernel (downloaded and
//! unpacked, never installed) and a busybox initramfs; `cargo xtask vm-shell` boots it by hand.
//! Booting for tests is vc-testkit's job (`vc_testkit::vm`), which reads the same directory.
use std::{
    fs,
    io::Write as _,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use vc_testkit::vm::{INIT_SCRIPT, VmDir, VmRun, qemu};

use crate::util::{output, sh};

/// The metapackage whose dependency names the current stock kernel.
const META_PACKAGE: &str = "linux-image-amd64";

/// What the guest needs before it can reach the host's root: virtio-pci, 9p over virtio and
/// overlayfs (all modules in Debian's config). Everything else is autoloaded later from the
/// 9p-mounted module tree.
const INITRAMFS_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

#[derive(clap::Args, Default)]
pub struct SetupOptions {
    /// Resolve the kernel `linux-image-amd64` depends on again, and switch to it if it changed
    /// (otherwise a provisioned kernel is kept).
    #[arg(long)]
    pub update: bool,
}

/// Provisions what is missing; quick when everything is there.
pub fn setup(opts: &SetupOptions) -> Result<()> {
    let dir = VmDir::locate();
    fs::create_dir_all(dir.root()).with_context(|| format!("creating {}", dir.root().display()))?;
    // Two set-ups at once (two `cargo xtask test` in one checkout) take turns.
    let lock = fs::File::create(dir.root().join("setup.lock"))?;
    lock.lock().context("locking the VM directory")?;
    kernel(&dir, opts.update)?;
    initramfs(&dir)?;
    eprintln!(
        "vm-setup: kernel {} in {}",
        dir.kernel_package().unwrap_or_default(),
        dir.root().display()
    );
    Ok(())
}

fn kernel(dir: &VmDir, update: bool) -> Result<()> {
    let present = dir.kernel_package().filter(|_| dir.kernel().is_file());
    if present.is_some() && !update {
        return Ok(());
    }
    let package = kernel_package_name()?;
    if present
        .as_deref()
        .is_some_and(|p| p.split_whitespace().next() == Some(package.as_str()))
    {
        return Ok(());
    }
    fetch_kernel(dir, &package)
}

/// `$VC_VM_KERNEL_PACKAGE`, else the package `linux-image-amd64` depends on.
fn kernel_package_name() -> Result<String> {
    if let Some(package) = std::env::var("VC_VM_KERNEL_PACKAGE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Ok(package);
    }
    if let Some(package) = meta_dependency() {
        return Ok(package);
    }
    // No apt lists yet (a fresh container), or lists without the metapackage.
    apt_update()?;
    meta_dependency().with_context(|| format!("{META_PACKAGE} depends on no kernel package"))
}

fn meta_dependency() -> Option<String> {
    let deps = output(Command::new("apt-cache").args(["depends", META_PACKAGE]))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_string)
}

fn apt_update() -> Result<()> {
    sh(Command::new("apt-get").args(["update", "-qq"]))
}

/// Downloads `package`, unpacks its kernel and modules into `dir`, and indexes the modules.
fn fetch_kernel(dir: &VmDir, package: &str) -> Result<()> {
    let work = dir.root().join("fetch.tmp");
    recreate(&work)?;
    // apt-get download saves into the working directory. As root it warns that "_apt" cannot
    // access the file: harmless.
    let download = || {
        sh(Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(&work))
    };
    if download().is_err() {
        // stale lists name a version the archive has dropped
        apt_update()?;
        download()?;
    }
    let deb = fs::read_dir(&work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let version = output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))
        .context("reading the package's version")?;
    let tree = work.join("x");
    // Unpacked, not installed: no postinst, no initramfs-tools, the host's /boot untouched.
    sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| tree.join(d))
        .find(|d| d.is_dir())
        .context("the package has no lib/modules")?;
    let release = single_entry(&modules)?;

    // Invalidate the old kernel first: kernel-package, written last, marks a complete one.
    for stale in [dir.kernel_package_file(), dir.init_stamp(), dir.initramfs()] {
        remove_file_if_present(&stale)?;
    }
    remove_dir_if_present(&dir.root().join("lib"))?;
    fs::rename(tree.join(format!("boot/vmlinuz-{release}")), dir.kernel())
        .context("the package has no boot/vmlinuz")?;
    fs::create_dir_all(dir.modules())?;
    fs::rename(modules.join(&release), dir.modules().join(&release))?;
    // The .deb ships no modules.dep (its postinst would make it); the guest's modprobe needs it.
    sh(Command::new("depmod")
        .arg("-b")
        .arg(dir.root())
        .arg(&release))?;
    fs::write(dir.release_file(), format!("{release}\n"))?;
    fs::write(dir.kernel_package_file(), format!("{package} {version}\n"))?;
    remove_dir_if_present(&work)
}

/// Builds the initramfs unless the one there was built from the current init script.
fn initramfs(dir: &VmDir) -> Result<()> {
    let stamp = fs::read_to_string(dir.init_stamp()).ok();
    if dir.initramfs().is_file() && stamp.as_deref() == Some(INIT_SCRIPT) {
        return Ok(());
    }
    let release = dir.release().context("no kernel release recorded")?;
    let stage = dir.root().join("initramfs.tmp");
    recreate(&stage)?;
    for d in [
        "bin", "modules", "proc", "sys", "dev", "lower", "upper", "newroot",
    ] {
        fs::create_dir(stage.join(d))?;
    }
    // /bin/busybox comes from busybox-static: a dynamic one would find no libc here.
    fs::copy("/bin/busybox", stage.join("bin/busybox")).context("copying /bin/busybox")?;
    symlink("busybox", stage.join("bin/sh"))?;

    let mut order = String::new();
    for ko in initramfs_modules(dir, &release)? {
        let name = install_module(&ko, &stage.join("modules"))?;
        order.push_str(&name);
        order.push('\n');
    }
    fs::write(stage.join("modules/order"), &order)?;
    let init = stage.join("init");
    fs::write(&init, INIT_SCRIPT)?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;

    let archive = dir.root().join("initramfs.cpio.gz.tmp");
    let file = fs::File::create(&archive)?;
    sh(Command::new("sh")
        .args(["-c", "find . | cpio -o -H newc --quiet | gzip -1"])
        .current_dir(&stage)
        .stdout(file))?;
    fs::rename(&archive, dir.initramfs())?;
    fs::write(dir.init_stamp(), INIT_SCRIPT)?;
    remove_dir_if_present(&stage)?;
    eprintln!(
        "vm-setup: initramfs with {}",
        order.lines().collect::<Vec<_>>().join(" ")
    );
    Ok(())
}

/// The `.ko` files of [`INITRAMFS_MODULES`] and their dependencies, in load order.
fn initramfs_modules(dir: &VmDir, release: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for module in INITRAMFS_MODULES {
        // prints "insmod <file>" lines, dependencies first
        let deps = output(Command::new("modprobe").arg("-d").arg(dir.root()).args([
            "-S",
            release,
            "--show-depends",
            module,
        ]))
        .with_context(|| format!("modprobe --show-depends {module}"))?;
        for line in deps.lines() {
            if let Some(file) = line.strip_prefix("insmod ") {
                let file = PathBuf::from(file.trim());
                if !files.contains(&file) {
                    files.push(file);
                }
            }
        }
    }
    if files.is_empty() {
        bail!("no initramfs modules found for {release}");
    }
    Ok(files)
}

/// Copies a module into `to` as plain `.ko` (busybox insmod may not read compressed ones)
/// and returns its file name.
fn install_module(ko: &Path, to: &Path) -> Result<String> {
    let name = ko.file_name().context("module path")?.to_string_lossy();
    let (plain, decompress) = match name.rsplit_once('.') {
        Some((stem, "xz")) => (stem.to_string(), Some("xz")),
        Some((stem, "zst")) => (stem.to_string(), Some("zstd")),
        _ => (name.to_string(), None),
    };
    match decompress {
        None => {
            fs::copy(ko, to.join(&plain)).with_context(|| format!("copying {}", ko.display()))?;
        }
        Some(tool) => {
            let out = fs::File::create(to.join(&plain))?;
            sh(Command::new(tool).arg("-dc").arg(ko).stdout(out))?;
        }
    }
    Ok(plain)
}

#[derive(clap::Args)]
pub struct ShellOptions {
    /// Run this command in the guest and print its output, instead of an interactive shell.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Boots the VM with a root shell on the terminal, or runs one command in it.
pub fn shell(opts: &ShellOptions) -> Result<()> {
    let dir = VmDir::locate();
    dir.ready().map_err(anyhow::Error::msg)?;
    if opts.command.is_empty() {
        // A writable host directory for getting files (captures, logs) out of the guest.
        let share = dir.runs().join(format!("shell-{}", std::process::id()));
        fs::create_dir_all(&share)?;
        eprintln!(
            "vm-shell: booting; exit the shell to power off (Ctrl-A X kills QEMU). \
             {} is writable from the guest.",
            share.display()
        );
        let status = qemu::command(&dir, None, Some(&share))
            .stdin(Stdio::inherit())
            .status()
            .with_context(|| format!("starting {}", qemu::QEMU))?;
        let _ = fs::remove_dir(&share); // kept when the guest left files in it
        if !status.success() {
            bail!("{} exited with {status}", qemu::QEMU);
        }
        return Ok(());
    }
    let argv: Vec<&str> = opts.command.iter().map(String::as_str).collect();
    let outcome = VmRun::new("vm-shell", &argv).run()?;
    std::io::stdout().write_all(outcome.output.as_bytes())?;
    eprintln!("{}", outcome.summary());
    if !outcome.passed() {
        bail!("{}", outcome.report());
    }
    Ok(())
}

fn single_entry(dir: &Path) -> Result<String> {
    let mut entries = fs::read_dir(dir)?.filter_map(Result::ok);
    let first = entries.next().context("empty")?;
    if entries.next().is_some() {
        bail!("{} holds more than one kernel release", dir.display());
    }
    Ok(first.file_name().to_string_lossy().into_owned())
}

fn recreate(dir: &Path) -> Result<()> {
    remove_dir_if_present(dir)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn remove_file_if_present(file: &Path) -> Result<()> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", file.display()))
        }
        _ => Ok(()),
    }
}
