//! Statistics over stored facts, pure: the figures the reform is measured by (办件量, waiting,
//! handling, 当场办结, first-contact resolution, 一审一核 turnaround, bookings, 好差评), per
//! period and per town, village, window, matter or approver. The facts come from the database
//! (`db::stats`); [`compute`] turns them into a [`Report`] with `now` passed in, so a known
//! history gives known figures (the tests below compute them by hand).
//!
//! Definitions:
//! - a case counts in the period it was opened (China time);
//! - a *call* is a request from a kiosk (a transfer continues the same call, it is not a new
//!   one); *answered* if a window took it; *abandoned* if the kiosk cancelled while waiting;
//!   *timed out* if it ended unanswered for any other reason (the kiosk went away, no window
//!   could take it);
//! - waiting time: request to answer, for answered calls; handling time: answer to end;
//! - 当场办结 share: decided cases whose outcome is 当场办结;
//! - first-contact resolution: decided cases with exactly one answered call (no supplement call);
//! - 一审一核 turnaround: decision to the chief's sign-off (approved or returned);
//! - bookings: *kept* when the booked call was made, *missed* when the slot ended without it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::{Outcome, Rating};

use super::days::{date_of, day_of, day_start};

/// How a call ended, as far as statistics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// Still waiting or in progress.
    Open,
    /// Ended after it was answered (hang-up, transfer away, a party gone).
    AfterAnswer,
    /// The kiosk cancelled while waiting.
    Cancelled,
    /// Ended unanswered otherwise.
    Unanswered,
}

/// One case, as statistics see it (no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFact {
    pub id: i64,
    pub created_at_ms: u64,
    /// Ids with their names (shared: a county's hundred thousand cases name a few hundred
    /// places).
    pub town: (i64, Arc<str>),
    pub village: (i64, Arc<str>),
    pub matter: (i64, Arc<str>),
    pub outcome: Option<Outcome>,
    pub decided_at_ms: Option<u64>,
    pub decided_by: Option<(i64, Arc<str>)>,
    pub signoff_at_ms: Option<u64>,
    pub rating: Option<Rating>,
    pub rating_comment: Option<String>,
    /// Only where a report shows it: with a rating comment.
    pub case_no: Option<String>,
}

/// One call (a kiosk's request; its transfers are the same call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFact {
    pub case_id: i64,
    /// The window that answered it, or the one it was first routed to.
    pub window: (i64, Arc<str>),
    pub requested_at_ms: u64,
    pub answered_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub end: CallEnd,
}

/// One booking of a village in scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingFact {
    pub start_ms: u64,
    pub end_ms: u64,
    /// The booked call was made.
    pub called: bool,
    pub cancelled: bool,
}

/// Everything in scope for one report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub cases: Vec<CaseFact>,
    pub calls: Vec<CallFact>,
    pub bookings: Vec<BookingFact>,
}

/// The length of a period in a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    Day,
    /// Weeks start on Monday.
    Week,
    Month,
}

/// What a breakdown is by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Town,
    Village,
    Window,
    Matter,
    Approver,
}

impl Grouping {
    pub fn parse(s: &str) -> Option<Grouping> {
        Some(match s {
            "day" => Grouping::Day,
            "week" => Grouping::Week,
            "month" => Grouping::Month,
            _ => return None,
        })
    }

    /// The first day (China time, days since 1970-01-01) of the period `ms` falls in.
    pub fn first_day(self, ms: u64) -> u64 {
        let day = day_of(ms);
        match self {
            Grouping::Day => day,
            // 1970-01-01 was a Thursday: Monday is 3 days before a day ≡ 0 (mod 7).
            Grouping::Week => day - (day + 3) % 7,
            Grouping::Month => {
                let date = date_of(day);
                day + 1 - u64::from(date.day())
            }
        }
    }

    /// The label of the period `ms` falls in (China time): `2026-12-04`, the Monday
    /// `2026-11-30` of its week, or `2026-12`.
    pub fn label(self, ms: u64) -> String {
        let day = day_of(ms);
        let date = date_of(day);
        match self {
            Grouping::Day => date.to_string(),
            Grouping::Week => {
                let monday = day - u64::from(date.weekday().number_days_from_monday());
                date_of(monday).to_string()
            }
            Grouping::Month => format!("{:04}-{:02}", date.year(), u8::from(date.month())),
        }
    }
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        Some(match s {
            "town" => By::Town,
            "village" => By::Village,
            "window" => By::Window,
            "matter" => By::Matter,
            "approver" => By::Approver,
            _ => return None,
        })
    }
}

