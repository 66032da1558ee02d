//! 预约 bookings (docs/cases-api.md "预约 bookings"): a village room books a 30-minute slot for
//! a matter at the window that takes it; the approver sees the day's bookings; a booked call
//! is queued ahead of unbooked ones at its time (the engine asks [`booking_for_request`]).

use serde::Serialize;

use crate::case::Viewer;
use crate::db::{BookingScope, DataError, Db, NamedRef};
use crate::error::{Error, Rejection};
use crate::queue::Priority;

use super::views::{BookingView, Named};
pub use crate::case::days::{day_of, day_start, parse_day};

const MINUTE: u64 = 60_000;
const DAY: u64 = 86_400_000;
pub const SLOT_MS: u64 = 30 * MINUTE;
/// Slot starts, in minutes after midnight China time: 09:00-12:00 and 14:00-17:30.
pub const SLOT_STARTS_MIN: [u64; 13] = [540, 570, 600, 630, 660, 690, 840, 870, 900, 930, 960, 990, 1020];
/// A slot can be booked if it starts at least this long from now...
pub const BOOK_AHEAD_MIN_MS: u64 = 10 * MINUTE;
/// ...and at most this long.
pub const BOOK_AHEAD_MAX_MS: u64 = 14 * DAY;
/// A booked call counts as on time from this long before its slot until the slot ends.
pub const EARLY_MS: u64 = 10 * MINUTE;
/// The queue priority of a call whose booking is due (unbooked calls are `Priority::NORMAL`).
pub const BOOKED_PRIORITY: Priority = Priority(1);

// ---------------------------------------------------------------------------------------------
// Days and slots in China time.

/// Monday to Friday (1970-01-01, day 0, was a Thursday): the town centre is closed on
/// Saturdays and Sundays, which have no slots.
pub fn is_working_day(day: u64) -> bool {
    (day + 3) % 7 < 5
}

/// The slots (start ms) of a day: none on a Saturday or Sunday.
pub fn slots_of_day(day: u64) -> Vec<u64> {
    if !is_working_day(day) {
        return Vec::new();
    }
    SLOT_STARTS_MIN.iter().map(|m| day_start(day) + m * MINUTE).collect()
}

/// Is `start_ms` the start of a slot?
pub fn is_slot_start(start_ms: u64) -> bool {
    slots_of_day(day_of(start_ms)).contains(&start_ms)
}

/// May a slot starting at `start_ms` be booked at `now_ms`?
pub fn bookable(start_ms: u64, now_ms: u64) -> bool {
    is_slot_start(start_ms) && start_ms >= now_ms + BOOK_AHEAD_MIN_MS && start_ms <= now_ms + BOOK_AHEAD_MAX_MS
}

// ---------------------------------------------------------------------------------------------
// The engine's hooks.

/// The village's booking for `matter_id` that is due now, if any: the engine queues such a
/// call with [`BOOKED_PRIORITY`] and, once the queue accepted it, calls [`booking_used`].
/// Errors are logged and count as "no booking".
pub async fn booking_for_request(db: &Db, village_id: i64, matter_id: i64, now_ms: u64) -> Option<i64> {
    match db.run(move |db| db.booking_due(village_id, matter_id, now_ms, EARLY_MS)).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "looking up a booking");
            None
        }
    }
}

