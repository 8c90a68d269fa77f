//! Outer GRE fragments, delivered whole. A DC that sends DF=0 packets larger than the path
//! fragments the GRE packet before ESP (each fragment its own ESP packet). `vc_wan_rx` cannot
//! reassemble, so it leaves fragments that its tunnel's SA decrypted to the kernel
//! (`outer_fragment_to_stack`), which reassembles them on local delivery: the destination is
//! our GRE address. A raw `IPPROTO_GRE` socket receives the reassembled datagram after the
//! kernel's XFRM inbound policy check (clear GRE fails charon's GRE-only policy and never gets
//! here). Each datagram is checked as `vc_wan_rx` checks whole packets (a tunnel's outer
//! addresses, no key or sequence number, IPv4 inside from the DC's tunnel IP or Cisco's
//! prefix, RFC 6040 on the ECN field), and its inner packet is sent out of the tunnel's
//! hidden peer: it arrives on the tunnel interface, where `vc_wan_rx`'s slow path delivers,
//! and the kernel forwards it to the LAN from there.
//!
//! The kernel hands the datagram to its own GRE handler too, if `ip_gre` is loaded: that finds
//! no tunnel and answers "port unreachable", which the XFRM block policy for ICMP
//! destination-unreachable between the GRE addresses stops (`ipsec::policy`). Without
//! `ip_gre` no handler exists, and a protocol taken by a raw socket draws no ICMP at all.
use std::{io, net::Ipv4Addr, sync::Arc};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::{debug, info, warn};
use vc_common::csum;
use vc_wire::gre::{self, GreError, PROTO_IPV4};

use super::{Datapath, FrameSender, TunnelSpec};
use crate::task::Task;

/// Largest IPv4 datagram.
const MAX_DATAGRAM: usize = 65_535;
const IPPROTO_GRE: u8 = 47;
const ECN_MASK: u8 = 0x03;
const ECN_ECT1: u8 = 0x01;
const ECN_ECT0: u8 = 0x02;
const ECN_CE: u8 = 0x03;
const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_OFFSET: u16 = 0x1fff;

/// Why a reassembled datagram was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Not a valid GRE datagram (or still a fragment).
    Malformed,
    /// GRE with a key or sequence number, which vc never configures.
    GreUnsupported,
    /// Outer addresses that are no tunnel's.
    UnknownTunnel,
    /// The GRE payload is not IPv4.
    InnerNotIpv4,
    /// The inner IPv4 header is invalid or longer than the payload.
    BadInnerHeader,
    /// Inner source outside Cisco's prefix and not the DC's tunnel IP (or GRE inside).
    InnerSourceNotAllowed,
    /// RFC 6040: CE outside, Not-ECT inside.
    CeOnNotEct,
    /// Larger than the tunnel interface's MTU with DF set: it cannot cross the veth whole,
    /// and may not be fragmented.
    TooBig,
    /// Sending into the tunnel interface failed.
    SendFailed,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::Malformed,
        Refusal::GreUnsupported,
        Refusal::UnknownTunnel,
        Refusal::InnerNotIpv4,
        Refusal::BadInnerHeader,
        Refusal::InnerSourceNotAllowed,
        Refusal::CeOnNotEct,
        Refusal::TooBig,
        Refusal::SendFailed,
    ];

    /// The metric label.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::GreUnsupported => "gre_unsupported",
            Refusal::UnknownTunnel => "unknown_tunnel",
            Refusal::InnerNotIpv4 => "inner_not_ipv4",
            Refusal::BadInnerHeader => "bad_inner_header",
            Refusal::InnerSourceNotAllowed => "inner_source_not_allowed",
            Refusal::CeOnNotEct => "ce_on_not_ect",
            Refusal::TooBig => "too_big",
            Refusal::SendFailed => "send_failed",
        }
    }
}

impl From<GreError> for Refusal {
    fn from(e: GreError) -> Self {
        match e {
            GreError::KeyOrSequence => Refusal::GreUnsupported,
            GreError::Truncated
            | GreError::BadIpHeader
            | GreError::NotGre
            | GreError::Fragment
            | GreError::Malformed => Refusal::Malformed,
        }
    }
}

/// Reassembled datagrams since the agent started: the status's and the metrics' numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassembledCounters {
    /// Inner packets delivered into a tunnel interface, and their bytes.
    pub delivered_packets: u64,
    pub delivered_bytes: u64,
    /// Datagrams refused, by reason (non-zero only).
    pub refused: Vec<(Refusal, u64)>,
}

