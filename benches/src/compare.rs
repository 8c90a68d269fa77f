//! Setups of the IPsec lab compared with interleaved rounds: every round runs every measure
//! on every setup (in an order that rotates from round to round), and each setup's figure is
//! divided by the baseline's (setup 0) of the same round. What is reported is the median of
//! those per-round ratios and their spread. Shared by the VM section and the hardware mode.
use std::fmt::Write as _;

use anyhow::Result;
use vc_fixtures::vm_lab::{DC_HOST, LAN_HOST, Lab};

use crate::{
    load::{Delivered, Load, transfer},
    stats::{Spread, ratios},
    verdict::Claim,
};

/// RTP-like datagrams: 172 bytes of payload, 200-byte IP packets (as in the BPF section).
pub const VOICE_PAYLOAD: u32 = 172;
/// The offered load of the cost measures, as a fraction of the baseline's saturated rate.
const LOAD_FRACTION: f64 = 0.5;

#[derive(Clone, Copy)]
pub enum Direction {
    /// LAN host → DC: the CPE encapsulates.
    Up,
    /// DC → LAN host: the CPE decapsulates.
    Down,
}

pub const DIRECTIONS: [Direction; 2] = [Direction::Up, Direction::Down];

impl Direction {
    fn transfer(self, lab: &Lab, load: &Load) -> Result<Delivered> {
        match self {
            Direction::Up => transfer(&lab.lan, &lab.dc, DC_HOST, load),
            Direction::Down => transfer(&lab.dc, &lab.lan, LAN_HOST, load),
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Direction::Up => "LAN → DC",
            Direction::Down => "DC → LAN",
        }
    }
}

/// One measure taken of every setup in every round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// TCP as fast as it goes: `streams` parallel streams, iperf3 on `cpu` or anywhere.
    Throughput { streams: u32, cpu: Option<u32> },
    /// CPU seconds per GB of TCP at a fixed offered load.
    TcpCost,
    /// CPU seconds per GB of 200-byte UDP at a fixed offered load.
    VoiceCost,
}

impl Measure {
    /// One TCP stream, no pinning: the headline throughput.
    pub const THROUGHPUT: Measure = Measure::Throughput {
        streams: 1,
        cpu: None,
    };

    fn load(self, seconds: u32, offered: &Offered, dir: usize) -> Load {
        match self {
            Measure::Throughput { streams, cpu } => {
                let load = Load::tcp(seconds).streams(streams);
                match cpu {
                    Some(cpu) => load.on_cpu(cpu),
                    None => load,
                }
            }
            Measure::TcpCost => Load::tcp(seconds).at(offered.tcp[dir]),
            Measure::VoiceCost => Load::udp(VOICE_PAYLOAD, seconds).at(offered.voice[dir]),
        }
    }

    fn is_cost(self) -> bool {
        matches!(self, Measure::TcpCost | Measure::VoiceCost)
    }

    fn title(self) -> String {
        match self {
            Measure::Throughput { streams, cpu } => format!(
                "TCP, {streams} stream{}, {}",
                if streams == 1 { "" } else { "s" },
                cpu.map_or("any CPU".into(), |c| format!("iperf3 pinned to CPU {c}"))
            ),
            Measure::TcpCost => "TCP".into(),
            Measure::VoiceCost => "voice-like UDP (200-byte IP packets)".into(),
        }
    }
}

/// Offered loads of the cost measures, per direction (bit/s).
pub struct Offered {
    pub tcp: [f64; 2],
    pub voice: [f64; 2],
}

pub struct Comparison {
    pub names: Vec<String>,
    pub measures: Vec<Measure>,
    pub offered: Offered,
    /// `runs[measure][direction][setup]`: one transfer per round, in round order.
    runs: Vec<[Vec<Vec<Delivered>>; 2]>,
}

/// The setups of a comparison, the baseline first.
pub trait Setups {
    fn names(&self) -> Vec<String>;
    /// The lab of setup `s`, ready to measure (built now if need be).
    fn lab(&mut self, s: usize) -> Result<&Lab>;
}

