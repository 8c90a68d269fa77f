//! The IPsec controller the daemon runs: block policies first, then charon (its own or the
//! system's), the tunnels' connections and secrets, initiation, and from then on charon's
//! events folded into an SA table that anyone can watch.
//!
//! One tokio task owns the VICI command connection and reacts to: events (read by a second
//! task from a second connection, so reading stays cancel-safe), charon's death, requests from
//! [`Ipsec`] handles, and a periodic tick that refreshes the table from `list-sas` and retries
//! tunnels that are down. When charon dies it is restarted (own charon) or re-attached
//! (system charon) with back-off, and the tunnels are loaded and initiated again; meanwhile
//! the block policies keep GRE from leaving in clear. Every VICI exchange has a time limit
//! ([`crate::ipsec::vici::client::TIMEOUT`]): a charon that stops answering (stopped, stuck)
//! is reported unresponsive and reconnected to with the same back-off, its last SA table kept
//! (its SAs stay in the kernel), and the controller never waits on it for ever.
//!
//! Threads and namespaces: charon and the XFRM socket are created in the network namespace
//! of the thread that runs the controller's tasks. The agent runs in one namespace; tests
//! run [`Ipsec::start`] on a current-thread runtime on a thread inside a test namespace.
use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{broadcast, mpsc, oneshot, watch},
    task::JoinHandle,
};

use crate::{
    config::{CharonMode, Config, SecretError, TUNNELS, TunnelId},
    ipsec::{
        charon::{CharonError, Supervised},
        conn, journal,
        policy::{self, PolicyError},
        sa::{Change, IkeState, SaTable},
        vici::{Client, Message, ViciError},
    },
    task::Task,
};

/// The events the controller follows.
const EVENTS: [&str; 5] = [
    "ike-updown",
    "child-updown",
    "ike-rekey",
    "child-rekey",
    "log",
];
/// How often the SA table is refreshed from `list-sas` and down tunnels are retried.
pub const TICK: Duration = Duration::from_secs(5);
/// How long a tunnel may stay without a child SA before the agent initiates again (charon
/// retries unanswered IKE itself; after `AUTHENTICATION_FAILED` or a proposal mismatch it
/// gives up, so this is what keeps trying).
const RETRY: Duration = Duration::from_secs(20);

/// Why the controller could not do something.
#[derive(Debug, thiserror::Error)]
pub enum IpsecError {
    #[error(transparent)]
    Charon(#[from] CharonError),
    #[error(transparent)]
    Vici(#[from] ViciError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("tunnel {tunnel}: ike_psk: {source}")]
    Secret {
        tunnel: TunnelId,
        source: SecretError,
    },
    #[error("tunnel {0} is not terminated by this CPE")]
    NotManaged(TunnelId),
    #[error("charon is down")]
    CharonDown,
    #[error("the IPsec controller has stopped")]
    Stopped,
}

/// charon as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CharonState {
    #[default]
    Starting,
    /// `external-ipsec` mode: no charon.
    NotUsed,
    Up {
        /// Known when vc runs its own charon.
        pid: Option<u32>,
        version: String,
        since: SystemTime,
    },
    Down {
        since: SystemTime,
        reason: String,
    },
    /// It runs (as far as anyone can tell) but does not answer VICI calls in time.
    Unresponsive {
        since: SystemTime,
        reason: String,
    },
}

/// Everything the controller knows, as one value (cheap to clone, published on each change).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub charon: CharonState,
    /// The tunnels vc manages (the ones this CPE terminates).
    pub managed: Vec<TunnelId>,
    pub sas: SaTable,
}

/// What subscribers hear about, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Sa(Change),
    CharonUp { pid: Option<u32> },
    CharonDown { reason: String },
    CharonUnresponsive { reason: String },
}

/// How the controller lost charon.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lost {
    /// It exited, or its connection failed.
    Down(String),
    /// It did not answer in time.
    Unresponsive(String),
}

