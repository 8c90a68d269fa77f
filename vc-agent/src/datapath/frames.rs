//! Sends whole Ethernet frames out of one device through an `AF_PACKET` socket. Sent out of a
//! tunnel interface (a keepalive), a frame takes the path of any packet the kernel routed
//! there (tunnel transmit, XFRM); sent out of its hidden peer (a reassembled datagram's inner
//! packet), it arrives on the tunnel interface as if received from the DC.
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{Context, Result};

pub struct FrameSender {
    socket: OwnedFd,
    ifindex: u32,
}

impl FrameSender {
    /// A sender out of the interface with index `ifindex` (in the calling thread's namespace).
    pub fn new(ifindex: u32) -> Result<Self> {
        // Protocol 0: this socket only sends and receives nothing.
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("opening an AF_PACKET socket");
        }
        // SAFETY: `fd` is a socket we own.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(FrameSender { socket, ifindex })
    }

    /// Sends one complete Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = u16::try_from(libc::AF_PACKET).expect("AF_PACKET fits sa_family_t");
        addr.sll_ifindex = self.ifindex.cast_signed();
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` and `addr` are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>())
                    .expect("sockaddr_ll fits socklen_t"),
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error()).context("sending a frame");
        }
        Ok(())
    }
}
