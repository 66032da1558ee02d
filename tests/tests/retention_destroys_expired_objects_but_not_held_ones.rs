//! Retention: papers are kept 3 years, call media 1 year; a sweep past that destroys the
//! objects (and with them their only wrapped data keys) and records what it destroyed; a legal
//! hold on a case blocks every deletion of its objects until it is lifted. Only supervisors
//! and administrators place holds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use cunneng_tests::cases::{Api, assert_error, object_files, pdf, setup};
use cunneng_tests::client::login_as;
use cunneng_tests::server::{Server, binary_path};
use serde_json::json;

const DAY_MS: u64 = 86_400_000;

fn sweep(server: &Server, days_ahead: u64) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let out = std::process::Command::new(binary_path())
        .args(["retention", "sweep", "--as-of-ms", &(now + days_ahead * DAY_MS).to_string(), "--data-dir"])
        .arg(server.data_dir())
        .output()?;
    if !out.status.success() {
        bail!("sweep: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn retention_destroys_expired_objects_but_not_held_ones() -> Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let mut cases = Vec::new();
    for _ in 0..2 {
        let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
        assert_eq!(st, 201, "{case}");
        let case_no = case["case_no"].as_str().unwrap().to_string();
        kiosk.upload(&case_no, "户口簿.pdf", &pdf(3000), None, "scan", 64 * 1024).await?;
        cases.push(case_no);
    }
    let (held, free) = (&cases[0], &cases[1]);
    assert_eq!(object_files(&server).len(), 2);

    // Only supervisors and administrators place holds; a reason is required.
    let approver = Api::new(&server, &s.approver.token);
    assert_error(
        &approver.put(&format!("/api/cases/{held}/legal-hold"), json!({"reason": "投诉"})).await?,
        403,
        "forbidden",
    );
    let supervisor = Api::new(&server, &login_as(&server, "supervisor").await?);
    assert_error(
        &supervisor.put(&format!("/api/cases/{held}/legal-hold"), json!({"reason": " "})).await?,
        400,
        "bad_request",
    );
    assert_error(
        &supervisor.put("/api/cases/XX-00000000-0000/legal-hold", json!({"reason": "投诉"})).await?,
        404,
        "not_found",
    );
    let (st, body) =
        supervisor.put(&format!("/api/cases/{held}/legal-hold"), json!({"reason": "群众投诉,纪检调查"})).await?;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["hold"]["reason"], "群众投诉,纪检调查");

    // Within the retention period nothing is destroyed; the held case's paper moves out of
    // reach of the bucket's lifecycle rules.
    let out = sweep(&server, 30)?;
    assert!(out.contains("destroyed 0") && out.contains("moved to the legal-hold area 1"), "{out}");
    // The held paper is still served from the hold area.
    let (st, case) = kiosk.get(&format!("/api/cases/{held}")).await?;
    assert_eq!(st, 200);
    let url = case["papers"][0]["url"].as_str().unwrap().to_string();
    let (st, _, bytes) = kiosk.get_bytes(&url).await?;
    assert_eq!(st, 200);
    assert!(bytes.starts_with(b"%PDF"));

    // Past three years: the free case's paper is destroyed, the held one is kept.
    let out = sweep(&server, 3 * 365 + 1)?;
    assert!(out.contains("destroyed 1") && out.contains("kept by a legal hold 1"), "{out}");
    assert_eq!(object_files(&server).len(), 1);
    let log = std::fs::read_to_string(server.data_dir().join("destructions.log"))?;
    assert!(log.contains("papers/") && log.lines().count() == 1, "{log}");
    let (_, case) = kiosk.get(&format!("/api/cases/{free}")).await?;
    let (st, _, body) = kiosk.get_bytes(case["papers"][0]["url"].as_str().unwrap()).await?;
    // 已销毁, with the date: never an internal error.
    let err: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!((st, err["error"]["code"].as_str()), (410, Some("destroyed")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().starts_with("已销毁"), "{err}");

    // Lifting the hold lets the next sweep destroy it.
    assert_eq!(supervisor.delete(&format!("/api/cases/{held}/legal-hold")).await?.0, 204);
    assert_error(&supervisor.delete(&format!("/api/cases/{held}/legal-hold")).await?, 404, "not_found");
    let out = sweep(&server, 3 * 365 + 1)?;
    assert!(out.contains("destroyed 1"), "{out}");
    assert!(object_files(&server).is_empty());
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary_path())
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("the binary runs")
}

