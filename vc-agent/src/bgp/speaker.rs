//! The session task of one neighbour: owns its sockets, timers, FSM and Adj-RIB-In; feeds
//! network events and timer expiries to the FSM and carries out the actions it returns;
//! publishes the accepted prefixes to the route manager and an operator snapshot on a watch
//! channel.
use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    io,
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures::FutureExt as _;
use ipnet::Ipv4Net;
use tokio::{
    net::TcpStream,
    sync::{Semaphore, mpsc, watch},
    task::JoinHandle,
    time::sleep_until,
};
use tracing::Instrument;

use super::{
    NeighborConfig,
    config::ConfigError,
    debug::Debug,
    diag::{Diagnosis, Evidence, Md5Counters},
    fsm::{Action, Conn, Event, Failure, Fsm, State, Timer},
    network::{self, Connection, Endpoints, Listener, NetEvent},
    packet::{Cxt, Message, Update},
    rib::AdjRibIn,
    state::{Direction, LastError, NeighborState, NotificationInfo, SessionInfo},
};
use crate::{
    config::TunnelId,
    limit::{AcceptBackoff, LOG_EVERY, LogLimit},
    routes::RouteHandle,
    task::Task,
};

/// How often the listener's interface is looked up again: if the tunnel interface was
/// created anew, the listener is bound to the new one.
const INTERFACE_CHECK: Duration = Duration::from_secs(5);
/// Connections accepted at most in one go (see `Session::accept_ready`).
const ACCEPT_BURST: usize = 64;

/// Why a speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}:{port} for BGP: {source}")]
    Listen {
        addr: Ipv4Addr,
        port: u16,
        source: io::Error,
    },
}

enum Command {
    Start,
    Stop,
    Shutdown,
    Detach,
    /// Whether 0.0.0.0/0 is advertised (the conditional default).
    Default(bool),
}

/// The handle of a running speaker. Dropping it shuts the session down (Cease, routes
/// withdrawn) in the background; [`Speaker::shutdown`] waits for that.
pub struct Speaker {
    state: watch::Receiver<NeighborState>,
    commands: mpsc::UnboundedSender<Command>,
    task: Task,
}

impl Speaker {
    /// Starts the session of `cfg` (listening, and connecting unless passive) on the current
    /// tokio runtime. The listener is bound in the calling thread's network namespace and
    /// connections are made from the runtime's threads: run it on a runtime whose threads
    /// live in the namespace of the tunnel interfaces. Accepted prefixes go to `routes` as the
    /// whole set for `cfg.tunnel`, on every change.
    pub fn spawn(cfg: NeighborConfig, routes: RouteHandle) -> Result<Self, SpawnError> {
        let (state_tx, _) = watch::channel(NeighborState::new(&cfg));
        Self::spawn_publishing(cfg, routes, state_tx)
    }

