//! The server's rules that keep a working day free of dead ends (issue 15): no decision
//! without the villager (and the kiosk is asked in the call), undecided calls listed from the
//! server, every outcome decided after the call in the village inbox, the kiosk's prepared
//! case kept across a reload, `queue.position` saying whether anyone staffs the window, the
//! kiosk's own progress limit, the ranked matter search, Chinese-only messages with an
//! English `detail`.

use cunneng_tests::cases::{Api, answer_call, assert_error, call, hang_up, setup};
use cunneng_tests::client::{WsClient, demo_staff};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

#[tokio::test]
async fn no_decision_without_the_villager_and_the_kiosk_is_asked() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let (mut kiosk, mut window, call_id) = call(&server, &s, None).await?;
    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    let case_no = started["case_no"].as_str().unwrap().to_string();
    let outcome = format!("/api/cases/{case_no}/outcome");

    // Every outcome is refused while the villager is missing; nothing changes.
    for body in [
        json!({"outcome": "later", "note": "已受理"}),
        json!({"outcome": "missing", "missing_items": ["户口本"]}),
        json!({"outcome": "refused", "note": "不符合条件"}),
    ] {
        let a = window_api.post(&outcome, body).await?;
        assert_error(&a, 409, "villager_required");
        // People read Chinese only; developers get the English detail.
        let message = a.1["error"]["message"].as_str().unwrap();
        assert!(has_cjk(message) && !message.contains("(the"), "{message}");
        assert!(a.1["error"]["detail"].as_str().is_some_and(|d| !has_cjk(d) && d.contains("villager")), "{}", a.1);
    }
    // The kiosk is asked for the villager during the call.
    let asked = kiosk.expect("villager.requested").await?;
    assert_eq!(asked["case_no"], case_no.as_str());
    let (_, case) = window_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!((case["status"].as_str(), &case["outcome"]), (Some("open"), &Value::Null));

    // Entered: the approver is told to read the case again, and may decide.
    let (st, _) = kiosk_api
        .put(&format!("/api/cases/{case_no}/villager"), json!({"name": "刘大姐", "phone": "13900007777"}))
        .await?;
    assert_eq!(st, 200);
    let updated = window.expect("case.updated").await?;
    assert_eq!(updated["case_no"], case_no.as_str());
    let (st, d) = window_api.post(&outcome, json!({"outcome": "later", "note": "已受理"})).await?;
    assert_eq!((st, d["status"].as_str()), (200, Some("later")), "{d}");
    hang_up(&mut kiosk, &mut window, call_id).await?;

    // Errors on the socket are split the same way.
    let err =
        kiosk.request(json!({"type": "call.request", "matter_id": 999_999}), 9, cunneng_tests::client::STEP).await?;
    let err = err.expect("an error");
    assert!(err["message"].as_str().is_some_and(|m| !m.contains(" (")), "{err}");
    Ok(())
}

#[tokio::test]
async fn undecided_calls_come_from_the_server_and_later_decisions_reach_the_inbox() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let chief_api = Api::new(&server, &s.chief.token);
    let (mut kiosk, mut window, call_id) = call(&server, &s, None).await?;
    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    let case_no = started["case_no"].as_str().unwrap().to_string();
    let (st, _) = kiosk_api
        .put(&format!("/api/cases/{case_no}/villager"), json!({"name": "陈二叔", "phone": "13700001212"}))
        .await?;
    assert_eq!(st, 200);

    // While the call is live it is not undecided.
    let (st, list) = window_api.get("/api/cases/undecided").await?;
    assert_eq!(st, 200);
    assert!(list.as_array().unwrap().iter().all(|c| c["case_no"] != case_no.as_str()), "{list}");
    hang_up(&mut kiosk, &mut window, call_id).await?;

    // Ended without a decision: on the approver's list (a reload does not lose it), on the
    // chief's, not on another approver's.
    let (_, list) = window_api.get("/api/cases/undecided").await?;
    assert!(list.as_array().unwrap().iter().any(|c| c["case_no"] == case_no.as_str()), "{list}");
    let (_, list) = chief_api.get("/api/cases/undecided").await?;
    assert!(list.as_array().unwrap().iter().any(|c| c["case_no"] == case_no.as_str()), "{list}");
    for other in demo_staff(&server, "window").await? {
        if other.id() == s.approver.id() {
            continue;
        }
        let (_, list) = Api::new(&server, &other.token).get("/api/cases/undecided").await?;
        assert!(list.as_array().unwrap().iter().all(|c| c["case_no"] != case_no.as_str()), "{list}");
    }

    // 现场开单 decided after the call: the kiosk gets it in its inbox, with what to bring.
    let (st, d) = window_api
        .post(
            &format!("/api/cases/{case_no}/outcome"),
            json!({"outcome": "missing", "note": "请补充", "missing_items": ["户口本", "村委会证明"]}),
        )
        .await?;
    assert_eq!((st, d["status"].as_str()), (200, Some("missing")), "{d}");
    let item = kiosk.expect("inbox.item").await?;
    assert_eq!(item["item"]["case_no"], case_no.as_str());
    assert_eq!(item["item"]["outcome"], "missing");
    assert_eq!(item["item"]["missing_items"], json!(["户口本", "村委会证明"]));
    let (_, inbox) = kiosk_api.get("/api/inbox").await?;
    assert_eq!((inbox[0]["case_no"].as_str(), inbox[0]["status"].as_str()), (Some(case_no.as_str()), Some("missing")));
    // Decided: no longer undecided.
    let (_, list) = window_api.get("/api/cases/undecided").await?;
    assert!(list.as_array().unwrap().iter().all(|c| c["case_no"] != case_no.as_str()), "{list}");
    Ok(())
}

