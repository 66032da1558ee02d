//! The engine's invariant: every queue change is persisted before anyone is told of it. When
//! the queue snapshot cannot be written (here a trigger makes every write of it fail, as a
//! full or read-only disk would), a kiosk's call request is refused with `unavailable` and
//! nothing changes: no place in the queue, no ring, no case; a change nobody asked for (a
//! ring timeout) is held and told to nobody until it is saved. `/metrics` shows both; once
//! writes work again everything goes through.

use std::time::Duration;

use cunneng_tests::cases::{Api, setup};
use cunneng_tests::client::{WsClient, http};
use cunneng_tests::server::Server;
use serde_json::json;

const BREAK: &str = "
    CREATE TRIGGER broken_disk_insert BEFORE INSERT ON queue_state BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;
    CREATE TRIGGER broken_disk_update BEFORE UPDATE ON queue_state BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;";
const REPAIR: &str = "DROP TRIGGER broken_disk_insert; DROP TRIGGER broken_disk_update;";

async fn metric(server: &Server, name: &str) -> anyhow::Result<f64> {
    let text = http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
    let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
    Ok(line.and_then(|l| l.split_whitespace().last()).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
}

/// Every message the client has or receives within `ms`.
async fn drain(c: &mut WsClient, ms: u64) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Ok(m) = c.next(Duration::from_millis(ms)).await {
        out.push(m);
    }
    out
}

async fn wait_for_metric(server: &Server, name: &str, ok: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
    let mut v = f64::NAN;
    for _ in 0..80 {
        v = metric(server, name).await?;
        if ok(v) {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{name} stayed at {v}")
}

#[tokio::test]
async fn a_queue_change_that_cannot_be_saved_is_refused_or_held_and_told_to_nobody() -> anyhow::Result<()> {
    // A ring times out after 2 s: a change nobody asks for.
    let server = Server::start_with_env(&["--demo"], &[("CUNNENG_QUEUE__RING_TIMEOUT_SECS", "2")]).await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let mut window = WsClient::connect(&server, &s.approver.token).await?;
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    window.expect_where("presence", |m| m["presence"] == "available").await?;
    let mut kiosk = WsClient::connect(&server, &s.kiosk.token).await?;
    assert_eq!(metric(&server, "cunneng_queue_snapshot_failures_total").await?, 0.0);
    // What the sockets were told on connecting.
    drain(&mut kiosk, 300).await;
    drain(&mut window, 300).await;
    let db = rusqlite::Connection::open(server.data_dir().join("cunneng.sqlite3"))?;
    db.busy_timeout(Duration::from_secs(5))?;

    // 1. A client input: refused with `unavailable`, and nothing changed.
    db.execute_batch(BREAK)?;
    let request = json!({"type": "call.request", "matter_id": s.matter_id});
    let err = kiosk.request(request.clone(), 1, Duration::from_secs(5)).await?.expect("an error answer");
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("unavailable")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("请稍后再试"), "{err}");
    let told = drain(&mut kiosk, 800).await;
    assert!(!told.iter().any(|m| m["type"] == "queue.position"), "the kiosk was queued: {told:?}");
    let told = drain(&mut window, 300).await;
    assert!(!told.iter().any(|m| m["type"] == "call.ring" || m["type"] == "queue.snapshot"), "{told:?}");
    let (_, cases) = kiosk_api.get("/api/cases").await?;
    assert_eq!(cases, json!([]), "a refused call left a case behind");
    assert!(metric(&server, "cunneng_queue_snapshot_failures_total").await? >= 1.0);
    assert!(server.log().contains("persisting the queue snapshot"));

    // Writes work again: the same request goes through.
    db.execute_batch(REPAIR)?;
    assert!(kiosk.request(request, 2, Duration::from_secs(5)).await?.is_none(), "refused after the repair");
    let pos = kiosk.expect("queue.position").await?;
    let call_id = pos["call_id"].as_u64().unwrap();
    window.expect_where("call.ring", |m| m["call_id"] == call_id).await?;
    let (_, cases) = kiosk_api.get("/api/cases").await?;
    assert_eq!(cases.as_array().map(Vec::len), Some(1));

    // 2. A change nobody asked for (the ring times out, the approver is set away) is held
    //    while its snapshot cannot be written: nobody is told.
    db.execute_batch(BREAK)?;
    wait_for_metric(&server, "cunneng_queue_held_changes", |v| v > 0.0).await?;
    let told = drain(&mut window, 300).await;
    assert!(!told.iter().any(|m| m["type"] == "call.ring_stopped" || m["type"] == "presence"), "{told:?}");

    // Once it is saved, it is told.
    db.execute_batch(REPAIR)?;
    let stopped = window.expect_where("call.ring_stopped", |m| m["call_id"] == call_id).await?;
    assert_eq!(stopped["reason"], "timeout");
    let presence = window.expect("presence").await?;
    assert_eq!((presence["presence"].as_str(), presence["forced"].as_bool()), (Some("away"), Some(true)));
    wait_for_metric(&server, "cunneng_queue_held_changes", |v| v == 0.0).await?;
    Ok(())
}
