//! The village ledger (台账, one of a village room's "六个一"): every matter the room accepted,
//! by date, with the villager (masked), the matter, where it was handled, the outcome, whether
//! the result reached the room and the villager's rating; one month (China time) at a time.
//! The room sees its own; the town's chief and the supervisors in scope see those of its
//! villages. As JSON for the page (which prints it as the paper ledger looks) and as an Excel
//! workbook laid out for A4 landscape with page numbers.

use rust_xlsxwriter::{Color, Format, FormatAlign, FormatBorder, Workbook, XlsxError};
use serde::Serialize;

use crate::case::days::{date_of, day_of, day_start, parse_day};
use crate::case::villager::{mask_name, mask_phone};
use crate::case::{Outcome, Rating, ShownStatus, Viewer};
use crate::db::{Db, LedgerFact};
use crate::error::{Error, Rejection};
use crate::service::views::Named;

/// Most rows in one month's ledger (a busy room has a few hundred).
pub const MAX_ROWS: usize = 5_000;

/// A calendar month, China time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u8,
}

impl Month {
    /// `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.trim().split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        parse_day(&format!("{y}-{m}-01")).map(|day| Month::of(day_start(day)))
    }

    /// The month `ms` falls in.
    pub fn of(ms: u64) -> Month {
        let date = date_of(day_of(ms));
        Month { year: date.year(), month: u8::from(date.month()) }
    }

    /// Its first instant and the first of the next month.
    pub fn range_ms(self) -> (u64, u64) {
        let first = parse_day(&format!("{:04}-{:02}-01", self.year, self.month)).unwrap_or_default();
        let next = if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        };
        let last = parse_day(&format!("{:04}-{:02}-01", next.year, next.month)).unwrap_or(first + 31);
        (day_start(first), day_start(last))
    }

    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// Where a case was handled: the town window that answered its (last) call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandledAt {
    pub town: String,
    pub window: String,
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerRow {
    /// 1, 2, … in the month.
    pub seq: usize,
    /// `2026-12-03` (China time).
    pub date: String,
    pub created_at_ms: u64,
    pub case_no: String,
    /// `王*`: the family name only.
    pub villager: Option<String>,
    /// `139****4321`.
    pub phone: Option<String>,
    pub matter: String,
    /// `None`: no call was answered (yet).
    pub handled_at: Option<HandledAt>,
    pub status: ShownStatus,
    pub outcome: Option<Outcome>,
    /// The decision (and its result) reached the room: live in the call, or in its inbox
    /// afterwards; `result_read`: opened in the inbox.
    pub result_delivered: bool,
    pub result_read: bool,
    pub rating: Option<Rating>,
}

/// Totals of a month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LedgerTotals {
    pub cases: usize,
    pub decided: usize,
    pub done_on_the_spot: usize,
    pub results_delivered: usize,
    pub rated: usize,
    pub rated_good: usize,
}

/// A month of a village's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerView {
    pub village: Named,
    pub town: Named,
    /// `2026-12`.
    pub month: String,
    pub rows: Vec<LedgerRow>,
    pub totals: LedgerTotals,
    /// More than [`MAX_ROWS`] cases: only the first are listed.
    pub truncated: bool,
}

/// The village whose ledger `viewer` asks for, checked against the viewer's scope.
async fn village_of(db: &Db, viewer: &Viewer, asked: Option<i64>) -> Result<(Named, Named), Error> {
    let village_id = match viewer {
        Viewer::Kiosk { village_id, .. } => match asked {
            Some(v) if v != *village_id => return Err(Rejection::forbidden("only your own village's ledger").into()),
            _ => *village_id,
        },
        Viewer::Chief { .. } | Viewer::Supervisor { .. } => {
            asked.ok_or_else(|| Rejection::invalid("请选择村(社区) (village_id is required)"))?
        }
        Viewer::Approver { .. } => {
            return Err(
                Rejection::forbidden("the ledger is for the village room, the town's chief and supervisors").into()
            );
        }
    };
    let (village, town) = db
        .run(move |db| -> Result<_, crate::db::DataError> {
            let Some(v) = db.village(village_id)? else { return Ok(None) };
            let town = db.town(v.town_id)?;
            Ok(Some((v, town)))
        })
        .await?
        .ok_or_else(|| Rejection::not_found("village"))?;
    let in_scope = match viewer {
        Viewer::Kiosk { .. } | Viewer::Supervisor { town: None, .. } => true,
        Viewer::Chief { town_id, .. } | Viewer::Supervisor { town: Some(town_id), .. } => *town_id == village.town_id,
        Viewer::Approver { .. } => false,
    };
    if !in_scope {
        // Another town's village is not there for this viewer.
        return Err(Rejection::not_found("village").into());
    }
    let town_name = town.map(|t| t.name).unwrap_or_default();
    Ok((Named { id: village.id, name: village.name }, Named { id: village.town_id, name: town_name }))
}

