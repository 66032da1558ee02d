//! 一审一核 means two people: the sign-off (approve or return) is refused to whoever made the
//! decision it checks, and the refusal changes nothing. Here a window chief finishes a
//! 放心回家 case himself; only another chief of the town may then sign it off.

use cunneng_tests::cases::{Api, answer_call, assert_error, call, hang_up, png, setup};
use cunneng_tests::client::{WsClient, login};
use cunneng_tests::server::{Server, binary_path};
use serde_json::{Value, json};

/// A second chief for the town, added to the running server's database with `cunneng import`.
fn import_second_chief(server: &Server, town: &str) -> anyhow::Result<()> {
    let file = server.data_dir().join("second-chief.toml");
    std::fs::write(
        &file,
        format!(
            "[[accounts]]\nusername = \"second-chief\"\ndisplay_name = \"孙副主任\"\nrole = \"chief\"\n\
             town = \"{town}\"\npassword = \"second-chief-pw\"\n"
        ),
    )?;
    let out = std::process::Command::new(binary_path())
        .args(["import", file.to_str().unwrap(), "--data-dir", server.data_dir().to_str().unwrap()])
        .output()?;
    anyhow::ensure!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

#[tokio::test]
async fn the_chief_who_finished_a_case_cannot_sign_it_off() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, true).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let chief_api = Api::new(&server, &s.chief.token);
    let town = s.chief.me["town"]["name"].as_str().unwrap().to_string();
    import_second_chief(&server, &town)?;
    let second_token = login(&server, "second-chief", "second-chief-pw").await?;
    let second_api = Api::new(&server, &second_token);

    // A call, the villager, and 放心回家: the town finishes it later.
    let (mut kiosk, mut window, call_id) = call(&server, &s, None).await?;
    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    let case_no = started["case_no"].as_str().unwrap().to_string();
    let (st, _) = kiosk_api
        .put(&format!("/api/cases/{case_no}/villager"), json!({"name": "赵大爷", "phone": "13600001111"}))
        .await?;
    assert_eq!(st, 200);
    let (st, d) = window_api
        .post(&format!("/api/cases/{case_no}/outcome"), json!({"outcome": "later", "note": "已受理"}))
        .await?;
    assert_eq!((st, d["status"].as_str()), (200, Some("later")), "{d}");
    hang_up(&mut kiosk, &mut window, call_id).await?;

    // The chief finishes it himself: his decision now waits for a sign-off.
    let rp = chief_api.upload(&case_no, "批复.png", &png(8_000), None, "result", 1 << 20).await?;
    let (st, finished) = chief_api
        .post(&format!("/api/cases/{case_no}/finish"), json!({"note": "已办结", "result_paper_id": rp["id"]}))
        .await?;
    assert_eq!((st, finished["status"].as_str()), (200, Some("signoff")), "{finished}");
    assert_eq!(finished["outcome"]["decided_by"]["id"], s.chief.id());

    // He may neither approve nor return his own decision; nothing changes.
    let path = format!("/api/cases/{case_no}/signoff");
    let (_, before) = chief_api.get(&format!("/api/cases/{case_no}")).await?;
    let a = chief_api.post(&path, json!({"decision": "approve"})).await?;
    assert_error(&a, 403, "same_person");
    let a = chief_api.post(&path, json!({"decision": "return", "reason": "我自己再看看"})).await?;
    assert_error(&a, 403, "same_person");
    let (_, after) = chief_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(after, before, "a refused sign-off changed the case");
    assert_eq!(after["status"], "signoff");
    assert!(after["outcome"]["signoff"].is_null());
    let (_, list) = chief_api.get("/api/signoffs").await?;
    assert!(list.as_array().unwrap().iter().any(|c| c["case_no"] == case_no.as_str()));
    let (_, inbox) = kiosk_api.get("/api/inbox?unread=true").await?;
    assert!(inbox.as_array().unwrap().iter().all(|i| i["case_no"] != case_no.as_str()));
    let (_, p) = cunneng_tests::cases::public_progress(&server, &case_no, "1111").await?;
    assert_eq!(p["status"], "reviewing");

    // The other chief of the town approves it; the village gets the result.
    let mut kiosk = WsClient::connect(&server, &s.kiosk.token).await?;
    let (st, signed) = second_api.post(&path, json!({"decision": "approve"})).await?;
    assert_eq!((st, signed["status"].as_str()), (200, Some("done")), "{signed}");
    assert_eq!(signed["outcome"]["signoff"]["by"]["name"], "孙副主任");
    let item = kiosk.expect("inbox.item").await?;
    assert_eq!(item["item"]["case_no"], case_no.as_str());
    let timeline: Vec<Value> = signed["timeline"].as_array().unwrap().clone();
    let kinds: Vec<&str> = timeline.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.ends_with(&["signoff.approved", "outcome.final"]), "{kinds:?}");
    Ok(())
}
