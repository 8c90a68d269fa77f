//! Tunnel liveness from keepalives, as Cisco's `keepalive <interval> <retries>`: a tunnel is
//! down once `retries` intervals (the dead interval) passed without hearing a keepalive from
//! the DC (a reply to ours, or one of its own that we reflected), and up again at the first
//! one heard. Judged by time since the last one heard rather than by counting unanswered
//! sends (Cisco's way, which takes between `retries` and `retries + 1` intervals): a cut path
//! is then noticed within the dead interval of the cut, whatever the phase of the schedule.
//!
//! Which signals decide ([`signals`]): keepalives whenever there are any (ours, answered; the
//! DC's, reflected), the child SA in IPsec mode, and the BGP session when neither end sends
//! keepalives (R13 allows both off): then nothing else would notice a dead path before BGP's
//! hold timer does.
//!
//! Pure: fed the datapath's counters and the time, it says when the state changes.
use std::time::{Duration, Instant};

pub use super::status::LivenessSignal;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How often a keepalive is due: ours (when we send), else the DC's.
    pub interval: Duration,
    pub retries: u32,
    /// We send keepalives (`keepalive_interval_s` > 0); otherwise the interval is the DC's.
    pub send: bool,
}

impl Default for LivenessConfig {
    /// Cisco's default, `keepalive 10 3`.
    fn default() -> Self {
        LivenessConfig {
            interval: Duration::from_secs(10),
            retries: 3,
            send: true,
        }
    }
}

/// What decides a tunnel's liveness: our keepalives when we send them; the DC's once one was
/// heard (a DC with them off must not be judged dead for its silence); the child SA in IPsec
/// mode; the BGP session when no keepalive decides.
#[must_use]
pub fn signals(send: bool, dc_heard: bool, ipsec: bool) -> Vec<LivenessSignal> {
    let mut by = Vec::new();
    if send {
        by.push(LivenessSignal::OurKeepalives);
    }
    if dc_heard {
        by.push(LivenessSignal::DcKeepalives);
    }
    if ipsec {
        by.push(LivenessSignal::ChildSa);
    }
    if !send && !dc_heard {
        by.push(LivenessSignal::BgpSession);
    }
    by
}

/// The signals' states, as the keepalive task sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalStates {
    /// Keepalives heard within `retries` intervals.
    pub keepalives: bool,
    pub child_sa: bool,
    pub bgp: bool,
}

