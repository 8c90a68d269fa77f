//! A DC that fragments GRE before encryption, as a Cisco head end does by default with a
//! DF=0 packet larger than the path: each outer fragment is built here (`IP_HDRINCL`) and
//! encrypted by the DC's XFRM on its own. (Linux fragments the ESP packet instead when it
//! sends through `ip_gre`; the CPE's kernel reassembles that before decryption.)
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, bail};

use super::dc::Dc;
use crate::packet::{IPPROTO_GRE, Ipv4};

/// `<linux/in.h>`; the libc crate lacks it.
const IP_PROTOCOL: libc::c_int = 52;

impl Dc {
    /// Sends each of `packets` (GRE, from its GRE address to the CPE's) in outer fragments of
    /// at most `fragment` bytes (a multiple of 8), outer IDs from `first_id`.
    pub fn send_gre_fragments(
        &self,
        packets: &[Vec<u8>],
        fragment: usize,
        first_id: u16,
    ) -> Result<()> {
        let (src, dst) = (self.plan.gre.octets(), self.cpe.octets());
        let mut fragments = Vec::new();
        for (id, gre) in (first_id..).zip(packets) {
            for (at, piece) in (0..).step_by(fragment).zip(gre.chunks(fragment)) {
                let more = if at + piece.len() < gre.len() {
                    0x2000
                } else {
                    0
                };
                let offset = u16::try_from(at / 8).context("fragment offset")?;
                fragments.push(
                    Ipv4::new(src, dst, IPPROTO_GRE)
                        .id(id)
                        .frag_off(more | offset)
                        .packet(piece),
                );
            }
        }
        self.ns.run_in(move || -> Result<()> {
            let socket = raw_gre_socket(src)?;
            for f in &fragments {
                send_as_gre(&socket, dst, f)?;
            }
            Ok(())
        })?
    }
}

/// A raw GRE socket that takes whole IPv4 packets (`IP_HDRINCL`), bound to `src`: the flow
/// XFRM matches takes its source from the socket, not from the header (unbound, it would be
/// the route's preferred source, outside the GRE-only policy, and the fragment would leave in
/// clear).
fn raw_gre_socket(src: [u8; 4]) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, i32::from(IPPROTO_GRE)) };
    if fd < 0 {
        bail!("raw GRE socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    // SAFETY: an int option of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_HDRINCL,
            (&raw const on).cast(),
            libc::socklen_t::try_from(size_of::<libc::c_int>())?,
        )
    };
    if rc != 0 {
        bail!("IP_HDRINCL: {}", std::io::Error::last_os_error());
    }
    let local = libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET)?,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(src),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a sockaddr_in of the size passed.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const local).cast(),
            libc::socklen_t::try_from(size_of::<libc::sockaddr_in>())?,
        )
    };
    if rc != 0 {
        bail!(
            "binding to the GRE address: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(socket)
}

/// Sends one whole IPv4 packet (`IP_HDRINCL`) with an `IP_PROTOCOL` control message: a
/// header-included raw socket's flow is otherwise `IPPROTO_RAW`, which the DC's GRE-only XFRM
/// policy does not match, and the fragment would leave in clear.
fn send_as_gre(socket: &OwnedFd, dst: [u8; 4], packet: &[u8]) -> Result<()> {
    let mut to = libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET)?,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst),
        },
        sin_zero: [0; 8],
    };
    let mut iov = libc::iovec {
        iov_base: packet.as_ptr().cast_mut().cast(),
        iov_len: packet.len(),
    };
    let protocol = libc::c_int::from(IPPROTO_GRE);
    let int_len = u32::try_from(size_of::<libc::c_int>())?;
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(int_len) };
    let mut control = vec![0u8; usize::try_from(space)?];
    // SAFETY: all-zero is a valid msghdr; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut to).cast();
    msg.msg_namelen = libc::socklen_t::try_from(size_of::<libc::sockaddr_in>())?;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    // SAFETY: CMSG_LEN is a pure computation.
    let cmsg_len = usize::try_from(unsafe { libc::CMSG_LEN(int_len) })?;
    // SAFETY: the control buffer has room for one int-sized message.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::IPPROTO_IP;
        (*cmsg).cmsg_type = IP_PROTOCOL;
        (*cmsg).cmsg_len = cmsg_len;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), protocol);
        libc::sendmsg(socket.as_raw_fd(), &raw const msg, 0)
    };
    if sent < 0 {
        bail!(
            "sending {} bytes: {}",
            packet.len(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
