//! What keeps the agent steady under a flood: waiting after a failed `accept` (out of
//! descriptors or memory it fails again at once, and a loop that retries at once spins), and
//! log lines at a bounded rate (a line per refused connection would flood the journal).
use std::{
    io,
    time::{Duration, Instant},
};

/// The wait after failed accepts: from [`AcceptBackoff::FIRST`], doubling up to
/// [`AcceptBackoff::MAX`], back to the start after an accept succeeds. Logs the failures of
/// its listener, a line per [`LOG_EVERY`] at most.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    next: Duration,
    log: LogLimit,
}

/// The least time between two log lines about one flood.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

impl AcceptBackoff {
    pub const FIRST: Duration = Duration::from_millis(10);
    pub const MAX: Duration = Duration::from_secs(1);

    /// For the listener named `listener` in log lines.
    #[must_use]
    pub const fn new(listener: &'static str) -> Self {
        AcceptBackoff {
            listener,
            next: Self::FIRST,
            log: LogLimit::new(LOG_EVERY),
        }
    }

    /// After a failed accept: how long to wait before the next. Every error waits (one that
    /// repeats would spin all the same); running out of a resource waits longer each time.
    pub fn failed(&mut self, e: &io::Error) -> Duration {
        let wait = self.next;
        if is_resource_error(e) {
            self.next = (self.next * 2).min(Self::MAX);
        }
        if let Some(suppressed) = self.log.allow(Instant::now()) {
            tracing::warn!(
                suppressed,
                "{}: accept failed: {e}; waiting {wait:?} before the next",
                self.listener
            );
        }
        wait
    }

    /// An accept succeeded.
    pub fn accepted(&mut self) {
        self.next = Self::FIRST;
    }

    /// [`AcceptBackoff::failed`], then waits.
    pub async fn wait(&mut self, e: &io::Error) {
        tokio::time::sleep(self.failed(e)).await;
    }
}

/// Out of file descriptors (the process's or the system's), socket buffers or memory: what
/// only time (other connections closing) cures.
#[must_use]
pub fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// At most one log line per `every`; what was left out is counted for the next line.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    #[must_use]
    pub const fn new(every: Duration) -> Self {
        LogLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether a line may be written now; if so, how many were left out since the last one.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        time::{Duration, Instant},
    };

    use super::{AcceptBackoff, LogLimit, is_resource_error};

    #[test]
    fn running_out_of_descriptors_waits_longer_each_time_up_to_a_second() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(is_resource_error(&emfile));
        assert!(is_resource_error(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!is_resource_error(&aborted));
        let mut b = AcceptBackoff::new("test");
        let waits: Vec<Duration> = (0..10).map(|_| b.failed(&emfile)).collect();
        assert_eq!(waits[0], AcceptBackoff::FIRST);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert_eq!(waits[9], AcceptBackoff::MAX);
        b.accepted();
        assert_eq!(b.failed(&aborted), AcceptBackoff::FIRST);
        assert_eq!(
            b.failed(&aborted),
            AcceptBackoff::FIRST,
            "a passing error waits without growing"
        );
    }

    #[test]
    fn log_lines_are_limited_and_the_rest_counted() {
        let mut limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.allow(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(limit.allow(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(limit.allow(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(limit.allow(t0 + Duration::from_secs(11)), None);
    }
}
