//! A full case (docs/cases-api.md): the kiosk enters the villager and uploads a paper while its
//! call waits, another during the call (pushed to the approver as `paper.added`); the approver
//! asks for a re-scan and decides 当场办结 with a result document that the kiosk fetches; the
//! villager rates the call. And a kiosk of another village is refused on the case.

use cunneng_tests::cases::{Api, answer_call, assert_error, call, hang_up, jpeg, object_files, pdf, png, setup};
use cunneng_tests::client::{demo_kiosks, demo_staff};
use cunneng_tests::server::Server;
use serde_json::json;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn full_case_done_on_the_spot() -> anyhow::Result<()> {
    full_case(&Server::start_demo().await?).await
}

/// The same case with the papers in a real S3 server (Garage) behind the spool.
#[tokio::test]
async fn full_case_done_on_the_spot_with_papers_in_s3() -> anyhow::Result<()> {
    let garage = cunneng_tests::garage::Garage::start().await?;
    let env = garage.server_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with_env(&["--demo"], &env).await?;
    full_case(&server).await?;
    assert!(!server.data_dir().join("objects").exists(), "nothing went to the local store");
    Ok(())
}

async fn full_case(server: &Server) -> anyhow::Result<()> {
    let s = setup(server, 0, false).await?;
    let kiosk_api = Api::new(server, &s.kiosk.token);
    let window_api = Api::new(server, &s.approver.token);
    let (mut kiosk, mut window, call_id) = call(server, &s, None).await?;

    // While the call waits: the case, the villager, a first paper in chunks.
    let (st, case) = kiosk_api.get("/api/cases/current").await?;
    assert_eq!(st, 200, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    assert_eq!(case["status"], "open");
    let item = s.matter["required_papers"][0].as_str().unwrap().to_string();
    let (st, case) = kiosk_api
        .put(
            &format!("/api/cases/{case_no}/villager"),
            json!({"name": "张大爷", "phone": "138 0000 1234", "id_number": "11010519491231002X"}),
        )
        .await?;
    assert_eq!(st, 200, "{case}");
    assert_eq!(case["villager"]["id_number_masked"], "1101**********002X");
    assert!(!case.to_string().contains("19491231"), "the ID number is never shown whole");
    let a = kiosk_api.put(&format!("/api/cases/{case_no}/villager"), json!({"name": "张大爷", "phone": "12"})).await?;
    assert_error(&a, 400, "bad_villager");
    let first = pdf(300_000);
    let paper1 = kiosk_api.upload(&case_no, "身份证.pdf", &first, Some(&item), "scan", 128 * 1024).await?;
    assert_eq!(paper1["content_type"], "application/pdf");
    assert_eq!(paper1["size"], 300_000);
    assert_eq!(paper1["checklist_item"], item.as_str());

    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    assert_eq!(started["case_no"], case_no.as_str());

    // During the call: a still from the document camera appears on the window at once.
    let still = jpeg(50_000);
    let paper2 = kiosk_api.upload(&case_no, "户口簿.jpg", &still, None, "scan", 1 << 20).await?;
    let added = window.expect("paper.added").await?;
    assert_eq!(added["case_no"], case_no.as_str());
    assert_eq!(added["paper"]["id"], paper2["id"]);
    assert_eq!(added["paper"]["content_type"], "image/jpeg");

    // The approver sees both papers, decrypted on the fly, and the checklist.
    let (st, view) = window_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(st, 200, "{view}");
    assert_eq!(view["papers"].as_array().unwrap().len(), 2);
    assert_eq!(view["checklist"][0]["item"], item.as_str());
    assert_eq!(view["checklist"][0]["paper_ids"], json!([paper1["id"]]));
    assert_eq!(view["villager"]["phone"], "13800001234");
    let (st, ct, bytes) = window_api.get_bytes(paper1["url"].as_str().unwrap()).await?;
    assert_eq!((st, ct.as_str()), (200, "application/pdf"));
    assert_eq!(bytes, first);
    // Kept encrypted: no stored object holds the plaintext; no upload chunk is left over.
    let files = object_files(server);
    assert!(!files.is_empty() || !server.data_dir().join("objects").exists());
    for f in &files {
        let data = std::fs::read(f)?;
        assert!(!contains(&data, &first[100..164]) && !contains(&data, &still[100..164]), "{f:?} holds plaintext");
        assert!(!f.to_string_lossy().contains("/uploads/"), "{f:?} left over");
    }

    // A re-scan request reaches the kiosk.
    let (st, _) = window_api
        .post(
            &format!("/api/cases/{case_no}/rescan"),
            json!({"paper_id": paper2["id"], "note": "户口簿不清楚,请重新拍"}),
        )
        .await?;
    assert_eq!(st, 204);
    let rescan = kiosk.expect("paper.rescan_requested").await?;
    assert_eq!((rescan["case_no"].as_str(), &rescan["paper_id"]), (Some(case_no.as_str()), &paper2["id"]));

    // 当场办结 needs the result document; the kiosk neither uploads results nor decides.
    let outcome_path = format!("/api/cases/{case_no}/outcome");
    let a = window_api.post(&outcome_path, json!({"outcome": "done", "note": "材料齐全,当场办结"})).await?;
    assert_error(&a, 400, "bad_request");
    let a = kiosk_api.start_upload(&case_no, json!({"name": "x.pdf", "size": 100, "kind": "result"})).await?;
    assert_error(&a, 403, "forbidden");
    let a = kiosk_api.post(&outcome_path, json!({"outcome": "done", "note": "x"})).await?;
    assert_error(&a, 403, "forbidden");
    let result = png(20_000);
    let rp = window_api.upload(&case_no, "登记证明.png", &result, None, "result", 1 << 20).await?;
    let result_url = rp["url"].as_str().unwrap().to_string();
    // Before the decision the kiosk cannot fetch it.
    assert_eq!(kiosk_api.get_bytes(&result_url).await?.0, 404);
    let (st, decided) = window_api
        .post(&outcome_path, json!({"outcome": "done", "note": "材料齐全,当场办结", "result_paper_id": rp["id"]}))
        .await?;
    assert_eq!(st, 200, "{decided}");
    assert_eq!(decided["status"], "done");
    assert_eq!(decided["outcome"]["final"], true);

    // 回传到村: the kiosk is told and prints the result.
    let out = kiosk.expect("outcome").await?;
    assert_eq!((out["case_no"].as_str(), out["status"].as_str()), (Some(case_no.as_str()), Some("done")));
    assert_eq!(out["outcome"], "done");
    assert_eq!(out["result"]["url"], result_url.as_str());
    let (st, ct, bytes) = kiosk_api.get_bytes(&result_url).await?;
    assert_eq!((st, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, result);

    // Closed: no more papers, no second decision.
    let a = kiosk_api.start_upload(&case_no, json!({"name": "y.pdf", "size": 100})).await?;
    assert_error(&a, 409, "case_closed");
    let a =
        window_api.post(&outcome_path, json!({"outcome": "refused", "note": "x", "result_paper_id": rp["id"]})).await?;
    assert_error(&a, 409, "case_closed");

    // 好差评: once per call, at the kiosk.
    hang_up(&mut kiosk, &mut window, call_id).await?;
    let rating_path = format!("/api/cases/{case_no}/rating");
    let a = window_api.post(&rating_path, json!({"rating": "good"})).await?;
    assert_error(&a, 403, "forbidden");
    let a = kiosk_api.post(&rating_path, json!({"rating": "great"})).await?;
    assert_error(&a, 400, "bad_request");
    let (st, r) = kiosk_api.post(&rating_path, json!({"rating": "good", "comment": "不用跑镇上了"})).await?;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["rating"], "good");
    let a = kiosk_api.post(&rating_path, json!({"rating": "bad"})).await?;
    assert_error(&a, 409, "already_rated");

    // The village's view: status, rating, a timeline without internal events; the town's
    // timeline also says who looked at which paper.
    let (_, view) = kiosk_api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(view["status"], "done");
    assert_eq!(view["rating"]["rating"], "good");
    assert_eq!(view["progress_path"], format!("/progress?case={case_no}"));
    let kinds = |v: &serde_json::Value| -> Vec<String> {
        v["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
    };
    let village_kinds = kinds(&view);
    for k in [
        "case.opened",
        "villager.set",
        "call.requested",
        "call.answered",
        "paper.added",
        "rescan.requested",
        "outcome.decided",
        "call.ended",
        "rating.given",
    ] {
        assert!(village_kinds.iter().any(|x| x == k), "{k} missing from {village_kinds:?}");
    }
    assert!(!village_kinds.iter().any(|x| x == "paper.viewed"));
    let (_, staff_view) = window_api.get(&format!("/api/cases/{case_no}")).await?;
    assert!(kinds(&staff_view).iter().any(|x| x == "paper.viewed"));
    let (st, receipt) = kiosk_api.get(&format!("/api/cases/{case_no}/receipt")).await?;
    assert_eq!(st, 200);
    let code = receipt["lookup_code"].as_str().unwrap();
    assert!(receipt["progress_url"].as_str().unwrap().ends_with(&format!("/progress?case={case_no}&code={code}")));
    // Its QR code comes drawn by the server: an SVG of that address.
    let qr = receipt["progress_qr_svg"].as_str().unwrap_or_default();
    assert!(qr.starts_with("<svg ") && qr.contains("<path") && qr.ends_with("</svg>"), "{receipt}");

    // Who else may look: the supervisor yes (read only), a dispatcher no.
    let supervisor = demo_staff(server, "supervisor").await?;
    let sup = Api::new(server, &supervisor[0].token);
    assert_eq!(sup.get(&format!("/api/cases/{case_no}")).await?.0, 200);
    assert_eq!(sup.get_bytes(&result_url).await?.0, 200);
    assert_error(&sup.post(&outcome_path, json!({"outcome": "done", "note": "x"})).await?, 403, "forbidden");
    let dispatcher = demo_staff(server, "dispatcher").await?;
    let a = Api::new(server, &dispatcher[0].token).get(&format!("/api/cases/{case_no}")).await?;
    assert_error(&a, 403, "forbidden");
    // The logs never carry the villager's details.
    let log = server.log();
    assert!(!log.contains("张大爷") && !log.contains("13800001234") && !log.contains("11010519491231002X"));
    Ok(())
}

#[tokio::test]
async fn kiosk_of_another_village_is_refused() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let a_api = Api::new(&server, &s.kiosk.token);
    let kiosks = demo_kiosks(&server).await?;
    let b = kiosks.iter().find(|k| k.village_id() != s.kiosk.village_id() && k.town_id() == s.kiosk.town_id()).unwrap();
    let b_api = Api::new(&server, &b.token);

    // Village A opens a case ahead of its call and starts a paper.
    let (st, case) = a_api
        .post("/api/cases", json!({"matter_id": s.matter_id, "villager": {"name": "李婶", "phone": "13912345678"}}))
        .await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let paper = a_api.upload(&case_no, "a.pdf", &pdf(5000), None, "scan", 1 << 20).await?;
    let (st, started) = a_api.start_upload(&case_no, json!({"name": "b.pdf", "size": 5000})).await?;
    assert_eq!(st, 201);
    let url = started["url"].as_str().unwrap().to_string();
    let before = object_files(&server);

    // Village B's kiosk gets nowhere near it.
    let base = format!("/api/cases/{case_no}");
    assert_error(&b_api.get(&base).await?, 403, "forbidden");
    assert_error(&b_api.start_upload(&case_no, json!({"name": "c.pdf", "size": 5000})).await?, 403, "forbidden");
    let a = b_api.put_bytes(&format!("{url}?offset=0"), pdf(5000), "application/pdf").await?;
    assert_error(&a, 403, "forbidden");
    assert_error(&b_api.get(&url).await?, 403, "forbidden");
    assert_error(&b_api.delete(&url).await?, 403, "forbidden");
    assert_eq!(b_api.get_bytes(paper["url"].as_str().unwrap()).await?.0, 403);
    assert_error(
        &b_api.put(&format!("{base}/villager"), json!({"name": "x", "phone": "13900000000"})).await?,
        403,
        "forbidden",
    );
    assert_error(&b_api.post(&format!("{base}/rating"), json!({"rating": "bad"})).await?, 403, "forbidden");
    // Nor does an approver of another town.
    let approvers = demo_staff(&server, "window").await?;
    let other = approvers.iter().find(|x| x.town_id() != s.kiosk.town_id()).unwrap();
    assert_error(&Api::new(&server, &other.token).get(&base).await?, 403, "forbidden");
    // B's case list does not show it; an unknown case is 404.
    let (_, list) = b_api.get("/api/cases").await?;
    assert!(list.as_array().unwrap().iter().all(|c| c["case_no"] != case_no.as_str()));
    assert_error(&b_api.get("/api/cases/ZH-19990101-0001").await?, 404, "not_found");

    assert_eq!(object_files(&server), before, "refused requests stored nothing");
    // A's upload is untouched and still completes.
    let (st, done) = a_api.put_bytes(&format!("{url}?offset=0"), pdf(5000), "application/pdf").await?;
    assert_eq!(st, 201, "{done}");
    let (_, list) = a_api.get("/api/cases").await?;
    assert_eq!(list[0]["case_no"], case_no.as_str());
    Ok(())
}
