//! 一审一核 and 现场开单 (docs/cases-api.md): a decision on a matter that needs sign-off waits
//! for a window chief, who approves it (the village then sees the result and gets it in its
//! inbox) or sends it back with a reason; a case with missing papers is resumed by a second
//! call that carries its case number.

use cunneng_tests::cases::{Api, CaseSetup, answer_call, assert_error, call, hang_up, pdf, png, setup};
use cunneng_tests::client::{WsClient, demo_kiosks};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

/// A live call on a new case of `s`, with the villager entered and one scan: the case number.
async fn live_case(server: &Server, s: &CaseSetup) -> anyhow::Result<(WsClient, WsClient, u64, String)> {
    let kiosk_api = Api::new(server, &s.kiosk.token);
    let (mut kiosk, mut window, call_id) = call(server, s, None).await?;
    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    let case_no = started["case_no"].as_str().unwrap().to_string();
    let (st, _) = kiosk_api
        .put(&format!("/api/cases/{case_no}/villager"), json!({"name": "王大妈", "phone": "13700004321"}))
        .await?;
    assert_eq!(st, 200);
    kiosk_api.upload(&case_no, "申请书.pdf", &pdf(20_000), None, "scan", 1 << 20).await?;
    window.expect("paper.added").await?;
    Ok((kiosk, window, call_id, case_no))
}

async fn progress(server: &Server, case_no: &str, phone4: &str) -> anyhow::Result<(u16, Value)> {
    cunneng_tests::cases::public_progress(server, case_no, phone4).await
}

#[tokio::test]
async fn signoff_approved_by_the_chief() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, true).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let chief_api = Api::new(&server, &s.chief.token);
    let mut chief = WsClient::connect(&server, &s.chief.token).await?;
    let (mut kiosk, mut window, call_id, case_no) = live_case(&server, &s).await?;

    let result = png(10_000);
    let rp = window_api.upload(&case_no, "批复.png", &result, None, "result", 1 << 20).await?;
    let (st, decided) = window_api
        .post(
            &format!("/api/cases/{case_no}/outcome"),
            json!({"outcome": "done", "note": "审查通过", "result_paper_id": rp["id"]}),
        )
        .await?;
    assert_eq!(st, 200, "{decided}");
    // 一审 done: the town sees it waiting for sign-off ...
    assert_eq!(decided["status"], "signoff");
    assert_eq!(decided["outcome"]["final"], false);
    let req = chief.expect("signoff.requested").await?;
    assert_eq!(req["case_no"], case_no.as_str());
    // ... the village only that it is being reviewed, without the decision or the result.
    let out = kiosk.expect("outcome").await?;
    assert_eq!((out["status"].as_str(), &out["outcome"]), (Some("reviewing"), &Value::Null));
    assert!(out["result"].is_null());
    let (_, view) = kiosk_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(view["status"], "reviewing");
    assert!(view["outcome"].is_null());
    assert!(view["papers"].as_array().unwrap().iter().all(|p| p["kind"] == "scan"));
    assert!(!view.to_string().contains("审查通过"));
    assert_eq!(kiosk_api.get_bytes(rp["url"].as_str().unwrap()).await?.0, 404);
    let (st, p) = progress(&server, &case_no, "4321").await?;
    assert_eq!((st, p["status"].as_str()), (200, Some("reviewing")));
    hang_up(&mut kiosk, &mut window, call_id).await?;

    // The chief's list; only a chief signs off.
    let (st, list) = chief_api.get("/api/signoffs").await?;
    assert_eq!(st, 200);
    let entry = list.as_array().unwrap().iter().find(|c| c["case_no"] == case_no.as_str()).expect("listed");
    assert_eq!(entry["outcome"]["outcome"], "done");
    let path = format!("/api/cases/{case_no}/signoff");
    assert_error(&window_api.post(&path, json!({"decision": "approve"})).await?, 403, "forbidden");
    assert_error(&window_api.get("/api/signoffs").await?, 403, "forbidden");
    assert_error(&chief_api.post(&path, json!({"decision": "maybe"})).await?, 400, "bad_request");

    // 二核: approved. Now the village sees the result, in its inbox as well.
    let (st, signed) = chief_api.post(&path, json!({"decision": "approve"})).await?;
    assert_eq!(st, 200, "{signed}");
    assert_eq!(signed["status"], "done");
    assert_eq!(signed["outcome"]["signoff"]["decision"], "approved");
    assert_error(&chief_api.post(&path, json!({"decision": "approve"})).await?, 409, "conflict");
    let out = kiosk.expect_where("outcome", |m| m["status"] == "done").await?;
    assert_eq!(out["outcome"], "done");
    let item = kiosk.expect("inbox.item").await?;
    assert_eq!(item["item"]["case_no"], case_no.as_str());
    let (st, inbox) = kiosk_api.get("/api/inbox?unread=true").await?;
    assert_eq!(st, 200);
    let entry = &inbox[0];
    assert_eq!((entry["case_no"].as_str(), entry["outcome"].as_str()), (Some(case_no.as_str()), Some("done")));
    let (st, _, bytes) = kiosk_api.get_bytes(entry["result"]["url"].as_str().unwrap()).await?;
    assert_eq!((st, bytes == result), (200, true));
    let id = entry["id"].as_i64().unwrap();
    assert_eq!(kiosk_api.post(&format!("/api/inbox/{id}/read"), json!({})).await?.0, 204);
    let (_, inbox) = kiosk_api.get("/api/inbox?unread=true").await?;
    assert!(inbox.as_array().unwrap().is_empty());
    let (_, p) = progress(&server, &case_no, "4321").await?;
    assert_eq!(p["status"], "done");
    let (_, list) = chief_api.get("/api/signoffs").await?;
    assert!(list.as_array().unwrap().iter().all(|c| c["case_no"] != case_no.as_str()));
    Ok(())
}

