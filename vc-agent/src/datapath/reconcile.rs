//! Keeping the datapath attached whatever the host does: what the kernel really has (tcx
//! programs by device, clsact filters, the backstop routes) compared with what the spec wants,
//! and what is missing put back, the guard first.
//!
//! Why it is needed: the WAN device can be re-created (new ifindex, no programs), its clsact
//! qdisc deleted (`tc qdisc del dev wan clsact` takes both WAN programs and sends no link
//! event), a tcx link detached, the device renamed, or the agent killed between pinning the
//! maps and attaching. Each leaves no guard and no decapsulation, and a restart used to
//! adopt the maps without looking. Every program is pinned next to the maps so that it can
//! be attached again without a new load (a new load would mean new maps).
//!
//! [`Datapath::reconcile`] runs at every start (fresh or adopted), on every link or TC event
//! ([`watch`]), and every [`AUDIT_EVERY`] as the second net for what sends no event (tcx).
use std::{
    collections::BTreeSet,
    io,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::programs::{ProgramInfo, SchedClassifier, Xdp};
use aya_obj::programs::XdpAttachType;
use futures::{StreamExt, TryStreamExt};
use ipnet::Ipv4Net;
use netlink_packet_route::tc::{TcAttribute, TcFilterBpfOption, TcOption};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{
    AttachMode, Attachment, Datapath, Direction, Netlink, Program, attach, attachments, backstop,
    links_dir, progs_dir,
    wan_route::{self, WanRoute},
};
use crate::task::Task;

/// How often the kernel is audited when no event says something changed.
pub const AUDIT_EVERY: Duration = Duration::from_secs(2);

/// Where one of the datapath's programs is, in the kernel's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Presence {
    /// Our program (the pinned one) is attached there.
    Attached,
    /// The device exists, our program is not on it.
    Missing,
    /// No device of that name.
    NoDevice,
    /// An XDP fast path that could not be attached (no native XDP on the device): the TC
    /// programs there carry everything. Not a fault.
    TcOnly,
}

impl Presence {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Presence::Attached => "attached",
            Presence::Missing => "MISSING",
            Presence::NoDevice => "NO DEVICE",
            Presence::TcOnly => "tc only (no native XDP)",
        }
    }

    /// Whether it leaves a hole: anything but attached, or an XDP fast path left to TC.
    #[must_use]
    pub fn is_fault(self) -> bool {
        !matches!(self, Presence::Attached | Presence::TcOnly)
    }
}

/// One wanted attachment and whether the kernel has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookState {
    pub program: String,
    pub device: String,
    pub direction: Direction,
    pub presence: Presence,
}

/// The last audit: every wanted attachment as the kernel had it after the repairs, the
/// backstop routes present, and how many repairs were made since the agent started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub hooks: Vec<HookState>,
    /// Protected prefixes that have their backstop route.
    pub backstop: Vec<Ipv4Net>,
    /// Protected prefixes without one (a fault: the repair failed).
    pub backstop_missing: Vec<Ipv4Net>,
    /// Attachments and backstop routes put back since the agent started.
    pub repairs: u64,
    /// Where the host's routes send each tunnel's outer packets. Not a fault (nothing can
    /// leak), but a tunnel on the wrong WAN or on none ([`WanRoute::problem`]).
    #[serde(default)]
    pub wan_routes: Vec<WanRoute>,
}

impl AuditReport {
    /// Whether something that protects the WAN is missing.
    #[must_use]
    pub fn faults(&self) -> Vec<String> {
        let mut faults: Vec<String> = self
            .hooks
            .iter()
            .filter(|h| h.presence.is_fault())
            .map(|h| {
                format!(
                    "{} on {} {}: {}",
                    h.program,
                    h.device,
                    direction_name(h.direction),
                    h.presence.name()
                )
            })
            .collect();
        faults.extend(
            self.backstop_missing
                .iter()
                .map(|p| format!("backstop route unreachable {p}: MISSING")),
        );
        faults
    }
}

#[must_use]
pub const fn direction_name(d: Direction) -> &'static str {
    d.name()
}

/// The pinned program's id: what must be attached (a program of the same name from another
/// load would use other maps).
fn pinned_id(progs: &Path, program: &str) -> Option<u32> {
    ProgramInfo::from_pin(progs.join(program))
        .ok()
        .map(|i| i.id())
}

