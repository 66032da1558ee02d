//! Objects written before their database row are never left outside retention: a crash after
//! the object was stored and before its row was written leaves an object nothing accounts
//! for. The sweep reconciles the store's listing with the catalogue: chunks of an upload that
//! is gone are removed; an object nothing knows of is catalogued, so that retention destroys
//! it on time. (Objects named by an intent before they were written are settled by the same
//! sweep: `retention::reconcile_plan`'s unit test.)

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use cunneng_tests::cases::{Api, object_files, pdf, setup};
use cunneng_tests::server::{Server, binary_path};
use serde_json::json;

const DAY_MS: u64 = 86_400_000;

fn sweep(server: &Server, ms_ahead: u64) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let out = std::process::Command::new(binary_path())
        .args(["retention", "sweep", "--as-of-ms", &(now + ms_ahead).to_string(), "--data-dir"])
        .arg(server.data_dir())
        .output()?;
    if !out.status.success() {
        bail!("sweep: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn objects_without_their_row_are_swept() -> Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    kiosk.upload(&case_no, "a.pdf", &pdf(3000), None, "scan", 64 * 1024).await?;
    let files = object_files(&server);
    assert_eq!(files.len(), 1);

    // What a crash at the wrong moment leaves: a sealed scan stored without its row, and a
    // chunk of an upload whose row is gone.
    let objects = server.data_dir().join("objects");
    let orphan = objects.join("papers/999/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(orphan.parent().unwrap())?;
    std::fs::copy(&files[0], &orphan)?;
    let chunk = objects.join("uploads/00000000000000000000000000000000/000000");
    std::fs::create_dir_all(chunk.parent().unwrap())?;
    std::fs::copy(&files[0], &chunk)?;

    // Too young to judge (it may be being written right now): left alone.
    let out = sweep(&server, 0)?;
    assert!(out.contains("orphans removed 0, orphans catalogued 0"), "{out}");
    assert!(orphan.exists() && chunk.exists());

    // An hour on, the sweep settles them.
    let out = sweep(&server, 2 * 3_600_000)?;
    assert!(out.contains("orphans removed 1, orphans catalogued 1"), "{out}");
    assert!(!chunk.exists(), "the chunk of an upload that is gone is removed");
    assert!(orphan.exists(), "the unknown scan is kept until its retention ends");
    let out = sweep(&server, 2 * 3_600_000)?;
    assert!(out.contains("orphans removed 0, orphans catalogued 0"), "{out}");

    // Past the papers' retention, the orphan goes with the paper.
    let out = sweep(&server, (3 * 365 + 1) * DAY_MS)?;
    assert!(out.contains("destroyed 2"), "{out}");
    assert!(object_files(&server).is_empty(), "{:?}", object_files(&server));
    Ok(())
}
