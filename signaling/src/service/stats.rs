//! Statistics for supervisors (county-wide or their town) and town chiefs (their town): the
//! facts from the database, the figures from `case::stats`, and the same tables as CSV for the
//! offices' spreadsheets.

use serde::Serialize;

use crate::case::stats::{By, Grouping, Report, Row, Spread, compute};
use crate::case::{CaseScope, Viewer};
use crate::db::Db;
use crate::error::{Error, Rejection};

/// The longest range one report covers.
pub const MAX_RANGE_MS: u64 = 400 * 86_400_000;

/// What a report is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    /// One town, or the whole scope.
    pub town: Option<i64>,
    pub from_ms: u64,
    pub to_ms: u64,
    pub grouping: Grouping,
    pub by: By,
}

/// A report with what it covers.
#[derive(Debug, Clone, Serialize)]
pub struct StatsView {
    pub from_ms: u64,
    pub to_ms: u64,
    /// The town it is limited to (by the viewer's scope or the query), if any.
    pub town: Option<i64>,
    #[serde(flatten)]
    pub report: Report,
}

/// The town a viewer's report covers: a town-limited viewer only his own.
fn town_of(viewer: &Viewer, asked: Option<i64>) -> Result<Option<i64>, Error> {
    let scope = match viewer {
        Viewer::Supervisor { .. } | Viewer::Chief { .. } => viewer.scope(),
        Viewer::Kiosk { .. } | Viewer::Approver { .. } => {
            return Err(Rejection::forbidden("the statistics are for supervisors and window chiefs").into());
        }
    };
    match (scope, asked) {
        (CaseScope::County, t) => Ok(t),
        (CaseScope::Town(own), None) => Ok(Some(own)),
        (CaseScope::Town(own), Some(t)) if t == own => Ok(Some(own)),
        (CaseScope::Town(_), Some(_)) | (CaseScope::Village(_), _) => {
            Err(Rejection::forbidden("only your own town's statistics").into())
        }
    }
}

/// The report for `viewer`.
pub async fn report(db: &Db, viewer: &Viewer, q: StatsQuery, now_ms: u64) -> Result<StatsView, Error> {
    if q.to_ms <= q.from_ms || q.to_ms - q.from_ms > MAX_RANGE_MS {
        return Err(Rejection::invalid("统计的日期范围不正确(最多 400 天)").into());
    }
    let town = town_of(viewer, q.town)?;
    let facts = db.run(move |db| db.stats_facts(town, q.from_ms, q.to_ms)).await?;
    let report = tokio::task::spawn_blocking(move || compute(&facts, q.grouping, q.by, now_ms))
        .await
        .map_err(|e| Error::Tool(format!("statistics: {e}")))?;
    Ok(StatsView { from_ms: q.from_ms, to_ms: q.to_ms, town, report })
}

fn secs(s: &Spread, p90: bool) -> String {
    let v = if p90 { s.p90_secs } else { s.p50_secs };
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn permille(p: Option<u64>) -> String {
    p.map(|p| format!("{}.{}", p / 10, p % 10)).unwrap_or_default()
}

fn field(s: &str) -> String {
    // Quote every field; a leading =, +, - or @ would be a formula in a spreadsheet.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The series or the breakdown of `view` as CSV (UTF-8 with a byte-order mark, so that Excel
/// reads the Chinese right).
pub fn csv(view: &StatsView, breakdown: bool) -> String {
    let first = if breakdown { "名称" } else { "时间" };
    let header = [
        first,
        "办件量",
        "已决定",
        "当场办结",
        "现场开单",
        "当面说清",
        "放心回家",
        "呼叫次数",
        "已接通",
        "排队中放弃",
        "无人接听",
        "等待时间中位数(秒)",
        "等待时间P90(秒)",
        "办理时长中位数(秒)",
        "办理时长P90(秒)",
        "当场办结率(%)",
        "一次办成率(%)",
        "一审一核用时中位数(秒)",
        "好评",
        "中评",
        "差评",
        "好评率(%)",
    ];
    let mut out = String::from("\u{feff}");
    out.push_str(&header.iter().map(|h| field(h)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    let rows: &[Row] = if breakdown { &view.report.breakdown } else { &view.report.series };
    for r in rows {
        let f = &r.figures;
        let n =
            |k: &str, m: &std::collections::BTreeMap<&'static str, usize>| m.get(k).copied().unwrap_or(0).to_string();
        let cells = [
            field(&r.name),
            f.cases.to_string(),
            f.decided.to_string(),
            n("done", &f.outcomes),
            n("missing", &f.outcomes),
            n("refused", &f.outcomes),
            n("later", &f.outcomes),
            f.calls.to_string(),
            f.answered.to_string(),
            f.abandoned.to_string(),
            f.timed_out.to_string(),
            secs(&f.waiting, false),
            secs(&f.waiting, true),
            secs(&f.handling, false),
            secs(&f.handling, true),
            permille(f.on_the_spot.permille),
            permille(f.first_contact.permille),
            secs(&f.signoff_turnaround, false),
            n("good", &f.ratings),
            n("fair", &f.ratings),
            n("bad", &f.ratings),
            permille(f.good.permille),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("城关镇"), "\"城关镇\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(permille(Some(333)), "33.3");
        assert_eq!(permille(None), "");
    }
}
