//! Personal data on disk is the server user's alone: the data directory 0700, the database
//! and its WAL 0600, stored objects 0600, and what `cunneng decrypt` writes 0600 (and the
//! decryption is in the audit record). `keys rewrap` also moves the ID numbers sealed in the
//! database to the new key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Result, bail};
use cunneng_tests::cases::{Api, object_files, pdf, setup};
use cunneng_tests::server::{Server, binary_path};
use serde_json::json;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

fn cli(server: &Server, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(binary_path()).args(args).arg("--data-dir").arg(server.data_dir()).output()?;
    if !out.status.success() {
        bail!("cunneng {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn personal_data_is_private_on_disk() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let (st, body) = kiosk
        .put(
            &format!("/api/cases/{case_no}/villager"),
            json!({"name": "张大爷", "phone": "13800001234", "id_number": "11010519491231002X"}),
        )
        .await?;
    assert_eq!(st, 200, "{body}");
    kiosk.upload(&case_no, "a.pdf", &pdf(5000), None, "scan", 64 * 1024).await?;

    let data = server.data_dir().to_path_buf();
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("cunneng.sqlite3")), 0o600, "database");
    assert_eq!(mode(&data.join("cunneng.sqlite3-wal")), 0o600, "WAL");
    let objects = object_files(&server);
    assert!(!objects.is_empty());
    for o in &objects {
        assert_eq!(mode(o), 0o600, "{}", o.display());
    }
    assert_eq!(mode(&server.key_file()), 0o600);
    assert_eq!(mode(server.key_file().parent().unwrap()), 0o700);

    // Decrypted plaintext is the operator's alone, and the decryption is recorded.
    let out = data.with_file_name("paper.pdf");
    cli(&server, &["decrypt", &objects[0].display().to_string(), "--out", &out.display().to_string()])?;
    assert_eq!(mode(&out), 0o600, "decrypt output");
    assert!(std::fs::read(&out)?.starts_with(b"%PDF"));

    // A data directory left open by an older version is tightened at start.
    server.stop().await?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(data.join("cunneng.sqlite3"), std::fs::Permissions::from_mode(0o644))?;
    server.restart().await?;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("cunneng.sqlite3")), 0o600);

    // Rotate and rewrap: the sealed ID number moves to the new key too, and still opens.
    cli(&server, &["keys", "rotate"])?;
    server.stop().await?;
    let out = cli(&server, &["keys", "rewrap"])?;
    assert!(out.contains("rewrapped 1 sealed ID numbers"), "{out}");
    let out = cli(&server, &["keys", "rewrap"])?;
    assert!(out.contains("rewrapped 0 sealed ID numbers") && out.contains("1 were already under it"), "{out}");
    server.restart().await?;
    let (st, view) = kiosk.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(st, 200);
    assert_eq!(view["villager"]["id_number_masked"], "1101**********002X");
    Ok(())
}
