//! Which tunnel carries a destination: the longest DC prefix, falling back to a shorter one
//! while no tunnel of the longer one is up (R20, R21).
use aya_ebpf::maps::lpm_trie::Key;
use vc_common::{DropReason, MAX_TUNNELS, Tunnel};

use crate::maps::{ROUTES, tunnel};

/// Nesting the fallback follows: /32 lookup → the /25 → the /24 → anything shorter.
const MAX_FALLBACKS: usize = 3;

/// `Ok(None)`: not a DC destination. `Ok(Some(id))`: the tunnel. `Err`: a DC destination
/// that no tunnel can carry now.
#[inline(always)]
pub fn select_tunnel(daddr: u32) -> Result<Option<u32>, DropReason> {
    let mut prefix_len = 32;
    let mut matched = false;
    for _ in 0..MAX_FALLBACKS {
        let Some(route) = ROUTES.get(Key::new(prefix_len, daddr)) else {
            break;
        };
        matched = true;
        if let Some(id) = first_up(route.tunnels) {
            return Ok(Some(id));
        }
        if route.prefix_len == 0 {
            break;
        }
        prefix_len = route.prefix_len - 1;
    }
    if matched {
        Err(DropReason::NoUsableTunnel)
    } else {
        Ok(None)
    }
}

/// The lowest-numbered tunnel of the set that is up.
#[inline(always)]
fn first_up(tunnels: u32) -> Option<u32> {
    (0..MAX_TUNNELS).find(|&id| tunnels & (1 << id) != 0 && tunnel(id).is_some_and(Tunnel::is_up))
}
