//! The `episodes` table (each episode's redacted document, its signature
//! and its counters) and the `idempotency_keys` table.
//!
//! An episode row is written `pending` in the transaction that takes its id
//! and charges the quota, and turns `live` once the engine holds its vector.
//! Only live rows are ever returned; pending rows left by a crash are rolled
//! back at start (see `episodes::recover`).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{StoreError, StoredBody};

/// One episode as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRow {
    pub customer_id: String,
    pub id: u64,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub error_class: String,
    pub tools: Vec<String>,
    pub tags: Vec<String>,
    pub fingerprint: String,
    /// The redacted capture (a JSON object).
    pub body: StoredBody,
    pub has_image: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub occurrences: u64,
    pub retrievals: u64,
    pub fix_successes: u64,
    pub fix_failures: u64,
    pub charged_month: String,
}

impl EpisodeRow {
    /// Promoted to a skill: its fix worked at least 3 times with a success
    /// rate of at least 0.9.
    pub fn is_skill(&self) -> bool {
        let attempts = self.fix_successes + self.fix_failures;
        self.fix_successes >= 3 && self.fix_successes as f64 >= 0.9 * attempts as f64
    }

    fn from_row(row: &Row<'_>) -> rusqlite::Result<EpisodeRow> {
        // Tools and tags are stored as JSON lists of strings.
        let list = |i: usize| -> rusqlite::Result<Vec<String>> {
            let text: String = row.get(i)?;
            serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
        };
        Ok(EpisodeRow {
            customer_id: row.get(0)?,
            id: row.get::<_, i64>(1)? as u64,
            project: row.get(2)?,
            branch: row.get(3)?,
            error_class: row.get(4)?,
            tools: list(5)?,
            tags: list(6)?,
            fingerprint: row.get(7)?,
            body: StoredBody::from_text(row.get(8)?),
            has_image: row.get(9)?,
            created_at: row.get(10)?,
            last_seen_at: row.get(11)?,
            occurrences: row.get::<_, i64>(12)? as u64,
            retrievals: row.get::<_, i64>(13)? as u64,
            fix_successes: row.get::<_, i64>(14)? as u64,
            fix_failures: row.get::<_, i64>(15)? as u64,
            charged_month: row.get(16)?,
        })
    }
}

const COLUMNS: &str = "customer_id, id, project, branch, error_class, tools, tags, fingerprint, body, \
     has_image, created_at, last_seen_at, occurrences, retrievals, fix_successes, fix_failures, charged_month";

/// The oldest live episode of a customer with a fingerprint in a project
/// (`?1`, `?2`, `?3`); answered from the index `episodes_fingerprint`
/// (see migration 2).
fn by_fingerprint_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM episodes WHERE customer_id = ?1 AND fingerprint = ?2 \
         AND project IS ?3 AND state = 'live' ORDER BY id LIMIT 1"
    )
}

/// What `GET /api/v1/episodes` filters on.
#[derive(Debug, Clone, Default)]
pub struct EpisodeFilter {
    pub tag: Option<String>,
    pub tool: Option<String>,
    pub error_class: Option<String>,
    pub project: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Repository of episodes.
pub struct Episodes<'c>(pub &'c Connection);