    /// [`Speaker::spawn`], publishing its snapshots on `state`: a session started anew (a
    /// reload that changed the neighbour) reaches those who watch the one it replaces.
    pub fn spawn_publishing(
        cfg: NeighborConfig,
        routes: RouteHandle,
        state_tx: watch::Sender<NeighborState>,
    ) -> Result<Self, SpawnError> {
        cfg.validate()?;
        let endpoints = Endpoints {
            local: cfg.local_addr,
            peer: cfg.peer_addr,
            port: cfg.port,
            md5: cfg.md5_password.clone(),
            interface: cfg.interface.clone(),
        };
        let listener = endpoints.listen().map_err(|source| SpawnError::Listen {
            addr: cfg.local_addr,
            port: cfg.port,
            source,
        })?;
        state_tx.send_replace(NeighborState::new(&cfg));
        let state = state_tx.subscribe();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (net_tx, net_rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("bgp", tunnel = cfg.tunnel, peer = %cfg.peer_addr);
        let session = Session {
            fsm: Fsm::new(cfg.fsm()),
            policy: cfg.policy(),
            snapshot: NeighborState::new(&cfg),
            default_on: true,
            cfg,
            endpoints,
            listener,
            accept_paused: None,
            accept_backoff: AcceptBackoff::new("BGP listener"),
            stray_log: LogLimit::new(LOG_EVERY),
            lingering: Arc::new(Semaphore::new(network::MAX_LINGERING)),
            rib: AdjRibIn::default(),
            timers: HashMap::new(),
            conns: HashMap::new(),
            adopted_at: HashMap::new(),
            connecting: None,
            candidate: None,
            next_serial: 0,
            net_tx,
            net_rx,
            commands: command_rx,
            state_tx,
            routes,
            published: BTreeSet::new(),
            last_io_error: None,
            md5_base: Md5Counters::default(),
            queue: VecDeque::new(),
            closing: Vec::new(),
        };
        let name = match TunnelId::from_index(session.cfg.tunnel as usize) {
            Some(id) => format!("bgp-{}", id.key()),
            None => format!("bgp-{}", session.cfg.tunnel),
        };
        let task = Task::spawn(name, session.run().instrument(span));
        Ok(Speaker {
            state,
            commands,
            task,
        })
    }

    /// The current snapshot.
    #[must_use]
    pub fn state(&self) -> NeighborState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<NeighborState> {
        self.state.clone()
    }

    /// `ManualStop`: Cease 6/2 to the peer, routes withdrawn, no reconnect until
    /// [`Speaker::start`].
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// `ManualStart` after a stop.
    pub fn start(&self) {
        let _ = self.commands.send(Command::Start);
    }

    /// A handle that switches 0.0.0.0/0 on and off, for a task that follows the LAN side.
    #[must_use]
    pub fn default_switch(&self) -> DefaultSwitch {
        DefaultSwitch(self.commands.clone())
    }

    /// Advertises 0.0.0.0/0 (`true`, the default) or withdraws it (an UPDATE each way while
    /// the session is up; a session that comes up later starts with what was asked last).
    pub fn originate_default(&self, on: bool) {
        let _ = self.commands.send(Command::Default(on));
    }

    /// Stops the session (Cease 6/2 to the peer, routes withdrawn) and waits for the task to
    /// end, the NOTIFICATION out (at most 2 s).
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown);
        self.task.ended().await;
    }

    /// For a restart of the agent (graceful restart, RFC 4724): closes the TCP connection
    /// without a NOTIFICATION, so a GR-aware peer keeps our routes for the restart time, and
    /// keeps the routes learned from the peer installed (the next run adopts them). Waits for
    /// the task to end (at most 2 s).
    pub async fn detach(self) {
        let _ = self.commands.send(Command::Detach);
        self.task.ended().await;
    }

    /// The session's task, for the agent to watch.
    #[must_use]
    pub fn task(&self) -> &Task {
        &self.task
    }
}

/// Switches a speaker's 0.0.0.0/0 on and off ([`Speaker::originate_default`]).
#[derive(Clone)]
pub struct DefaultSwitch(mpsc::UnboundedSender<Command>);