/// Setups whose labs all exist side by side (namespaces with veths: the VM).
pub struct Built<'a>(pub Vec<(&'a str, &'a Lab)>);

impl Setups for Built<'_> {
    fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| (*n).to_string()).collect()
    }

    fn lab(&mut self, s: usize) -> Result<&Lab> {
        Ok(self.0[s].1)
    }
}

/// Runs `measures` on `setups` for `rounds` interleaved rounds of `seconds`-long transfers.
/// The cost measures' offered loads are half the baseline's saturated rates, measured first.
pub fn compare(
    setups: &mut dyn Setups,
    measures: &[Measure],
    rounds: usize,
    seconds: u32,
) -> Result<Comparison> {
    let names = setups.names();
    let baseline = setups.lab(0)?;
    let mut offered = Offered {
        tcp: [0.0; 2],
        voice: [0.0; 2],
    };
    for (d, dir) in DIRECTIONS.iter().enumerate() {
        let tcp = dir.transfer(baseline, &Load::tcp(seconds))?;
        let voice = dir.transfer(baseline, &Load::udp(VOICE_PAYLOAD, seconds))?;
        offered.tcp[d] = LOAD_FRACTION * tcp.bits_per_second;
        offered.voice[d] = LOAD_FRACTION * voice.bits_per_second;
    }
    let mut runs: Vec<[Vec<Vec<Delivered>>; 2]> = measures
        .iter()
        .map(|_| [0, 1].map(|_| vec![Vec::new(); names.len()]))
        .collect();
    for round in 0..rounds {
        // Rotating order: no setup always runs first, or always after the same neighbour.
        for k in 0..names.len() {
            let s = (round + k) % names.len();
            let lab = setups.lab(s)?;
            for (d, dir) in DIRECTIONS.iter().enumerate() {
                for (m, measure) in measures.iter().enumerate() {
                    let load = measure.load(seconds, &offered, d);
                    runs[m][d][s].push(dir.transfer(lab, &load)?);
                }
            }
        }
    }
    Ok(Comparison {
        names,
        measures: measures.to_vec(),
        offered,
        runs,
    })
}

fn rates(runs: &[Delivered]) -> Vec<f64> {
    runs.iter().map(Delivered::mbit).collect()
}

fn costs(runs: &[Delivered]) -> Vec<f64> {
    runs.iter().map(Delivered::cpu_per_gb).collect()
}

impl Comparison {
    fn index(&self, measure: Measure) -> usize {
        self.measures
            .iter()
            .position(|m| *m == measure)
            .expect("a measure that was taken")
    }

    /// Per-round ratios of setup `s` to the baseline: throughput ratios (above 1: faster) or
    /// baseline cost ÷ setup cost (above 1: cheaper).
    #[must_use]
    pub fn ratios(&self, measure: Measure, dir: usize, s: usize) -> Vec<f64> {
        let runs = &self.runs[self.index(measure)][dir];
        if measure.is_cost() {
            ratios(&costs(&runs[0]), &costs(&runs[s]))
        } else {
            ratios(&rates(&runs[s]), &rates(&runs[0]))
        }
    }

    /// The claim "setup `s` ≥ `goal` × baseline by `measure` in `dir`".
    #[must_use]
    pub fn claim(&self, measure: Measure, dir: usize, s: usize, goal: f64) -> Claim {
        let what = if measure.is_cost() {
            format!("{} cost/GB", measure.title())
        } else {
            format!("throughput ({})", measure.title())
        };
        Claim {
            what: format!("{}: {what}, {}", self.names[s], DIRECTIONS[dir].label()),
            goal,
            spread: Spread::of(&self.ratios(measure, dir, s)),
        }
    }

