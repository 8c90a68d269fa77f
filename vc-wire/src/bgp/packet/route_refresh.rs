//! ROUTE-REFRESH (RFC 2918; the subtype octet is RFC 7313's).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subt. | SAFI  |
//! +-------+-------+-------+-------+
//! ```
use super::{DecodeError, Reader};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: u16,
    /// 0 = refresh request (RFC 2918's "reserved"); 1/2 = begin/end of refresh (RFC 7313).
    pub subtype: u8,
    pub safi: u8,
}

impl RouteRefresh {
    /// The header already checked the length (exactly 4 octets of body).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let bad_len =
            || DecodeError::BadMessageLength(u16::try_from(body.len() + 19).unwrap_or(u16::MAX));
        if body.len() != 4 {
            return Err(bad_len());
        }
        let mut r = Reader::new(body);
        let afi = r.u16().ok_or_else(bad_len)?;
        let subtype = r.u8().ok_or_else(bad_len)?;
        let safi = r.u8().ok_or_else(bad_len)?;
        Ok(RouteRefresh { afi, subtype, safi })
    }

    pub(crate) fn encode(self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.afi.to_be_bytes());
        buf.push(self.subtype);
        buf.push(self.safi);
    }
}
