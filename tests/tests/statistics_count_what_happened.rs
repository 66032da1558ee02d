//! Statistics from the stored facts: after a known little history (a call answered and
//! decided 当场办结 and rated, a second case refused after a cancelled and an answered call, a
//! case still open without a call), `/api/stats` counts exactly that, for the county, by town
//! and by approver, and the CSV for the offices carries the same figures; it survives a
//! restart. Supervisors see their scope, chiefs their town; approvers and kiosks nothing.

use anyhow::Result;
use cunneng_tests::cases::{Api, answer_call, assert_error, call, hang_up, setup};
use cunneng_tests::client::{demo_kiosks, login_as};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn statistics_count_a_known_history_in_each_scope() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let window = Api::new(&server, &s.approver.token);

    // Case 1: called, answered, 当场办结 with a result document, rated good with a comment.
    let (mut k, mut w, id) = call(&server, &s, None).await?;
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
