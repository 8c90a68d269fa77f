//! Cisco-format GRE keepalives sent by a DC, as Cisco's head ends do by default (R13): Linux
//! `ip_gre` sends none, so a thread in the DC's namespace does, on a raw GRE socket, and
//! counts the ones that come back. Written from Cisco's format, independently of vc's own
//! keepalive code.
//!
//! A keepalive is a GRE packet whose payload is the packet the far end is to send back: an
//! IPv4 header from the far end to us, protocol GRE, and an empty GRE header (protocol type
//! 0). The far end decapsulates it and routes the inner packet, which comes back to us; there
//! is nothing to answer, only to forward. Over IPsec both directions are GRE between the
//! transport IPs, so XFRM encrypts them like any other GRE.
use std::{
    mem::size_of,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::{netns::NetNs, packet::checksum};

const IPPROTO_GRE: i32 = 47;

/// The keepalive `local` sends to `remote`: GRE (protocol IPv4) carrying IPv4 `remote` →
/// `local`, protocol GRE, TTL 255, with an empty GRE header of protocol type 0.
#[must_use]
pub fn cisco_keepalive(local: Ipv4Addr, remote: Ipv4Addr) -> Vec<u8> {
    let mut inner = vec![0x45, 0, 0, 24, 0, 0, 0, 0, 255, 47, 0, 0];
    inner.extend_from_slice(&remote.octets());
    inner.extend_from_slice(&local.octets());
    let sum = checksum(&inner);
    inner[10..12].copy_from_slice(&sum.to_be_bytes());
    inner.extend_from_slice(&[0, 0, 0, 0]);
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&inner);
    gre
}

/// Whether `packet` (an IPv4 packet as a raw socket reads it) is the return of one of our
/// keepalives: GRE from `remote` with protocol type 0.
fn is_returned_keepalive(packet: &[u8], remote: Ipv4Addr) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let hlen = usize::from(first & 0x0f) * 4;
    packet.len() >= hlen + 4
        && packet[9] == 47
        && packet[12..16] == remote.octets()
        && packet[hlen + 2..hlen + 4] == [0, 0]
}

/// A DC's keepalive sender, running until dropped.
pub struct DcKeepalives {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl DcKeepalives {
    /// Sends a keepalive from `local` to `remote` every `interval`, in `ns`.
    pub fn start(
        ns: &NetNs,
        local: Ipv4Addr,
        remote: Ipv4Addr,
        interval: Duration,
    ) -> Result<Self> {
        let socket = ns.run_in(move || gre_socket(local))??;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let (flag, s, a) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&answered));
        // The socket belongs to the namespace it was made in: this thread needs no setns.
        let thread = std::thread::spawn(move || {
            let frame = cisco_keepalive(local, remote);
            let mut next = Instant::now();
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    next += interval;
                    if send_to(&socket, &frame, remote).is_ok() {
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Returns after at most the socket's 200 ms timeout.
                if let Some(n) = recv(&socket, &mut buf)
                    && is_returned_keepalive(&buf[..n], remote)
                {
                    a.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(DcKeepalives {
            stop,
            sent,
            answered,
            thread: Some(thread),
        })
    }

    /// Keepalives sent so far.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Keepalives that came back (the CPE reflected them).
    #[must_use]
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for DcKeepalives {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET"),
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).expect("small")
}

/// A raw GRE socket bound to `local` (the kernel writes the IP header, XFRM applies), with a
/// 200 ms receive timeout.
fn gre_socket(local: Ipv4Addr) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            IPPROTO_GRE,
        )
    };
    if fd < 0 {
        bail!("raw GRE socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = sockaddr(local);
    // SAFETY: addr is a valid sockaddr_in of the length given.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const addr).cast(),
            socklen::<libc::sockaddr_in>(),
        )
    };
    if rc != 0 {
        bail!("bind {local}: {}", std::io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: timeout is a valid timeval of the length given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            socklen::<libc::timeval>(),
        )
    };
    if rc != 0 {
        bail!("SO_RCVTIMEO: {}", std::io::Error::last_os_error());
    }
    Ok(socket)
}

/// Sends one GRE payload to `to`; the error if the kernel refused it (while no SA is up,
/// XFRM may).
fn send_to(socket: &OwnedFd, payload: &[u8], to: Ipv4Addr) -> std::io::Result<()> {
    let addr = sockaddr(to);
    // SAFETY: payload and addr are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&raw const addr).cast(),
            socklen::<libc::sockaddr_in>(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One packet (with its IP header), or `None` at the timeout.
fn recv(socket: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    usize::try_from(n).ok()
}

/// Sends one GRE packet (an empty GRE header) from `local` to `remote` in `ns`: what the
/// kernel does with it (encrypt, block) is the point. The error of `sendto`, if any.
pub fn send_gre_once(ns: &NetNs, local: Ipv4Addr, remote: Ipv4Addr) -> Result<()> {
    ns.run_in(move || -> Result<()> {
        let socket = gre_socket(local)?;
        send_to(&socket, &[0u8, 0, 0x08, 0x00], remote)
            .map_err(|e| anyhow::anyhow!("sendto {remote}: {e}"))
    })?
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{cisco_keepalive, is_returned_keepalive};

    #[test]
    fn the_keepalive_carries_the_packet_to_send_back() {
        let (dc, cpe) = (Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(203, 0, 113, 10));
        let k = cisco_keepalive(dc, cpe);
        assert_eq!(k[..4], [0, 0, 0x08, 0x00], "GRE, protocol IPv4");
        assert_eq!(k.len(), 4 + 20 + 4);
        assert_eq!(k[4 + 12..4 + 16], cpe.octets(), "inner source: the far end");
        assert_eq!(k[4 + 16..4 + 20], dc.octets(), "inner destination: us");
        assert_eq!(
            crate::packet::checksum(&k[4..24]),
            0,
            "valid header checksum"
        );
        // What comes back is that inner packet, as the far end forwards it.
        assert!(is_returned_keepalive(&k[4..], cpe));
        assert!(!is_returned_keepalive(&k[4..], dc));
    }
}
