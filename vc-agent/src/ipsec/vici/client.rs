//! A VICI connection over charon's Unix socket (tokio).
//!
//! Commands run one at a time per connection (the protocol has no sequence numbers). Use one
//! connection for commands and another, after [`Client::register`], for the events the agent
//! follows: [`Client::next_event`] then only reads.
use std::path::Path;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
};

use super::{
    message::Message,
    packet::{MAX_SEGMENT, Packet, PacketError},
};

/// What can go wrong talking to charon.
#[derive(Debug, thiserror::Error)]
pub enum ViciError {
    #[error("VICI socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("VICI I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("VICI protocol: {0}")]
    Packet(#[from] PacketError),
    #[error("charon does not know the command {0:?}")]
    UnknownCommand(String),
    #[error("charon does not know the event {0:?}")]
    UnknownEvent(String),
    #[error("{command}: {errmsg}")]
    Failed { command: String, errmsg: String },
    #[error("unexpected VICI packet while waiting for {0}")]
    Unexpected(&'static str),
}

/// One VICI connection.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the socket at `path` (e.g. `/run/charon.vici`).
    pub async fn connect(path: &Path) -> Result<Client, ViciError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ViciError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Client { stream })
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), ViciError> {
        let bytes = packet.encode()?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<Packet, ViciError> {
        let len = self.stream.read_u32().await? as usize;
        if len > MAX_SEGMENT {
            return Err(PacketError::TooLarge(len).into());
        }
        let mut segment = vec![0; len];
        self.stream.read_exact(&mut segment).await?;
        Ok(Packet::decode(&segment)?)
    }

    /// Sends a command and returns charon's response as it is (`success` not checked; some
    /// commands have none). Events arriving meanwhile are dropped: use [`Client::streamed`].
    pub async fn request(&mut self, command: &str, message: Message) -> Result<Message, ViciError> {
        self.streamed(command, None, message, |_| {}).await
    }

    /// Like [`Client::request`], but a response with `success = no` is an error carrying
    /// charon's `errmsg`.
    pub async fn call(&mut self, command: &str, message: Message) -> Result<Message, ViciError> {
        let response = self.request(command, message).await?;
        check(command, response)
    }

    /// Runs a streamed command (`list-sas`, `initiate`, ...): registers for `event`, hands
    /// every such event to `on_event` until the response comes, then unregisters.
    pub async fn streamed(
        &mut self,
        command: &str,
        event: Option<&str>,
        message: Message,
        mut on_event: impl FnMut(Message),
    ) -> Result<Message, ViciError> {
        if let Some(event) = event {
            self.register(event).await?;
        }
        self.send(&Packet::CmdRequest {
            command: command.into(),
            message,
        })
        .await?;
        let response = loop {
            match self.receive().await? {
                Packet::CmdResponse(m) => break Ok(m),
                Packet::CmdUnknown => break Err(ViciError::UnknownCommand(command.into())),
                Packet::Event { event: e, message } if Some(e.as_str()) == event => {
                    on_event(message);
                }
                Packet::Event { .. } => {}
                _ => break Err(ViciError::Unexpected("a command response")),
            }
        };
        if let Some(event) = event {
            self.unregister(event).await?;
        }
        response
    }

    /// Registers for an event (e.g. `ike-updown`).
    pub async fn register(&mut self, event: &str) -> Result<(), ViciError> {
        self.send(&Packet::EventRegister(event.into())).await?;
        self.confirm(event).await
    }

    /// Unregisters from an event.
    pub async fn unregister(&mut self, event: &str) -> Result<(), ViciError> {
        self.send(&Packet::EventUnregister(event.into())).await?;
        self.confirm(event).await
    }

    async fn confirm(&mut self, event: &str) -> Result<(), ViciError> {
        loop {
            match self.receive().await? {
                Packet::EventConfirm => return Ok(()),
                Packet::EventUnknown => return Err(ViciError::UnknownEvent(event.into())),
                // Events already registered may arrive before the confirmation.
                Packet::Event { .. } => {}
                _ => return Err(ViciError::Unexpected("an event confirmation")),
            }
        }
    }

    /// The next event on a connection that only listens.
    pub async fn next_event(&mut self) -> Result<(String, Message), ViciError> {
        match self.receive().await? {
            Packet::Event { event, message } => Ok((event, message)),
            _ => Err(ViciError::Unexpected("an event")),
        }
    }

    /// `version`: daemon name and version, e.g. `charon` / `5.9.8`.
    pub async fn version(&mut self) -> Result<Message, ViciError> {
        self.request("version", Message::new()).await
    }
}

/// Turns `success = no` into [`ViciError::Failed`].
pub fn check(command: &str, response: Message) -> Result<Message, ViciError> {
    match response.str("success") {
        Some("no") => Err(ViciError::Failed {
            command: command.into(),
            errmsg: response.str("errmsg").unwrap_or("failed").into(),
        }),
        _ => Ok(response),
    }
}
