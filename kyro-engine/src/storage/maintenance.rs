//! The instance's maintenance threads: the sealer (seals hot segments on a
//! writer's request, and whatever waits when it starts or wakes up) and the
//! optimizer (merges and rewrites cold segments).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, select, Receiver, Sender};

use super::core::InstanceCore;
use super::error::StorageError;
use super::namespace::Namespace;
use super::tiering;
use crate::error::EngineError;

/// The background threads: the sealer (seals on request, and whatever
/// waits when it starts or wakes up) and the optimizer (merges and
/// rewrites). They are separate so that a long merge never delays a seal:
/// a seal that waited would leave its points to be rebuilt at the next
/// recovery, and a crash during a merge would take every queued seal with it.
pub(crate) struct Background {
    stop: Sender<()>,
    sealer: JoinHandle<()>,
    optimizer: JoinHandle<()>,
}

impl Background {
    /// Stops both threads and waits for them (a merge in progress notices
    /// `InstanceCore::stopping` and gives up).
    pub(crate) fn stop(self) {
        // Dropping the sender wakes both threads' `recv(stopped)`.
        drop(self.stop);
        for handle in [self.sealer, self.optimizer] {
            if handle.join().is_err() {
                tracing::error!("background thread panicked");
            }
        }
    }
}

pub(crate) fn start_background(
    core: Arc<InstanceCore>,
    seal_requests: Receiver<u32>,
) -> Result<Background, StorageError> {
    let (stop, stopped) = bounded::<()>(0);
    let interval = core.config.optimizer.interval;
    let dir = core.dir.clone();
    let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .map_err(|e| StorageError::io(&dir, e))
    };
    let sealer = {
        let core = Arc::clone(&core);
        let stopped = stopped.clone();
        spawn(
            "kyro-sealer",
            Box::new(move || {
                // Segments left waiting by a crash (recovery queues an
                // over-full hot tier) are sealed first.
                seal_all_pending(&core);
                loop {
                    select! {
                        recv(stopped) -> _ => break,
                        recv(seal_requests) -> request => {
                            let Ok(id) = request else { break };
                            if let Some(namespace) = core.namespace_by_id(id) {
                                seal(&core, &namespace);
                            }
                        }
                        default(interval) => seal_all_pending(&core),
                    }
                }
            }),
        )?
    };
    let optimizer = spawn(
        "kyro-optimizer",
        Box::new(move || loop {
            select! {
                recv(stopped) -> _ => break,
                default(interval) => optimize_all(&core),
            }
        }),
    )?;
    Ok(Background {
        stop,
        sealer,
        optimizer,
    })
}

/// Seals the hot segments waiting in every namespace (the sealer's
/// periodic pass; requests from writers are handled as they come).
fn seal_all_pending(core: &InstanceCore) {
    for namespace in core.all_namespaces() {
        let set = namespace.segment_set();
        if !set.sealing.is_empty() {
            seal(core, &namespace);
        }
        // The writable graph, while it takes inserts: an island the
        // neighbour heuristic cut off is linked back (one walk of the
        // graph; nothing to do in a sound one).
        let relinked = set.hot.index().reconnect_unreachable();
        if relinked > 0 {
            tracing::warn!(
                tenant = %namespace.tenant,
                namespace = %namespace.name,
                relinked,
                "linked unreachable hot points back into the graph"
            );
        }
    }
}

/// Seals what waits in `namespace`, logging failures.
fn seal(core: &InstanceCore, namespace: &Namespace) {
    if let Err(e) = tiering::seal_pending(core, namespace) {
        tracing::error!(namespace = %namespace.name, error = %e, "sealing failed");
    }
}

/// One optimizer pass over every namespace (the optimizer thread).
fn optimize_all(core: &InstanceCore) {
    for namespace in core.all_namespaces() {
        if core.stopping.load(Ordering::Acquire) {
            return;
        }
        match tiering::optimize(core, &namespace, false) {
            Ok(_) => {}
            Err(StorageError::Invalid(EngineError::Cancelled { .. })) => {
                tracing::info!(namespace = %namespace.name, "merge cancelled; inputs kept");
            }
            Err(e) => {
                tracing::error!(namespace = %namespace.name, error = %e, "optimizer failed");
            }
        }
    }
}
