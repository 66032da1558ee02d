//! A scan tagged as the wrong paper of the checklist is re-tagged, one scanned by mistake is
//! taken back (issue 15, point 10), by the village room only and only while the case takes
//! scans: the approver in the live call sees each change at once (`paper.changed`); a removed
//! paper stays stored and on the record (the review opens it) but is no paper of the case any
//! more; every refused attempt changes nothing.

use cunneng_tests::cases::{Api, answer_call, assert_error, call, object_files, pdf, png, setup};
use cunneng_tests::client::{demo_kiosks, login_as};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

/// The case's papers as the kiosk sees them: (id, checklist item) in order.
async fn papers(api: &Api, case_no: &str) -> anyhow::Result<Vec<(i64, Value)>> {
    let (st, case) = api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(st, 200, "{case}");
    Ok(case["papers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_i64().unwrap(), p["checklist_item"].clone()))
        .collect())
}

#[tokio::test]
async fn a_wrongly_tagged_paper_is_retagged_or_removed_by_its_village_while_the_case_is_open() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let items: Vec<String> =
        s.matter["required_papers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(items.len() >= 2, "the matter needs two papers: {items:?}");

    // The case with the villager, two scans: the first tagged as the wrong paper.
    let (st, case) = kiosk_api
        .post("/api/cases", json!({"matter_id": s.matter_id, "villager": {"name": "王阿姨", "phone": "13600001111"}}))
        .await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let wrong = kiosk_api.upload(&case_no, "户口本.png", &png(4000), Some(&items[0]), "scan", 64 * 1024).await?;
    let mistake = kiosk_api.upload(&case_no, "扫错了.pdf", &pdf(3000), Some(&items[1]), "scan", 64 * 1024).await?;
    let (wrong_id, mistake_id) = (wrong["id"].as_i64().unwrap(), mistake["id"].as_i64().unwrap());
    let paper_url = |id: i64| format!("/api/cases/{case_no}/papers/{id}");

    // A paper of another case of the village is not this case's.
    let (_, other) = kiosk_api.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    let other_no = other["case_no"].as_str().unwrap().to_string();
    let elsewhere = kiosk_api.upload(&other_no, "别的.png", &png(2000), None, "scan", 64 * 1024).await?;

    // The call carries the case: the approver sees the corrections live.
    let (mut kiosk, mut window, call_id) = call(&server, &s, Some(&case_no)).await?;
    answer_call(&mut kiosk, &mut window, call_id).await?;

    // Re-tag: the paper of the checklist it really is.
    let (st, p) = kiosk_api.patch(&paper_url(wrong_id), json!({"checklist_item": items[1]})).await?;
    assert_eq!((st, p["checklist_item"].as_str()), (200, Some(items[1].as_str())), "{p}");
    let pushed = window.expect("paper.changed").await?;
    assert_eq!(pushed["case_no"], case_no.as_str());
    assert_eq!(
        (pushed["paper"]["id"].as_i64(), pushed["paper"]["checklist_item"].as_str()),
        (Some(wrong_id), Some(items[1].as_str()))
    );
    assert!(pushed["paper"].get("removed_at_ms").is_none(), "{pushed}");
    // The same item again changes nothing; null is 其他材料.
    let (st, _) = kiosk_api.patch(&paper_url(wrong_id), json!({"checklist_item": items[1]})).await?;
    assert_eq!(st, 200);
    let (st, p) = kiosk_api.patch(&paper_url(wrong_id), json!({"checklist_item": null})).await?;
    assert_eq!((st, &p["checklist_item"]), (200, &Value::Null), "{p}");
    window.expect_where("paper.changed", |m| m["paper"]["checklist_item"].is_null()).await?;
    let (st, _) = kiosk_api.patch(&paper_url(wrong_id), json!({"checklist_item": items[0]})).await?;
    assert_eq!(st, 200);

    // Bad input: 400, nothing changes.
    let before = papers(&kiosk_api, &case_no).await?;
    for body in
        [json!({"checklist_item": "不是清单上的"}), json!({}), json!({"checklist_item": 3}), json!({"kind": "result"})]
    {
        let a = kiosk_api.patch(&paper_url(wrong_id), body.clone()).await?;
        assert_eq!(a.0, 400, "{body}: {}", a.1);
    }
    // Not a paper of this case, or none at all: 404.
    assert_error(
        &kiosk_api.patch(&paper_url(elsewhere["id"].as_i64().unwrap()), json!({"checklist_item": null})).await?,
        404,
        "not_found",
    );
    assert_error(&kiosk_api.delete(&paper_url(999_999)).await?, 404, "not_found");
    assert_error(&kiosk_api.delete(&format!("/api/cases/ZH-20000101-9999/papers/{wrong_id}")).await?, 404, "not_found");

    // Out of scope: nobody 401; the town, supervisors and another village's kiosk 403.
    let other_village = demo_kiosks(&server)
        .await?
        .into_iter()
        .find(|k| k.village_id() != s.kiosk.village_id())
        .expect("a kiosk of another village");
    let supervisor = login_as(&server, "supervisor").await?;
    let outsiders = [
        ("nobody", Api::anonymous(&server), 401),
        ("approver", window_api.clone(), 403),
        ("chief", Api::new(&server, &s.chief.token), 403),
        ("supervisor", Api::new(&server, &supervisor), 403),
        ("kiosk of another village", Api::new(&server, &other_village.token), 403),
    ];
    for (who, api, want) in &outsiders {
        let (st, body) = api.patch(&paper_url(mistake_id), json!({"checklist_item": items[0]})).await?;
        assert_eq!(st, *want, "PATCH as {who}: {body}");
        let (st, body) = api.delete(&paper_url(mistake_id)).await?;
        assert_eq!(st, *want, "DELETE as {who}: {body}");
    }
    assert_eq!(papers(&kiosk_api, &case_no).await?, before, "refusals changed nothing");

    // Remove: 204; gone from the case and its checklist, pushed to the approver.
    let stored = object_files(&server).len();
    let (st, _) = kiosk_api.delete(&paper_url(mistake_id)).await?;
    assert_eq!(st, 204);
    let pushed = window.expect_where("paper.changed", |m| m["paper"]["id"] == mistake_id).await?;
    assert!(pushed["paper"]["removed_at_ms"].as_u64().is_some(), "{pushed}");
    let (_, village_view) = kiosk_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(papers(&kiosk_api, &case_no).await?.iter().map(|p| p.0).collect::<Vec<_>>(), vec![wrong_id]);
    assert!(village_view.get("removed_papers").is_none(), "{village_view}");
    let entry = |case: &Value, item: &str| {
        case["checklist"].as_array().unwrap().iter().find(|e| e["item"] == item).unwrap()["paper_ids"].clone()
    };
    assert_eq!(entry(&village_view, &items[0]), json!([wrong_id]));
    assert_eq!(entry(&village_view, &items[1]), json!([]));
    // The town sees it among the removed papers, not as a paper of the case.
    let (_, town_view) = window_api.get(&format!("/api/cases/{case_no}")).await?;
    assert!(town_view["papers"].as_array().unwrap().iter().all(|p| p["id"] != mistake_id));
    assert_eq!(town_view["removed_papers"][0]["id"], mistake_id);
    // Kept: the object is still stored, the review opens it; the village and the window are told it is removed.
    assert_eq!(object_files(&server).len(), stored, "nothing was deleted from the store");
    assert_error(&kiosk_api.get(&paper_url(mistake_id)).await?, 410, "paper_removed");
    assert_error(&window_api.get(&paper_url(mistake_id)).await?, 410, "paper_removed");
    let (st, ct, bytes) = Api::new(&server, &supervisor).get_bytes(&paper_url(mistake_id)).await?;
    assert_eq!((st, ct.as_str(), bytes.len()), (200, "application/pdf", 3000));
    // Taken back once: again is 410.
    assert_error(&kiosk_api.delete(&paper_url(mistake_id)).await?, 410, "paper_removed");
    assert_error(
        &kiosk_api.patch(&paper_url(mistake_id), json!({"checklist_item": null})).await?,
        410,
        "paper_removed",
    );
    // On the timeline, for the village as well.
    let kinds: Vec<&str> =
        village_view["timeline"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "paper.retagged").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "paper.removed").count(), 1, "{kinds:?}");

    // A result paper is the town's: the kiosk cannot take it back.
    let result = window_api.upload(&case_no, "结果.pdf", &pdf(2000), None, "result", 64 * 1024).await?;
    let (st, body) = kiosk_api.delete(&paper_url(result["id"].as_i64().unwrap())).await?;
    assert_eq!(st, 403, "{body}");

    // After a decision: 409, nothing changes.
    let (st, d) = window_api
        .post(&format!("/api/cases/{case_no}/outcome"), json!({"outcome": "later", "note": "已受理"}))
        .await?;
    assert_eq!((st, d["status"].as_str()), (200, Some("later")), "{d}");
    assert_error(
        &kiosk_api.patch(&paper_url(wrong_id), json!({"checklist_item": items[1]})).await?,
        409,
        "case_closed",
    );
    assert_error(&kiosk_api.delete(&paper_url(wrong_id)).await?, 409, "case_closed");
    assert_eq!(papers(&kiosk_api, &case_no).await?, vec![(wrong_id, json!(items[0]))]);
    Ok(())
}
