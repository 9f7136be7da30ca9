//! The dedup window: which alerts (fingerprint, status, startsAt) were journaled within
//! `dedup_ttl_secs`. The window lives in the journal (the `dedup` table, one row per alert keyed
//! by a 64-bit hash), so it survives a restart and its size costs disk, not memory, whatever the
//! volume; a bounded cache of the most recent keys answers the common case (a sender repeating
//! what it sent moments ago) without a lookup.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::model::AlertStatus;

/// The first 64 bits of SHA-256 over (fingerprint, status, startsAt). Stable across restarts; a
/// collision, at odds of about 2^-64 per pair (and 2^64 work to aim one at a given alert), can at
/// worst drop one alert as a duplicate.
pub type DedupKey = i64;

/// The key of one alert.
pub fn key(fingerprint: &str, status: AlertStatus, starts_at: &str) -> DedupKey {
    let mut hash = Sha256::new();
    for part in [fingerprint, status.as_str(), starts_at] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// Keys the cache holds at most (two generations of half as many: about 2 MB).
pub const CACHE_ENTRIES: usize = 65_536;

/// The most recently journaled keys with when they were seen, never more than its capacity:
/// when the newer generation fills up it becomes the older one and the older one is dropped.
#[derive(Debug)]
pub struct RecentKeys {
    newer: HashMap<DedupKey, i64>,
    older: HashMap<DedupKey, i64>,
    generation: usize,
}

impl RecentKeys {
    /// A cache of at most `capacity` keys (at least 2).
    pub fn new(capacity: usize) -> Self {
        Self {
            newer: HashMap::new(),
            older: HashMap::new(),
            generation: (capacity / 2).max(1),
        }
    }

    /// When `key` was last seen, if the cache still knows.
    pub fn get(&self, key: DedupKey) -> Option<i64> {
        self.newer
            .get(&key)
            .or_else(|| self.older.get(&key))
            .copied()
    }

    /// Remembers that `key` was seen at `seen_ms`.
    pub fn insert(&mut self, key: DedupKey, seen_ms: i64) {
        self.newer.insert(key, seen_ms);
        if self.newer.len() >= self.generation {
            self.older = std::mem::take(&mut self.newer);
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// When `key` was last journaled, from the cache or else the journal.
pub fn last_seen(
    conn: &Connection,
    cache: &RecentKeys,
    key: DedupKey,
) -> rusqlite::Result<Option<i64>> {
    if let Some(seen) = cache.get(key) {
        return Ok(Some(seen));
    }
    conn.prepare_cached("SELECT seen_ms FROM dedup WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()
}

/// Records `key` as journaled at `seen_ms` (in the caller's transaction).
pub fn record(conn: &Connection, key: DedupKey, seen_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO dedup (key, seen_ms) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET seen_ms = excluded.seen_ms",
    )?
    .execute(params![key, seen_ms])?;
    Ok(())
}

/// Forgets keys seen before `horizon_ms`; returns how many.
pub fn prune(conn: &Connection, horizon_ms: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM dedup WHERE seen_ms < ?1", params![horizon_ms])
}

/// A journal written before the `dedup` table existed: fills it from the events seen since
/// `horizon_ms`, so that dedup holds across that upgrade too. Does nothing once it has rows.
pub fn seed_from_events(conn: &Connection, horizon_ms: i64) -> rusqlite::Result<()> {
    let empty: bool =
        conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM dedup)", [], |r| r.get(0))?;
    if !empty {
        return Ok(());
    }
    let mut stmt = conn.prepare(
        "SELECT fingerprint, status, starts_at, received_ms FROM events WHERE received_ms > ?1",
    )?;
    let rows = stmt.query_map(params![horizon_ms], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (fingerprint, status, starts_at, seen_ms) = row?;
        let status = if status == "firing" {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        record(conn, key(&fingerprint, status, &starts_at), seen_ms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_tell_the_three_fields_apart() {
        let k = key("ab", AlertStatus::Firing, "2026-01-01T00:00:00Z");
        assert_eq!(k, key("ab", AlertStatus::Firing, "2026-01-01T00:00:00Z"));
        assert_ne!(k, key("ab", AlertStatus::Resolved, "2026-01-01T00:00:00Z"));
        assert_ne!(k, key("ab", AlertStatus::Firing, "2026-01-01T00:00:01Z"));
        // The separator keeps ("a", "b...") and ("ab", "...") apart.
        assert_ne!(
            key("a", AlertStatus::Firing, "bx"),
            key("ab", AlertStatus::Firing, "x")
        );
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity_and_keeps_the_newest() {
        let mut cache = RecentKeys::new(100);
        for n in 0..10_000 {
            cache.insert(n, n);
            assert!(cache.len() <= 100, "{} keys after {n}", cache.len());
        }
        assert_eq!(cache.get(9_999), Some(9_999));
        assert_eq!(cache.get(9_950), Some(9_950));
        assert_eq!(cache.get(0), None);
    }
}