impl DefaultSwitch {
    pub fn set(&self, on: bool) {
        let _ = self.0.send(Command::Default(on));
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

struct Session {
    cfg: NeighborConfig,
    policy: super::rib::ImportPolicy,
    endpoints: Endpoints,
    listener: Listener,
    /// After a failed accept, no accept until then.
    accept_paused: Option<tokio::time::Instant>,
    accept_backoff: AcceptBackoff,
    /// Refused connections from others than the neighbour: a line per [`LOG_EVERY`].
    stray_log: LogLimit,
    /// Slots for refused connections that linger (see [`network::refuse`]).
    lingering: Arc<Semaphore>,
    fsm: Fsm,
    rib: AdjRibIn,
    timers: HashMap<Timer, tokio::time::Instant>,
    conns: HashMap<Conn, Connection>,
    /// When each connection's TCP handshake completed (for connect → Established).
    adopted_at: HashMap<Conn, Instant>,
    /// The outgoing connect in progress: its serial and task.
    connecting: Option<(u64, JoinHandle<()>)>,
    /// A socket waiting for the FSM's Adopt or Refuse.
    candidate: Option<TcpStream>,
    next_serial: u64,
    net_tx: network::Events,
    net_rx: mpsc::UnboundedReceiver<NetEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
    state_tx: watch::Sender<NeighborState>,
    snapshot: NeighborState,
    /// 0.0.0.0/0 is to be advertised (see [`Speaker::originate_default`]).
    default_on: bool,
    routes: RouteHandle,
    /// What the route manager last heard from us.
    published: BTreeSet<Ipv4Net>,
    last_io_error: Option<String>,
    md5_base: Md5Counters,
    /// Events raised while handling actions (max-prefix), fed next.
    queue: VecDeque<Event>,
    /// Connections closing: their last NOTIFICATION may still be on its way.
    closing: Vec<JoinHandle<()>>,
}

impl Session {
    async fn run(mut self) {
        self.md5_base = Self::md5_counters();
        self.feed(Event::Start);
        let mut interface_check = tokio::time::interval(INTERFACE_CHECK);
        loop {
            let deadline = self.timers.values().min().copied();
            let paused = self.accept_paused;
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Start) => self.feed(Event::Start),
                    Some(Command::Stop) => self.feed(Event::Stop),
                    Some(Command::Default(on)) => self.set_default(on),
                    Some(Command::Shutdown) | None => {
                        self.feed(Event::Stop);
                        break;
                    }
                    Some(Command::Detach) => {
                        self.detach();
                        break;
                    }
                },
                accepted = self.listener.socket.accept(), if paused.is_none() => {
                    self.on_accept(accepted);
                    self.accept_ready();
                }
                () = sleep_until(paused.unwrap_or_else(tokio::time::Instant::now)),
                    if paused.is_some() => self.accept_paused = None,
                Some(event) = self.net_rx.recv() => self.on_net(event),
                () = sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if deadline.is_some() => self.on_timers(),
                _ = interface_check.tick(), if self.listener.ifindex.is_some() => {
                    self.follow_interface();
                }
            }
        }
        self.publish();
        // Let the Cease reach the peer before the task (and maybe the runtime) ends.
        let closing = std::mem::take(&mut self.closing);
        let _ = tokio::time::timeout(network::LINGER, futures::future::join_all(closing)).await;
    }

    fn feed(&mut self, event: Event) {
        self.queue.push_back(event);
        while let Some(event) = self.queue.pop_front() {
            let before = self.fsm.state();
            let actions = self.fsm.handle(event);
            for action in actions {
                self.act(action);
            }
            let after = self.fsm.state();
            if before != after {
                Debug::Transition {
                    from: before,
                    to: after,
                }
                .log();
            }
            // A socket the FSM neither adopted nor refused is not wanted.
            if let Some(stream) = self.candidate.take() {
                network::refuse(stream, None, &self.lingering);
            }
        }
        self.publish();
    }

    /// Lets the connections go with a FIN and nothing else, past the FSM: no Stop (its Cease
    /// would end the peer's graceful restart) and no Down (its withdrawal would remove the
    /// routes that keep forwarding while the agent restarts).
    fn detach(&mut self) {
        Debug::Detached.log();
        if let Some((_, task)) = self.connecting.take() {
            task.abort();
        }
        self.candidate = None;
        for (_, c) in self.conns.drain() {
            self.closing.push(c.close());
        }
    }

    fn on_timers(&mut self) {
        let now = tokio::time::Instant::now();
        let mut expired: Vec<(Timer, tokio::time::Instant)> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, at)| (*t, *at))
            .collect();
        expired.sort_by_key(|(_, at)| *at);
        for (timer, _) in expired {
            // An earlier expiry's actions may have stopped or restarted this one.
            if self.timers.get(&timer).is_none_or(|at| *at > now) {
                continue;
            }
            self.timers.remove(&timer);
            self.feed(match timer {
                Timer::ConnectRetry => Event::ConnectRetryExpired,
                Timer::IdleHold => Event::IdleHoldExpired,
                Timer::Hold(c) => Event::HoldExpired(c),
                Timer::Keepalive(c) => Event::KeepaliveExpired(c),
                Timer::Stable => Event::StableExpired,
            });
        }
    }

    fn on_accept(&mut self, accepted: io::Result<(TcpStream, std::net::SocketAddr)>) {
        let (stream, from) = match accepted {
            Ok(accepted) => {
                self.accept_backoff.accepted();
                accepted
            }
            Err(e) => {
                // Out of descriptors, say: the next accept would fail at once too.
                let wait = self.accept_backoff.failed(&e);
                self.accept_paused = Some(tokio::time::Instant::now() + wait);
                return;
            }
        };
        if from.ip() != self.cfg.peer_addr {
            // Closed at once: nothing to tell a stranger, and nothing of ours to drain.
            drop(stream);
            self.snapshot.refused_connections += 1;
            if let Some(suppressed) = self.stray_log.allow(Instant::now()) {
                Debug::StrayConnection { from, suppressed }.log();
            }
            return;
        }
        if let Err(e) = network::accepted(&stream) {
            Debug::AcceptFailed(&e).log();
            return;
        }
        self.candidate = Some(stream);
        self.feed(Event::TcpAccepted);
    }

    /// Accepts what else is queued on the listener already, up to [`ACCEPT_BURST`], then
    /// publishes once: under a flood the queue drains faster than one wake-up per connection.
    fn accept_ready(&mut self) {
        for _ in 0..ACCEPT_BURST {
            if self.accept_paused.is_some() {
                break;
            }
            match self.listener.socket.accept().now_or_never() {
                Some(accepted) => self.on_accept(accepted),
                None => break,
            }
        }
        self.publish();
    }

    /// Binds the listener to the tunnel interface again if that was created anew (a new
    /// index): a socket bound to the old one would never hear the peer.
    fn follow_interface(&mut self) {
        let Some(now) = self.endpoints.interface_index() else {
            return;
        };
        if Some(now) == self.listener.ifindex {
            return;
        }
        // Both may be bound at once: to two different devices, the address is not shared.
        match self.endpoints.listen() {
            Ok(listener) => {
                let old = std::mem::replace(&mut self.listener, listener);
                Debug::Relistened {
                    old: old.ifindex,
                    new: now,
                }
                .log();
            }
            // Tried again at the next check.
            Err(e) => Debug::RelistenFailed(&e).log(),
        }
    }

    fn on_net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected { serial, result } => {
                if self.connecting.as_ref().map(|(s, _)| *s) != Some(serial) {
                    return;
                }
                self.connecting = None;
                match result {
                    Ok(stream) => {
                        self.candidate = Some(stream);
                        self.feed(Event::TcpConnected);
                    }
                    Err(e) => {
                        Debug::ConnectFailed(&e).log();
                        self.last_io_error = Some(format!(
                            "connect to {}:{} failed: {e}",
                            self.cfg.peer_addr, self.cfg.port
                        ));
                        self.feed(Event::TcpFailed(Conn::Outgoing));
                    }
                }
            }
            NetEvent::Frame {
                conn,
                serial,
                bytes,
            } => {
                if !self.is_live(conn, serial) {
                    return;
                }
                self.snapshot.messages_received += 1;
                let cxt = self.cxt();
                match Message::decode(&bytes, cxt) {
                    Ok(message) => self.on_message(conn, message),
                    Err(error) => self.on_malformed(conn, &error),
                }
            }
            NetEvent::BadHeader {
                conn,
                serial,
                error,
            } => {
                if self.is_live(conn, serial) {
                    self.on_malformed(conn, &error);
                }
            }
            NetEvent::Closed {
                conn,
                serial,
                error,
            } => {
                if !self.is_live(conn, serial) {
                    return;
                }
                self.conns.remove(&conn);
                self.last_io_error = Some(match error {
                    Some(e) => format!("connection to the peer failed: {e}"),
                    None => "the peer closed the connection".into(),
                });
                self.feed(Event::TcpFailed(conn));
            }
        }
    }

    fn is_live(&self, conn: Conn, serial: u64) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.serial == serial)
    }

    fn cxt(&self) -> Cxt {
        self.fsm.negotiated().map(|n| n.cxt).unwrap_or_default()
    }

    fn on_message(&mut self, conn: Conn, message: Message) {
        Debug::Rx(conn, &message).log();
        let event = match message {
            Message::Open(open) => Event::Open(conn, open),
            Message::Update(update) => {
                for fault in &update.faults {
                    Debug::AttrFault(fault).log();
                }
                self.snapshot.attribute_faults += update.faults.len() as u64;
                Event::Update(conn, update)
            }
            Message::Notification(n) => Event::Notification(conn, n),
            Message::Keepalive => Event::Keepalive(conn),
            Message::RouteRefresh(r) => Event::RouteRefresh(conn, r),
        };
        self.feed(event);
    }

    fn on_malformed(&mut self, conn: Conn, error: &super::packet::DecodeError) {
        let answer = error.notification();
        Debug::Malformed {
            error,
            answer: answer.as_ref(),
        }
        .log();
        self.feed(Event::MessageError(conn, answer));
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connect => {
                self.snapshot.connect_attempts += 1;
                self.next_serial += 1;
                let task = self
                    .endpoints
                    .connect(self.next_serial, self.net_tx.clone());
                if let Some((_, old)) = self.connecting.replace((self.next_serial, task)) {
                    old.abort();
                }
            }
            Action::AbortConnect => {
                if let Some((_, task)) = self.connecting.take() {
                    task.abort();
                }
            }
            Action::Adopt(conn) => {
                if let Some(stream) = self.candidate.take() {
                    self.next_serial += 1;
                    let c = Connection::spawn(stream, conn, self.next_serial, self.net_tx.clone());
                    if let Some(old) = self.conns.insert(conn, c) {
                        self.closing.push(old.close());
                    }
                    self.adopted_at.insert(conn, Instant::now());
                }
            }
            Action::Refuse(notification) => {
                if let Some(stream) = self.candidate.take() {
                    let bytes = notification.map(|n| {
                        let m = Message::Notification(n);
                        Debug::Tx(Conn::Incoming, &m).log();
                        m.encode(Cxt::default())
                    });
                    network::refuse(stream, bytes, &self.lingering);
                }
            }
            Action::Send(conn, message) => self.send(conn, &message),
            Action::Close(conn) => {
                if let Some(c) = self.conns.remove(&conn) {
                    self.closing.retain(|h| !h.is_finished());
                    self.closing.push(c.close());
                }
                self.adopted_at.remove(&conn);
            }
            Action::StartTimer(timer, after) => {
                self.timers
                    .insert(timer, tokio::time::Instant::now() + after);
            }
            Action::StopTimer(timer) => {
                self.timers.remove(&timer);
            }
            Action::ConnectTimedOut => {
                self.snapshot.connect_timeouts += 1;
                Debug::ConnectTimedOut(self.snapshot.connect_timeouts).log();
                self.last_io_error = Some(format!(
                    "connect to {}:{} timed out",
                    self.cfg.peer_addr, self.cfg.port
                ));
                self.diagnose();
            }
            Action::Established(negotiated) => {
                let connect_to_established = self
                    .fsm
                    .primary()
                    .and_then(|c| self.adopted_at.get(&c))
                    .map(Instant::elapsed);
                Debug::Established {
                    hold_time: negotiated.hold_time,
                    connect_to_established,
                }
                .log();
                self.snapshot.established_at = Some(SystemTime::now());
                self.snapshot.session = Some(SessionInfo {
                    hold_time: negotiated.hold_time,
                    keepalive: negotiated.keepalive,
                    peer_id: negotiated.peer_id,
                    four_octet_as: negotiated.cxt.four_octet_as,
                    peer_route_refresh: negotiated.peer_route_refresh,
                    connect_to_established,
                });
                self.snapshot.connect_timeouts = 0;
                self.snapshot.diagnosis = None;
                self.snapshot.likely_password_mismatch = false;
                self.advertise();
            }
            Action::Down => {
                Debug::Down.log();
                self.rib.clear();
                self.publish_routes();
                self.snapshot.flaps += 1;
                self.snapshot.established_at = None;
                self.snapshot.session = None;
                self.snapshot.prefixes = super::state::PrefixCounts::default();
                self.md5_base = Self::md5_counters();
            }
            Action::Failed(failure) => self.failed(&failure),
            Action::Routes(update) => self.routes(&update),
            Action::Refresh => self.advertise(),
        }
    }

    fn send(&mut self, conn: Conn, message: &Message) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        Debug::Tx(conn, message).log();
        c.send(message.encode(self.cxt()));
        self.snapshot.messages_sent += 1;
    }

    /// Our Adj-RIB-Out: 0.0.0.0/0 with us as next hop (R18) unless withheld (the conditional
    /// default), then End-of-RIB.
    fn advertise(&mut self) {
        let Some(conn) = self.fsm.primary() else {
            return;
        };
        if self.default_on {
            let default =
                super::rib::default_route(self.cfg.local_asn, self.cfg.local_addr, self.cxt());
            self.send(conn, &Message::Update(default));
        }
        self.send(conn, &Message::Update(Update::default()));
        self.snapshot.prefixes.advertised = u32::from(self.default_on);
    }

    /// Advertises or withdraws 0.0.0.0/0 on an established session; remembers it otherwise.
    fn set_default(&mut self, on: bool) {
        if on == self.default_on {
            return;
        }
        self.default_on = on;
        tracing::info!(advertised = on, "0.0.0.0/0 to the DC");
        if self.fsm.state() != State::Established {
            return;
        }
        let Some(conn) = self.fsm.primary() else {
            return;
        };
        let update = if on {
            super::rib::default_route(self.cfg.local_asn, self.cfg.local_addr, self.cxt())
        } else {
            Update {
                withdrawn: vec![Ipv4Net::default()],
                ..Update::default()
            }
        };
        self.send(conn, &Message::Update(update));
        self.snapshot.prefixes.advertised = u32::from(on);
        self.publish();
    }

    fn routes(&mut self, update: &Update) {
        if update.is_end_of_rib() {
            // The peer has sent everything: what we kept from before our restart and it did
            // not send again can go (RFC 4724 §4.1).
            self.routes.end_of_rib(self.cfg.tunnel);
        }
        let applied = self.rib.apply(update, self.cxt(), &self.policy);
        for (prefix, why) in &applied.rejected {
            Debug::Rejected(*prefix, *why).log();
            *self.snapshot.rejected_total.entry(*why).or_default() += 1;
        }
        let limit = self.cfg.max_prefixes;
        let received = self.rib.received();
        if received > limit as usize {
            Debug::MaxPrefix { limit, received }.log();
            self.queue.push_back(Event::MaxPrefixExceeded { limit });
            return;
        }
        if applied.changed {
            self.publish_routes();
        }
        self.count_prefixes();
    }

    fn count_prefixes(&mut self) {
        let p = &mut self.snapshot.prefixes;
        p.received = u32::try_from(self.rib.received()).unwrap_or(u32::MAX);
        p.rejected = u32::try_from(self.rib.rejected()).unwrap_or(u32::MAX);
        p.accepted = u32::try_from(self.published.len()).unwrap_or(u32::MAX);
    }

    fn publish_routes(&mut self) {
        let accepted = self.rib.accepted();
        if accepted != self.published {
            Debug::Accepted(&accepted).log();
            self.routes.learned(self.cfg.tunnel, accepted.clone());
            self.published = accepted;
        }
        self.count_prefixes();
    }

    fn failed(&mut self, failure: &Failure) {
        let (text, notification) = match failure {
            Failure::Sent(n) => (
                format!("sent NOTIFICATION {n}"),
                Some(NotificationInfo::new(Direction::Sent, n)),
            ),
            Failure::Received(n) => (
                format!("received NOTIFICATION {n}"),
                Some(NotificationInfo::new(Direction::Received, n)),
            ),
            Failure::ConnectionLost(_) => (
                self.last_io_error
                    .take()
                    .unwrap_or_else(|| "connection lost".into()),
                None,
            ),
            Failure::Stopped => ("stopped by the operator".into(), None),
        };
        if matches!(failure, Failure::Stopped) {
            Debug::Stopped.log();
        } else {
            Debug::Failed(&text).log();
        }
        self.snapshot.last_error = Some(LastError {
            at: SystemTime::now(),
            text,
            notification,
        });
        self.diagnose();
    }

    fn md5_counters() -> Md5Counters {
        Md5Counters::read().unwrap_or_else(|e| {
            Debug::Md5CountersUnreadable(&e).log();
            Md5Counters::default()
        })
    }

    /// Updates the likely cause of a session that does not come up.
    fn diagnose(&mut self) {
        if self.fsm.state() == State::Established {
            return;
        }
        // A NOTIFICATION crossed this session's TCP connection, so its TCP-MD5 keys agree: the
        // host-wide counters then belong to another session (the other tunnel's).
        let tcp_got_through = self
            .snapshot
            .last_error
            .as_ref()
            .is_some_and(|e| e.notification.is_some());
        let evidence = Evidence {
            md5_configured: self.cfg.md5_password.is_some(),
            connect_timeouts: self.snapshot.connect_timeouts,
            md5: if tcp_got_through {
                Md5Counters::default()
            } else {
                Self::md5_counters().since(self.md5_base)
            },
        };
        let diagnosis = Diagnosis::from_evidence(&evidence);
        let text = diagnosis.map(|d| d.to_string());
        if text != self.snapshot.diagnosis
            && let Some(t) = &text
        {
            Debug::Diagnosis(t).log();
        }
        self.snapshot.diagnosis = text;
        self.snapshot.likely_password_mismatch = diagnosis.is_some_and(Diagnosis::is_password);
    }

    fn publish(&mut self) {
        self.snapshot.state = self.fsm.state();
        let snapshot = &self.snapshot;
        self.state_tx.send_if_modified(|current| {
            if current == snapshot {
                false
            } else {
                current.clone_from(snapshot);
                true
            }
        });
    }
}
