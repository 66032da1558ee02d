//! For the villager (docs/cases-api.md): progress lookup by case number, the lookup code of
//! the receipt and the last four phone digits (public, rate-limited per address and per case,
//! nothing but status and next step), 放心回家 results
//! arriving in the village inbox, ratings that need a call, and 预约 bookings.

use cunneng_tests::cases::{Api, answer_call, assert_error, call, hang_up, pdf, setup};
use cunneng_tests::client::{demo_kiosks, demo_staff};
use cunneng_tests::server::Server;
use serde_json::json;

const DAY: u64 = 86_400_000;

/// The next day after today (China time) that is Monday to Friday, and the Saturday after it.
fn next_working_date() -> (String, String) {
    let now = time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    let mut d = now.date().next_day().unwrap();
    while matches!(d.weekday(), time::Weekday::Saturday | time::Weekday::Sunday) {
        d = d.next_day().unwrap();
    }
    let mut sat = d;
    while sat.weekday() != time::Weekday::Saturday {
        sat = sat.next_day().unwrap();
    }
    let f = |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
    (f(d), f(sat))
}

#[tokio::test]
async fn progress_lookup_needs_the_right_digits() -> anyhow::Result<()> {
    let server = Server::start_with_env(&["--demo"], &[("CUNNENG_LIMITS__PROGRESS_BURST", "8")]).await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, case) = kiosk
        .post("/api/cases", json!({"matter_id": s.matter_id, "villager": {"name": "赵叔", "phone": "13800005678"}}))
        .await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let (st, bare) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201);
    let bare_no = bare["case_no"].as_str().unwrap().to_string();

    // The receipt carries a random lookup code; its QR link has it.
    let (st, receipt) = kiosk.get(&format!("/api/cases/{case_no}/receipt")).await?;
    assert_eq!(st, 200, "{receipt}");
    let code = receipt["lookup_code"].as_str().unwrap().to_string();
    assert!(code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    assert!(receipt["progress_url"].as_str().unwrap().ends_with(&format!("/progress?case={case_no}&code={code}")));

    let public = Api::anonymous(&server);
    let (st, p) = public.get(&format!("/api/progress?case={case_no}&code={code}&phone4=5678")).await?;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["case_no"], case_no.as_str());
    assert_eq!(p["status"], "open");
    assert!(p["next_step"].as_str().is_some_and(|s| !s.is_empty()));
    let mut keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["case_no", "next_step", "status", "status_text"], "status and next step, nothing else");
    assert!(!p.to_string().contains("赵叔"));

    // The case number and the phone's digits are not enough (sequential numbers, four digits).
    let no_code = public.get(&format!("/api/progress?case={case_no}&phone4=5678")).await?;
    assert_error(&no_code, 404, "not_found");
    let bad_code = public.get(&format!("/api/progress?case={case_no}&code=00000000&phone4=5678")).await?;
    assert_eq!(bad_code, no_code);
    // The village room's own kiosk looks its cases up without the code.
    let (st, _) = kiosk.get(&format!("/api/progress?case={case_no}&phone4=5678")).await?;
    assert_eq!(st, 200);

    // Wrong digits, an unknown case, a case without a phone: the same answer.
    let wrong = public.get(&format!("/api/progress?case={case_no}&code={code}&phone4=1234")).await?;
    let unknown = public.get("/api/progress?case=ZH-19990101-0001&phone4=5678").await?;
    assert_error(&wrong, 404, "not_found");
    assert_eq!(wrong, unknown);
    assert_eq!(no_code, unknown);
    assert_eq!(public.get(&format!("/api/progress?case={bare_no}&phone4=0000")).await?, unknown);
    assert_error(&public.get("/api/progress").await?, 400, "bad_request");

    // Guessing is slowed down: the address soon gets 429.
    let mut limited = false;
    for i in 0..20 {
        let (st, _) = public.get(&format!("/api/progress?case={case_no}&phone4={:04}", i)).await?;
        if st == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "lookups are rate-limited");
    Ok(())
}

