//! The tunnel MTU from the path (R14, the outer half of tunnel path-MTU discovery): what the
//! kernel knows of the path to the DC's IPsec address, less what ESP, NAT-T and GRE add.
//!
//! ```text
//!  | outer IPv4 20 | [UDP 8: NAT-T] | ESP 8 | IV | GRE packet: IPv4 20 + GRE 4 + inner | pad | 2 | ICV |
//!                                             |<------- padded to the cipher's block ------->|
//! ```
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use netlink_packet_route::route::{RouteAttribute, RouteMetric};

use super::devices::{Netlink, route_oif};

const OUTER_IPV4: u32 = 20;
const ESP_HEADER: u32 = 8;
const ESP_TRAILER: u32 = 2;
const NAT_T_UDP: u32 = 8;
const GRE_OVERHEAD: u32 = 24;

/// No tunnel MTU below this, whatever the path says: a broken PMTU report must not shrink the
/// tunnel to nothing. 576 is the datagram every IPv4 host must accept (RFC 791), and the
/// kernel learns no path MTU below 552 (`net.ipv4.route.min_pmtu`). vc carries IPv4 only, so
/// no IPv6 minimum (1280) applies: a floor that high would leave the tunnel larger than a
/// 1300-byte path allows (1222 with AES-GCM), and DF traffic would be lost.
pub const MTU_FLOOR: u16 = 576;

/// The per-packet cost of an ESP transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspOverhead {
    pub iv: u32,
    pub icv: u32,
    /// The payload plus trailer is padded to a multiple of this.
    pub block: u32,
}

impl EspOverhead {
    /// An AEAD transform (AES-GCM, AES-CCM, ChaCha20-Poly1305): an 8-byte IV, the payload
    /// padded to 4.
    const fn aead(icv: u32) -> Self {
        EspOverhead {
            iv: 8,
            icv,
            block: 4,
        }
    }

    /// AES-CBC with an integrity algorithm of `icv` bytes: a 16-byte IV and block.
    const fn cbc(icv: u32) -> Self {
        EspOverhead {
            iv: 16,
            icv,
            block: 16,
        }
    }

    /// AES-CTR with an integrity algorithm of `icv` bytes: an 8-byte IV, padded to 4.
    const fn ctr(icv: u32) -> Self {
        EspOverhead {
            iv: 8,
            icv,
            block: 4,
        }
    }

    /// From a strongSwan ESP proposal (`aes256gcm16-modp2048`, `aes128-sha256`, ...): the
    /// first encryption and integrity algorithms named. Unknown names count as the costliest
    /// common transform (AES-CBC with SHA-512), so the MTU errs low.
    #[must_use]
    pub fn from_proposal(proposal: &str) -> Self {
        let parts: Vec<&str> = proposal.split('-').map(str::trim).collect();
        let aead = parts.iter().find_map(|p| {
            let p = p.to_ascii_lowercase();
            if p.contains("gcm") || p.contains("ccm") {
                let icv = if p.ends_with('8') {
                    8
                } else if p.ends_with("12") {
                    12
                } else {
                    16
                };
                Some(EspOverhead::aead(icv))
            } else if p.starts_with("chacha20poly1305") {
                Some(EspOverhead::aead(16))
            } else {
                None
            }
        });
        if let Some(aead) = aead {
            return aead;
        }
        let ctr = parts
            .iter()
            .any(|p| p.to_ascii_lowercase().ends_with("ctr"));
        let icv = parts
            .iter()
            .find_map(|p| match p.to_ascii_lowercase().as_str() {
                "sha1" | "sha" | "md5" | "aesxcbc" => Some(12),
                "sha256" | "sha2_256" => Some(16),
                "sha384" | "sha2_384" => Some(24),
                "sha512" | "sha2_512" => Some(32),
                _ => None,
            })
            .unwrap_or(32);
        if ctr {
            EspOverhead::ctr(icv)
        } else {
            EspOverhead::cbc(icv)
        }
    }

    /// The transform of an installed child SA, from charon's name for it
    /// (`AES_GCM_16_256`, `AES_CBC_256/HMAC_SHA2_256_128/ECP_384`, `CHACHA20_POLY1305_256`):
    /// `None` for a cipher this does not know, whose overhead is then not guessed.
    #[must_use]
    pub fn of_sa(proposal: &str) -> Option<Self> {
        let mut parts = proposal.split('/');
        let cipher = parts.next()?.to_ascii_uppercase();
        // AEAD: the number after GCM/CCM is the ICV in bytes.
        for aead in ["AES_GCM_", "AES_CCM_"] {
            if let Some(rest) = cipher.strip_prefix(aead) {
                let icv = rest.split('_').next()?.parse().ok()?;
                return Some(EspOverhead::aead(icv));
            }
        }
        if cipher.starts_with("CHACHA20_POLY1305") {
            return Some(EspOverhead::aead(16));
        }
        let with_icv: fn(u32) -> EspOverhead = if cipher.starts_with("AES_CBC") {
            EspOverhead::cbc
        } else if cipher.starts_with("AES_CTR") {
            EspOverhead::ctr
        } else {
            return None;
        };
        // The integrity algorithm's last number is its truncated length in bits
        // (`HMAC_SHA2_256_128`, `HMAC_SHA1_96`, `AES_XCBC_96`).
        let icv_bits: u32 = parts.next()?.rsplit('_').next()?.parse().ok()?;
        Some(with_icv(icv_bits / 8))
    }

