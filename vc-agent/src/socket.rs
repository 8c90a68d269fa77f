//! The agent's status socket: `vc-agent status` (and `diagnose`) ask the running agent over
//! a Unix socket in its state directory, one request line, one answer, then close. The
//! answer to `status` is the typed [`AgentStatus`] as JSON.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Semaphore,
};
use tracing::warn;

use crate::{config::Config, limit::AcceptBackoff, status::AgentStatus, task::Task};

/// How long a client may take to ask and to read the answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once; more are closed unanswered (a client that never asks must not
/// hold a descriptor for ever, nor may many of them).
const MAX_CLIENTS: usize = 16;

/// The request for the agent's status.
pub const STATUS: &str = "status";

/// Where the agent of `config` answers.
#[must_use]
pub fn path(config: &Config) -> PathBuf {
    PathBuf::from(&config.agent.state_dir).join("agent.sock")
}

/// `vc-agent status`: asks the running agent of `config` for its status.
pub async fn query(config: &Config) -> Result<AgentStatus> {
    let text = ask(&path(config), STATUS).await?;
    serde_json::from_str(&text).context("the agent's answer")
}

/// What the socket answers: a request word in, text out.
pub type Answer = Arc<dyn Fn(&str) -> Result<String> + Send + Sync>;

/// Serves `answer` on a Unix socket at `path` (replacing a stale one) until the task is
/// aborted. Root only: the status names addresses and counters of the whole network.
pub fn serve(path: &Path, answer: Answer) -> Result<Task> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    Ok(Task::spawn("status-socket", async move {
        let mut backoff = AcceptBackoff::new("status socket");
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff.accepted();
                    stream
                }
                Err(e) => {
                    backoff.wait(&e).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                continue;
            };
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                match tokio::time::timeout(TIMEOUT, reply(stream, &answer)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!("status socket: {e:#}"),
                    Err(_) => warn!("status socket: a client took over {TIMEOUT:?}"),
                }
                drop(permit);
            });
        }
    }))
}

async fn reply(stream: UnixStream, answer: &Answer) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(256)).read_line(&mut line).await?;
    let text = match answer(line.trim()) {
        Ok(text) => text,
        Err(e) => format!("error: {e:#}\n"),
    };
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await?;
    Ok(())
}

/// Asks the agent listening on `path`.
pub async fn ask(path: &Path, request: &str) -> Result<String> {
    let mut stream = UnixStream::connect(path).await.with_context(|| {
        format!(
            "no agent answers on {} (is `vc-agent run` running, with this config?)",
            path.display()
        )
    })?;
    stream.write_all(format!("{request}\n").as_bytes()).await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    if let Some(e) = text.strip_prefix("error: ") {
        bail!("the agent answered: {}", e.trim());
    }
    Ok(text)
}
