//! The independent judge of what is on the wire: tcpdump captures, read back with tcpdump's
//! own decoders and sorted into IKE, ESP, GRE and the rest, or decoded field by field by
//! tshark.
//!
//! Capture **egress only** (`-Q out`) to check "nothing leaves in clear": tunnel-mode ESP
//! re-injects decrypted packets on the receiving device, so an ingress capture there shows
//! clear inner GRE that never crossed the wire.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::netns::{Daemon, NetNs, wait_for};

/// A running capture; stopped (SIGINT, so tcpdump flushes) by [`Capture::stop`].
pub struct Capture {
    daemon: Daemon,
    path: PathBuf,
    label: String,
}

/// Which packets of a device a capture sees.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    In,
    Out,
    Both,
}

impl Capture {
    /// Captures the IPv4 packets `dev` in `ns` sends (egress only) into `path`: what this end
    /// put on the wire.
    pub fn egress(ns: &NetNs, dev: &str, path: &Path) -> Result<Capture> {
        Capture::start(ns, dev, Direction::Out, "ip", path)
    }

    /// Starts tcpdump on `dev` in `ns`, writing what matches the capture `filter` to `path`;
    /// returns once tcpdump is capturing. Its messages go to `path` with extension `log`.
    pub fn start(
        ns: &NetNs,
        dev: &str,
        direction: Direction,
        filter: &str,
        path: &Path,
    ) -> Result<Capture> {
        let _ = std::fs::remove_file(path);
        let log = std::fs::File::create(path.with_extension("log")).context("capture log")?;
        let mut cmd = ns.command("tcpdump");
        // --immediate-mode: without it TPACKET_V3 holds packets in a ring block until it
        // fills or times out, and a capture stopped right after traffic misses the tail.
        // -Z root: tcpdump would otherwise drop to its own user before opening the file, and
        // fail in a directory only root may write.
        cmd.args([
            "-i",
            dev,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-s",
            "256",
        ]);
        match direction {
            Direction::In => cmd.args(["-Q", "in"]),
            Direction::Out => cmd.args(["-Q", "out"]),
            Direction::Both => &mut cmd,
        };
        let child = cmd
            .arg("-w")
            .arg(path)
            .args(filter.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting tcpdump")?;
        let capture = Capture {
            daemon: Daemon::new(child, "tcpdump"),
            path: path.to_path_buf(),
            label: format!("{}:{dev}", ns.name()),
        };
        // The pcap header is written once the capture is open.
        wait_for(Duration::from_secs(10), "tcpdump to start", || {
            (std::fs::metadata(path).ok()?.len() >= 24).then_some(())
        })?;
        std::thread::sleep(Duration::from_millis(200));
        Ok(capture)
    }

    /// Stops the capture and returns what it saw.
    pub fn stop(mut self) -> Result<Packets> {
        // Give packets in flight time to be written.
        std::thread::sleep(Duration::from_millis(300));
        self.daemon.signal(libc::SIGINT);
        wait_for(Duration::from_secs(10), "tcpdump to stop", || {
            (!self.daemon.is_running()).then_some(())
        })?;
        read(&self.path, &self.label)
    }
}

/// Reads a pcap file back with tcpdump's decoders.
pub fn read(path: &Path, label: &str) -> Result<Packets> {
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(path)
        .output()
        .context("tcpdump -r")?;
    if !out.status.success() {
        bail!(
            "tcpdump -r {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(Packet::parse)
        .collect();
    Ok(Packets {
        label: label.to_string(),
        path: path.to_path_buf(),
        lines,
    })
}

/// What a packet is, as far as the "only IKE and ESP" rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// IKE on UDP 500, or on 4500 with the non-ESP marker, or a NAT-T keepalive.
    Ike,
    /// ESP, raw (IP protocol 50) or UDP-encapsulated on 4500.
    Esp,
    /// GRE in clear: must never be seen where IPsec protects it.
    Gre,
    Other,
}

/// One captured packet: tcpdump's line, its kind, and its UDP ports if any.
#[derive(Debug, Clone)]
pub struct Packet {
    pub line: String,
    pub kind: Kind,
    pub udp_ports: Option<(u16, u16)>,
}

impl Packet {
    fn parse(line: &str) -> Packet {
        let kind = if line.contains(": GRE") {
            Kind::Gre
        } else if line.contains("ESP(") {
            Kind::Esp
        } else if line.contains("isakmp") {
            Kind::Ike
        } else {
            Kind::Other
        };
        Packet {
            line: line.to_string(),
            kind,
            udp_ports: udp_ports(line),
        }
    }

    /// Its source and destination hosts, without ports: `IP a.b.c.d[.P] > e.f.g.h[.Q]: ...`
    /// → (a.b.c.d, e.f.g.h); `None` for a line that is no IPv4 packet.
    #[must_use]
    pub fn hosts(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let rest = &self.line[self.line.find(" IP ")? + 4..];
        let (src, rest) = rest.split_once(" > ")?;
        let dst = rest.split(':').next()?;
        let host = |end: &str| -> Option<Ipv4Addr> {
            end.split('.')
                .take(4)
                .collect::<Vec<_>>()
                .join(".")
                .parse()
                .ok()
        };
        Some((host(src)?, host(dst)?))
    }
}

/// `IP a.b.c.d.P > e.f.g.h.Q: ...` → (P, Q); None without ports (ESP, GRE, ICMP).
fn udp_ports(line: &str) -> Option<(u16, u16)> {
    let rest = &line[line.find(" IP ")? + 4..];
    let (src, rest) = rest.split_once(" > ")?;
    let dst = rest.split(':').next()?;
    let port = |ep: &str| -> Option<u16> {
        let parts: Vec<&str> = ep.split('.').collect();
        (parts.len() == 5).then(|| parts[4].parse().ok()).flatten()
    };
    Some((port(src)?, port(dst)?))
}

/// The packets of one capture.
#[derive(Debug, Clone)]
pub struct Packets {
    pub label: String,
    /// The pcap file, for other readers (tshark).
    pub path: PathBuf,
    pub lines: Vec<Packet>,
}

impl Packets {
    #[must_use]
    pub fn count(&self, kind: Kind) -> usize {
        self.lines.iter().filter(|p| p.kind == kind).count()
    }

    /// The UDP ports seen (either side).
    #[must_use]
    pub fn udp_ports(&self) -> BTreeSet<u16> {
        self.lines
            .iter()
            .filter_map(|p| p.udp_ports)
            .flat_map(|(a, b)| [a, b])
            .collect()
    }

    /// The packets that are neither IKE nor ESP.
    #[must_use]
    pub fn not_ike_or_esp(&self) -> Vec<&Packet> {
        self.lines
            .iter()
            .filter(|p| !matches!(p.kind, Kind::Ike | Kind::Esp))
            .collect()
    }

    /// Fails unless every packet is IKE or ESP and there is ESP at all (so an empty capture
    /// cannot pass).
    pub fn assert_only_ike_and_esp(&self) {
        let bad = self.not_ike_or_esp();
        assert!(
            bad.is_empty(),
            "{}: {} packets that are not IKE or ESP, e.g.:\n{}",
            self.label,
            bad.len(),
            bad.iter()
                .take(5)
                .map(|p| p.line.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            self.count(Kind::Esp) > 0,
            "{}: no ESP at all:\n{self}",
            self.label
        );
    }

    /// [`Packets::assert_only_ike_and_esp`], and every packet between `cpe` and one of `dcs`
    /// (either way): nobody else on the link.
    pub fn assert_only_ipsec_between(&self, cpe: Ipv4Addr, dcs: &[Ipv4Addr]) {
        self.assert_only_ike_and_esp();
        let strangers: Vec<&str> = self
            .lines
            .iter()
            .filter(|p| {
                !p.hosts().is_some_and(|(src, dst)| {
                    (src == cpe && dcs.contains(&dst)) || (dst == cpe && dcs.contains(&src))
                })
            })
            .map(|p| p.line.as_str())
            .collect();
        assert!(
            strangers.is_empty(),
            "{}: not between {cpe} and {dcs:?}: {strangers:#?}",
            self.label
        );
    }

    /// The ESP packets per (source, destination).
    #[must_use]
    pub fn esp_by_ends(&self) -> BTreeMap<(Ipv4Addr, Ipv4Addr), usize> {
        let mut esp = BTreeMap::new();
        for ends in self
            .lines
            .iter()
            .filter(|p| p.kind == Kind::Esp)
            .filter_map(Packet::hosts)
        {
            *esp.entry(ends).or_default() += 1;
        }
        esp
    }
}

/// `fields` of each packet of the capture at `path` matching the display `filter`, decoded
/// by tshark.
pub fn tshark_fields(path: &Path, filter: &str, fields: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(path)
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

impl fmt::Display for Packets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} packets: {} IKE, {} ESP, {} GRE, {} other",
            self.label,
            self.lines.len(),
            self.count(Kind::Ike),
            self.count(Kind::Esp),
            self.count(Kind::Gre),
            self.count(Kind::Other)
        )
    }
}

