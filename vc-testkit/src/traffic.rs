//! Test traffic between namespaces: TCP transfers checked byte by byte, and a steady ping
//! whose replies are counted, with the gaps in them.
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result, anyhow};

use crate::netns::{Daemon, NetNs, wait_for};

/// `count` pings 50 ms apart from `ns` (from `source`, if given) to `dst`, each waited for
/// at most 2 s: a burst that stands out on a tunnel's counters. An error with ping's output
/// unless every one came back.
pub fn ping_burst(ns: &NetNs, source: Option<Ipv4Addr>, dst: Ipv4Addr, count: u64) -> Result<()> {
    let from = source.map_or_else(String::new, |a| format!("-I {a} "));
    let out = ns.sh_output(&format!("ping -n -q -c {count} -i 0.05 -W 2 {from}{dst}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(anyhow!(
            "ping {from}{dst}: {}",
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// A deterministic byte stream, so the receiver can check every byte.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)).to_le_bytes()[0]
}

/// Sends `bytes` over TCP from `client` to `server_addr:port` (a listener started in `server`)
/// and checks that every byte arrived intact. Returns the number of bytes received.
pub fn tcp_transfer(
    client: &NetNs,
    server: &NetNs,
    server_addr: Ipv4Addr,
    port: u16,
    bytes: usize,
) -> Result<usize> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let listen = SocketAddr::from((server_addr, port));
    let receiver = {
        server.spawn_in(move || -> Result<usize> {
            let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
            ready_tx.send(()).ok();
            let (mut conn, _) = listener.accept().context("accept")?;
            conn.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            loop {
                let n = conn.read(&mut buf).context("read")?;
                if n == 0 {
                    break;
                }
                for (k, b) in buf[..n].iter().enumerate() {
                    if *b != pattern(total + k) {
                        return Err(anyhow!("byte {} corrupted", total + k));
                    }
                }
                total += n;
            }
            Ok(total)
        })?
    };
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("the listener on {listen} did not start"))?;
    client.run_in(move || -> Result<()> {
        let mut conn = TcpStream::connect_timeout(&listen, Duration::from_secs(10))
            .with_context(|| format!("connect {listen}"))?;
        conn.set_write_timeout(Some(Duration::from_secs(30)))?;
        let chunk: Vec<u8> = (0..bytes).map(pattern).collect();
        conn.write_all(&chunk).context("write")?;
        Ok(())
    })??;
    receiver.join().map_err(|_| anyhow!("receiver panicked"))?
}

/// Opens a TCP connection from `client` to `addr:port` where `server` listens (a plain
/// connect/accept, e.g. to the BGP port), returning the address the server saw.
pub fn tcp_connect(
    client: &NetNs,
    server: &NetNs,
    addr: Ipv4Addr,
    port: u16,
) -> Result<SocketAddr> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let listen = SocketAddr::from((addr, port));
    let acceptor = server.spawn_in(move || -> Result<SocketAddr> {
        let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
        ready_tx.send(()).ok();
        let (_, peer) = listener.accept().context("accept")?;
        Ok(peer)
    })?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("the listener on {listen} did not start"))?;
    client
        .run_in(move || TcpStream::connect_timeout(&listen, Duration::from_secs(10)).map(drop))??;
    acceptor.join().map_err(|_| anyhow!("acceptor panicked"))?
}

/// `ping` running in the background (`-D` timestamps, `-O` reports misses), stopped with
/// SIGINT so it prints its summary.
pub struct Pinger {
    daemon: Daemon,
    out: PathBuf,
    interval: Duration,
}

/// What a [`Pinger`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingStats {
    pub sent: u32,
    pub received: u32,
    /// Sequence numbers without a reply.
    pub lost: Vec<u32>,
    /// The longest run of consecutive lost sequence numbers.
    pub longest_gap: u32,
}

impl PingStats {
    /// Lost packets in percent.
    #[must_use]
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        f64::from(self.sent - self.received.min(self.sent)) * 100.0 / f64::from(self.sent)
    }
}

impl Pinger {
    /// Pings `dst` from `ns` every `interval` (below 200 ms needs root), logging to `out`.
    pub fn start(ns: &NetNs, dst: &str, interval: Duration, out: &Path) -> Result<Pinger> {
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let child = ns
            .command("ping")
            .args(["-D", "-O", "-n", "-W", "1", "-i"])
            .arg(format!("{:.3}", interval.as_secs_f64()))
            .arg(dst)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .context("starting ping")?;
        Ok(Pinger {
            daemon: Daemon::new(child, "ping"),
            out: out.to_path_buf(),
            interval,
        })
    }

    /// Replies so far.
    #[must_use]
    pub fn replies(&self) -> u32 {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        u32::try_from(text.lines().filter(|l| l.contains(" bytes from ")).count())
            .unwrap_or(u32::MAX)
    }

    /// Waits until `n` more replies than now have arrived (traffic flows again).
    pub fn wait_replies(&self, n: u32, limit: Duration) -> Result<Duration> {
        let start = std::time::Instant::now();
        let base = self.replies();
        wait_for(limit, "ping replies", || {
            (self.replies() >= base + n).then_some(())
        })?;
        Ok(start.elapsed())
    }

    /// Stops it and reads its output.
    pub fn stop(mut self) -> Result<PingStats> {
        self.daemon.signal(libc::SIGINT);
        wait_for(
            Duration::from_secs(5) + self.interval * 2,
            "ping to stop",
            || (!self.daemon.is_running()).then_some(()),
        )?;
        let text = std::fs::read_to_string(&self.out)?;
        Ok(parse(&text))
    }
}

fn parse(text: &str) -> PingStats {
    let mut replied = std::collections::BTreeSet::new();
    let (mut sent, mut received) = (0, 0);
    for line in text.lines() {
        if line.contains(" bytes from ")
            && let Some(seq) = field(line, "icmp_seq=")
        {
            replied.insert(seq);
        }
        if line.contains("packets transmitted") {
            let nums: Vec<u32> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [s, r, ..] = nums[..] {
                (sent, received) = (s, r);
            }
        }
    }
    let lost: Vec<u32> = (1..=sent).filter(|s| !replied.contains(s)).collect();
    let mut longest_gap = 0;
    let mut run = 0;
    let mut prev = None;
    for &s in &lost {
        run = if prev == Some(s - 1) { run + 1 } else { 1 };
        longest_gap = longest_gap.max(run);
        prev = Some(s);
    }
    PingStats {
        sent,
        received,
        lost,
        longest_gap,
    }
}

fn field(line: &str, key: &str) -> Option<u32> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn counts_losses_and_the_longest_gap() {
        let out = "PING 100.64.10.1 (100.64.10.1) 56(84) bytes of data.\n\
            [1.0] 64 bytes from 100.64.10.1: icmp_seq=1 ttl=64 time=1.1 ms\n\
            [1.1] no answer yet for icmp_seq=2\n\
            [1.2] no answer yet for icmp_seq=3\n\
            [1.3] 64 bytes from 100.64.10.1: icmp_seq=4 ttl=64 time=1.0 ms\n\
            [1.4] 64 bytes from 100.64.10.1: icmp_seq=6 ttl=64 time=1.0 ms\n\
            \n--- 100.64.10.1 ping statistics ---\n\
            6 packets transmitted, 3 received, 50% packet loss, time 500ms\n";
        let s = parse(out);
        assert_eq!(
            (s.sent, s.received, s.lost.clone(), s.longest_gap),
            (6, 3, vec![2, 3, 5], 2)
        );
        assert!((s.loss_percent() - 50.0).abs() < 1e-9);
    }
}
