//! Where a program sits: the first half of a verdict counter's index.

crate::labelled_enum! {
    /// Where a program sits (see `datapath.md`). Selects a block of [`crate::REASON_SLOTS`]
    /// counters.
    pub enum Hook {
        /// TC ingress of a tunnel's hidden peer (`vc-dcNp`): what the kernel routed into the
        /// tunnel.
        TunnelTx = 0 => "tunnel_tx",
        /// TC ingress of the LAN device: the optional fast path.
        LanRx = 1 => "lan_rx",
        /// TC ingress of the WAN device: GRE from the DCs (after XFRM decrypted it).
        WanRx = 2 => "wan_rx",
        /// TC egress of the WAN device, after XFRM: the fail-closed guard.
        WanTxGuard = 3 => "wan_tx_guard",
        /// XDP of the LAN device, GRE-only mode: encapsulation of the plain common case.
        XdpLanRx = 4 => "xdp_lan_rx",
        /// XDP of the WAN device, GRE-only mode: decapsulation of the plain common case.
        XdpWanRx = 5 => "xdp_wan_rx",
    }
}

#[cfg(test)]
mod tests {
    use super::Hook;

    #[test]
    fn every_hook_round_trips() {
        for hook in Hook::ALL {
            assert_eq!(Hook::from_u32(hook as u32), Some(hook), "{hook:?}");
        }
        assert_eq!(Hook::ALL.len(), 6);
        assert_eq!(Hook::from_u32(6), None);
    }
}