/// Whether program `id` (named `program`) is attached as `attachment` says.
async fn observe(
    netlink: &Netlink,
    attachment: &Attachment,
    mode: AttachMode,
    id: Option<u32>,
) -> Result<Presence> {
    if attachment.direction == Direction::Xdp {
        return Ok(
            match netlink.native_xdp_program(&attachment.device).await? {
                None => Presence::NoDevice,
                Some(Some(found)) if id.is_none_or(|id| id == found) => Presence::Attached,
                Some(_) => Presence::Missing,
            },
        );
    }
    let Some(ifindex) = netlink.ifindex(&attachment.device).await? else {
        return Ok(Presence::NoDevice);
    };
    let is_ours = |prog_id: u32, name: Option<&str>| match id {
        Some(id) => prog_id == id,
        // Nothing pinned (cannot happen after a start): the name is all there is.
        None => name.is_some_and(|n| n == attachment.program),
    };
    let found = match mode {
        AttachMode::Tcx => {
            let direction = attachment.direction.tc().context("a TC attachment")?;
            match SchedClassifier::query_tcx(&attachment.device, direction) {
                Ok((_, programs)) => programs.iter().any(|p| is_ours(p.id(), p.name_as_str())),
                // Renamed or deleted between the two looks.
                Err(e) if is_no_device(&e) => return Ok(Presence::NoDevice),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("querying the tcx programs of {}", attachment.device)
                    });
                }
            }
        }
        AttachMode::Clsact => clsact_programs(netlink, ifindex, attachment.direction)
            .await?
            .iter()
            .any(|(prog_id, name)| is_ours(*prog_id, Some(name))),
    };
    Ok(if found {
        Presence::Attached
    } else {
        Presence::Missing
    })
}

fn is_no_device(e: &aya::programs::ProgramError) -> bool {
    let text = format!("{e:#}");
    // aya reports a missing interface as an I/O error of if_nametoindex.
    matches!(
        e,
        aya::programs::ProgramError::TcError(aya::programs::tc::TcError::IoError(io))
            if io.kind() == io::ErrorKind::NotFound || io.raw_os_error() == Some(libc::ENODEV)
    ) || text.contains("No such device")
}

/// The BPF filters (program id, name) on a device's clsact hook; none without clsact.
async fn clsact_programs(
    netlink: &Netlink,
    ifindex: u32,
    direction: Direction,
) -> Result<Vec<(u32, String)>> {
    let index = i32::try_from(ifindex).context("ifindex")?;
    let mut request = netlink.handle().traffic_filter(index).get();
    request = match direction {
        Direction::Ingress => request.ingress(),
        Direction::Egress => request.egress(),
        Direction::Xdp => return Ok(Vec::new()),
    };
    let messages: Vec<_> = match request.execute().try_collect().await {
        Ok(m) => m,
        // No clsact qdisc (deleted): nothing attached.
        Err(rtnetlink::Error::NetlinkError(e))
            if e.raw_code() == -libc::EINVAL || e.raw_code() == -libc::ENOENT =>
        {
            Vec::new()
        }
        Err(e) => {
            return Err(e).with_context(|| format!("listing the filters of ifindex {ifindex}"));
        }
    };
    let mut found = Vec::new();
    for m in &messages {
        let (mut id, mut name) = (None, String::new());
        for attr in &m.attributes {
            if let TcAttribute::Options(options) = attr {
                for o in options {
                    match o {
                        TcOption::Bpf(TcFilterBpfOption::ProgId(i)) => id = Some(*i),
                        TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => name.clone_from(n),
                        _ => {}
                    }
                }
            }
        }
        if let Some(id) = id {
            // cls_bpf names a filter "<prog name>" or "<name>:[<id>]" depending on who made
            // it: the program's own name is the part before any ':'.
            let name = name.split(':').next().unwrap_or_default().to_string();
            found.push((id, name));
        }
    }
    Ok(found)
}

