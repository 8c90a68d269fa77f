//! `vc-agent ipsec up|status|down`: the controller by hand, for bring-up and troubleshooting.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    config::{CharonMode, Config, TunnelId},
    ipsec::{
        CharonState, Ipsec, Snapshot, conn,
        failure::classify,
        report,
        sa::{ABSENT_SNAPSHOTS, LastError},
        status::{CharonStatus, FailureStatus, IpsecStatus},
        vici::{Client, Message},
    },
};

/// The pause between two listings of a tunnel that a listing lacked (a busy IKE SA).
const RELIST: Duration = Duration::from_millis(300);

/// The VICI socket of the charon the config points at.
#[must_use]
pub fn socket(config: &Config) -> PathBuf {
    match config.charon.mode {
        CharonMode::Supervise => Path::new(&config.charon.run_dir).join("charon.vici"),
        CharonMode::Attach => PathBuf::from(&config.charon.socket),
    }
}

/// Starts (or finds) charon, loads and initiates the tunnels, waits up to `wait` for their
/// child SAs, prints the state and leaves charon running. True when every tunnel is up.
pub async fn up(config: Config, wait: Duration) -> Result<bool> {
    let ipsec = Ipsec::start(config).await.context("starting IPsec")?;
    let all_up = |s: &Snapshot| s.managed.iter().all(|id| s.sas.tunnel(*id).child_up());
    let (snap, ok) = match ipsec.wait_for(wait, all_up).await {
        Ok(s) => (s, true),
        Err(s) => (*s, false),
    };
    print!("{}", report::render(&snap, SystemTime::now()));
    ipsec.shutdown(false).await;
    Ok(ok)
}

/// Prints the state of the running charon's vc tunnels without starting anything, as text or
/// as [`IpsecReport`] in JSON. The last failure of a tunnel without a child SA comes from
/// vc's charon log.
pub async fn status(config: &Config, json: bool) -> Result<()> {
    let seen = observe(config).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&seen.report())?);
    } else {
        print!("{}", seen.text());
    }
    Ok(())
}

/// What `ipsec status --json` prints.
#[derive(Debug, Serialize)]
pub struct IpsecReport {
    pub charon: CharonStatus,
    pub tunnels: Vec<TunnelIpsec>,
}

#[derive(Debug, Serialize)]
pub struct TunnelIpsec {
    pub tunnel: TunnelId,
    #[serde(flatten)]
    pub sa: IpsecStatus,
    /// For a tunnel without a child SA: the last failure vc's charon logged for it.
    pub last_failure_in_log: Option<FailureStatus>,
}

/// The running charon's SAs and vc's charon log, at one moment.
struct Seen {
    snap: Snapshot,
    log: String,
    now: SystemTime,
}

async fn observe(config: &Config) -> Result<Seen> {
    let socket = socket(config);
    let mut vici = Client::connect(&socket).await?;
    let version = vici.version().await?;
    let now = SystemTime::now();
    let mut snap = Snapshot {
        charon: CharonState::Up {
            pid: pid(config),
            version: format!(
                "{} {}",
                version.str("daemon").unwrap_or("charon"),
                version.str("version").unwrap_or("?")
            ),
            since: now,
        },
        managed: config.terminated().map(|(id, _)| id).collect(),
        ..Snapshot::default()
    };
    // A busy IKE SA is missing from a `noblock` listing: list again (up to the number of
    // listings the agent needs to call an SA gone) while a tunnel lacks its child SA.
    for attempt in 0..ABSENT_SNAPSHOTS {
        if attempt > 0 {
            tokio::time::sleep(RELIST).await;
        }
        let mut listed = Vec::new();
        vici.streamed(
            "list-sas",
            Some("list-sa"),
            Message::new().kv("noblock", "yes"),
            |m| listed.push(m),
        )
        .await?;
        snap.sas.snapshot(&listed, now);
        if snap
            .managed
            .iter()
            .all(|id| snap.sas.tunnel(*id).child_up())
        {
            break;
        }
    }
    let log = std::fs::read_to_string(Path::new(&config.charon.run_dir).join("charon.log"))
        .unwrap_or_default();
    Ok(Seen { snap, log, now })
}

