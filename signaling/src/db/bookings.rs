//! 预约 bookings of a window's slots by a village room.

use rusqlite::{OptionalExtension, params};

use super::region::NamedRef;
use super::{DataError, Db, bad_text, fk_not_found, row_ms, sql_ms};
pub use crate::case::BookingStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRow {
    pub id: i64,
    pub village: NamedRef,
    pub kiosk_id: Option<i64>,
    pub matter_id: i64,
    pub matter_name: String,
    pub matter_plain_name: String,
    pub window: NamedRef,
    pub town_id: i64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub note: Option<String>,
    pub status: BookingStatus,
    pub case_no: Option<String>,
    pub created_at_ms: u64,
}

/// Whose bookings a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingScope {
    Village(i64),
    Window(i64),
    Town(i64),
    County,
}

const BOOKING_SELECT: &str = "SELECT b.id, b.village_id, v.name, b.kiosk_id, b.matter_id, m.name, m.plain_name,
        b.window_id, w.name, w.town_id, b.start_ms, b.end_ms, b.note, b.status, c.case_no, b.created_at_ms
     FROM bookings b
     JOIN villages v ON v.id = b.village_id
     JOIN matters m ON m.id = b.matter_id
     JOIN windows w ON w.id = b.window_id
     LEFT JOIN cases c ON c.id = b.case_id";

fn booking_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BookingRow> {
    Ok(BookingRow {
        id: r.get(0)?,
        village: NamedRef { id: r.get(1)?, name: r.get(2)? },
        kiosk_id: r.get(3)?,
        matter_id: r.get(4)?,
        matter_name: r.get(5)?,
        matter_plain_name: r.get(6)?,
        window: NamedRef { id: r.get(7)?, name: r.get(8)? },
        town_id: r.get(9)?,
        start_ms: row_ms(r.get(10)?),
        end_ms: row_ms(r.get(11)?),
        note: r.get(12)?,
        status: {
            let s: String = r.get(13)?;
            BookingStatus::parse(&s).ok_or_else(|| bad_text("booking status", &s))?
        },
        case_no: r.get(14)?,
        created_at_ms: row_ms(r.get(15)?),
    })
}

impl Db {
    #[allow(clippy::too_many_arguments)]
    pub fn create_booking(
        &self,
        village_id: i64,
        kiosk_id: Option<i64>,
        matter_id: i64,
        window_id: i64,
        start_ms: u64,
        end_ms: u64,
        note: Option<&str>,
        now_ms: u64,
    ) -> Result<i64, DataError> {
        self.create_booking_within(
            village_id,
            kiosk_id,
            matter_id,
            window_id,
            start_ms,
            end_ms,
            note,
            now_ms,
            usize::MAX,
        )
    }

    /// As [`Db::create_booking`], unless the village has `max_open` bookings not used,
    /// cancelled or over yet: then `Invalid("too many open bookings")`, nothing written.
    #[allow(clippy::too_many_arguments)]
    pub fn create_booking_within(
        &self,
        village_id: i64,
        kiosk_id: Option<i64>,
        matter_id: i64,
        window_id: i64,
        start_ms: u64,
        end_ms: u64,
        note: Option<&str>,
        now_ms: u64,
        max_open: usize,
    ) -> Result<i64, DataError> {
        let conn = self.conn();
        let open: i64 = conn.query_row(
            "SELECT count(*) FROM bookings WHERE village_id = ?1 AND status = 'booked' AND end_ms > ?2",
            params![village_id, sql_ms(now_ms)],
            |r| r.get(0),
        )?;
        if usize::try_from(open).unwrap_or(usize::MAX) >= max_open {
            return Err(DataError::Invalid("too many open bookings".into()));
        }
        let r = conn.execute(
            "INSERT INTO bookings (village_id, kiosk_id, matter_id, window_id, start_ms, end_ms, note, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![village_id, kiosk_id, matter_id, window_id, sql_ms(start_ms), sql_ms(end_ms), note, sql_ms(now_ms)],
        );
        match r {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => {
                Err(DataError::Conflict("slot taken".into()))
            }
            Err(e) => Err(fk_not_found(e, "village, kiosk, matter or window")),
        }
    }

    pub fn booking(&self, id: i64) -> Result<Option<BookingRow>, DataError> {
        let sql = format!("{BOOKING_SELECT} WHERE b.id = ?1");
        Ok(self.conn().query_row(&sql, [id], booking_row).optional()?)
    }

    /// Bookings in scope whose slot starts in `from_ms..to_ms`, by time (cancelled ones too
    /// when `with_cancelled`).
    pub fn bookings_in_scope(
        &self,
        scope: BookingScope,
        from_ms: u64,
        to_ms: u64,
        with_cancelled: bool,
    ) -> Result<Vec<BookingRow>, DataError> {
        let (cond, id) = match scope {
            BookingScope::Village(v) => ("b.village_id = ?3", v),
            BookingScope::Window(w) => ("b.window_id = ?3", w),
            BookingScope::Town(t) => ("w.town_id = ?3", t),
            BookingScope::County => ("?3 = ?3", 0),
        };
        let sql = format!(
            "{BOOKING_SELECT} WHERE b.start_ms >= ?1 AND b.start_ms < ?2 AND {cond} AND (?4 OR b.status <> 'cancelled')
             ORDER BY b.start_ms, b.id LIMIT 1000"
        );
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st
            .query_map(params![sql_ms(from_ms), sql_ms(to_ms), id, with_cancelled], booking_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Cancel a booking of the village whose slot has not started. NotFound / Conflict.
    pub fn cancel_booking(&self, id: i64, village_id: i64, now_ms: u64) -> Result<(), DataError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE bookings SET status = 'cancelled' WHERE id = ?1 AND village_id = ?2 AND status = 'booked'
             AND start_ms > ?3",
            params![id, village_id, sql_ms(now_ms)],
        )?;
        if n == 0 {
            drop(conn);
            return match self.booking(id)? {
                Some(b) if b.village.id == village_id => {
                    Err(DataError::Conflict(format!("booking {id} is {}", b.status)))
                }
                _ => Err(DataError::NotFound(format!("booking {id}"))),
            };
        }
        Ok(())
    }

    /// The village's booking for `matter_id` that is due at `now_ms` (from `early_ms` before
    /// its slot until the slot ends), if any.
    pub fn booking_due(
        &self,
        village_id: i64,
        matter_id: i64,
        now_ms: u64,
        early_ms: u64,
    ) -> Result<Option<i64>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM bookings WHERE village_id = ?1 AND matter_id = ?2 AND status = 'booked'
                 AND start_ms <= ?3 + ?4 AND ?3 < end_ms ORDER BY start_ms LIMIT 1",
                params![village_id, matter_id, sql_ms(now_ms), sql_ms(early_ms)],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The booking was used by a call on `case_id`.
    pub fn booking_called(&self, id: i64, case_id: i64) -> Result<(), DataError> {
        self.conn().execute(
            "UPDATE bookings SET status = 'called', case_id = ?2 WHERE id = ?1 AND status = 'booked'",
            params![id, case_id],
        )?;
        Ok(())
    }

    /// The bookings used by calls of a case.
    pub fn bookings_of_case(&self, case_id: i64) -> Result<Vec<BookingRow>, DataError> {
        let sql = format!("{BOOKING_SELECT} WHERE b.case_id = ?1 ORDER BY b.start_ms");
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([case_id], booking_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