/// p50 and p90 of a set of durations (nearest rank), in whole seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_secs: Option<u64>,
    pub p90_secs: Option<u64>,
}

impl Spread {
    pub fn of(mut ms: Vec<u64>) -> Spread {
        ms.sort_unstable();
        let rank = |p: usize| -> Option<u64> {
            if ms.is_empty() {
                return None;
            }
            // Nearest rank: the smallest value with at least p % of the values at or below it.
            let k = (p * ms.len()).div_ceil(100).max(1);
            Some(ms[k - 1] / 1000)
        };
        Spread { count: ms.len(), p50_secs: rank(50), p90_secs: rank(90) }
    }
}

/// A share: `part` of `of`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    pub part: usize,
    pub of: usize,
    /// Per thousand, rounded half up; `None` of nothing.
    pub permille: Option<u64>,
}

impl Share {
    pub fn new(part: usize, of: usize) -> Share {
        let permille = (of > 0).then(|| ((part as u64 * 2000) / of as u64).div_ceil(2));
        Share { part, of, permille }
    }
}

/// The figures of one set of cases and their calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub cases: usize,
    pub decided: usize,
    pub outcomes: BTreeMap<&'static str, usize>,
    pub calls: usize,
    pub answered: usize,
    pub abandoned: usize,
    pub timed_out: usize,
    pub waiting: Spread,
    pub handling: Spread,
    pub on_the_spot: Share,
    pub first_contact: Share,
    pub signoff_turnaround: Spread,
    pub ratings: BTreeMap<&'static str, usize>,
    pub good: Share,
}

/// One row of a series or a breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The period label, or the id of the town/village/window/matter/approver (0: none).
    pub key: String,
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A villager's comment with its rating (no name: the case number only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub case_no: String,
    pub rating: Rating,
    pub comment: String,
    pub at_ms: u64,
}

/// Bookings in scope whose slot started in the range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BookingFigures {
    pub booked: usize,
    pub kept: usize,
    pub missed: usize,
    pub cancelled: usize,
    /// Not yet due.
    pub upcoming: usize,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub totals: Figures,
    pub grouping: Grouping,
    pub series: Vec<Row>,
    pub by: By,
    pub breakdown: Vec<Row>,
    pub bookings: BookingFigures,
    /// The newest comments first, at most [`MAX_COMMENTS`].
    pub comments: Vec<Comment>,
}

/// Most comments in a report.
pub const MAX_COMMENTS: usize = 50;

fn figures<'a>(cases: &[&'a CaseFact], calls_of: &HashMap<i64, Vec<&'a CallFact>>) -> Figures {
    let mut f = Figures { cases: cases.len(), ..Figures::default() };
    let (mut waits, mut handled, mut turnaround) = (Vec::new(), Vec::new(), Vec::new());
    let (mut done, mut first_contact, mut good, mut rated) = (0, 0, 0, 0);
    for c in cases {
        let calls = calls_of.get(&c.id).map(Vec::as_slice).unwrap_or_default();
        for call in calls {
            f.calls += 1;
            match (call.answered_at_ms, call.end) {
                (Some(a), end) => {
                    f.answered += 1;
                    waits.push(a.saturating_sub(call.requested_at_ms));
                    if let (Some(e), CallEnd::AfterAnswer) = (call.ended_at_ms, end) {
                        handled.push(e.saturating_sub(a));
                    }
                }
                (None, CallEnd::Cancelled) => f.abandoned += 1,
                (None, CallEnd::Unanswered | CallEnd::AfterAnswer) => f.timed_out += 1,
                (None, CallEnd::Open) => {}
            }
        }
        if let Some(o) = c.outcome {
            f.decided += 1;
            *f.outcomes.entry(o.as_str()).or_default() += 1;
            done += usize::from(o == Outcome::Done);
            first_contact += usize::from(calls.iter().filter(|c| c.answered_at_ms.is_some()).count() == 1);
        }
        if let (Some(d), Some(s)) = (c.decided_at_ms, c.signoff_at_ms) {
            turnaround.push(s.saturating_sub(d));
        }
        if let Some(r) = c.rating {
            *f.ratings.entry(r.as_str()).or_default() += 1;
            rated += 1;
            good += usize::from(r == Rating::Good);
        }
    }
    f.waiting = Spread::of(waits);
    f.handling = Spread::of(handled);
    f.signoff_turnaround = Spread::of(turnaround);
    f.on_the_spot = Share::new(done, f.decided);
    f.first_contact = Share::new(first_contact, f.decided);
    f.good = Share::new(good, rated);
    f
}

