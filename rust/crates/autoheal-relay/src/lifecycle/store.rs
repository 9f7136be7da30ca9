//! The life cycle in the journal's database: one row per target (so a restart keeps its
//! hold-down, deferral and quarantine) and an audit row per transition (shown by `history`).

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::life::TargetLife;

/// Tables, created with the journal's.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lifecycle (
    key         TEXT PRIMARY KEY,
    backend     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    phase       TEXT NOT NULL,
    life        TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lifecycle_events (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    key         TEXT NOT NULL,
    event       TEXT NOT NULL,
    phase       TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS lifecycle_events_key ON lifecycle_events(key, at_ms);
CREATE TABLE IF NOT EXISTS lifecycle_releases (
    id           INTEGER PRIMARY KEY,
    requested_ms INTEGER NOT NULL,
    key          TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    done_ms      INTEGER,
    result       TEXT
);
";

/// Why the life cycle could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("lifecycle table: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored row is not a life cycle this relay understands.
    #[error("lifecycle of {key}: {source}")]
    Decode {
        /// The target.
        key: String,
        /// What is wrong.
        source: serde_json::Error,
    },
}

/// A target's life cycle with the backend it is counted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The backends whose budget it counts against, comma-separated.
    pub backend: String,
    /// The rule whose policy applies.
    pub rule: String,
    /// Its life cycle.
    pub life: TargetLife,
}

