//! Recordings, their segments, and the catalog of stored objects.

use rusqlite::{OptionalExtension, params};

use super::{DataError, Db, row_ms, sql_ms};

/// One participant's recording of one opening of a call room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    pub id: i64,
    pub room: String,
    pub take: u64,
    pub participant: String,
    pub case_id: Option<i64>,
    pub status: String,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub archive_key: Option<String>,
    pub manifest_key: Option<String>,
    pub segments: u32,
}

impl Db {
    /// The recording row of (room, take, participant), created on first use.
    pub fn recording_for(
        &self,
        room: &str,
        take: u64,
        participant: &str,
        case_id: Option<i64>,
        now_ms: u64,
    ) -> Result<i64, DataError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO recordings (room, take, participant, case_id, status, started_at_ms)
             VALUES (?1, ?2, ?3, ?4, 'recording', ?5)",
            params![room, sql_ms(take), participant, case_id, sql_ms(now_ms)],
        )?;
        Ok(conn.query_row(
            "SELECT id FROM recordings WHERE room = ?1 AND take = ?2 AND participant = ?3",
            params![room, sql_ms(take), participant],
            |r| r.get(0),
        )?)
    }

    /// A segment was stored (encrypted) under `object_key`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_recording_segment(
        &self,
        recording_id: i64,
        idx: u32,
        object_key: &str,
        sha256: &str,
        bytes: u64,
        start_ms: i64,
        duration_ms: i64,
    ) -> Result<(), DataError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO recording_segments (recording_id, idx, object_key, sha256, bytes, start_ms, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![recording_id, idx, object_key, sha256, bytes as i64, start_ms, duration_ms],
        )?;
        Ok(())
    }

    /// The recording ended: `complete` with its archive and manifest, or `incomplete` with why.
    pub fn finish_recording(
        &self,
        recording_id: i64,
        complete: bool,
        archive_key: Option<&str>,
        manifest_key: Option<&str>,
        note: Option<&str>,
        now_ms: u64,
    ) -> Result<(), DataError> {
        self.conn().execute(
            "UPDATE recordings SET status = ?2, archive_key = ?3, manifest_key = ?4, note = ?5, ended_at_ms = ?6
             WHERE id = ?1",
            params![
                recording_id,
                if complete { "complete" } else { "incomplete" },
                archive_key,
                manifest_key,
                note,
                sql_ms(now_ms)
            ],
        )?;
        Ok(())
    }

    /// At start-up: recordings still marked `recording` were cut off by a crash.
    pub fn mark_interrupted_recordings(&self, now_ms: u64) -> Result<usize, DataError> {
        Ok(self.conn().execute(
            "UPDATE recordings SET status = 'incomplete', ended_at_ms = ?1,
                    note = 'the server stopped during the call; the segments closed before it are kept'
             WHERE status = 'recording'",
            params![sql_ms(now_ms)],
        )?)
    }

    /// The recordings of a case, oldest first.
    pub fn recordings_of_case(&self, case_id: i64) -> Result<Vec<RecordingRow>, DataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT r.id, r.room, r.take, r.participant, r.case_id, r.status, r.started_at_ms, r.ended_at_ms,
                    r.archive_key, r.manifest_key,
                    (SELECT COUNT(*) FROM recording_segments s WHERE s.recording_id = r.id)
             FROM recordings r WHERE r.case_id = ?1 ORDER BY r.id",
        )?;
        let rows = stmt.query_map([case_id], |r| {
            Ok(RecordingRow {
                id: r.get(0)?,
                room: r.get(1)?,
                take: row_ms(r.get(2)?),
                participant: r.get(3)?,
                case_id: r.get(4)?,
                status: r.get(5)?,
                started_at_ms: row_ms(r.get(6)?),
                ended_at_ms: r.get::<_, Option<i64>>(7)?.map(row_ms),
                archive_key: r.get(8)?,
                manifest_key: r.get(9)?,
                segments: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The segment object keys of a recording, in order.
    pub fn recording_segment_keys(&self, recording_id: i64) -> Result<Vec<String>, DataError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT object_key FROM recording_segments WHERE recording_id = ?1 ORDER BY idx")?;
        let keys = stmt.query_map([recording_id], |r| r.get(0))?;
        Ok(keys.collect::<Result<_, _>>()?)
    }

    /// Catalog a stored object (for retention and legal hold).
    pub fn catalog_object(
        &self,
        key: &str,
        class: &str,
        case_id: Option<i64>,
        bytes: u64,
        now_ms: u64,
    ) -> Result<(), DataError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO stored_objects (object_key, class, case_id, created_at_ms, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, class, case_id, sql_ms(now_ms), bytes as i64],
        )?;
        Ok(())
    }

    /// Whether an object is in the catalog.
    pub fn object_cataloged(&self, key: &str) -> Result<bool, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM stored_objects WHERE object_key = ?1", [key], |_| Ok(()))
            .optional()?
            .is_some())
    }
}
