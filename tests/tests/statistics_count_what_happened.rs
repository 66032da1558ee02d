//! Statistics from the stored facts: after a known little history (a call answered and
//! decided 当场办结 and rated, a second case refused after a cancelled and an answered call, a
//! case still open without a call), `/api/stats` counts exactly that, for the county, by town
//! and by approver, and the CSV for the offices carries the same figures; it survives a
//! restart. Supervisors see their scope, chiefs their town; approvers and kiosks nothing. The
//! Excel export, read back, carries the same figures as the JSON.

use std::io::Cursor;

use anyhow::Result;
use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use cunneng_tests::cases::{Api, answer_call, assert_error, call, decided_case, hang_up, setup, setup_in_another_town};
use cunneng_tests::client::{demo_kiosks, login_as};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn statistics_count_a_known_history_in_each_scope() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let window = Api::new(&server, &s.approver.token);

    // Case 1: called, answered 1.2 s after it rang, 当场办结 with a result document, rated good
    // with a comment.
    let (mut k, mut w, id) = call(&server, &s, None).await?;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let started = answer_call(&mut k, &mut w, id).await?;
    let case1 = started["case_no"].as_str().unwrap().to_string();
    let villager = json!({"name": "王大妈", "phone": "13900001111"});
    assert_eq!(kiosk.put(&format!("/api/cases/{case1}/villager"), villager.clone()).await?.0, 200);
    let rp = window.upload(&case1, "结果.pdf", &cunneng_tests::cases::pdf(2000), None, "result", 64 * 1024).await?;
    let (st, body) = window
        .post(
            &format!("/api/cases/{case1}/outcome"),
            json!({"outcome": "done", "note": "当场办结", "result_paper_id": rp["id"]}),
        )
        .await?;
    assert_eq!(st, 200, "{body}");
    hang_up(&mut k, &mut w, id).await?;
    let (st, body) =
        kiosk.post(&format!("/api/cases/{case1}/rating"), json!({"rating": "good", "comment": "很方便"})).await?;
    assert_eq!(st, 201, "{body}");

    // Case 2: the first call is cancelled while ringing, the second answered and refused.
    let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201, "{case}");
    let case2 = case["case_no"].as_str().unwrap().to_string();
    assert_eq!(kiosk.put(&format!("/api/cases/{case2}/villager"), villager).await?.0, 200);
    let (mut k, w, id) = call(&server, &s, Some(&case2)).await?;
    k.send(json!({"type": "call.cancel", "call_id": id})).await?;
    k.expect_where("call.ended", |m| m["call_id"] == id).await?;
    drop((k, w));
    let (mut k, mut w, id) = call(&server, &s, Some(&case2)).await?;
    answer_call(&mut k, &mut w, id).await?;
    let (st, body) = window
        .post(&format!("/api/cases/{case2}/outcome"), json!({"outcome": "refused", "note": "不符合条件"}))
        .await?;
    assert_eq!(st, 200, "{body}");
    hang_up(&mut k, &mut w, id).await?;

    // Case 3: opened, no call.
    let (st, _) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201);

    let sup = Api::new(&server, &login_as(&server, "supervisor").await?);
    let check = |r: &serde_json::Value| {
        let t = &r["totals"];
        assert_eq!((t["cases"].as_u64(), t["decided"].as_u64()), (Some(3), Some(2)), "{t}");
        assert_eq!(t["outcomes"], json!({"done": 1, "refused": 1}), "{t}");
        assert_eq!(
            (t["calls"].as_u64(), t["answered"].as_u64(), t["abandoned"].as_u64()),
            (Some(3), Some(2), Some(1)),
            "{t}"
        );
        assert_eq!(t["waiting"]["count"], 2);
        // Both answered calls rang the approver first (the cancelled one rang, unanswered): the
        // first was answered 1.2 s after its ring (whole seconds: 1, or more on a slow
        // machine), the second at once; a ring comes after the request.
        let (ring, wait) = (&t["ring_to_answer"], &t["waiting"]);
        assert_eq!(ring["count"], 2, "{t}");
        let p90 = ring["p90_secs"].as_u64().unwrap_or(0);
        assert!(p90 >= 1 && p90 <= wait["p90_secs"].as_u64().unwrap_or(0), "{t}");
        assert_eq!(t["handling"]["count"], 2);
        assert_eq!(t["on_the_spot"], json!({"part": 1, "of": 2, "permille": 500}));
        assert_eq!(t["first_contact"], json!({"part": 2, "of": 2, "permille": 1000}));
        assert_eq!(t["ratings"], json!({"good": 1}));
        assert_eq!(r["comments"][0]["comment"], "很方便");
        assert_eq!(r["comments"][0]["case_no"], case1.as_str());
    };
    let (st, r) = sup.get("/api/stats?group=week").await?;
    assert_eq!(st, 200, "{r}");
    check(&r);
    assert_eq!(r["series"].as_array().unwrap().iter().map(|p| p["cases"].as_u64().unwrap()).sum::<u64>(), 3);
    let town = &r["breakdown"][0];
    assert_eq!((town["key"].as_str(), town["cases"].as_u64()), (Some(s.kiosk.town_id().to_string().as_str()), Some(3)));
    let (_, by_approver) = sup.get("/api/stats?by=approver").await?;
    let approver_key = s.approver.id().to_string();
    let rows = by_approver["breakdown"].as_array().unwrap();
    let mine = rows.iter().find(|r| r["key"].as_str() == Some(approver_key.as_str())).cloned();
    assert_eq!(mine.map(|r| r["decided"].clone()), Some(json!(2)), "{by_approver}");

    // The CSV: a byte-order mark, Chinese headers, the town's row with its figures.
    let (st, ctype, bytes) = sup.get_bytes("/api/stats/export.csv?by=town").await?;
    assert_eq!(st, 200);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let text = String::from_utf8(bytes)?;
    assert!(text.starts_with('\u{feff}') && text.contains("\"办件量\""), "{text}");
    let row = text.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(&cells[1..4], ["3", "2", "1"], "{row}");

    // Bad input: a clear 400, nothing else.
    assert_error(&sup.get("/api/stats?group=year").await?, 400, "bad_request");
    assert_error(&sup.get("/api/stats?from=2026-02-31").await?, 400, "bad_request");
    assert_error(&sup.get("/api/stats?from=2020-01-01&to=2026-01-01").await?, 400, "bad_request");
    assert_error(&sup.get("/api/stats?nonsense=1").await?, 400, "bad_request");

    // Scope: the town's chief sees his town (the same figures), not another; approvers and
    // kiosks get nothing; anonymous is 401.
    let chief = Api::new(&server, &s.chief.token);
    let (st, r) = chief.get("/api/stats").await?;
    assert_eq!(st, 200, "{r}");
    check(&r);
    let other_town =
        demo_kiosks(&server).await?.into_iter().find(|k| k.town_id() != s.kiosk.town_id()).unwrap().town_id();
    assert_error(&chief.get(&format!("/api/stats?town={other_town}")).await?, 403, "forbidden");
    let (_, other) = sup.get(&format!("/api/stats?town={other_town}")).await?;
    assert_eq!(other["totals"]["cases"], 0);
    assert_error(&window.get("/api/stats").await?, 403, "forbidden");
    assert_error(&kiosk.get("/api/stats").await?, 403, "forbidden");
    assert_eq!(Api::anonymous(&server).get("/api/stats").await?.0, 401);

    // The figures come from the stored facts: the same after a restart.
    server.stop().await?;
    server.restart().await?;
    let sup = Api::new(&server, &login_as(&server, "supervisor").await?);
    let (_, r) = sup.get("/api/stats").await?;
    check(&r);
    Ok(())
}