#[tokio::test]
async fn later_case_result_arrives_in_the_inbox() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);
    let (mut kiosk, mut window, call_id) = call(&server, &s, None).await?;
    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    let case_no = started["case_no"].as_str().unwrap().to_string();
    let (st, _) = kiosk_api
        .put(&format!("/api/cases/{case_no}/villager"), json!({"name": "孙大爷", "phone": "13500003434"}))
        .await?;
    assert_eq!(st, 200);

    // 放心回家: accepted, the town finishes it later.
    let (st, d) = window_api
        .post(&format!("/api/cases/{case_no}/outcome"), json!({"outcome": "later", "note": "已受理,三个工作日内办结"}))
        .await?;
    assert_eq!((st, d["status"].as_str()), (200, Some("later")), "{d}");
    let out = kiosk.expect("outcome").await?;
    assert_eq!(out["status"], "later");
    hang_up(&mut kiosk, &mut window, call_id).await?;
    let (_, inbox) = kiosk_api.get("/api/inbox").await?;
    assert!(inbox.as_array().unwrap().is_empty());

    // Later the approver finishes it with the result: it arrives in the village's inbox.
    let finish = format!("/api/cases/{case_no}/finish");
    assert_error(&kiosk_api.post(&finish, json!({"note": "x", "result_paper_id": 1})).await?, 403, "forbidden");
    let rp = window_api.upload(&case_no, "结果.pdf", &pdf(12_345), None, "result", 1 << 20).await?;
    let (st, done) = window_api.post(&finish, json!({"note": "已办结", "result_paper_id": rp["id"]})).await?;
    assert_eq!((st, done["status"].as_str()), (200, Some("done")), "{done}");
    let item = kiosk.expect("inbox.item").await?;
    assert_eq!(item["item"]["case_no"], case_no.as_str());
    assert_eq!(item["item"]["outcome"], "done");
    let (_, inbox) = kiosk_api.get("/api/inbox").await?;
    assert_eq!(inbox[0]["case_no"], case_no.as_str());
    let (st, _, bytes) = kiosk_api.get_bytes(inbox[0]["result"]["url"].as_str().unwrap()).await?;
    assert_eq!((st, bytes.len()), (200, 12_345));
    assert_error(&window_api.post(&finish, json!({"note": "x", "result_paper_id": rp["id"]})).await?, 409, "conflict");
    Ok(())
}

#[tokio::test]
async fn ratings_need_an_answered_call() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (_, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    let case_no = case["case_no"].as_str().unwrap();
    let path = format!("/api/cases/{case_no}/rating");
    assert_error(&kiosk.post(&path, json!({"rating": "good"})).await?, 409, "no_call");
    assert_error(&kiosk.post(&path, json!({"rating": "ok"})).await?, 400, "bad_request");
    let a = kiosk.post(&path, json!({"rating": "fair", "comment": "x".repeat(501)})).await?;
    assert_error(&a, 400, "bad_request");
    Ok(())
}

#[tokio::test]
async fn bookings_for_a_window_slot() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let a = Api::new(&server, &s.kiosk.token);
    let kiosks = demo_kiosks(&server).await?;
    let other =
        kiosks.iter().find(|k| k.village_id() != s.kiosk.village_id() && k.town_id() == s.kiosk.town_id()).unwrap();
    let b = Api::new(&server, &other.token);
    let (tomorrow, saturday) = next_working_date();

    // Saturdays and Sundays have no slots.
    let (st, weekend) = a.get(&format!("/api/bookings/slots?matter_id={}&date={saturday}", s.matter_id)).await?;
    assert_eq!(st, 200, "{weekend}");
    assert!(weekend["slots"].as_array().unwrap().is_empty(), "{weekend}");

    let (st, slots) = a.get(&format!("/api/bookings/slots?matter_id={}&date={tomorrow}", s.matter_id)).await?;
    assert_eq!(st, 200, "{slots}");
    assert_eq!(slots["window"]["id"], s.matter["window"]["id"]);
    let list = slots["slots"].as_array().unwrap();
    assert_eq!(list.len(), 13);
    assert!(list.iter().all(|x| x["free"] == true));
    let start = list[0]["start_ms"].as_u64().unwrap();

    let (st, booking) = a.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": start})).await?;
    assert_eq!(st, 201, "{booking}");
    assert_eq!((booking["status"].as_str(), booking["end_ms"].as_u64()), (Some("booked"), Some(start + 30 * 60_000)));
    // The slot is taken now, for the other village too.
    let a2 = b.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": start})).await?;
    assert_error(&a2, 409, "slot_taken");
    let (_, slots) = a.get(&format!("/api/bookings/slots?matter_id={}&date={tomorrow}", s.matter_id)).await?;
    assert_eq!(slots["slots"][0]["free"], false);
    // Not a slot; too soon; too far.
    assert_error(
        &a.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": start + 60_000})).await?,
        400,
        "bad_slot",
    );
    assert_error(
        &a.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": 1_000})).await?,
        400,
        "bad_slot",
    );
    let far = start + 20 * DAY;
    assert_error(&a.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": far})).await?, 400, "bad_slot");

    // The approver sees the day's bookings at the window; the chief the town's; a dispatcher nothing.
    let window = Api::new(&server, &s.approver.token);
    let (st, day) = window.get(&format!("/api/bookings?date={tomorrow}")).await?;
    assert_eq!(st, 200);
    assert_eq!(day.as_array().unwrap().len(), 1);
    assert_eq!(day[0]["village"]["id"], s.kiosk.village_id().unwrap());
    let (_, today) = window.get("/api/bookings").await?;
    assert!(today.as_array().unwrap().is_empty());
    let (_, town) = Api::new(&server, &s.chief.token).get(&format!("/api/bookings?date={tomorrow}")).await?;
    assert_eq!(town.as_array().unwrap().len(), 1);
    let dispatcher = demo_staff(&server, "dispatcher").await?;
    assert_error(&Api::new(&server, &dispatcher[0].token).get("/api/bookings").await?, 403, "forbidden");
    let (_, mine) = a.get("/api/bookings").await?;
    assert_eq!(mine[0]["id"], booking["id"]);

    // Only the booking village cancels; the slot is free again.
    let id = booking["id"].as_i64().unwrap();
    assert_error(&b.delete(&format!("/api/bookings/{id}")).await?, 404, "not_found");
    assert_eq!(a.delete(&format!("/api/bookings/{id}")).await?.0, 204);
    assert_error(&a.delete(&format!("/api/bookings/{id}")).await?, 409, "conflict");
    let (st, _) = b.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": start})).await?;
    assert_eq!(st, 201);
    Ok(())
}

