//! The supervisors' search and statistics on a county-sized history: generates N cases
//! (default 100,000) over a year in the demo county, with calls, ratings, recordings, legal
//! holds and villagers, then times the review search (`Db::search_cases`, the code the API
//! runs) over a mix of filters, and the statistics views (`Db::stats_facts` then
//! `case::stats::compute`, what `GET /api/stats` runs).
//!
//! cargo run --release -p cunneng-signaling --example review_search_bench [-- CASES [QUERIES [RUNS]]]
//!
//! RUNS (default 40) is the number of runs of each statistics view: its p95 is then the
//! second slowest run, not the slowest.
//!
//! Prints the generation time and p50/p95/p99/max per kind of query (results in BENCHMARKS.md).

use std::time::{Duration, Instant};

use cunneng_signaling::case::{CaseScope, Outcome, Rating, Status};
use cunneng_signaling::db::{CaseFilter, CaseOrder, Db, RatingFilter, SignoffFilter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NAMES: &[&str] = &["张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴"];
const GIVEN: &[&str] = &["秀英", "国强", "建华", "桂兰", "志明", "玉兰", "德胜", "丽娟", "海燕", "春生"];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let queries: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(400);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(40);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cunneng.sqlite3");
    let db = Db::open(&path)?;
    cunneng_signaling::import::import_str(&db, cunneng_signaling::import::DEMO_TOML)?;
    let topo = db.topology()?;

    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    {
        let mut c = rusqlite::Connection::open(&path)?;
        let tx = c.transaction()?;
        let year_ms: u64 = 365 * 86_400_000;
        let start = 1_767_225_600_000u64; // 2026-01-01
        let outcomes = [Outcome::Done, Outcome::Missing, Outcome::Refused, Outcome::Later];
        for i in 0..n {
            let kiosk = &topo.kiosks[rng.gen_range(0..topo.kiosks.len())];
            let matter = &topo.matters[rng.gen_range(0..topo.matters.len())];
            let windows: Vec<_> = topo.windows.iter().filter(|w| w.town_id == kiosk.town_id).collect();
            let window = windows[rng.gen_range(0..windows.len())];
            let approvers: Vec<_> = topo.approvers.iter().filter(|a| a.town_id == kiosk.town_id).collect();
            let approver = approvers[rng.gen_range(0..approvers.len())].user_id;
            let created = start + (i as u64 * year_ms / n as u64);
            let decided = rng.gen_bool(0.85);
            let outcome = outcomes[rng.gen_range(0..4)];
            let status = if !decided {
                Status::Open
            } else {
                match outcome {
                    Outcome::Done => Status::Done,
                    Outcome::Missing => Status::Missing,
                    Outcome::Refused => Status::Refused,
                    Outcome::Later => Status::Later,
                }
            };
            let name = format!("{}{}", NAMES[rng.gen_range(0..NAMES.len())], GIVEN[rng.gen_range(0..GIVEN.len())]);
            let phone = format!("13{:09}", rng.gen_range(0..1_000_000_000u64));
            tx.execute(
                "INSERT INTO cases (case_no, matter_id, village_id, kiosk_id, status, created_at_ms, updated_at_ms,
                    villager_name, villager_phone, phone_last4, outcome, outcome_note, decided_by, decided_at_ms,
                    missing_items)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, substr(?8, -4), ?9, ?10, ?11, ?12, '[]')",
                rusqlite::params![
                    format!("BN-{i:08}"),
                    matter.id,
                    kiosk.village_id,
                    kiosk.id,
                    status.as_str(),
                    created as i64,
                    name,
                    phone,
                    decided.then_some(outcome.as_str()),
                    decided.then_some("说明"),
                    decided.then_some(approver),
                    decided.then_some(created as i64 + 600_000),
                ],
            )?;
            let case_id = tx.last_insert_rowid();
            if decided || rng.gen_bool(0.5) {
                let answered = created + rng.gen_range(0..600_000u64);
                let ended = answered + rng.gen_range(60_000..1_800_000u64);
                // The answered ring, up to 24 s before the answer (no random draw: the same
                // history as before ring times were stored).
                let rang = answered.saturating_sub((case_id as u64 % 25) * 1000).max(created);
                tx.execute(
                    "INSERT INTO calls (case_id, window_id, kiosk_id, staff_id, requested_at_ms, rang_at_ms,
                        answered_at_ms, ended_at_ms, end_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'hangup')",
                    rusqlite::params![
                        case_id,
                        window.id,
                        kiosk.id,
                        approver,
                        created as i64,
                        rang as i64,
                        answered as i64,
                        ended as i64
                    ],
                )?;
                let call = tx.last_insert_rowid();
                if rng.gen_bool(0.5) {
                    let r = [Rating::Good, Rating::Good, Rating::Fair, Rating::Bad][rng.gen_range(0..4)];
                    tx.execute(
                        "INSERT INTO ratings (call_id, case_id, kiosk_id, rating, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                        rusqlite::params![call, case_id, kiosk.id, r.as_str(), created as i64],
                    )?;
                }
                if rng.gen_bool(0.8) {
                    let st = if rng.gen_bool(0.97) { "complete" } else { "incomplete" };
                    for who in [format!("kiosk:{}", kiosk.id), format!("staff:{approver}")] {
                        tx.execute(
                            "INSERT INTO recordings (room, take, participant, case_id, status, started_at_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?2)",
                            rusqlite::params![format!("call:{call}"), created as i64, who, case_id, st],
                        )?;
                    }
                }
            }
            if rng.gen_bool(0.005) {
                tx.execute(
                    "INSERT INTO legal_holds (case_id, placed_by, placed_at_ms, reason) VALUES (?1, ?2, ?3, '投诉')",
                    rusqlite::params![case_id, approver, created as i64],
                )?;
            }
        }
        tx.commit()?;
        c.execute_batch("ANALYZE;")?;
    }
    println!("generated {n} cases in {:.1} s", t0.elapsed().as_secs_f64());

    let town = topo.towns[0].id;
    let village = topo.villages[0].id;
    let matter = topo.matters[0].id;
    let window = topo.windows[0].id;
    let approver = topo.approvers[0].user_id;
    let mid = 1_767_225_600_000u64 + 180 * 86_400_000;
    let kinds: Vec<(&str, CaseScope, CaseFilter)> = vec![
        ("everything (first page + total)", CaseScope::County, CaseFilter::default()),
        ("case number prefix", CaseScope::County, CaseFilter { case_no: Some("BN-0004".into()), ..Default::default() }),
        (
            "villager last 4 digits",
            CaseScope::County,
            CaseFilter { villager_last4: Some("4321".into()), ..Default::default() },
        ),
        (
            "villager full name",
            CaseScope::County,
            CaseFilter { villager_name: Some("王秀英".into()), ..Default::default() },
        ),
        (
            "town + a month",
            CaseScope::County,
            CaseFilter {
                town_id: Some(town),
                from_ms: Some(mid),
                to_ms: Some(mid + 30 * 86_400_000),
                ..Default::default()
            },
        ),
        (
            "village + status",
            CaseScope::County,
            CaseFilter {
                village_id: Some(village),
                statuses: Some(vec![Status::Done, Status::Refused]),
                ..Default::default()
            },
        ),
        (
            "matter + outcome + bad rating",
            CaseScope::County,
            CaseFilter {
                matter_id: Some(matter),
                outcome: Some(Outcome::Refused),
                rating: Some(RatingFilter::Is(Rating::Bad)),
                ..Default::default()
            },
        ),
        (
            "window + approver",
            CaseScope::County,
            CaseFilter { window_id: Some(window), approver_id: Some(approver), ..Default::default() },
        ),
        (
            "recording incomplete",
            CaseScope::County,
            CaseFilter { recording_incomplete: Some(true), ..Default::default() },
        ),
        ("under legal hold", CaseScope::County, CaseFilter { legal_hold: Some(true), ..Default::default() }),
        (
            "sign-off approved, town supervisor",
            CaseScope::Town(town),
            CaseFilter { signoff: Some(SignoffFilter::Approved), ..Default::default() },
        ),
        (
            "no recording, unrated",
            CaseScope::County,
            CaseFilter { has_recording: Some(false), rating: Some(RatingFilter::None), ..Default::default() },
        ),
    ];
    let mut all: Vec<Duration> = Vec::new();
    println!("{:<40} {:>8} {:>8} {:>8} {:>8} {:>9}", "query", "p50 ms", "p95 ms", "p99 ms", "max ms", "matches");
    for (name, scope, f) in &kinds {
        let mut times = Vec::new();
        let mut total = 0;
        let mut cursor = None;
        for i in 0..queries.div_ceil(kinds.len()) {
            // Every third query is the next page of the one before.
            if i % 3 == 0 {
                cursor = None;
            }
            let t = Instant::now();
            let page = db.search_cases(*scope, f, CaseOrder::Newest, cursor, 30)?;
            times.push(t.elapsed());
            total = page.total;
            cursor = page.next;
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64() * 1000.0;
        println!(
            "{name:<40} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {total:>9}",
            pct(0.50),
            pct(0.95),
            pct(0.99),
            times.last().unwrap().as_secs_f64() * 1000.0
        );
        all.extend(times);
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    println!("ALL ({} queries): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms", all.len(), pct(0.5), pct(0.95), pct(0.99));

    use cunneng_signaling::case::stats::{By, Grouping, compute};
    let start = 1_767_225_600_000u64;
    let (year, month, quarter) = (365 * 86_400_000u64, 30 * 86_400_000u64, 91 * 86_400_000u64);
    /// A view: its name, the town (or the county), the range, the grouping, the breakdown.
    type View<'a> = (&'a str, Option<i64>, u64, u64, Grouping, By);
    let views: Vec<View<'_>> = vec![
        ("county, a year, by day, by town", None, start, start + year, Grouping::Day, By::Town),
        ("county, a year, by month, by matter", None, start, start + year, Grouping::Month, By::Matter),
        ("county, a year, by week, by window", None, start, start + year, Grouping::Week, By::Window),
        ("county, a month, by day, by village", None, mid, mid + month, Grouping::Day, By::Village),
        ("town, a quarter, by week, by approver", Some(town), mid, mid + quarter, Grouping::Week, By::Approver),
        ("town, a year, by month, by village", Some(town), start, start + year, Grouping::Month, By::Village),
    ];
    {
        // Where the time goes, on the largest view: reading the facts, then computing.
        let t = Instant::now();
        let facts = db.stats_facts(None, start, start + year)?;
        let read = t.elapsed();
        let t = Instant::now();
        compute(&facts, Grouping::Week, By::Window, start + year);
        println!(
            "\ncounty, a year: facts read in {:.1} ms ({} cases, {} calls), computed in {:.1} ms",
            read.as_secs_f64() * 1000.0,
            facts.cases.len(),
            facts.calls.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let mut all: Vec<Duration> = Vec::new();
    println!("\n{:<40} {:>8} {:>8} {:>8} {:>9}", "statistics view", "p50 ms", "p95 ms", "max ms", "cases");
    for (name, town, from, to, grouping, by) in &views {
        let mut times = Vec::new();
        let mut cases = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let facts = db.stats_facts(*town, *from, *to)?;
            let report = compute(&facts, *grouping, *by, start + year);
            times.push(t.elapsed());
            cases = report.totals.cases;
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64() * 1000.0;
        let max = times.last().unwrap().as_secs_f64() * 1000.0;
        println!("{name:<40} {:>8.1} {:>8.1} {max:>8.1} {cases:>9}", pct(0.5), pct(0.95));
        all.extend(times);
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    println!("ALL ({} views): p50 {:.1} ms, p95 {:.1} ms", all.len(), pct(0.5), pct(0.95));
    Ok(())
}
