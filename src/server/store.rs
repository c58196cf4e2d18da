//! Trace storage: in memory (default) or SQLite (`db=PATH`, survives restarts).
//!
//! A trace is kept as the exact JSON text that was posted, plus metadata. An
//! `Idempotency-Key` is scoped to its agent: a repeated key returns the first
//! trace id and stores nothing. Insert-with-key is atomic in both stores (one
//! lock around check and insert).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

use super::answer::Obj;
use crate::error::Error;

/// One stored trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1, 2, 3... in arrival order.
    pub seq: u64,
    pub trace_id: String,
    /// Lower-cased.
    pub agent_id: String,
    /// RFC 3339 UTC with milliseconds.
    pub received_at: String,
    pub idempotency_key: Option<String>,
    /// The JSON object exactly as posted.
    pub body: String,
}

impl Record {
    /// `{"traceId", "agentId", "receivedAt", "idempotencyKey", "trace": <posted object>}`.
    pub fn to_json(&self) -> String {
        Obj::with_capacity(self.body.len() + 200)
            .str("traceId", &self.trace_id)
            .str("agentId", &self.agent_id)
            .str("receivedAt", &self.received_at)
            .opt_str("idempotencyKey", self.idempotency_key.as_deref())
            .raw("trace", &self.body)
            .finish()
    }
}

/// Result of an insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    Created(String),
    /// The idempotency key was seen before: the first trace's id.
    Replayed(String),
}

#[derive(Default)]
pub struct Mem {
    all: Vec<Arc<Record>>,
    by_id: HashMap<String, Arc<Record>>,
    by_agent: HashMap<String, Vec<Arc<Record>>>,
    idem: HashMap<(String, String), String>,
}

pub enum Store {
    Memory(Mutex<Mem>),
    Sqlite(Mutex<Connection>),
}

/// A new random (v4) UUID, lower-case, without a system call per id.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    fastrand::fill(&mut b);
    uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for now.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(d.as_secs() as i64, d.subsec_millis())
}

fn format_rfc3339(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::Unexpected(format!("local API storage (SQLite): {e}"))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS traces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    idempotency_key TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_agent ON traces(agent_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS traces_idem ON traces(agent_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
";

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        seq: row.get::<_, i64>(0)? as u64,
        trace_id: row.get(1)?,
        agent_id: row.get(2)?,
        received_at: row.get(3)?,
        idempotency_key: row.get(4)?,
        body: row.get(5)?,
    })
}

const COLS: &str = "seq, trace_id, agent_id, received_at, idempotency_key, body";

impl Store {
    pub fn memory() -> Self {
        Store::Memory(Mutex::new(Mem::default()))
    }