impl ReassembledCounters {
    fn refuse(&mut self, why: Refusal) {
        if let Some((_, n)) = self.refused.iter_mut().find(|(r, _)| *r == why) {
            *n += 1;
        } else {
            self.refused.push((why, 1));
            self.refused.sort_unstable();
        }
    }

    /// How many were refused for `why`.
    #[must_use]
    pub fn refused(&self, why: Refusal) -> u64 {
        self.refused
            .iter()
            .find(|(r, _)| *r == why)
            .map_or(0, |(_, n)| *n)
    }
}

/// What a datagram is checked against: one tunnel's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: u32,
    pub local_gre: Ipv4Addr,
    pub remote_gre: Ipv4Addr,
    pub dc_tunnel_ip: Ipv4Addr,
    pub cisco_prefix: Ipv4Net,
}

impl From<&TunnelSpec> for Endpoint {
    fn from(t: &TunnelSpec) -> Self {
        Endpoint {
            id: t.id,
            local_gre: t.local_gre,
            remote_gre: t.remote_gre,
            dc_tunnel_ip: t.dc_tunnel_ip,
            cisco_prefix: t.cisco_prefix,
        }
    }
}

/// A datagram accepted: the tunnel it came through and its inner packet, ECN decapsulated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: u32,
    pub inner: Vec<u8>,
}