/// The report over `facts` at `now`.
pub fn compute(facts: &Facts, grouping: Grouping, by: By, now_ms: u64) -> Report {
    let mut calls_of: HashMap<i64, Vec<&CallFact>> = HashMap::with_capacity(facts.cases.len());
    for call in &facts.calls {
        calls_of.entry(call.case_id).or_default().push(call);
    }
    for calls in calls_of.values_mut() {
        calls.sort_by_key(|c| c.requested_at_ms);
    }
    let all: Vec<&CaseFact> = facts.cases.iter().collect();

    // Periods by their first day (China time), labelled at the end.
    let mut periods: BTreeMap<u64, Vec<&CaseFact>> = BTreeMap::new();
    for c in &all {
        periods.entry(grouping.first_day(c.created_at_ms)).or_default().push(c);
    }
    let series = periods
        .into_iter()
        .map(|(day, cases)| {
            let label = grouping.label(day_start(day));
            Row { name: label.clone(), key: label, figures: figures(&cases, &calls_of) }
        })
        .collect();

    let mut groups: BTreeMap<i64, (&str, Vec<&CaseFact>)> = BTreeMap::new();
    for c in &all {
        let (id, name): (i64, &str) = match by {
            By::Town => (c.town.0, &*c.town.1),
            By::Village => (c.village.0, &*c.village.1),
            By::Matter => (c.matter.0, &*c.matter.1),
            By::Approver => c.decided_by.as_ref().map_or((0, "未决定"), |(id, n)| (*id, &**n)),
            // The window of the case's first call.
            By::Window => calls_of
                .get(&c.id)
                .and_then(|calls| calls.first())
                .map_or((0, "未通话"), |call| (call.window.0, &*call.window.1)),
        };
        groups.entry(id).or_insert_with(|| (name, Vec::new())).1.push(c);
    }
    let mut breakdown: Vec<Row> = groups
        .into_iter()
        .map(|(id, (name, cases))| Row {
            key: id.to_string(),
            name: name.to_string(),
            figures: figures(&cases, &calls_of),
        })
        .collect();
    breakdown.sort_by(|a, b| b.figures.cases.cmp(&a.figures.cases).then_with(|| a.key.cmp(&b.key)));

    let mut bookings = BookingFigures::default();
    for b in &facts.bookings {
        bookings.booked += 1;
        if b.cancelled {
            bookings.cancelled += 1;
        } else if b.called {
            bookings.kept += 1;
        } else if b.end_ms <= now_ms {
            bookings.missed += 1;
        } else {
            bookings.upcoming += 1;
        }
    }

    let mut comments: Vec<Comment> = facts
        .cases
        .iter()
        .filter_map(|c| {
            let comment = c.rating_comment.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
            Some(Comment {
                case_no: c.case_no.clone()?,
                rating: c.rating?,
                comment: comment.to_string(),
                at_ms: c.decided_at_ms.unwrap_or(c.created_at_ms),
            })
        })
        .collect();
    comments.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| a.case_no.cmp(&b.case_no)));
    comments.truncate(MAX_COMMENTS);

    Report { totals: figures(&all, &calls_of), grouping, series, by, breakdown, bookings, comments }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::days::{CHINA_OFFSET_MS as CHINA_OFFSET, DAY_MS as DAY};

    const MIN: u64 = 60_000;
    /// 2026-12-01 00:00 China time (a Tuesday).
    const DEC1: u64 = 1_796_054_400_000;

    fn case(id: i64, day: u64, village: i64, outcome: Option<Outcome>, rating: Option<Rating>) -> CaseFact {
        let created = DEC1 + day * DAY + 9 * 60 * MIN;
        CaseFact {
            id,
            created_at_ms: created,
            town: (1, "城关镇".into()),
            village: (village, format!("村{village}").into()),
            matter: (10 + id % 2, format!("事项{}", 10 + id % 2).into()),
            outcome,
            decided_at_ms: outcome.map(|_| created + 30 * MIN),
            decided_by: outcome.map(|_| (7, "李审批".into())),
            signoff_at_ms: None,
            rating,
            rating_comment: None,
            case_no: Some(format!("ZH-2026120{}-{id:04}", 1 + day)),
        }
    }

    fn call(case_id: i64, at: u64, wait_min: Option<u64>, talk_min: u64, end: CallEnd) -> CallFact {
        let answered = wait_min.map(|w| at + w * MIN);
        CallFact {
            case_id,
            window: (3, "综合窗口".into()),
            requested_at_ms: at,
            answered_at_ms: answered,
            ended_at_ms: Some(answered.unwrap_or(at + 2 * MIN) + talk_min * MIN),
            end,
        }
    }

    #[test]
    fn periods_are_china_days_monday_weeks_and_months() {
        assert_eq!(Grouping::Day.label(DEC1), "2026-12-01");
        assert_eq!(Grouping::Day.label(DEC1 - 1), "2026-11-30");
        assert_eq!(Grouping::Week.label(DEC1), "2026-11-30"); // Tuesday's Monday
        assert_eq!(Grouping::Week.label(DEC1 + 6 * DAY), "2026-12-07"); // the next Monday
        assert_eq!(Grouping::Month.label(DEC1 + 30 * DAY), "2026-12");
        assert_eq!(Grouping::Month.label(DEC1 + 31 * DAY), "2027-01");
        // A period's first day gives back its label, for every day of two years.
        for g in [Grouping::Day, Grouping::Week, Grouping::Month] {
            for d in 0..730 {
                let ms = DEC1 + d * DAY + 5 * 3_600_000;
                let first = g.first_day(ms) * DAY - CHINA_OFFSET;
                assert_eq!(g.label(first), g.label(ms), "{g:?} day {d}");
                assert!(first <= ms && g.label(first.wrapping_sub(1)) != g.label(ms), "{g:?} day {d}");
            }
        }
    }

    #[test]
    fn spreads_and_shares_by_hand() {
        assert_eq!(Spread::of(vec![]), Spread { count: 0, p50_secs: None, p90_secs: None });
        // 1..=10 s: p50 is the 5th value, p90 the 9th.
        let s = Spread::of((1..=10).rev().map(|s| s * 1000).collect());
        assert_eq!((s.p50_secs, s.p90_secs), (Some(5), Some(9)));
        assert_eq!(Spread::of(vec![7000]).p90_secs, Some(7));
        assert_eq!(Share::new(1, 3).permille, Some(333));
        assert_eq!(Share::new(2, 3).permille, Some(667));
        assert_eq!(Share::new(0, 0).permille, None);
    }

    /// Six cases over two weeks, in two villages; every figure computed by hand.
    #[test]
    fn a_known_history_gives_known_figures() {
        let mut facts = Facts::default();
        // Day 0 (Tue Dec 1): case 1 done at the first call (wait 2 min, talk 10), rated good.
        facts.cases.push(case(1, 0, 100, Some(Outcome::Done), Some(Rating::Good)));
        facts.calls.push(call(1, DEC1 + 9 * 60 * MIN, Some(2), 10, CallEnd::AfterAnswer));
        // Day 0: case 2 missing papers at its first call (wait 4, talk 6), then a supplement
        // call (wait 1, talk 5) and done: not first contact. Rated fair, with a comment.
        let mut c2 = case(2, 0, 100, Some(Outcome::Done), Some(Rating::Fair));
        c2.rating_comment = Some("  等得有点久  ".into());
        facts.cases.push(c2);
        facts.calls.push(call(2, DEC1 + 10 * 60 * MIN, Some(4), 6, CallEnd::AfterAnswer));
        facts.calls.push(call(2, DEC1 + 2 * DAY, Some(1), 5, CallEnd::AfterAnswer));
        // Day 1: case 3, the kiosk cancelled while waiting; undecided.
        facts.cases.push(case(3, 1, 200, None, None));
        facts.calls.push(call(3, DEC1 + DAY, None, 0, CallEnd::Cancelled));
        // Day 1: case 4, nobody answered (timed out); then answered (wait 8, talk 20), refused.
        facts.cases.push(case(4, 1, 200, Some(Outcome::Refused), Some(Rating::Bad)));
        facts.calls.push(call(4, DEC1 + DAY, None, 0, CallEnd::Unanswered));
        facts.calls.push(call(4, DEC1 + DAY + 30 * MIN, Some(8), 20, CallEnd::AfterAnswer));
        // Day 7 (Tue Dec 8): case 5 decided later (放心回家) with 一审一核 signed off 90 min after.
        let mut c5 = case(5, 7, 100, Some(Outcome::Later), None);
        c5.signoff_at_ms = c5.decided_at_ms.map(|d| d + 90 * MIN);
        c5.matter = (12, "事项12".into());
        facts.cases.push(c5);
        facts.calls.push(call(5, DEC1 + 7 * DAY, Some(3), 12, CallEnd::AfterAnswer));
        // Day 7: case 6 still waiting.
        facts.cases.push(case(6, 7, 100, None, None));
        facts.calls.push(call(6, DEC1 + 7 * DAY + MIN, None, 0, CallEnd::Open));
        facts.bookings = vec![
            BookingFact { start_ms: DEC1, end_ms: DEC1 + 30 * MIN, called: true, cancelled: false },
            BookingFact { start_ms: DEC1, end_ms: DEC1 + 30 * MIN, called: false, cancelled: false },
            BookingFact { start_ms: DEC1, end_ms: DEC1 + 30 * MIN, called: false, cancelled: true },
            BookingFact {
                start_ms: DEC1 + 9 * DAY,
                end_ms: DEC1 + 9 * DAY + 30 * MIN,
                called: false,
                cancelled: false,
            },
        ];
        let now = DEC1 + 8 * DAY;

        let r = compute(&facts, Grouping::Week, By::Village, now);
        let t = &r.totals;
        assert_eq!((t.cases, t.decided), (6, 4));
        assert_eq!(t.outcomes, BTreeMap::from([("done", 2), ("later", 1), ("refused", 1)]));
        // Calls: 8 requests; answered 5 (cases 1, 2, 2, 4, 5); 1 cancelled, 1 unanswered, 1 waiting.
        assert_eq!((t.calls, t.answered, t.abandoned, t.timed_out), (8, 5, 1, 1));
        // Waits sorted 1, 2, 3, 4, 8 min: p50 = 3rd = 3 min, p90 = 5th = 8 min.
        assert_eq!(t.waiting, Spread { count: 5, p50_secs: Some(180), p90_secs: Some(480) });
        // Talks sorted 5, 6, 10, 12, 20 min.
        assert_eq!(t.handling, Spread { count: 5, p50_secs: Some(600), p90_secs: Some(1200) });
        // 当场办结 2 of 4 decided; first contact: cases 1, 4 (one answered call each), 5: 3 of 4.
        assert_eq!(t.on_the_spot, Share { part: 2, of: 4, permille: Some(500) });
        assert_eq!(t.first_contact, Share { part: 3, of: 4, permille: Some(750) });
        assert_eq!(t.signoff_turnaround, Spread { count: 1, p50_secs: Some(5400), p90_secs: Some(5400) });
        assert_eq!(t.ratings, BTreeMap::from([("bad", 1), ("fair", 1), ("good", 1)]));
        assert_eq!(t.good, Share { part: 1, of: 3, permille: Some(333) });

        // Weeks: Nov 30 (cases 1-4), Dec 7 (cases 5, 6).
        let weeks: Vec<(&str, usize, usize)> =
            r.series.iter().map(|w| (w.key.as_str(), w.figures.cases, w.figures.calls)).collect();
        assert_eq!(weeks, [("2026-11-30", 4, 6), ("2026-12-07", 2, 2)]);
        // Villages: 100 has cases 1, 2, 5, 6; 200 has 3, 4.
        let villages: Vec<(&str, usize, usize, Option<u64>)> = r
            .breakdown
            .iter()
            .map(|v| (v.key.as_str(), v.figures.cases, v.figures.decided, v.figures.waiting.p50_secs))
            .collect();
        // Village 100 waits 2, 4, 1, 3 min: p50 = 2nd = 2 min; village 200: 8 min.
        assert_eq!(villages, [("100", 4, 3, Some(120)), ("200", 2, 1, Some(480))]);
        assert_eq!(r.bookings, BookingFigures { booked: 4, kept: 1, missed: 1, cancelled: 1, upcoming: 1 });
        assert_eq!(r.comments.len(), 1);
        assert_eq!((r.comments[0].comment.as_str(), r.comments[0].rating), ("等得有点久", Rating::Fair));

        let by_approver = compute(&facts, Grouping::Day, By::Approver, now);
        let a: Vec<(&str, &str, usize)> =
            by_approver.breakdown.iter().map(|r| (r.key.as_str(), r.name.as_str(), r.figures.cases)).collect();
        assert_eq!(a, [("7", "李审批", 4), ("0", "未决定", 2)]);
        assert_eq!(by_approver.series.len(), 3); // Dec 1, Dec 2, Dec 8
        let by_window = compute(&facts, Grouping::Month, By::Window, now);
        assert_eq!(by_window.breakdown.len(), 1);
        assert_eq!(by_window.breakdown[0].figures.cases, 6);
        assert_eq!(by_window.series[0].key, "2026-12");
        let by_matter = compute(&facts, Grouping::Month, By::Matter, now);
        let m: Vec<(&str, usize)> = by_matter.breakdown.iter().map(|r| (r.key.as_str(), r.figures.cases)).collect();
        // Matter 10 + id % 2: 11 for cases 1, 3; 10 for 2, 4, 6; case 5 moved to 12.
        assert_eq!(m, [("10", 3), ("11", 2), ("12", 1)]);
    }
}
