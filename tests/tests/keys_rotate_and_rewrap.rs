//! Key rotation: `cunneng keys rotate` starts a new key for new objects while old ones keep
//! decrypting; `cunneng keys rewrap` moves every key to the new KEK: the retention-period keys
//! (which wrap the data keys of papers and media) in their file, so that the objects
//! themselves need no rewrite; `cunneng verify` checks them all. (Objects wrapped straight
//! under a KEK, those a legal hold kept past their period, are rewritten header only: the
//! retention test rotates over one.)

use anyhow::{Result, bail};
use cunneng_tests::cases::{Api, object_files, pdf, setup};
use cunneng_tests::server::{Server, binary_path};
use serde_json::json;

fn cli(server: &Server, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(binary_path()).args(args).arg("--data-dir").arg(server.data_dir()).output()?;
    if !out.status.success() {
        bail!("cunneng {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn keys_rotate_then_rewrap_keeps_every_object_readable() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201);
    let case_no = case["case_no"].as_str().unwrap().to_string();
    let paper = pdf(200_000);
    kiosk.upload(&case_no, "a.pdf", &paper, None, "scan", 64 * 1024).await?;
    let before = std::fs::read(&object_files(&server)[0])?;

    // A second key file cannot be generated over the first.
    assert!(cli(&server, &["keys", "generate"]).is_err());
    let out = cli(&server, &["keys", "rotate"])?;
    assert!(out.contains("is now active"), "{out}");
    // The server loads the key file at start: restart it so it knows the new key too.
    server.stop().await?;
    server.restart().await?;
    let out = cli(&server, &["keys", "rewrap"])?;
    assert!(out.contains("rewrapped 1 retention-period keys and 0 objects"), "{out}");
    let out = cli(&server, &["keys", "rewrap"])?;
    assert!(
        out.contains("rewrapped 0 retention-period keys and 0 objects") && out.contains("1 objects needed nothing"),
        "{out}"
    );

    // The paper is under its period key, which moved: the object is the same bytes.
    let after = std::fs::read(&object_files(&server)[0])?;
    assert_eq!(before, after);
    // The period key file now names the new KEK only.
    let periods = std::fs::read_to_string(server.data_dir().join("keys/period-keys.toml"))?;
    let kek = std::fs::read_to_string(server.data_dir().join("keys/kek.toml"))?;
    let active = kek.split("[[key]]").find(|k| k.contains("\"active\"")).and_then(|k| k.split('"').nth(1)).unwrap();
    assert!(periods.contains(&format!("kek_id = \"{active}\"")) && periods.matches("kek_id").count() == 1, "{periods}");

    let out = cli(&server, &["verify"])?;
    assert!(out.contains("verified 1 objects: 1 good, 0 damaged"), "{out}");
    let (_, case) = kiosk.get(&format!("/api/cases/{case_no}")).await?;
    let (st, _, bytes) = kiosk.get_bytes(case["papers"][0]["url"].as_str().unwrap()).await?;
    assert_eq!(st, 200);
    assert_eq!(bytes, paper);
    Ok(())
}