/// Checks one reassembled datagram (IPv4 header first) as `vc_wan_rx` checks a whole packet.
pub fn judge(datagram: &[u8], endpoints: &[Endpoint]) -> Result<Delivery, Refusal> {
    let outer = gre::decode(datagram)?;
    let tunnel = endpoints
        .iter()
        .find(|e| e.remote_gre == outer.source && e.local_gre == outer.destination)
        .ok_or(Refusal::UnknownTunnel)?;
    if outer.protocol != PROTO_IPV4 {
        return Err(Refusal::InnerNotIpv4);
    }
    let payload = outer.payload;
    let header = payload.get(..20).ok_or(Refusal::BadInnerHeader)?;
    let hlen = usize::from(header[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if header[0] >> 4 != 4 || hlen < 20 || total < hlen || total > payload.len() {
        return Err(Refusal::BadInnerHeader);
    }
    let source = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    if header[9] == IPPROTO_GRE
        || !(tunnel.cisco_prefix.contains(&source) || source == tunnel.dc_tunnel_ip)
    {
        return Err(Refusal::InnerSourceNotAllowed);
    }
    let mut inner = payload[..total].to_vec();
    if let Some(tos) = decap_tos(outer.tos, inner[1])? {
        inner[1] = tos;
        inner[10..12].fill(0);
        let check = csum::checksum(&inner[..hlen]);
        inner[10..12].copy_from_slice(&check.to_be_bytes());
    }
    Ok(Delivery {
        id: tunnel.id,
        inner,
    })
}

/// RFC 6040 §4.2 (normal mode), as `vc_wan_rx` and Linux's tunnels: the inner TOS to write,
/// if it changes.
fn decap_tos(outer: u8, inner: u8) -> Result<Option<u8>, Refusal> {
    let ecn = match (outer & ECN_MASK, inner & ECN_MASK) {
        (ECN_CE, 0) => return Err(Refusal::CeOnNotEct),
        (ECN_CE, ECN_ECT0 | ECN_ECT1 | ECN_CE) => ECN_CE,
        (ECN_ECT1, ECN_ECT0) => ECN_ECT1,
        _ => return Ok(None),
    };
    Ok(Some((inner & !ECN_MASK) | ecn).filter(|tos| *tos != inner))
}

/// `packet` (a valid IPv4 packet) in pieces of at most `mtu` bytes, as a router forwarding
/// it into a smaller link would cut it (RFC 791): a veth drops a frame larger than the
/// receiving end's MTU, and the tunnel interface's is the tunnel MTU, smaller than what a DC
/// may send when it fragments outside. Only options with the copy flag go into the later
/// fragments. DF set and too big: refused.
pub fn fragment(packet: &[u8], mtu: u16) -> Result<Vec<Vec<u8>>, Refusal> {
    let mtu = usize::from(mtu);
    if packet.len() <= mtu {
        return Ok(vec![packet.to_vec()]);
    }
    let flags = u16::from_be_bytes([packet[6], packet[7]]);
    if flags & IP_DF != 0 {
        return Err(Refusal::TooBig);
    }
    let hlen = usize::from(packet[0] & 0x0f) * 4;
    let first_header = &packet[..hlen];
    let later_header = copied_options(first_header);
    let base = usize::from(flags & IP_OFFSET) * 8;
    let last_more = flags & IP_MF != 0;
    let data = &packet[hlen..];
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let header = if at == 0 {
            first_header
        } else {
            &later_header[..]
        };
        let room = (mtu.saturating_sub(header.len()) / 8) * 8;
        if room == 0 {
            return Err(Refusal::TooBig);
        }
        let end = (at + room).min(data.len());
        let more = end < data.len() || last_more;
        let offset = u16::try_from((base + at) / 8).map_err(|_| Refusal::BadInnerHeader)?;
        let mut piece = Vec::with_capacity(header.len() + end - at);
        piece.extend_from_slice(header);
        piece.extend_from_slice(&data[at..end]);
        let total = u16::try_from(piece.len()).map_err(|_| Refusal::BadInnerHeader)?;
        piece[0] = 0x40 | u8::try_from(header.len() / 4).map_err(|_| Refusal::BadInnerHeader)?;
        piece[2..4].copy_from_slice(&total.to_be_bytes());
        let frag = offset | if more { IP_MF } else { 0 };
        piece[6..8].copy_from_slice(&frag.to_be_bytes());
        piece[10..12].fill(0);
        let check = csum::checksum(&piece[..header.len()]);
        piece[10..12].copy_from_slice(&check.to_be_bytes());
        pieces.push(piece);
        at = end;
    }
    Ok(pieces)
}

/// The header of a later fragment: the fixed 20 bytes and the options with the copy flag,
/// padded to a multiple of 4 with end-of-list.
fn copied_options(header: &[u8]) -> Vec<u8> {
    let mut out = header[..20].to_vec();
    let options = &header[20..];
    let mut i = 0;
    while i < options.len() {
        let kind = options[i];
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let len = options.get(i + 1).map_or(0, |l| usize::from(*l));
                if len < 2 || i + len > options.len() {
                    break;
                }
                if kind & 0x80 != 0 {
                    out.extend_from_slice(&options[i..i + len]);
                }
                i += len;
            }
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

/// The Ethernet frame that, sent out of the hidden peer, arrives on the tunnel interface.
#[must_use]
pub fn frame(tunnel: &TunnelSpec, inner: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + inner.len());
    frame.extend_from_slice(&tunnel.tunnel_mac());
    frame.extend_from_slice(&tunnel.peer_mac());
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(inner);
    frame
}

impl Datapath {
    /// Reassembled datagrams delivered and refused so far.
    #[must_use]
    pub fn reassembled(&self) -> ReassembledCounters {
        self.counters().clone()
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, ReassembledCounters> {
        self.reassembled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A raw GRE socket in the calling thread's namespace: it gets every GRE datagram delivered
/// locally, after reassembly and the XFRM inbound policy check.
fn gre_socket() -> Result<AsyncFd<Socket>> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(IPPROTO_GRE))),
    )
    .context("opening a raw GRE socket")?;
    socket.set_nonblocking(true)?;
    // Bursts of large datagrams (a DC sending a file of them): room for a few hundred.
    let _ = socket.set_recv_buffer_size(4 << 20);
    // SAFETY: a `Socket` keeps its descriptor open and unchanged until dropped, and the
    // AsyncFd owns it from here on.
    unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the raw GRE socket: {e}"))
}

/// Receives reassembled GRE datagrams and delivers their inner packets, until aborted.
/// Fails at once if the raw socket cannot be opened.
pub fn deliver(datapath: Arc<Datapath>) -> Result<Task> {
    let socket = gre_socket()?;
    let tunnels = datapath.spec().tunnels.clone();
    let endpoints: Vec<Endpoint> = tunnels.iter().map(Endpoint::from).collect();
    let mut senders = Vec::new();
    for t in &tunnels {
        senders.push((
            t.id,
            FrameSender::new(datapath.devices(t.id)?.peer_ifindex)?,
        ));
    }
    info!("delivering reassembled outer GRE fragments");
    Ok(Task::spawn("reassembled-gre", async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let n = match recv(&socket, &mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    warn!("raw GRE socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let outcome = judge(&buf[..n], &endpoints).and_then(|d| {
                let tunnel = tunnels.iter().find(|t| t.id == d.id);
                let sender = senders.iter().find(|(id, _)| *id == d.id);
                let (Some(t), Some((_, s))) = (tunnel, sender) else {
                    return Err(Refusal::UnknownTunnel);
                };
                // The tunnel MTU now: it follows the path.
                let mtu = datapath.lock().tunnel(t.id).map_or(t.mtu, |e| e.mtu);
                for piece in fragment(&d.inner, mtu)? {
                    s.send(&frame(t, &piece)).map_err(|e| {
                        debug!("delivering a reassembled datagram: {e:#}");
                        Refusal::SendFailed
                    })?;
                }
                Ok(d.inner.len())
            });
            let mut counters = datapath.counters();
            match outcome {
                Ok(bytes) => {
                    counters.delivered_packets += 1;
                    counters.delivered_bytes += u64::try_from(bytes).unwrap_or(u64::MAX);
                }
                Err(why) => {
                    debug!(reason = why.name(), "reassembled GRE datagram refused");
                    counters.refuse(why);
                }
            }
        }
    }))
}

