//! tcpdump captures as an independent judge of what is on the wire, and tshark to read them.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{Daemon, NetNs, netns::run, wait_for};

/// A running capture; stop it to read the file.
pub struct Capture {
    daemon: Daemon,
    file: PathBuf,
}

/// Which packets of a device a capture sees. Egress only is the honest view of "what this
/// end put on the wire": an ingress capture also shows packets XFRM decrypted on the device.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    In,
    Out,
    Both,
}

impl Capture {
    /// Starts `tcpdump` on `device` in `ns`, writing to `file` what matches the capture
    /// `filter`; returns once tcpdump is capturing.
    pub fn start(
        ns: &NetNs,
        device: &str,
        direction: Direction,
        filter: &str,
        file: &Path,
    ) -> Result<Self> {
        // --immediate-mode: packets still in the capture ring when tcpdump is stopped would
        // be counted "received by filter" and never written. -Z root: tcpdump would otherwise
        // drop to its own user before writing the file, and fail where only root may write.
        let mut args = vec![
            "-i",
            device,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-s",
            "256",
            "-w",
        ];
        let file_str = file.to_str().context("capture path")?;
        args.push(file_str);
        match direction {
            Direction::In => args.extend(["-Q", "in"]),
            Direction::Out => args.extend(["-Q", "out"]),
            Direction::Both => {}
        }
        args.extend(filter.split_whitespace());
        let child = ns
            .command("tcpdump")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(file.with_extension("log")).context("capture log")?)
            .spawn()
            .context("starting tcpdump")?;
        let daemon = Daemon::new(child, "tcpdump");
        // The pcap header is written once tcpdump has opened the device.
        wait_for(Duration::from_secs(10), "tcpdump to start", || {
            std::fs::metadata(file)
                .ok()
                .filter(|m| m.len() >= 24)
                .map(|_| ())
        })?;
        // Opening the device and installing the filter are done by then; give the kernel a
        // moment to start delivering.
        std::thread::sleep(Duration::from_millis(200));
        Ok(Capture {
            daemon,
            file: file.to_path_buf(),
        })
    }

    /// Stops tcpdump (letting it flush) and returns the capture file.
    pub fn stop(mut self) -> Result<PathBuf> {
        std::thread::sleep(Duration::from_millis(300));
        self.daemon.signal(libc::SIGINT);
        wait_for(Duration::from_secs(5), "tcpdump to exit", || {
            (!self.daemon.is_running()).then_some(())
        })?;
        Ok(self.file.clone())
    }
}

/// The packets of a capture as tcpdump prints them, one line each.
pub fn tcpdump_lines(file: &Path, filter: &str) -> Result<Vec<String>> {
    let out = run(Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(file)
        .args(filter.split_whitespace()))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// `fields` of each packet matching the display `filter`, decoded by tshark.
pub fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().context("running tshark")?;
    if !out.status.success() {
        bail!("tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect())
}
