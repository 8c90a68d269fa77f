//! "Why is the session not established?" from what can be seen. A TCP-MD5 mismatch is
//! invisible to BGP: the kernel drops the peer's segments without a word. What shows is
//! connect attempts timing out and the kernel's `TcpExt` counters (`nstat`,
//! `/proc/net/netstat`):
//!
//! - `TCPMD5NotFound`: a segment came without a signature though we hold a key for its sender;
//! - `TCPMD5Unexpected`: a segment came signed though we hold no key for its sender;
//! - `TCPMD5Failure`: a signature did not verify (different passwords).
//!
//! The counters are per network namespace, not per peer, so a change is attributed to this
//! neighbour only while its session is down.
use std::{fmt, fs, io};

/// The kernel's TCP-MD5 drop counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Md5Counters {
    pub not_found: u64,
    pub unexpected: u64,
    pub failure: u64,
}

impl Md5Counters {
    /// Reads the counters of the calling thread's network namespace.
    pub fn read() -> io::Result<Self> {
        // thread-self: the namespace this thread runs in (tests enter namespaces per thread).
        let text = fs::read_to_string("/proc/thread-self/net/netstat")?;
        Ok(Self::parse(&text))
    }

    /// Parses `/proc/net/netstat`: pairs of lines, names then values, both prefixed `TcpExt:`.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Self::default();
        };
        let mut c = Self::default();
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            let value = value.parse().unwrap_or(0);
            match name {
                "TCPMD5NotFound" => c.not_found = value,
                "TCPMD5Unexpected" => c.unexpected = value,
                "TCPMD5Failure" => c.failure = value,
                _ => {}
            }
        }
        c
    }

    #[must_use]
    pub fn since(self, base: Self) -> Self {
        Md5Counters {
            not_found: self.not_found.saturating_sub(base.not_found),
            unexpected: self.unexpected.saturating_sub(base.unexpected),
            failure: self.failure.saturating_sub(base.failure),
        }
    }
}

/// What is known about a session that does not come up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    pub md5_configured: bool,
    /// Outgoing connects that got no answer within `ConnectRetry`.
    pub connect_timeouts: u32,
    /// Counter increases since the session was last up (or since start).
    pub md5: Md5Counters,
}

/// The likely cause, for the operator (R24: "BGP session Established" step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnosis {
    /// Signatures arrive but do not verify.
    PasswordMismatch { failures: u64 },
    /// We sign, the peer does not.
    PeerHasNoPassword { unsigned: u64 },
    /// The peer signs, we have no password.
    WeHaveNoPassword { signed: u64 },
    /// Connects time out and we sign: the peer's kernel may be dropping our signatures.
    SilentWithPassword { timeouts: u32 },
    /// Connects time out, nothing signed on either side that we can see.
    Silent { timeouts: u32 },
}

impl Diagnosis {
    #[must_use]
    pub fn from_evidence(e: &Evidence) -> Option<Self> {
        let m = e.md5;
        Some(if e.md5_configured && m.failure > 0 {
            Diagnosis::PasswordMismatch {
                failures: m.failure,
            }
        } else if e.md5_configured && m.not_found > 0 {
            Diagnosis::PeerHasNoPassword {
                unsigned: m.not_found,
            }
        } else if !e.md5_configured && m.unexpected > 0 {
            Diagnosis::WeHaveNoPassword {
                signed: m.unexpected,
            }
        } else if e.connect_timeouts > 0 && e.md5_configured {
            Diagnosis::SilentWithPassword {
                timeouts: e.connect_timeouts,
            }
        } else if e.connect_timeouts > 0 {
            Diagnosis::Silent {
                timeouts: e.connect_timeouts,
            }
        } else {
            return None;
        })
    }

    /// Whether the password is the likely culprit.
    #[must_use]
    pub const fn is_password(self) -> bool {
        !matches!(self, Diagnosis::Silent { .. })
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnosis::PasswordMismatch { failures } => write!(
                f,
                "likely TCP-MD5 password mismatch: {failures} segment(s) with a bad signature \
                 dropped by this host's kernel (TCPMD5Failure)"
            ),
            Diagnosis::PeerHasNoPassword { unsigned } => write!(
                f,
                "likely TCP-MD5 password mismatch: the peer sends unsigned segments \
                 ({unsigned} dropped, TCPMD5NotFound); is its BGP password set?"
            ),
            Diagnosis::WeHaveNoPassword { signed } => write!(
                f,
                "likely TCP-MD5 password mismatch: the peer signs its segments but no \
                 password is configured here ({signed} dropped, TCPMD5Unexpected)"
            ),
            Diagnosis::SilentWithPassword { timeouts } => write!(
                f,
                "likely TCP-MD5 password mismatch: {timeouts} connect attempt(s) timed out \
                 unanswered (a peer with another password drops our signed SYNs silently); \
                 else the peer is unreachable or filtered"
            ),
            Diagnosis::Silent { timeouts } => write!(
                f,
                "{timeouts} connect attempt(s) timed out unanswered: peer unreachable, \
                 filtered, or it expects a TCP-MD5 password"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPAckCompressed\n\
        TcpExt: 0 3 4 5 0\n\
        IpExt: InNoRoutes\nIpExt: 0\n";

    #[test]
    fn parses_the_md5_counters() {
        let c = Md5Counters::parse(NETSTAT);
        assert_eq!(
            c,
            Md5Counters {
                not_found: 3,
                unexpected: 4,
                failure: 5
            }
        );
        assert_eq!(Md5Counters::parse("garbage"), Md5Counters::default());
        let later = Md5Counters { failure: 9, ..c };
        assert_eq!(later.since(c).failure, 4);
    }

    #[test]
    fn reads_this_namespace() {
        // Every Linux kernel with TCP has these lines; the counters are just numbers.
        Md5Counters::read().expect("/proc/thread-self/net/netstat");
    }

    #[test]
    fn blames_the_password_when_the_evidence_does() {
        let ev = |md5_configured, connect_timeouts, failure, not_found, unexpected| Evidence {
            md5_configured,
            connect_timeouts,
            md5: Md5Counters {
                not_found,
                unexpected,
                failure,
            },
        };
        let d = |e| Diagnosis::from_evidence(&e);
        let table = [
            (ev(true, 0, 0, 0, 0), None),
            (
                ev(true, 2, 3, 0, 0),
                Some(Diagnosis::PasswordMismatch { failures: 3 }),
            ),
            (
                ev(true, 2, 0, 1, 0),
                Some(Diagnosis::PeerHasNoPassword { unsigned: 1 }),
            ),
            (
                ev(false, 0, 0, 0, 2),
                Some(Diagnosis::WeHaveNoPassword { signed: 2 }),
            ),
            (
                ev(true, 2, 0, 0, 0),
                Some(Diagnosis::SilentWithPassword { timeouts: 2 }),
            ),
        ];
        for (evidence, expected) in table {
            assert_eq!(d(evidence), expected);
        }
        let silent = d(ev(false, 2, 0, 0, 0)).expect("some");
        assert!(!silent.is_password());
        for e in [ev(true, 2, 3, 0, 0), ev(true, 1, 0, 0, 0)] {
            assert!(
                d(e).expect("some")
                    .to_string()
                    .contains("password mismatch")
            );
        }
    }
}
