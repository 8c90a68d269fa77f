//! CPU time the whole kernel spent over an interval: the cost side of a measurement, which a
//! shared host CPU does not change the way it changes throughput (a packet costs the same
//! instructions whether the CPU is shared or not).
//!
//! Busy time is taken as elapsed time × CPUs − idle time. The busy fields of `/proc/stat`
//! (user, system, softirq, ...) are sampled at the scheduler tick; under a deterministic
//! clock (QEMU icount) a periodic load lines up with the tick and is counted either always or
//! never (one setup came out at 300× another's cost that way). The idle figure is exact: with
//! a tickless kernel it is the measured time each CPU spent in its idle loop.
use std::time::Instant;

use anyhow::{Context, Result};

/// `/proc/stat` counts in `USER_HZ` ticks, which Linux fixes at 100 on every architecture vc
/// runs on (the ABI value, whatever the kernel's HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// A point in time with the idle time of all CPUs so far.
pub struct Sample {
    at: Instant,
    idle: f64,
    cpus: usize,
}

impl Sample {
    pub fn now() -> Result<Sample> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let at = Instant::now();
        let (idle, cpus) = idle_of(&stat)?;
        Ok(Sample { at, idle, cpus })
    }

    /// Busy CPU seconds, all CPUs together, from `self` until `later`.
    #[must_use]
    pub fn busy_until(&self, later: &Sample) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a handful of CPUs")]
        let capacity = (later.at - self.at).as_secs_f64() * self.cpus as f64;
        (capacity - (later.idle - self.idle)).max(0.0)
    }
}

/// Idle + iowait seconds of all CPUs since boot, and the number of CPUs.
fn idle_of(stat: &str) -> Result<(f64, usize)> {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no aggregate cpu line in /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("/proc/stat: {line}"))?;
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    #[expect(
        clippy::cast_precision_loss,
        reason = "ticks since boot stay far below 2^52"
    )]
    Ok((idle as f64 / TICKS_PER_SECOND, cpus.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_iowait_of_all_cpus() {
        let stat = "cpu  100 5 200 9990 10 30 40 3 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\ncpu1 1 1 1 1 1 1 1 1 0 0\nintr 5\n";
        let (idle, cpus) = idle_of(stat).unwrap();
        assert!((idle - 100.0).abs() < 1e-9);
        assert_eq!(cpus, 2);
        assert!(idle_of("intr 1 2 3\n").is_err());
    }

    #[test]
    fn busy_is_never_negative_and_grows_with_work() {
        let a = Sample::now().unwrap();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed().as_millis() < 50 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = Sample::now().unwrap();
        let busy = a.busy_until(&b);
        assert!(busy >= 0.0);
        assert!(busy <= 0.05 * f64::from(u32::try_from(a.cpus).unwrap()) + 0.1);
    }
}