async fn recv(socket: &AsyncFd<Socket>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = socket.readable().await?;
        // SAFETY: `recv` only writes initialised bytes into the buffer; viewing the
        // initialised `u8` buffer as `MaybeUninit<u8>` is sound.
        let uninit = unsafe {
            std::slice::from_raw_parts_mut(
                buf.as_mut_ptr().cast::<std::mem::MaybeUninit<u8>>(),
                buf.len(),
            )
        };
        if let Ok(result) = guard.try_io(|s| s.get_ref().recv(uninit)) {
            return result;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{Delivery, Endpoint, Refusal, fragment, judge};

    const DC_GRE: [u8; 4] = [192, 0, 2, 11];
    const CPE_GRE: [u8; 4] = [203, 0, 113, 10];

    fn endpoints() -> Vec<Endpoint> {
        vec![Endpoint {
            id: 0,
            local_gre: Ipv4Addr::from(CPE_GRE),
            remote_gre: Ipv4Addr::from(DC_GRE),
            dc_tunnel_ip: Ipv4Addr::new(100, 64, 10, 1),
            cisco_prefix: "198.18.7.0/24".parse().unwrap(),
        }]
    }

    fn inner(src: [u8; 4], tos: u8, proto: u8, len: usize) -> Vec<u8> {
        let mut ip = vec![0u8; len];
        ip[..20].copy_from_slice(&[
            0x45, tos, 0, 0, 0, 7, 0, 0, 63, proto, 0, 0, src[0], src[1], src[2], src[3], 10, 1, 0,
            10,
        ]);
        ip[2..4].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        let check = vc_common::csum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&check.to_be_bytes());
        ip
    }

    fn datagram(src: [u8; 4], tos: u8, proto: u16, payload: &[u8]) -> Vec<u8> {
        let total = 24 + payload.len();
        let mut d = vec![0x45, tos, 0, 0, 0, 9, 0, 0, 64, 47, 0, 0];
        d[2..4].copy_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
        d.extend_from_slice(&src);
        d.extend_from_slice(&CPE_GRE);
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&proto.to_be_bytes());
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn a_datagram_from_the_dc_delivers_its_inner_packet() {
        let packet = inner([198, 18, 7, 10], 0xb8, 17, 3000);
        let d = datagram(DC_GRE, 0, 0x0800, &packet);
        assert_eq!(
            judge(&d, &endpoints()),
            Ok(Delivery {
                id: 0,
                inner: packet
            })
        );
        // The DC's tunnel IP may speak too.
        let from_dc = inner([100, 64, 10, 1], 0, 6, 1500);
        assert!(judge(&datagram(DC_GRE, 0, 0x0800, &from_dc), &endpoints()).is_ok());
    }

    #[test]
    fn trailing_bytes_after_the_inner_packet_are_cut() {
        let packet = inner([198, 18, 7, 10], 0, 17, 100);
        let mut padded = packet.clone();
        padded.extend_from_slice(&[0; 6]);
        let d = judge(&datagram(DC_GRE, 0, 0x0800, &padded), &endpoints()).unwrap();
        assert_eq!(d.inner, packet);
    }

    #[test]
    fn ecn_follows_rfc_6040_and_the_checksum_stays_valid() {
        // ECT(0) inside, CE outside: CE inside.
        let packet = inner([198, 18, 7, 10], 0xb8 | 2, 17, 200);
        let d = judge(&datagram(DC_GRE, 3, 0x0800, &packet), &endpoints()).unwrap();
        assert_eq!(d.inner[1], 0xb8 | 3);
        assert_eq!(vc_common::csum::checksum(&d.inner[..20]), 0);
        // CE outside, Not-ECT inside: dropped.
        let not_ect = inner([198, 18, 7, 10], 0, 17, 200);
        assert_eq!(
            judge(&datagram(DC_GRE, 3, 0x0800, &not_ect), &endpoints()),
            Err(Refusal::CeOnNotEct)
        );
    }

    #[test]
    fn what_wan_receive_drops_is_refused() {
        let ok = inner([198, 18, 7, 10], 0, 17, 200);
        let cases = [
            (
                datagram([192, 0, 2, 99], 0, 0x0800, &ok),
                Refusal::UnknownTunnel,
            ),
            (datagram(DC_GRE, 0, 0x86dd, &ok), Refusal::InnerNotIpv4),
            (
                datagram(DC_GRE, 0, 0x0800, &inner([192, 0, 2, 1], 0, 17, 200)),
                Refusal::InnerSourceNotAllowed,
            ),
            (
                datagram(DC_GRE, 0, 0x0800, &inner([198, 18, 7, 10], 0, 47, 200)),
                Refusal::InnerSourceNotAllowed,
            ),
            (
                datagram(DC_GRE, 0, 0x0800, &ok[..100]),
                Refusal::BadInnerHeader,
            ),
            (
                datagram(DC_GRE, 0, 0x0800, &ok[..10]),
                Refusal::BadInnerHeader,
            ),
            (ok.clone(), Refusal::Malformed),
        ];
        for (d, why) in cases {
            assert_eq!(judge(&d, &endpoints()), Err(why));
        }
        let mut keyed = datagram(DC_GRE, 0, 0x0800, &ok);
        keyed[20] = 0x20;
        assert_eq!(judge(&keyed, &endpoints()), Err(Refusal::GreUnsupported));
    }

    #[test]
    fn larger_than_the_tunnel_mtu_is_cut_as_a_router_would() {
        let packet = inner([198, 18, 7, 10], 0, 17, 3028);
        let pieces = fragment(&packet, 1400).unwrap();
        assert_eq!(pieces.len(), 3);
        let mut data = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            assert!(p.len() <= 1400);
            assert_eq!(vc_common::csum::checksum(&p[..20]), 0);
            let flags = u16::from_be_bytes([p[6], p[7]]);
            assert_eq!(usize::from(flags & 0x1fff) * 8, data.len(), "piece {i}");
            assert_eq!(flags & 0x2000 != 0, i < 2, "MF of piece {i}");
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            assert_eq!(p[4..6], packet[4..6], "same ID");
            data.extend_from_slice(&p[20..]);
        }
        assert_eq!(data, packet[20..]);
        assert_eq!(fragment(&packet, 3028).unwrap(), vec![packet.clone()]);
        let mut df = packet.clone();
        df[6] = 0x40;
        assert_eq!(fragment(&df, 1400), Err(Refusal::TooBig));
    }

    #[test]
    fn a_fragment_is_cut_further_and_only_copied_options_repeat() {
        // A middle fragment (offset 1000 B, MF) with a copied option (type 0x83, loose source
        // route, 8 bytes) and a not-copied one (record route 0x07, 4 bytes: invalid but
        // skippable).
        let mut packet = vec![0x48, 0, 0, 0, 0, 9, 0x20, 125, 64, 17, 0, 0];
        packet.extend_from_slice(&[198, 18, 7, 10, 10, 1, 0, 10]);
        packet.extend_from_slice(&[0x83, 7, 4, 1, 2, 3, 4, 0x07, 4, 4, 0, 0]);
        packet.extend_from_slice(&[0xaa; 1000]);
        let len = u16::try_from(packet.len()).unwrap();
        packet[2..4].copy_from_slice(&len.to_be_bytes());
        let pieces = fragment(&packet, 600).unwrap();
        assert_eq!(pieces[0][0], 0x48, "the first keeps every option");
        assert_eq!(pieces[0][20..32], packet[20..32]);
        let later = &pieces[1];
        assert_eq!(later[0], 0x47, "20 + 8 bytes of copied option");
        assert_eq!(later[20..27], [0x83, 7, 4, 1, 2, 3, 4]);
        let last = pieces.last().unwrap();
        assert_ne!(
            u16::from_be_bytes([last[6], last[7]]) & 0x2000,
            0,
            "MF stays"
        );
        let first_offset = u16::from_be_bytes([later[6], later[7]]) & 0x1fff;
        assert_eq!(usize::from(first_offset - 125) * 8, pieces[0].len() - 32);
    }

    #[test]
    fn refusal_names_are_unique() {
        for (i, a) in Refusal::ALL.iter().enumerate() {
            for b in &Refusal::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}