    /// The costliest of a tunnel's configured proposals (the most bytes added to a packet
    /// that fills the path), since the DC may pick any of them; the costliest common
    /// transform when there are none, so the MTU errs low.
    #[must_use]
    pub fn costliest(proposals: &[String]) -> Self {
        let room = |esp: &EspOverhead| tunnel_mtu(1500, Some(*esp), false);
        proposals
            .iter()
            .map(|p| EspOverhead::from_proposal(p))
            .min_by_key(room)
            .unwrap_or_else(|| EspOverhead::from_proposal(""))
    }
}

/// What wraps a tunnel's GRE packets on the way to its DC, beyond the outer IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wrapping {
    /// The ESP transform; none in external-IPsec mode.
    pub esp: Option<EspOverhead>,
    /// A NAT on the path: ESP goes in UDP.
    pub nat_t: bool,
}

/// The largest inner packet that fits a path MTU: `esp` none for external-IPsec mode (GRE
/// alone), `nat_t` when a NAT forces UDP encapsulation. Never below [`MTU_FLOOR`].
#[must_use]
pub fn tunnel_mtu(path_mtu: u32, esp: Option<EspOverhead>, nat_t: bool) -> u16 {
    let gre_packet = match esp {
        None => path_mtu.saturating_sub(if nat_t { NAT_T_UDP } else { 0 }),
        Some(esp) => {
            let room = path_mtu.saturating_sub(
                OUTER_IPV4 + ESP_HEADER + esp.iv + esp.icv + if nat_t { NAT_T_UDP } else { 0 },
            );
            (room / esp.block * esp.block).saturating_sub(ESP_TRAILER)
        }
    };
    let inner = gre_packet.saturating_sub(GRE_OVERHEAD);
    u16::try_from(inner).unwrap_or(u16::MAX).max(MTU_FLOOR)
}

/// The path MTU the kernel uses toward `dst`: a learned exception (ICMP fragmentation
/// needed, handled by the kernel for ESP), a route's `mtu` metric, or the outgoing device's.
pub async fn path_mtu(netlink: &Netlink, dst: Ipv4Addr) -> Result<u32> {
    let route = netlink.route_to(dst).await?;
    let metric_mtu = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Metrics(metrics) => metrics.iter().find_map(|m| match m {
            RouteMetric::Mtu(mtu) => Some(*mtu),
            _ => None,
        }),
        _ => None,
    });
    if let Some(mtu) = metric_mtu.filter(|m| *m != 0) {
        return Ok(mtu);
    }
    let oif = route_oif(&route).with_context(|| format!("the route to {dst} has no device"))?;
    netlink.mtu(oif).await
}

#[cfg(test)]
mod tests {
    use super::{EspOverhead, MTU_FLOOR, tunnel_mtu};

    #[test]
    fn overheads_of_installed_sas() {
        let gcm = EspOverhead::from_proposal("aes256gcm16");
        assert_eq!(EspOverhead::of_sa("AES_GCM_16_256"), Some(gcm));
        assert_eq!(EspOverhead::of_sa("AES_GCM_16_256/ECP_384"), Some(gcm));
        assert_eq!(
            EspOverhead::of_sa("AES_GCM_12_128").map(|e| e.icv),
            Some(12)
        );
        assert_eq!(
            EspOverhead::of_sa("AES_CBC_256/HMAC_SHA2_256_128/MODP_2048"),
            Some(EspOverhead::from_proposal("aes256-sha256"))
        );
        assert_eq!(
            EspOverhead::of_sa("AES_CBC_128/HMAC_SHA1_96"),
            Some(EspOverhead::from_proposal("aes128-sha1"))
        );
        assert_eq!(
            EspOverhead::of_sa("AES_CTR_256/HMAC_SHA2_384_192"),
            Some(EspOverhead::from_proposal("aes256ctr-sha384"))
        );
        assert_eq!(
            EspOverhead::of_sa("CHACHA20_POLY1305_256"),
            Some(EspOverhead::from_proposal("chacha20poly1305"))
        );
        assert_eq!(
            EspOverhead::of_sa("CAMELLIA_CBC_256/HMAC_SHA2_256_128"),
            None
        );
        assert_eq!(
            EspOverhead::of_sa("AES_CBC_256"),
            None,
            "no integrity named"
        );
        assert_eq!(EspOverhead::of_sa(""), None);
    }

