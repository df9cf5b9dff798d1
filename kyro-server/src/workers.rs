//! The pool that runs CPU-heavy work (searches, writes, flushes, snapshots)
//! off the async runtime, so tonic's reactor threads only move bytes.
//!
//! Workers block on a channel (crossbeam) rather than spin: on a small
//! machine the server shares its cores with clients, and idle spinning
//! (as rayon's workers do before sleeping) takes CPU from them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;
use tonic::Status;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of worker threads shared by every instance.
pub struct WorkerPool {
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// `threads` workers (0: one per core).
    pub fn new(threads: usize) -> std::io::Result<WorkerPool> {
        let count = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let threads = (0..count)
            .map(|i| {
                let queue: Receiver<Job> = queue.clone();
                std::thread::Builder::new()
                    .name(format!("kyro-worker-{i}"))
                    .spawn(move || {
                        for job in queue.iter() {
                            job();
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(WorkerPool {
            jobs: Some(jobs),
            threads,
        })
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads.len()
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
        let job: Job = Box::new(move || {
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
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(Status::unavailable("the server is shutting down"));
        }
        answer
            .await
            .map_err(|_| Status::internal("a worker dropped the request"))?
    }
}

impl Drop for WorkerPool {
    /// Lets queued work finish, then joins the workers.
    fn drop(&mut self) {
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_work_and_turns_panics_and_stale_work_into_statuses() {
        let pool = WorkerPool::new(2).unwrap();
        assert_eq!(pool.threads(), 2);
        assert_eq!(pool.run(None, || Ok(6 * 7)).await.unwrap(), 42);

        let err = pool
            .run::<(), _>(None, || panic!("boom"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal);
        // The worker survived the panic.
        assert_eq!(pool.run(None, || Ok(1)).await.unwrap(), 1);

        let past = Instant::now() - Duration::from_millis(1);
        let err = pool.run(Some(past), || Ok(1)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    }
}
