//! The agent as a systemd service: its log (journald with priorities when the service's
//! stderr is the journal, plain text on stderr otherwise) and its readiness notifications
//! (`Type=notify`: `READY=1` once the datapath and the control plane are up, `STOPPING=1`,
//! `STATUS=` lines). Outside systemd every notification is a no-op.
//!
//! Notifications go through the `sd-notify` crate rather than hand-written code: it is small
//! (libc only), kept up to date with systemd's protocol (abstract socket names, `MAINPID`,
//! `NOTIFY_SOCKET` handling), and does nothing when there is no service manager.
use std::os::fd::AsRawFd as _;

use sd_notify::NotifyState;
use tracing::warn;
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// Where the log goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// systemd's journal, each event with its priority (ERROR → err ... DEBUG → debug).
    Journald,
    /// Text on stderr.
    Stderr,
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM=<device>:<inode>` for a
/// service whose stdout or stderr it connected to journald; a child whose stderr was
/// redirected elsewhere inherits the variable, hence the comparison with stderr itself.
#[must_use]
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a stat into the buffer it is given, on success only.
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so it filled the buffer.
    let st = unsafe { st.assume_init() };
    dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino)
}

/// The filter: `RUST_LOG` when set (it overrides), else the config's `[agent] log_level`.
fn filter(log_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// tracing's levels as syslog priorities: INFO is journald's `info` (6), not tracing-journald's
/// default `notice` (5), so that `journalctl -p notice` shows warnings and errors only.
fn priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Starts logging at `log_level` (see [`filter`]); where to is [`LogTarget`]'s choice.
pub fn init_logging(log_level: &str) -> LogTarget {
    let journald = stderr_is_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    let registry = tracing_subscriber::registry().with(filter(log_level));
    if let Some(layer) = journald {
        registry
            .with(
                layer
                    .with_syslog_identifier("vc-agent".into())
                    .with_priority_mappings(priorities()),
            )
            .init();
        return LogTarget::Journald;
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    LogTarget::Stderr
}

/// What the agent tells its service manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The datapath and the control plane are up: `READY=1` with a status line.
    Ready(String),
    /// A status line while running.
    Status(String),
    /// Stopping: `STOPPING=1`.
    Stopping,
}

/// Tells systemd (a no-op outside a `Type=notify` service). Failing to is only worth a
/// warning: the service manager would then time the start out and say so itself.
pub fn notify(notice: &Notice) {
    let sent = match notice {
        Notice::Ready(status) => {
            sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
        }
        Notice::Status(status) => sd_notify::notify(&[NotifyState::Status(status)]),
        Notice::Stopping => sd_notify::notify(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: closing the BGP sessions"),
        ]),
    };
    if let Err(e) = sent {
        warn!("cannot notify the service manager: {e}");
    }
}
