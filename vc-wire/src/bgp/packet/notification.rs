//! NOTIFICATION (RFC 4271 §4.5), with the names of every code and subcode an operator may
//! meet (RFC 4271, 4486, 6608, 7313, 8203/9003).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
use std::fmt;

use super::{DecodeError, Reader};

/// Error codes.
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Subcodes of Message Header Error.
pub mod header {
    pub const NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_LENGTH: u8 = 2;
    pub const BAD_TYPE: u8 = 3;
}

/// Subcodes of OPEN Message Error.
pub mod open {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Subcodes of UPDATE Message Error.
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
}

/// Subcodes of Finite State Machine Error (RFC 6608).
pub mod fsm {
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Subcodes of Cease (RFC 4486).
pub mod cease {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
}

/// A NOTIFICATION: the session closes after sending or receiving one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    #[must_use]
    pub fn new(code: u8, subcode: u8) -> Self {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_data(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let code = r.u8().ok_or(DecodeError::MalformedNotification)?;
        let subcode = r.u8().ok_or(DecodeError::MalformedNotification)?;
        Ok(Notification {
            code,
            subcode,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(self.code);
        buf.push(self.subcode);
        buf.extend_from_slice(&self.data);
    }

    /// "code/subcode Code name / Subcode name", e.g. `2/2 OPEN Message Error / Bad Peer AS`.
    #[must_use]
    pub fn name(&self) -> String {
        format!(
            "{}/{} {} / {}",
            self.code,
            self.subcode,
            code_name(self.code),
            subcode_name(self.code, self.subcode)
        )
    }

    /// The shutdown communication of a Cease 2 or 4 (RFC 9003), when it carries one.
    #[must_use]
    pub fn shutdown_message(&self) -> Option<String> {
        let carries = self.code == code::CEASE
            && matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            );
        let (&len, text) = self.data.split_first()?;
        let text = text.get(..usize::from(len))?;
        (carries && len > 0).then(|| String::from_utf8_lossy(text).into_owned())
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(msg) = self.shutdown_message() {
            write!(f, " \"{}\"", msg.escape_debug())?;
        } else if !self.data.is_empty() {
            f.write_str(" data ")?;
            for b in &self.data {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// The name of an error code.
#[must_use]
pub const fn code_name(code: u8) -> &'static str {
    match code {
        code::MESSAGE_HEADER => "Message Header Error",
        code::OPEN => "OPEN Message Error",
        code::UPDATE => "UPDATE Message Error",
        code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
        code::FSM => "Finite State Machine Error",
        code::CEASE => "Cease",
        code::ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
        _ => "unknown error code",
    }
}

/// The name of a subcode of `code`.
#[must_use]
pub const fn subcode_name(code: u8, subcode: u8) -> &'static str {
    match (code, subcode) {
        (_, 0) => "Unspecific",
        (code::MESSAGE_HEADER, 1) => "Connection Not Synchronized",
        (code::MESSAGE_HEADER, 2) => "Bad Message Length",
        (code::MESSAGE_HEADER, 3) => "Bad Message Type",
        (code::OPEN, 1) => "Unsupported Version Number",
        (code::OPEN, 2) => "Bad Peer AS",
        (code::OPEN, 3) => "Bad BGP Identifier",
        (code::OPEN, 4) => "Unsupported Optional Parameter",
        (code::OPEN, 6) => "Unacceptable Hold Time",
        (code::OPEN, 7) => "Unsupported Capability",
        (code::OPEN, 11) => "Role Mismatch",
        (code::UPDATE, 1) => "Malformed Attribute List",
        (code::UPDATE, 2) => "Unrecognized Well-known Attribute",
        (code::UPDATE, 3) => "Missing Well-known Attribute",
        (code::UPDATE, 4) => "Attribute Flags Error",
        (code::UPDATE, 5) => "Attribute Length Error",
        (code::UPDATE, 6) => "Invalid ORIGIN Attribute",
        (code::UPDATE, 8) => "Invalid NEXT_HOP Attribute",
        (code::UPDATE, 9) => "Optional Attribute Error",
        (code::UPDATE, 10) => "Invalid Network Field",
        (code::UPDATE, 11) => "Malformed AS_PATH",
        (code::FSM, 1) => "Receive Unexpected Message in OpenSent State",
        (code::FSM, 2) => "Receive Unexpected Message in OpenConfirm State",
        (code::FSM, 3) => "Receive Unexpected Message in Established State",
        (code::CEASE, 1) => "Maximum Number of Prefixes Reached",
        (code::CEASE, 2) => "Administrative Shutdown",
        (code::CEASE, 3) => "Peer De-configured",
        (code::CEASE, 4) => "Administrative Reset",
        (code::CEASE, 5) => "Connection Rejected",
        (code::CEASE, 6) => "Other Configuration Change",
        (code::CEASE, 7) => "Connection Collision Resolution",
        (code::CEASE, 8) => "Out of Resources",
        (code::CEASE, 9) => "Hard Reset",
        (code::CEASE, 10) => "BFD Down",
        (code::ROUTE_REFRESH, 1) => "Invalid Message Length",
        _ => "unknown subcode",
    }
}
