//! On paper: what one tunnel at Cisco's cap (250 Mbit/s per tunnel, R4) costs this machine's
//! CPU, from two measured parts: AES-GCM per byte (`openssl speed`, one core) and vc's programs
//! per packet (the BPF section's figures, measured again here through `bpf::figures`).
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bpf;

/// Cisco's cap per tunnel, bit/s.
const CAP: f64 = 250e6;
/// IP packet sizes: an RTP voice packet and a full-size data packet in a 1400-byte tunnel.
const SIZES: [u32; 2] = [200, 1400];
/// What ESP encrypts on top of the inner packet: outer IPv4 (20) + GRE (4).
const GRE_OVERHEAD: u32 = 24;
const CIPHERS: [&str; 2] = ["aes-128-gcm", "aes-256-gcm"];

/// Bytes per second one core encrypts with `cipher` in `bytes`-byte messages.
fn openssl_rate(cipher: &str, bytes: u32) -> Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", cipher, "-seconds", "1", "-mr", "-bytes"])
        .arg(bytes.to_string())
        .output()
        .context("running openssl speed")?;
    if !out.status.success() {
        bail!(
            "openssl speed -evp {cipher}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_rate(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("openssl speed -evp {cipher} -bytes {bytes}: no +F: line"))
}

/// The figure of `openssl speed -mr`'s `+F:<n>:<name>:<bytes per second>` line.
fn parse_rate(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with("+F:"))?
        .rsplit(':')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// ns/packet of the BPF case whose name starts with `prefix`, less the no-op's fixed cost.
fn program_ns(figures: &[(&str, f64)], prefix: &str) -> Result<f64> {
    let find = |p: &str| {
        figures
            .iter()
            .find(|(name, _)| name.starts_with(p))
            .map(|(_, ns)| *ns)
            .with_context(|| format!("no BPF figure named {p}…"))
    };
    Ok((find(prefix)? - find("no-op")?).max(0.0))
}

pub fn run() -> Result<()> {
    let figures = bpf::figures()?;
    // vc's programs on each packet of the IPsec fast path.
    let up = program_ns(&figures, "lan_rx: fast path")? + program_ns(&figures, "wan_guard: ESP")?;
    let down =
        program_ns(&figures, "wan_rx: ESP passed")? + program_ns(&figures, "wan_rx: decapsulate")?;
    println!("## On paper: one tunnel at Cisco's 250 Mbit/s cap\n");
    println!(
        "`cargo xtask bench` · one core of this host ({}) · AES-GCM from `openssl speed -evp` \
         on the encrypted size (inner packet + 24 bytes of outer IPv4 and GRE); vc's programs \
         from the BPF section's figures less the no-op's fixed cost · per direction\n",
        cpu_model()
    );
    println!("| cipher | size | AES-GCM MB/s | AES-GCM ns/packet |\n|---|---:|---:|---:|");
    let mut crypto = Vec::new();
    for cipher in CIPHERS {
        for size in SIZES {
            let rate = openssl_rate(cipher, size + GRE_OVERHEAD)?;
            let ns = f64::from(size + GRE_OVERHEAD) / rate * 1e9;
            println!("| {cipher} | {size} B | {:.0} | {ns:.0} |", rate / 1e6);
            crypto.push((cipher, size, ns));
        }
    }
    println!(
        "\nvc's programs per packet: LAN → DC {up:.0} ns (lan_rx fast path + wan_guard), \
         DC → LAN {down:.0} ns (wan_rx on the ESP packet + wan_rx decapsulating; the GRE-only \
         decapsulation figure stands in for the decrypted packet's)\n"
    );
    println!(
        "| cipher | packet | packets/s at 250 Mbit/s | AES-GCM, core fraction | vc programs LAN → DC | vc programs DC → LAN |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for (cipher, size, ns) in crypto {
        let pps = CAP / 8.0 / f64::from(size);
        println!(
            "| {cipher} | {size} B | {pps:.0} | {:.1} % | {:.1} % | {:.1} % |",
            pps * ns / 1e7,
            pps * up / 1e7,
            pps * down / 1e7
        );
    }
    println!(
        "\nA lower bound: the kernel's own forwarding and XFRM work per packet come on top (the \
         VM section measures vc against that as ratios). The kernel's AES-GCM (`rfc4106(gcm(aes))` \
         with AES-NI) is of the same order as OpenSSL's."
    );
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rate_of_openssl_speed_mr() {
        let out = "+DT:AES-128-GCM:1:1400\n+R:1064545:AES-128-GCM:0.98\n+H:1400\n+F:25:AES-128-GCM:1520778571.43\n";
        assert_eq!(parse_rate(out), Some(1_520_778_571.43));
        assert_eq!(parse_rate("nothing"), None);
    }

    #[test]
    fn program_cost_is_net_of_the_noop() {
        let figures = [("no-op classifier", 40.0), ("lan_rx: fast path x", 100.0)];
        assert!((program_ns(&figures, "lan_rx: fast").unwrap() - 60.0).abs() < 1e-9);
        assert!(program_ns(&figures, "wan_rx").is_err());
    }
}
