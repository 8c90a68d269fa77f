//! A VICI connection over charon's Unix socket (tokio).
//!
//! Commands run one at a time per connection (the protocol has no sequence numbers). Use one
//! connection for commands and another, after [`Client::register`], for the events the agent
//! follows: [`Client::next_event`] then only reads.
//!
//! Every exchange (connecting, a command and its streamed events, a registration) has a time
//! limit, [`TIMEOUT`] unless set: a charon that is stopped or stuck never answers, and the
//! agent must not wait for it for ever. After a timeout the connection is out of step (a late
//! answer would be taken for the next command's), so it refuses further commands.
use std::{path::Path, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
};
use zeroize::{Zeroize, Zeroizing};

use super::{
    message::{Element, Message},
    packet::{MAX_SEGMENT, Packet, PacketError},
};

/// How long charon may take for one exchange by default.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to charon.
#[derive(Debug, thiserror::Error)]
pub enum ViciError {
    #[error("{what}: charon did not answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("an earlier exchange timed out: this VICI connection is out of step")]
    OutOfStep,
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

impl ViciError {
    /// charon runs but does not answer (as opposed to a connection that failed).
    #[must_use]
    pub fn is_unanswered(&self) -> bool {
        matches!(self, ViciError::Timeout { .. } | ViciError::OutOfStep)
    }
}

/// One VICI connection.
pub struct Client {
    stream: UnixStream,
    timeout: Duration,
    out_of_step: bool,
}

impl Client {
    /// Connects to the socket at `path` (e.g. `/run/charon.vici`), with the [`TIMEOUT`].
    pub async fn connect(path: &Path) -> Result<Client, ViciError> {
        Client::connect_with(path, TIMEOUT).await
    }

    /// Connects, every exchange then limited to `timeout`.
    pub async fn connect_with(path: &Path, timeout: Duration) -> Result<Client, ViciError> {
        let connecting = tokio::time::timeout(timeout, UnixStream::connect(path));
        let stream = connecting
            .await
            .map_err(|_| ViciError::Timeout {
                what: format!("connecting to {}", path.display()),
                after: timeout,
            })?
            .map_err(|source| ViciError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Client {
            stream,
            timeout,
            out_of_step: false,
        })
    }

    /// Runs one exchange within the time limit; a timeout leaves the connection out of step.
    async fn limited<T>(
        &mut self,
        what: impl FnOnce() -> String,
        exchange: impl AsyncFnOnce(&mut Self) -> Result<T, ViciError>,
    ) -> Result<T, ViciError> {
        if self.out_of_step {
            return Err(ViciError::OutOfStep);
        }
        let after = self.timeout;
        let Ok(result) = tokio::time::timeout(after, exchange(self)).await else {
            self.out_of_step = true;
            return Err(ViciError::Timeout {
                what: what(),
                after,
            });
        };
        result
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), ViciError> {
        // A request may carry a secret (`load-shared`): its encoding is wiped once sent.
        let bytes = Zeroizing::new(packet.encode()?);
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
        on_event: impl FnMut(Message),
    ) -> Result<Message, ViciError> {
        self.limited(
            || command.to_string(),
            async |c: &mut Self| c.exchange(command, event, message, on_event).await,
        )
        .await
    }

    async fn exchange(
        &mut self,
        command: &str,
        event: Option<&str>,
        message: Message,
        mut on_event: impl FnMut(Message),
    ) -> Result<Message, ViciError> {
        if let Some(event) = event {
            self.subscribe(Packet::EventRegister(event.into()), event)
                .await?;
        }
        let mut request = Packet::CmdRequest {
            command: command.into(),
            message,
        };
        let sent = self.send(&request).await;
        if let Packet::CmdRequest { message, .. } = &mut request {
            wipe(message);
        }
        sent?;
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
            self.subscribe(Packet::EventUnregister(event.into()), event)
                .await?;
        }
        response
    }

    /// Registers for an event (e.g. `ike-updown`).
    pub async fn register(&mut self, event: &str) -> Result<(), ViciError> {
        self.limited(
            || format!("registering for {event}"),
            async |c: &mut Self| {
                c.subscribe(Packet::EventRegister(event.into()), event)
                    .await
            },
        )
        .await
    }

    /// Unregisters from an event.
    pub async fn unregister(&mut self, event: &str) -> Result<(), ViciError> {
        self.limited(
            || format!("unregistering from {event}"),
            async |c: &mut Self| {
                c.subscribe(Packet::EventUnregister(event.into()), event)
                    .await
            },
        )
        .await
    }

    /// Sends a (un)registration and waits for its confirmation.
    async fn subscribe(&mut self, packet: Packet, event: &str) -> Result<(), ViciError> {
        self.send(&packet).await?;
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

    /// The next event on a connection that only listens (no time limit: events come when
    /// they come).
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

/// Overwrites every value of `message` (a request may carry a secret).
fn wipe(message: &mut Message) {
    for (_, element) in &mut message.0 {
        match element {
            Element::Value(value) => value.zeroize(),
            Element::List(items) => items.iter_mut().for_each(Zeroize::zeroize),
            Element::Section(section) => wipe(section),
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::UnixListener;

    use super::{Client, ViciError, wipe};
    use crate::ipsec::vici::Message;

    #[test]
    fn a_request_is_wiped_through_and_through() {
        let mut m = Message::new()
            .kv("data", "s3cret-psk")
            .list("owners", ["s3cret-in-a-list"])
            .section("sub", Message::new().kv("deep", "s3cret-deeper"));
        wipe(&mut m);
        assert_eq!(m.str("data"), Some(""));
        assert_eq!(m.strs("owners"), [""]);
        assert_eq!(m.sub("sub").and_then(|s| s.str("deep")), Some(""));
    }

    /// A charon that accepts connections and then never answers (stopped, say).
    #[test]
    fn a_charon_that_never_answers_times_out_and_the_connection_is_then_out_of_step() {
        let dir = std::env::temp_dir().join(format!("vc-vici-mute-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("charon.vici");
        let _ = std::fs::remove_file(&path);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = UnixListener::bind(&path).expect("bind");
            let _mute = tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    held.push(stream);
                }
            });
            let limit = Duration::from_millis(100);
            let mut client = Client::connect_with(&path, limit).await.expect("connect");
            let started = std::time::Instant::now();
            let e = client
                .call("list-sas", Message::new())
                .await
                .expect_err("no answer");
            assert!(started.elapsed() < limit * 10, "{:?}", started.elapsed());
            assert!(
                matches!(&e, ViciError::Timeout { what, after } if what == "list-sas" && *after == limit),
                "{e}"
            );
            assert!(e.is_unanswered());
            assert_eq!(
                e.to_string(),
                "list-sas: charon did not answer within 100ms"
            );
            let again = client.register("log").await.expect_err("out of step");
            assert!(matches!(again, ViciError::OutOfStep), "{again}");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
