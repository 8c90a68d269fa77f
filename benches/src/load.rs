//! One iperf3 transfer between two namespaces, described by a [`Load`], with what arrived and
//! the CPU time the kernel spent meanwhile.
use std::{net::Ipv4Addr, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use vc_testkit::{Daemon, NetNs, wait_for};

use crate::cpu;

/// What the client offers.
#[derive(Clone, Debug)]
pub struct Load {
    /// UDP datagrams of this many payload bytes; TCP when `None`.
    pub udp_len: Option<u32>,
    /// Offered rate in bit/s (iperf3 `-b`, per stream); as fast as it goes when `None`.
    pub rate: Option<f64>,
    pub seconds: u32,
    /// Parallel streams (`-P`).
    pub streams: u32,
    /// Pins the client and server to this CPU (`-A n,n`): one core's worth of throughput.
    pub cpu: Option<u32>,
}

impl Load {
    /// TCP as fast as it goes, one stream.
    #[must_use]
    pub fn tcp(seconds: u32) -> Load {
        Load {
            udp_len: None,
            rate: None,
            seconds,
            streams: 1,
            cpu: None,
        }
    }

    /// UDP datagrams of `len` bytes, as fast as they go.
    #[must_use]
    pub fn udp(len: u32, seconds: u32) -> Load {
        Load {
            udp_len: Some(len),
            ..Load::tcp(seconds)
        }
    }

    /// The same load offered at `bits_per_second`.
    #[must_use]
    pub fn at(self, bits_per_second: f64) -> Load {
        Load {
            rate: Some(bits_per_second),
            ..self
        }
    }

    #[must_use]
    pub fn streams(self, streams: u32) -> Load {
        Load { streams, ..self }
    }

    #[must_use]
    pub fn on_cpu(self, cpu: u32) -> Load {
        Load {
            cpu: Some(cpu),
            ..self
        }
    }

    fn args(&self, server: &str) -> Vec<String> {
        let mut args: Vec<String> = ["-c", server, "-J", "-t"]
            .map(String::from)
            .into_iter()
            .chain([
                self.seconds.to_string(),
                "-P".into(),
                self.streams.to_string(),
            ])
            .collect();
        if let Some(len) = self.udp_len {
            args.extend(["-u".into(), "-l".into(), len.to_string()]);
        }
        // iperf3's UDP default is 1 Mbit/s: unlimited must be asked for.
        let rate = self.rate.map_or("0".into(), |r| format!("{r:.0}"));
        if self.rate.is_some() || self.udp_len.is_some() {
            args.extend(["-b".into(), rate]);
        }
        if let Some(cpu) = self.cpu {
            args.extend(["-A".into(), format!("{cpu},{cpu}")]);
        }
        args
    }
}

/// What one transfer delivered.
#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    /// Receiver's rate, bit/s.
    pub bits_per_second: f64,
    /// Bytes the receiver got.
    pub bytes: f64,
    /// Busy CPU seconds of the whole kernel (all CPUs, all namespaces) during the transfer.
    pub busy: f64,
}

impl Delivered {
    /// CPU seconds per gigabyte delivered.
    #[must_use]
    pub fn cpu_per_gb(&self) -> f64 {
        self.busy / (self.bytes / 1e9)
    }

    #[must_use]
    pub fn mbit(&self) -> f64 {
        self.bits_per_second / 1e6
    }
}

/// Runs `load` from `client` to the iperf3 server started in `server` on `dst`.
pub fn transfer(client: &NetNs, server: &NetNs, dst: Ipv4Addr, load: &Load) -> Result<Delivered> {
    let bind = dst.to_string();
    let child = server
        .command("iperf3")
        .args(["-s", "-1", "-B", &bind])
        .stdout(Stdio::null())
        .spawn()
        .context("iperf3 server")?;
    let mut daemon = Daemon::new(child, "iperf3 server");
    // Slow machines (the emulated VM) take a while to listen.
    wait_for(Duration::from_secs(10), "the iperf3 server", || {
        let listening = server.sh_output("ss -Hltn 'sport = :5201'").ok()?;
        (!listening.stdout.is_empty()).then_some(())
    })?;
    let args = load.args(&bind);
    let before = cpu::Sample::now()?;
    let out = client
        .command("iperf3")
        .args(&args)
        .output()
        .context("iperf3")?;
    let busy = before.busy_until(&cpu::Sample::now()?);
    daemon.stop();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 {args:?}: no JSON report"))?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3 {args:?}: {error}");
    }
    let received = &report["end"]["sum_received"];
    let field = |name: &str| {
        received[name]
            .as_f64()
            .with_context(|| format!("iperf3 {args:?}: no {name} in sum_received"))
    };
    Ok(Delivered {
        bits_per_second: field("bits_per_second")?,
        bytes: field("bytes")?,
        busy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_of_each_load() {
        assert_eq!(
            Load::tcp(3).args("10.0.0.1").join(" "),
            "-c 10.0.0.1 -J -t 3 -P 1"
        );
        assert_eq!(
            Load::udp(200, 2)
                .at(5e6)
                .streams(4)
                .on_cpu(1)
                .args("h")
                .join(" "),
            "-c h -J -t 2 -P 4 -u -l 200 -b 5000000 -A 1,1"
        );
        assert_eq!(
            Load::udp(200, 2).args("h").join(" "),
            "-c h -J -t 2 -P 1 -u -l 200 -b 0"
        );
    }
}
