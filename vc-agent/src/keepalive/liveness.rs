//! Tunnel liveness from keepalives, as Cisco's `keepalive <interval> <retries>`: a tunnel is
//! down after `retries` intervals without hearing a keepalive from the DC (a reply to ours,
//! or one of its own that we reflected), and up again at the first one heard.
//!
//! Which signals decide ([`signals`]): keepalives whenever there are any (ours, answered; the
//! DC's, reflected), the child SA in IPsec mode, and the BGP session when neither end sends
//! keepalives (R13 allows both off): then nothing else would notice a dead path before BGP's
//! hold timer does.
//!
//! Pure: fed the datapath's counters once per interval, it says when the state changes.
use std::time::Duration;

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
    missed: u32,
    heard: u64,
}

impl Liveness {
    /// Starts up, as a tunnel interface does, and goes down only after `retries` silent
    /// intervals: no traffic is refused before the first keepalive could have come back.
    #[must_use]
    pub fn new(config: LivenessConfig) -> Self {
        Liveness {
            config,
            state: TunnelLiveness::Up,
            missed: 0,
            heard: 0,
        }
    }

    #[must_use]
    pub fn state(&self) -> TunnelLiveness {
        self.state
    }

    /// Intervals in a row without a keepalive heard.
    #[must_use]
    pub fn missed(&self) -> u32 {
        self.missed
    }

    #[must_use]
    pub fn config(&self) -> LivenessConfig {
        self.config
    }

    /// Records the count when the first keepalive goes out, judging nothing: the first
    /// interval is judged against it.
    pub fn baseline(&mut self, heard: u64) {
        self.heard = heard;
    }

    /// One interval passed; `heard` is the datapath's running count of keepalives heard from
    /// the DC on this tunnel.
    pub fn tick(&mut self, heard: u64) -> Option<LivenessEvent> {
        let news = heard != self.heard;
        self.heard = heard;
        match (self.state, news) {
            (TunnelLiveness::Down, true) => {
                self.missed = 0;
                self.state = TunnelLiveness::Up;
                Some(LivenessEvent::WentUp)
            }
            (TunnelLiveness::Up, true) => {
                self.missed = 0;
                None
            }
            (TunnelLiveness::Up, false) => {
                self.missed += 1;
                (self.missed >= self.config.retries).then(|| {
                    self.state = TunnelLiveness::Down;
                    LivenessEvent::WentDown
                })
            }
            (TunnelLiveness::Down, false) => {
                self.missed += 1;
                None
            }
        }
    }

    /// One interval passed in which silence says nothing about the path (the child SA was
    /// missing for some of it, so nothing could be heard): a keepalive heard counts as in
    /// [`Liveness::tick`]; silence is no miss, and the state stays as it was.
    pub fn excused_tick(&mut self, heard: u64) -> Option<LivenessEvent> {
        if heard == self.heard {
            return None;
        }
        self.tick(heard)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        Liveness, LivenessConfig, LivenessEvent, LivenessSignal as S, SignalStates, TunnelLiveness,
        alive, signals,
    };

    fn three() -> Liveness {
        Liveness::new(LivenessConfig {
            interval: Duration::from_secs(10),
            retries: 3,
            send: true,
        })
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

    #[test]
    fn down_after_retries_silent_intervals_and_up_at_the_first_keepalive() {
        let mut l = three();
        assert_eq!(l.tick(1), None, "heard: stays up");
        assert_eq!(l.tick(1), None, "missed 1");
        assert_eq!(l.tick(1), None, "missed 2");
        assert_eq!(l.tick(1), Some(LivenessEvent::WentDown), "missed 3");
        assert_eq!(l.state(), TunnelLiveness::Down);
        assert_eq!(l.tick(1), None, "stays down");
        assert_eq!(l.tick(2), Some(LivenessEvent::WentUp));
        assert_eq!(l.missed(), 0);
    }

    #[test]
    fn a_keepalive_resets_the_count() {
        let mut l = three();
        l.tick(0);
        l.tick(0);
        assert_eq!(l.missed(), 2);
        assert_eq!(l.tick(5), None);
        assert_eq!(l.missed(), 0);
        l.tick(5);
        l.tick(5);
        assert_eq!(
            l.state(),
            TunnelLiveness::Up,
            "two misses after a reset are not three"
        );
    }

    #[test]
    fn an_excused_silence_is_no_miss_and_a_keepalive_heard_still_counts() {
        let mut l = three();
        l.tick(0);
        assert_eq!(l.missed(), 1);
        for _ in 0..5 {
            assert_eq!(l.excused_tick(0), None);
        }
        assert_eq!(l.missed(), 1, "silence while the SA was missing");
        assert_eq!(l.state(), TunnelLiveness::Up);
        assert_eq!(l.tick(0), None);
        assert_eq!(
            l.tick(0),
            Some(LivenessEvent::WentDown),
            "misses resume where they were"
        );
        assert_eq!(l.excused_tick(0), None);
        assert_eq!(
            l.state(),
            TunnelLiveness::Down,
            "down stays down until one is heard"
        );
        assert_eq!(l.excused_tick(1), Some(LivenessEvent::WentUp));
        assert_eq!(l.missed(), 0);
    }

    #[test]
    fn counters_starting_at_zero_count_as_silence() {
        let mut l = three();
        for _ in 0..2 {
            assert_eq!(l.tick(0), None);
        }
        assert_eq!(l.tick(0), Some(LivenessEvent::WentDown));
    }
}