/// The booked call was queued on `case_id`: the booking is `called`.
pub async fn booking_used(db: &Db, booking_id: i64, case_id: i64) {
    if let Err(e) = db.run(move |db| db.booking_called(booking_id, case_id)).await {
        tracing::warn!(error = %e, booking_id, "marking a booking called");
    }
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// The window of the kiosk's town that takes the matter.
fn window_for(db: &Db, town_id: i64, matter_id: i64) -> Result<NamedRef, Error> {
    let m = db.matter_for_town(town_id, matter_id)?.ok_or_else(|| Rejection::not_found("matter"))?;
    Ok(m.window.ok_or_else(|| Rejection::not_found("window for this matter"))?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub start_ms: u64,
    pub end_ms: u64,
    pub free: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slots {
    pub window: Named,
    pub date: String,
    pub slots: Vec<Slot>,
}

/// The slots of `day` at the window of the kiosk's town that takes the matter.
pub async fn slots(db: &Db, town_id: i64, matter_id: i64, day: u64, date: String) -> Result<Slots, Error> {
    let now = crate::now_ms();
    let (window, taken) = db
        .run(move |db| -> Result<_, Error> {
            let window = window_for(db, town_id, matter_id)?;
            let taken: Vec<u64> = db
                .bookings_in_scope(BookingScope::Window(window.id), day_start(day), day_start(day + 1), false)?
                .into_iter()
                .map(|b| b.start_ms)
                .collect();
            Ok((window, taken))
        })
        .await?;
    let slots = slots_of_day(day)
        .into_iter()
        .map(|s| Slot { start_ms: s, end_ms: s + SLOT_MS, free: bookable(s, now) && !taken.contains(&s) })
        .collect();
    Ok(Slots { window: Named::from(&window), date, slots })
}

/// Book a slot for the kiosk's village.
pub async fn book(
    db: &Db,
    viewer: &Viewer,
    matter_id: i64,
    start_ms: u64,
    note: Option<String>,
    max_open: usize,
) -> Result<BookingView, Error> {
    let Viewer::Kiosk { kiosk_id, village_id, town_id, .. } = *viewer else {
        return Err(Rejection::forbidden("bookings are made by the village room").into());
    };
    let now = crate::now_ms();
    if !bookable(start_ms, now) {
        return Err(Rejection::new(
            crate::error::RejectKind::Invalid,
            "bad_slot",
            "这个时间不能预约 (not a slot, or not between 10 minutes and 14 days from now)",
        )
        .into());
    }
    db.run(move |db| -> Result<_, Error> {
        let window = window_for(db, town_id, matter_id)?;
        let id = db
            .create_booking_within(
                village_id,
                Some(kiosk_id),
                matter_id,
                window.id,
                start_ms,
                start_ms + SLOT_MS,
                note.as_deref(),
                now,
                max_open,
            )
            .map_err(|e| match e {
                DataError::Conflict(_) => {
                    Error::from(Rejection::conflict("slot_taken", "这个时间已经被预约了 (the slot is taken)"))
                }
                DataError::Invalid(_) => Error::from(Rejection::new(
                    crate::error::RejectKind::TooMany,
                    "too_many_bookings",
                    format!(
                        "本村已有 {max_open} 个未到期的预约,请先办理或取消 (too many open bookings for this village)"
                    ),
                )),
                e => e.into(),
            })?;
        let b = db.booking(id)?.ok_or_else(|| DataError::NotFound(format!("booking {id}")))?;
        Ok(BookingView::from(&b))
    })
    .await
}

/// The bookings the viewer sees: the village its next 15 days, a window its day, the town (or
/// the county) the day.
pub async fn list(db: &Db, viewer: &Viewer, day: Option<u64>) -> Result<Vec<BookingView>, Error> {
    let today = day_of(crate::now_ms());
    let day = day.unwrap_or(today);
    let (scope, from, to) = match viewer {
        Viewer::Kiosk { village_id, .. } => {
            (BookingScope::Village(*village_id), day_start(today), day_start(today + 15))
        }
        Viewer::Approver { window_id: Some(w), .. } => (BookingScope::Window(*w), day_start(day), day_start(day + 1)),
        Viewer::Approver { town_id, .. } | Viewer::Chief { town_id, .. } => {
            (BookingScope::Town(*town_id), day_start(day), day_start(day + 1))
        }
        Viewer::Supervisor { town: Some(t), .. } => (BookingScope::Town(*t), day_start(day), day_start(day + 1)),
        Viewer::Supervisor { town: None, .. } => (BookingScope::County, day_start(day), day_start(day + 1)),
    };
    let rows = db.run(move |db| db.bookings_in_scope(scope, from, to, false)).await?;
    Ok(rows.iter().map(BookingView::from).collect())
}

/// Cancel a booking of the kiosk's village whose slot has not started.
pub async fn cancel(db: &Db, village_id: i64, id: i64) -> Result<(), Error> {
    db.run(move |db| {
        db.cancel_booking(id, village_id, crate::now_ms()).map_err(|e| match e {
            DataError::Conflict(_) => Error::from(Rejection::conflict(
                "conflict",
                "预约已开始、已使用或已取消 (the booking can no longer be cancelled)",
            )),
            e => e.into(),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_slots_in_china_time() {
        // A Monday.
        let day = parse_day("2026-11-23").unwrap();
        assert_eq!(crate::db::china_date(day_start(day)), "20261123");
        assert_eq!(crate::db::china_date(day_start(day) - 1), "20261122");
        // 09:00 China = 01:00 UTC.
        let nine = slots_of_day(day)[0];
        assert_eq!(nine, day_start(day) + 9 * 60 * MINUTE);
        assert_eq!(day_of(nine), day);
        assert!(is_slot_start(nine));
        assert!(!is_slot_start(nine + MINUTE));
        assert!(!is_slot_start(day_start(day) + 12 * 60 * MINUTE)); // lunch
        assert!(is_slot_start(day_start(day) + 17 * 60 * MINUTE)); // 17:00, the last
        assert_eq!(slots_of_day(day).len(), 13);
        assert!(parse_day("2026-02-30").is_none());
        assert!(parse_day("2026-13-01").is_none());
        assert!(parse_day("20261122").is_none());
        assert!(parse_day("2024-02-29").is_some());
    }

    #[test]
    fn no_slots_on_weekends() {
        // 2026-11-21 is a Saturday, 2026-11-22 a Sunday, 2026-11-27 a Friday.
        for (date, working) in
            [("2026-11-21", false), ("2026-11-22", false), ("2026-11-23", true), ("2026-11-27", true)]
        {
            let day = parse_day(date).unwrap();
            assert_eq!(is_working_day(day), working, "{date}");
            assert_eq!(slots_of_day(day).is_empty(), !working, "{date}");
        }
        let saturday = parse_day("2026-11-21").unwrap();
        let nine = day_start(saturday) + 9 * 60 * MINUTE;
        assert!(!is_slot_start(nine) && !bookable(nine, nine - DAY));
    }

    #[test]
    fn bookable_window() {
        let day = parse_day("2026-11-23").unwrap();
        let nine = slots_of_day(day)[0];
        assert!(bookable(nine, nine - BOOK_AHEAD_MIN_MS));
        assert!(!bookable(nine, nine - BOOK_AHEAD_MIN_MS + 1));
        assert!(bookable(nine, nine - BOOK_AHEAD_MAX_MS));
        assert!(!bookable(nine, nine - BOOK_AHEAD_MAX_MS - 1));
        assert!(!bookable(nine + 1, nine - DAY));
    }
}
