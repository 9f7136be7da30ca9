//! The database: its file lock, pragmas and tables.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::JournalError;
use crate::config::Synchronous;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    source      TEXT NOT NULL,
    status      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    alertname   TEXT NOT NULL,
    labels      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_received ON events(received_ms);
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events(id),
    decided_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    rule        TEXT,
    target      TEXT,
    fleet       TEXT,
    state       TEXT,
    intent      TEXT,
    detail      TEXT,
    run_id      INTEGER REFERENCES runs(id)
);
CREATE INDEX IF NOT EXISTS decisions_open ON decisions(outcome) WHERE outcome IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS decisions_retrying ON decisions(outcome) WHERE outcome = 'retrying';
-- A run's result finds its decisions here, not by reading every decision ever journaled.
CREATE INDEX IF NOT EXISTS decisions_running ON decisions(run_id) WHERE outcome = 'running';
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    fleet       TEXT NOT NULL,
    executor    TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    status      TEXT NOT NULL,
    rc          INTEGER,
    duration_ms INTEGER,
    actions     TEXT NOT NULL,
    detail      TEXT
);
CREATE TABLE IF NOT EXISTS targets (
    key         TEXT PRIMARY KEY,
    backend     TEXT NOT NULL,
    state       TEXT NOT NULL,
    weight      TEXT,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS retries (
    decision_id   INTEGER PRIMARY KEY REFERENCES decisions(id),
    attempts      INTEGER NOT NULL,
    not_before_ms INTEGER NOT NULL
);
-- Grafana signatures accepted until they are stale: a replay is refused across a restart too.
CREATE TABLE IF NOT EXISTS signatures (
    mac         BLOB PRIMARY KEY,
    stale_after INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS switches (
    name        TEXT PRIMARY KEY,
    is_on       INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
";

/// Creates the database file readable by its owner only (SQLite gives its WAL and shared-memory
/// files the same mode) and takes an exclusive lock on it, held as long as the returned file is
/// open: a second relay on the same journal would re-run the first one's work.
pub fn lock_db(path: &Path) -> Result<std::fs::File, JournalError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Dir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let io_err = |source| JournalError::Dir {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(JournalError::Locked {
            path: path.to_owned(),
        }),
        Err(e) => Err(io_err(e.into())),
    }
}

/// How long a statement waits for another connection's write (the life-cycle tables', an
/// operator's `release`) before it fails, and how often it looks again meanwhile.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const LOCK_POLL: Duration = Duration::from_micros(100);

/// The busy handler of the connections to the journal's database (the writer's, the life
/// cycle's): waits up to [`LOCK_WAIT`], looking every [`LOCK_POLL`].
/// SQLite's own (`busy_timeout`) sleeps 1, 2, 5, 10 ms and more between looks, while another
/// connection holds the lock for about one fsync; every request waits with the writer, so each
/// time the life cycle's connection writes, intake stopped for a millisecond or more.
pub(crate) fn wait_for_lock(attempt: i32) -> bool {
    let waited = LOCK_POLL.saturating_mul(u32::try_from(attempt).unwrap_or(u32::MAX));
    if waited >= LOCK_WAIT {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// Opens (or creates) the database with the relay's pragmas and schema.
pub fn open_db(path: &Path, synchronous: Synchronous) -> Result<Connection, JournalError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL (the default): a commit is on disk before the request that waited for it is answered;
    // NORMAL: it has reached the OS (see `journal.synchronous`).
    conn.pragma_update(None, "synchronous", synchronous.as_str())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::{lock_db, open_db, wait_for_lock, LOCK_POLL, LOCK_WAIT};
    use crate::config::Synchronous;
    use crate::journal::JournalError;

    #[test]
    fn a_second_relay_on_the_same_journal_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let held = lock_db(&path).unwrap();
        let err = lock_db(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::Locked { ref path } if path.ends_with("journal.db")),
            "{err}"
        );
        drop(held);
        lock_db(&path).unwrap();
    }

    #[test]
    fn the_database_is_private_and_its_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/journal.db");
        let _lock = lock_db(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_journal_is_in_wal_mode_with_the_configured_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        // SQLite's numbers: NORMAL is 1, FULL is 2.
        for (synchronous, number) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let conn = open_db(&dir.path().join(format!("{number}.db")), synchronous).unwrap();
            let got: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(got, number, "{synchronous:?}");
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(tables, 7);
        }
    }

    #[test]
    fn each_connection_keeps_a_page_cache_of_its_own() {
        // Built with SQLITE_ENABLE_MEMORY_MANAGEMENT (libsqlite3-sys's default), SQLite shares
        // one page-cache LRU between all connections, and the dedup writer's batches evict the
        // journal writer's pages; the repository's .cargo/config.toml turns it off.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite built with a shared page cache: {options:?}"
        );
    }

    #[test]
    fn a_statement_waits_for_the_lock_up_to_five_seconds() {
        assert!(wait_for_lock(0));
        let last = i32::try_from(LOCK_WAIT.as_micros() / LOCK_POLL.as_micros()).unwrap();
        assert!(wait_for_lock(last - 1));
        assert!(!wait_for_lock(last));
        assert!(!wait_for_lock(i32::MAX));
    }

    #[test]
    fn a_write_waits_for_another_connections_write_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let conn = open_db(&path, Synchronous::Full).unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let writer = std::thread::spawn(move || {
            conn.execute(
                "INSERT INTO switches (name, is_on, updated_ms) VALUES ('paused', 1, 0)",
                [],
            )
        });
        // The write cannot tell when it starts waiting; however late it comes, it must succeed.
        std::thread::sleep(std::time::Duration::from_millis(50));
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(writer.join().unwrap().unwrap(), 1);
    }
}