impl Episodes<'_> {
    /// Writes a new episode in state `pending`.
    pub fn insert_pending(&self, row: &EpisodeRow) -> Result<(), StoreError> {
        self.0.execute(
            &format!(
                "INSERT INTO episodes ({COLUMNS}, state) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 'pending')"
            ),
            params![
                row.customer_id,
                row.id as i64,
                row.project,
                row.branch,
                row.error_class,
                serde_json::to_string(&row.tools)?,
                serde_json::to_string(&row.tags)?,
                row.fingerprint,
                row.body.as_str(),
                row.has_image,
                row.created_at,
                row.last_seen_at,
                row.occurrences as i64,
                row.retrievals as i64,
                row.fix_successes as i64,
                row.fix_failures as i64,
                row.charged_month,
            ],
        )?;
        Ok(())
    }

    /// Makes a pending episode visible.
    pub fn mark_live(&self, customer_id: &str, id: u64) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE episodes SET state = 'live' WHERE customer_id = ?1 AND id = ?2",
            params![customer_id, id as i64],
        )?;
        Ok(())
    }

    /// Removes an episode (any state); the row it was, if any.
    pub fn remove(&self, customer_id: &str, id: u64) -> Result<Option<EpisodeRow>, StoreError> {
        Ok(self
            .0
            .query_row(
                &format!(
                    "DELETE FROM episodes WHERE customer_id = ?1 AND id = ?2 RETURNING {COLUMNS}"
                ),
                params![customer_id, id as i64],
                EpisodeRow::from_row,
            )
            .optional()?)
    }

    /// A live episode.
    pub fn get(&self, customer_id: &str, id: u64) -> Result<Option<EpisodeRow>, StoreError> {
        Ok(self
            .0
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM episodes WHERE customer_id = ?1 AND id = ?2 AND state = 'live'"
                ),
                params![customer_id, id as i64],
                EpisodeRow::from_row,
            )
            .optional()?)
    }

    /// The live episodes among `ids`, by id.
    pub fn get_many(
        &self,
        customer_id: &str,
        ids: &[u64],
    ) -> Result<HashMap<u64, EpisodeRow>, StoreError> {
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM episodes WHERE customer_id = ?1 AND id = ?2 AND state = 'live'"
        ))?;
        let mut found = HashMap::new();
        for &id in ids {
            if let Some(row) = statement
                .query_row(params![customer_id, id as i64], EpisodeRow::from_row)
                .optional()?
            {
                found.insert(id, row);
            }
        }
        Ok(found)
    }

    /// The live episode with this error fingerprint in this project, if any.
    pub fn by_fingerprint(
        &self,
        customer_id: &str,
        fingerprint: &str,
        project: Option<&str>,
    ) -> Result<Option<EpisodeRow>, StoreError> {
        Ok(self
            .0
            .prepare_cached(&by_fingerprint_sql())?
            .query_row(
                params![customer_id, fingerprint, project],
                EpisodeRow::from_row,
            )
            .optional()?)
    }

    /// Counts one more occurrence of an episode seen at `now`.
    pub fn record_occurrence(
        &self,
        customer_id: &str,
        id: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE episodes SET occurrences = occurrences + 1, last_seen_at = MAX(last_seen_at, ?3) \
             WHERE customer_id = ?1 AND id = ?2",
            params![customer_id, id as i64, now],
        )?;
        Ok(())
    }

    /// Counts `n` more retrievals of episode `id`.
    pub fn count_retrievals(&self, customer_id: &str, id: u64, n: u64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE episodes SET retrievals = retrievals + ?3 WHERE customer_id = ?1 AND id = ?2",
            )?
            .execute(params![customer_id, id as i64, n as i64])?;
        Ok(())
    }

    /// Records a fix outcome; the episode as it is now (`None`: no such live episode).
    pub fn record_fix(
        &self,
        customer_id: &str,
        id: u64,
        success: bool,
    ) -> Result<Option<EpisodeRow>, StoreError> {
        let column = if success {
            "fix_successes"
        } else {
            "fix_failures"
        };
        self.0.execute(
            &format!(
                "UPDATE episodes SET {column} = {column} + 1 WHERE customer_id = ?1 AND id = ?2 AND state = 'live'"
            ),
            params![customer_id, id as i64],
        )?;
        self.get(customer_id, id)
    }

    /// Live episodes after id `after`, ascending, at most `limit`, filtered.
    pub fn list(
        &self,
        customer_id: &str,
        filter: &EpisodeFilter,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EpisodeRow>, StoreError> {
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM episodes WHERE customer_id = ?1 AND state = 'live' AND id > ?2 \
             AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(episodes.tags) WHERE value = ?3)) \
             AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(episodes.tools) WHERE value = ?4)) \
             AND (?5 IS NULL OR error_class = ?5) \
             AND (?6 IS NULL OR project = ?6) \
             AND (?7 IS NULL OR created_at >= ?7) AND (?8 IS NULL OR created_at <= ?8) \
             ORDER BY id LIMIT ?9"
        ))?;
        let rows = statement.query_map(
            params![
                customer_id,
                after as i64,
                filter.tag,
                filter.tool,
                filter.error_class,
                filter.project,
                filter.since,
                filter.until,
                limit
            ],
            EpisodeRow::from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Live skills of a customer (optionally of one project), best first.
    pub fn skills(
        &self,
        customer_id: &str,
        project: Option<&str>,
    ) -> Result<Vec<EpisodeRow>, StoreError> {
        let mut statement = self.0.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM episodes WHERE customer_id = ?1 AND state = 'live' \
             AND (?2 IS NULL OR project = ?2) AND fix_successes >= 3 \
             AND fix_successes * 10 >= (fix_successes + fix_failures) * 9 \
             ORDER BY fix_successes DESC, id"
        ))?;
        let rows = statement.query_map(params![customer_id, project], EpisodeRow::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every pending episode: (customer, id, charged month, has image).
    pub fn pending(&self) -> Result<Vec<(String, u64, String, bool)>, StoreError> {
        let mut statement = self.0.prepare(
            "SELECT customer_id, id, charged_month, has_image FROM episodes WHERE state = 'pending'",
        )?;
        let rows = statement.query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// An idempotency key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub body_sha256: String,
    /// `None` while the first request is still running.
    pub status: Option<u16>,
    pub response: Option<String>,
}

/// Repository of idempotency keys.
pub struct Idempotency<'c>(pub &'c Connection);