    #[test]
    fn the_costliest_proposal_decides_until_an_sa_is_up() {
        let list = |p: &[&str]| p.iter().map(ToString::to_string).collect::<Vec<_>>();
        let cbc = EspOverhead::from_proposal("aes256-sha512");
        assert_eq!(
            EspOverhead::costliest(&list(&["aes256gcm16", "aes256-sha512", "aes128-sha1"])),
            cbc
        );
        assert_eq!(
            EspOverhead::costliest(&list(&["aes256gcm16"])),
            EspOverhead::from_proposal("aes256gcm16")
        );
        assert_eq!(EspOverhead::costliest(&[]), EspOverhead::from_proposal(""));
        // 1500 leaves 1422 inside GCM, 1398 inside CBC with SHA-512.
        assert_eq!(tunnel_mtu(1500, Some(cbc), false), 1398);
    }

    #[test]
    fn overheads_of_common_proposals() {
        assert_eq!(
            EspOverhead::from_proposal("aes256gcm16-ecp384"),
            EspOverhead {
                iv: 8,
                icv: 16,
                block: 4
            }
        );
        assert_eq!(
            EspOverhead::from_proposal("aes128gcm12"),
            EspOverhead {
                iv: 8,
                icv: 12,
                block: 4
            }
        );
        assert_eq!(
            EspOverhead::from_proposal("aes256-sha256-modp2048"),
            EspOverhead {
                iv: 16,
                icv: 16,
                block: 16
            }
        );
        assert_eq!(
            EspOverhead::from_proposal("aes128-sha1"),
            EspOverhead {
                iv: 16,
                icv: 12,
                block: 16
            }
        );
        assert_eq!(
            EspOverhead::from_proposal("aes256ctr-sha384"),
            EspOverhead {
                iv: 8,
                icv: 24,
                block: 4
            }
        );
        assert_eq!(
            EspOverhead::from_proposal("chacha20poly1305"),
            EspOverhead {
                iv: 8,
                icv: 16,
                block: 4
            }
        );
        assert_eq!(
            EspOverhead::from_proposal("mystery"),
            EspOverhead {
                iv: 16,
                icv: 32,
                block: 16
            },
            "unknown errs low"
        );
    }

    #[test]
    fn tunnel_mtu_on_a_1500_path() {
        let gcm = EspOverhead::from_proposal("aes256gcm16");
        // 1500 - 20 - 8 - 8 - 16 = 1448, padded to 4: 1448, less the trailer: 1446 of GRE
        // packet, less 24 of GRE: 1422.
        assert_eq!(tunnel_mtu(1500, Some(gcm), false), 1422);
        assert_eq!(tunnel_mtu(1500, Some(gcm), true), 1414, "NAT-T costs 8");
        let cbc = EspOverhead::from_proposal("aes256-sha256");
        // 1500 - 20 - 8 - 16 - 16 = 1440, a multiple of 16; - 2 - 24.
        assert_eq!(tunnel_mtu(1500, Some(cbc), false), 1414);
        assert_eq!(tunnel_mtu(1500, None, false), 1476, "GRE only");
    }

    #[test]
    fn the_floor_holds() {
        assert_eq!(
            tunnel_mtu(576, Some(EspOverhead::from_proposal("aes128gcm16")), false),
            MTU_FLOOR
        );
        assert_eq!(tunnel_mtu(0, None, false), MTU_FLOOR);
    }

    #[test]
    fn every_path_mtu_yields_a_fitting_tunnel_mtu() {
        // Exhaustively: the computed inner size, encapsulated, never exceeds the path.
        for proposal in [
            "aes256gcm16",
            "aes128-sha1",
            "aes256-sha512",
            "aes256ctr-sha256",
        ] {
            let esp = EspOverhead::from_proposal(proposal);
            for path in 1300..=9000 {
                for nat_t in [false, true] {
                    let mtu = u32::from(tunnel_mtu(path, Some(esp), nat_t));
                    if mtu == u32::from(MTU_FLOOR) {
                        continue;
                    }
                    let padded = (mtu + 24 + 2).div_ceil(esp.block) * esp.block;
                    let wire = 20 + u32::from(nat_t) * 8 + 8 + esp.iv + padded + esp.icv;
                    assert!(wire <= path, "{proposal} path {path} nat-t {nat_t}: {wire}");
                    // And one byte more would not fit (the result is the largest).
                    let padded_more = (mtu + 1 + 24 + 2).div_ceil(esp.block) * esp.block;
                    let wire_more = 20 + u32::from(nat_t) * 8 + 8 + esp.iv + padded_more + esp.icv;
                    assert!(
                        wire_more > path,
                        "{proposal} {path}: {mtu} is not the largest"
                    );
                }
            }
        }
    }
}
