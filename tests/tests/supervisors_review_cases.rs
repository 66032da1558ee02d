//! 可查可追溯 for supervisors: a county supervisor finds cases by number, villager and status,
//! page by page with the total; a supervisor of one town and a town's chief see only their
//! town; approvers see nothing of the review; every search and opening is an access the case
//! page and the report show; a legal hold keeps its history; an exported case verifies
//! offline and fails once a byte is changed.

use std::process::Command;

use cunneng_tests::cases::{Api, answer_call, assert_error, call, hang_up, pdf, setup};
use cunneng_tests::client::{demo_kiosks, demo_staff, login, login_as};
use cunneng_tests::server::{Server, binary_path};
use serde_json::{Value, json};

/// A live call on a new case of kiosk `nth`, its villager entered and a scan added; hung up.
async fn handled_case(server: &Server, nth: usize, name: &str, phone: &str) -> anyhow::Result<String> {
    let s = setup(server, nth, false).await?;
    let kiosk_api = Api::new(server, &s.kiosk.token);
    let (mut kiosk, mut window, call_id) = call(server, &s, None).await?;
    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    let case_no = started["case_no"].as_str().unwrap().to_string();
    let (st, _) =
        kiosk_api.put(&format!("/api/cases/{case_no}/villager"), json!({"name": name, "phone": phone})).await?;
    assert_eq!(st, 200);
    kiosk_api.upload(&case_no, "申请表.pdf", &pdf(6_000), None, "scan", 1 << 20).await?;
    hang_up(&mut kiosk, &mut window, call_id).await?;
    Ok(case_no)
}

