//! The `customers` table.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// A customer's plan: it sets the monthly quota and the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Tier {
    #[serde(alias = "free")]
    Free,
    #[serde(alias = "pro")]
    Pro,
    #[serde(alias = "enterprise")]
    Enterprise,
}

impl Tier {
    /// Episodes per calendar month (`None`: unlimited).
    pub fn monthly_quota(self) -> Option<u64> {
        match self {
            Tier::Free => Some(100),
            Tier::Pro => Some(10_000),
            Tier::Enterprise => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "FREE",
            Tier::Pro => "PRO",
            Tier::Enterprise => "ENTERPRISE",
        }
    }

    fn parse(text: &str) -> Tier {
        match text {
            "PRO" => Tier::Pro,
            "ENTERPRISE" => Tier::Enterprise,
            _ => Tier::Free,
        }
    }
}

/// Whether a customer's keys work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CustomerStatus {
    Active,
    Suspended,
}

/// One customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub tier: Tier,
    pub status: CustomerStatus,
    pub created_at: i64,
}

impl Customer {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Customer> {
        let tier: String = row.get(2)?;
        let status: String = row.get(3)?;
        Ok(Customer {
            id: row.get(0)?,
            name: row.get(1)?,
            tier: Tier::parse(&tier),
            status: if status == "suspended" {
                CustomerStatus::Suspended
            } else {
                CustomerStatus::Active
            },
            created_at: row.get(4)?,
        })
    }
}

/// Repository of customers.
pub struct Customers<'c>(pub &'c Connection);

impl Customers<'_> {
    /// Adds a customer with a fresh id (`cus_` and 16 hex digits: also its
    /// tenant name in kyro-server).
    pub fn create(&self, name: &str, tier: Tier, now: i64) -> Result<Customer, StoreError> {
        let id = format!("cus_{}", hex::encode(rand::random::<[u8; 8]>()));
        self.0.execute(
            "INSERT INTO customers (id, name, tier, status, created_at) VALUES (?1, ?2, ?3, 'active', ?4)",
            params![id, name, tier.as_str(), now],
        )?;
        Ok(Customer {
            id,
            name: name.to_owned(),
            tier,
            status: CustomerStatus::Active,
            created_at: now,
        })
    }

    /// The customer, if it exists.
    pub fn get(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT id, name, tier, status, created_at FROM customers WHERE id = ?1",
                [id],
                Customer::from_row,
            )
            .optional()?)
    }

    /// A page of customers in creation order (`offset` rows skipped).
    pub fn list(&self, limit: u32, offset: u64) -> Result<Vec<Customer>, StoreError> {
        let mut statement = self.0.prepare(
            "SELECT id, name, tier, status, created_at FROM customers
             ORDER BY created_at, rowid LIMIT ?1 OFFSET ?2",
        )?;
        let rows = statement.query_map(params![limit, offset as i64], Customer::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many customers exist.
    pub fn count(&self) -> Result<u64, StoreError> {
        Ok(self
            .0
            .query_row("SELECT COUNT(*) FROM customers", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Changes the name and/or tier; returns the customer as it is now.
    pub fn update(
        &self,
        id: &str,
        name: Option<&str>,
        tier: Option<Tier>,
    ) -> Result<Option<Customer>, StoreError> {
        if let Some(name) = name {
            self.0.execute(
                "UPDATE customers SET name = ?2 WHERE id = ?1",
                params![id, name],
            )?;
        }
        if let Some(tier) = tier {
            self.0.execute(
                "UPDATE customers SET tier = ?2 WHERE id = ?1",
                params![id, tier.as_str()],
            )?;
        }
        self.get(id)
    }

    /// Sets the status; false when there is no such customer.
    pub fn set_status(&self, id: &str, status: CustomerStatus) -> Result<bool, StoreError> {
        let text = match status {
            CustomerStatus::Active => "active",
            CustomerStatus::Suspended => "suspended",
        };
        Ok(self.0.execute(
            "UPDATE customers SET status = ?2 WHERE id = ?1",
            params![id, text],
        )? == 1)
    }

    /// Takes the customer's next episode id.
    pub fn next_episode_id(&self, id: &str) -> Result<u64, StoreError> {
        let next: i64 = self.0.query_row(
            "UPDATE customers SET next_episode_id = next_episode_id + 1 WHERE id = ?1 RETURNING next_episode_id - 1",
            [id],
            |r| r.get(0),
        )?;
        Ok(next as u64)
    }
}
