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
    /// The archive copy's plaintext SHA-256 and size.
    pub archive_sha256: Option<String>,
    pub archive_bytes: Option<u64>,
    /// Wall clock (Unix ms) of the recording timeline's 0, once finished.
    pub timeline_start_ms: Option<u64>,
    /// Stretches without media (JSON of the recorder's gaps).
    pub gaps: serde_json::Value,
}

/// An object named before it was written, whose row has not come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentRow {
    pub key: String,
    pub class: String,
    pub case_id: Option<i64>,
    pub created_at_ms: u64,
}

/// One stored segment of a recording.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SegmentRow {
    pub index: u32,
    pub key: String,
    pub sha256: String,
    pub bytes: u64,
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// What a finished recording stores besides its status.
#[derive(Debug, Clone, Default)]
pub struct RecordingEnd<'a> {
    pub complete: bool,
    pub archive_key: Option<&'a str>,
    pub archive_sha256: Option<&'a str>,
    pub archive_bytes: Option<u64>,
    pub manifest_key: Option<&'a str>,
    pub timeline_start_ms: Option<u64>,
    pub gaps: serde_json::Value,
    pub note: Option<&'a str>,
}

/// The columns of [`RecordingRow`], in [`recording_row`]'s order.
const RECORDING_COLUMNS: &str =
    "SELECT r.id, r.room, r.take, r.participant, r.case_id, r.status, r.started_at_ms, r.ended_at_ms,
            r.archive_key, r.manifest_key,
            (SELECT COUNT(*) FROM recording_segments s WHERE s.recording_id = r.id),
            r.archive_sha256, r.archive_bytes, r.timeline_start_ms, r.gaps
     FROM recordings r";

