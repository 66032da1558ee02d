//! Statistics for supervisors (county-wide or their town) and town chiefs (their town): the
//! facts from the database, the figures from `case::stats`, and the same tables as CSV and as
//! an Excel workbook for the offices' spreadsheets.

use std::collections::BTreeMap;

use rust_xlsxwriter::{Color, Format, Workbook, XlsxError};
use serde::Serialize;

use crate::case::stats::{By, Figures, Grouping, Report, Row, compute};
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

/// The columns of both exports (CSV and Excel), after the first (名称 or 时间).
const COLUMNS: [&str; 23] = [
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
    "响铃到接听中位数(秒)",
    "响铃到接听P90(秒)",
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

/// The name of the last row of each exported table: the report's totals.
pub const TOTAL_ROW: &str = "合计";

/// One cell of an exported table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Count(usize),
    /// Whole seconds; empty of nothing.
    Secs(Option<u64>),
    /// Per thousand, shown as a percentage with one decimal; empty of nothing.
    Permille(Option<u64>),
}

/// The cells of one row after its name, in the order of [`COLUMNS`].
fn cells(f: &Figures) -> [Cell; 23] {
    let n = |k: &str, m: &BTreeMap<&'static str, usize>| Cell::Count(m.get(k).copied().unwrap_or(0));
    [
        Cell::Count(f.cases),
        Cell::Count(f.decided),
        n("done", &f.outcomes),
        n("missing", &f.outcomes),
        n("refused", &f.outcomes),
        n("later", &f.outcomes),
        Cell::Count(f.calls),
        Cell::Count(f.answered),
        Cell::Count(f.abandoned),
        Cell::Count(f.timed_out),
        Cell::Secs(f.waiting.p50_secs),
        Cell::Secs(f.waiting.p90_secs),
        Cell::Secs(f.ring_to_answer.p50_secs),
        Cell::Secs(f.ring_to_answer.p90_secs),
        Cell::Secs(f.handling.p50_secs),
        Cell::Secs(f.handling.p90_secs),
        Cell::Permille(f.on_the_spot.permille),
        Cell::Permille(f.first_contact.permille),
        Cell::Secs(f.signoff_turnaround.p50_secs),
        n("good", &f.ratings),
        n("fair", &f.ratings),
        n("bad", &f.ratings),
        Cell::Permille(f.good.permille),
    ]
}

