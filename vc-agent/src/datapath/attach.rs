//! Attaching the programs so they outlive the agent: tcx links pinned on kernels that have
//! tcx (6.6+), clsact filters otherwise (Debian 12's 6.1). Either way the datapath keeps
//! forwarding while the agent restarts.
use std::{fs, io, path::Path};

use anyhow::{Context, Result};
use aya::{
    programs::{
        LinkOrder, ProgramError, SchedClassifier, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{self, NlOptions, TcAttachOptions, TcAttachType, TcError},
    },
    util::KernelVersion,
};
use serde::{Deserialize, Serialize};

use super::object::Program;

/// How programs are attached on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// `bpf_link` based, kernel 6.6+: pinned links.
    Tcx,
    /// clsact qdisc + `cls_bpf` filter in direct-action mode.
    Clsact,
}

impl AttachMode {
    /// As in JSON: `tcx`, `clsact`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Tcx => "tcx",
            AttachMode::Clsact => "clsact",
        }
    }

    /// tcx where the kernel has it (commit e420bed02507, 6.6).
    #[must_use]
    pub fn detect() -> Self {
        match KernelVersion::current() {
            Ok(v) if v >= KernelVersion::new(6, 6, 0) => AttachMode::Tcx,
            _ => AttachMode::Clsact,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Ingress,
    Egress,
    /// XDP, in the driver, before TC ingress (always a pinned link, whatever the TC mode).
    Xdp,
}

impl Direction {
    /// As the status and metrics show it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
            Direction::Xdp => "xdp",
        }
    }

    /// The TC hook; `None` for XDP.
    #[must_use]
    pub const fn tc(self) -> Option<TcAttachType> {
        match self {
            Direction::Ingress => Some(TcAttachType::Ingress),
            Direction::Egress => Some(TcAttachType::Egress),
            Direction::Xdp => None,
        }
    }
}

/// One program on one device in one direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub program: String,
    pub device: String,
    pub direction: Direction,
}

impl Attachment {
    #[must_use]
    pub fn new(program: Program, device: &str, direction: Direction) -> Self {
        Attachment {
            program: program.name().to_string(),
            device: device.to_string(),
            direction,
        }
    }

    fn pin_name(&self) -> String {
        format!("{}-{}", self.device, self.direction.name())
    }
}

/// `cls_bpf` priority of vc's filters: ahead of anything added with tc's default priorities.
const CLSACT_PRIORITY: u16 = 1;

/// Attaches `prog` (the loaded `program`) as `attachment` says, leaving it attached after
/// `prog` drops. The guard goes first in a tcx chain: a program ahead of it that accepted or
/// redirected a packet would take it past the guard.
pub fn attach(
    prog: &mut SchedClassifier,
    program: Program,
    attachment: &Attachment,
    mode: AttachMode,
    links_dir: &Path,
) -> Result<()> {
    let what = || {
        format!(
            "attaching {} to {} {:?}",
            attachment.program, attachment.device, attachment.direction
        )
    };
    let options = match mode {
        AttachMode::Tcx => TcAttachOptions::TcxOrder(if program == Program::WanGuard {
            LinkOrder::first()
        } else {
            LinkOrder::default()
        }),
        AttachMode::Clsact => {
            match tc::qdisc_add_clsact(&attachment.device) {
                Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
                other => other.with_context(what)?,
            }
            TcAttachOptions::Netlink(NlOptions {
                priority: CLSACT_PRIORITY,
                ..NlOptions::default()
            })
        }
    };
    let direction = attachment
        .direction
        .tc()
        .with_context(|| format!("{}: not a TC attachment", what()))?;
    let id = prog
        .attach_with_options(&attachment.device, direction, options)
        .with_context(what)?;
    let link = prog.take_link(id).with_context(what)?;
    match mode {
        AttachMode::Tcx => {
            let link: FdLink = link.try_into().with_context(what)?;
            fs::create_dir_all(links_dir)
                .with_context(|| format!("creating {}", links_dir.display()))?;
            let path = links_dir.join(attachment.pin_name());
            link.pin(&path)
                .with_context(|| format!("pinning link {}", path.display()))?;
        }
        AttachMode::Clsact => {
            // Dropping the link would delete the filter: the filter is the attachment that
            // outlives us, found again by program name at teardown.
            std::mem::forget(link);
        }
    }
    Ok(())
}

/// Attaches the XDP `prog` as `attachment` says, in native (driver) mode only, with a pinned
/// link. `Ok(false)`: the device has no native XDP, and nothing was attached; generic (skb)
/// XDP would cost more than the TC programs behind it save.
pub fn attach_xdp(prog: &mut Xdp, attachment: &Attachment, links_dir: &Path) -> Result<bool> {
    let what = || {
        format!(
            "attaching {} to {} (XDP)",
            attachment.program, attachment.device
        )
    };
    let id = match prog.attach(&attachment.device, XdpMode::Driver) {
        Ok(id) => id,
        Err(e) if no_native_xdp(&e) => return Ok(false),
        Err(e) => return Err(e).with_context(what),
    };
    let link: FdLink = prog
        .take_link(id)
        .with_context(what)?
        .try_into()
        .with_context(what)?;
    fs::create_dir_all(links_dir).with_context(|| format!("creating {}", links_dir.display()))?;
    let path = links_dir.join(attachment.pin_name());
    link.pin(&path)
        .with_context(|| format!("pinning link {}", path.display()))?;
    Ok(true)
}

/// The kernel's answer to a native-mode attach on a device whose driver has no XDP.
fn no_native_xdp(e: &ProgramError) -> bool {
    matches!(e, ProgramError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::EOPNOTSUPP))
}

/// Drops the pinned tcx link of `attachment`, if any, detaching it if it is still attached:
/// before pinning a new one where a stale link (device gone, or detached by someone) stays
/// pinned.
pub fn unpin_link(attachment: &Attachment, links_dir: &Path) -> Result<()> {
    detach(attachment, AttachMode::Tcx, links_dir)
}

/// Removes an attachment made by [`attach`]; one already gone is fine.
pub fn detach(attachment: &Attachment, mode: AttachMode, links_dir: &Path) -> Result<()> {
    // XDP is attached by a pinned link whatever the TC mode.
    let mode = if attachment.direction == Direction::Xdp {
        AttachMode::Tcx
    } else {
        mode
    };
    match mode {
        AttachMode::Tcx => {
            let path = links_dir.join(attachment.pin_name());
            match PinnedLink::from_pin(&path) {
                // Unpinned and dropped: the last reference goes and the kernel detaches.
                Ok(link) => drop(
                    link.unpin()
                        .with_context(|| format!("unpinning {}", path.display()))?,
                ),
                Err(LinkError::SyscallError(e)) if e.io_error.kind() == io::ErrorKind::NotFound => {
                }
                Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
            }
        }
        AttachMode::Clsact => {
            let Some(direction) = attachment.direction.tc() else {
                return Ok(());
            };
            match tc::qdisc_detach_program(&attachment.device, direction, &attachment.program) {
                Ok(()) => {}
                Err(TcError::IoError(e)) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "detaching {} from {}",
                            attachment.program, attachment.device
                        )
                    });
                }
            }
        }
    }
    Ok(())
}