/// The figures of one JSON row as the export's columns (docs/cases-api.md, statistics): counts,
/// seconds, and percentages with one decimal; `None` where the JSON has nothing.
fn expected_cells(r: &serde_json::Value) -> Vec<Option<f64>> {
    let n = |v: &serde_json::Value| v.as_f64().or(Some(0.0));
    let secs = |v: &serde_json::Value| v.as_f64();
    let pct = |v: &serde_json::Value| v["permille"].as_f64().map(|p| p / 10.0);
    vec![
        n(&r["cases"]),
        n(&r["decided"]),
        n(&r["outcomes"]["done"]),
        n(&r["outcomes"]["missing"]),
        n(&r["outcomes"]["refused"]),
        n(&r["outcomes"]["later"]),
        n(&r["calls"]),
        n(&r["answered"]),
        n(&r["abandoned"]),
        n(&r["timed_out"]),
        secs(&r["waiting"]["p50_secs"]),
        secs(&r["waiting"]["p90_secs"]),
        secs(&r["ring_to_answer"]["p50_secs"]),
        secs(&r["ring_to_answer"]["p90_secs"]),
        secs(&r["handling"]["p50_secs"]),
        secs(&r["handling"]["p90_secs"]),
        pct(&r["on_the_spot"]),
        pct(&r["first_contact"]),
        secs(&r["signoff_turnaround"]["p50_secs"]),
        n(&r["ratings"]["good"]),
        n(&r["ratings"]["fair"]),
        n(&r["ratings"]["bad"]),
        pct(&r["good"]),
    ]
}

/// A sheet's row: its first cell's text and the numbers of the others (`None`: empty).
type SheetRow = (String, Vec<Option<f64>>);

