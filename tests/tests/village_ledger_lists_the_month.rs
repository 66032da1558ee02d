//! The village ledger (台账, issue 14) against the real binary: a room that handled three
//! matters this month (one 当场办结 with its result delivered and rated 好评, one 当面说清
//! rated 差评, one only prepared) sees exactly those, in order, with the villager masked,
//! where each was handled, the outcome, the delivery and the rating, and the month's totals;
//! the Excel export holds the same lines (A4 landscape layout is the file's); the town's chief
//! sees the ledgers of its villages, not another town's; bad months and other villages are
//! refused with a clear error.

use std::io::Cursor;

use anyhow::{Context, Result};
use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use cunneng_tests::cases::{Api, assert_error, decided_case, setup, setup_in_another_town};
use cunneng_tests::client::{demo_kiosks, get_json};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

#[tokio::test]
async fn village_ledger_lists_the_month() -> Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let done = decided_case(&server, &s, "done", Some(("good", "很快"))).await?;
    let refused = decided_case(&server, &s, "refused", Some(("bad", "没说清楚"))).await?;
    let (st, prepared) = kiosk
        .post("/api/cases", json!({"matter_id": s.matter_id, "villager": {"name": "欧阳明月", "phone": "13700002222"}}))
        .await?;
    assert_eq!(st, 201, "{prepared}");
    let prepared = prepared["case_no"].as_str().context("case_no")?.to_string();
    let (_, me) = get_json(&server, "/api/me", Some(&s.approver.token)).await?;
    let window = me["window"]["name"].as_str().context("approver's window")?.to_string();

    // The room's own ledger, this month by default.
    let (st, ledger) = kiosk.get("/api/ledger").await?;
    assert_eq!(st, 200, "{ledger}");
    let text = ledger.to_string();
    assert!(
        !text.contains("王大妈") && !text.contains("13900001111") && !text.contains("欧阳明月"),
        "personal data: {text}"
    );
    assert_eq!(ledger["village"]["id"].as_i64(), s.kiosk.village_id());
    let rows = ledger["rows"].as_array().context("rows")?;
    let numbers: Vec<&str> = rows.iter().filter_map(|r| r["case_no"].as_str()).collect();
    assert_eq!(numbers, [done.as_str(), refused.as_str(), prepared.as_str()], "{ledger}");
    let plain = s.matter["plain_name"].as_str().context("plain_name")?;
    let expect = [
        // Decided during the call: the room saw the decision and its result live.
        (1, "王**", "139****1111", Some(window.as_str()), "done", Some("done"), true, Some("good")),
        (2, "王**", "139****1111", Some(window.as_str()), "refused", Some("refused"), true, Some("bad")),
        (3, "欧***", "137****2222", None, "open", None, false, None),
    ];
    for (r, (seq, villager, phone, win, status, outcome, result, rating)) in rows.iter().zip(expect) {
        assert_eq!(r["seq"], seq);
        assert_eq!(r["villager"], villager, "{r}");
        assert_eq!(r["phone"], phone, "{r}");
        assert_eq!(r["matter"], plain, "{r}");
        assert_eq!(r["handled_at"]["window"].as_str(), win, "{r}");
        assert_eq!(r["status"], status, "{r}");
        assert_eq!(r["outcome"].as_str(), outcome, "{r}");
        assert_eq!(r["result_delivered"], result, "{r}");
        assert_eq!(r["rating"].as_str(), rating, "{r}");
    }
    let t = &ledger["totals"];
    assert_eq!(
        (
            t["cases"].as_u64(),
            t["decided"].as_u64(),
            t["done_on_the_spot"].as_u64(),
            t["rated"].as_u64(),
            t["rated_good"].as_u64()
        ),
        (Some(3), Some(2), Some(1), Some(2), Some(1)),
        "{t}"
    );
    assert_eq!(t["results_delivered"].as_u64(), Some(2), "{t}");
    let month = ledger["month"].as_str().context("month")?.to_string();
    let (_, same) = kiosk.get(&format!("/api/ledger?month={month}")).await?;
    assert_eq!(same, ledger);
    let (st, empty) = kiosk.get("/api/ledger?month=2020-01").await?;
    assert_eq!((st, empty["rows"].as_array().map(Vec::len)), (200, Some(0)), "{empty}");

    // The Excel export: the same lines under a title and a header.
    let (st, headers, bytes) = kiosk.get_bytes("/api/ledger/export.xlsx").await?;
    assert_eq!(st, 200);
    assert_eq!(headers, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes))?;
    assert_eq!(book.sheet_names(), std::slice::from_ref(&month));
    let range = book.worksheet_range(&month)?;
    let cell = |r: u32, c: u32| range.get_value((r, c)).map(Data::to_string).unwrap_or_default();
    assert!(cell(0, 0).contains("便民服务室办事记录台账"), "{}", cell(0, 0));
    assert_eq!(
        (cell(1, 0), cell(1, 3), cell(1, 6), cell(1, 10)),
        ("序号".into(), "办事群众".into(), "办理地点".into(), "评价".into())
    );
    for (i, no) in numbers.iter().enumerate() {
        let row = i as u32 + 2;
        assert_eq!(cell(row, 2), *no);
        assert!(!cell(row, 3).contains("大妈"), "a name in the workbook");
    }
    assert_eq!(cell(2, 8), "当场办结");
    assert!(cell(5, 0).starts_with("本月共 3 件"), "{}", cell(5, 0));

    // The town's chief sees the village's ledger; another town's chief does not find it.
    let village = s.kiosk.village_id().context("village")?;
    let chief = Api::new(&server, &s.chief.token);
    let (st, seen) = chief.get(&format!("/api/ledger?village_id={village}")).await?;
    assert_eq!((st, seen["rows"].as_array().map(Vec::len)), (200, Some(3)), "{seen}");
    assert_error(&chief.get("/api/ledger").await?, 400, "bad_request");
    let other = setup_in_another_town(&server, s.kiosk.town_id(), false).await?;
    let other_chief = Api::new(&server, &other.chief.token);
    assert_error(&other_chief.get(&format!("/api/ledger?village_id={village}")).await?, 404, "not_found");
    assert_error(&other_chief.get("/api/ledger?village_id=999999").await?, 404, "not_found");

    // Another village's room, a bad month, an unknown parameter, an approver, no token.
    let kiosks = demo_kiosks(&server).await?;
    let neighbour = kiosks
        .iter()
        .find(|k| k.village_id() != Some(village) && k.town_id() == s.kiosk.town_id())
        .context("a second village of the town")?;
    let neighbour = Api::new(&server, &neighbour.token);
    assert_error(&neighbour.get(&format!("/api/ledger?village_id={village}")).await?, 403, "forbidden");
    let (_, own) = neighbour.get("/api/ledger").await?;
    assert!(!own.to_string().contains(&done), "a neighbour's ledger lists another village's case");
    for bad in ["month=2026-13", "month=12-2026", "month=2026-1", "village_id=abc", "colour=red"] {
        let (st, body): (u16, Value) = kiosk.get(&format!("/api/ledger?{bad}")).await?;
        assert_eq!(st, 400, "{bad}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{bad}: {body}");
    }
    assert_error(&Api::new(&server, &s.approver.token).get("/api/ledger").await?, 403, "forbidden");
    assert_eq!(Api::anonymous(&server).get("/api/ledger").await?.0, 401);
    assert_eq!(Api::anonymous(&server).get("/api/ledger/export.xlsx").await?.0, 401);
    Ok(())
}
