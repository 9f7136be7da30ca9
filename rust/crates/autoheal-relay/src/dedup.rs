//! The dedup window: which alerts (fingerprint, status, startsAt) were journaled within
//! `dedup_ttl_secs`. The window lives on disk, beside the journal (`<journal>.dedup`, one row per
//! alert keyed by a 64-bit hash), so it survives a restart and its size costs disk, not memory,
//! whatever the volume; a bounded cache of the most recent keys answers the common case (a sender
//! repeating what it sent moments ago) without a lookup.
//!
//! Its own file, written by a thread of its own after the journal's commit and without an fsync
//! per write: keys are inserted at random places, and in the journal's fsynced WAL they would
//! cost every commit. Keys are handed to that thread in batches of seconds and written sorted,
//! so that each page of the file is written about once per batch rather than once per key, and
//! the thread wakes once per batch, not per commit; until a key is in the file the cache holds
//! it (the cache drops no key the file does not have yet). A key lost to a crash only lets a
//! repeat through (the actions are idempotent), never drops an alert, and the journal's events
//! of the window fill any gap at the next start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// Keys the cache holds at most: two generations of 114,688, each the most a hash table of
/// 131,072 slots holds (about 2 MiB), so about 4 MiB in all. A batch for the file is half a
/// generation, and each batch rewrites about every page of the file (keys are hashes): a larger
/// cache means fewer, larger batches and fewer bytes written while a storm lasts.
pub const CACHE_ENTRIES: usize = 229_376;

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
        let generation = (capacity / 2).max(1);
        Self {
            newer: HashMap::with_capacity(generation),
            older: HashMap::new(),
            generation,
        }
    }

    /// When `key` was last seen, if the cache still knows.
    pub fn get(&self, key: DedupKey) -> Option<i64> {
        self.newer
            .get(&key)
            .or_else(|| self.older.get(&key))
            .copied()
    }

    /// Whether the next insert may drop the older generation.
    pub fn is_full(&self) -> bool {
        self.newer.len() + 1 >= self.generation
    }

    /// Remembers that `key` was seen at `seen_ms`; returns whether the newer generation, with
    /// this key, became the older one (and the older one was dropped).
    pub fn insert(&mut self, key: DedupKey, seen_ms: i64) -> bool {
        self.newer.insert(key, seen_ms);
        if self.newer.len() < self.generation {
            return false;
        }
        let fresh = HashMap::with_capacity(self.generation);
        self.older = std::mem::replace(&mut self.newer, fresh);
        true
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

/// Bits of each generation of the filter (1 MiB): at a million keys per generation about 2% of
/// new alerts still need a lookup; past that more do, and memory stays the same.
const FILTER_BITS: u64 = 1 << 23;

/// A Bloom filter of keys: "certainly not seen" without a lookup.
#[derive(Debug)]
struct Filter {
    words: Vec<u64>,
}

impl Filter {
    fn new() -> Self {
        Self {
            words: vec![0; usize::try_from(FILTER_BITS / 64).unwrap_or(1)],
        }
    }

    /// Four bit positions from the key, itself a hash.
    fn bits(key: DedupKey) -> impl Iterator<Item = (usize, u64)> {
        let hash = u64::from_ne_bytes(key.to_ne_bytes());
        let step = hash.rotate_left(29) | 1;
        (0..4u64).map(move |i| {
            let bit = hash.wrapping_add(i.wrapping_mul(step)) & (FILTER_BITS - 1);
            (usize::try_from(bit / 64).unwrap_or(0), 1 << (bit % 64))
        })
    }

    fn insert(&mut self, key: DedupKey) {
        for (word, mask) in Self::bits(key) {
            self.words[word] |= mask;
        }
    }

    fn may_contain(&self, key: DedupKey) -> bool {
        Self::bits(key).all(|(word, mask)| self.words[word] & mask != 0)
    }
}

/// How many keys the writer thread has made durable (or given up on), in the order they were
/// sent, for the journal thread to wait on before its cache drops keys.
#[derive(Debug, Default)]
struct Saved {
    count: Mutex<u64>,
    advanced: Condvar,
}

impl Saved {
    fn add(&self, keys: u64) {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += keys;
        self.advanced.notify_all();
    }

    /// Waits until `target` keys are saved, or the writer is gone.
    fn wait_for(&self, target: u64, writer: Option<&std::thread::JoinHandle<()>>) {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        while *count < target && writer.is_some_and(|w| !w.is_finished()) {
            count = self
                .advanced
                .wait_timeout(count, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The window on disk, a filter of its keys and a cache of the recent ones. Lookups read the
/// file only when the filter cannot rule a key out; writes go to a thread of their own, off the
/// journal writer's path (the cache and the filter cover the moment until they land).
#[derive(Debug)]
pub struct DedupStore {
    reader: Connection,
    recent: RecentKeys,
    /// Keys recorded since `rotate_at - ttl` (`[0]`) and in the window before (`[1]`): a key
    /// stays in one of them at least `ttl` after it was recorded.
    filters: [Filter; 2],
    rotate_at: i64,
    ttl_ms: i64,
    /// Keys recorded and not handed to the writer yet (all in the cache), since when, and how
    /// many make a batch.
    unsent: Vec<(DedupKey, i64)>,
    unsent_since: Instant,
    batch: usize,
    /// Keys recorded so far, and when the cache's newer generation began: the older one holds
    /// keys recorded before that, which must be saved before it is dropped.
    recorded: u64,
    newer_from: u64,
    saved: Arc<Saved>,
    writes: Option<mpsc::Sender<Write>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
enum Write {
    Record(Vec<(DedupKey, i64)>),
    Prune(i64),
}

/// The dedup file of the journal at `journal`.
pub fn path_for(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".dedup");
    PathBuf::from(name)
}

/// SQLite page caches of the writer and the reader connections (negative: KiB).
const WRITER_CACHE_KIB: i64 = -512;
const READER_CACHE_KIB: i64 = -128;

const UPSERT: &str = "INSERT INTO dedup (key, seen_ms) VALUES (?1, ?2)
     ON CONFLICT(key) DO UPDATE SET seen_ms = max(seen_ms, excluded.seen_ms)";

impl DedupStore {
    /// Opens (or creates, mode 0600) the dedup file beside `journal` and adds the keys of the
    /// journal's events since `horizon_ms` it does not have yet (a crash before the last keys
    /// reached the file, or a journal older than this file).
    pub fn open(
        journal: &Path,
        events: &Connection,
        now_ms: i64,
        ttl_ms: i64,
        cache: usize,
    ) -> rusqlite::Result<Self> {
        let horizon_ms = now_ms.saturating_sub(ttl_ms);
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
        let writer = Connection::open(&path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        // Batches are written in key order, so each page is needed once per batch: a small page
        // cache does (SQLite's default is 2 MB per connection).
        writer.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        writer.execute_batch(
            "CREATE TABLE IF NOT EXISTS dedup (key INTEGER PRIMARY KEY, seen_ms INTEGER NOT NULL)",
        )?;
        let newest: Option<i64> =
            writer.query_row("SELECT max(seen_ms) FROM dedup", [], |r| r.get(0))?;
        catch_up(
            &writer,
            events,
            newest.unwrap_or(horizon_ms).max(horizon_ms),
        )?;
        let mut window = Filter::new();
        {
            let mut stmt = writer.prepare("SELECT key FROM dedup WHERE seen_ms >= ?1")?;
            for key in stmt.query_map(params![horizon_ms], |r| r.get::<_, DedupKey>(0))? {
                window.insert(key?);
            }
        }
        let reader =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // Read only when the filters cannot rule a key out, at random places: caching pages
        // would not help.
        reader.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
        let recent = RecentKeys::new(cache);
        // Half a generation per batch: the older generation is always saved before it is
        // dropped, unless the disk falls a whole generation behind.
        let batch = (recent.generation / 2).max(1);
        let saved = Arc::new(Saved::default());
        let (writes, queue) = mpsc::channel();
        let thread = {
            let saved = saved.clone();
            std::thread::Builder::new()
                .name("dedup".into())
                .spawn(move || write_loop(&writer, &queue, &saved))
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
        };
        Ok(Self {
            reader,
            recent,
            filters: [window, Filter::new()],
            rotate_at: now_ms.saturating_add(ttl_ms),
            ttl_ms,
            unsent: Vec::new(),
            unsent_since: Instant::now(),
            batch,
            recorded: 0,
            newer_from: 0,
            saved,
            writes: Some(writes),
            thread: Some(thread),
        })
    }

    /// When `key` was last journaled, from the cache, else the file: `None` means not within
    /// the window, and a time may be older than the window (the caller compares). The filters
    /// hold every key of the window, so they answer first: a new key, the common case, costs a
    /// probe of each and nothing more.
    pub fn last_seen(&self, key: DedupKey) -> rusqlite::Result<Option<i64>> {
        if !self.filters.iter().any(|f| f.may_contain(key)) {
            return Ok(None);
        }
        if let Some(seen) = self.recent.get(key) {
            return Ok(Some(seen));
        }
        self.reader
            .prepare_cached("SELECT seen_ms FROM dedup WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()
    }

    /// Records keys the journal has just committed.
    pub fn record(&mut self, keys: &[(DedupKey, i64)]) {
        for (key, seen_ms) in keys {
            if *seen_ms >= self.rotate_at {
                self.filters.swap(0, 1);
                self.filters[0] = Filter::new();
                self.rotate_at = seen_ms.saturating_add(self.ttl_ms);
            }
            self.filters[0].insert(*key);
            if self.recent.is_full() {
                // The older generation may go now: its keys must be in the file first.
                self.hand_over();
                self.saved.wait_for(self.newer_from, self.thread.as_ref());
            }
            if self.unsent.is_empty() {
                self.unsent_since = Instant::now();
            }
            self.unsent.push((*key, *seen_ms));
            let rotated = self.recent.insert(*key, *seen_ms);
            self.recorded += 1;
            if rotated {
                self.newer_from = self.recorded;
            }
        }
        if self.unsent.len() >= self.batch || self.unsent_since.elapsed() >= GATHER {
            self.hand_over();
        }
    }

    /// Forgets keys seen before `horizon_ms`.
    pub fn prune(&self, horizon_ms: i64) {
        self.send(Write::Prune(horizon_ms));
    }

    /// Keys held in memory.
    pub fn cached(&self) -> usize {
        self.recent.len()
    }

    /// Sends the unsent keys to the writer.
    fn hand_over(&mut self) {
        if !self.unsent.is_empty() {
            let keys = std::mem::take(&mut self.unsent);
            self.send(Write::Record(keys));
        }
    }

    fn send(&self, write: Write) {
        if let Some(writes) = &self.writes {
            // The thread ends only when this store is dropped.
            let _ = writes.send(write);
        }
    }
}

impl Drop for DedupStore {
    /// Lets the pending writes land before the journal's lock is released.
    fn drop(&mut self) {
        self.hand_over();
        self.writes = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long recorded keys wait for more before they are handed to the writer, unless a batch
/// fills first (or the relay stops). Keys are spread over the whole table, so a commit costs
/// about a page per key up to the table's size: the more keys per commit, the fewer times each
/// page is written (a second's keys at thousands a second write most pages once instead of
/// once per request).
const GATHER: Duration = Duration::from_secs(2);

/// The dedup writer's nice value.
const WRITER_NICE: i32 = 10;

/// Applies the writes, each batch sorted in one transaction, and only then counts its keys
/// saved.
fn write_loop(conn: &Connection, queue: &mpsc::Receiver<Write>, saved: &Saved) {
    // Nothing waits on this thread but the cache, a generation later: on a busy machine the
    // journal writer and the request handlers go first (on Linux the nice value is per thread).
    if let Err(e) = rustix::process::setpriority_process(None, WRITER_NICE) {
        tracing::debug!(error = %e, "cannot lower the dedup writer's priority");
    }
    while let Ok(write) = queue.recv() {
        let (mut keys, horizon) = match write {
            Write::Record(keys) => (keys, None),
            Write::Prune(horizon) => (Vec::new(), Some(horizon)),
        };
        keys.sort_unstable();
        let result = write_batch(conn, &keys, horizon);
        // Given up on or not, these keys no longer hold the cache back (a key that could not
        // be written only lets a repeat through).
        saved.add(u64::try_from(keys.len()).unwrap_or(u64::MAX));
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "pruned the dedup window"),
            // Committed in the journal already: a missing key can only let a repeat through.
            Err(e) => {
                tracing::warn!(error = %e, "cannot record dedup keys; repeats of these alerts may be journaled again")
            }
        }
    }
}

/// Writes `keys` and prunes keys seen before `horizon_ms`, in one transaction; returns the
/// keys pruned.
fn write_batch(
    conn: &Connection,
    keys: &[(DedupKey, i64)],
    horizon_ms: Option<i64>,
) -> rusqlite::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut upsert = tx.prepare_cached(UPSERT)?;
        for (key, seen_ms) in keys {
            upsert.execute(params![key, seen_ms])?;
        }
    }
    let pruned = match horizon_ms {
        Some(h) => tx.execute("DELETE FROM dedup WHERE seen_ms < ?1", params![h])?,
        None => 0,
    };
    tx.commit()?;
    Ok(pruned)
}

fn catch_up(conn: &Connection, events: &Connection, since_ms: i64) -> rusqlite::Result<()> {
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
    let tx = conn.unchecked_transaction()?;
    {
        let mut upsert = tx.prepare(UPSERT)?;
        for row in rows {
            let (fingerprint, status, starts_at, seen_ms) = row?;
            let status = if status == "firing" {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            };
            upsert.execute(params![key(&fingerprint, status, &starts_at), seen_ms])?;
        }
    }
    tx.commit()
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
    fn the_filter_has_no_false_negatives() {
        let mut filter = Filter::new();
        for n in 0..100_000 {
            filter.insert(key(&format!("{n:x}"), AlertStatus::Firing, "t"));
        }
        for n in 0..100_000 {
            assert!(filter.may_contain(key(&format!("{n:x}"), AlertStatus::Firing, "t")));
        }
        let false_positives = (100_000..200_000)
            .filter(|n| filter.may_contain(key(&format!("{n:x}"), AlertStatus::Firing, "t")))
            .count();
        assert!(
            false_positives < 100,
            "{false_positives} false positives in 100,000"
        );
    }

    /// A journal with an empty `events` table (what the store fills its window from at start).
    fn empty_events(dir: &std::path::Path) -> (std::path::PathBuf, Connection) {
        let journal = dir.join("journal.db");
        let events = Connection::open(&journal).unwrap();
        events
            .execute_batch("CREATE TABLE events (fingerprint TEXT, status TEXT, starts_at TEXT, received_ms INTEGER)")
            .unwrap();
        (journal, events)
    }

    #[test]
    fn a_key_stays_in_the_filters_for_at_least_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, events) = empty_events(dir.path());
        let mut store = DedupStore::open(&journal, &events, 0, 100, 2).unwrap();
        // Recorded at 50; the cache (2 keys) forgets it at once, the filters must not within 100.
        store.record(&[(7, 50)]);
        for t in (51..150).step_by(7) {
            store.record(&[(1_000 + t, t), (2_000 + t, t)]);
            assert!(
                store.filters.iter().any(|f| f.may_contain(7)),
                "lost at {t}"
            );
        }
    }

    #[test]
    fn a_key_the_filters_have_dropped_is_not_seen_even_while_the_cache_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, events) = empty_events(dir.path());
        let mut store = DedupStore::open(&journal, &events, 0, 100, 1_000).unwrap();
        store.record(&[(7, 50)]);
        assert_eq!(store.last_seen(7).unwrap(), Some(50));
        // Two rotations of the filters later, 7 is out of the window; the cache still has it.
        store.record(&[(8, 150), (9, 300)]);
        assert_eq!(store.recent.get(7), Some(50));
        assert_eq!(store.last_seen(7).unwrap(), None);
        assert_eq!(store.last_seen(9).unwrap(), Some(300));
    }

    #[test]
    fn a_key_the_cache_has_dropped_is_already_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, events) = empty_events(dir.path());
        let mut store = DedupStore::open(&journal, &events, 0, 10_000, 4).unwrap();
        let keys: Vec<(DedupKey, i64)> = (0..50).map(|n| (n, 100 + n)).collect();
        store.record(&keys);
        store.record(&[(1_000, 200)]);
        assert!(store.cached() <= 4);
        for (key, seen_ms) in &keys {
            assert_eq!(store.last_seen(*key).unwrap(), Some(*seen_ms), "key {key}");
        }
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
        let mut store = DedupStore::open(&journal, &events, 10_000, 10_000, 4).unwrap();
        // The journal's event the file did not have is there.
        let from_events = key("ee", AlertStatus::Firing, "t");
        assert_eq!(store.last_seen(from_events).unwrap(), Some(500));
        let keys: Vec<(DedupKey, i64)> = (0..100).map(|n| (n, 1_000 + n)).collect();
        store.record(&keys);
        assert!(store.cached() <= 4);
        assert_eq!(store.last_seen(99).unwrap(), Some(1_099), "from the cache");
        drop(store);
        let store = DedupStore::open(&journal, &events, 10_000, 10_000, 4).unwrap();
        assert_eq!(
            store.last_seen(0).unwrap(),
            Some(1_000),
            "from disk, after a restart"
        );
        assert_eq!(store.last_seen(99).unwrap(), Some(1_099));
        store.prune(1_050);
        drop(store);
        let store = DedupStore::open(&journal, &events, 11_000, 10_000, 4).unwrap();
        assert_eq!(store.last_seen(0).unwrap(), None, "pruned");
        assert_eq!(store.last_seen(60).unwrap(), Some(1_060));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path_for(&journal))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