fn numbers(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|r| r["case_no"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn supervisors_search_open_hold_and_export_cases_in_their_scope() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let kiosks = demo_kiosks(&server).await?;
    let first_town = kiosks[0].town_id();
    let other = kiosks.iter().position(|k| k.town_id() != first_town).expect("a kiosk of another town");
    let a = handled_case(&server, 0, "吴秀英", "13900005678").await?;
    let b = handled_case(&server, 0, "郑国强", "13900004321").await?;
    let c = handled_case(&server, other, "王小红", "13700001111").await?;

    let sup = Api::new(&server, &login_as(&server, "supervisor").await?);
    // By number, by the villager's last four phone digits, by full name.
    let (st, page) = sup.get(&format!("/api/review/cases?case_no={a}")).await?;
    assert_eq!((st, numbers(&page)), (200, vec![a.clone()]), "{page}");
    let (_, page) = sup.get("/api/review/cases?villager=4321").await?;
    assert_eq!(numbers(&page), vec![b.clone()]);
    let (_, page) = sup.get(&format!("/api/review/cases?villager={}", "王小红")).await?;
    assert_eq!(numbers(&page), vec![c.clone()]);
    // Names are shown masked; a part of a name finds nothing.
    assert_eq!(page["items"][0]["villager"], "王**");
    let (_, page) = sup.get(&format!("/api/review/cases?villager={}", "小红")).await?;
    assert_eq!(page["total"], 0);
    // Every case, a page at a time, with the total.
    let (_, first) = sup.get("/api/review/cases?limit=2").await?;
    assert_eq!((first["total"].as_u64(), numbers(&first).len()), (Some(3), 2));
    let cursor = first["next_cursor"].as_str().expect("a next page").to_string();
    let (_, second) = sup.get(&format!("/api/review/cases?limit=2&cursor={cursor}")).await?;
    assert_eq!(numbers(&second), vec![a.clone()]);
    assert!(second["next_cursor"].is_null());
    let (_, open) = sup.get("/api/review/cases?status=open").await?;
    assert_eq!(open["total"], 3);
    assert_error(&sup.get("/api/review/cases?status=asleep").await?, 400, "bad_request");
    assert_error(&sup.get("/api/review/cases?limit=x").await?, 400, "bad_request");

    // The case page: masked villager, papers, timeline; the opening is recorded.
    let (st, r) = sup.get(&format!("/api/review/cases/{a}")).await?;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["case"]["villager"]["name"], "吴**");
    assert_eq!(r["case"]["villager"]["phone"], "139****5678");
    assert!(!r.to_string().contains("吴秀英") && !r.to_string().contains("13900005678"));
    assert_eq!(r["case"]["papers"].as_array().unwrap().len(), 1);
    assert!(r["case"]["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "paper.added"));
    let (_, r) = sup.get(&format!("/api/review/cases/{a}")).await?;
    let openings = r["access"].as_array().unwrap().iter().filter(|e| e["action"] == "case.opened").count();
    assert_eq!(openings, 1, "opening twice in ten minutes is one viewing: {}", r["access"]);

    // A supervisor of one town, a town's chief: their town only. Approvers: nothing.
    let town = kiosks[0].me["town"]["name"].as_str().unwrap().to_string();
    let file = server.data_dir().join("town-supervisor.toml");
    std::fs::write(
        &file,
        format!(
            "[[accounts]]\nusername = \"town-sup\"\ndisplay_name = \"镇纪委\"\nrole = \"supervisor\"\n\
             town = \"{town}\"\npassword = \"town-sup-pw-1\"\n"
        ),
    )?;
    let out = Command::new(binary_path())
        .args(["import", file.to_str().unwrap(), "--data-dir", server.data_dir().to_str().unwrap()])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let town_sup = Api::new(&server, &login(&server, "town-sup", "town-sup-pw-1").await?);
    let (_, page) = town_sup.get("/api/review/cases").await?;
    let mut mine = numbers(&page);
    mine.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(mine, want);
    assert_error(&town_sup.get(&format!("/api/review/cases/{c}")).await?, 403, "forbidden");
    assert_error(&town_sup.get(&format!("/api/review/cases/{c}/export")).await?, 403, "forbidden");
    let chiefs = demo_staff(&server, "chief").await?;
    let chief = chiefs.iter().find(|x| x.town_id() == first_town).unwrap();
    let chief_api = Api::new(&server, &chief.token);
    assert_eq!(chief_api.get(&format!("/api/review/cases/{a}")).await?.0, 200);
    assert_error(&chief_api.get(&format!("/api/review/cases/{c}")).await?, 403, "forbidden");
    let approver = &demo_staff(&server, "window").await?[0];
    let approver_api = Api::new(&server, &approver.token);
    assert_error(&approver_api.get("/api/review/cases").await?, 403, "forbidden");
    assert_error(&approver_api.get(&format!("/api/review/cases/{a}")).await?, 403, "forbidden");
    assert_error(&Api::new(&server, &kiosks[0].token).get("/api/review/access").await?, 403, "forbidden");
    assert_error(&Api::anonymous(&server).get("/api/review/cases").await?, 401, "unauthorized");

    // The report: who looked at what, including the searches (a name only masked).
    let (st, report) = sup.get("/api/review/access").await?;
    assert_eq!(st, 200);
    let entries = report.as_array().unwrap();
    assert!(entries.iter().any(|e| e["action"] == "cases.searched" && e["detail"]["villager_name"] == "王**"));
    assert!(!report.to_string().contains("王小红"));
    let (_, town_report) = town_sup.get("/api/review/access").await?;
    assert!(town_report.as_array().unwrap().iter().all(|e| e["case_no"] != c.as_str()));

    // A legal hold, placed and lifted with reasons: both stay in its history.
    let hold = format!("/api/cases/{a}/legal-hold");
    assert_error(&sup.put(&hold, json!({"reason": ""})).await?, 400, "bad_request");
    let (st, h) = sup.put(&hold, json!({"reason": "群众投诉"})).await?;
    assert_eq!((st, h["hold"]["reason"].as_str()), (200, Some("群众投诉")), "{h}");
    assert_error(&town_sup.put(&format!("/api/cases/{c}/legal-hold"), json!({"reason": "x"})).await?, 403, "forbidden");
    let (_, page) = sup.get("/api/review/cases?legal_hold=true").await?;
    assert_eq!(numbers(&page), vec![a.clone()]);
    let lift = sup.delete_with(&hold, json!({"reason": "调查结束"})).await?;
    assert_eq!(lift.0, 204, "{}", lift.1);
    let (_, r) = sup.get(&format!("/api/review/cases/{a}")).await?;
    assert!(r["hold"]["current"].is_null());
    let history: Vec<&str> =
        r["hold"]["history"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(history, ["placed", "lifted"]);

    // Export: one file that verifies offline, and fails once a byte is changed.
    let (st, ct, tar) = sup.get_bytes(&format!("/api/review/cases/{a}/export")).await?;
    assert_eq!((st, ct.as_str()), (200, "application/x-tar"));
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("case.tar");
    std::fs::write(&good, &tar)?;
    let verify = |path: &std::path::Path| {
        Command::new(binary_path()).args(["audit", "verify-bundle", path.to_str().unwrap()]).output().unwrap()
    };
    let out = verify(&good);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut bad = tar.clone();
    let at = bad.windows(5).position(|w| w == b"%PDF-").expect("the paper is in the bundle") + 20;
    bad[at] ^= 0x01;
    let damaged = dir.path().join("damaged.tar");
    std::fs::write(&damaged, &bad)?;
    let out = verify(&damaged);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the manifest"));
    let (_, r) = sup.get(&format!("/api/review/cases/{a}")).await?;
    assert!(r["access"].as_array().unwrap().iter().any(|e| e["action"] == "case.exported"));
    Ok(())
}