    /// The claim "setup `s` ≥ `goal` × setup `reference` of the same round by `measure` in
    /// `dir`": two designs compared with each other rather than with the baseline.
    #[must_use]
    pub fn claim_against(
        &self,
        measure: Measure,
        dir: usize,
        (s, reference): (usize, usize),
        goal: f64,
    ) -> Claim {
        let mut claim = self.claim(measure, dir, s, goal);
        let against = self.ratios(measure, dir, reference);
        let ratios: Vec<f64> = self
            .ratios(measure, dir, s)
            .iter()
            .zip(&against)
            .map(|(ratio, of_reference)| ratio / of_reference)
            .collect();
        claim.what = format!("{} (× {})", claim.what, self.names[reference]);
        claim.spread = Spread::of(&ratios);
        claim
    }

    /// Median receiver rate (Mbit/s) of setup `s` by `measure` in `dir`.
    #[must_use]
    pub fn median_rate(&self, measure: Measure, dir: usize, s: usize) -> f64 {
        Spread::of(&rates(&self.runs[self.index(measure)][dir][s])).median
    }

    /// The table of one throughput measure: median Mbit/s and ratio (min–max) per direction.
    #[must_use]
    pub fn throughput_table(&self, measure: Measure) -> String {
        let m = self.index(measure);
        let mut out = String::from(
            "| CPE | LAN → DC Mbit/s | × baseline | DC → LAN Mbit/s | × baseline |\n\
             |---|---:|---:|---:|---:|\n",
        );
        for (s, name) in self.names.iter().enumerate() {
            let _ = write!(out, "| {name} |");
            for d in 0..2 {
                let median = Spread::of(&rates(&self.runs[m][d][s])).median;
                let ratio = Spread::of(&self.ratios(measure, d, s));
                let _ = write!(out, " {median:.1} | {} |", ratio.cell());
            }
            out.push('\n');
        }
        out
    }

    /// The table of one cost measure, with its offered loads in the heading.
    #[must_use]
    pub fn cost_table(&self, measure: Measure) -> String {
        let m = self.index(measure);
        let offered = match measure {
            Measure::VoiceCost => self.offered.voice,
            _ => self.offered.tcp,
        };
        let mut out = format!(
            "### CPU cost, {}: LAN → DC {:.1} Mbit/s, DC → LAN {:.1} Mbit/s offered\n\n\
             | CPE | LAN → DC CPU-s/GB | × baseline | delivered Mbit/s | DC → LAN CPU-s/GB | × baseline | delivered Mbit/s |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
            measure.title(),
            offered[0] / 1e6,
            offered[1] / 1e6
        );
        for (s, name) in self.names.iter().enumerate() {
            let _ = write!(out, "| {name} |");
            for d in 0..2 {
                let runs = &self.runs[m][d][s];
                let ratio = Spread::of(&self.ratios(measure, d, s));
                let _ = write!(
                    out,
                    " {:.2} | {} | {:.1} |",
                    Spread::of(&costs(runs)).median,
                    ratio.cell(),
                    Spread::of(&rates(runs)).median
                );
            }
            out.push('\n');
        }
        out
    }

    /// Every table: the throughput measures, then the cost measures with how they are read.
    #[must_use]
    pub fn tables(&self) -> String {
        let mut out = String::new();
        for &measure in self.measures.iter().filter(|m| !m.is_cost()) {
            let _ = writeln!(
                out,
                "### Throughput, iperf3 {}\n\n{}",
                measure.title(),
                self.throughput_table(measure)
            );
        }
        for &measure in self.measures.iter().filter(|m| m.is_cost()) {
            let _ = writeln!(out, "{}", self.cost_table(measure));
        }
        if self.measures.iter().any(|m| m.is_cost()) {
            out.push_str(
                "CPU cost: busy CPU seconds of the whole kernel during the transfer (elapsed \
                 time × CPUs − idle time from /proc/stat, which a tickless kernel measures \
                 exactly), per GB delivered, at half the baseline's saturated rate. It includes the LAN host's and the DC's share (one \
                 kernel runs every namespace), the same for every setup. × baseline is the \
                 baseline's cost ÷ this cost: above 1 is cheaper. Delivered: median receiver \
                 rate, to show the load was carried.\n\n",
            );
        }
        out
    }
}
