//! Traffic between namespaces from plain sockets: TCP transfers checked end to end.
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result, anyhow};

use crate::NetNs;

/// A deterministic byte stream, so the receiver can check every byte.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)).to_le_bytes()[0]
}

/// Sends `bytes` over TCP from `client` to `server_addr:port` (a listener started in `server`)
/// and checks that every byte arrived intact. Returns the number of bytes received.
pub fn tcp_transfer(
    client: &NetNs,
    server: &NetNs,
    server_addr: Ipv4Addr,
    port: u16,
    bytes: usize,
) -> Result<usize> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let listen = SocketAddr::from((server_addr, port));
    let receiver = {
        server.spawn_in(move || -> Result<usize> {
            let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
            ready_tx.send(()).ok();
            let (mut conn, _) = listener.accept().context("accept")?;
            conn.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            loop {
                let n = conn.read(&mut buf).context("read")?;
                if n == 0 {
                    break;
                }
                for (k, b) in buf[..n].iter().enumerate() {
                    if *b != pattern(total + k) {
                        return Err(anyhow!("byte {} corrupted", total + k));
                    }
                }
                total += n;
            }
            Ok(total)
        })?
    };
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("the listener on {listen} did not start"))?;
    client.run_in(move || -> Result<()> {
        let mut conn = TcpStream::connect_timeout(&listen, Duration::from_secs(10))
            .with_context(|| format!("connect {listen}"))?;
        conn.set_write_timeout(Some(Duration::from_secs(30)))?;
        let chunk: Vec<u8> = (0..bytes).map(pattern).collect();
        conn.write_all(&chunk).context("write")?;
        Ok(())
    })??;
    receiver.join().map_err(|_| anyhow!("receiver panicked"))?
}

/// Opens a TCP connection from `client` to `addr:port` where `server` listens (a plain
/// connect/accept, e.g. to the BGP port), returning the address the server saw.
pub fn tcp_connect(
    client: &NetNs,
    server: &NetNs,
    addr: Ipv4Addr,
    port: u16,
) -> Result<SocketAddr> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let listen = SocketAddr::from((addr, port));
    let acceptor = server.spawn_in(move || -> Result<SocketAddr> {
        let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
        ready_tx.send(()).ok();
        let (_, peer) = listener.accept().context("accept")?;
        Ok(peer)
    })?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("the listener on {listen} did not start"))?;
    client
        .run_in(move || TcpStream::connect_timeout(&listen, Duration::from_secs(10)).map(drop))??;
    acceptor.join().map_err(|_| anyhow!("acceptor panicked"))?
}
