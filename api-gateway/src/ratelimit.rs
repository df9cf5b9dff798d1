//! Rate limits per customer × endpoint class × tier (GCRA through
//! `governor`), and the throttle on failed authentications per address
//! (a fixed one-minute window: only failures count, which a GCRA limiter
//! cannot express without charging every request).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{RateLimitSettings, TierRates};
use crate::error::ApiError;
use crate::store::{Customer, Tier};

/// The endpoint classes limits apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    Capture,
    Search,
    Reflect,
    Other,
    Admin,
}

impl RateClass {
    fn label(self) -> &'static str {
        match self {
            RateClass::Capture => "capture",
            RateClass::Search => "search",
            RateClass::Reflect => "reflect",
            RateClass::Other => "other",
            RateClass::Admin => "admin",
        }
    }

    fn per_minute(self, rates: &TierRates) -> u32 {
        match self {
            RateClass::Capture => rates.capture_per_minute,
            RateClass::Search => rates.search_per_minute,
            RateClass::Reflect => rates.reflect_per_minute,
            RateClass::Other => rates.other_per_minute,
            RateClass::Admin => rates.admin_per_minute,
        }
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// Every limiter of the gateway. Each keyed limiter holds its own state
/// (lock-free, sharded by key); nothing here needs a lock of ours.
pub struct RateLimits {
    limiters: HashMap<(Tier, RateClass), DefaultKeyedRateLimiter<String>>,
    /// Failed authentications per address in the current one-minute
    /// window (window start, count). Guards the map only; taken briefly by
    /// the auth extractor.
    failed_auth: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    failed_auth_per_minute: u32,
}

impl RateLimits {
    /// The limiters for these settings; `failed_auth_per_minute` failed
    /// authentications per address and minute are tolerated.
    pub fn new(settings: &RateLimitSettings, failed_auth_per_minute: u32) -> RateLimits {
        let mut limiters = HashMap::new();
        for (tier, rates) in [
            (Tier::Free, &settings.free),
            (Tier::Pro, &settings.pro),
            (Tier::Enterprise, &settings.enterprise),
        ] {
            for class in [
                RateClass::Capture,
                RateClass::Search,
                RateClass::Reflect,
                RateClass::Other,
                RateClass::Admin,
            ] {
                limiters.insert(
                    (tier, class),
                    RateLimiter::keyed(per_minute(class.per_minute(rates))),
                );
            }
        }
        RateLimits {
            limiters,
            failed_auth: Mutex::new(HashMap::new()),
            failed_auth_per_minute,
        }
    }

    /// Takes one request of `class` for `customer`, or refuses with 429.
    pub fn check(&self, customer: &Customer, class: RateClass) -> Result<(), ApiError> {
        let Some(limiter) = self.limiters.get(&(customer.tier, class)) else {
            return Ok(());
        };
        limiter.check_key(&customer.id).map_err(|not_until| {
            metrics::counter!("gateway_rate_limited_total", "endpoint" => class.label())
                .increment(1);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                endpoint: class.label(),
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    /// Refuses an address that failed to authenticate
    /// `failed_auth_per_minute` times within the current minute.
    pub fn check_auth_failures(&self, ip: IpAddr) -> Result<(), ApiError> {
        let mut failures = self.failed_auth.lock();
        let Some(&(started, count)) = failures.get(&ip) else {
            return Ok(());
        };
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_secs(60) {
            failures.remove(&ip);
            return Ok(());
        }
        if count < self.failed_auth_per_minute {
            return Ok(());
        }
        metrics::counter!("gateway_rate_limited_total", "endpoint" => "auth").increment(1);
        Err(ApiError::RateLimited {
            endpoint: "authentication",
            retry_after_secs: 60 - elapsed.as_secs(),
        })
    }

    /// Counts a failed authentication from `ip`.
    pub fn record_auth_failure(&self, ip: IpAddr) {
        let mut failures = self.failed_auth.lock();
        let entry = failures.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        // Bound the map: forget windows that are over.
        if failures.len() > 100_000 {
            failures.retain(|_, (started, _)| started.elapsed() < Duration::from_secs(60));
        }
    }
}
