//! OPEN (RFC 4271 §4.2) with capabilities (RFC 5492) in the optional parameters, in either
//! the classic or the extended (RFC 9072) parameter encoding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Optional parameter (type 2 = Capabilities), each holding capabilities:
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Parm. Type   | Parm. Length  | ... | Capability Code | Cap. Length | Cap. Value ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Capabilities vc knows:
//!   1 Multiprotocol   AFI (2) | Reserved (1) | SAFI (1)
//!   2 Route Refresh   (empty)
//!  64 Graceful Rst.   R|N|rsvd|Restart Time (12 bits) | (AFI (2) | SAFI (1) | F|rsvd (1))*
//!  65 4-octet AS      AS number (4)
//! ```
use std::net::Ipv4Addr;

use super::{BGP_VERSION, DecodeError, Reader, length_placeholder};

/// The 2-octet stand-in for a 4-octet AS number (RFC 6793).
pub const AS_TRANS: u16 = 23456;
pub const AFI_IPV4: u16 = 1;
pub const SAFI_UNICAST: u8 = 1;

const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: an Opt Parm Len of 255 followed by this type announces the extended encoding.
const PARAM_EXTENDED: u8 = 255;

mod cap {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// An OPEN message. The version is always 4 (anything else fails to decode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The sender's AS, or [`AS_TRANS`] when it does not fit 2 octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub identifier: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

/// One address family of a Graceful Restart capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrFamily {
    pub afi: u16,
    pub safi: u8,
    /// The sender kept its forwarding state for this family across the restart.
    pub forwarding_preserved: bool,
}

/// A capability (RFC 5492).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760.
    Multiprotocol { afi: u16, safi: u8 },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 4724. Advertised with no families, it says "I support the receiving-speaker
    /// procedures but keep no forwarding state across my own restart".
    GracefulRestart {
        /// The R bit: the sender has restarted.
        restarted: bool,
        /// The N bit (RFC 8538): the sender supports Graceful Restart for NOTIFICATIONs.
        notification: bool,
        /// Seconds the sender expects to need to re-establish (12 bits).
        restart_time: u16,
        families: Vec<GrFamily>,
    },
    /// RFC 6793.
    FourOctetAs(u32),
    /// Anything else, kept as received.
    Unknown { code: u8, value: Vec<u8> },
}

impl Capability {
    fn decode(code: u8, value: &[u8]) -> Result<Self, DecodeError> {
        let malformed = DecodeError::MalformedOptionalParameters;
        let mut r = Reader::new(value);
        let cap = match code {
            cap::MULTIPROTOCOL => {
                if value.len() != 4 {
                    return Err(malformed("multiprotocol capability length is not 4"));
                }
                let afi = r.u16().ok_or(malformed("multiprotocol capability"))?;
                let _reserved = r.u8();
                let safi = r.u8().ok_or(malformed("multiprotocol capability"))?;
                Capability::Multiprotocol { afi, safi }
            }
            cap::ROUTE_REFRESH => {
                if !value.is_empty() {
                    return Err(malformed("route refresh capability has a value"));
                }
                Capability::RouteRefresh
            }
            cap::GRACEFUL_RESTART => {
                if value.len() < 2 || !(value.len() - 2).is_multiple_of(4) {
                    return Err(malformed("graceful restart capability length"));
                }
                let flags_time = r.u16().ok_or(malformed("graceful restart capability"))?;
                let mut families = Vec::new();
                while let Some(family) = r.take(4) {
                    families.push(GrFamily {
                        afi: u16::from_be_bytes([family[0], family[1]]),
                        safi: family[2],
                        forwarding_preserved: family[3] & 0x80 != 0,
                    });
                }
                Capability::GracefulRestart {
                    restarted: flags_time & 0x8000 != 0,
                    notification: flags_time & 0x4000 != 0,
                    restart_time: flags_time & 0x0fff,
                    families,
                }
            }
            cap::FOUR_OCTET_AS => {
                if value.len() != 4 {
                    return Err(malformed("4-octet AS capability length is not 4"));
                }
                Capability::FourOctetAs(r.u32().ok_or(malformed("4-octet AS capability"))?)
            }
            _ => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        };
        Ok(cap)
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        let (code, value): (u8, Vec<u8>) = match self {
            Capability::Multiprotocol { afi, safi } => {
                let [a, b] = afi.to_be_bytes();
                (cap::MULTIPROTOCOL, vec![a, b, 0, *safi])
            }
            Capability::RouteRefresh => (cap::ROUTE_REFRESH, Vec::new()),
            Capability::GracefulRestart {
                restarted,
                notification,
                restart_time,
                families,
            } => {
                let flags = (u16::from(*restarted) << 15) | (u16::from(*notification) << 14);
                let mut value = (flags | (restart_time & 0x0fff)).to_be_bytes().to_vec();
                for f in families {
                    value.extend_from_slice(&f.afi.to_be_bytes());
                    value.push(f.safi);
                    value.push(if f.forwarding_preserved { 0x80 } else { 0 });
                }
                (cap::GRACEFUL_RESTART, value)
            }
            Capability::FourOctetAs(asn) => (cap::FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::Unknown { code, value } => (*code, value.clone()),
        };
        buf.push(code);
        // A capability value longer than 255 octets cannot be expressed; ours are ≤ 6.
        buf.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
        buf.extend_from_slice(&value[..value.len().min(255)]);
    }
}

impl Open {
    /// Decodes an OPEN body. Semantic checks (peer AS, hold time, identifier) belong to the
    /// session's negotiation, which knows the configuration.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let malformed = DecodeError::MalformedOptionalParameters;
        let mut r = Reader::new(body);
        let version = r.u8().ok_or(malformed("OPEN too short"))?;
        if version != BGP_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let my_as = r.u16().ok_or(malformed("OPEN too short"))?;
        let hold_time = r.u16().ok_or(malformed("OPEN too short"))?;
        let identifier = Ipv4Addr::from(r.u32().ok_or(malformed("OPEN too short"))?);
        let params_len = r.u8().ok_or(malformed("OPEN too short"))?;
        let mut params = r.rest();