impl Seen {
    /// The last failure in the log of a managed tunnel that has no child SA.
    fn last_failure(&self, id: TunnelId) -> Option<LastError> {
        let t = self.snap.sas.tunnel(id);
        if t.child_up() {
            return None;
        }
        last_failure(&self.log, id, t.ike_up())
    }

    fn text(&self) -> String {
        let mut text = report::render(&self.snap, self.now);
        for id in &self.snap.managed {
            if let Some(e) = self.last_failure(*id) {
                let _ = writeln!(
                    text,
                    "tunnel {id}: last failure in charon's log: {} ({})",
                    e.failure, e.line
                );
            }
        }
        text
    }

    fn report(&self) -> IpsecReport {
        IpsecReport {
            charon: CharonStatus::from(&self.snap.charon),
            tunnels: self
                .snap
                .managed
                .iter()
                .map(|id| TunnelIpsec {
                    tunnel: *id,
                    sa: IpsecStatus::at(self.snap.sas.tunnel(*id), self.now),
                    last_failure_in_log: self
                        .last_failure(*id)
                        .map(|e| FailureStatus::new(e.failure, e.line, 0)),
                })
                .collect(),
        }
    }
}

/// Deletes vc's SAs and, for vc's own charon, stops it. The block policies stay: GRE is
/// blocked until `ipsec up` (or the agent) runs again.
pub async fn down(config: &Config) -> Result<()> {
    let socket = socket(config);
    if let Ok(mut vici) = Client::connect(&socket).await {
        for (id, _) in config.terminated() {
            let m = Message::new()
                .kv("ike", conn::conn_name(id))
                .kv("timeout", "5000");
            match vici.request("terminate", m).await {
                Ok(r) if r.yes("success") => println!("tunnel {id}: SAs deleted"),
                Ok(r) => println!(
                    "tunnel {id}: {}",
                    r.str("errmsg").unwrap_or("nothing to delete")
                ),
                Err(e) => println!("tunnel {id}: {e}"),
            }
        }
    }
    if config.charon.mode == CharonMode::Supervise
        && let Some(pid) = pid(config)
    {
        // SAFETY: kill has no memory preconditions; the pid is charon's (checked by comm).
        unsafe {
            libc::kill(libc::pid_t::try_from(pid).unwrap_or(0), libc::SIGTERM);
        }
        println!("vc's charon (pid {pid}) stopped; GRE stays blocked (fail closed)");
    }
    Ok(())
}

/// vc's charon's pid (supervise mode), if it runs.
#[must_use]
pub fn pid(config: &Config) -> Option<u32> {
    if config.charon.mode != CharonMode::Supervise {
        return None;
    }
    let text =
        std::fs::read_to_string(Path::new(&config.charon.run_dir).join("charon.pid")).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "charon").then_some(pid)
}

/// The last failure charon logged for a tunnel (lines look like
/// `2026-01-01T00:00:00 08[IKE] <vc-a|1> giving up after 5 retransmits`).
fn last_failure(log: &str, id: TunnelId, ike_up: bool) -> Option<LastError> {
    let tag = format!("<{}|", conn::conn_name(id));
    log.lines().rev().find_map(|line| {
        let rest = &line[line.find(&tag)?..];
        let msg = rest.split_once("> ")?.1;
        classify(msg, ike_up).map(|failure| LastError {
            failure,
            at: SystemTime::now(),
            line: msg.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::last_failure;
    use crate::{config::TunnelId, ipsec::Failure};

    #[test]
    fn the_last_failure_of_a_tunnel_comes_from_the_log() {
        let log = "2026-11-25T15:18:52 08[IKE] <vc-a|1> giving up after 2 retransmits\n\
                   2026-11-25T15:18:53 09[IKE] <vc-b|2> received AUTHENTICATION_FAILED notify error\n\
                   2026-11-25T15:18:54 10[IKE] <vc-a|3> received NO_PROPOSAL_CHOSEN notify error\n";
        let a = last_failure(log, TunnelId::A, false).expect("a");
        assert_eq!(a.failure, Failure::NoProposalChosen { ike: true });
        let b = last_failure(log, TunnelId::B, false).expect("b");
        assert_eq!(b.failure, Failure::AuthenticationFailed);
        assert!(last_failure("", TunnelId::A, false).is_none());
    }
}