/// Attaches the pinned program of `attachment`, replacing a stale link pin (one whose device
/// is gone or that someone detached). `Ok(false)`: an XDP program the device cannot run
/// natively, not attached.
fn reattach(attachment: &Attachment, mode: AttachMode, progs: &Path, links: &Path) -> Result<bool> {
    let program = super::program_named(&attachment.program)?;
    let pin = progs.join(program.name());
    if program.is_xdp() {
        let mut prog = Xdp::from_pin(&pin, XdpAttachType::Interface)
            .with_context(|| format!("opening the pinned program {}", pin.display()))?;
        attach::unpin_link(attachment, links)?;
        return attach::attach_xdp(&mut prog, attachment, links);
    }
    let mut prog = SchedClassifier::from_pin(&pin)
        .with_context(|| format!("opening the pinned program {}", pin.display()))?;
    if mode == AttachMode::Tcx {
        attach::unpin_link(attachment, links)?;
    }
    attach::attach(&mut prog, program, attachment, mode, links)?;
    Ok(true)
}

impl Datapath {
    /// Compares the kernel with the spec and repairs what differs: the backstop routes, then
    /// each wanted attachment (the guard first), then removes `vc_lan_rx` where the fast path
    /// is off. Publishes and returns the audit.
    pub async fn reconcile(&self) -> Result<AuditReport> {
        let netlink = Netlink::connect()?;
        let spec = &self.spec;
        let mut repairs = 0;

        let wanted: BTreeSet<Ipv4Net> = backstop::prefixes(spec);
        let mut present = backstop::installed(netlink.handle()).await?;
        if !wanted.is_subset(&present) {
            let missing: Vec<_> = wanted.difference(&present).copied().collect();
            warn!(?missing, "backstop routes missing: putting them back");
            backstop::install(netlink.handle(), spec).await?;
            repairs += 1;
            present = backstop::installed(netlink.handle()).await?;
        }

        let (progs, links) = (progs_dir(spec), links_dir(spec));
        let before = self.audit().hooks;
        let mut hooks = Vec::new();
        for attachment in attachments(spec) {
            let id = pinned_id(&progs, &attachment.program);
            let mut presence = observe(&netlink, &attachment, self.attach_mode, id).await?;
            let xdp = attachment.direction == Direction::Xdp;
            // An XDP fast path the device cannot run stays left to TC, without a warning at
            // every audit.
            let tc_only = xdp
                && before.iter().any(|h| {
                    h.program == attachment.program
                        && h.device == attachment.device
                        && h.presence == Presence::TcOnly
                });
            if presence == Presence::Missing && !tc_only {
                warn!(
                    program = %attachment.program,
                    device = %attachment.device,
                    direction = direction_name(attachment.direction),
                    "not attached: attaching it again"
                );
                match reattach(&attachment, self.attach_mode, &progs, &links) {
                    Ok(true) => repairs += 1,
                    Ok(false) => info!(
                        program = %attachment.program,
                        device = %attachment.device,
                        "no native XDP on the device: the TC programs carry everything"
                    ),
                    Err(e) => warn!(program = %attachment.program, "re-attaching: {e:#}"),
                }
                presence = observe(&netlink, &attachment, self.attach_mode, id).await?;
                if presence == Presence::Attached {
                    info!(program = %attachment.program, device = %attachment.device, "re-attached");
                }
            }
            if xdp && presence == Presence::Missing {
                // Never a hole: what XDP does not carry, the TC programs behind it do.
                presence = Presence::TcOnly;
            }
            hooks.push(HookState {
                program: attachment.program.clone(),
                device: attachment.device.clone(),
                direction: attachment.direction,
                presence,
            });
        }
        if !spec.fast_path
            && let Some(lan) = &spec.lan_if
        {
            let lan_rx = Attachment::new(Program::LanRx, lan, Direction::Ingress);
            let id = pinned_id(&progs, &lan_rx.program);
            if observe(&netlink, &lan_rx, self.attach_mode, id).await? == Presence::Attached {
                info!(device = %lan, "fast path off: detaching vc_lan_rx");
                attach::detach(&lan_rx, self.attach_mode, &links)?;
            }
        }
        self.set_xdp_devices(&netlink, &hooks).await?;
        if !super::wants_xdp(spec) {
            for attachment in super::xdp_attachments(spec) {
                let id = pinned_id(&progs, &attachment.program);
                if observe(&netlink, &attachment, self.attach_mode, id).await? == Presence::Attached
                {
                    info!(device = %attachment.device, program = %attachment.program, "XDP fast path not wanted: detaching it");
                    attach::detach(&attachment, self.attach_mode, &links)?;
                }
            }
        }

        let wan_routes = wan_route::observe(&netlink, spec).await?;
        let mut report = self
            .audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for route in &wan_routes {
            // Said once per change, not at every audit.
            if !report.wan_routes.contains(route)
                && let Some(problem) = route.problem()
            {
                warn!("{problem}: route the DC out of that device");
            }
        }
        report.wan_routes = wan_routes;
        report.hooks = hooks;
        report.backstop = wanted.intersection(&present).copied().collect();
        report.backstop_missing = wanted.difference(&present).copied().collect();
        report.repairs += repairs;
        Ok(report.clone())
    }