        // RFC 9072: 255 then a non-existent type 255 switches to 2-octet lengths.
        let extended = params_len == 255 && params.first() == Some(&PARAM_EXTENDED);
        if extended {
            let mut e = Reader::new(&params[1..]);
            let len = e.u16().ok_or(malformed("extended parameters length"))?;
            if usize::from(len) != e.remaining() {
                return Err(malformed(
                    "extended parameters length disagrees with the message",
                ));
            }
            params = e.rest();
        } else if usize::from(params_len) != params.len() {
            return Err(malformed(
                "optional parameters length disagrees with the message",
            ));
        }

        let mut capabilities = Vec::new();
        let mut r = Reader::new(params);
        while !r.is_empty() {
            let kind = r.u8().ok_or(malformed("parameter header"))?;
            let len = if extended {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            }
            .ok_or(malformed("parameter header"))?;
            let value = r
                .take(len)
                .ok_or(malformed("parameter overruns the list"))?;
            if kind != PARAM_CAPABILITIES {
                return Err(DecodeError::UnsupportedOptionalParameter(kind));
            }
            let mut caps = Reader::new(value);
            while !caps.is_empty() {
                let code = caps.u8().ok_or(malformed("capability header"))?;
                let len = caps.u8().ok_or(malformed("capability header"))?;
                let value = caps
                    .take(usize::from(len))
                    .ok_or(malformed("capability overruns its parameter"))?;
                capabilities.push(Capability::decode(code, value)?);
            }
        }
        Ok(Open {
            my_as,
            hold_time,
            identifier,
            capabilities,
        })
    }

    /// Encodes the body: every capability in one Capabilities parameter, as BIRD does.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(BGP_VERSION);
        buf.extend_from_slice(&self.my_as.to_be_bytes());
        buf.extend_from_slice(&self.hold_time.to_be_bytes());
        buf.extend_from_slice(&self.identifier.octets());
        let mut caps = Vec::new();
        for cap in &self.capabilities {
            cap.encode(&mut caps);
        }
        if caps.is_empty() {
            buf.push(0);
        } else if caps.len() + 2 <= 255 {
            buf.push(u8::try_from(caps.len() + 2).expect("checked above"));
            buf.push(PARAM_CAPABILITIES);
            buf.push(u8::try_from(caps.len()).expect("checked above"));
            buf.extend_from_slice(&caps);
        } else {
            // RFC 9072 extended encoding: only reachable with many unknown capabilities.
            buf.push(255);
            buf.push(PARAM_EXTENDED);
            let outer = length_placeholder(buf);
            buf.push(PARAM_CAPABILITIES);
            let inner = length_placeholder(buf);
            buf.extend_from_slice(&caps);
            super::patch_length(buf, inner);
            super::patch_length(buf, outer);
        }
    }

    /// The sender's AS: from the 4-octet AS capability when present, else `my_as`.
    #[must_use]
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    #[must_use]
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The multiprotocol families announced (empty: none announced, IPv4 unicast implied).
    #[must_use]
    pub fn families(&self) -> Vec<(u16, u8)> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
                _ => None,
            })
            .collect()
    }

    #[must_use]
    pub fn has(&self, wanted: fn(&Capability) -> bool) -> bool {
        self.capabilities.iter().any(wanted)
    }
}