    /// Open (creating if needed) a SQLite database file.
    pub fn sqlite(path: &str) -> Result<Self, Error> {
        let open_err = |e: rusqlite::Error| Error::Config {
            message: format!("cannot open the trace database {path:?}: {e}"),
            key: Some("db".to_owned()),
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        // WAL is best effort (e.g. not available on some filesystems).
        let _ = conn.pragma_update(None, "journal_mode", "WAL");
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(Store::Sqlite(Mutex::new(conn)))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    pub fn insert(&self, agent_id: &str, idem: Option<&str>, body: String) -> Result<Inserted, Error> {
        let received_at = now_rfc3339();
        match self {
            Store::Memory(m) => {
                let mut m = m.lock();
                if let Some(k) = idem {
                    if let Some(first) = m.idem.get(&(agent_id.to_owned(), k.to_owned())) {
                        return Ok(Inserted::Replayed(first.clone()));
                    }
                }
                let trace_id = new_uuid();
                let rec = Arc::new(Record {
                    seq: m.all.len() as u64 + 1,
                    trace_id: trace_id.clone(),
                    agent_id: agent_id.to_owned(),
                    received_at,
                    idempotency_key: idem.map(str::to_owned),
                    body,
                });
                if let Some(k) = idem {
                    m.idem
                        .insert((agent_id.to_owned(), k.to_owned()), trace_id.clone());
                }
                m.by_id.insert(trace_id.clone(), rec.clone());
                m.by_agent
                    .entry(agent_id.to_owned())
                    .or_default()
                    .push(rec.clone());
                m.all.push(rec);
                Ok(Inserted::Created(trace_id))
            }
            Store::Sqlite(c) => {
                let c = c.lock();
                if let Some(k) = idem {
                    let first: Option<String> = c
                        .query_row(
                            "SELECT trace_id FROM traces WHERE agent_id = ?1 AND idempotency_key = ?2",
                            params![agent_id, k],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(db_err)?;
                    if let Some(first) = first {
                        return Ok(Inserted::Replayed(first));
                    }
                }
                let trace_id = new_uuid();
                c.execute(
                    "INSERT INTO traces (trace_id, agent_id, received_at, idempotency_key, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![trace_id, agent_id, received_at, idem, body],
                )
                .map_err(db_err)?;
                Ok(Inserted::Created(trace_id))
            }
        }
    }

    pub fn get(&self, agent_id: &str, trace_id: &str) -> Result<Option<Record>, Error> {
        match self {
            Store::Memory(m) => Ok(m
                .lock()
                .by_id
                .get(trace_id)
                .filter(|r| r.agent_id == agent_id)
                .map(|r| (**r).clone())),
            Store::Sqlite(c) => c
                .lock()
                .query_row(
                    &format!("SELECT {COLS} FROM traces WHERE trace_id = ?1 AND agent_id = ?2"),
                    params![trace_id, agent_id],
                    row_to_record,
                )
                .optional()
                .map_err(db_err),
        }
    }

    /// Newest first, `limit` from `offset` (past the end: an empty page), and
    /// the agent's total.
    pub fn list(&self, agent_id: &str, limit: usize, offset: u64) -> Result<(Vec<Record>, u64), Error> {
        match self {
            Store::Memory(m) => {
                let m = m.lock();
                let Some(v) = m.by_agent.get(agent_id) else {
                    return Ok((Vec::new(), 0));
                };
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                let page = v
                    .iter()
                    .rev()
                    .skip(offset)
                    .take(limit)
                    .map(|r| (**r).clone())
                    .collect();
                Ok((page, v.len() as u64))
            }
            Store::Sqlite(c) => {
                let c = c.lock();
                let total: i64 = c
                    .query_row(
                        "SELECT COUNT(*) FROM traces WHERE agent_id = ?1",
                        params![agent_id],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                let mut st = c
                    .prepare(&format!(
                        "SELECT {COLS} FROM traces WHERE agent_id = ?1 ORDER BY seq DESC LIMIT ?2 OFFSET ?3"
                    ))
                    .map_err(db_err)?;
                let rows = st
                    // Past the total the page is empty; clamping keeps the
                    // offset within SQLite's signed range.
                    .query_map(
                        params![agent_id, limit as i64, offset.min(total as u64) as i64],
                        row_to_record,
                    )
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                Ok((rows, total as u64))
            }
        }
    }

    /// Every trace (of one agent when given), oldest first.
    pub fn all(&self, agent_id: Option<&str>) -> Result<Vec<Record>, Error> {
        match self {
            Store::Memory(m) => {
                let m = m.lock();
                Ok(match agent_id {
                    Some(a) => m
                        .by_agent
                        .get(a)
                        .map(|v| v.iter().map(|r| (**r).clone()).collect())
                        .unwrap_or_default(),
                    None => m.all.iter().map(|r| (**r).clone()).collect(),
                })
            }
            Store::Sqlite(c) => {
                let c = c.lock();
                let (sql, p): (String, Vec<&dyn rusqlite::ToSql>) = match &agent_id {
                    Some(a) => (
                        format!("SELECT {COLS} FROM traces WHERE agent_id = ?1 ORDER BY seq"),
                        vec![a as &dyn rusqlite::ToSql],
                    ),
                    None => (format!("SELECT {COLS} FROM traces ORDER BY seq"), vec![]),
                };
                let mut st = c.prepare(&sql).map_err(db_err)?;
                let rows = st
                    .query_map(p.as_slice(), row_to_record)
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                Ok(rows)
            }
        }
    }

    pub fn count(&self) -> Result<u64, Error> {
        match self {
            Store::Memory(m) => Ok(m.lock().all.len() as u64),
            Store::Sqlite(c) => c
                .lock()
                .query_row("SELECT COUNT(*) FROM traces", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db_err),
        }
    }

    /// Forget every trace (and idempotency key).
    pub fn clear(&self) -> Result<(), Error> {
        match self {
            Store::Memory(m) => {
                *m.lock() = Mem::default();
                Ok(())
            }
            Store::Sqlite(c) => c
                .lock()
                .execute("DELETE FROM traces", [])
                .map(|_| ())
                .map_err(db_err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &Store) {
        let a = s.insert("a", None, "{\"n\":1}".to_owned()).unwrap();
        let Inserted::Created(id1) = a else {
            panic!("expected a new trace")
        };
        let b = s.insert("a", Some("k"), "{\"n\":2}".to_owned()).unwrap();
        let Inserted::Created(id2) = b else {
            panic!("expected a new trace")
        };
        assert_eq!(
            s.insert("a", Some("k"), "{\"n\":3}".to_owned()).unwrap(),
            Inserted::Replayed(id2.clone())
        );
        // Same key, other agent: a new trace.
        assert!(matches!(
            s.insert("b", Some("k"), "{}".to_owned()).unwrap(),
            Inserted::Created(_)
        ));
        assert_eq!(s.count().unwrap(), 3);
        let (page, total) = s.list("a", 1, 0).unwrap();
        assert_eq!(total, 2);
        assert_eq!(page[0].trace_id, id2);
        let (page, _) = s.list("a", 10, 1).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].trace_id, id1);
        for past_the_end in [2, 1 << 63, u64::MAX] {
            let (page, total) = s.list("a", 10, past_the_end).unwrap();
            assert!(page.is_empty() && total == 2, "offset {past_the_end}");
        }
        assert_eq!(s.get("a", &id1).unwrap().unwrap().body, "{\"n\":1}");
        assert!(s.get("b", &id1).unwrap().is_none());
        let all = s.all(None).unwrap();
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(s.all(Some("a")).unwrap().len(), 2);
        let v: serde_json::Value = serde_json::from_str(&all[1].to_json()).unwrap();
        assert_eq!(v["trace"]["n"], 2);
        assert_eq!(v["idempotencyKey"], "k");
        s.clear().unwrap();
        assert_eq!(s.count().unwrap(), 0);
    }

    #[test]
    fn memory_store() {
        exercise(&Store::memory());
    }

    #[test]
    fn sqlite_store_and_persistence() {
        let dir = std::env::temp_dir().join(format!("infinium-store-{}", new_uuid()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let p = path.to_str().unwrap();
        exercise(&Store::sqlite(p).unwrap());
        {
            let s = Store::sqlite(p).unwrap();
            s.insert("a", Some("z"), "{}".to_owned()).unwrap();
        }
        let s = Store::sqlite(p).unwrap();
        assert_eq!(s.count().unwrap(), 1);
        assert!(matches!(
            s.insert("a", Some("z"), "{}".to_owned()).unwrap(),
            Inserted::Replayed(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rfc3339_format() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(1_709_210_096, 7), "2024-02-29T12:34:56.007Z");
        assert_eq!(new_uuid().len(), 36);
    }
}
