//! UPDATE (RFC 4271 §4.3), IPv4 unicast in the classic fields or in `MP_REACH/MP_UNREACH`
//! (RFC 4760), with RFC 7606 error handling.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable): prefixes             |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information: prefixes  |
//! +-----------------------------------------------------+
//! ```
use ipnet::Ipv4Net;

use super::{
    AttrAction, AttrFault, Attrs, Cxt, DecodeError, Reader,
    attr::{MpReach, MpUnreach, attr_type},
    length_placeholder, patch_length,
    prefix::{decode_prefixes, encode_prefixes},
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    /// `None`: the message has no path attributes (a pure withdrawal, or End-of-RIB).
    pub attrs: Option<Attrs>,
    pub nlri: Vec<Ipv4Net>,
    /// Attribute errors confined by RFC 7606; never encoded.
    pub faults: Vec<AttrFault>,
}

impl Update {
    pub fn decode(body: &[u8], cxt: Cxt) -> Result<Self, DecodeError> {
        let list = DecodeError::MalformedAttributeList;
        let mut r = Reader::new(body);
        let withdrawn_len = r.u16().ok_or(list("withdrawn routes length cut short"))?;
        let withdrawn = r
            .take(usize::from(withdrawn_len))
            .ok_or(list("withdrawn routes length exceeds the message"))?;
        let attrs_len = r
            .u16()
            .ok_or(list("total path attribute length cut short"))?;
        let attrs_buf = r
            .take(usize::from(attrs_len))
            .ok_or(list("total path attribute length exceeds the message"))?;
        let nlri = r.rest();

        // RFC 7606 §5.3: a prefix that cannot be parsed leaves the rest unlocatable: reset.
        let withdrawn = decode_prefixes(withdrawn).map_err(DecodeError::InvalidNetworkField)?;
        let nlri = decode_prefixes(nlri).map_err(DecodeError::InvalidNetworkField)?;
        let (attrs, mut faults) = if attrs_buf.is_empty() {
            (None, Vec::new())
        } else {
            let (attrs, faults) = Attrs::decode(attrs_buf, cxt)?;
            (Some(attrs), faults)
        };

        let mp_nlri = attrs.as_ref().is_some_and(
            |a| matches!(&a.mp_reach, Some(MpReach::Ipv4Unicast { nlri, .. }) if !nlri.is_empty()),
        );
        if !nlri.is_empty() || mp_nlri {
            // RFC 7606 §3 d: a missing well-known mandatory attribute withdraws the routes.
            let a = attrs.as_ref();
            let missing = [
                (attr_type::ORIGIN, a.is_some_and(|a| a.origin.is_some())),
                (attr_type::AS_PATH, a.is_some_and(|a| a.as_path.is_some())),
                (
                    attr_type::NEXT_HOP,
                    nlri.is_empty() || a.is_some_and(|a| a.next_hop.is_some()),
                ),
            ];
            for (code, present) in missing {
                // An attribute already faulted is not also reported missing.
                if !present && !faults.iter().any(|f| f.code == code) {
                    faults.push(AttrFault {
                        code,
                        action: AttrAction::TreatAsWithdraw,
                        why: "missing well-known mandatory attribute",
                    });
                }
            }
        }
        Ok(Update {
            withdrawn,
            attrs,
            nlri,
            faults,
        })
    }

    pub(crate) fn encode(&self, buf: &mut Vec<u8>, cxt: Cxt) {
        let at = length_placeholder(buf);
        encode_prefixes(&self.withdrawn, buf);
        patch_length(buf, at);
        let at = length_placeholder(buf);
        if let Some(attrs) = &self.attrs {
            attrs.encode(buf, cxt);
        }
        patch_length(buf, at);
        encode_prefixes(&self.nlri, buf);
    }

    /// The End-of-RIB marker of IPv4 unicast (RFC 4724 §2): an UPDATE with nothing in it, or
    /// only an empty IPv4 unicast `MP_UNREACH_NLRI`.
    #[must_use]
    pub fn is_end_of_rib(&self) -> bool {
        let empty_unreach = Attrs {
            mp_unreach: Some(MpUnreach::Ipv4Unicast {
                withdrawn: Vec::new(),
            }),
            ..Attrs::default()
        };
        self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.attrs.as_ref().is_none_or(|a| *a == empty_unreach)
    }

    /// Some attribute error withdraws every route of the message (RFC 7606 §2).
    #[must_use]
    pub fn treat_as_withdraw(&self) -> bool {
        self.faults
            .iter()
            .any(|f| f.action == AttrAction::TreatAsWithdraw)
    }

    /// IPv4 unicast prefixes announced, classic and `MP_REACH`.
    #[must_use]
    pub fn announced(&self) -> Vec<Ipv4Net> {
        let mut out = self.nlri.clone();
        if let Some(MpReach::Ipv4Unicast { nlri, .. }) =
            self.attrs.as_ref().and_then(|a| a.mp_reach.as_ref())
        {
            out.extend_from_slice(nlri);
        }
        out
    }

    /// IPv4 unicast prefixes withdrawn, classic and `MP_UNREACH`.
    #[must_use]
    pub fn withdrawn_all(&self) -> Vec<Ipv4Net> {
        let mut out = self.withdrawn.clone();
        if let Some(MpUnreach::Ipv4Unicast { withdrawn }) =
            self.attrs.as_ref().and_then(|a| a.mp_unreach.as_ref())
        {
            out.extend_from_slice(withdrawn);
        }
        out
    }
}
