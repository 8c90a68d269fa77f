//! Step 4's active probe: ICMP echo from our tunnel IP to the DC's, out of the tunnel
//! interface, bounded in time. A raw socket (root, as `vc-agent diagnose` runs on the CPE)
//! rather than the `ping` binary: nothing to install, and errors such as "no route on this
//! device" come back as evidence.
use std::{
    io,
    mem::MaybeUninit,
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vc_common::csum::checksum;

use super::Ping;
use crate::status::{AgentStatus, TunnelId};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const PAYLOAD: &[u8; 16] = b"vc-diagnose-ping";

/// How many echoes and how long to wait: 3 requests 200 ms apart, 1 s for the last answer.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub count: u16,
    pub interval: Duration,
    pub wait: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            count: 3,
            interval: Duration::from_millis(200),
            wait: Duration::from_secs(1),
        }
    }
}

/// Pings every tunnel's DC tunnel IP at once (a thread each).
#[must_use]
pub fn ping_tunnels(status: &AgentStatus) -> Vec<Ping> {
    let probes: Vec<_> = status
        .tunnels
        .iter()
        .map(|t| {
            let e = t.ends.clone();
            std::thread::spawn(move || {
                ping(
                    e.id,
                    &e.interface,
                    e.local_tunnel_ip.addr(),
                    e.dc_tunnel_ip,
                    Schedule::default(),
                )
            })
        })
        .collect();
    probes.into_iter().filter_map(|p| p.join().ok()).collect()
}

/// Pings `to` from `from` out of `device`. Never takes longer than
/// `(count - 1) × interval + wait`.
#[must_use]
pub fn ping(tunnel: TunnelId, device: &str, from: Ipv4Addr, to: Ipv4Addr, s: Schedule) -> Ping {
    let mut result = Ping {
        tunnel,
        from,
        to,
        ran: false,
        sent: 0,
        received: 0,
        rtt_min_us: None,
        error: None,
    };
    let socket = match open(device, from) {
        Ok(socket) => socket,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    result.ran = true;
    // Distinct per process and tunnel: other pings in the namespace are not ours.
    let pid = std::process::id().to_le_bytes();
    let tag = b"abcd"[tunnel.index()];
    let id = u16::from_le_bytes([pid[0] ^ tag, pid[1]]);
    let target = SockAddr::from(SocketAddrV4::new(to, 0));
    let start = Instant::now();
    let mut sent_at = Vec::new();
    let mut replied = vec![false; usize::from(s.count)];
    let deadline = start + s.interval * u32::from(s.count.saturating_sub(1)) + s.wait;
    loop {
        let now = Instant::now();
        let seq = sent_at.len();
        if seq < usize::from(s.count) && now >= start + s.interval * u32::try_from(seq).unwrap_or(0)
        {
            let seq16 = u16::try_from(seq).unwrap_or(u16::MAX);
            match socket.send_to(&echo_request(id, seq16), &target) {
                Ok(_) => result.sent += 1,
                // "Network is unreachable" and the like: the evidence, not a reason to stop.
                Err(e) => result.error = Some(e.to_string()),
            }
            sent_at.push(Instant::now());
            continue;
        }
        if now >= deadline || (sent_at.len() == usize::from(s.count) && replied.iter().all(|r| *r))
        {
            break;
        }
        let next_send = (seq < usize::from(s.count))
            .then(|| start + s.interval * u32::try_from(seq).unwrap_or(0));
        let until = next_send.map_or(deadline, |t| t.min(deadline));
        let timeout = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        let _ = socket.set_read_timeout(Some(timeout));
        let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        // SAFETY: `recv` initialised the first `n` bytes.
        let bytes: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        if let Some(seq) = echo_reply(&bytes, to, id)
            && let Some(at) = sent_at.get(usize::from(seq))
            && !replied[usize::from(seq)]
        {
            replied[usize::from(seq)] = true;
            result.received += 1;
            let rtt = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
            result.rtt_min_us = Some(result.rtt_min_us.map_or(rtt, |m| m.min(rtt)));
        }
    }
    result
}

fn open(device: &str, from: Ipv4Addr) -> Result<Socket, String> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            "needs root (CAP_NET_RAW) to ping".to_string()
        } else {
            format!("ICMP socket: {e}")
        }
    })?;
    socket
        .bind_device(Some(device.as_bytes()))
        .map_err(|e| format!("binding to {device}: {e}"))?;
    socket
        .bind(&SocketAddrV4::new(from, 0).into())
        .map_err(|e| format!("binding to our tunnel IP {from}: {e}"))?;
    Ok(socket)
}

/// An ICMP echo request (the kernel adds the IPv4 header).
#[must_use]
pub fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![ECHO_REQUEST, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The sequence number of an echo reply from `from` with our `id`, in a raw IPv4 packet.
#[must_use]
pub fn echo_reply(packet: &[u8], from: Ipv4Addr, id: u16) -> Option<u16> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.len() < ihl + 8 || packet[9] != 1 || packet[12..16] != from.octets() {
        return None;
    }
    let icmp = &packet[ihl..];
    (icmp[0] == ECHO_REPLY && icmp[4..6] == id.to_be_bytes())
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{checksum, echo_reply, echo_request};

    #[test]
    fn echo_request_checksums_to_zero() {
        let p = echo_request(0x1234, 2);
        assert_eq!(p[0], 8);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 2]);
        assert_eq!(checksum(&p), 0, "a valid checksum sums to zero");
    }

    #[test]
    fn only_our_replies_from_the_dc_count() {
        let dc = Ipv4Addr::new(100, 64, 0, 2);
        let mut reply = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0];
        reply.extend_from_slice(&dc.octets());
        reply.extend_from_slice(&[100, 64, 0, 1]);
        let mut icmp = echo_request(7, 1);
        icmp[0] = 0;
        reply.extend_from_slice(&icmp);
        assert_eq!(echo_reply(&reply, dc, 7), Some(1));
        assert_eq!(echo_reply(&reply, dc, 8), None, "another pinger's");
        assert_eq!(
            echo_reply(&reply, Ipv4Addr::new(100, 64, 0, 6), 7),
            None,
            "another source"
        );
        reply[20] = 8;
        assert_eq!(echo_reply(&reply, dc, 7), None, "a request, not a reply");
        assert_eq!(echo_reply(&reply[..22], dc, 7), None, "truncated");
    }
}
