//! The persisted queue snapshot (one row of JSON the queue module chooses).

use rusqlite::{OptionalExtension, params};

use super::{DataError, Db, row_ms, sql_ms};

impl Db {
    /// Replaces the stored queue snapshot (any JSON text the queue module chooses).
    pub fn save_queue_state(&self, json: &str, now_ms: u64) -> Result<(), DataError> {
        self.conn().execute(
            "INSERT INTO queue_state (id, json, updated_at_ms) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET json = excluded.json, updated_at_ms = excluded.updated_at_ms",
            params![json, sql_ms(now_ms)],
        )?;
        Ok(())
    }

    /// The stored queue snapshot and when it was saved, if any.
    pub fn load_queue_state(&self) -> Result<Option<(String, u64)>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT json, updated_at_ms FROM queue_state WHERE id = 1", [], |r| {
                Ok((r.get(0)?, row_ms(r.get(1)?)))
            })
            .optional()?)
    }
}
