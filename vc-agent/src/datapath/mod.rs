//! The kernel side: the BPF object, its maps and programs, the tunnel interfaces and host
//! settings they need. [`Datapath::up`] builds it (or adopts a running one), [`Datapath::down`]
//! removes every trace of it.
pub mod attach;
pub mod bpffs;
pub mod devices;
pub mod maps;
pub mod mtu;
pub mod object;
pub mod purge;
pub mod show;
pub mod spec;
pub mod state;
pub mod status;
pub mod sysctl;

use std::{
    fs,
    net::Ipv4Addr,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use tracing::{info, warn};
use vc_common::{settings_flags, tunnel_flags};

pub use self::{
    attach::{AttachMode, Attachment, Direction},
    devices::{Netlink, TunnelDevices},
    maps::{DatapathMaps, Ipv4Prefix},
    object::{PROGRAMS, Program, classifier, load},
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
}

fn maps_dir(spec: &DatapathSpec) -> PathBuf {
    spec.pin_dir.join("maps")
}

fn links_dir(spec: &DatapathSpec) -> PathBuf {
    spec.pin_dir.join("links")
}

/// Which program goes where.
#[must_use]
pub fn attachments(spec: &DatapathSpec) -> Vec<Attachment> {
    let mut list: Vec<Attachment> = spec
        .tunnels
        .iter()
        .map(|t| Attachment::new(Program::TunnelTx, &t.peer_name(), Direction::Ingress))
        .collect();
    list.push(Attachment::new(
        Program::WanRx,
        &spec.wan_if,
        Direction::Ingress,
    ));
    list.push(Attachment::new(
        Program::WanGuard,
        &spec.wan_if,
        Direction::Egress,
    ));
    if let Some(lan) = &spec.lan_if {
        list.push(Attachment::new(Program::LanRx, lan, Direction::Ingress));
    }
    list
}

fn program_named(name: &str) -> Result<Program> {
    PROGRAMS
        .into_iter()
        .find(|p| p.name() == name)
        .with_context(|| format!("no program {name}"))
}

impl Datapath {
    /// Brings the datapath up as `spec` says, or adopts the one a previous run left pinned
    /// (after checking its layout version) and brings it in line with `spec`. On failure,
    /// whatever was built is removed again.
    pub async fn up(spec: DatapathSpec) -> Result<Self> {
        validate(&spec)?;
        bpffs::ensure(&spec.pin_dir)?;
        let netlink = Netlink::connect()?;
        if maps_dir(&spec).exists() {
            info!(pin_dir = %spec.pin_dir.display(), "adopting the running datapath");
            return Self::adopt(spec, &netlink).await;
        }
        match Self::create(&spec, &netlink).await {
            Ok(datapath) => Ok(datapath),
            Err(e) => {
                if let Err(undo) = Self::down(&spec).await {
                    warn!("undoing a failed datapath start: {undo:#}");
                }
                Err(e)
            }
        }
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

        let mut ebpf = load(&PROGRAMS)?;
        let maps_dir = maps_dir(spec);
        fs::create_dir_all(&maps_dir)
            .with_context(|| format!("creating {}", maps_dir.display()))?;
        let maps = DatapathMaps::take(&mut ebpf, Some(&maps_dir))?;
        let attach_mode = AttachMode::detect();
        let mut datapath = Datapath {
            maps: Arc::new(Mutex::new(maps)),
            spec: spec.clone(),
            devices,
            attach_mode,
            adopted: false,
        };
        datapath.write_maps(netlink, true).await?;

        state.attach_mode = Some(attach_mode);
        for attachment in attachments(spec) {
            state.attachments.push(attachment.clone());
            state.save(&spec.state_dir)?;
            let program = program_named(&attachment.program)?;
            attach::attach(
                &mut ebpf,
                program,
                &attachment,
                attach_mode,
                &links_dir(spec),
            )?;
        }
        info!(tunnels = spec.tunnels.len(), ?attach_mode, "datapath up");
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
        Ok(Datapath {
            maps: Arc::new(Mutex::new(maps)),
            spec,
            devices,
            attach_mode: state.attach_mode.unwrap_or_else(AttachMode::detect),
            adopted: true,
        })
    }

    /// Whether it was found running rather than built: the agent that brought it up is
    /// restarting (graceful restart announces that to the DCs).
    #[must_use]
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    async fn adopt(spec: DatapathSpec, netlink: &Netlink) -> Result<Self> {
        let maps = DatapathMaps::from_pins(&maps_dir(&spec))?;
        let state = State::load(&spec.state_dir)?
            .context("pinned maps but no datapath state: run `datapath down` first")?;
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
        let mut datapath = Datapath {
            maps: Arc::new(Mutex::new(maps)),
            spec,
            devices,
            attach_mode: state.attach_mode.unwrap_or_else(AttachMode::detect),
            adopted: true,
        };
        datapath.write_maps(netlink, false).await?;
        Ok(datapath)
    }

    /// Writes settings, tunnels, protected prefixes and local addresses. On adoption, each
    /// tunnel keeps the liveness it had.
    async fn write_maps(&mut self, netlink: &Netlink, fresh: bool) -> Result<()> {
        let mut local = Vec::new();
        let mut devices = vec![self.spec.wan_if.clone()];
        devices.extend(self.spec.lan_if.clone());
        for device in devices {
            local.extend(ipv4_addresses(netlink, &device).await?);
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

    /// Removes everything `up` made: attachments, tunnel interfaces, pins, and the host
    /// settings it changed. Works from the recorded state after a crash; what is already gone
    /// is skipped.
    pub async fn down(spec: &DatapathSpec) -> Result<()> {
        let state = State::load(&spec.state_dir)?.unwrap_or_default();
        let netlink = Netlink::connect()?;
        let mode = state.attach_mode.unwrap_or_else(AttachMode::detect);
        let mut failures = Vec::new();
        for attachment in &state.attachments {
            if let Err(e) = attach::detach(attachment, mode, &links_dir(spec)) {
                failures.push(format!("{e:#}"));
            }
        }
        for device in &state.tunnel_devices {
            if let Err(e) = netlink.delete(device).await {
                failures.push(format!("{e:#}"));
            }
        }
        for dir in [links_dir(spec), maps_dir(spec)] {
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
    /// address, less what ESP (`esp`, none in external-IPsec mode), NAT-T and GRE add, capped
    /// by the configured tunnel MTU. Returns the tunnels whose MTU changed, with the new MTU.
    pub async fn follow_path_mtu(
        &self,
        esp: Option<mtu::EspOverhead>,
        nat_t: bool,
    ) -> Result<Vec<(u32, u16)>> {
        let netlink = Netlink::connect()?;
        let mut changed = Vec::new();
        for tunnel in self.spec.tunnels.clone() {
            let path = mtu::path_mtu(&netlink, tunnel.remote_ipsec).await?;
            let wanted = mtu::tunnel_mtu(path, esp, nat_t).min(tunnel.mtu);
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
        if tunnel.id >= vc_common::MAX_TUNNELS {
            bail!("tunnel id {} out of range", tunnel.id);
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
    Ok(messages
        .iter()
        .flat_map(|m| &m.attributes)
        .filter_map(|a| match a {
            AddressAttribute::Local(std::net::IpAddr::V4(v4)) => Some(*v4),
            _ => None,
        })
        .collect())
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
