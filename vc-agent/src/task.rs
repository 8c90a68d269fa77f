//! The agent's long-lived tasks, named, so that the death of any of them is seen: how a task
//! ended can be awaited any number of times, by the agent that watches every task and by the
//! owner that waits for it on shutdown.
//!
//! Built with the `testing` feature (test builds only), `VC_TEST_PANIC_TASK=<name>` makes the
//! task of that name panic `testing::PANIC_AFTER` after it starts: the supervision tests'
//! injected fault; `VC_TEST_CRASH_AT=<point>` SIGKILLs the process when it reaches that
//! [`testing::crash_point`] (the crash tests'). Without the feature nothing reads either.
use std::{fmt, future::Future};

use tokio::{sync::watch, task::AbortHandle};

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskEnd {
    /// Its future returned (for a task meant to run until the agent stops: a bug).
    Returned,
    /// It panicked, with this message.
    Panicked(String),
    /// It was aborted, or its runtime shut down.
    Aborted,
}

impl fmt::Display for TaskEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskEnd::Returned => f.write_str("returned"),
            TaskEnd::Panicked(message) => write!(f, "panicked: {message}"),
            TaskEnd::Aborted => f.write_str("was aborted"),
        }
    }
}

/// A named task on the current tokio runtime.
pub struct Task {
    name: String,
    abort: AbortHandle,
    end: watch::Receiver<Option<TaskEnd>>,
}

impl Task {
    /// Spawns `future` as the task `name`.
    pub fn spawn(
        name: impl Into<String>,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Task {
        let name = name.into();
        #[cfg(feature = "testing")]
        let future = testing::armed(&name, future);
        let handle = tokio::spawn(future);
        let abort = handle.abort_handle();
        let (tx, end) = watch::channel(None);
        tokio::spawn(async move {
            let ended = match handle.await {
                Ok(()) => TaskEnd::Returned,
                Err(e) if e.is_panic() => TaskEnd::Panicked(panic_message(&*e.into_panic())),
                Err(_) => TaskEnd::Aborted,
            };
            tx.send_replace(Some(ended));
        });
        Task { name, abort, end }
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn abort(&self) {
        self.abort.abort();
    }

    /// Waits until the task has ended, and says how.
    pub async fn ended(&self) -> TaskEnd {
        let mut end = self.end.clone();
        match end.wait_for(Option::is_some).await {
            Ok(ended) => ended.clone().unwrap_or(TaskEnd::Aborted),
            // The watcher itself went with its runtime.
            Err(_) => TaskEnd::Aborted,
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The first of `tasks` to end, named, and how; never, if there are none.
pub async fn first_to_end(tasks: &[&Task]) -> (String, TaskEnd) {
    if tasks.is_empty() {
        return std::future::pending().await;
    }
    let waits = tasks.iter().map(|t| {
        Box::pin(async move {
            let end = t.ended().await;
            (t.name().to_string(), end)
        })
    });
    futures::future::select_all(waits).await.0
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".into()
    }
}

/// The injected fault of the supervision tests (feature `testing` only).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::{future::Future, time::Duration};

    /// Names the task that is to panic.
    pub const PANIC_TASK: &str = "VC_TEST_PANIC_TASK";
    /// How long after its start the named task panics.
    pub const PANIC_AFTER: Duration = Duration::from_secs(2);
    /// What the injected panic says.
    pub const PANIC_MESSAGE: &str = "injected panic (VC_TEST_PANIC_TASK)";

    /// Names the crash point at which the process kills itself.
    pub const CRASH_AT: &str = "VC_TEST_CRASH_AT";

    /// SIGKILLs this process if `CRASH_AT` names `point`: nothing after it runs, no destructor,
    /// no unwinding, as when the OOM killer or an operator's `kill -9` strikes there.
    pub fn crash_point(point: &str) {
        if std::env::var(CRASH_AT).is_ok_and(|p| p == point) {
            tracing::error!(point, "injected crash ({CRASH_AT})");
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }

    /// `future`, or, if `PANIC_TASK` names `name`, `future` until it panics.
    pub fn armed(
        name: &str,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let armed = std::env::var(PANIC_TASK).is_ok_and(|n| n == name);
        panic_after(armed.then_some(PANIC_AFTER), future)
    }

    /// `future`, which panics after `after` unless that is `None`.
    pub async fn panic_after(after: Option<Duration>, future: impl Future<Output = ()>) {
        if let Some(after) = after {
            tokio::select! {
                () = future => {}
                () = tokio::time::sleep(after) => panic!("{PANIC_MESSAGE}"),
            }
        } else {
            future.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Task, TaskEnd, first_to_end, testing};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn each_way_of_ending_is_told_to_every_waiter() {
        rt().block_on(async {
            let returned = Task::spawn("returns", async {});
            let panics = Task::spawn("panics", async { panic!("boom {}", 7) });
            let aborted = Task::spawn("runs", std::future::pending());
            aborted.abort();
            assert_eq!(returned.ended().await, TaskEnd::Returned);
            assert_eq!(returned.ended().await, TaskEnd::Returned, "asked twice");
            assert_eq!(panics.ended().await, TaskEnd::Panicked("boom 7".into()));
            assert_eq!(aborted.ended().await, TaskEnd::Aborted);
            assert_eq!(
                TaskEnd::Panicked("boom".into()).to_string(),
                "panicked: boom"
            );
        });
    }

    #[test]
    fn the_first_task_to_end_is_named() {
        rt().block_on(async {
            let steady = Task::spawn("steady", std::future::pending());
            let fragile = Task::spawn("fragile", async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                panic!("gone");
            });
            let (name, end) =
                tokio::time::timeout(Duration::from_secs(5), first_to_end(&[&steady, &fragile]))
                    .await
                    .expect("a task ended");
            assert_eq!(name, "fragile");
            assert_eq!(end, TaskEnd::Panicked("gone".into()));
            let none = tokio::time::timeout(Duration::from_millis(50), first_to_end(&[])).await;
            assert!(none.is_err(), "no task: nothing ends");
        });
    }

    #[test]
    fn an_armed_task_panics_and_an_unarmed_one_runs_on() {
        rt().block_on(async {
            let soon = Duration::from_millis(10);
            let armed = Task::spawn(
                "armed",
                testing::panic_after(Some(soon), std::future::pending()),
            );
            let quiet = Task::spawn("quiet", testing::panic_after(None, std::future::pending()));
            let (name, end) = first_to_end(&[&quiet, &armed]).await;
            assert_eq!(
                (name.as_str(), end),
                ("armed", TaskEnd::Panicked(testing::PANIC_MESSAGE.into()))
            );
            tokio::time::sleep(soon * 5).await;
            assert!(
                tokio::time::timeout(Duration::from_millis(1), quiet.ended())
                    .await
                    .is_err(),
                "an unarmed task runs on"
            );
        });
    }
}
