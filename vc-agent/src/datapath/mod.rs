//! The kernel side: the BPF object, its maps and programs, the tunnel interfaces and host
//! settings they need. [`Datapath::up`] builds it (or adopts a running one) and checks with
//! the kernel that every program is attached ([`reconcile`]), [`Datapath::down`] removes
//! every trace of it but the [`backstop`] routes, which only `vc-agent purge` removes.
pub mod attach;
pub mod backstop;
pub mod bpffs;
pub mod devices;
pub mod frames;
pub mod maps;
pub mod mtu;
pub mod object;
pub mod purge;
pub mod reassembled;
pub mod reconcile;
pub mod show;
pub mod spec;
pub mod state;
pub mod status;
pub mod sysctl;
pub mod wan_route;

use std::{
    fs,
    net::Ipv4Addr,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use netlink_packet_route::{address::AddressAttribute, link::LinkLayerType};
use tracing::{info, warn};
use vc_common::{settings_flags, tunnel_flags};

pub use self::{
    attach::{AttachMode, Attachment, Direction},
    devices::{Netlink, TunnelDevices},
    frames::FrameSender,
    maps::{DatapathMaps, Ipv4Prefix},
    object::{PROGRAMS, Program, XDP_PROGRAMS, classifier, load, xdp},
    reassembled::{ReassembledCounters, Refusal},
    reconcile::{AuditReport, HookState, Presence},
    spec::{DatapathSpec, Mode, TunnelSpec, tunnel_index, tunnel_interface},
    state::State,
};

/// The datapath's maps, shared by whoever writes them (the route manager, liveness, PMTU).
pub type SharedMaps = Arc<Mutex<DatapathMaps>>;

/// A datapath that is up: its maps, and what it was built from.
pub struct Datapath {
    maps: SharedMaps,
    spec: DatapathSpec,
    devices: Vec<(u32, TunnelDevices)>,
    attach_mode: AttachMode,
    /// Found running (a previous run of the agent left it): this run is a restart.
    adopted: bool,
    /// What the kernel had at the last [`Datapath::reconcile`].
    audit: Mutex<AuditReport>,
    /// Reassembled outer GRE datagrams delivered or refused ([`reassembled`]).
    reassembled: Mutex<ReassembledCounters>,
}

fn maps_dir(spec: &DatapathSpec) -> PathBuf {
    spec.pin_dir.join("maps")
}

fn links_dir(spec: &DatapathSpec) -> PathBuf {
    spec.pin_dir.join("links")
}

/// The loaded programs, pinned so that an attachment the host removed can be made again
/// with the same program (and so the same maps).
#[must_use]
pub fn progs_dir(spec: &DatapathSpec) -> PathBuf {
    spec.pin_dir.join("progs")
}

/// Which program goes where, in the order they are attached: the guard first, so that no
/// moment has decapsulation or the fast path without it. The LAN fast path only when it is
/// on: switched off, `vc_lan_rx` is not attached at all. The XDP fast paths last (each
/// passes what it does not carry up to the TC program already there), in GRE-only mode
/// with the fast path on only.
#[must_use]
pub fn attachments(spec: &DatapathSpec) -> Vec<Attachment> {
    let mut list = Vec::new();
    for wan in spec.wan_devices() {
        list.push(Attachment::new(Program::WanGuard, wan, Direction::Egress));
    }
    for wan in spec.wan_devices() {
        list.push(Attachment::new(Program::WanRx, wan, Direction::Ingress));
    }
    list.extend(
        spec.tunnels
            .iter()
            .map(|t| Attachment::new(Program::TunnelTx, &t.peer_name(), Direction::Ingress)),
    );
    if spec.fast_path
        && let Some(lan) = &spec.lan_if
    {
        list.push(Attachment::new(Program::LanRx, lan, Direction::Ingress));
    }
    list.extend(
        xdp_attachments(spec)
            .into_iter()
            .filter(|_| wants_xdp(spec)),
    );
    list
}

/// Whether `spec` wants the XDP fast paths: GRE-only mode, the fast path on, and asked for.
/// In IPsec mode never: XDP output skips XFRM.
#[must_use]
pub fn wants_xdp(spec: &DatapathSpec) -> bool {
    spec.xdp && spec.fast_path && spec.mode == Mode::ExternalIpsec
}

/// The XDP attachments a spec can have, wanted or not.
#[must_use]
pub fn xdp_attachments(spec: &DatapathSpec) -> Vec<Attachment> {
    let mut list = Vec::new();
    if let Some(lan) = &spec.lan_if {
        list.push(Attachment::new(Program::XdpLanRx, lan, Direction::Xdp));
    }
    list.extend(
        spec.wan_devices()
            .into_iter()
            .map(|wan| Attachment::new(Program::XdpWanRx, wan, Direction::Xdp)),
    );
    list
}

/// Every attachment `spec` could ever have made, whatever its fast-path setting: what a
/// teardown removes.
#[must_use]
pub fn all_attachments(spec: &DatapathSpec) -> Vec<Attachment> {
    let mut list = attachments(spec);
    if !spec.fast_path
        && let Some(lan) = &spec.lan_if
    {
        list.push(Attachment::new(Program::LanRx, lan, Direction::Ingress));
    }
    if !wants_xdp(spec) {
        list.extend(xdp_attachments(spec));
    }
    list
}

pub(crate) fn program_named(name: &str) -> Result<Program> {
    PROGRAMS
        .into_iter()
        .chain(XDP_PROGRAMS)
        .find(|p| p.name() == name)
        .with_context(|| format!("no program {name}"))
}

impl Datapath {
    /// Brings the datapath up as `spec` says, or adopts the one a previous run left pinned
    /// (after checking its layout version) and brings it in line with `spec`. On failure,
    /// whatever was built is removed again.
    ///
    /// Before anything else the [`backstop`] routes go in (they stay whatever happens next);
    /// after, every program must be attached as the kernel reports it, or `up` fails.
    pub async fn up(spec: DatapathSpec) -> Result<Self> {
        validate(&spec)?;
        let netlink = Netlink::connect()?;
        backstop::install(netlink.handle(), &spec).await?;
        check_ethernet(&netlink, &spec).await?;
        bpffs::ensure(&spec.pin_dir)?;
        if maps_dir(&spec).exists() && !progs_dir(&spec).exists() {
            // Made by an agent that did not pin its programs: nothing to re-attach from.
            warn!("the running datapath has no pinned programs: rebuilding it");
            Self::down(&spec).await?;
        }
        let datapath = if maps_dir(&spec).exists() {
            info!(pin_dir = %spec.pin_dir.display(), "adopting the running datapath");
            Self::adopt(spec, &netlink).await?
        } else {
            match Self::create(&spec, &netlink).await {
                Ok(datapath) => datapath,
                Err(e) => {
                    if let Err(undo) = Self::down(&spec).await {
                        warn!("undoing a failed datapath start: {undo:#}");
                    }
                    return Err(e);
                }
            }
        };
        let report = datapath.reconcile().await?;
        let faults = report.faults();
        if !faults.is_empty() {
            bail!(
                "the datapath is not whole after attaching: {}",
                faults.join("; ")
            );
        }
        info!(
            tunnels = datapath.spec.tunnels.len(),
            attach_mode = datapath.attach_mode.name(),
            repairs = report.repairs,
            "datapath up, every program attached"
        );
        Ok(datapath)
    }

    async fn create(spec: &DatapathSpec, netlink: &Netlink) -> Result<Self> {
        sysctl::check_rp_filter_all()?;
        let mut state = State::default();
        let mut devices = Vec::new();
        for tunnel in &spec.tunnels {
            state.tunnel_devices.push(tunnel.name.clone());
            state.save(&spec.state_dir)?;
            netlink.create_pair(tunnel).await?;
            sysctl::apply(&sysctl::tunnel_pair_settings(
                &tunnel.name,
                &tunnel.peer_name(),
            ))?;
            devices.push((tunnel.id, netlink.configure_pair(tunnel).await?));
        }
        state.ip_forward_before = Some(sysctl::enable_forwarding()?);
        state.save(&spec.state_dir)?;

        let mut ebpf = load(&[PROGRAMS.as_slice(), &XDP_PROGRAMS].concat())?;
        // The programs before the maps: pinned maps mean a datapath to adopt, whose programs
        // must then be there to attach.
        let progs_dir = progs_dir(spec);
        remove_pins(&progs_dir)?;
        fs::create_dir_all(&progs_dir)
            .with_context(|| format!("creating {}", progs_dir.display()))?;
        for program in PROGRAMS.into_iter().chain(XDP_PROGRAMS) {
            let path = progs_dir.join(program.name());
            let pinned = if program.is_xdp() {
                xdp(&mut ebpf, program)?.pin(&path)
            } else {
                classifier(&mut ebpf, program)?.pin(&path)
            };
            pinned.with_context(|| format!("pinning {}", path.display()))?;
        }
        let maps_dir = maps_dir(spec);
        fs::create_dir_all(&maps_dir)
            .with_context(|| format!("creating {}", maps_dir.display()))?;
        let maps = DatapathMaps::take(&mut ebpf, Some(&maps_dir))?;
        let attach_mode = spec.attach_mode.unwrap_or_else(AttachMode::detect);
        state.attach_mode = Some(attach_mode);
        state.attachments = all_attachments(spec);
        state.save(&spec.state_dir)?;
        #[cfg(feature = "testing")]
        crate::task::testing::crash_point("datapath-pinned");
        let mut datapath = Datapath {
            maps: Arc::new(Mutex::new(maps)),
            spec: spec.clone(),
            devices,
            attach_mode,
            adopted: false,
            audit: Mutex::default(),
            reassembled: Mutex::default(),
        };
        datapath.write_maps(netlink, true).await?;
        // Attaching is the reconcile `up` runs next, the same that repairs later.
        Ok(datapath)
    }

    /// Opens the running datapath to read it, changing nothing (`vc-agent datapath show`).
    pub async fn open(spec: DatapathSpec) -> Result<Self> {
        if !maps_dir(&spec).exists() {
            bail!(
                "the datapath is not up (no pins in {})",
                spec.pin_dir.display()
            );
        }
        let maps = DatapathMaps::from_pins(&maps_dir(&spec))?;
        let state = State::load(&spec.state_dir)?.unwrap_or_default();
        let netlink = Netlink::connect()?;
        let mut devices = Vec::new();
        for tunnel in &spec.tunnels {
            devices.push((tunnel.id, netlink.pair(tunnel).await?));
        }
        Ok(Datapath::found(maps, spec, devices, &state))
    }

    /// A datapath found running (opened or adopted), as `state` records it.
    fn found(
        maps: DatapathMaps,
        spec: DatapathSpec,
        devices: Vec<(u32, TunnelDevices)>,
        state: &State,
    ) -> Self {
        Datapath {
            maps: Arc::new(Mutex::new(maps)),
            spec,
            devices,
            attach_mode: state.attach_mode.unwrap_or_else(AttachMode::detect),
            adopted: true,
            audit: Mutex::default(),
            reassembled: Mutex::default(),
        }
    }

    /// Whether it was found running rather than built: the agent that brought it up is
    /// restarting (graceful restart announces that to the DCs).
    #[must_use]
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    async fn adopt(spec: DatapathSpec, netlink: &Netlink) -> Result<Self> {
        let maps = DatapathMaps::from_pins(&maps_dir(&spec))?;
        // Maps never written: the start that made them died before writing (and attaching).
        let fresh = !maps.written()?;
        if fresh {
            warn!("the running datapath was never finished (its start was killed): finishing it");
        }
        let mut state = State::load(&spec.state_dir)?
            .context("pinned maps but no datapath state: run `datapath down` first")?;
        // Whatever this spec may attach is recorded for the teardown before it is attached.
        for attachment in all_attachments(&spec) {
            if !state.attachments.contains(&attachment) {
                state.attachments.push(attachment);
            }
        }
        state.save(&spec.state_dir)?;
        let mut devices = Vec::new();
        for tunnel in &spec.tunnels {
            if !state.tunnel_devices.contains(&tunnel.name) {
                bail!(
                    "tunnel interface {} is not part of the running datapath: run `datapath \
                     down` and `up` to change tunnels",
                    tunnel.name
                );
            }
            devices.push((tunnel.id, netlink.configure_pair(tunnel).await?));
        }
        let mut datapath = Datapath::found(maps, spec, devices, &state);
        datapath.write_maps(netlink, fresh).await?;
        Ok(datapath)
    }

    /// Writes settings, tunnels, protected prefixes and local addresses. On adoption, each
    /// tunnel keeps the liveness it had.
    async fn write_maps(&mut self, netlink: &Netlink, fresh: bool) -> Result<()> {
        let mut local = Vec::new();
        let mut devices: Vec<String> = self
            .spec
            .wan_devices()
            .into_iter()
            .map(String::from)
            .collect();
        devices.extend(self.spec.lan_if.clone());
        for device in devices {
            local.extend(ipv4_addresses(netlink, &device).await?);
        }
        let host = host_ipv4_addresses(netlink).await?;
        for t in self.spec.unheld_gre_addresses(&host) {
            warn!(
                tunnel = %t.name,
                gre_address = %t.local_gre,
                "the GRE transport IP is not an address of this host: outer GRE fragments \
                 from the DC cannot be reassembled and are dropped (clear_gre); hold it on \
                 the host (behind a NAT: ip addr add {}/32 dev lo)",
                t.local_gre
            );
        }
        let mut maps = self.lock();
        let mut flags = 0;
        if self.spec.mode == Mode::ExternalIpsec {
            flags |= settings_flags::EXTERNAL_IPSEC;
        }
        if self.spec.fast_path {
            flags |= settings_flags::FAST_PATH;
        }
        maps.set_settings(flags)?;
        for tunnel in &self.spec.tunnels {
            let devices = self.devices(tunnel.id)?;
            let up = fresh || maps.tunnel(tunnel.id)?.flags & tunnel_flags::UP != 0;
            let entry = tunnel.map_entry(devices.tunnel_ifindex, devices.peer_ifindex, up);
            maps.set_tunnel(tunnel.id, &entry)?;
            maps.add_protected(tunnel.cisco_prefix.trunc())?;
            maps.add_protected(tunnel.local_tunnel.trunc())?;
            maps.add_local_addr(tunnel.local_gre)?;
            maps.add_local_addr(tunnel.local_tunnel.addr())?;
        }
        for addr in local {
            maps.add_local_addr(addr)?;
        }
        Ok(())
    }

    /// Removes everything `up` made but the backstop routes: attachments, tunnel
    /// interfaces, pins, and the host settings it changed. Works from the recorded state
    /// after a crash; what is already gone is skipped. The backstop stays: with the datapath
    /// down and forwarding on, it is what keeps the protected prefixes off the default route.
    pub async fn down(spec: &DatapathSpec) -> Result<()> {
        let state = State::load(&spec.state_dir)?.unwrap_or_default();
        let netlink = Netlink::connect()?;
        let mode = state.attach_mode.unwrap_or_else(AttachMode::detect);
        let mut failures = Vec::new();
        let mut detach = state.attachments.clone();
        for attachment in all_attachments(spec) {
            if !detach.contains(&attachment) {
                detach.push(attachment);
            }
        }
        for attachment in &detach {
            if let Err(e) = attach::detach(attachment, mode, &links_dir(spec)) {
                failures.push(format!("{e:#}"));
            }
        }
        for device in &state.tunnel_devices {
            if let Err(e) = netlink.delete(device).await {
                failures.push(format!("{e:#}"));
            }
        }
        for dir in [links_dir(spec), maps_dir(spec), progs_dir(spec)] {
            if let Err(e) = remove_pins(&dir) {
                failures.push(format!("{e:#}"));
            }
        }
        if let Some(before) = &state.ip_forward_before
            && let Err(e) = sysctl::restore_forwarding(before)
        {
            failures.push(format!("{e:#}"));
        }
        if !failures.is_empty() {
            bail!("datapath teardown incomplete: {}", failures.join("; "));
        }
        State::remove(&spec.state_dir)?;
        let _ = fs::remove_dir(&spec.pin_dir);
        info!("datapath down");
        Ok(())
    }

    #[must_use]
    pub fn spec(&self) -> &DatapathSpec {
        &self.spec
    }

    #[must_use]
    pub fn attach_mode(&self) -> AttachMode {
        self.attach_mode
    }

    /// The maps, to share with the tasks that write them.
    #[must_use]
    pub fn shared_maps(&self) -> SharedMaps {
        Arc::clone(&self.maps)
    }

    /// The maps, locked. A writer that panicked left them consistent (each write is one
    /// syscall), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, DatapathMaps> {
        self.maps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn devices(&self, id: u32) -> Result<TunnelDevices> {
        self.devices
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| *d)
            .with_context(|| format!("no tunnel {id}"))
    }

    /// Follows the path MTU toward each DC (R14): the kernel's path MTU to the DC's IPsec
    /// address, less what the tunnel's `wrapping` (by tunnel id) and GRE add, capped by the
    /// configured tunnel MTU. Returns the tunnels whose MTU changed, with the new MTU.
    pub async fn follow_path_mtu(
        &self,
        wrapping: impl Fn(u32) -> mtu::Wrapping,
    ) -> Result<Vec<(u32, u16)>> {
        let netlink = Netlink::connect()?;
        let mut changed = Vec::new();
        for tunnel in self.spec.tunnels.clone() {
            let path = mtu::path_mtu(&netlink, tunnel.remote_ipsec).await?;
            let outer = wrapping(tunnel.id);
            let wanted = mtu::tunnel_mtu(path, outer.esp, outer.nat_t).min(tunnel.mtu);
            let current = self.lock().tunnel(tunnel.id)?.mtu;
            if current != wanted {
                info!(tunnel = %tunnel.name, path_mtu = path, tunnel_mtu = wanted, "tunnel MTU follows the path");
                self.set_tunnel_mtu(tunnel.id, wanted).await?;
                changed.push((tunnel.id, wanted));
            }
        }
        Ok(changed)
    }

    /// Sets the tunnel MTU (R14, outer path-MTU discovery): the interface's MTU, which makes
    /// the kernel send frag-needed with it, and the map's, which the fast path checks.
    pub async fn set_tunnel_mtu(&self, id: u32, mtu: u16) -> Result<()> {
        let devices = self.devices(id)?;
        let netlink = Netlink::connect()?;
        netlink
            .set_mtu(devices.tunnel_ifindex, u32::from(mtu))
            .await?;
        netlink
            .set_mtu(devices.peer_ifindex, u32::from(mtu) + 24)
            .await?;
        let mut maps = self.lock();
        let mut tunnel = maps.tunnel(id)?;
        tunnel.mtu = mtu;
        maps.set_tunnel(id, &tunnel)
    }
}