#[tokio::test]
async fn one_village_cannot_book_every_slot() -> anyhow::Result<()> {
    let server = Server::start_with_env(&["--demo"], &[("CUNNENG_LIMITS__OPEN_BOOKINGS_PER_VILLAGE", "3")]).await?;
    let s = setup(&server, 0, false).await?;
    let a = Api::new(&server, &s.kiosk.token);
    let kiosks = demo_kiosks(&server).await?;
    let other =
        kiosks.iter().find(|k| k.village_id() != s.kiosk.village_id() && k.town_id() == s.kiosk.town_id()).unwrap();
    let b = Api::new(&server, &other.token);
    let (day, _) = next_working_date();
    let (_, slots) = a.get(&format!("/api/bookings/slots?matter_id={}&date={day}", s.matter_id)).await?;
    let starts: Vec<u64> = slots["slots"].as_array().unwrap().iter().map(|x| x["start_ms"].as_u64().unwrap()).collect();
    let mut ids = Vec::new();
    for start in &starts[..3] {
        let (st, booking) = a.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": start})).await?;
        assert_eq!(st, 201, "{booking}");
        ids.push(booking["id"].as_i64().unwrap());
    }
    // A fourth open booking of the same village is refused; another village still books.
    let refused = a.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": starts[3]})).await?;
    assert_error(&refused, 429, "too_many_bookings");
    let (st, _) = b.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": starts[3]})).await?;
    assert_eq!(st, 201);
    // A cancelled booking no longer counts.
    assert_eq!(a.delete(&format!("/api/bookings/{}", ids[0])).await?.0, 204);
    let (st, _) = a.post("/api/bookings", json!({"matter_id": s.matter_id, "start_ms": starts[4]})).await?;
    assert_eq!(st, 201);
    Ok(())
}

#[tokio::test]
async fn guesses_on_one_case_are_limited_from_any_address() -> anyhow::Result<()> {
    // Many addresses (here: a generous per-address limit, as behind a proxy): one case number
    // is still looked up only a burst of times.
    let env = [("CUNNENG_LIMITS__PROGRESS_BURST", "1000"), ("CUNNENG_LIMITS__PROGRESS_CASE_BURST", "4")];
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (_, case) = kiosk
        .post("/api/cases", json!({"matter_id": s.matter_id, "villager": {"name": "赵叔", "phone": "13800005678"}}))
        .await?;
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let public = Api::anonymous(&server);
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(public.get(&format!("/api/progress?case={case_no}&code={i:08}&phone4=5678")).await?.0);
    }
    assert_eq!(statuses, [404, 404, 404, 404, 429, 429]);
    // Another case is not affected.
    let (_, other) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    let other_no = other["case_no"].as_str().unwrap();
    assert_eq!(public.get(&format!("/api/progress?case={other_no}&phone4=0000")).await?.0, 404);
    Ok(())
}