impl Lost {
    /// `what` failed with `e`: charon is down or does not answer.
    fn after(what: &str, e: &IpsecError) -> Lost {
        match e {
            IpsecError::Vici(v) if v.is_unanswered() => Lost::Unresponsive(format!("{what}: {e}")),
            _ => Lost::Down(format!("{what}: {e}")),
        }
    }
}

enum Request {
    Initiate(TunnelId, oneshot::Sender<Result<(), IpsecError>>),
    Terminate {
        id: TunnelId,
        ike: bool,
        reply: oneshot::Sender<Result<(), IpsecError>>,
    },
    Rekey {
        id: TunnelId,
        ike: bool,
        reply: oneshot::Sender<Result<(), IpsecError>>,
    },
    Refresh(oneshot::Sender<Result<(), IpsecError>>),
    Reload(Box<Config>, oneshot::Sender<Result<(), IpsecError>>),
    Stop {
        charon: bool,
        reply: oneshot::Sender<()>,
    },
}

/// A handle on the running controller. Dropping it leaves the controller running until the
/// runtime ends; [`Ipsec::shutdown`] stops it.
pub struct Ipsec {
    requests: mpsc::Sender<Request>,
    snapshot: watch::Receiver<Snapshot>,
    notices: broadcast::Sender<Notice>,
    task: Task,
}

/// The controller task's name.
const TASK: &str = "ipsec";

impl Ipsec {
    /// Installs the block policies, starts or attaches to charon, loads and initiates the
    /// tunnels this CPE terminates, and keeps them so. Returns once the connections are
    /// loaded (not when the SAs are up: watch [`Ipsec::wait_for`] for that). In
    /// `external-ipsec` mode it only removes vc's block policies and does nothing else.
    pub async fn start(config: Config) -> Result<Ipsec, IpsecError> {
        // Fail closed before anything can send GRE: block policies first.
        policy::sync(&policy::desired(&config)).await?;
        let managed: Vec<TunnelId> = config.terminated().map(|(id, _)| id).collect();
        let (snap_tx, snapshot) = watch::channel(Snapshot {
            managed: managed.clone(),
            ..Snapshot::default()
        });
        let (notices, _) = broadcast::channel(256);
        let (requests, rx) = mpsc::channel(16);
        if !config.ipsec() {
            snap_tx.send_modify(|s| s.charon = CharonState::NotUsed);
            let task = Task::spawn(TASK, idle(rx, snap_tx));
            return Ok(Ipsec {
                requests,
                snapshot,
                notices,
                task,
            });
        }
        let mut ctl = Controller {
            config,
            managed,
            charon: None,
            session: None,
            table: SaTable::default(),
            snap: snap_tx,
            notices: notices.clone(),
            last_try: [None; TUNNELS],
        };
        ctl.bring_up().await?;
        let task = Task::spawn(TASK, ctl.run(rx));
        Ok(Ipsec {
            requests,
            snapshot,
            notices,
            task,
        })
    }

