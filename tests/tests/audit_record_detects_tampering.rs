//! 可查可追溯: every case event and every access is an entry of one hash chain with signed
//! checkpoints, and a final case is sealed with a signed manifest. `cunneng audit verify` finds
//! an entry edited, deleted, reordered or cut off, and a timeline edited behind the chain's
//! back; `cunneng audit verify-case` finds a stored paper altered. Each check runs on a copy of
//! the data directory, tampered the way an operator with disk access could.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cunneng_tests::cases::{Api, answer_call, call, hang_up, pdf, png, setup};
use cunneng_tests::client::login_as;
use cunneng_tests::server::{Server, binary_path};
use serde_json::json;

fn cunneng(args: &[&str], data_dir: &Path) -> (i32, String, String) {
    let out = Command::new(binary_path())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CUNNENG_CONFIG")
        .output()
        .expect("run cunneng");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A copy of the (stopped) server's data dir with `sql` applied to its database.
fn tampered(data: &Path, name: &str, sql: &str) -> PathBuf {
    let dir = data.parent().unwrap().join(format!("tampered-{name}"));
    copy_dir(data, &dir);
    // The key files live beside the data directory: the copy gets its own beside it.
    let keys = data.with_file_name(format!("{}-keys", data.file_name().unwrap().to_string_lossy()));
    copy_dir(&keys, &dir.with_file_name(format!("tampered-{name}-keys")));
    let db = rusqlite::Connection::open(dir.join("cunneng.sqlite3")).unwrap();
    db.execute_batch(sql).unwrap_or_else(|e| panic!("{name}: {e}"));
    dir
}

#[tokio::test]
async fn the_audit_record_finds_every_kind_of_tampering() -> anyhow::Result<()> {
    let mut server = Server::start_with_env(
        &["--demo"],
        &[("CUNNENG_AUDIT__SEAL_EVERY_SECS", "1"), ("CUNNENG_AUDIT__CHECKPOINT_EVERY_SECS", "1")],
    )
    .await?;
    let s = setup(&server, 0, false).await?;
    let kiosk_api = Api::new(&server, &s.kiosk.token);
    let window_api = Api::new(&server, &s.approver.token);

    // A case handled in full: a call, the villager, a scan, the decision with its result.
    let (mut kiosk, mut window, call_id) = call(&server, &s, None).await?;
    let started = answer_call(&mut kiosk, &mut window, call_id).await?;
    let case_no = started["case_no"].as_str().unwrap().to_string();
    let (st, _) = kiosk_api
        .put(&format!("/api/cases/{case_no}/villager"), json!({"name": "周大娘", "phone": "13500002222"}))
        .await?;
    assert_eq!(st, 200);
    let scan = kiosk_api.upload(&case_no, "身份证.pdf", &pdf(9_000), None, "scan", 1 << 20).await?;
    let rp = window_api.upload(&case_no, "证明.png", &png(7_000), None, "result", 1 << 20).await?;
    let (st, d) = window_api
        .post(
            &format!("/api/cases/{case_no}/outcome"),
            json!({"outcome": "done", "note": "办结", "result_paper_id": rp["id"]}),
        )
        .await?;
    assert_eq!(st, 200, "{d}");
    // The approver looks at the scan: an access.
    assert_eq!(window_api.get_bytes(scan["url"].as_str().unwrap()).await?.0, 200);
    hang_up(&mut kiosk, &mut window, call_id).await?;

    // The case is sealed once its call ended (no recordings here: signaling-only clients).
    let supervisor = Api::new(&server, &login_as(&server, "supervisor").await?);
    let mut sealed = false;
    for _ in 0..100 {
        let (st, r) = supervisor.get(&format!("/api/review/cases/{case_no}")).await?;
        assert_eq!(st, 200, "{r}");
        if r["sealed_at_ms"].is_u64() {
            sealed = true;
            // Who looked: the approver's paper view and the supervisor's opening.
            let actions: Vec<&str> =
                r["access"].as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
            assert!(actions.contains(&"paper.viewed") && actions.contains(&"case.opened"), "{actions:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sealed, "the final case was never sealed");

    let data = server.data_dir().to_path_buf();
    let (code, out, err) = cunneng(&["audit", "verify"], &data);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("good"), "{out}");
    let (code, out, err) = cunneng(&["audit", "verify-case", &case_no], &data);
    assert_eq!(code, 0, "{out}{err}");

    // Stopped: the last checkpoint signs the chain up to its end.
    server.stop().await?;
    let db = rusqlite::Connection::open(data.join("cunneng.sqlite3"))?;
    let head: i64 = db.query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))?;
    let signed: i64 = db.query_row("SELECT MAX(seq) FROM audit_checkpoints", [], |r| r.get(0))?;
    assert_eq!(signed, head, "the chain was not signed up to its end at shutdown");
    assert!(head >= 8, "only {head} entries");
    drop(db);

    let cases = [
        ("edited", "UPDATE audit_log SET detail = '{\"note\":\"改过\"}' WHERE seq = 3".to_string(), "BAD entry 3"),
        ("deleted", "DELETE FROM audit_log WHERE seq = 4".to_string(), "BAD entry 5"),
        (
            "reordered",
            "UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3;
             UPDATE audit_log SET seq = 3 WHERE seq = -1;"
                .to_string(),
            "BAD entry 2",
        ),
        (
            // The tail and its checkpoints in the database: the checkpoint log beside it still
            // holds the signed head.
            "truncated",
            format!("DELETE FROM audit_log WHERE seq > {}; DELETE FROM audit_checkpoints;", head - 2),
            &format!("BAD entry {}", head - 1),
        ),
        (
            "timeline",
            "UPDATE case_events SET detail = '{\"outcome\":\"refused\"}' WHERE kind = 'outcome.decided'".to_string(),
            "BAD timeline events",
        ),
    ];
    for (name, sql, expect) in cases {
        let dir = tampered(&data, name, &sql);
        let (code, out, err) = cunneng(&["audit", "verify"], &dir);
        assert_eq!(code, 1, "{name}: not detected: {out}{err}");
        assert!(err.contains(expect), "{name}: expected {expect:?}: {err}");
        assert!(out.contains("TAMPERED"), "{name}: {out}");
    }

    // A stored paper altered: the case's manifest no longer holds.
    let dir = data.parent().unwrap().join("tampered-object");
    copy_dir(&data, &dir);
    copy_dir(&data.with_file_name("data-keys"), &data.parent().unwrap().join("tampered-object-keys"));
    let key: String = rusqlite::Connection::open(dir.join("cunneng.sqlite3"))?.query_row(
        "SELECT object_key FROM papers WHERE kind = 'scan' LIMIT 1",
        [],
        |r| r.get(0),
    )?;
    let file = dir.join("objects").join(&key);
    let mut bytes = std::fs::read(&file)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, bytes)?;
    let (code, out, err) = cunneng(&["audit", "verify-case", &case_no], &dir);
    assert_eq!(code, 1, "an altered paper was not detected: {out}{err}");
    assert!(err.contains(&key), "{err}");
    Ok(())
}
