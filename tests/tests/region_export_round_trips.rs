//! `cunneng export-region` against the real binary: the running demo server's region, written
//! as an import file (mode 0600, hashes only, no secret), imports into an empty data dir, and
//! that data dir exports the very same file; a data dir without a database is refused with a
//! clear message and writes nothing. What the administrator changed on /admin travels with
//! it: a disabled account, a forced password change, a device waiting for its enrolment, a
//! disabled device.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use anyhow::Context;
use cunneng_tests::cases::Api;
use cunneng_tests::client::{demo_kiosks, login_as};
use cunneng_tests::server::{Server, binary_path};
use serde_json::{Value, json};

fn cunneng(args: &[&str]) -> std::process::Output {
    Command::new(binary_path()).args(args).output().expect("run cunneng")
}

#[tokio::test]
async fn exported_region_imports_into_an_empty_data_dir_as_the_same_region() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    // The server is in use while it is exported.
    login_as(&server, "window").await?;
    let kiosk = demo_kiosks(&server).await?.remove(0);

    // The administrator's changes: one account disabled, one reset (must change its password),
    // a new device not enrolled yet, a device disabled.
    let admin = Api::new(&server, &login_as(&server, "admin").await?);
    let (status, users) = admin.get("/api/admin/users").await?;
    assert_eq!(status, 200, "{users}");
    let user_id = |name: &str| -> anyhow::Result<i64> {
        users.as_array().context("users")?.iter().find(|u| u["username"] == name).context("user")?["id"]
            .as_i64()
            .context("id")
    };
    let ok = |a: (u16, Value)| assert!(a.0 == 200 || a.0 == 201, "{a:?}");
    ok(admin.post(&format!("/api/admin/users/{}/disable", user_id("yuanba-minzheng")?), json!({})).await?);
    ok(admin.post(&format!("/api/admin/users/{}/password-reset", user_id("zhaohua-chief")?), json!({})).await?);
    let (status, devices) = admin.get("/api/admin/kiosks").await?;
    assert_eq!(status, 200, "{devices}");
    let devices = devices.as_array().context("kiosks")?;
    let village = devices[0]["village_id"].as_i64().context("village_id")?;
    ok(admin.post("/api/admin/kiosks", json!({"village_id": village, "name": "备用电脑"})).await?);
    let last = devices.last().context("a kiosk")?["id"].as_i64().context("id")?;
    ok(admin.post(&format!("/api/admin/kiosks/{last}/disable"), json!({})).await?);

    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("region.toml");
    let a = server.data_dir().to_str().unwrap();
    let out = cunneng(&["export-region", "--data-dir", a, "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file)?;
    assert_eq!(std::fs::metadata(&file)?.permissions().mode() & 0o777, 0o600);
    assert!(text.contains("[[towns]]") && text.contains("[[matters]]") && text.contains("[[kiosks]]"), "{text}");
    assert!(text.contains("password_hash = \"$argon2id$"), "accounts carry their hashes");
    assert!(text.contains("must_change_password = true"), "{text}");
    assert!(text.contains("name = \"备用电脑\"") && text.contains("enrolled = false"), "{text}");
    assert_eq!(text.matches("disabled = true").count(), 2, "the account and the device: {text}");
    assert!(!text.contains(&kiosk.token), "a device token in the export");
    for link in &server.demo_links {
        if let Some(password) = link.fragment_param("password") {
            assert!(!text.contains(&format!("\"{password}\"")), "a password in the export");
        }
    }

    // Into an empty data dir, and out again: the same file.
    let b = tmp.path().join("copy");
    let out = cunneng(&["import", file.to_str().unwrap(), "--data-dir", b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cunneng(&["export-region", "--data-dir", b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout)?, text, "the copy exports a different region");

    // Importing it again changes nothing (every item is matched, none is new).
    let out = cunneng(&["import", file.to_str().unwrap(), "--data-dir", b.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("towns 3 (0 new)"), "{said}");

    // No database: refused, nothing written.
    let empty = tmp.path().join("empty");
    let nowhere = tmp.path().join("nowhere.toml");
    let out = cunneng(&["export-region", "--data-dir", empty.to_str().unwrap(), "--out", nowhere.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to export"));
    assert!(!nowhere.exists());
    Ok(())
}
