//! TCP-MD5 signatures (RFC 2385, R17) through `setsockopt(TCP_MD5SIG)`. Neither nix nor
//! socket2 wraps it and libc has only the constants, so the kernel's `struct tcp_md5sig` is
//! declared here (include/uapi/linux/tcp.h):
//!
//! ```text
//! struct tcp_md5sig {
//!     struct __kernel_sockaddr_storage tcpm_addr;  // 128: the peer
//!     __u8  tcpm_flags;                            // 0: no prefix, no ifindex
//!     __u8  tcpm_prefixlen;
//!     __u16 tcpm_keylen;                           // 0 deletes the key
//!     int   tcpm_ifindex;
//!     __u8  tcpm_key[TCP_MD5SIG_MAXKEYLEN];        // 80
//! };                                               // 216 octets
//! ```
//!
//! On a listening socket the key applies to connections from that peer; an accepted socket
//! inherits it. The kernel then drops every segment from the peer whose signature is missing
//! or wrong, silently: see [`super::diag`] for how a mismatch is diagnosed.
use std::{io, net::Ipv4Addr, os::fd::AsRawFd};

use super::config::{MD5_MAX_KEY_LEN, Secret};

#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

const _: () = assert!(size_of::<TcpMd5Sig>() == 216);

/// Installs (`Some`) or removes (`None`) the key for `peer` on `socket`.
pub fn set_key(socket: &impl AsRawFd, peer: Ipv4Addr, password: Option<&Secret>) -> io::Result<()> {
    let key = password.map_or(&[][..], |p| p.expose().as_bytes());
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP-MD5 key longer than 80 octets",
        ));
    }
    // SAFETY: all-zero is a valid sockaddr_storage and a valid TcpMd5Sig.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let sin = libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET fits"),
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(peer.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in is smaller than sockaddr_storage, which is meant to hold it.
    unsafe {
        std::ptr::write((&raw mut sig.addr).cast::<libc::sockaddr_in>(), sin);
    }
    sig.key_len = u16::try_from(key.len()).expect("checked ≤ 80");
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: a valid fd, a pointer to a live struct of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast(),
            libc::socklen_t::try_from(size_of::<TcpMd5Sig>()).expect("216 fits"),
        )
    };
    // The stack copy held the key: wipe it.
    zeroize::Zeroize::zeroize(&mut sig.key);
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
