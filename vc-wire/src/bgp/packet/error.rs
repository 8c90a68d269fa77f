//! What can be wrong with a received message, and what RFC 4271 / RFC 7606 say to do about it.
use super::notification::{self, Notification};

/// A message the session cannot accept: it sends the NOTIFICATION of [`DecodeError::notification`]
/// and resets (RFC 4271 §6, and RFC 7606 where an error cannot be confined to its routes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer is shorter than the header says (a framing bug, never sent to the peer as such).
    #[error("message shorter than its header's length")]
    Truncated,
    #[error("marker is not all ones")]
    ConnectionNotSynchronized,
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    #[error("unknown message type {0}")]
    BadMessageType(u8),

    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    #[error("malformed optional parameters: {0}")]
    MalformedOptionalParameters(&'static str),

    #[error("malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    #[error("unrecognized well-known attribute type {code}")]
    UnrecognizedWellKnownAttribute {
        code: u8,
        /// The whole attribute (flags, type, length, value): the NOTIFICATION's data.
        attribute: Vec<u8>,
    },
    #[error("malformed {what}: {why}")]
    OptionalAttributeError {
        what: &'static str,
        why: &'static str,
    },
    #[error("invalid network field: {0}")]
    InvalidNetworkField(&'static str),

    #[error("malformed NOTIFICATION")]
    MalformedNotification,
}

impl DecodeError {
    /// The NOTIFICATION to answer this error with; `None` when none may be sent (a malformed
    /// NOTIFICATION is never answered with another, RFC 4271 §6.4).
    #[must_use]
    pub fn notification(&self) -> Option<Notification> {
        use notification::{code, header, open, update};
        let (code, subcode, data) = match self {
            DecodeError::Truncated => (code::MESSAGE_HEADER, header::BAD_LENGTH, Vec::new()),
            DecodeError::ConnectionNotSynchronized => {
                (code::MESSAGE_HEADER, header::NOT_SYNCHRONIZED, Vec::new())
            }
            DecodeError::BadMessageLength(len) => (
                code::MESSAGE_HEADER,
                header::BAD_LENGTH,
                len.to_be_bytes().to_vec(),
            ),
            DecodeError::BadMessageType(kind) => {
                (code::MESSAGE_HEADER, header::BAD_TYPE, vec![*kind])
            }
            // Data: the largest version we support, two octets (RFC 4271 §6.2).
            DecodeError::UnsupportedVersion(_) => (
                code::OPEN,
                open::UNSUPPORTED_VERSION,
                u16::from(super::BGP_VERSION).to_be_bytes().to_vec(),
            ),
            DecodeError::UnsupportedOptionalParameter(_) => {
                (code::OPEN, open::UNSUPPORTED_OPTIONAL_PARAMETER, Vec::new())
            }
            DecodeError::MalformedOptionalParameters(_) => {
                (code::OPEN, open::UNSPECIFIC, Vec::new())
            }
            DecodeError::MalformedAttributeList(_) => {
                (code::UPDATE, update::MALFORMED_ATTRIBUTE_LIST, Vec::new())
            }
            DecodeError::UnrecognizedWellKnownAttribute { attribute, .. } => (
                code::UPDATE,
                update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                attribute.clone(),
            ),
            DecodeError::OptionalAttributeError { .. } => {
                (code::UPDATE, update::OPTIONAL_ATTRIBUTE_ERROR, Vec::new())
            }
            DecodeError::InvalidNetworkField(_) => {
                (code::UPDATE, update::INVALID_NETWORK_FIELD, Vec::new())
            }
            DecodeError::MalformedNotification => return None,
        };
        Some(Notification {
            code,
            subcode,
            data,
        })
    }
}

/// How RFC 7606 confines an attribute error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrAction {
    /// The attribute is dropped; the routes stand (RFC 7606 §2 "attribute discard").
    Discard,
    /// Every route of the message is treated as withdrawn (RFC 7606 §2 "treat-as-withdraw").
    TreatAsWithdraw,
}

/// An attribute error that does not reset the session: what it was and what was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttrFault {
    /// The attribute type code.
    pub code: u8,
    pub action: AttrAction,
    pub why: &'static str,
}

impl std::fmt::Display for AttrFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            AttrAction::Discard => "attribute discarded",
            AttrAction::TreatAsWithdraw => "routes treated as withdrawn",
        };
        write!(
            f,
            "{} (type {}): {} ({action}, RFC 7606)",
            super::attr::attr_name(self.code),
            self.code,
            self.why
        )
    }
}
