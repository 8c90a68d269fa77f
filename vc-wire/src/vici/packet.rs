//! VICI transport and packet layers (strongSwan's vici `README.md`).
//!
//! ```text
//! transport:  len(u32 BE, ≤ 512 KiB) | packet[len]
//! packet:     type(u8) | [name-len(u8) name]     | [message]
//!             0 CMD_REQUEST        named            message
//!             1 CMD_RESPONSE                        message
//!             2 CMD_UNKNOWN
//!             3 EVENT_REGISTER     named
//!             4 EVENT_UNREGISTER   named
//!             5 EVENT_CONFIRM
//!             6 EVENT_UNKNOWN
//!             7 EVENT              named            message
//! ```
//!
//! There are no sequence numbers: one command at a time per connection, with events (of
//! streamed commands, or registered ones) arriving before its response.
use super::message::{DecodeError, EncodeError, Message, Reader};

/// charon refuses segments above this (`VICI_MESSAGE_SIZE_MAX`); so do we.
pub const MAX_SEGMENT: usize = 512 * 1024;

const CMD_REQUEST: u8 = 0;
const CMD_RESPONSE: u8 = 1;
const CMD_UNKNOWN: u8 = 2;
const EVENT_REGISTER: u8 = 3;
const EVENT_UNREGISTER: u8 = 4;
const EVENT_CONFIRM: u8 = 5;
const EVENT_UNKNOWN: u8 = 6;
const EVENT: u8 = 7;

/// One packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    CmdRequest { command: String, message: Message },
    CmdResponse(Message),
    CmdUnknown,
    EventRegister(String),
    EventUnregister(String),
    EventConfirm,
    EventUnknown,
    Event { event: String, message: Message },
}

/// Why bytes are not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type {0}")]
    UnknownType(u8),
    #[error("{0} packet with a body")]
    TrailingBytes(&'static str),
    #[error("segment of {0} bytes exceeds the 512 KiB limit")]
    TooLarge(usize),
    #[error(transparent)]
    Message(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl Packet {
    /// The packet as one transport segment: length prefix included.
    pub fn encode(&self) -> Result<Vec<u8>, PacketError> {
        let mut out = vec![0; 4];
        let named = |out: &mut Vec<u8>, kind: u8, name: &str| -> Result<(), PacketError> {
            out.push(kind);
            let len =
                u8::try_from(name.len()).map_err(|_| EncodeError::NameTooLong(name.into()))?;
            out.push(len);
            out.extend_from_slice(name.as_bytes());
            Ok(())
        };
        match self {
            Packet::CmdRequest { command, message } => {
                named(&mut out, CMD_REQUEST, command)?;
                message.encode(&mut out)?;
            }
            Packet::CmdResponse(message) => {
                out.push(CMD_RESPONSE);
                message.encode(&mut out)?;
            }
            Packet::CmdUnknown => out.push(CMD_UNKNOWN),
            Packet::EventRegister(name) => named(&mut out, EVENT_REGISTER, name)?,
            Packet::EventUnregister(name) => named(&mut out, EVENT_UNREGISTER, name)?,
            Packet::EventConfirm => out.push(EVENT_CONFIRM),
            Packet::EventUnknown => out.push(EVENT_UNKNOWN),
            Packet::Event { event, message } => {
                named(&mut out, EVENT, event)?;
                message.encode(&mut out)?;
            }
        }
        let len = out.len() - 4;
        if len > MAX_SEGMENT {
            return Err(PacketError::TooLarge(len));
        }
        let len = u32::try_from(len).map_err(|_| PacketError::TooLarge(len))?;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    /// Decodes one packet (a segment without its length prefix).
    pub fn decode(segment: &[u8]) -> Result<Packet, PacketError> {
        let (&kind, rest) = segment.split_first().ok_or(PacketError::Empty)?;
        let mut r = Reader { buf: rest, at: 0 };
        let bare = |what: &'static str, p: Packet| {
            if rest.is_empty() {
                Ok(p)
            } else {
                Err(PacketError::TrailingBytes(what))
            }
        };
        Ok(match kind {
            CMD_REQUEST => {
                let command = r.name()?;
                let message = Message::decode(&rest[r.at..])?;
                Packet::CmdRequest { command, message }
            }
            CMD_RESPONSE => Packet::CmdResponse(Message::decode(rest)?),
            CMD_UNKNOWN => bare("CMD_UNKNOWN", Packet::CmdUnknown)?,
            EVENT_REGISTER | EVENT_UNREGISTER => {
                let name = r.name()?;
                if r.at != rest.len() {
                    return Err(PacketError::TrailingBytes("EVENT_(UN)REGISTER"));
                }
                if kind == EVENT_REGISTER {
                    Packet::EventRegister(name)
                } else {
                    Packet::EventUnregister(name)
                }
            }
            EVENT_CONFIRM => bare("EVENT_CONFIRM", Packet::EventConfirm)?,
            EVENT_UNKNOWN => bare("EVENT_UNKNOWN", Packet::EventUnknown)?,
            EVENT => {
                let event = r.name()?;
                let message = Message::decode(&rest[r.at..])?;
                Packet::Event { event, message }
            }
            other => return Err(PacketError::UnknownType(other)),
        })
    }
}

/// Splits the first whole segment off a byte stream: `Ok(None)` until it is all there, then
/// the segment and how many bytes it took. A length over the limit is an error at once, so a
/// broken peer cannot make us buffer without bound.
pub fn split_segment(buf: &[u8]) -> Result<Option<(&[u8], usize)>, PacketError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_SEGMENT {
        return Err(PacketError::TooLarge(len));
    }
    Ok(buf.get(4..4 + len).map(|segment| (segment, 4 + len)))
}
