//! The `usage` table: captures, searches and reflects per customer and
//! calendar month, and the quota check-and-charge.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::{StoreError, Tier};

/// The grace beyond the quota, as a fraction of it: captures are refused
/// once `quota * (1 + GRACE)` are used.
pub const GRACE: f64 = 0.2;
/// From this fraction of the quota on, responses carry a warning header.
pub const WARNING_AT: f64 = 0.8;

/// One month of a customer's usage.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UsageMonth {
    pub month: String,
    pub captures: u64,
    pub searches: u64,
    pub reflects: u64,
}

/// The outcome of charging one capture.
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaCharge {
    /// Charged; `used` captures this month including this one.
    Charged {
        used: u64,
        quota: Option<u64>,
        /// Set at and beyond 80 % of the quota (`"85% of 100"`, `"grace: …"`).
        warning: Option<String>,
    },
    /// Refused: the quota and its grace are used up.
    Exhausted { used: u64, quota: u64 },
}

/// Repository of usage counters.
pub struct Usage<'c>(pub &'c Connection);

impl Usage<'_> {
    /// Checks the quota and charges one capture to `month`; run inside the
    /// capture's transaction so the check and the charge are one step.
    pub fn charge_capture(
        &self,
        customer_id: &str,
        tier: Tier,
        month: &str,
    ) -> Result<QuotaCharge, StoreError> {
        let used: i64 = self
            .0
            .query_row(
                "SELECT captures FROM usage WHERE customer_id = ?1 AND month = ?2",
                params![customer_id, month],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(0),
                e => Err(e),
            })?;
        let used = used as u64;
        let quota = tier.monthly_quota();
        if let Some(quota) = quota {
            let hard = (quota as f64 * (1.0 + GRACE)).floor() as u64;
            if used >= hard {
                return Ok(QuotaCharge::Exhausted { used, quota });
            }
        }
        self.0.execute(
            "INSERT INTO usage (customer_id, month, captures) VALUES (?1, ?2, 1)
             ON CONFLICT (customer_id, month) DO UPDATE SET captures = captures + 1",
            params![customer_id, month],
        )?;
        let used = used + 1;
        let warning = quota.and_then(|quota| {
            let percent = used as f64 * 100.0 / quota as f64;
            if used > quota {
                Some(format!(
                    "quota exceeded: {used} of {quota} episodes this month; in the 20% grace"
                ))
            } else if used as f64 >= quota as f64 * WARNING_AT {
                Some(format!(
                    "{percent:.0}% of the monthly quota of {quota} episodes used"
                ))
            } else {
                None
            }
        });
        Ok(QuotaCharge::Charged {
            used,
            quota,
            warning,
        })
    }

    /// Gives back one capture charged to `month` (a capture rolled back).
    pub fn refund_capture(&self, customer_id: &str, month: &str) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE usage SET captures = MAX(captures - 1, 0) WHERE customer_id = ?1 AND month = ?2",
            params![customer_id, month],
        )?;
        Ok(())
    }

    /// Counts `searches` more searches and `reflects` more reflects.
    pub fn count_queries(
        &self,
        customer_id: &str,
        month: &str,
        searches: u64,
        reflects: u64,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO usage (customer_id, month, searches, reflects) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (customer_id, month) DO UPDATE
                 SET searches = searches + ?3, reflects = reflects + ?4",
            )?
            .execute(params![
                customer_id,
                month,
                searches as i64,
                reflects as i64
            ])?;
        Ok(())
    }

    /// Every month of a customer's usage, newest first.
    pub fn months(&self, customer_id: &str) -> Result<Vec<UsageMonth>, StoreError> {
        let mut statement = self.0.prepare(
            "SELECT month, captures, searches, reflects FROM usage WHERE customer_id = ?1 ORDER BY month DESC",
        )?;
        let rows = statement.query_map([customer_id], |r| {
            Ok(UsageMonth {
                month: r.get(0)?,
                captures: r.get::<_, i64>(1)? as u64,
                searches: r.get::<_, i64>(2)? as u64,
                reflects: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