fn validate(spec: &DatapathSpec) -> Result<()> {
    if spec.tunnels.is_empty() {
        bail!("a datapath needs at least one tunnel");
    }
    for tunnel in &spec.tunnels {
        devices::check_name(&tunnel.name)?;
        if spec.lan_if.as_ref() == Some(&tunnel.wan_if) {
            bail!(
                "tunnel {}'s WAN device {} is the LAN device",
                tunnel.name,
                tunnel.wan_if
            );
        }
        if tunnel.id >= vc_common::MAX_TUNNELS {
            bail!("tunnel id {} out of range", tunnel.id);
        }
    }
    Ok(())
}

/// Refuses WAN and LAN devices that do not carry Ethernet frames (`PPPoE`, raw IP, `WireGuard`):
/// the programs read the `EtherType` at byte 12, which on such a device is part of the source
/// address, so the guard would pass everything.
async fn check_ethernet(netlink: &Netlink, spec: &DatapathSpec) -> Result<()> {
    let mut devices: Vec<(&str, &str)> =
        spec.wan_devices().into_iter().map(|w| ("WAN", w)).collect();
    devices.extend(spec.lan_if.iter().map(|l| ("LAN", l.as_str())));
    for (role, name) in devices {
        let link = netlink
            .link(name)
            .await?
            .with_context(|| format!("{role} device {name} does not exist"))?;
        let kind = link.header.link_layer_type;
        if kind != LinkLayerType::Ether {
            bail!(
                "{role} device {name} is not Ethernet (link type {kind:?}): vc's programs \
                 parse Ethernet frames. Give vc an Ethernet {role} device (a PPPoE or other \
                 raw-IP uplink goes behind a router on an Ethernet segment)"
            );
        }
    }
    Ok(())
}

async fn ipv4_addresses(netlink: &Netlink, device: &str) -> Result<Vec<Ipv4Addr>> {
    let index = netlink
        .ifindex(device)
        .await?
        .with_context(|| format!("device {device} does not exist"))?;
    let messages: Vec<_> = netlink
        .handle()
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .with_context(|| format!("listing addresses of {device}"))?;
    Ok(ipv4_locals(&messages))
}

/// Every IPv4 address of this host (its network namespace), on any device.
async fn host_ipv4_addresses(netlink: &Netlink) -> Result<Vec<Ipv4Addr>> {
    let messages: Vec<_> = netlink
        .handle()
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .context("listing the host's addresses")?;
    Ok(ipv4_locals(&messages))
}

fn ipv4_locals(messages: &[netlink_packet_route::address::AddressMessage]) -> Vec<Ipv4Addr> {
    messages
        .iter()
        .flat_map(|m| &m.attributes)
        .filter_map(|a| match a {
            AddressAttribute::Local(std::net::IpAddr::V4(v4)) => Some(*v4),
            _ => None,
        })
        .collect()
}

fn remove_pins(dir: &std::path::Path) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let path = entry.context("listing pins")?.path();
                fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
            }
            fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("listing {}", dir.display())),
    }
}
