//! A key file moved away is never silently replaced: with papers stored, the server refuses to
//! start and says what to restore; with the key file back it starts and every paper opens.
//! The same holds for the retention-period key file beside it, which wraps the papers' keys.
//! By default the key file lives beside the data directory, not inside it, so that a copy of
//! the data does not carry its key.

use anyhow::Result;
use cunneng_tests::cases::{Api, pdf, setup};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn missing_key_file_stops_the_start_until_it_is_restored() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let key_file = server.key_file();
    assert!(key_file.exists(), "the key file is beside the data directory: {}", key_file.display());
    assert!(!key_file.starts_with(server.data_dir()));
    assert!(!server.data_dir().join("keys").exists(), "no key inside the data directory");

    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let paper = pdf(5000);
    kiosk.upload(&case_no, "a.pdf", &paper, None, "scan", 64 * 1024).await?;
    server.stop().await?;

    // The careless operator moves the key file away (or restores only the data directory).
    let away = key_file.with_file_name("kek.toml.away");
    std::fs::rename(&key_file, &away)?;
    let err = server.restart().await.expect_err("the server must not start without its key");
    let text = format!("{err:#}");
    assert!(text.contains("missing") && text.contains("restore"), "{text}");
    assert!(text.contains(&key_file.display().to_string()), "the message names the file: {text}");
    assert!(!key_file.exists(), "no new key was generated");

    // Restored, the server starts and the paper opens.
    std::fs::rename(&away, &key_file)?;
    server.restart().await?;
    let (_, case) = kiosk.get(&format!("/api/cases/{case_no}")).await?;
    let (st, _, bytes) = kiosk.get_bytes(case["papers"][0]["url"].as_str().unwrap()).await?;
    assert_eq!(st, 200);
    assert_eq!(bytes, paper);
    Ok(())
}

#[tokio::test]
async fn missing_period_key_file_stops_the_start_until_it_is_restored() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let period_file = server.key_file().with_file_name("period-keys.toml");
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let paper = pdf(5000);
    kiosk.upload(&case_no, "a.pdf", &paper, None, "scan", 64 * 1024).await?;
    assert!(period_file.exists(), "the paper's data key is wrapped by a period key: {}", period_file.display());
    server.stop().await?;

    // Only kek.toml restored from the backup, period-keys.toml forgotten.
    let away = period_file.with_file_name("period-keys.toml.away");
    std::fs::rename(&period_file, &away)?;
    let err = server.restart().await.expect_err("the server must not start without its period keys");
    let text = format!("{err:#}");
    assert!(text.contains("missing") && text.contains("restore"), "{text}");
    assert!(text.contains(&period_file.display().to_string()), "the message names the file: {text}");
    assert!(!period_file.exists(), "no new period key file was made");

    // Restored, the server starts and the paper opens.
    std::fs::rename(&away, &period_file)?;
    server.restart().await?;
    let (_, case) = kiosk.get(&format!("/api/cases/{case_no}")).await?;
    let (st, _, bytes) = kiosk.get_bytes(case["papers"][0]["url"].as_str().unwrap()).await?;
    assert_eq!(st, 200);
    assert_eq!(bytes, paper);
    Ok(())
}

#[tokio::test]
async fn first_start_generates_the_key_beside_the_data_directory() -> Result<()> {
    // A fresh server (no sealed data anywhere) generates its key: nothing to lose yet.
    let server = Server::start(&[]).await?;
    assert!(server.key_file().exists());
    assert!(server.key_file().with_file_name("audit-ed25519.key").exists());
    Ok(())
}