fn recording_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordingRow> {
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
        archive_sha256: r.get(11)?,
        archive_bytes: r.get::<_, Option<i64>>(12)?.map(row_ms),
        timeline_start_ms: r.get::<_, Option<i64>>(13)?.map(row_ms),
        gaps: serde_json::from_str(&r.get::<_, String>(14)?).unwrap_or(serde_json::Value::Null),
    })
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
    pub fn finish_recording(&self, recording_id: i64, end: &RecordingEnd<'_>, now_ms: u64) -> Result<(), DataError> {
        self.conn().execute(
            "UPDATE recordings SET status = ?2, archive_key = ?3, manifest_key = ?4, note = ?5, ended_at_ms = ?6,
                    archive_sha256 = ?7, archive_bytes = ?8, timeline_start_ms = ?9, gaps = ?10
             WHERE id = ?1",
            params![
                recording_id,
                if end.complete { "complete" } else { "incomplete" },
                end.archive_key,
                end.manifest_key,
                end.note,
                sql_ms(now_ms),
                end.archive_sha256,
                end.archive_bytes.map(sql_ms),
                end.timeline_start_ms.map(sql_ms),
                end.gaps.to_string(),
            ],
        )?;
        Ok(())
    }

    /// The segments of a recording, in order.
    pub fn recording_segments(&self, recording_id: i64) -> Result<Vec<SegmentRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT idx, object_key, sha256, bytes, start_ms, duration_ms FROM recording_segments
             WHERE recording_id = ?1 ORDER BY idx",
        )?;
        let rows = st.query_map([recording_id], |r| {
            Ok(SegmentRow {
                index: r.get(0)?,
                key: r.get(1)?,
                sha256: r.get(2)?,
                bytes: row_ms(r.get(3)?),
                start_ms: r.get(4)?,
                duration_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
        let mut stmt = conn.prepare(&format!("{RECORDING_COLUMNS} WHERE r.case_id = ?1 ORDER BY r.id"))?;
        let rows = stmt.query_map([case_id], recording_row)?;
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

    /// One recording, if it exists.
    pub fn recording(&self, recording_id: i64) -> Result<Option<RecordingRow>, DataError> {
        Ok(self
            .conn()
            .query_row(&format!("{RECORDING_COLUMNS} WHERE r.id = ?1"), [recording_id], recording_row)
            .optional()?)
    }

    /// The object key of segment `idx` of a recording, if it was stored.
    pub fn recording_segment_key(&self, recording_id: i64, idx: u32) -> Result<Option<String>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT object_key FROM recording_segments WHERE recording_id = ?1 AND idx = ?2",
                params![recording_id, idx],
                |r| r.get(0),
            )
            .optional()?)
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
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO stored_objects (object_key, class, case_id, created_at_ms, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, class, case_id, sql_ms(now_ms), bytes as i64],
        )?;
        tx.execute("DELETE FROM object_intents WHERE object_key = ?1", [key])?;
        tx.commit()?;
        Ok(())
    }

    /// Name an object before it is written to the store (its row follows once it is stored).
    pub fn record_intent(&self, key: &str, class: &str, case_id: Option<i64>, now_ms: u64) -> Result<(), DataError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO object_intents (object_key, class, case_id, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![key, class, case_id, sql_ms(now_ms)],
        )?;
        Ok(())
    }

    /// Every intent whose object's row has not come (yet).
    pub fn intents(&self) -> Result<Vec<IntentRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT object_key, class, case_id, created_at_ms FROM object_intents")?;
        let rows = st.query_map([], |r| {
            Ok(IntentRow { key: r.get(0)?, class: r.get(1)?, case_id: r.get(2)?, created_at_ms: row_ms(r.get(3)?) })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn drop_intent(&self, key: &str) -> Result<(), DataError> {
        self.conn().execute("DELETE FROM object_intents WHERE object_key = ?1", [key])?;
        Ok(())
    }

    /// Every object key the database accounts for: the catalogue and the papers.
    pub fn known_object_keys(&self) -> Result<std::collections::HashSet<String>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT object_key FROM stored_objects UNION SELECT object_key FROM papers")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ids of every paper upload (finished or not): their chunks are accounted for.
    pub fn upload_ids(&self) -> Result<std::collections::HashSet<String>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id FROM paper_uploads")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What sealed data the database knows of, if any (the first kind found, in words for an
    /// operator): catalogued objects, papers, uploads in progress, sealed ID numbers.
    pub fn sealed_data_present(&self) -> Result<Option<&'static str>, DataError> {
        let conn = self.conn();
        for (what, sql) in [
            ("stored objects", "SELECT EXISTS (SELECT 1 FROM stored_objects)"),
            ("papers", "SELECT EXISTS (SELECT 1 FROM papers)"),
            ("paper uploads", "SELECT EXISTS (SELECT 1 FROM paper_uploads)"),
            ("recordings", "SELECT EXISTS (SELECT 1 FROM recording_segments)"),
            ("sealed ID numbers", "SELECT EXISTS (SELECT 1 FROM cases WHERE id_number_sealed IS NOT NULL)"),
        ] {
            if conn.query_row(sql, [], |r| r.get::<_, bool>(0))? {
                return Ok(Some(what));
            }
        }
        Ok(None)
    }

    /// The keys of the `n` newest stored objects, papers and catalogued objects outside the
    /// legal-hold area (those are under a KEK): what the start-up check of the period key file
    /// looks at.
    pub fn newest_objects(&self, n: usize) -> Result<Vec<String>, DataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT object_key FROM (
                 SELECT object_key, created_at_ms FROM stored_objects WHERE in_hold_area = 0
                 UNION ALL SELECT object_key, created_at_ms FROM papers)
             ORDER BY created_at_ms DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([n as i64], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
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

/// One catalogued object as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRow {
    pub key: String,
    pub class: String,
    pub case_id: Option<i64>,
    pub created_at_ms: u64,
    pub in_hold_area: bool,
}

/// One placing or lifting of a hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HoldHistoryRow {
    /// `placed` or `lifted`.
    pub action: String,
    pub by: i64,
    pub by_name: String,
    pub at_ms: u64,
    pub reason: String,
}

/// A legal hold on a case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegalHold {
    pub case_id: i64,
    pub placed_by: i64,
    pub placed_at_ms: u64,
    pub reason: String,
}

impl Db {
    /// Catalogue papers that are not yet (papers are stored by the cases module).
    pub fn catalog_papers(&self) -> Result<usize, DataError> {
        Ok(self.conn().execute(
            "INSERT OR IGNORE INTO stored_objects (object_key, class, case_id, created_at_ms, bytes)
             SELECT object_key, 'papers', case_id, created_at_ms, size FROM papers
             WHERE object_key NOT IN (SELECT object_key FROM destructions)",
            [],
        )?)
    }

    pub fn catalog(&self) -> Result<Vec<CatalogRow>, DataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT object_key, class, case_id, created_at_ms, in_hold_area FROM stored_objects ORDER BY object_key",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CatalogRow {
                key: r.get(0)?,
                class: r.get(1)?,
                case_id: r.get(2)?,
                created_at_ms: row_ms(r.get(3)?),
                in_hold_area: r.get::<_, i64>(4)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_in_hold_area(&self, key: &str, in_hold_area: bool) -> Result<(), DataError> {
        self.conn().execute(
            "UPDATE stored_objects SET in_hold_area = ?2 WHERE object_key = ?1",
            params![key, in_hold_area as i64],
        )?;
        Ok(())
    }

