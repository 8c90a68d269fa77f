//! BGP-4 messages (RFC 4271) as pure functions over bytes: nothing here does I/O, keeps time
//! or logs. `decode` returns a message or the [`DecodeError`] that names the NOTIFICATION the
//! session must send; errors that RFC 7606 handles without a reset travel inside the decoded
//! [`Update`] as [`AttrFault`]s.
//!
//! Every message starts with the same header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                           Marker (all ones)                   |
//! +                                                               +
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
mod attr;
mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod notification;
mod open;
mod prefix;
mod route_refresh;
mod update;

pub use attr::{
    Aggregator, AsPath, Attrs, MpReach, MpUnreach, Origin, RawAttr, Segment, SegmentKind, attr_type,
};
pub use error::{AttrAction, AttrFault, DecodeError};
pub use notification::{Notification, code_name, subcode_name};
pub use open::{AFI_IPV4, AS_TRANS, Capability, GrFamily, Open, SAFI_UNICAST};
pub use route_refresh::RouteRefresh;
pub use update::Update;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 19;
/// Largest message without the Extended Message capability (RFC 8654), which vc does not
/// advertise.
pub const MAX_LEN: usize = 4096;
/// The one BGP version there is.
pub const BGP_VERSION: u8 = 4;

/// What decoding and encoding depend on besides the bytes: what the session negotiated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cxt {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS numbers in `AS_PATH` and
    /// AGGREGATOR are 4 octets wide.
    pub four_octet_as: bool,
}

/// Message type codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }

    /// Shortest and longest valid length of a whole message of this type (RFC 4271 §4,
    /// RFC 2918 §3).
    const fn length_bounds(self) -> (usize, usize) {
        match self {
            Self::Open => (29, MAX_LEN),
            Self::Update => (23, MAX_LEN),
            Self::Notification => (21, MAX_LEN),
            Self::Keepalive => (19, 19),
            Self::RouteRefresh => (23, 23),
        }
    }
}

/// A validated message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Length of the whole message, header included.
    pub len: usize,
    pub kind: MessageType,
}

impl Header {
    /// Checks the marker, the length (for the type) and the type (RFC 4271 §6.1).
    pub fn decode(buf: &[u8; HEADER_LEN]) -> Result<Self, DecodeError> {
        if buf[..16].iter().any(|&b| b != 0xff) {
            return Err(DecodeError::ConnectionNotSynchronized);
        }
        let raw_len = u16::from_be_bytes([buf[16], buf[17]]);
        let len = usize::from(raw_len);
        if !(HEADER_LEN..=MAX_LEN).contains(&len) {
            return Err(DecodeError::BadMessageLength(raw_len));
        }
        let kind = MessageType::from_u8(buf[18]).ok_or(DecodeError::BadMessageType(buf[18]))?;
        let (min, max) = kind.length_bounds();
        if !(min..=max).contains(&len) {
            return Err(DecodeError::BadMessageLength(raw_len));
        }
        Ok(Header { len, kind })
    }
}

/// A BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a few messages a second, each moved once or twice: boxing buys nothing"
)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// Decodes one whole message (header included). Trailing bytes beyond the header's length
    /// are an error: framing is the caller's job ([`Header::decode`]).
    pub fn decode(buf: &[u8], cxt: Cxt) -> Result<Self, DecodeError> {
        let header: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::Truncated)?;
        let header = Header::decode(header)?;
        if buf.len() != header.len {
            return Err(DecodeError::Truncated);
        }
        let body = &buf[HEADER_LEN..];
        Ok(match header.kind {
            MessageType::Open => Message::Open(Open::decode(body)?),
            MessageType::Update => Message::Update(Update::decode(body, cxt)?),
            MessageType::Notification => Message::Notification(Notification::decode(body)?),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => Message::RouteRefresh(RouteRefresh::decode(body)?),
        })
    }

    /// Encodes the whole message, header included.
    #[must_use]
    pub fn encode(&self, cxt: Cxt) -> Vec<u8> {
        let mut buf = vec![0xff; 16];
        buf.extend_from_slice(&[0, 0, self.kind() as u8]);
        match self {
            Message::Open(open) => open.encode(&mut buf),
            Message::Update(update) => update.encode(&mut buf, cxt),
            Message::Notification(notification) => notification.encode(&mut buf),
            Message::Keepalive => {}
            Message::RouteRefresh(refresh) => refresh.encode(&mut buf),
        }
        // Our messages are a few dozen octets: OPEN with five capabilities, one default route.
        let len = u16::try_from(buf.len()).expect("a BGP message fits 4096 octets");
        buf[16..18].copy_from_slice(&len.to_be_bytes());
        buf
    }

    #[must_use]
    pub const fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// A cursor over a message body: every read is bounds-checked and says what was cut short.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) const fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) const fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf;
        self.buf = &[];
        rest
    }
}

/// Writes a 2-octet length placeholder, returning where to patch it.
pub(crate) fn length_placeholder(buf: &mut Vec<u8>) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    at
}

/// Patches a placeholder with the number of octets written after it.
pub(crate) fn patch_length(buf: &mut [u8], at: usize) {
    let len = u16::try_from(buf.len() - at - 2).expect("a field of a BGP message fits u16");
    buf[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests;