#[tokio::test]
async fn the_kiosk_comes_back_to_the_case_it_prepares() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    assert_error(&kiosk_api.get("/api/cases/current").await?, 404, "not_found");
    let (st, case) = kiosk_api
        .post("/api/cases", json!({"matter_id": s.matter_id, "villager": {"name": "赵叔", "phone": "13800005678"}}))
        .await?;
    assert_eq!(st, 201, "{case}");
    // A reload (or a power cut) finds it again: matter, villager, papers.
    let (st, current) = kiosk_api.get("/api/cases/current").await?;
    assert_eq!(st, 200, "{current}");
    assert_eq!(current["case_no"], case["case_no"]);
    assert_eq!(current["villager"]["name"], "赵叔");
    assert_eq!(current["matter"]["id"], s.matter_id);
    Ok(())
}

#[tokio::test]
async fn the_queue_says_whether_anyone_staffs_the_window() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let mut kiosk = WsClient::connect(&server, &s.kiosk.token).await?;
    let err = kiosk
        .request(json!({"type": "call.request", "matter_id": s.matter_id}), 1, cunneng_tests::client::STEP)
        .await?;
    assert!(err.is_none(), "{err:?}");
    let pos = kiosk.expect("queue.position").await?;
    assert_eq!(pos["staffed"], false, "nobody is at the window: {pos}");
    let mut window = WsClient::connect(&server, &s.approver.token).await?;
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    let pos = kiosk.expect_where("queue.position", |m| m["staffed"] == true).await?;
    assert_eq!(pos["position"], 1);
    Ok(())
}

#[tokio::test]
async fn a_kiosk_checking_several_villagers_has_its_own_progress_limit() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    // Ten lookups from the room (the public limit is 5 per address in a burst).
    for i in 0..10 {
        let (st, body) = kiosk_api.get(&format!("/api/progress?case=ZH-20260101-{i:04}&phone4=1234")).await?;
        assert_eq!(st, 404, "lookup {i}: {body}");
    }
    // Anonymous lookups from the same address are still limited by address.
    let public = Api::anonymous(&server);
    let mut limited = false;
    for i in 0..10 {
        let (st, _) = public.get(&format!("/api/progress?case=ZH-20260101-{i:04}&phone4=1234")).await?;
        limited |= st == 429;
    }
    assert!(limited);
    Ok(())
}

#[tokio::test]
async fn the_matter_search_uses_the_keywords_ranked_without_noise() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let names = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|m| m["plain_name"].as_str().unwrap_or_default().to_string()).collect()
    };
    let (_, all) = kiosk_api.get("/api/matters").await?;
    let total = all.as_array().unwrap().len();
    for q in ["宅基地", "五保", "80岁", "交钱", "住院", "补卡"] {
        let (st, found) = kiosk_api.get(&format!("/api/matters?q={}", urlencode(q))).await?;
        assert_eq!(st, 200);
        let found = names(&found);
        assert!(!found.is_empty() && found.len() < total, "{q}: {found:?}");
        // A keyword of the catalog finds its matter, and no loose character noise comes first.
        assert!(found.len() <= 2, "{q}: {found:?}");
    }
    let (_, found) = kiosk_api.get(&format!("/api/matters?q={}", urlencode("补卡"))).await?;
    assert!(names(&found).iter().all(|n| !n.contains("种粮")), "{found}");
    let (_, found) = kiosk_api.get(&format!("/api/matters?q={}", urlencode("修房子"))).await?;
    let found = names(&found);
    assert!(found.len() >= 2, "{found:?}");
    assert!(found[0].contains("修房子"), "the best match first: {found:?}");
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
