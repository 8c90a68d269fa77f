//! Sockets and the per-connection tasks: a reader that frames messages (header checks only,
//! decoding needs what the session negotiated) and a writer that sends what it is given and,
//! on close, lets the last NOTIFICATION drain before the socket goes.
use std::{
    ffi::CString,
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::Arc,
    time::Duration,
};

use socket2::SockRef;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream, tcp::OwnedReadHalf},
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};

use super::{
    config::Secret,
    fsm::Conn,
    md5,
    packet::{DecodeError, HEADER_LEN, Header},
};

/// eBGP between directly connected tunnel IPs: TTL 1, as Cisco and BIRD use by default, so a
/// session can never form across a routed path by accident.
const EBGP_TTL: u32 = 1;

/// How long a closed connection keeps reading so the peer gets our NOTIFICATION (a socket
/// closed with unread data sends RST, which can discard what is still queued).
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Refused connections lingering at once (each for up to [`LINGER`]); past that a refused
/// connection is closed at once, its NOTIFICATION unsent.
pub(crate) const MAX_LINGERING: usize = 4;

/// Network events for the session task. `serial` tells a live connection from a closed one.
#[derive(Debug)]
pub(crate) enum NetEvent {
    Connected {
        serial: u64,
        result: io::Result<TcpStream>,
    },
    /// One whole message (header included), its header already checked.
    Frame {
        conn: Conn,
        serial: u64,
        bytes: Vec<u8>,
    },
    /// A header that fails RFC 4271 §6.1; the reader has stopped.
    BadHeader {
        conn: Conn,
        serial: u64,
        error: DecodeError,
    },
    /// The connection closed (`None`: by the peer) or failed.
    Closed {
        conn: Conn,
        serial: u64,
        error: Option<io::Error>,
    },
}

pub(crate) type Events = mpsc::UnboundedSender<NetEvent>;

/// Where a session's sockets go.
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    pub local: Ipv4Addr,
    pub peer: Ipv4Addr,
    pub port: u16,
    pub md5: Option<Secret>,
    /// The tunnel interface the sockets are bound to.
    pub interface: Option<String>,
}

/// A listening socket, and the interface index it is bound to.
pub(crate) struct Listener {
    pub socket: TcpListener,
    pub ifindex: Option<u32>,
}

impl Endpoints {
    fn socket(&self) -> io::Result<TcpSocket> {
        let socket = TcpSocket::new_v4()?;
        let sock = SockRef::from(&socket);
        // Our address on the tunnel interface may appear after the agent starts.
        sock.set_freebind_v4(true)?;
        sock.set_ttl_v4(EBGP_TTL)?;
        if let Some(name) = &self.interface {
            sock.bind_device(Some(name.as_bytes()))?;
        }
        if let Some(password) = &self.md5 {
            md5::set_key(&socket, self.peer, Some(password))?;
        }
        Ok(socket)
    }

    /// Listens on our address for the peer (passive open), on the tunnel interface only. The
    /// MD5 key on the listener covers the connections it accepts.
    pub(crate) fn listen(&self) -> io::Result<Listener> {
        let socket = self.socket()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(self.local, self.port)))?;
        let ifindex = self.interface.as_deref().map(ifindex).transpose()?;
        Ok(Listener {
            socket: socket.listen(16)?,
            ifindex,
        })
    }

    /// The current index of the tunnel interface, if it has one (it may have been created
    /// anew since the listener was bound to the old one).
    pub(crate) fn interface_index(&self) -> Option<u32> {
        self.interface.as_deref().and_then(|n| ifindex(n).ok())
    }

    /// Starts an outgoing connect (active open) on a task; the result comes as
    /// [`NetEvent::Connected`].
    pub(crate) fn connect(&self, serial: u64, events: Events) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let result = async {
                let socket = this.socket()?;
                socket.bind(SocketAddr::V4(SocketAddrV4::new(this.local, 0)))?;
                let stream = socket
                    .connect(SocketAddr::V4(SocketAddrV4::new(this.peer, this.port)))
                    .await?;
                stream.set_nodelay(true)?;
                Ok(stream)
            }
            .await;
            let _ = events.send(NetEvent::Connected { serial, result });
        })
    }
}