/// One sheet of a workbook: its header and its rows.
fn sheet_rows(book: &mut Xlsx<Cursor<Vec<u8>>>, name: &str) -> Result<(Vec<String>, Vec<SheetRow>)> {
    let range = book.worksheet_range(name)?;
    let mut rows = range.rows();
    let header = rows.next().expect("a header row").iter().map(|c| c.to_string()).collect();
    let body = rows
        .map(|row| {
            let numbers = row[1..]
                .iter()
                .map(|c| match c {
                    Data::Float(f) => Some(*f),
                    Data::Int(i) => Some(*i as f64),
                    Data::Empty => None,
                    other => panic!("{name}: a cell that is not a number: {other:?}"),
                })
                .collect();
            (row[0].to_string(), numbers)
        })
        .collect();
    Ok((header, body))
}

/// The Excel export is a real workbook (read back with calamine): the breakdown and the series
/// as two sheets with Chinese headers, numbers as numbers equal to the JSON's, the totals last;
/// in the viewer's scope like the JSON.
#[tokio::test]
async fn excel_export_carries_the_figures_of_the_json() -> Result<()> {
    let server = Server::start_demo().await?;
    let a = setup(&server, 0, false).await?;
    let b = setup_in_another_town(&server, a.kiosk.town_id(), false).await?;
    decided_case(&server, &a, "done", Some(("good", "很方便"))).await?;
    decided_case(&server, &a, "refused", Some(("bad", "等得太久"))).await?;
    decided_case(&server, &b, "done", None).await?;

    let sup = Api::new(&server, &login_as(&server, "supervisor").await?);
    for query in ["by=town&group=day", "by=village&group=week", "by=approver&group=month"] {
        let (st, json) = sup.get(&format!("/api/stats?{query}")).await?;
        assert_eq!(st, 200, "{json}");
        let resp = cunneng_tests::client::http()
            .get(format!("{}/api/stats/export.xlsx?{query}", server.base_url))
            .bearer_auth(sup.token.as_deref().unwrap())
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 200);
        let header = |h: &str| resp.headers().get(h).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(header("content-type"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        assert!(
            header("content-disposition").starts_with("attachment; filename=\"cunneng-stats-"),
            "{}",
            header("content-disposition")
        );
        assert!(header("content-disposition").ends_with(".xlsx\""));
        let bytes = resp.bytes().await?.to_vec();
        assert!(bytes.starts_with(b"PK\x03\x04"), "not a zip");
        let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes))?;
        assert_eq!(book.sheet_names(), ["分项", "时间", "说明"]);
        for (sheet, key, first) in [("分项", "breakdown", "名称"), ("时间", "series", "时间")] {
            let (head, rows) = sheet_rows(&mut book, sheet)?;
            assert_eq!(head.len(), 24, "{head:?}");
            assert_eq!((head[0].as_str(), head[1].as_str(), head[17].as_str()), (first, "办件量", "当场办结率(%)"));
            assert_eq!(head[13], "响铃到接听中位数(秒)");
            let want: Vec<SheetRow> = json[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["name"].as_str().unwrap().to_string(), expected_cells(r)))
                .chain([("合计".to_string(), expected_cells(&json["totals"]))])
                .collect();
            assert_eq!(rows, want, "{query}: sheet {sheet}");
        }
        let about = book.worksheet_range("说明")?;
        assert_eq!(about.get_value((1, 1)).map(|c| c.to_string()).as_deref(), Some("全县"));
    }
    let (_, json) = sup.get("/api/stats").await?;
    assert_eq!((json["totals"]["cases"].as_u64(), json["comments"].as_array().map(Vec::len)), (Some(3), Some(2)));

    // The chief's workbook is his town's; another town, a bad parameter, other roles refused.
    let chief = Api::new(&server, &a.chief.token);
    let (st, _, bytes) = chief.get_bytes("/api/stats/export.xlsx?by=village").await?;
    assert_eq!(st, 200);
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes))?;
    let (_, rows) = sheet_rows(&mut book, "分项")?;
    assert_eq!(rows.last().map(|r| r.1[0]), Some(Some(2.0)), "{rows:?}");
    assert_error(&chief.get(&format!("/api/stats/export.xlsx?town={}", b.kiosk.town_id())).await?, 403, "forbidden");
    assert_error(&sup.get("/api/stats/export.xlsx?table=series").await?, 400, "bad_request");
    assert_error(&sup.get("/api/stats/export.xlsx?group=year").await?, 400, "bad_request");
    assert_error(&Api::new(&server, &a.approver.token).get("/api/stats/export.xlsx").await?, 403, "forbidden");
    assert_error(&Api::new(&server, &a.kiosk.token).get("/api/stats/export.xlsx").await?, 403, "forbidden");
    assert_eq!(Api::anonymous(&server).get("/api/stats/export.xlsx").await?.0, 401);
    Ok(())
}