/// The ledger of `month` for `viewer` (`village`: required for town staff and supervisors).
pub async fn ledger(db: &Db, viewer: &Viewer, village: Option<i64>, month: Month) -> Result<LedgerView, Error> {
    let (village, town) = village_of(db, viewer, village).await?;
    let (from, to) = month.range_ms();
    let id = village.id;
    let mut facts = db.run(move |db| db.ledger_facts(id, from, to, MAX_ROWS + 1)).await?;
    let truncated = facts.len() > MAX_ROWS;
    facts.truncate(MAX_ROWS);
    let audience = viewer.audience();
    let rows: Vec<LedgerRow> = facts.into_iter().enumerate().map(|(i, f)| row(i + 1, f, audience)).collect();
    let mut totals = LedgerTotals { cases: rows.len(), ..LedgerTotals::default() };
    for r in &rows {
        totals.decided += usize::from(r.outcome.is_some());
        totals.done_on_the_spot += usize::from(r.outcome == Some(Outcome::Done));
        totals.results_delivered += usize::from(r.result_delivered);
        totals.rated += usize::from(r.rating.is_some());
        totals.rated_good += usize::from(r.rating == Some(Rating::Good));
    }
    Ok(LedgerView { village, town, month: month.label(), rows, totals, truncated })
}

fn row(seq: usize, f: LedgerFact, audience: crate::case::Audience) -> LedgerRow {
    let c = &f.case;
    let status = c.status().shown(audience);
    // The village sees a decision once it is final (as on its case page).
    let outcome = c.state.decision.as_ref().map(|d| d.outcome).filter(|_| {
        audience == crate::case::Audience::Town || !matches!(status, ShownStatus::Reviewing | ShownStatus::Open)
    });
    LedgerRow {
        seq,
        date: date_of(day_of(c.created_at_ms)).to_string(),
        created_at_ms: c.created_at_ms,
        case_no: c.case_no.clone(),
        villager: c.villager_name.as_deref().map(mask_name),
        phone: c.villager_phone.as_deref().map(mask_phone),
        matter: if c.matter_plain_name.is_empty() { c.matter_name.clone() } else { c.matter_plain_name.clone() },
        handled_at: f.window.map(|window| HandledAt { town: c.town_name.clone(), window }),
        status,
        outcome,
        // Seen live in the call, or sent to the room's inbox afterwards; a decision still
        // waiting for the chief's sign-off has reached nobody.
        result_delivered: outcome.is_some()
            && !matches!(c.status(), crate::case::Status::Signoff | crate::case::Status::Returned)
            && (f.decided_in_call || f.delivered_at_ms.is_some()),
        result_read: f.read_at_ms.is_some(),
        rating: f.rating,
    }
}

