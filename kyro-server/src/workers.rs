//! The pool that runs CPU-heavy work (searches, writes, flushes, snapshots)
//! off the async runtime, so tonic's reactor threads only move bytes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use tokio::sync::oneshot;
use tonic::Status;

/// A fixed pool of worker threads shared by every instance.
pub struct WorkerPool {
    pool: rayon::ThreadPool,
}

impl WorkerPool {
    /// `threads` workers (0: one per core).
    pub fn new(threads: usize) -> Result<WorkerPool, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kyro-worker-{i}"))
            .build()?;
        Ok(WorkerPool { pool })
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `work` on the pool and waits for it without blocking the
    /// runtime. Work whose `deadline` has passed by the time a worker picks
    /// it up is dropped with DEADLINE_EXCEEDED; a panic becomes INTERNAL.
    pub async fn run<T, F>(&self, deadline: Option<Instant>, work: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Status> + Send + 'static,
    {
        let (done, answer) = oneshot::channel();
        self.pool.spawn(move || {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = done.send(Err(Status::deadline_exceeded(
                    "the deadline passed while the request waited for a worker",
                )));
                return;
            }
            let outcome = catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "request handler panicked");
                Err(Status::internal(
                    "the server failed while handling the request",
                ))
            });
            // The caller may have gone (deadline, cancellation): nothing to do.
            let _ = done.send(outcome);
        });
        answer
            .await
            .map_err(|_| Status::internal("a worker dropped the request"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_work_and_turns_panics_and_stale_work_into_statuses() {
        let pool = WorkerPool::new(2).unwrap();
        assert_eq!(pool.run(None, || Ok(6 * 7)).await.unwrap(), 42);

        let err = pool
            .run::<(), _>(None, || panic!("boom"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal);

        let past = Instant::now() - Duration::from_millis(1);
        let err = pool.run(Some(past), || Ok(1)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    }
}