/// Creates the tables if they are missing.
pub fn create(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// Writes a target's life cycle and, when `event` is given, its audit row, in one transaction.
pub fn save(
    conn: &mut Connection,
    key: &str,
    stored: &Stored,
    event: Option<(&str, Option<&str>)>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let life = serde_json::to_string(&stored.life).map_err(|source| StoreError::Decode {
        key: key.to_owned(),
        source,
    })?;
    let phase = stored.life.phase.name();
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO lifecycle (key, backend, rule, phase, life, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(key) DO UPDATE SET backend = ?2, rule = ?3, phase = ?4, life = ?5, updated_ms = ?6",
        params![key, stored.backend, stored.rule, phase, life, now_ms],
    )?;
    if let Some((event, detail)) = event {
        tx.execute(
            "INSERT INTO lifecycle_events (at_ms, key, event, phase, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_ms, key, event, phase, detail],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Every target's life cycle, by key.
pub fn load(conn: &Connection) -> Result<BTreeMap<String, Stored>, StoreError> {
    let mut stmt = conn.prepare("SELECT key, backend, rule, life FROM lifecycle")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (key, backend, rule, life) = row?;
        let life = serde_json::from_str(&life).map_err(|source| StoreError::Decode {
            key: key.clone(),
            source,
        })?;
        out.insert(
            key,
            Stored {
                backend,
                rule,
                life,
            },
        );
    }
    Ok(out)
}

/// One target's life cycle.
pub fn get(conn: &Connection, key: &str) -> Result<Option<Stored>, StoreError> {
    let row = conn
        .query_row(
            "SELECT backend, rule, life FROM lifecycle WHERE key = ?1",
            [key],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    row.map(|(backend, rule, life)| {
        let life = serde_json::from_str(&life).map_err(|source| StoreError::Decode {
            key: key.to_owned(),
            source,
        })?;
        Ok(Stored {
            backend,
            rule,
            life,
        })
    })
    .transpose()
}

/// One audit row of a target's life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifeEvent {
    /// When.
    pub at_ms: i64,
    /// The target.
    pub key: String,
    /// What happened (`drained`, `deferred`, `quarantined`, `released`, ...).
    pub event: String,
    /// The phase it left the target in.
    pub phase: String,
    /// More, for people.
    pub detail: Option<String>,
}

/// The latest `limit` audit rows, newest first.
pub fn events(conn: &Connection, limit: usize) -> Result<Vec<LifeEvent>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at_ms, key, event, phase, detail FROM lifecycle_events ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(LifeEvent {
            at_ms: r.get(0)?,
            key: r.get(1)?,
            event: r.get(2)?,
            phase: r.get(3)?,
            detail: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Checks an operator's `BACKEND/SERVER` (`*` for an alert that named no backend) and returns
/// it as the target key the relay uses.
pub fn release_key(text: &str) -> Result<String, String> {
    let (backend, server) = text.split_once('/').ok_or_else(|| {
        format!("{text:?}: give BACKEND/SERVER (`*/SERVER` when the alert named no backend)")
    })?;
    if backend != "*" {
        crate::label::validate_name(backend).map_err(|e| format!("backend {backend:?}: {e}"))?;
    }
    let name = server.strip_prefix('@').unwrap_or(server);
    let checked = if server.starts_with('@') {
        crate::label::validate_host(name)
    } else {
        crate::label::validate_name(name)
    };
    checked.map_err(|e| format!("server {server:?}: {e}"))?;
    Ok(format!("{backend}/{server}"))
}

/// An operator's request to release a target, waiting for the relay to apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// Row id.
    pub id: i64,
    /// The target.
    pub key: String,
    /// Who asked (user name, or `admin endpoint`).
    pub requested_by: String,
}

/// Records a release request (the `release` command writes it while the relay runs or not;
/// the relay applies it within its housekeeping tick, or at its next start).
pub fn request_release(
    conn: &Connection,
    key: &str,
    requested_by: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO lifecycle_releases (requested_ms, key, requested_by) VALUES (?1, ?2, ?3)",
        params![now_ms, key, requested_by],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Release requests not applied yet, oldest first.
pub fn pending_releases(conn: &Connection) -> Result<Vec<ReleaseRequest>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, key, requested_by FROM lifecycle_releases WHERE done_ms IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ReleaseRequest {
            id: r.get(0)?,
            key: r.get(1)?,
            requested_by: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks a release request applied, with what it did.
pub fn finish_release(
    conn: &Connection,
    id: i64,
    result: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE lifecycle_releases SET done_ms = ?2, result = ?3 WHERE id = ?1",
        params![id, now_ms, result],
    )?;
    Ok(())
}

/// A release request's result, once applied.
pub fn release_result(conn: &Connection, id: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT result FROM lifecycle_releases WHERE id = ?1",
            [id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// Opens the journal's database for the life cycle: WAL (the journal set it), FULL sync like
/// the journal's default, and the tables created.
pub fn open(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // Looks for the lock as often as the journal's writer does: the pipeline awaits these writes.
    conn.busy_handler(Some(crate::journal::wait_for_lock))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    create(&conn)?;
    Ok(conn)
}

/// The life-cycle tables of a running relay, written from the async pipeline without blocking
/// it (each call runs on the blocking pool).
#[derive(Debug, Clone)]
pub struct LifeStore {
    conn: std::sync::Arc<std::sync::Mutex<Connection>>,
}

impl LifeStore {
    /// Opens the store on the journal's database and reads every target's entry.
    pub fn open(path: &std::path::Path) -> Result<(Self, BTreeMap<String, Stored>), StoreError> {
        let conn = open(path)?;
        let stored = load(&conn)?;
        Ok((
            Self {
                conn: std::sync::Arc::new(std::sync::Mutex::new(conn)),
            },
            stored,
        ))
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Persists the book's changes, in order.
    pub async fn save(
        &self,
        records: Vec<super::book::Record>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            for r in &records {
                let stored = Stored {
                    backend: r.entry.backends.join(","),
                    rule: r.entry.rule.clone(),
                    life: r.entry.life.clone(),
                };
                save(
                    conn,
                    &r.key,
                    &stored,
                    Some((r.event, r.detail.as_deref())),
                    now_ms,
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Release requests not applied yet.
    pub async fn pending_releases(&self) -> Result<Vec<ReleaseRequest>, StoreError> {
        self.with(|conn| pending_releases(conn)).await
    }

    /// Records an operator's release request (the admin endpoint's).
    pub async fn request_release(
        &self,
        key: String,
        by: String,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.with(move |conn| request_release(conn, &key, &by, now_ms))
            .await
    }

    /// Marks a release request applied.
    pub async fn finish_release(
        &self,
        id: i64,
        result: &'static str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.with(move |conn| finish_release(conn, id, result, now_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::life::Phase;
    use crate::lifecycle::policy::LifecyclePolicy;

    fn db(dir: &std::path::Path) -> Connection {
        let conn = Connection::open(dir.join("journal.sqlite")).unwrap();
        create(&conn).unwrap();
        conn
    }

    /// A restart in the middle of a hold-down, a deferral and a quarantine keeps each: what is
    /// written is read back by a new connection to the same file, and keeps working.
    #[test]
    fn hold_down_deferral_and_quarantine_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let policy = LifecyclePolicy::default();
        let mut held = TargetLife::default();
        held.drained(0, &policy);
        held.drained(1_000, &policy);
        held.on_resolved(2_000, 0, &policy);
        let mut deferred = TargetLife::default();
        deferred.drained(0, &policy);
        deferred.on_resolved(40_000, 0, &policy);
        deferred.reported(
            40_000,
            crate::lifecycle::life::Requested::Restore(crate::lifecycle::life::RestoreStep {
                percent: Some(10),
            }),
            &crate::lifecycle::report::ItemOutcome::Deferred {
                reason: "failing".into(),
            },
            &policy,
        );
        let mut quarantined = TargetLife::default();
        for t in [0, 1, 2] {
            quarantined.drained(t, &policy);
        }
        {
            let mut conn = db(dir.path());
            for (key, life) in [
                ("be/held", &held),
                ("be/deferred", &deferred),
                ("be/quarantined", &quarantined),
            ] {
                let stored = Stored {
                    backend: "be".into(),
                    rule: "errors".into(),
                    life: life.clone(),
                };
                save(&mut conn, key, &stored, Some(("test", None)), 5).unwrap();
            }
        }
        let conn = db(dir.path());
        let all = load(&conn).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all["be/held"].life, held);
        assert_eq!(all["be/held"].rule, "errors");
        assert!(
            matches!(all["be/held"].life.phase, Phase::Eligible { restore_at_ms, .. } if restore_at_ms == 61_000),
            "{:?}",
            all["be/held"].life.phase
        );
        assert_eq!(all["be/deferred"].life, deferred);
        assert_eq!(all["be/deferred"].life.phase.name(), "deferred");
        assert_eq!(all["be/quarantined"].life.phase.name(), "quarantined");
        assert_eq!(
            get(&conn, "be/quarantined").unwrap().unwrap().life,
            quarantined
        );
        assert_eq!(get(&conn, "be/none").unwrap(), None);
        let mut reread = all["be/quarantined"].life.clone();
        assert_eq!(
            reread.release(10),
            crate::lifecycle::life::Released::Restore
        );
    }

    #[test]
    fn save_updates_in_place_and_audits_each_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db(dir.path());
        let policy = LifecyclePolicy::default();
        let mut life = TargetLife::default();
        life.drained(0, &policy);
        let mut stored = Stored {
            backend: "be".into(),
            rule: "errors".into(),
            life,
        };
        save(&mut conn, "be/s1", &stored, Some(("drained", None)), 1).unwrap();
        stored.life.on_resolved(2, 0, &policy);
        save(
            &mut conn,
            "be/s1",
            &stored,
            Some(("eligible", Some("alert resolved"))),
            2,
        )
        .unwrap();
        save(&mut conn, "be/s1", &stored, None, 3).unwrap();
        assert_eq!(load(&conn).unwrap().len(), 1);
        let ev = events(&conn, 10).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "eligible");
        assert_eq!(ev[0].phase, "eligible");
        assert_eq!(ev[0].detail.as_deref(), Some("alert resolved"));
        assert_eq!(ev[1].phase, "out");
    }

    #[test]
    fn release_targets_are_checked_keys() {
        assert_eq!(release_key("app/web1").unwrap(), "app/web1");
        assert_eq!(release_key("*/web1").unwrap(), "*/web1");
        assert_eq!(release_key("app/@10.0.0.5").unwrap(), "app/@10.0.0.5");
        for bad in ["web1", "app/we b", "a;b/web1", "app/{{x}}", "app/", "/web1"] {
            assert!(release_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn release_requests_wait_until_applied() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db(dir.path());
        let first = request_release(&conn, "be/s1", "alice", 1).unwrap();
        let second = request_release(&conn, "be/s2", "admin endpoint", 2).unwrap();
        let pending = pending_releases(&conn).unwrap();
        assert_eq!(
            pending.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["be/s1", "be/s2"]
        );
        assert_eq!(pending[0].requested_by, "alice");
        assert_eq!(release_result(&conn, first).unwrap(), None);
        finish_release(&conn, first, "restore", 3).unwrap();
        assert_eq!(
            release_result(&conn, first).unwrap().as_deref(),
            Some("restore")
        );
        assert_eq!(pending_releases(&conn).unwrap()[0].id, second);
        assert_eq!(release_result(&conn, 99).unwrap(), None);
    }

    #[test]
    fn an_unreadable_row_is_an_error_naming_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db(dir.path());
        conn.execute(
            "INSERT INTO lifecycle VALUES ('be/s1', 'be', 'errors', 'out', '{\"phase\":\"lost\"}', 0)",
            [],
        )
        .unwrap();
        let err = load(&conn).unwrap_err();
        assert!(err.to_string().contains("be/s1"), "{err}");
    }
}
