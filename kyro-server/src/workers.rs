//! The pool that runs CPU-heavy work (searches, writes, flushes, snapshots)
//! off the async runtime, so tonic's reactor threads only move bytes.
//!
//! A worker that runs out of work first polls the queue for a short while
//! (`limits.worker_spin_us`), yielding its core between polls, and only then
//! blocks on the channel (crossbeam). Under load the next request usually
//! arrives within that window, so it is picked up without the futex wake-up
//! and context switch a sleeping worker costs the thread that queues it
//! (measured +11-19 % searches/s over gRPC on two cores, docs/benchmarks.md).
//! Yielding instead of spinning hard matters on a small machine, where the
//! server shares its cores with its I/O thread and with clients: a yielding
//! worker gives way to any of them (rayon's workers, which spin hard, took
//! their CPU).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::oneshot;
use tonic::Status;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed pool of worker threads shared by every instance.
pub struct WorkerPool {
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// The cores this process may run on (1 when that cannot be read).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl WorkerPool {
    /// `threads` workers (0: one per core) that poll for `spin` before they
    /// sleep on an empty queue.
    pub fn new(threads: usize, spin: Duration) -> std::io::Result<WorkerPool> {
        let count = if threads == 0 {
            available_cores()
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
                        while let Some(job) = next_job(&queue, spin) {
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

/// The next job: polled for up to `spin` (yielding between polls), then
/// waited for. `None` once the pool is shutting down and the queue is empty.
fn next_job(queue: &Receiver<Job>, spin: Duration) -> Option<Job> {
    let polling_since = Instant::now();
    loop {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if polling_since.elapsed() < spin => std::thread::yield_now(),
            Err(TryRecvError::Empty) => return queue.recv().ok(),
        }
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
        let pool = WorkerPool::new(2, Duration::from_micros(200)).unwrap();
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

    #[tokio::test]
    async fn workers_that_slept_still_pick_up_work_and_drop_joins_them() {
        for spin in [Duration::ZERO, Duration::from_micros(200)] {
            let pool = WorkerPool::new(2, spin).unwrap();
            for round in 0..3u64 {
                // Long enough for every worker to give up polling and sleep.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let answers: Vec<u64> = run_eight_in_turn(&pool, round).await;
                assert_eq!(answers, (0..8).map(|i| i * round).collect::<Vec<_>>());
            }
            drop(pool);
        }
    }

    async fn run_eight_in_turn(pool: &WorkerPool, round: u64) -> Vec<u64> {
        let mut answers = Vec::new();
        for i in 0..8u64 {
            answers.push(pool.run(None, move || Ok(i * round)).await.unwrap());
        }
        answers
    }
}
