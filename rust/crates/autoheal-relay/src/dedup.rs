//! The dedup window: which alerts (fingerprint, status, startsAt) were journaled within
//! `dedup_ttl_secs`. The window lives on disk, beside the journal (`<journal>.dedup`, one row per
//! alert keyed by a 64-bit hash), so it survives a restart and its size costs disk, not memory,
//! whatever the volume; a bounded cache of the most recent keys answers the common case (a sender
//! repeating what it sent moments ago) without a lookup.
//!
//! Its own file, written after the journal's commit and without an fsync of its own: keys are
//! inserted at random places, and in the journal's fsynced WAL they would cost every commit. A
//! key lost to a crash only lets a repeat through (the actions are idempotent), never drops an
//! alert, and the journal's events of the window fill any gap at the next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

/// The window on disk and its cache of recent keys.
#[derive(Debug)]
pub struct DedupStore {
    conn: Connection,
    recent: RecentKeys,
}

/// The dedup file of the journal at `journal`.
pub fn path_for(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".dedup");
    PathBuf::from(name)
}

impl DedupStore {
    /// Opens (or creates, mode 0600) the dedup file beside `journal` and adds the keys of the
    /// journal's events since `horizon_ms` it does not have yet (a crash between the journal's
    /// commit and this file's, or a journal older than this file).
    pub fn open(
        journal: &Path,
        events: &Connection,
        horizon_ms: i64,
        cache: usize,
    ) -> rusqlite::Result<Self> {
        let path = path_for(journal);
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Created by hand first, so that SQLite (and its WAL) get the owner-only mode.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path);
        }
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS dedup (key INTEGER PRIMARY KEY, seen_ms INTEGER NOT NULL)",
        )?;
        let newest: Option<i64> =
            conn.query_row("SELECT max(seen_ms) FROM dedup", [], |r| r.get(0))?;
        let store = Self {
            conn,
            recent: RecentKeys::new(cache),
        };
        store.catch_up(events, newest.unwrap_or(horizon_ms).max(horizon_ms))?;
        Ok(store)
    }

    /// When `key` was last journaled, from the cache or else the file.
    pub fn last_seen(&self, key: DedupKey) -> rusqlite::Result<Option<i64>> {
        if let Some(seen) = self.recent.get(key) {
            return Ok(Some(seen));
        }
        self.conn
            .prepare_cached("SELECT seen_ms FROM dedup WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()
    }

    /// Records keys the journal has just committed.
    pub fn record(&mut self, keys: &[(DedupKey, i64)]) -> rusqlite::Result<()> {
        for (key, seen_ms) in keys {
            self.recent.insert(*key, *seen_ms);
        }
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO dedup (key, seen_ms) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET seen_ms = excluded.seen_ms",
            )?;
            for (key, seen_ms) in keys {
                insert.execute(params![key, seen_ms])?;
            }
        }
        tx.commit()
    }

    /// Forgets keys seen before `horizon_ms`; returns how many.
    pub fn prune(&self, horizon_ms: i64) -> rusqlite::Result<usize> {
        self.conn
            .execute("DELETE FROM dedup WHERE seen_ms < ?1", params![horizon_ms])
    }

    /// Keys held in memory.
    pub fn cached(&self) -> usize {
        self.recent.len()
    }

    fn catch_up(&self, events: &Connection, since_ms: i64) -> rusqlite::Result<()> {
        let mut stmt = events.prepare(
            "SELECT fingerprint, status, starts_at, received_ms FROM events WHERE received_ms >= ?1",
        )?;
        let rows = stmt.query_map(params![since_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut insert = self.conn.prepare(
            "INSERT INTO dedup (key, seen_ms) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET seen_ms = max(seen_ms, excluded.seen_ms)",
        )?;
        for row in rows {
            let (fingerprint, status, starts_at, seen_ms) = row?;
            let status = if status == "firing" {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            };
            insert.execute(params![key(&fingerprint, status, &starts_at), seen_ms])?;
        }
        Ok(())
    }
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

    #[test]
    fn the_window_outlives_the_cache_and_a_restart_and_old_keys_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.db");
        let events = Connection::open(&journal).unwrap();
        events
            .execute_batch(
                "CREATE TABLE events (fingerprint TEXT, status TEXT, starts_at TEXT, received_ms INTEGER);
                 INSERT INTO events VALUES ('ee', 'firing', 't', 500);",
            )
            .unwrap();
        let mut store = DedupStore::open(&journal, &events, 0, 4).unwrap();
        // The journal's event the file did not have is there.
        assert_eq!(
            store
                .last_seen(key("ee", AlertStatus::Firing, "t"))
                .unwrap(),
            Some(500)
        );
        let keys: Vec<(DedupKey, i64)> = (0..100).map(|n| (n, 1_000 + n)).collect();
        store.record(&keys).unwrap();
        assert!(store.cached() <= 4);
        assert_eq!(
            store.last_seen(0).unwrap(),
            Some(1_000),
            "evicted, read from disk"
        );
        drop(store);
        let store = DedupStore::open(&journal, &events, 0, 4).unwrap();
        assert_eq!(store.last_seen(99).unwrap(), Some(1_099), "after a restart");
        assert_eq!(store.prune(1_050).unwrap(), 51);
        assert_eq!(store.last_seen(0).unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path_for(&journal))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