impl Idempotency<'_> {
    /// The key's record.
    pub fn get(
        &self,
        customer_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT body_sha256, status, response FROM idempotency_keys WHERE customer_id = ?1 AND key = ?2",
                params![customer_id, key],
                |r| {
                    Ok(IdempotencyRecord {
                        body_sha256: r.get(0)?,
                        status: r.get::<_, Option<i64>>(1)?.map(|s| s as u16),
                        response: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Claims the key for a request with this body.
    pub fn begin(
        &self,
        customer_id: &str,
        key: &str,
        body_sha256: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO idempotency_keys (customer_id, key, body_sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![customer_id, key, body_sha256, now],
        )?;
        Ok(())
    }

    /// Stores the response the key's request got.
    pub fn complete(
        &self,
        customer_id: &str,
        key: &str,
        status: u16,
        response: &str,
    ) -> Result<(), StoreError> {
        self.0.execute(
            "UPDATE idempotency_keys SET status = ?3, response = ?4 WHERE customer_id = ?1 AND key = ?2",
            params![customer_id, key, status, response],
        )?;
        Ok(())
    }

    /// Releases a key whose request failed (a retry may run it again).
    pub fn abandon(&self, customer_id: &str, key: &str) -> Result<(), StoreError> {
        self.0.execute(
            "DELETE FROM idempotency_keys WHERE customer_id = ?1 AND key = ?2 AND status IS NULL",
            params![customer_id, key],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite picks for `sql` on the migrated schema, one line per step.
    fn query_plan(connection: &Connection, sql: &str) -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let steps = statement
            .query_map(params!["cus_a", "fp", None::<String>], |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        steps.map(|s| s.unwrap()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn a_fingerprint_lookup_searches_its_index_instead_of_the_customers_episodes() {
        let mut connection = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut connection).unwrap();
        let plan = query_plan(&connection, &by_fingerprint_sql());
        assert!(
            plan.contains("USING INDEX episodes_fingerprint (customer_id=? AND fingerprint=?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "sorts its matches: {plan}");
    }
}
