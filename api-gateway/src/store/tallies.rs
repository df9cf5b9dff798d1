//! Counters that every search and reflect bumps: one retrieval for each
//! returned episode (the popularity that ranking's `usage` reads) and one
//! search or reflect in the customer's month. They are gathered in memory
//! and written in one transaction once the oldest is [`FLUSH_AFTER`] old,
//! instead of one write transaction per query: under load, write
//! transactions (WAL frames, shared-memory locks) and these counting
//! statements were about a tenth of the gateway's own CPU.
//!
//! Reads that show these counters (an episode, a list, the usage) write
//! the pending ones first ([`super::Store::run_fresh`]), so a caller sees
//! its own searches counted. A crash loses at most the last
//! [`FLUSH_AFTER`] of them; captures and their quota are never deferred.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{Episodes, StoreError, Usage};

/// How long a counted query may wait in memory before it is written.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);

/// Searches and reflects of one customer in one month.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct QueryCounts {
    searches: u64,
    reflects: u64,
}

/// Counts not yet written.
#[derive(Debug, Default)]
pub(super) struct Tallies {
    /// (customer, episode) → retrievals.
    retrievals: HashMap<(String, u64), u64>,
    /// (customer, month) → queries.
    queries: HashMap<(String, String), QueryCounts>,
    /// When the oldest pending count was added.
    oldest: Option<Instant>,
}

impl Tallies {
    /// Counts one query (`reflect` or a search) of `customer_id` in `month`
    /// and one retrieval of each of `returned`.
    pub(super) fn add(&mut self, customer_id: &str, month: &str, reflect: bool, returned: &[u64]) {
        for &id in returned {
            *self
                .retrievals
                .entry((customer_id.to_owned(), id))
                .or_default() += 1;
        }
        let counts = self
            .queries
            .entry((customer_id.to_owned(), month.to_owned()))
            .or_default();
        if reflect {
            counts.reflects += 1;
        } else {
            counts.searches += 1;
        }
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Whether the oldest pending count has waited [`FLUSH_AFTER`].
    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.oldest
            .is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_AFTER)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.oldest.is_none()
    }

    /// Moves `other`'s counts into these (a write that failed is retried
    /// with the next one).
    pub(super) fn absorb(&mut self, other: Tallies) {
        for (key, n) in other.retrievals {
            *self.retrievals.entry(key).or_default() += n;
        }
        for (key, q) in other.queries {
            let counts = self.queries.entry(key).or_default();
            counts.searches += q.searches;
            counts.reflects += q.reflects;
        }
        self.oldest = match (self.oldest, other.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Writes every count in one transaction.
    pub(super) fn write(&self, connection: &mut Connection) -> Result<(), StoreError> {
        let tx = connection.transaction()?;
        for ((customer_id, id), n) in &self.retrievals {
            Episodes(&tx).count_retrievals(customer_id, *id, *n)?;
        }
        for ((customer_id, month), q) in &self.queries {
            Usage(&tx).count_queries(customer_id, month, q.searches, q.reflects)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_come_due() {
        let mut t = Tallies::default();
        assert!(t.is_empty());
        assert!(!t.is_due(Instant::now() + FLUSH_AFTER));
        t.add("c1", "2026-12", false, &[1, 2]);
        t.add("c1", "2026-12", true, &[2]);
        assert_eq!(t.retrievals[&("c1".to_owned(), 2)], 2);
        assert_eq!(
            t.queries[&("c1".to_owned(), "2026-12".to_owned())],
            QueryCounts {
                searches: 1,
                reflects: 1
            }
        );
        assert!(!t.is_due(Instant::now()));
        assert!(t.is_due(Instant::now() + FLUSH_AFTER));

        let mut other = Tallies::default();
        other.add("c1", "2026-12", false, &[1]);
        t.absorb(other);
        assert_eq!(t.retrievals[&("c1".to_owned(), 1)], 2);
        assert_eq!(
            t.queries[&("c1".to_owned(), "2026-12".to_owned())].searches,
            2
        );
    }
}
