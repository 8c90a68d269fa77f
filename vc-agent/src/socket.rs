//! The agent's control socket: `vc-agent status` (and `diagnose`), `stop` and `reload` ask the
//! running agent over a Unix socket in its state directory, one request line, one answer,
//! then close. The answer to `status` is the typed [`AgentStatus`] as JSON; a refusal starts
//! with `error: `.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use futures::future::BoxFuture;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Semaphore,
};
use tracing::warn;

use crate::{config::Config, limit::AcceptBackoff, status::AgentStatus, task::Task};

/// How long a client may take to ask, and to read the answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long the agent may take to answer (a reload talks to charon and closes sessions).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// Clients served at once; more are closed unanswered (a client that never asks must not
/// hold a descriptor for ever, nor may many of them).
const MAX_CLIENTS: usize = 16;

/// The request for the agent's status.
pub const STATUS: &str = "status";
/// The request to stop for good: Cease to the DCs, vc's routes withdrawn, then exit.
pub const STOP: &str = "stop";
/// The request to read the config file again and apply what changed.
pub const RELOAD: &str = "reload";

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

/// `vc-agent reload`: the agent of `config` reads its file again and applies the change, or
/// refuses it (an error naming why). Returns what it changed.
pub async fn reload(config: &Config) -> Result<String> {
    ask(&path(config), RELOAD).await
}

/// `vc-agent stop`: the agent of `config` tells the DCs it stops (Cease), withdraws vc's
/// routes and exits; returns once its socket is gone (its last step), or fails after
/// `within`.
pub async fn stop(config: &Config, within: Duration) -> Result<()> {
    let path = path(config);
    ask(&path, STOP).await?;
    let deadline = tokio::time::Instant::now() + within;
    while path.exists() {
        if tokio::time::Instant::now() > deadline {
            bail!("the agent did not stop within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// What the socket answers: a request word in, text out (in its own time, at most
/// [`ANSWER_WITHIN`]).
pub type Answer = Arc<dyn Fn(&str) -> BoxFuture<'static, Result<String>> + Send + Sync>;

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
                if let Err(e) = reply(stream, &answer).await {
                    warn!("status socket: {e:#}");
                }
                drop(permit);
            });
        }
    }))
}

/// One client: its request within [`TIMEOUT`], our answer within [`ANSWER_WITHIN`], its
/// reading within [`TIMEOUT`] again.
async fn reply(stream: UnixStream, answer: &Answer) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::time::timeout(TIMEOUT, BufReader::new(read.take(256)).read_line(&mut line))
        .await
        .with_context(|| format!("a client did not ask within {TIMEOUT:?}"))??;
    let text = match tokio::time::timeout(ANSWER_WITHIN, answer(line.trim())).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => format!("error: {e:#}\n"),
        Err(_) => format!("error: no answer within {ANSWER_WITHIN:?}\n"),
    };
    tokio::time::timeout(TIMEOUT, async {
        write.write_all(text.as_bytes()).await?;
        write.shutdown().await
    })
    .await
    .with_context(|| format!("a client did not read within {TIMEOUT:?}"))??;
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
