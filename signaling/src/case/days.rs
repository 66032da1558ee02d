//! Days in China time (UTC+8 all year, no daylight saving): the calendar of case numbers,
//! booking slots, date filters and statistics periods. Pure.

/// A day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;
/// China Standard Time is UTC+8 all year.
pub const CHINA_OFFSET_MS: u64 = 8 * 3_600_000;

/// The China-time day (days since 1970-01-01) of a `YYYY-MM-DD` date.
pub fn parse_day(s: &str) -> Option<u64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    if !(2000..=2200).contains(&y) {
        return None;
    }
    // Rejects 2026-02-31 and the like.
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    u64::try_from(
        date.to_julian_day() - time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?.to_julian_day(),
    )
    .ok()
}

/// The China-time day of an instant.
pub fn day_of(ms: u64) -> u64 {
    (ms + CHINA_OFFSET_MS) / DAY_MS
}

/// Unix ms of midnight (China time) starting `day`.
pub fn day_start(day: u64) -> u64 {
    (day * DAY_MS).saturating_sub(CHINA_OFFSET_MS)
}

/// The calendar date of a China-time day.
pub fn date_of(day: u64) -> time::Date {
    let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).expect("valid date");
    time::Date::from_julian_day(epoch.to_julian_day() + day as i32).unwrap_or(epoch)
}