    /// Whether the object now lives in the legal-hold area.
    pub fn object_in_hold_area(&self, key: &str) -> Result<bool, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT in_hold_area FROM stored_objects WHERE object_key = ?1", [key], |r| r.get::<_, i64>(0))
            .optional()?
            .is_some_and(|v| v != 0))
    }

    /// The object was destroyed: out of the catalog, into the destruction record.
    pub fn record_destruction(
        &self,
        key: &str,
        class: &str,
        case_id: Option<i64>,
        created_at_ms: u64,
        destroyed_at_ms: u64,
        reason: &str,
    ) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO destructions (object_key, class, case_id, created_at_ms, destroyed_at_ms, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key, class, case_id, sql_ms(created_at_ms), sql_ms(destroyed_at_ms), reason],
        )?;
        tx.execute("DELETE FROM stored_objects WHERE object_key = ?1", [key])?;
        tx.commit()?;
        Ok(())
    }

    /// When retention destroyed the object `key`, if it did.
    pub fn object_destroyed_at(&self, key: &str) -> Result<Option<u64>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT destroyed_at_ms FROM destructions WHERE object_key = ?1 ORDER BY id DESC LIMIT 1",
                [key],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(row_ms))
    }

    /// The objects of a case destroyed by retention: (key, destroyed at).
    pub fn destroyed_objects_of_case(&self, case_id: i64) -> Result<Vec<(String, u64)>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT object_key, destroyed_at_ms FROM destructions WHERE case_id = ?1")?;
        let rows = st.query_map([case_id], |r| Ok((r.get(0)?, row_ms(r.get(1)?))))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn destructions_count(&self) -> Result<u64, DataError> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM destructions", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Place (or re-state) a hold; the history keeps every placing.
    pub fn place_legal_hold(&self, case_id: i64, by: i64, reason: &str, now_ms: u64) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO legal_holds (case_id, placed_by, placed_at_ms, reason) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (case_id) DO UPDATE SET reason = excluded.reason",
            params![case_id, by, sql_ms(now_ms), reason],
        )?;
        tx.execute(
            "INSERT INTO legal_hold_history (case_id, action, by_user, at_ms, reason) VALUES (?1, 'placed', ?2, ?3, ?4)",
            params![case_id, by, sql_ms(now_ms), reason],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Lift a hold, with why; false if there was none. The history keeps the lifting.
    pub fn lift_legal_hold(&self, case_id: i64, by: i64, reason: &str, now_ms: u64) -> Result<bool, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM legal_holds WHERE case_id = ?1", [case_id])? == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO legal_hold_history (case_id, action, by_user, at_ms, reason) VALUES (?1, 'lifted', ?2, ?3, ?4)",
            params![case_id, by, sql_ms(now_ms), reason],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Every placing and lifting of holds on a case, oldest first.
    pub fn legal_hold_history(&self, case_id: i64) -> Result<Vec<HoldHistoryRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT h.action, h.by_user, u.display_name, h.at_ms, h.reason FROM legal_hold_history h
             LEFT JOIN users u ON u.id = h.by_user WHERE h.case_id = ?1 ORDER BY h.id",
        )?;
        let rows = st.query_map([case_id], |r| {
            Ok(HoldHistoryRow {
                action: r.get(0)?,
                by: r.get(1)?,
                by_name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                at_ms: row_ms(r.get(3)?),
                reason: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn legal_hold(&self, case_id: i64) -> Result<Option<LegalHold>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT case_id, placed_by, placed_at_ms, reason FROM legal_holds WHERE case_id = ?1",
                [case_id],
                |r| {
                    Ok(LegalHold {
                        case_id: r.get(0)?,
                        placed_by: r.get(1)?,
                        placed_at_ms: row_ms(r.get(2)?),
                        reason: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn legal_hold_cases(&self) -> Result<Vec<i64>, DataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT case_id FROM legal_holds")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }
}

/// One opening of a group call room (一对多: a dispatcher and several villages), as the
/// review lists it: its recordings share the room and the take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCallRow {
    /// `group:N`.
    pub room: String,
    /// Unix ms the room was opened.
    pub take: u64,
    /// The first recording's start and the last one's end (none while one still records).
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    /// Media labels (`staff:ID`, `kiosk:ID`), one per recording, in no particular order.
    pub participants: Vec<String>,
    /// Recordings not (yet) complete.
    pub incomplete: u32,
}

/// Which group calls the review lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCallFilter {
    /// Only the calls one of whose participants belongs to this town (a dispatcher of it, or a
    /// kiosk of one of its villages).
    pub town_id: Option<i64>,
    /// Opened at or after, and before (Unix ms).
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
}

/// Group call rooms are named `group:N`: the range of such names, for the unique index on
/// (room, take, participant).
const GROUP_ROOMS: &str = "r.room >= 'group:' AND r.room < 'group;'";

/// 1 when the recording `alias` is of a participant of town `param` (its staff member's
/// town, or its kiosk's village's town), else 0: summed over a call's recordings.
fn of_town(alias: &str, param: &str) -> String {
    format!(
        "(CASE WHEN {alias}.participant LIKE 'kiosk:%' THEN EXISTS (SELECT 1 FROM kiosks k JOIN villages v ON v.id = k.village_id
                   WHERE k.id = CAST(substr({alias}.participant, 7) AS INTEGER) AND v.town_id = {param})
              WHEN {alias}.participant LIKE 'staff:%' THEN EXISTS (SELECT 1 FROM users u
                   WHERE u.id = CAST(substr({alias}.participant, 7) AS INTEGER) AND u.town_id = {param})
              ELSE 0 END)"
    )
}

impl Db {
    /// The group calls matching `filter`, newest first: how many in all, and up to `limit`
    /// of them before the call `before` (take, room) when given (keyset paging).
    pub fn group_calls(
        &self,
        filter: GroupCallFilter,
        before: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<(u64, Vec<GroupCallRow>), DataError> {
        use rusqlite::params_from_iter;
        use rusqlite::types::Value as SqlValue;
        let mut wheres = vec![GROUP_ROOMS.to_string()];
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(from) = filter.from_ms {
            args.push(SqlValue::from(sql_ms(from)));
            wheres.push(format!("r.take >= ?{}", args.len()));
        }
        if let Some(to) = filter.to_ms {
            args.push(SqlValue::from(sql_ms(to)));
            wheres.push(format!("r.take < ?{}", args.len()));
        }
        let having = match filter.town_id {
            Some(town) => {
                args.push(SqlValue::from(town));
                format!("HAVING SUM({}) > 0", of_town("r", &format!("?{}", args.len())))
            }
            None => String::new(),
        };
        let grouped = |wheres: &[String]| {
            format!(
                "SELECT r.room, r.take, MIN(r.started_at_ms), MAX(COALESCE(r.ended_at_ms, -1)),
                        GROUP_CONCAT(r.participant, ','), SUM(r.status <> 'complete')
                 FROM recordings r WHERE {} GROUP BY r.room, r.take {having}",
                wheres.join(" AND ")
            )
        };
        let conn = self.conn();
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM ({})", grouped(&wheres)),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        if let Some((take, room)) = before {
            args.push(SqlValue::from(sql_ms(take)));
            let t = args.len();
            args.push(SqlValue::from(room.to_string()));
            wheres.push(format!("(r.take < ?{t} OR (r.take = ?{t} AND r.room < ?{}))", args.len()));
        }
        args.push(SqlValue::from(i64::try_from(limit).unwrap_or(i64::MAX)));
        let sql = format!("{} ORDER BY r.take DESC, r.room DESC LIMIT ?{}", grouped(&wheres), args.len());
        let mut st = conn.prepare(&sql)?;
        let rows = st
            .query_map(params_from_iter(args.iter()), |r| {
                let ended: i64 = r.get(3)?;
                let incomplete: i64 = r.get(5)?;
                Ok(GroupCallRow {
                    room: r.get(0)?,
                    take: row_ms(r.get(1)?),
                    started_at_ms: row_ms(r.get(2)?),
                    ended_at_ms: (ended >= 0).then(|| row_ms(ended)),
                    participants: r.get::<_, String>(4)?.split(',').map(str::to_string).collect(),
                    incomplete: u32::try_from(incomplete).unwrap_or(u32::MAX),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((row_ms(total), rows))
    }

    /// The recordings of one opening of a group call room, oldest first.
    pub fn recordings_of_group_call(&self, room: &str, take: u64) -> Result<Vec<RecordingRow>, DataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{RECORDING_COLUMNS} WHERE r.room = ?1 AND r.take = ?2 AND {GROUP_ROOMS} ORDER BY r.id"
        ))?;
        let rows = stmt.query_map(params![room, sql_ms(take)], recording_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether the group call (room, take) has recordings and, with `town_id`, one of its
    /// participants belongs to that town (one indexed query: media requests ask it each time).
    pub fn group_call_visible(&self, room: &str, take: u64, town_id: Option<i64>) -> Result<bool, DataError> {
        let conn = self.conn();
        let sql = match town_id {
            None => format!(
                "SELECT EXISTS (SELECT 1 FROM recordings r WHERE r.room = ?1 AND r.take = ?2 AND {GROUP_ROOMS})"
            ),
            Some(_) => format!(
                "SELECT COALESCE(SUM({}), 0) > 0 FROM recordings r WHERE r.room = ?1 AND r.take = ?2 AND {GROUP_ROOMS}",
                of_town("r", "?3")
            ),
        };
        Ok(match town_id {
            None => conn.query_row(&sql, params![room, sql_ms(take)], |r| r.get(0))?,
            Some(t) => conn.query_row(&sql, params![room, sql_ms(take), t], |r| r.get(0))?,
        })
    }
}