/// The tunnel may carry traffic: every deciding signal is up.
#[must_use]
pub fn alive(by: &[LivenessSignal], s: SignalStates) -> bool {
    by.iter().all(|signal| match signal {
        LivenessSignal::OurKeepalives | LivenessSignal::DcKeepalives => s.keepalives,
        LivenessSignal::ChildSa => s.child_sa,
        LivenessSignal::BgpSession => s.bgp,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelLiveness {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivenessEvent {
    WentUp,
    WentDown,
}

#[derive(Clone, Debug)]
pub struct Liveness {
    config: LivenessConfig,
    state: TunnelLiveness,
    /// The datapath's running count of keepalives heard, as last read.
    heard: u64,
    /// When a keepalive was last heard, or when silence last stopped saying anything (the
    /// start, a gap in the child SA): the dead interval runs from here.
    since: Instant,
}

impl Liveness {
    /// Starts up, as a tunnel interface does, and goes down only after a whole dead interval
    /// without a keepalive heard: no traffic is refused before one could have come back.
    #[must_use]
    pub fn new(config: LivenessConfig, now: Instant) -> Self {
        Liveness {
            config,
            state: TunnelLiveness::Up,
            heard: 0,
            since: now,
        }
    }

    #[must_use]
    pub fn state(&self) -> TunnelLiveness {
        self.state
    }

    #[must_use]
    pub fn config(&self) -> LivenessConfig {
        self.config
    }

    /// `retries` intervals: the silence after which the tunnel is dead.
    #[must_use]
    pub fn dead_interval(&self) -> Duration {
        self.config.interval * self.config.retries
    }

    /// Whole intervals without a keepalive heard, at `now`.
    #[must_use]
    pub fn missed(&self, now: Instant) -> u32 {
        let silent = now.saturating_duration_since(self.since).as_nanos();
        let interval = self.config.interval.as_nanos().max(1);
        u32::try_from(silent / interval).unwrap_or(u32::MAX)
    }

    /// When silence would make the tunnel dead; `None` while it is.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        (self.state == TunnelLiveness::Up).then(|| self.since + self.dead_interval())
    }

    /// Judges what the datapath heard, read at `now`: `heard` is its running count of
    /// keepalives heard from the DC on this tunnel, `heard_at` when the latest arrived, if
    /// the datapath dated it (else the news is dated `now`). Dead once a whole dead interval
    /// passed without one, alive again at the first one heard.
    pub fn observe(
        &mut self,
        heard: u64,
        heard_at: Option<Instant>,
        now: Instant,
    ) -> Option<LivenessEvent> {
        if heard != self.heard {
            self.heard = heard;
            self.since = heard_at.map_or(now, |at| at.min(now)).max(self.since);
            if self.state == TunnelLiveness::Down {
                self.state = TunnelLiveness::Up;
                return Some(LivenessEvent::WentUp);
            }
            return None;
        }
        if self.state == TunnelLiveness::Up
            && now.saturating_duration_since(self.since) >= self.dead_interval()
        {
            self.state = TunnelLiveness::Down;
            return Some(LivenessEvent::WentDown);
        }
        None
    }

    /// Silence until `now` says nothing about the path (the child SA is missing, so nothing
    /// could be heard; or the DC, judged by its own keepalives, has sent none yet): the dead
    /// interval starts again from here, and the state stays as it is (down stays down until
    /// a keepalive is heard, which still counts as in [`Liveness::observe`]).
    pub fn excuse(
        &mut self,
        heard: u64,
        heard_at: Option<Instant>,
        now: Instant,
    ) -> Option<LivenessEvent> {
        if heard != self.heard {
            return self.observe(heard, heard_at, now);
        }
        self.since = now;
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{
        Liveness, LivenessConfig, LivenessEvent, LivenessSignal as S, SignalStates, TunnelLiveness,
        alive, signals,
    };

    fn three(now: Instant) -> Liveness {
        Liveness::new(
            LivenessConfig {
                interval: Duration::from_secs(10),
                retries: 3,
                send: true,
            },
            now,
        )
    }

    #[test]
    fn the_signals_that_decide_follow_what_each_end_sends() {
        // Both ends send (Cisco's default): either end's keepalives, and the SA.
        assert_eq!(
            signals(true, true, true),
            [S::OurKeepalives, S::DcKeepalives, S::ChildSa]
        );
        // The DC's are off; Cisco still reflects ours.
        assert_eq!(signals(true, false, true), [S::OurKeepalives, S::ChildSa]);
        // Ours are off (keepalive_interval_s = 0): the DC's, reflected.
        assert_eq!(signals(false, true, true), [S::DcKeepalives, S::ChildSa]);
        // Neither: the SA and BGP; external-IPsec mode: BGP alone.
        assert_eq!(signals(false, false, true), [S::ChildSa, S::BgpSession]);
        assert_eq!(signals(false, false, false), [S::BgpSession]);
        let all_up = SignalStates {
            keepalives: true,
            child_sa: true,
            bgp: true,
        };
        let by = signals(false, false, true);
        assert!(alive(&by, all_up));
        assert!(!alive(
            &by,
            SignalStates {
                bgp: false,
                ..all_up
            }
        ));
        assert!(
            alive(
                &by,
                SignalStates {
                    keepalives: false,
                    ..all_up
                }
            ),
            "keepalives do not decide here"
        );
        let by = signals(true, false, true);
        assert!(!alive(
            &by,
            SignalStates {
                keepalives: false,
                ..all_up
            }
        ));
        assert!(
            alive(
                &by,
                SignalStates {
                    bgp: false,
                    ..all_up
                }
            ),
            "BGP does not decide while keepalives do: its routes go with it anyway"
        );
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn down_after_a_dead_interval_of_silence_and_up_at_the_first_keepalive() {
        let t0 = Instant::now();
        let mut l = three(t0);
        assert_eq!(l.observe(1, None, t0 + 5 * SEC), None, "heard: stays up");
        assert_eq!(l.deadline(), Some(t0 + 35 * SEC));
        assert_eq!(l.observe(1, None, t0 + 34 * SEC), None, "29 s of silence");
        assert_eq!(l.missed(t0 + 34 * SEC), 2);
        assert_eq!(
            l.observe(1, None, t0 + 35 * SEC),
            Some(LivenessEvent::WentDown),
            "30 s: the dead interval"
        );
        assert_eq!(l.state(), TunnelLiveness::Down);
        assert_eq!(l.deadline(), None);
        assert_eq!(l.observe(1, None, t0 + 60 * SEC), None, "stays down");
        assert_eq!(
            l.observe(2, None, t0 + 61 * SEC),
            Some(LivenessEvent::WentUp)
        );
        assert_eq!(l.missed(t0 + 61 * SEC), 0);
    }

    #[test]
    fn silence_is_timed_from_when_the_datapath_heard_the_last_keepalive() {
        let t0 = Instant::now();
        let mut l = three(t0);
        // Read 4 s after it arrived: the dead interval runs from the arrival.
        assert_eq!(l.observe(1, Some(t0 + 10 * SEC), t0 + 14 * SEC), None);
        assert_eq!(l.deadline(), Some(t0 + 40 * SEC));
        assert_eq!(
            l.observe(1, None, t0 + 40 * SEC),
            Some(LivenessEvent::WentDown)
        );
        // A date from the future (clocks read apart) counts as now; one from before the last
        // news does not move the clock back.
        let mut l = three(t0);
        l.observe(1, Some(t0 + 20 * SEC), t0 + 10 * SEC);
        assert_eq!(l.deadline(), Some(t0 + 40 * SEC));
        l.observe(2, Some(t0 + SEC), t0 + 12 * SEC);
        assert_eq!(l.deadline(), Some(t0 + 40 * SEC));
    }

    #[test]
    fn a_keepalive_restarts_the_dead_interval() {
        let t0 = Instant::now();
        let mut l = three(t0);
        l.observe(0, None, t0 + 20 * SEC);
        assert_eq!(l.missed(t0 + 20 * SEC), 2);
        assert_eq!(l.observe(5, None, t0 + 25 * SEC), None);
        assert_eq!(l.missed(t0 + 25 * SEC), 0);
        assert_eq!(l.observe(5, None, t0 + 50 * SEC), None);
        assert_eq!(
            l.state(),
            TunnelLiveness::Up,
            "25 s after the last keepalive is not yet 30"
        );
    }

    #[test]
    fn an_excused_silence_restarts_the_clock_and_a_keepalive_heard_still_counts() {
        let t0 = Instant::now();
        let mut l = three(t0);
        for s in [10, 20, 30, 40] {
            assert_eq!(l.excuse(0, None, t0 + s * SEC), None, "the SA is missing");
        }
        assert_eq!(l.state(), TunnelLiveness::Up);
        assert_eq!(
            l.observe(0, None, t0 + 69 * SEC),
            None,
            "29 s since the SA came back"
        );
        assert_eq!(
            l.observe(0, None, t0 + 70 * SEC),
            Some(LivenessEvent::WentDown)
        );
        assert_eq!(l.excuse(0, None, t0 + 80 * SEC), None);
        assert_eq!(
            l.state(),
            TunnelLiveness::Down,
            "down stays down until one is heard"
        );
        assert_eq!(
            l.excuse(1, None, t0 + 81 * SEC),
            Some(LivenessEvent::WentUp)
        );
        assert_eq!(l.missed(t0 + 81 * SEC), 0);
    }

    #[test]
    fn counters_starting_at_zero_count_as_silence() {
        let t0 = Instant::now();
        let mut l = three(t0);
        assert_eq!(l.observe(0, None, t0 + 29 * SEC), None);
        assert_eq!(
            l.observe(0, None, t0 + 30 * SEC),
            Some(LivenessEvent::WentDown)
        );
    }
}
