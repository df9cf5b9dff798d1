//! Keeps the I/O runtime polling for a short while after each request
//! starts or finishes instead of sleeping in `epoll_wait` (`limits.io_spin_us`).
//!
//! Under load the I/O thread runs out of ready tasks many times per
//! millisecond: it waits for a worker to finish a search or for the client's
//! next request. Sleeping in `epoll_wait` then costs a wake-up for each of
//! them — the worker writes tokio's eventfd, the client's write wakes the
//! epoll waiter — and on a virtual machine a wake-up of a thread on the other
//! core is an inter-processor interrupt, among the most expensive things the
//! I/O thread does (`docs/benchmarks.md`). The spinner is a task that, while
//! a request started or finished within the window, yields back to the
//! runtime (which then polls its I/O driver without blocking) and yields the
//! core to any other runnable thread between polls, so a worker that wants
//! the core gets it. After the window it sleeps on a `Notify` until the next
//! request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Shared between the request path (which marks activity) and the spinner.
pub struct IoSpin {
    spin: Duration,
    epoch: Instant,
    last_activity_us: AtomicU64,
    sleeping: AtomicBool,
    /// Times the spinner woke from sleep.
    wake_ups: AtomicU64,
    wake: Notify,
}

impl IoSpin {
    pub fn new(spin: Duration) -> Arc<IoSpin> {
        Arc::new(IoSpin {
            spin,
            epoch: Instant::now(),
            last_activity_us: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            wake_ups: AtomicU64::new(0),
            wake: Notify::new(),
        })
    }

    /// Whether the spinner is asleep (waiting for the next request).
    pub fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }

    /// How many times the spinner woke from sleep.
    pub fn wake_ups(&self) -> u64 {
        self.wake_ups.load(Ordering::Relaxed)
    }

    /// A request started or finished at `when` (the request path has the
    /// time at hand already: no second clock read).
    pub fn touch_at(&self, when: Instant) {
        if self.spin.is_zero() {
            return;
        }
        let since_epoch = when.saturating_duration_since(self.epoch);
        self.last_activity_us
            .store(since_epoch.as_micros() as u64, Ordering::SeqCst);
        // Paired with the spinner's store of `sleeping` and its second look
        // at the activity (all SeqCst): one side always sees the other.
        if self.sleeping.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// The spinner: yields to the runtime (which then polls its I/O driver
    /// without blocking) while there was activity within `spin`.
    pub async fn run(self: Arc<Self>) {
        if self.spin.is_zero() {
            return;
        }
        let spin_us = self.spin.as_micros() as u64;
        let active = || {
            let now = self.epoch.elapsed().as_micros() as u64;
            now.saturating_sub(self.last_activity_us.load(Ordering::SeqCst)) < spin_us
        };
        loop {
            if active() {
                std::thread::yield_now();
                tokio::task::yield_now().await;
                continue;
            }
            self.sleeping.store(true, Ordering::SeqCst);
            // A request that started between the check and the store did not
            // see `sleeping`: look again before waiting.
            if !active() {
                self.wake.notified().await;
                self.wake_ups.fetch_add(1, Ordering::Relaxed);
            }
            self.sleeping.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (up to 5 s) until `condition` holds.
    async fn eventually(condition: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }

    #[tokio::test]
    async fn spins_after_activity_and_sleeps_when_it_stops() {
        let spin = IoSpin::new(Duration::from_millis(20));
        let spinner = tokio::spawn(spin.clone().run());
        assert!(
            eventually(|| spin.is_sleeping()).await,
            "asleep before any request"
        );
        // Counted wake-ups rather than the awake state itself, which lasts
        // only the window and may pass unseen on a busy machine.
        for round in 1..=3 {
            spin.touch_at(Instant::now());
            assert!(
                eventually(|| spin.wake_ups() >= round).await,
                "a request wakes it"
            );
            assert!(
                eventually(|| spin.is_sleeping()).await,
                "asleep again after the window"
            );
        }
        spinner.abort();
    }

    #[tokio::test]
    async fn a_zero_window_never_spins() {
        let spin = IoSpin::new(Duration::ZERO);
        spin.clone().run().await; // returns at once
        spin.touch_at(Instant::now());
        assert!(!spin.is_sleeping(), "nothing ever runs, so nothing sleeps");
    }
}