/// The frames of a pcap file (classic format, as tcpdump `-w` writes it), as captured (up to
/// the snap length): for comparing packets byte by byte.
pub fn frames(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let magic = bytes.get(..4).context("pcap without a header")?;
    let swapped = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => cfg!(target_endian = "big"),
        [0xa1, 0xb2, 0xc3, 0xd4] => cfg!(target_endian = "little"),
        _ => bail!("{}: not a classic pcap file", path.display()),
    };
    let u32_at = |at: usize| -> Result<usize> {
        let b: [u8; 4] = bytes
            .get(at..at + 4)
            .context("pcap record cut short")?
            .try_into()?;
        let v = if swapped {
            u32::from_ne_bytes(b).swap_bytes()
        } else {
            u32::from_ne_bytes(b)
        };
        Ok(usize::try_from(v)?)
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let captured = u32_at(at + 8)?;
        let start = at + 16;
        let frame = bytes
            .get(start..start + captured)
            .context("pcap frame cut short")?;
        frames.push(frame.to_vec());
        at = start + captured;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::{Kind, Packet};

    #[test]
    fn tcpdump_lines_are_sorted_into_kinds() {
        let cases = [
            (
                "15:04:03.161024 IP 198.51.100.1.500 > 198.51.100.2.500: isakmp: parent_sa ikev2_init[I]",
                Kind::Ike,
                Some((500, 500)),
            ),
            (
                "15:04:03.2 IP 10.0.0.2.4500 > 198.51.100.2.4500: NONESP-encap: isakmp: child_sa  ikev2_auth[I]",
                Kind::Ike,
                Some((4500, 4500)),
            ),
            (
                "15:04:03.3 IP 198.51.100.3.4500 > 198.51.100.2.4500: isakmp-nat-keep-alive",
                Kind::Ike,
                Some((4500, 4500)),
            ),
            (
                "15:04:03.4 IP 198.51.100.1 > 198.51.100.2: ESP(spi=0xc1a2b3c4,seq=0x1), length 120",
                Kind::Esp,
                None,
            ),
            (
                "15:04:03.5 IP 198.51.100.3.4500 > 198.51.100.2.4500: UDP-encap: ESP(spi=0xc1a2b3c4,seq=0x1), length 120",
                Kind::Esp,
                Some((4500, 4500)),
            ),
            (
                "15:04:03.6 IP 198.51.100.1 > 198.51.100.9: GREv0, length 88: IP 100.64.9.2 > 100.64.9.1: ICMP echo request, id 1, seq 1, length 64",
                Kind::Gre,
                None,
            ),
            (
                "15:04:03.7 IP 198.51.100.2 > 198.51.100.1: ICMP 198.51.100.2 udp port 500 unreachable, length 36",
                Kind::Other,
                None,
            ),
        ];
        for (line, kind, ports) in cases {
            let p = Packet::parse(line);
            assert_eq!((p.kind, p.udp_ports), (kind, ports), "{line}");
        }
    }

    #[test]
    fn a_packets_hosts_are_read_with_or_without_ports() {
        let hosts = |line: &str| {
            Packet::parse(line)
                .hosts()
                .map(|(s, d)| (s.to_string(), d.to_string()))
        };
        let pair = |s: &str, d: &str| Some((s.to_string(), d.to_string()));
        assert_eq!(
            hosts(
                "15:04:03.1 IP 203.0.113.10.500 > 192.0.2.30.500: isakmp: child_sa  ikev2_auth[I]"
            ),
            pair("203.0.113.10", "192.0.2.30")
        );
        assert_eq!(
            hosts(
                "15:04:03.4 IP 192.0.2.40 > 203.0.113.10: ESP(spi=0xc1a2b3c4,seq=0x1), length 120"
            ),
            pair("192.0.2.40", "203.0.113.10")
        );
        assert_eq!(
            hosts("15:04:03.5 ARP, Request who-has 203.0.113.1 tell 203.0.113.10"),
            None
        );
    }

    #[test]
    fn frames_are_read_back_as_written() {
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&256u32.to_le_bytes());
        pcap.extend_from_slice(&1u32.to_le_bytes());
        for frame in [&[1u8, 2, 3][..], &[4, 5]] {
            pcap.extend_from_slice(&[0; 8]);
            let len = u32::try_from(frame.len()).expect("short");
            pcap.extend_from_slice(&len.to_le_bytes());
            pcap.extend_from_slice(&len.to_le_bytes());
            pcap.extend_from_slice(frame);
        }
        let path = std::env::temp_dir().join(format!("vc-frames-{}.pcap", std::process::id()));
        std::fs::write(&path, &pcap).expect("write");
        assert_eq!(
            super::frames(&path).expect("read"),
            vec![vec![1, 2, 3], vec![4, 5]]
        );
        pcap.truncate(pcap.len() - 1);
        std::fs::write(&path, &pcap).expect("write");
        assert!(
            super::frames(&path).is_err(),
            "a frame cut short is an error"
        );
        let _ = std::fs::remove_file(&path);
    }
}
