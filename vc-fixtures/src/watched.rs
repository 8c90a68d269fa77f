//! The datapath half of `vc-agent run` on its own: [`Datapath::up`] and the watch task that
//! keeps every program attached ([`reconcile::watch`]), in a namespace, until dropped. For
//! the tests that disturb the host under the datapath and judge the repair.
use std::{sync::Arc, thread::JoinHandle, time::Duration};

use vc_agent::datapath::{Datapath, DatapathSpec, reconcile};
use vc_testkit::NetNs;

/// The datapath up and watched in a namespace, as `vc-agent run` has it.
pub struct Watched {
    pub datapath: Arc<Datapath>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watched {
    /// Brings the datapath up in `ns` as `spec` says (or adopts it) and starts the watch.
    #[must_use]
    pub fn start(ns: &NetNs, spec: DatapathSpec) -> Watched {
        let (up_tx, up_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = ns
            .spawn_in(move || {
                crate::block_on(async move {
                    let datapath = match Datapath::up(spec).await {
                        Ok(d) => Arc::new(d),
                        Err(e) => {
                            let _ = up_tx.send(Err(format!("{e:#}")));
                            return;
                        }
                    };
                    let watch = reconcile::watch(Arc::clone(&datapath));
                    let _ = up_tx.send(Ok(datapath));
                    let _ = stopped.await;
                    watch.abort();
                });
            })
            .expect("thread");
        let datapath = up_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("datapath up in time")
            .unwrap_or_else(|e| panic!("datapath up: {e}"));
        Watched {
            datapath,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the watch (the datapath stays, as when the agent stops).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop();
    }
}
