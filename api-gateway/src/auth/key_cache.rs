//! Validated keys, trusted for [`CACHE_TTL`] without asking the database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::caller::Caller;

/// How long a validated key is trusted without asking the database.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

struct CachedKey {
    /// SHA-256 of the whole key: a cache hit still proves the secret.
    digest: [u8; 32],
    caller: Caller,
    expires_at: Option<i64>,
    cached_at: Instant,
}

/// Validated keys by key id. The mutex guards the map only (no I/O under
/// it); entries are removed at once when their key is revoked or their
/// customer suspended or changed, and an entry past its key's expiry is
/// refused on the next request.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, CachedKey>>,
}

impl KeyCache {
    /// Forgets one key.
    pub fn invalidate_key(&self, key_id: &str) {
        self.entries.lock().remove(key_id);
    }

    /// Forgets every key of a customer.
    pub fn invalidate_customer(&self, customer_id: &str) {
        self.entries
            .lock()
            .retain(|_, entry| entry.caller.customer.id != customer_id);
    }

    pub(super) fn lookup(&self, key_id: &str, digest: &[u8; 32], now: i64) -> Option<Caller> {
        let mut entries = self.entries.lock();
        let entry = entries.get(key_id)?;
        let fresh =
            entry.cached_at.elapsed() < CACHE_TTL && entry.expires_at.is_none_or(|at| now < at);
        if !fresh {
            entries.remove(key_id);
            return None;
        }
        bool::from(entry.digest.ct_eq(digest)).then(|| entry.caller.clone())
    }

    pub(super) fn insert(&self, caller: &Caller, digest: [u8; 32], expires_at: Option<i64>) {
        self.entries.lock().insert(
            caller.key_id.clone(),
            CachedKey {
                digest,
                caller: caller.clone(),
                expires_at,
                cached_at: Instant::now(),
            },
        );
    }
}