/// Expiry destroys keys, not only objects: a copy of the store taken before the sweep (a
/// backup, an old object version) no longer decrypts after it, because the data keys are
/// wrapped by a retention-period key that lives only in the period key file and is destroyed
/// when its period has ended. A held object is moved off that key first and stays readable.
#[tokio::test]
async fn copies_taken_before_expiry_no_longer_decrypt() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let mut cases = Vec::new();
    for _ in 0..2 {
        let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
        assert_eq!(st, 201, "{case}");
        let case_no = case["case_no"].as_str().unwrap().to_string();
        kiosk.upload(&case_no, "身份证.pdf", &pdf(5000), None, "scan", 64 * 1024).await?;
        cases.push(case_no);
    }
    let held = &cases[0];
    let supervisor = Api::new(&server, &login_as(&server, "supervisor").await?);
    let (st, body) = supervisor.put(&format!("/api/cases/{held}/legal-hold"), json!({"reason": "复议"})).await?;
    assert_eq!(st, 200, "{body}");

    // The papers are wrapped by the papers' period key of the month they expire in.
    let periods = std::fs::read_to_string(server.data_dir().join("keys/period-keys.toml"))?;
    assert!(periods.contains("id = \"period-papers-"), "{periods}");

    // A copy of every stored object, taken before the sweep; now it decrypts.
    let backup = tempfile::tempdir()?;
    let mut copies = Vec::new();
    for (i, f) in object_files(&server).iter().enumerate() {
        let copy = backup.path().join(format!("object-{i}"));
        std::fs::copy(f, &copy)?;
        copies.push(copy);
    }
    assert_eq!(copies.len(), 2);
    let out =
        cli(&server, &["decrypt", copies[0].to_str().unwrap(), "--out", backup.path().join("plain").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(backup.path().join("plain"))?;

    // Past three years and the end of the month they expire in: the free paper is destroyed,
    // the held one is moved off the period key, and the key is destroyed.
    let out = sweep(&server, 3 * 365 + 40)?;
    assert!(out.contains("destroyed 1,") && out.contains("kept by a legal hold 1"), "{out}");
    assert!(
        out.contains("period keys shredded 1") && out.contains("held objects moved off their period key 1"),
        "{out}"
    );
    let log = std::fs::read_to_string(server.data_dir().join("destructions.log"))?;
    assert!(log.contains("\"key\":\"period-papers-"), "{log}");
    let periods = std::fs::read_to_string(server.data_dir().join("keys/period-keys.toml"))?;
    assert!(!periods.contains("[[key]]") && periods.contains("[[destroyed]]"), "{periods}");

    // Neither copy decrypts any more (the held one's copy was taken under the period key),
    // and the tool says why; nothing is written.
    for copy in &copies {
        let plain = backup.path().join("plain");
        let out = cli(&server, &["decrypt", copy.to_str().unwrap(), "--out", plain.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("key was destroyed"), "{err}");
        assert!(!plain.exists());
    }

    // The held paper is still served, by the running server (which noticed the key file
    // change) and after a key rotation that rewraps it, header only.
    let (_, case) = kiosk.get(&format!("/api/cases/{held}")).await?;
    let url = case["papers"][0]["url"].as_str().unwrap().to_string();
    let (st, _, bytes) = kiosk.get_bytes(&url).await?;
    assert_eq!(st, 200);
    assert!(bytes.starts_with(b"%PDF"));
    assert!(cli(&server, &["keys", "rotate"]).status.success());
    server.stop().await?;
    server.restart().await?;
    let out = cli(&server, &["keys", "rewrap"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("rewrapped 0 retention-period keys and 1 objects"), "{text}");
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, _, again) = kiosk.get_bytes(&url).await?;
    assert_eq!((st, again), (200, bytes));
    Ok(())
}
