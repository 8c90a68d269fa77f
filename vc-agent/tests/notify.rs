//! `vc-agent run` under systemd (`Type=notify`): what the service manager receives. Its own
//! test binary, with one test: it sets `NOTIFY_SOCKET` in its process.
use std::{os::unix::net::UnixDatagram, time::Duration};

use vc_agent::service::{Notice, notify};

#[test]
fn ready_and_stopping_reach_the_notify_socket() {
    let dir = std::env::temp_dir().join(format!("vc-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // SAFETY: the only test of this binary: no other thread reads the environment.
    unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
    let mut received = Vec::new();
    for notice in [
        Notice::Ready("2 tunnels".into()),
        Notice::Status("tunnel A up".into()),
        Notice::Stopping,
    ] {
        notify(&notice);
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(received[0], "READY=1\nSTATUS=2 tunnels\n");
    assert_eq!(received[1], "STATUS=tunnel A up\n");
    assert!(received[2].starts_with("STOPPING=1\n"), "{received:?}");
}
