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
//! - ring-to-answer: from the ring that was answered to the answer. Each leg of a call (the
//!   request, a transfer, a requeue after the approver was gone) keeps its *latest* ring before
//!   its answer: when nobody takes a ring and the queue rings the next approver, or rings
//!   another one beside it, the clock starts again at that ring. A transfer chain counts the
//!   ring of the leg whose answer it counts (its first answer); a requeue after the approver
//!   was gone opens a new leg, counted as a call of its own, with its own ring. Answered calls
//!   that never rang (taken from the queue list) have none: `count` says how many have one;
//! - 当场办结 share: decided cases whose outcome is 当场办结;
//! - first-contact resolution: decided cases with exactly one answered call (no supplement call);
//! - 一审一核 turnaround: decision to the chief's sign-off (approved or returned);
//! - bookings: *kept* when the booked call was made, *missed* when the slot ended without it.
//!
//! [`compute`] is one pass over the cases: each case's calls are grouped once (a counting sort
//! by case), then every case adds into three sums (the totals, its period, its group); the
//! percentiles are exact (nearest rank by selection, no sampling).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde::Serialize;

use super::{Outcome, Rating};

use super::days::{date_of, day_of, day_start};

/// A map by row id or day for the statistics' hundred thousand lookups per report: the
/// default (DoS-resistant) hasher is a fifth of a report's time, and these keys are the
/// database's own ids, not anyone's input.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Multiplicative (Fibonacci) hashing of one integer key.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

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
    /// The ring that was answered: the latest ring, before the answer, of the leg whose answer
    /// counts (see the module doc). On an unanswered call, its latest ring.
    pub rang_at_ms: Option<u64>,
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
        Spread::of_slice(&mut ms)
    }

    /// The spread of `ms` (milliseconds), which it reorders.
    pub fn of_slice(ms: &mut [u64]) -> Spread {
        let n = ms.len();
        if n == 0 {
            return Spread::default();
        }
        // Nearest rank: the smallest value with at least p % of the values at or below it,
        // i.e. the k-th smallest (1-based) for k = ⌈p·n/100⌉; found by selection, not sorting.
        let k = |p: usize| (p * n).div_ceil(100).max(1) - 1;
        let (k50, k90) = (k(50), k(90));
        let p90 = *ms.select_nth_unstable(k90).1;
        // Everything before k90 is at most ms[k90]: the k50-th smallest is among them.
        let p50 = *ms[..=k90].select_nth_unstable(k50).1;
        Spread { count: n, p50_secs: Some(p50 / 1000), p90_secs: Some(p90 / 1000) }
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
    /// From the ring that was answered to the answer (see the module doc).
    pub ring_to_answer: Spread,
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

/// The sums of one set of cases, turned into [`Figures`] at the end.
#[derive(Debug, Default)]
struct Sums {
    cases: usize,
    decided: usize,
    outcomes: [usize; Outcome::ALL.len()],
    calls: usize,
    answered: usize,
    abandoned: usize,
    timed_out: usize,
    waits: Vec<u64>,
    rings: Vec<u64>,
    handled: Vec<u64>,
    turnaround: Vec<u64>,
    done: usize,
    first_contact: usize,
    ratings: [usize; Rating::ALL.len()],
    good: usize,
}

impl Sums {
    /// Add one case with its calls (`calls`: the case's, in the order they were requested).
    fn add(&mut self, c: &CaseFact, calls: &[&CallFact]) {
        self.cases += 1;
        let mut answered = 0;
        for call in calls {
            self.calls += 1;
            match (call.answered_at_ms, call.end) {
                (Some(a), end) => {
                    answered += 1;
                    self.waits.push(a.saturating_sub(call.requested_at_ms));
                    if let Some(r) = call.rang_at_ms {
                        self.rings.push(a.saturating_sub(r));
                    }
                    if let (Some(e), CallEnd::AfterAnswer) = (call.ended_at_ms, end) {
                        self.handled.push(e.saturating_sub(a));
                    }
                }
                (None, CallEnd::Cancelled) => self.abandoned += 1,
                (None, CallEnd::Unanswered | CallEnd::AfterAnswer) => self.timed_out += 1,
                (None, CallEnd::Open) => {}
            }
        }
        self.answered += answered;
        if let Some(o) = c.outcome {
            self.decided += 1;
            self.outcomes[o as usize] += 1;
            self.done += usize::from(o == Outcome::Done);
            self.first_contact += usize::from(answered == 1);
        }
        if let (Some(d), Some(s)) = (c.decided_at_ms, c.signoff_at_ms) {
            self.turnaround.push(s.saturating_sub(d));
        }
        if let Some(r) = c.rating {
            self.ratings[r as usize] += 1;
            self.good += usize::from(r == Rating::Good);
        }
    }

    fn figures(mut self) -> Figures {
        // Only what occurred, as a map by the enumeration's word.
        fn counted<T: Copy>(all: &[T], n: &[usize], word: impl Fn(T) -> &'static str) -> BTreeMap<&'static str, usize> {
            all.iter().zip(n).filter(|(_, n)| **n > 0).map(|(k, n)| (word(*k), *n)).collect()
        }
        let rated = self.ratings.iter().sum();
        Figures {
            cases: self.cases,
            decided: self.decided,
            outcomes: counted(Outcome::ALL, &self.outcomes, Outcome::as_str),
            calls: self.calls,
            answered: self.answered,
            abandoned: self.abandoned,
            timed_out: self.timed_out,
            waiting: Spread::of_slice(&mut self.waits),
            ring_to_answer: Spread::of_slice(&mut self.rings),
            handling: Spread::of_slice(&mut self.handled),
            on_the_spot: Share::new(self.done, self.decided),
            first_contact: Share::new(self.first_contact, self.decided),
            signoff_turnaround: Spread::of_slice(&mut self.turnaround),
            ratings: counted(Rating::ALL, &self.ratings, Rating::as_str),
            good: Share::new(self.good, rated),
        }
    }
}

/// The calls of each case (by the case's index in `cases`), in the order they were requested:
/// one counting sort by case. Calls of cases not in `cases` are left out.
fn calls_by_case<'a>(cases: &[CaseFact], calls: &'a [CallFact]) -> (Vec<&'a CallFact>, Vec<usize>) {
    let index: IdMap<i64, usize> = cases.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let owner: Vec<Option<usize>> = calls.iter().map(|k| index.get(&k.case_id).copied()).collect();
    // starts[i]..starts[i + 1]: the calls of case i.
    let mut starts = vec![0usize; cases.len() + 1];
    for i in owner.iter().flatten() {
        starts[i + 1] += 1;
    }
    let mut sum = 0;
    for s in &mut starts {
        sum += *s;
        *s = sum;
    }
    let mut next = starts.clone();
    let mut order = vec![0usize; starts[cases.len()]];
    for (k, i) in owner.iter().enumerate() {
        if let Some(i) = *i {
            order[next[i]] = k;
            next[i] += 1;
        }
    }
    let mut grouped: Vec<&CallFact> = order.into_iter().map(|k| &calls[k]).collect();
    for w in starts.windows(2) {
        if w[1] - w[0] > 1 {
            // Stable: calls requested at the same instant stay in the order they were stored.
            grouped[w[0]..w[1]].sort_by_key(|c| c.requested_at_ms);
        }
    }
    (grouped, starts)
}

/// The report over `facts` at `now`.
pub fn compute(facts: &Facts, grouping: Grouping, by: By, now_ms: u64) -> Report {
    let (grouped, starts) = calls_by_case(&facts.cases, &facts.calls);
    let mut totals = Sums::default();
    // Periods by their first day (China time), labelled at the end.
    let mut periods: Vec<(u64, Sums)> = Vec::new();
    let mut period_of: IdMap<u64, usize> = IdMap::default();
    let mut last_period: Option<(u64, usize)> = None;
    // Groups by id, with the name of their first case.
    let mut groups: Vec<(i64, &str, Sums)> = Vec::new();
    let mut group_of: IdMap<i64, usize> = IdMap::default();
    for (i, c) in facts.cases.iter().enumerate() {
        let calls = &grouped[starts[i]..starts[i + 1]];
        totals.add(c, calls);

        let day = grouping.first_day(c.created_at_ms);
        let p = match last_period {
            Some((d, p)) if d == day => p,
            _ => *period_of.entry(day).or_insert_with(|| {
                periods.push((day, Sums::default()));
                periods.len() - 1
            }),
        };
        last_period = Some((day, p));
        periods[p].1.add(c, calls);

        let (id, name): (i64, &str) = match by {
            By::Town => (c.town.0, &*c.town.1),
            By::Village => (c.village.0, &*c.village.1),
            By::Matter => (c.matter.0, &*c.matter.1),
            By::Approver => c.decided_by.as_ref().map_or((0, "未决定"), |(id, n)| (*id, &**n)),
            // The window of the case's first call.
            By::Window => calls.first().map_or((0, "未通话"), |call| (call.window.0, &*call.window.1)),
        };
        let g = *group_of.entry(id).or_insert_with(|| {
            groups.push((id, name, Sums::default()));
            groups.len() - 1
        });
        groups[g].2.add(c, calls);
    }

    periods.sort_unstable_by_key(|(day, _)| *day);
    let series = periods
        .into_iter()
        .map(|(day, sums)| {
            let label = grouping.label(day_start(day));
            Row { name: label.clone(), key: label, figures: sums.figures() }
        })
        .collect();

    groups.sort_unstable_by_key(|(id, _, _)| *id);
    let mut breakdown: Vec<Row> = groups
        .into_iter()
        .map(|(id, name, sums)| Row { key: id.to_string(), name: name.to_string(), figures: sums.figures() })
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

    Report { totals: totals.figures(), grouping, series, by, breakdown, bookings, comments }
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

    /// A call answered after `wait_min` minutes (the answered ring rang 10 s per minute of
    /// waiting before the answer), talked for `talk_min`.
    fn call(case_id: i64, at: u64, wait_min: Option<u64>, talk_min: u64, end: CallEnd) -> CallFact {
        let answered = wait_min.map(|w| at + w * MIN);
        CallFact {
            case_id,
            window: (3, "综合窗口".into()),
            requested_at_ms: at,
            rang_at_ms: wait_min.map(|w| at + w * MIN - w * 10_000),
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
        // Day 1: case 3, the kiosk cancelled while waiting (while it rang: no ring-to-answer);
        // undecided.
        facts.cases.push(case(3, 1, 200, None, None));
        facts
            .calls
            .push(CallFact { rang_at_ms: Some(DEC1 + DAY + MIN), ..call(3, DEC1 + DAY, None, 0, CallEnd::Cancelled) });
        // Day 1: case 4, nobody answered (timed out); then answered (wait 8, talk 20), refused.
        facts.cases.push(case(4, 1, 200, Some(Outcome::Refused), Some(Rating::Bad)));
        facts.calls.push(call(4, DEC1 + DAY, None, 0, CallEnd::Unanswered));
        facts.calls.push(call(4, DEC1 + DAY + 30 * MIN, Some(8), 20, CallEnd::AfterAnswer));
        // Day 7 (Tue Dec 8): case 5 decided later (放心回家) with 一审一核 signed off 90 min after.
        let mut c5 = case(5, 7, 100, Some(Outcome::Later), None);
        c5.signoff_at_ms = c5.decided_at_ms.map(|d| d + 90 * MIN);
        c5.matter = (12, "事项12".into());
        facts.cases.push(c5);
        // Taken from the queue list without a ring: no ring-to-answer.
        facts.calls.push(CallFact { rang_at_ms: None, ..call(5, DEC1 + 7 * DAY, Some(3), 12, CallEnd::AfterAnswer) });
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
        // Rings answered after 20 s (case 1), 40 s and 10 s (case 2), 80 s (case 4); case 5's
        // call never rang. Sorted 10, 20, 40, 80: p50 = 2nd = 20 s, p90 = 4th = 80 s.
        assert_eq!(t.ring_to_answer, Spread { count: 4, p50_secs: Some(20), p90_secs: Some(80) });
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
        // Village 100 rings 20, 40, 10 s: p50 = 2nd = 20 s; village 200: 80 s.
        let rings: Vec<Spread> = r.breakdown.iter().map(|v| v.figures.ring_to_answer).collect();
        assert_eq!(
            rings,
            [
                Spread { count: 3, p50_secs: Some(20), p90_secs: Some(40) },
                Spread { count: 1, p50_secs: Some(80), p90_secs: Some(80) }
            ]
        );
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

    /// The definitions written out plainly (sort, then index; one pass per row): the one-pass
    /// [`compute`] must give exactly the same report.
    fn reference(facts: &Facts, grouping: Grouping, by: By) -> (Figures, Vec<Row>, Vec<Row>) {
        let nearest = |mut v: Vec<u64>| -> Spread {
            v.sort_unstable();
            let at = |p: usize| (!v.is_empty()).then(|| v[(p * v.len()).div_ceil(100).max(1) - 1] / 1000);
            Spread { count: v.len(), p50_secs: at(50), p90_secs: at(90) }
        };
        let calls_of = |c: &CaseFact| -> Vec<&CallFact> {
            let mut calls: Vec<&CallFact> = facts.calls.iter().filter(|k| k.case_id == c.id).collect();
            calls.sort_by_key(|k| k.requested_at_ms);
            calls
        };
        let figures = |cases: &[&CaseFact]| -> Figures {
            let mut f = Figures { cases: cases.len(), ..Figures::default() };
            let (mut waits, mut rings, mut handled, mut turnaround) = (vec![], vec![], vec![], vec![]);
            let (mut done, mut first, mut good, mut rated) = (0, 0, 0, 0);
            for c in cases {
                let calls = calls_of(c);
                f.calls += calls.len();
                f.answered += calls.iter().filter(|k| k.answered_at_ms.is_some()).count();
                f.abandoned +=
                    calls.iter().filter(|k| k.answered_at_ms.is_none() && k.end == CallEnd::Cancelled).count();
                f.timed_out += calls
                    .iter()
                    .filter(|k| {
                        k.answered_at_ms.is_none() && matches!(k.end, CallEnd::Unanswered | CallEnd::AfterAnswer)
                    })
                    .count();
                for k in &calls {
                    if let Some(a) = k.answered_at_ms {
                        waits.push(a - k.requested_at_ms);
                        rings.extend(k.rang_at_ms.map(|r| a - r));
                        if k.end == CallEnd::AfterAnswer {
                            handled.extend(k.ended_at_ms.map(|e| e - a));
                        }
                    }
                }
                if let Some(o) = c.outcome {
                    f.decided += 1;
                    *f.outcomes.entry(o.as_str()).or_default() += 1;
                    done += usize::from(o == Outcome::Done);
                    first += usize::from(calls.iter().filter(|k| k.answered_at_ms.is_some()).count() == 1);
                }
                if let (Some(d), Some(s)) = (c.decided_at_ms, c.signoff_at_ms) {
                    turnaround.push(s - d);
                }
                if let Some(r) = c.rating {
                    *f.ratings.entry(r.as_str()).or_default() += 1;
                    rated += 1;
                    good += usize::from(r == Rating::Good);
                }
            }
            f.waiting = nearest(waits);
            f.ring_to_answer = nearest(rings);
            f.handling = nearest(handled);
            f.signoff_turnaround = nearest(turnaround);
            f.on_the_spot = Share::new(done, f.decided);
            f.first_contact = Share::new(first, f.decided);
            f.good = Share::new(good, rated);
            f
        };
        let all: Vec<&CaseFact> = facts.cases.iter().collect();
        let mut labels: Vec<u64> = all.iter().map(|c| grouping.first_day(c.created_at_ms)).collect();
        labels.sort_unstable();
        labels.dedup();
        let series = labels
            .iter()
            .map(|day| {
                let cases: Vec<&CaseFact> =
                    all.iter().copied().filter(|c| grouping.first_day(c.created_at_ms) == *day).collect();
                let label = grouping.label(day_start(*day));
                Row { name: label.clone(), key: label, figures: figures(&cases) }
            })
            .collect();
        let key = |c: &CaseFact| -> (i64, String) {
            match by {
                By::Town => (c.town.0, c.town.1.to_string()),
                By::Village => (c.village.0, c.village.1.to_string()),
                By::Matter => (c.matter.0, c.matter.1.to_string()),
                By::Approver => c.decided_by.as_ref().map_or((0, "未决定".into()), |(id, n)| (*id, n.to_string())),
                By::Window => {
                    calls_of(c).first().map_or((0, "未通话".into()), |k| (k.window.0, k.window.1.to_string()))
                }
            }
        };
        let mut keys: Vec<(i64, String)> = all.iter().map(|c| key(c)).collect();
        keys.sort();
        keys.dedup_by_key(|k| k.0);
        let mut breakdown: Vec<Row> = keys
            .into_iter()
            .map(|(id, name)| {
                let cases: Vec<&CaseFact> = all.iter().copied().filter(|c| key(c).0 == id).collect();
                Row { key: id.to_string(), name, figures: figures(&cases) }
            })
            .collect();
        breakdown.sort_by(|a, b| b.figures.cases.cmp(&a.figures.cases).then_with(|| a.key.cmp(&b.key)));
        (figures(&all), series, breakdown)
    }

    /// A random history of 400 cases (calls unanswered, cancelled, open, answered with and
    /// without a ring, several per case, some at the same instant; ratings, sign-offs) gives
    /// exactly the figures of the plain definitions, for every grouping and breakdown.
    #[test]
    fn one_pass_figures_equal_the_plain_definitions() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(9);
        let mut facts = Facts::default();
        let names: Vec<Arc<str>> = (0..6).map(|i| Arc::from(format!("名{i}"))).collect();
        let named = |rng: &mut StdRng| {
            let i = rng.gen_range(0..names.len());
            (i as i64 + 1, names[i].clone())
        };
        for id in 1..=400 {
            let created = DEC1 + rng.gen_range(0..70 * DAY);
            let outcome = rng.gen_bool(0.7).then(|| Outcome::ALL[rng.gen_range(0..Outcome::ALL.len())]);
            let decided_at = outcome.map(|_| created + rng.gen_range(0..3_600_000));
            facts.cases.push(CaseFact {
                id,
                created_at_ms: created,
                town: named(&mut rng),
                village: named(&mut rng),
                matter: named(&mut rng),
                outcome,
                decided_at_ms: decided_at,
                decided_by: outcome.map(|_| named(&mut rng)),
                signoff_at_ms: decided_at.filter(|_| rng.gen_bool(0.3)).map(|d| d + rng.gen_range(0..9_000_000)),
                rating: rng.gen_bool(0.5).then(|| Rating::ALL[rng.gen_range(0..Rating::ALL.len())]),
                rating_comment: None,
                case_no: None,
            });
            let mut at = created;
            for _ in 0..rng.gen_range(0..4) {
                at += rng.gen_range(0..2) * rng.gen_range(0..600_000);
                let answered = rng.gen_bool(0.7).then(|| at + rng.gen_range(0..900_000));
                let end = match (answered, rng.gen_range(0..4)) {
                    (Some(_), 0) => CallEnd::Open,
                    (Some(_), _) => CallEnd::AfterAnswer,
                    (None, 0) => CallEnd::Open,
                    (None, 1) => CallEnd::Cancelled,
                    (None, _) => CallEnd::Unanswered,
                };
                let rang = rng.gen_bool(0.8).then(|| at + rng.gen_range(0..=answered.map_or(60_000, |a| a - at)));
                facts.calls.push(CallFact {
                    case_id: id,
                    window: named(&mut rng),
                    requested_at_ms: at,
                    rang_at_ms: rang,
                    answered_at_ms: answered,
                    ended_at_ms: (end != CallEnd::Open).then(|| answered.unwrap_or(at) + rng.gen_range(0..1_800_000)),
                    end,
                });
            }
        }
        // A call of a case outside the facts counts nowhere.
        facts.calls.push(call(999, DEC1, Some(1), 1, CallEnd::AfterAnswer));
        let mut answered_calls = 0;
        for grouping in [Grouping::Day, Grouping::Week, Grouping::Month] {
            for by in [By::Town, By::Village, By::Window, By::Matter, By::Approver] {
                let r = compute(&facts, grouping, by, DEC1 + 80 * DAY);
                let (totals, series, breakdown) = reference(&facts, grouping, by);
                assert_eq!(r.totals, totals, "{grouping:?} {by:?}");
                assert_eq!(r.series, series, "{grouping:?} {by:?}");
                assert_eq!(r.breakdown, breakdown, "{grouping:?} {by:?}");
                answered_calls = r.totals.answered;
                assert!(r.breakdown.len() > 1 && r.series.len() > 1);
            }
        }
        assert!(answered_calls > 300, "{answered_calls}");
    }
}
