//! A minimal HTTP/1.1 responder for the metrics endpoint: one request per connection, the
//! head read with a size and time limit, no body, `Connection: close`. Enough for Prometheus
//! and `curl`; not a web server (no keep-alive, chunking or TLS: put a proxy in front for
//! those).
use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tracing::debug;

use crate::{limit::AcceptBackoff, task::Task};

/// The longest request head read (a scraper's is a few hundred bytes).
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its head, and to take the answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 16;

/// The parts of a request the endpoint looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub accept: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub allow: Option<&'static str>,
}

impl Response {
    #[must_use]
    pub fn ok(content_type: &'static str, body: String) -> Self {
        Response {
            status: 200,
            content_type,
            body,
            allow: None,
        }
    }

    /// An error status with a one-line text body.
    #[must_use]
    pub fn status(status: u16, text: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{text}\n"),
            allow: None,
        }
    }

    #[must_use]
    pub fn allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    /// Status line, headers and (unless `head_only`) the body.
    #[must_use]
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            _ => "Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            head.push_str("Allow: ");
            head.push_str(allow);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// Parses a request head (up to and without the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, Response> {
    let bad = || Response::status(400, "bad request");
    let text = std::str::from_utf8(head).map_err(|_| bad())?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().ok_or_else(bad)?.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(bad());
    }
    let mut accept = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        if name.eq_ignore_ascii_case("accept") {
            accept = Some(value.trim().to_string());
        }
    }
    Ok(Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or(target).to_string(),
        accept,
    })
}

/// The handler: a request in, a response out.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves `handler` on `listener` until the task is aborted.
#[must_use]
pub fn serve(listener: TcpListener, handler: Handler) -> Task {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Task::spawn("metrics", async move {
        let mut backoff = AcceptBackoff::new("metrics");
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => {
                    backoff.accepted();
                    accepted
                }
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    backoff.wait(&e).await;
                    continue;
                }
            };
            // Over the limit: close at once rather than queue (a scraper retries).
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                continue;
            };
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                if let Err(e) = tokio::time::timeout(TIMEOUT, answer(stream, &handler)).await {
                    debug!(%peer, "metrics client too slow: {e}");
                }
                drop(permit);
            });
        }
    })
}

async fn answer(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let (response, head_only) = match read_head(&mut stream).await? {
        Ok(head) => match parse_head(&head) {
            Ok(req) => (handler(&req), req.method == "HEAD"),
            Err(bad) => (bad, false),
        },
        Err(status) => (status, false),
    };
    stream.write_all(&response.to_bytes(head_only)).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends the head; a head over [`MAX_HEAD`] gets 431, a
/// connection closed before the end 400.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Result<Vec<u8>, Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(Ok(buf));
        }
        if buf.len() > MAX_HEAD {
            return Ok(Err(Response::status(431, "request head too large")));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Err(Response::status(400, "incomplete request")));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::{Response, parse_head};

    #[test]
    fn parses_a_scrapers_request() {
        let req = parse_head(
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9917\r\nAccept: application/openmetrics-text;version=1.0.0\r\nUser-Agent: Prometheus/2.53",
        )
        .expect("valid");
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/metrics");
        assert_eq!(
            req.accept.as_deref(),
            Some("application/openmetrics-text;version=1.0.0")
        );
    }

    #[test]
    fn refuses_what_is_not_http() {
        for bad in [
            &b""[..],
            b"GET",
            b"GET /metrics",
            b"GET metrics HTTP/1.1",
            b"GET /metrics HTTP/2 extra",
            b"GET /metrics SPDY/3",
            b"get /metrics HTTP/1.1",
            b"GET /metrics HTTP/1.1\r\nno colon here",
            b"\xff\xfe /metrics HTTP/1.1",
        ] {
            let e = parse_head(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn head_answers_have_no_body_but_its_length() {
        let r = Response::ok("text/plain", "abc".into());
        let full = String::from_utf8(r.to_bytes(false)).expect("utf8");
        assert!(full.starts_with("HTTP/1.1 200 OK\r\n"), "{full}");
        assert!(full.contains("Content-Length: 3\r\n"), "{full}");
        assert!(full.ends_with("\r\n\r\nabc"), "{full}");
        let head = String::from_utf8(r.to_bytes(true)).expect("utf8");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let e = Response::status(405, "method not allowed").allow("GET, HEAD");
        assert!(
            String::from_utf8(e.to_bytes(false))
                .expect("utf8")
                .contains("Allow: GET, HEAD\r\n")
        );
    }
}