/// The rows of one exported table: (name, figures), the totals last.
fn table(view: &StatsView, breakdown: bool) -> impl Iterator<Item = (&str, &Figures)> {
    let rows: &[Row] = if breakdown { &view.report.breakdown } else { &view.report.series };
    rows.iter().map(|r| (r.name.as_str(), &r.figures)).chain([(TOTAL_ROW, &view.report.totals)])
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
/// reads the Chinese right), with the totals as the last row ([`TOTAL_ROW`]).
pub fn csv(view: &StatsView, breakdown: bool) -> String {
    let first = if breakdown { "名称" } else { "时间" };
    let mut out = String::from("\u{feff}");
    out.push_str(&[first].iter().chain(COLUMNS.iter()).map(|h| field(h)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for (name, f) in table(view, breakdown) {
        let mut line = field(name);
        for cell in cells(f) {
            line.push(',');
            match cell {
                Cell::Count(n) => line.push_str(&n.to_string()),
                Cell::Secs(s) => line.push_str(&s.map(|s| s.to_string()).unwrap_or_default()),
                Cell::Permille(p) => line.push_str(&permille(p)),
            }
        }
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

/// The report as an Excel workbook: the sheets 分项 (the breakdown) and 时间 (the series), each
/// with Chinese headers, numbers as numbers and the totals as the last row, and 说明 (what it
/// covers). Text is written as text, never as a formula.
pub fn xlsx(view: &StatsView, town_name: Option<&str>) -> Result<Vec<u8>, Error> {
    let xlsx_error = |e: XlsxError| Error::Tool(format!("xlsx: {e}"));
    let mut book = Workbook::new();
    let head = Format::new().set_bold().set_background_color(Color::RGB(0xDDE3EA)).set_text_wrap();
    let bold = Format::new().set_bold();
    let one_decimal = Format::new().set_num_format("0.0");
    for (sheet_name, breakdown, first) in [("分项", true, "名称"), ("时间", false, "时间")] {
        let sheet = book.add_worksheet();
        sheet.set_name(sheet_name).map_err(xlsx_error)?;
        sheet.write_string_with_format(0, 0, first, &head).map_err(xlsx_error)?;
        sheet.set_column_width(0, 24).map_err(xlsx_error)?;
        for (i, h) in COLUMNS.iter().enumerate() {
            let col = i as u16 + 1;
            sheet.write_string_with_format(0, col, *h, &head).map_err(xlsx_error)?;
            sheet.set_column_width(col, 11).map_err(xlsx_error)?;
        }
        sheet.set_row_height(0, 48).map_err(xlsx_error)?;
        sheet.set_freeze_panes(1, 1).map_err(xlsx_error)?;
        let rows: Vec<(&str, &Figures)> = table(view, breakdown).collect();
        for (i, (name, f)) in rows.iter().enumerate() {
            let row = i as u32 + 1;
            let name_format = if i + 1 == rows.len() { &bold } else { &Format::new() };
            sheet.write_string_with_format(row, 0, *name, name_format).map_err(xlsx_error)?;
            for (j, cell) in cells(f).into_iter().enumerate() {
                let col = j as u16 + 1;
                match cell {
                    Cell::Count(n) => sheet.write_number(row, col, n as f64),
                    Cell::Secs(Some(s)) => sheet.write_number(row, col, s as f64),
                    Cell::Permille(Some(p)) => sheet.write_number_with_format(row, col, p as f64 / 10.0, &one_decimal),
                    Cell::Secs(None) | Cell::Permille(None) => continue,
                }
                .map_err(xlsx_error)?;
            }
        }
    }
    let about = book.add_worksheet();
    about.set_name("说明").map_err(xlsx_error)?;
    about.set_column_width(0, 16).map_err(xlsx_error)?;
    about.set_column_width(1, 60).map_err(xlsx_error)?;
    let day = |ms: u64| Grouping::Day.label(ms);
    let last = view.to_ms.saturating_sub(86_400_000).max(view.from_ms);
    let grouping = match view.report.grouping {
        Grouping::Day => "每天",
        Grouping::Week => "每周(周一开始)",
        Grouping::Month => "每月",
    };
    let by = match view.report.by {
        By::Town => "乡镇",
        By::Village => "村(社区)",
        By::Window => "窗口",
        By::Matter => "事项",
        By::Approver => "办理人",
    };
    let b = &view.report.bookings;
    let lines = [
        ("统计范围", format!("{} 至 {}(北京时间)", day(view.from_ms), day(last))),
        ("乡镇", town_name.unwrap_or("全县").to_string()),
        ("时间分组", grouping.to_string()),
        ("分项", by.to_string()),
        ("预约", format!("共 {},守约 {},失约 {},取消 {},未到时间 {}", b.booked, b.kept, b.missed, b.cancelled, b.upcoming)),
        ("口径", "案件按登记的日期计入;等待时间从呼叫到接听;响铃到接听从接听的那次响铃(同一次呼叫依次响过几位办理人时,算最后一次)到接听,没响铃就从队列里接起的不计;办理时长从接听到挂断;一次办成:决定前只接通过一次;百分比以已决定的案件为分母(好评率以已评价的为分母)".to_string()),
    ];
    for (i, (k, v)) in lines.iter().enumerate() {
        about.write_string_with_format(i as u32, 0, *k, &bold).map_err(xlsx_error)?;
        about.write_string(i as u32, 1, v).map_err(xlsx_error)?;
    }
    book.save_to_buffer().map_err(xlsx_error)
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
