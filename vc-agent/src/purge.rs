//! `vc-agent purge`: the full teardown, for uninstalling (the package's `prerm` runs it on
//! removal) or for starting over. Stops vc's charon, removes the XFRM block policies, vc's
//! routes, the datapath (programs, pins, tunnel interfaces, host settings restored: see
//! [`datapath::purge`]) and the state directory. Refuses while an agent answers: stop it
//! first, or it would rebuild what is being removed.
use std::{
    fmt,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::{
    config::{CharonMode, Config},
    datapath::{self, DatapathSpec},
    ipsec, routes, socket,
};

/// How long vc's charon gets to stop after SIGTERM before SIGKILL.
const CHARON_GRACE: Duration = Duration::from_secs(10);

/// One step of the teardown and how it went.
#[derive(Debug, Serialize)]
pub struct PurgeStep {
    pub step: &'static str,
    /// `None`: done (or nothing to do); else what went wrong.
    pub error: Option<String>,
}

/// Every step, in order.
#[derive(Debug, Serialize)]
pub struct PurgeReport {
    pub steps: Vec<PurgeStep>,
}

impl PurgeReport {
    /// Whether every step succeeded.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.error.is_none())
    }

    fn record(&mut self, step: &'static str, result: Result<()>) {
        self.steps.push(PurgeStep {
            step,
            error: result.err().map(|e| format!("{e:#}")),
        });
    }
}

impl fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            match &s.error {
                None => writeln!(f, "{}: done", s.step)?,
                Some(e) => writeln!(f, "{}: FAILED: {e}", s.step)?,
            }
        }
        Ok(())
    }
}

/// Tears everything down; each step runs even if an earlier one failed.
pub async fn purge(config: &Config) -> Result<PurgeReport> {
    let status_socket = socket::path(config);
    if socket::ask(&status_socket, socket::STATUS).await.is_ok() {
        bail!(
            "an agent answers on {}: stop it first (systemctl stop vc-agent)",
            status_socket.display()
        );
    }
    let mut report = PurgeReport { steps: Vec::new() };
    report.record("stop vc's charon", stop_charon(config).await);
    report.record(
        "remove the XFRM block policies",
        ipsec::policy::sync(&[])
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from),
    );
    report.record("remove vc's routes (protocol vc)", flush_routes().await);
    report.record(
        "remove the datapath",
        datapath::purge::purge(&DatapathSpec::from_config(config)).await,
    );
    report.record(
        "remove the state directory",
        remove_state_dir(Path::new(&config.agent.state_dir)),
    );
    Ok(report)
}

/// Deletes vc's SAs and stops its own charon (an attached one is the system's: left alone),
/// waiting until it is gone.
async fn stop_charon(config: &Config) -> Result<()> {
    let pid = ipsec::cli::pid(config);
    ipsec::cli::down(config).await?;
    let (Some(pid), CharonMode::Supervise) = (pid, config.charon.mode) else {
        return Ok(());
    };
    let proc = format!("/proc/{pid}");
    let deadline = Instant::now() + CHARON_GRACE;
    while Path::new(&proc).exists() {
        if Instant::now() >= deadline {
            let pid = libc::pid_t::try_from(pid).context("charon's pid")?;
            // SAFETY: kill has no memory preconditions; the pid was charon's (by comm).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            tokio::time::sleep(Duration::from_millis(200)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Deletes every route of vc's protocol from the main table.
async fn flush_routes() -> Result<()> {
    let kernel = routes::kernel::KernelRoutes::new(routes::VC_RT_PROTO)?;
    for prefix in kernel.dump().await?.into_keys() {
        kernel.delete(prefix).await?;
    }
    Ok(())
}

/// The state directory is vc's own (`/run/vc` by default): removed whole, never `/`.
fn remove_state_dir(dir: &Path) -> Result<()> {
    if dir.components().count() < 3 {
        bail!(
            "{} is too close to / to be removed whole: remove it by hand",
            dir.display()
        );
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}