    /// The current state.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// A receiver that sees every new state.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// Changes as they happen (SA up/down/rekeyed, failures, charon up/down).
    #[must_use]
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Waits until `done` holds for the state, or `limit` passes (then returns the last state
    /// as the error, for the message).
    pub async fn wait_for(
        &self,
        limit: Duration,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Snapshot, Box<Snapshot>> {
        let mut rx = self.snapshot.clone();
        let wait = async {
            loop {
                let snap = rx.borrow_and_update().clone();
                if done(&snap) {
                    return snap;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| Box::new(self.snapshot()))
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, IpsecError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| IpsecError::Stopped)?;
        rx.await.map_err(|_| IpsecError::Stopped)
    }

    /// Asks charon to bring the tunnel up now (R8: the CPE initiates).
    pub async fn initiate(&self, id: TunnelId) -> Result<(), IpsecError> {
        self.ask(|r| Request::Initiate(id, r)).await?
    }

    /// Deletes the tunnel's child SA (`ike = false`) or IKE SA. charon's trap policy and the
    /// agent's retry bring it back.
    pub async fn terminate(&self, id: TunnelId, ike: bool) -> Result<(), IpsecError> {
        self.ask(|reply| Request::Terminate { id, ike, reply })
            .await?
    }

    /// Rekeys the tunnel's child SA (`ike = false`) or IKE SA now.
    pub async fn rekey(&self, id: TunnelId, ike: bool) -> Result<(), IpsecError> {
        self.ask(|reply| Request::Rekey { id, ike, reply }).await?
    }

    /// Refreshes the SA table from `list-sas` (byte counters, rekey times) and returns it.
    pub async fn refresh(&self) -> Result<Snapshot, IpsecError> {
        self.ask(Request::Refresh).await??;
        Ok(self.snapshot())
    }

    /// Applies a changed config: block policies for the new set of tunnels (added before,
    /// removed after), connections and secrets reloaded, stale ones unloaded, new tunnels
    /// initiated. A switch between `ipsec` and `external-ipsec` needs a restart.
    pub async fn reload(&self, config: Config) -> Result<(), IpsecError> {
        self.ask(|r| Request::Reload(Box::new(config), r)).await?
    }

    /// Stops the controller. Block policies stay (fail closed); vc's own charon stays unless
    /// `stop_charon` (then it deletes its SAs and policies, and GRE is blocked).
    pub async fn shutdown(self, stop_charon: bool) {
        let _ = self
            .ask(|reply| Request::Stop {
                charon: stop_charon,
                reply,
            })
            .await;
        self.task.ended().await;
    }

    /// The controller's task, for the agent to watch.
    #[must_use]
    pub fn task(&self) -> &Task {
        &self.task
    }
}

/// The controller's task in `external-ipsec` mode: answers, does nothing.
async fn idle(mut rx: mpsc::Receiver<Request>, _snap: watch::Sender<Snapshot>) {
    while let Some(req) = rx.recv().await {
        match req {
            Request::Initiate(id, r) => {
                let _ = r.send(Err(IpsecError::NotManaged(id)));
            }
            Request::Terminate { id, reply, .. } | Request::Rekey { id, reply, .. } => {
                let _ = reply.send(Err(IpsecError::NotManaged(id)));
            }
            Request::Refresh(r) => {
                let _ = r.send(Ok(()));
            }
            Request::Reload(config, r) => {
                let result = policy::sync(&policy::desired(&config))
                    .await
                    .map(|_| ())
                    .map_err(Into::into);
                let _ = r.send(result);
            }
            Request::Stop { reply, .. } => {
                let _ = reply.send(());
                return;
            }
        }
    }
}

/// A live connection to charon: commands, and the event reader's channel.
struct Session {
    cmd: Client,
    events: mpsc::Receiver<Result<(String, Message), ViciError>>,
    reader: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Controller {
    config: Config,
    managed: Vec<TunnelId>,
    charon: Option<Supervised>,
    session: Option<Session>,
    table: SaTable,
    snap: watch::Sender<Snapshot>,
    notices: broadcast::Sender<Notice>,
    /// When each tunnel was last initiated.
    last_try: [Option<tokio::time::Instant>; TUNNELS],
}

impl Controller {
    fn socket(&self) -> PathBuf {
        match &self.charon {
            Some(c) => c.socket(),
            None => PathBuf::from(&self.config.charon.socket),
        }
    }

    fn publish(&self) {
        let table = self.table.clone();
        self.snap.send_modify(|s| s.sas = table);
    }

    fn notify(&self, n: Notice) {
        let _ = self.notices.send(n);
    }

    /// charon (started or found), a session, the tunnels loaded and initiated.
    async fn bring_up(&mut self) -> Result<(), IpsecError> {
        if self.config.charon.mode == CharonMode::Supervise {
            let running = self.charon.as_mut().is_some_and(Supervised::is_running);
            if !running {
                self.charon = Some(Supervised::ensure(&self.config.charon).await?);
            }
        }
        let socket = self.socket();
        let mut cmd = Client::connect(&socket).await?;
        let version = cmd.version().await?;
        let mut ev = Client::connect(&socket).await?;
        for e in EVENTS {
            ev.register(e).await?;
        }
        let (tx, events) = mpsc::channel(256);
        let reader = tokio::spawn(async move {
            loop {
                let item = ev.next_event().await;
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        self.session = Some(Session {
            cmd,
            events,
            reader,
        });
        self.load().await?;
        self.refresh().await?;
        let pid = self.charon.as_ref().map(Supervised::pid);
        let version = format!(
            "{} {}",
            version.str("daemon").unwrap_or("charon"),
            version.str("version").unwrap_or("?")
        );
        tracing::info!(?pid, %version, "charon up, tunnels loaded");
        self.snap.send_modify(|s| {
            s.charon = CharonState::Up {
                pid,
                version,
                since: SystemTime::now(),
            };
        });
        self.notify(Notice::CharonUp { pid });
        for id in self.managed.clone() {
            if !self.table.tunnel(id).child_up() {
                // A failed initiate is reported through the log events; retried on tick.
                if let Err(e) = self.initiate(id).await {
                    tracing::warn!(tunnel = %id, "initiate: {e}");
                }
            }
        }
        Ok(())
    }

    fn cmd(&mut self) -> Result<&mut Client, IpsecError> {
        self.session
            .as_mut()
            .map(|s| &mut s.cmd)
            .ok_or(IpsecError::CharonDown)
    }

    /// Loads every managed tunnel's secret and connection; unloads vc's stale ones.
    async fn load(&mut self) -> Result<(), IpsecError> {
        for id in self.managed.clone() {
            self.load_tunnel(id).await?;
        }
        let cmd = self.cmd()?;
        let loaded = cmd.call("get-conns", Message::new()).await?;
        for name in loaded.strs("conns") {
            if name.starts_with(conn::PREFIX)
                && !self.managed.iter().any(|id| conn::conn_name(*id) == name)
            {
                let m = Message::new().kv("name", name);
                let name = name.to_string();
                let cmd = self.cmd()?;
                cmd.call("unload-conn", m).await?;
                let _ = cmd
                    .call("unload-shared", Message::new().kv("id", &name))
                    .await;
                tracing::info!(conn = %name, "unloaded a connection no longer configured");
            }
        }
        Ok(())
    }

    /// Loads one tunnel's secret, then its connection.
    async fn load_tunnel(&mut self, id: TunnelId) -> Result<(), IpsecError> {
        let t = self
            .config
            .tunnel(id)
            .cloned()
            .ok_or(IpsecError::NotManaged(id))?;
        let psk = t
            .ike_psk
            .as_ref()
            .ok_or(SecretError::Empty)
            .and_then(crate::config::Secret::resolve)
            .map_err(|source| IpsecError::Secret { tunnel: id, source })?;
        let cmd = self.cmd()?;
        cmd.call("load-shared", conn::load_shared(id, &t, &psk))
            .await?;
        cmd.call("load-conn", conn::load_conn(id, &t)).await?;
        Ok(())
    }

    /// The managed tunnels whose connection or secret charon no longer has: an operator's
    /// `swanctl --load-all` (with a config without vc's) or `--unload-conn` took them.
    async fn lost_tunnels(&mut self) -> Result<Vec<TunnelId>, IpsecError> {
        let cmd = self.cmd()?;
        let conns = cmd.call("get-conns", Message::new()).await?;
        let shared = match cmd.call("get-shared", Message::new()).await {
            Ok(m) => Some(m),
            // A charon before 5.7 cannot tell: its connections have to do.
            Err(ViciError::UnknownCommand(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let conns = conns.strs("conns");
        let keys = shared.as_ref().map(|m| m.strs("keys"));
        Ok(self
            .managed
            .iter()
            .copied()
            .filter(|id| {
                let name = conn::conn_name(*id);
                !conns.contains(&name.as_str())
                    || keys.as_ref().is_some_and(|k| !k.contains(&name.as_str()))
            })
            .collect())
    }

    /// Loads again, and initiates, the tunnels charon lost behind vc's back.
    async fn reload_lost(&mut self) -> Result<(), IpsecError> {
        for id in self.lost_tunnels().await? {
            tracing::warn!(
                tunnel = %id,
                conn = %conn::conn_name(id),
                "charon no longer has vc's connection or secret (unloaded behind vc's back): \
                 loading it again"
            );
            self.load_tunnel(id).await?;
            if !self.table.tunnel(id).child_up() {
                self.initiate(id).await?;
            }
        }
        Ok(())
    }

    async fn initiate(&mut self, id: TunnelId) -> Result<(), IpsecError> {
        if !self.managed.contains(&id) {
            return Err(IpsecError::NotManaged(id));
        }
        self.last_try[id.index()] = Some(tokio::time::Instant::now());
        // timeout -1: charon queues the job and answers at once; progress and failures arrive
        // as events.
        let m = Message::new()
            .kv("child", conn::child_name(id))
            .kv("ike", conn::conn_name(id))
            .kv("timeout", "-1")
            .kv("init-limits", "no");
        self.cmd()?.call("initiate", m).await?;
        Ok(())
    }

    async fn terminate(&mut self, id: TunnelId, ike: bool) -> Result<(), IpsecError> {
        if !self.managed.contains(&id) {
            return Err(IpsecError::NotManaged(id));
        }
        let m = sa_selector(id, ike).kv("timeout", "-1");
        self.cmd()?.call("terminate", m).await?;
        // Do not re-initiate at the next tick: give charon's restart actions a chance.
        self.last_try[id.index()] = Some(tokio::time::Instant::now());
        Ok(())
    }

    async fn rekey(&mut self, id: TunnelId, ike: bool) -> Result<(), IpsecError> {
        if !self.managed.contains(&id) {
            return Err(IpsecError::NotManaged(id));
        }
        self.cmd()?.call("rekey", sa_selector(id, ike)).await?;
        Ok(())
    }

    async fn reload(&mut self, config: Config) -> Result<(), IpsecError> {
        // New blocks first; the stale ones go only after their connections are unloaded.
        let mut union = policy::desired(&config);
        union.extend(policy::desired(&self.config));
        union.sort();
        union.dedup();
        policy::sync(&union).await?;
        self.config = config;
        self.managed = self.config.terminated().map(|(id, _)| id).collect();
        let managed = self.managed.clone();
        self.snap.send_modify(|s| s.managed = managed);
        self.load().await?;
        policy::sync(&policy::desired(&self.config)).await?;
        self.refresh().await?;
        for id in self.managed.clone() {
            if !self.table.tunnel(id).child_up() {
                self.initiate(id).await?;
            }
        }
        Ok(())
    }

    async fn refresh(&mut self) -> Result<(), IpsecError> {
        let mut listed = Vec::new();
        self.cmd()?
            .streamed(
                "list-sas",
                Some("list-sa"),
                Message::new().kv("noblock", "yes"),
                |m| {
                    listed.push(m);
                },
            )
            .await?;
        let changes = self.table.snapshot(&listed, SystemTime::now());
        for c in changes {
            tracing::warn!(
                "{} (absent from {} SA listings in a row, no down event seen)",
                journal::describe(&c, &self.table),
                crate::ipsec::sa::ABSENT_SNAPSHOTS
            );
            self.notify(Notice::Sa(c));
        }
        self.publish();
        Ok(())
    }

    fn event(&mut self, name: &str, msg: &Message) {
        if name == "log"
            && let Some(line) = journal::charon_line(msg)
        {
            match line.level {
                journal::Level::Info => {
                    tracing::info!(tunnel = %line.tunnel, group = line.group, "charon: {}", line.text);
                }
                journal::Level::Debug => {
                    tracing::debug!(tunnel = %line.tunnel, group = line.group, "charon: {}", line.text);
                }
            }
        }
        let changes = self.table.apply(name, msg, SystemTime::now());
        if changes.is_empty() {
            return;
        }
        for c in changes {
            let text = journal::describe(&c, &self.table);
            match &c {
                Change::Failed(_, f) => tracing::warn!(failure = f.name(), "{text}"),
                Change::IkeDown(_) | Change::ChildDown(_) => tracing::warn!("{text}"),
                _ => tracing::info!("{text}"),
            }
            self.notify(Notice::Sa(c));
        }
        self.publish();
    }

    /// Retries tunnels without a child SA (and no IKE attempt under way) every [`RETRY`].
    async fn retry(&mut self) {
        let now = tokio::time::Instant::now();
        for id in self.managed.clone() {
            let t = self.table.tunnel(id);
            let connecting = t
                .ike
                .as_ref()
                .is_some_and(|i| i.state == IkeState::Connecting);
            let recent = self.last_try[id.index()].is_some_and(|at| now.duration_since(at) < RETRY);
            if !t.child_up() && !connecting && !recent {
                tracing::info!(tunnel = %id, "no child SA: initiating again");
                if let Err(e) = self.initiate(id).await {
                    tracing::warn!(tunnel = %id, "initiate: {e}");
                }
            }
        }
    }

    /// charon went away or stopped answering: forget the session, tell everyone, bring it
    /// back with back-off. Requests meanwhile get [`IpsecError::CharonDown`]; a stop ends it.
    /// Returns false when the controller must stop.
    async fn recover(&mut self, lost: Lost, requests: &mut mpsc::Receiver<Request>) -> bool {
        self.session = None;
        self.lost(lost);
        let mut delay = Duration::from_millis(500);
        loop {
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    req = requests.recv() => match req {
                        None => return false,
                        Some(Request::Stop { charon, reply }) => {
                            self.stop(charon).await;
                            let _ = reply.send(());
                            return false;
                        }
                        Some(other) => refuse(other),
                    },
                }
            }
            match self.bring_up().await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!("charon restart: {e}");
                    self.session = None;
                    self.lost(Lost::after("bringing charon back", &e));
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Publishes how charon was lost, once per change of kind: a charon that exited forgets
    /// its SAs (the table is emptied), one that does not answer keeps them in the kernel (the
    /// table is left as last seen).
    fn lost(&mut self, lost: Lost) {
        let already = matches!(
            (&self.snap.borrow().charon, &lost),
            (CharonState::Down { .. }, Lost::Down(_))
                | (CharonState::Unresponsive { .. }, Lost::Unresponsive(_))
        );
        if already {
            return;
        }
        let since = SystemTime::now();
        match lost {
            Lost::Down(reason) => {
                tracing::warn!("charon down: {reason}");
                self.table.clear();
                self.publish();
                self.snap.send_modify(|s| {
                    s.charon = CharonState::Down {
                        since,
                        reason: reason.clone(),
                    };
                });
                self.notify(Notice::CharonDown { reason });
            }
            Lost::Unresponsive(reason) => {
                tracing::warn!("charon does not answer: {reason}");
                self.snap.send_modify(|s| {
                    s.charon = CharonState::Unresponsive {
                        since,
                        reason: reason.clone(),
                    };
                });
                self.notify(Notice::CharonUnresponsive { reason });
            }
        }
    }

    async fn stop(&mut self, charon: bool) {
        if charon && let Some(c) = self.charon.as_mut() {
            c.stop(Duration::from_secs(10)).await;
        }
    }

    async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let lost = tokio::select! {
                ev = next_event(self.session.as_mut()) => match ev {
                    Ok((name, msg)) => { self.event(&name, &msg); None }
                    Err(e) => Some(Lost::Down(format!("VICI connection lost: {e}"))),
                },
                () = charon_exit(self.charon.as_mut()) => Some(Lost::Down("charon exited".into())),
                req = requests.recv() => match req {
                    None => return,
                    Some(Request::Stop { charon, reply }) => {
                        self.stop(charon).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(req) => self.handle(req).await,
                },
                _ = tick.tick() => self.on_tick().await,
            };
            if let Some(lost) = lost
                && !self.recover(lost, &mut requests).await
            {
                return;
            }
        }
    }

    /// The periodic refresh: the SA table, the connections charon lost, then the tunnels
    /// that need initiating again.
    async fn on_tick(&mut self) -> Option<Lost> {
        if let Err(e) = self.refresh().await {
            return Some(Lost::after("refreshing the SA table", &e));
        }
        if let Err(e) = self.reload_lost().await {
            match &e {
                IpsecError::Vici(ViciError::Io(_)) => {
                    return Some(Lost::after("reloading vc's connections", &e));
                }
                IpsecError::Vici(v) if v.is_unanswered() => {
                    return Some(Lost::after("reloading vc's connections", &e));
                }
                // A refused connection or an unreadable secret: said, tried again next tick.
                _ => tracing::warn!("reloading vc's connections: {e}"),
            }
        }
        self.retry().await;
        None
    }

    async fn handle(&mut self, req: Request) -> Option<Lost> {
        let (result, reply) = match req {
            Request::Initiate(id, reply) => (self.initiate(id).await, reply),
            Request::Terminate { id, ike, reply } => (self.terminate(id, ike).await, reply),
            Request::Rekey { id, ike, reply } => (self.rekey(id, ike).await, reply),
            Request::Refresh(reply) => (self.refresh().await, reply),
            Request::Reload(config, reply) => (self.reload(*config).await, reply),
            Request::Stop { .. } => return None,
        };
        let lost = match &result {
            Err(IpsecError::Vici(ViciError::Io(e))) => {
                Some(Lost::Down(format!("VICI connection lost: {e}")))
            }
            Err(e @ IpsecError::Vici(v)) if v.is_unanswered() => Some(Lost::after("a request", e)),
            _ => None,
        };
        let _ = reply.send(result);
        lost
    }
}

/// Answers a request with [`IpsecError::CharonDown`] (while charon is being brought back).
/// Selects a tunnel's IKE SA (and with it its child) or only its child SA, for `terminate`
/// and `rekey`.
fn sa_selector(id: TunnelId, ike: bool) -> Message {
    if ike {
        Message::new().kv("ike", conn::conn_name(id))
    } else {
        Message::new().kv("child", conn::child_name(id))
    }
}

fn refuse(req: Request) {
    let reply = match req {
        Request::Initiate(_, r) | Request::Refresh(r) | Request::Reload(_, r) => r,
        Request::Terminate { reply, .. } | Request::Rekey { reply, .. } => reply,
        Request::Stop { reply, .. } => {
            let _ = reply.send(());
            return;
        }
    };
    let _ = reply.send(Err(IpsecError::CharonDown));
}

async fn next_event(session: Option<&mut Session>) -> Result<(String, Message), ViciError> {
    match session {
        Some(s) => match s.events.recv().await {
            Some(item) => item,
            None => Err(ViciError::Unexpected("an event (reader ended)")),
        },
        None => std::future::pending().await,
    }
}

async fn charon_exit(charon: Option<&mut Supervised>) {
    match charon {
        Some(c) => c.exited().await,
        None => std::future::pending().await,
    }
}