#[tokio::test]
async fn signoff_sent_back_then_decided_again() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, true).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let chief_api = Api::new(&server, &s.chief.token);
    let (mut kiosk, mut window, call_id, case_no) = live_case(&server, &s).await?;
    let outcome_path = format!("/api/cases/{case_no}/outcome");
    let (st, _) = window_api.post(&outcome_path, json!({"outcome": "refused", "note": "不符合申请条件"})).await?;
    assert_eq!(st, 200);
    hang_up(&mut kiosk, &mut window, call_id).await?;

    let path = format!("/api/cases/{case_no}/signoff");
    assert_error(&chief_api.post(&path, json!({"decision": "return"})).await?, 400, "bad_request");
    let (st, back) = chief_api.post(&path, json!({"decision": "return", "reason": "请核实家庭收入材料"})).await?;
    assert_eq!(st, 200, "{back}");
    assert_eq!(back["status"], "returned");
    let returned = window.expect("signoff.returned").await?;
    assert_eq!(
        (returned["case_no"].as_str(), returned["reason"].as_str()),
        (Some(case_no.as_str()), Some("请核实家庭收入材料"))
    );
    // The village still only sees "being reviewed".
    let (_, view) = kiosk_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(view["status"], "reviewing");
    assert!(!view.to_string().contains("请核实"));

    // The approver decides again (no call needed for a returned case) and the chief approves.
    let (st, again) = window_api.post(&outcome_path, json!({"outcome": "refused", "note": "已核实,收入超标"})).await?;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["status"], "signoff");
    let (st, done) = chief_api.post(&path, json!({"decision": "approve"})).await?;
    assert_eq!((st, done["status"].as_str()), (200, Some("refused")));
    let out = kiosk.expect_where("outcome", |m| m["status"] == "refused").await?;
    assert_eq!((out["outcome"].as_str(), out["note"].as_str()), (Some("refused"), Some("已核实,收入超标")));
    let kinds: Vec<String> =
        done["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    for k in ["outcome.decided", "signoff.returned", "signoff.approved", "outcome.final"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    Ok(())
}

#[tokio::test]
async fn supplement_resumes_the_case_on_a_second_call() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let (mut kiosk, mut window, call_id, case_no) = live_case(&server, &s).await?;
    let missing = s.matter["required_papers"][1].as_str().unwrap().to_string();

    // 现场开单: what to bring; the case stays open for the supplement.
    let outcome_path = format!("/api/cases/{case_no}/outcome");
    let (st, d) = window_api
        .post(
            &outcome_path,
            json!({"outcome": "missing", "note": "请补充材料", "missing_items": [missing, "村委会证明"]}),
        )
        .await?;
    assert_eq!((st, d["status"].as_str()), (200, Some("missing")), "{d}");
    let out = kiosk.expect("outcome").await?;
    assert_eq!((out["status"].as_str(), out["outcome"].as_str()), (Some("missing"), Some("missing")));
    assert_eq!(out["missing_items"], json!([missing, "村委会证明"]));
    hang_up(&mut kiosk, &mut window, call_id).await?;
    let (_, p) = progress(&server, &case_no, "4321").await?;
    assert_eq!(p["status"], "missing");

    // The villager comes back with the paper: scanned onto the same case, then a new call.
    kiosk_api.upload(&case_no, "补充材料.pdf", &pdf(30_000), Some(&missing), "scan", 1 << 20).await?;
    // Another village's kiosk cannot call on this case.
    let kiosks = demo_kiosks(&server).await?;
    let other =
        kiosks.iter().find(|k| k.village_id() != s.kiosk.village_id() && k.town_id() == s.kiosk.town_id()).unwrap();
    let mut other_ws = WsClient::connect(&server, &other.token).await?;
    let err = other_ws
        .request(
            json!({"type": "call.request", "matter_id": s.matter_id, "case_no": case_no}),
            5,
            cunneng_tests::client::STEP,
        )
        .await?
        .expect("an error");
    assert!(
        err["code"] == "forbidden",
        "call.request with another village's case_no must be forbidden; got {err}. If the code is \
         bad_message the engine hook (cases::resolve_case_for_request) is not wired yet"
    );

    let (mut kiosk, mut window, call2) = call(&server, &s, Some(&case_no)).await?;
    let started = answer_call(&mut kiosk, &mut window, call2).await?;
    assert_eq!(started["case_no"], case_no.as_str(), "the second call carries the same case");
    let (_, view) = window_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(view["status"], "open");
    assert_eq!(view["papers"].as_array().unwrap().len(), 2, "everything so far is on the case");
    assert_eq!(view["calls"].as_array().unwrap().len(), 2);
    assert!(view["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "case.resumed"));

    let rp = window_api.upload(&case_no, "证明.pdf", &pdf(9_000), None, "result", 1 << 20).await?;
    let (st, d) = window_api
        .post(&outcome_path, json!({"outcome": "done", "note": "材料已补齐", "result_paper_id": rp["id"]}))
        .await?;
    assert_eq!((st, d["status"].as_str()), (200, Some("done")), "{d}");
    kiosk.expect_where("outcome", |m| m["status"] == "done").await?;
    // A closed case cannot be called on again.
    hang_up(&mut kiosk, &mut window, call2).await?;
    let err = kiosk
        .request(
            json!({"type": "call.request", "matter_id": s.matter_id, "case_no": case_no}),
            9,
            cunneng_tests::client::STEP,
        )
        .await?
        .expect("an error");
    assert_eq!(err["code"], "conflict");
    Ok(())
}