/// The index of the interface `name`.
fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid C string for the duration of the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Prepares an accepted socket like our own.
pub(crate) fn accepted(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    SockRef::from(stream).set_ttl_v4(EBGP_TTL)
}

enum WriterCmd {
    Send(Vec<u8>),
    Close,
}

/// A live connection: send through it, close it.
pub(crate) struct Connection {
    pub serial: u64,
    writer: mpsc::UnboundedSender<WriterCmd>,
    task: JoinHandle<()>,
}

impl Connection {
    /// Starts the reader and writer tasks of `stream`.
    pub(crate) fn spawn(stream: TcpStream, conn: Conn, serial: u64, events: Events) -> Self {
        let (rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut reader = tokio::spawn(read_loop(rd, conn, serial, events.clone()));
        let task = tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    WriterCmd::Send(bytes) => {
                        if let Err(error) = wr.write_all(&bytes).await {
                            let _ = events.send(NetEvent::Closed {
                                conn,
                                serial,
                                error: Some(error),
                            });
                            break;
                        }
                    }
                    WriterCmd::Close => break,
                }
            }
            // FIN after everything queued, then drain until the peer closes too.
            let _ = wr.shutdown().await;
            let _ = tokio::time::timeout(LINGER, &mut reader).await;
            reader.abort();
        });
        Connection {
            serial,
            writer: tx,
            task,
        }
    }

    pub(crate) fn send(&self, bytes: Vec<u8>) {
        let _ = self.writer.send(WriterCmd::Send(bytes));
    }

    /// Closes after what was sent has gone; events of this connection are stale from now on.
    /// The handle ends once the NOTIFICATION (if any) is out and the peer closed, or after
    /// [`LINGER`].
    pub(crate) fn close(self) -> JoinHandle<()> {
        let _ = self.writer.send(WriterCmd::Close);
        self.task
    }
}

async fn read_loop(mut rd: OwnedReadHalf, conn: Conn, serial: u64, events: Events) {
    loop {
        let mut header = [0u8; HEADER_LEN];
        if let Err(e) = rd.read_exact(&mut header).await {
            let _ = events.send(closed(conn, serial, e));
            return;
        }
        let len = match Header::decode(&header) {
            Ok(h) => h.len,
            Err(error) => {
                let _ = events.send(NetEvent::BadHeader {
                    conn,
                    serial,
                    error,
                });
                // Keep reading (and discarding) so the NOTIFICATION can drain; the session
                // closes us.
                let mut sink = [0u8; 4096];
                while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        };
        let mut bytes = header.to_vec();
        bytes.resize(len, 0);
        if let Err(e) = rd.read_exact(&mut bytes[HEADER_LEN..]).await {
            let _ = events.send(closed(conn, serial, e));
            return;
        }
        if events
            .send(NetEvent::Frame {
                conn,
                serial,
                bytes,
            })
            .is_err()
        {
            return;
        }
    }
}

/// The connection ended: a clean end of stream from the peer is no error.
fn closed(conn: Conn, serial: u64, e: io::Error) -> NetEvent {
    let error = (e.kind() != io::ErrorKind::UnexpectedEof).then_some(e);
    NetEvent::Closed {
        conn,
        serial,
        error,
    }
}

/// Refuses a socket the session does not want. With `bytes` (a NOTIFICATION), sends them and
/// closes gently, lingering so they arrive, if one of `lingering`'s slots is free; otherwise
/// (nothing to say, or too many refusals at once) closes at once.
pub(crate) fn refuse(stream: TcpStream, bytes: Option<Vec<u8>>, lingering: &Arc<Semaphore>) {
    let Some(bytes) = bytes else {
        return;
    };
    let Ok(slot) = Arc::clone(lingering).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let (mut rd, mut wr) = stream.into_split();
        let _ = wr.write_all(&bytes).await;
        let _ = wr.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    });
}
