//! The datapath's part of `vc-agent purge`: everything the datapath ever put on the host,
//! including what [`Datapath::down`] keeps on purpose: the [`backstop`] routes. Purge is the
//! only command that takes them away.
use anyhow::{Result, bail};

use super::{
    AttachMode, Datapath, DatapathSpec, Netlink, all_attachments, attach, backstop, links_dir,
};

/// Removes the datapath: what its recorded state names (as `down` does: attachments, tunnel
/// interfaces, pins, host settings), then, in case that state was lost, every attachment and
/// tunnel interface `spec` would have made, and last the backstop routes.
pub async fn purge(spec: &DatapathSpec) -> Result<()> {
    let mut failures = Vec::new();
    if let Err(e) = Datapath::down(spec).await {
        failures.push(format!("{e:#}"));
    }
    for attachment in all_attachments(spec) {
        for mode in [AttachMode::Tcx, AttachMode::Clsact] {
            // What is not there is no failure; a failure here was already one of `down`'s.
            let _ = attach::detach(&attachment, mode, &links_dir(spec));
        }
    }
    let netlink = Netlink::connect()?;
    for tunnel in &spec.tunnels {
        if let Err(e) = netlink.delete(&tunnel.name).await {
            failures.push(format!("{e:#}"));
        }
    }
    if let Err(e) = backstop::remove(netlink.handle()).await {
        failures.push(format!("{e:#}"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("datapath purge incomplete: {}", failures.join("; "))
    }
}