/// The ledger as an Excel workbook, laid out as the paper ledger: a title, one line per case,
/// A4 landscape, the header repeated on every page, page numbers in the footer.
pub fn xlsx(view: &LedgerView) -> Result<Vec<u8>, Error> {
    let xlsx_error = |e: XlsxError| Error::Tool(format!("xlsx: {e}"));
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(view.month.as_str()).map_err(xlsx_error)?;
    let title = Format::new().set_bold().set_font_size(16).set_align(FormatAlign::Center);
    let head = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDDE3EA))
        .set_border(FormatBorder::Thin)
        .set_text_wrap()
        .set_align(FormatAlign::Center);
    let cell = Format::new().set_border(FormatBorder::Thin).set_text_wrap();
    const HEADS: [(&str, f64); 11] = [
        ("序号", 6.0),
        ("日期", 11.0),
        ("案件编号", 18.0),
        ("办事群众", 9.0),
        ("联系电话", 13.0),
        ("事项", 20.0),
        ("办理地点", 18.0),
        ("办理状态", 14.0),
        ("办理结果", 10.0),
        ("结果送达", 9.0),
        ("评价", 7.0),
    ];
    let (year, month) = (view.month.get(..4).unwrap_or(""), view.month.get(5..).unwrap_or(""));
    let heading = format!("{}{} 便民服务室办事记录台账({year}年{month}月)", view.town.name, view.village.name);
    sheet.merge_range(0, 0, 0, HEADS.len() as u16 - 1, &heading, &title).map_err(xlsx_error)?;
    sheet.set_row_height(0, 28).map_err(xlsx_error)?;
    for (i, (h, width)) in HEADS.iter().enumerate() {
        sheet.write_string_with_format(1, i as u16, *h, &head).map_err(xlsx_error)?;
        sheet.set_column_width(i as u16, *width).map_err(xlsx_error)?;
    }
    for (i, r) in view.rows.iter().enumerate() {
        let row = i as u32 + 2;
        let handled = r.handled_at.as_ref().map_or("未接通".to_string(), |h| format!("{} {}", h.town, h.window));
        let cells = [
            r.seq.to_string(),
            r.date.clone(),
            r.case_no.clone(),
            r.villager.clone().unwrap_or_default(),
            r.phone.clone().unwrap_or_default(),
            r.matter.clone(),
            handled,
            r.status.text().to_string(),
            r.outcome.map(|o| o.name().to_string()).unwrap_or_default(),
            if r.result_read {
                "已送达 ✓".to_string()
            } else if r.result_delivered {
                "已送达".to_string()
            } else {
                String::new()
            },
            r.rating.map(|x| x.text().to_string()).unwrap_or_default(),
        ];
        for (j, text) in cells.iter().enumerate() {
            sheet.write_string_with_format(row, j as u16, text, &cell).map_err(xlsx_error)?;
        }
    }
    let t = &view.totals;
    let last = view.rows.len() as u32 + 2;
    let summary = format!(
        "本月共 {} 件,已决定 {} 件(当场办结 {} 件),结果送达 {} 件,评价 {} 件(好评 {} 件){}",
        t.cases,
        t.decided,
        t.done_on_the_spot,
        t.results_delivered,
        t.rated,
        t.rated_good,
        if view.truncated { ";只列出前 5000 件" } else { "" }
    );
    sheet.merge_range(last, 0, last, HEADS.len() as u16 - 1, &summary, &Format::new()).map_err(xlsx_error)?;
    sheet.set_landscape();
    sheet.set_paper_size(9); // A4
    sheet.set_repeat_rows(1, 1).map_err(xlsx_error)?;
    sheet.set_print_fit_to_pages(1, 0);
    sheet.set_footer("&C第 &P 页,共 &N 页");
    book.save_to_buffer().map_err(xlsx_error)
}

/// `cunneng-ledger-VILLAGE-2026-12.xlsx` (ASCII: the village by id).
pub fn file_name(view: &LedgerView) -> String {
    format!("cunneng-ledger-{}-{}.xlsx", view.village.id, view.month)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::days::DAY_MS;

    #[test]
    fn months_parse_and_cover_china_time() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(m, Month { year: 2026, month: 12 });
        let (from, to) = m.range_ms();
        // 2026-12-01 00:00 China time is 2026-11-30 16:00 UTC.
        assert_eq!(from, 1_796_054_400_000);
        assert_eq!(to - from, 31 * DAY_MS);
        assert_eq!(Month::of(from), m);
        assert_eq!(Month::of(from - 1), Month { year: 2026, month: 11 });
        assert_eq!(Month::of(to), Month { year: 2027, month: 1 });
        let feb = Month::parse("2028-02").unwrap().range_ms();
        assert_eq!(feb.1 - feb.0, 29 * DAY_MS, "a leap year's February");
        for bad in ["", "2026", "2026-13", "2026-00", "26-12", "2026-1", "2026-12-01", "1999-12", "abcd-ef"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        assert_eq!(m.label(), "2026-12");
    }
}