    /// Lets the XDP fast paths redirect between the LAN and WAN devices while both have
    /// them attached natively, and not otherwise: redirected into a device that cannot
    /// transmit XDP frames, a frame would be dropped.
    async fn set_xdp_devices(&self, netlink: &Netlink, hooks: &[HookState]) -> Result<()> {
        let spec = &self.spec;
        let attached = |program: Program, device: &str| {
            hooks.iter().any(|h| {
                h.program == program.name()
                    && h.device == device
                    && h.presence == Presence::Attached
            })
        };
        let (mut lan, mut wan) = (0, 0);
        // The LAN's XDP redirects to the host's WAN only: a tunnel on another WAN device
        // leaves its traffic to the TC fast path.
        if let Some(lan_if) = &spec.lan_if
            && attached(Program::XdpLanRx, lan_if)
            && attached(Program::XdpWanRx, &spec.wan_if)
        {
            lan = netlink.ifindex(lan_if).await?.unwrap_or_default();
            wan = netlink.ifindex(&spec.wan_if).await?.unwrap_or_default();
        }
        let mut maps = self.lock();
        let settings = maps.settings()?;
        if (settings.xdp_lan_ifindex, settings.xdp_wan_ifindex) != (lan, wan) {
            info!(
                lan,
                wan, "XDP fast paths redirect between ifindexes (0: none)"
            );
            maps.set_xdp_devices(lan, wan)?;
        }
        Ok(())
    }

    /// The last audit (see [`Datapath::reconcile`]).
    #[must_use]
    pub fn audit(&self) -> AuditReport {
        self.audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What woke the watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    /// A link or TC change (device created, deleted, renamed; qdisc or filter gone).
    Event,
    /// The periodic audit.
    Tick,
}

/// Keeps the datapath attached until aborted: reconciles on every link and TC event and every
/// [`AUDIT_EVERY`]. Logs how long each repair took after the event that caused it.
pub fn watch(datapath: Arc<Datapath>) -> Task {
    Task::spawn("datapath-watch", async move {
        let events = match rtnetlink::new_multicast_connection(&[
            rtnetlink::MulticastGroup::Link,
            rtnetlink::MulticastGroup::Tc,
        ]) {
            Ok((connection, _, messages)) => {
                tokio::spawn(connection);
                Some(messages)
            }
            Err(e) => {
                warn!("no link events (auditing every {AUDIT_EVERY:?} only): {e}");
                None
            }
        };
        let mut events = events;
        let mut tick = tokio::time::interval(AUDIT_EVERY);
        let mut last_faults = Vec::new();
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = tokio::select! {
                _ = tick.tick() => Wake::Tick,
                Some(_) = async {
                    match events.as_mut() {
                        Some(e) => e.next().await,
                        None => std::future::pending().await,
                    }
                } => Wake::Event,
            };
            let since = Instant::now();
            // A burst of events (a device re-created sends several) is one reconcile.
            if let Some(e) = events.as_mut() {
                while let Ok(Some(_)) =
                    tokio::time::timeout(Duration::from_millis(20), e.next()).await
                {
                }
            }
            let before = datapath.audit().repairs;
            match datapath.reconcile().await {
                Ok(report) if report.repairs > before => info!(
                    repairs = report.repairs - before,
                    took = ?since.elapsed(),
                    ?wake,
                    "datapath repaired"
                ),
                Ok(report) => {
                    let faults = report.faults();
                    if faults != last_faults && !faults.is_empty() {
                        warn!(
                            ?faults,
                            "the datapath is not whole and cannot be repaired now"
                        );
                    }
                    last_faults = faults;
                }
                Err(e) => warn!("auditing the datapath: {e:#}"),
            }
        }
    })
}
