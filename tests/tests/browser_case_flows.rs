//! The second browser test: Debian's chromium drives the kiosk, an approver's window page and a
//! window chief's page of the real server through the rest of a case's life
//! (`tests/browser/case_flows.mjs`): an upload broken off and resumed, 现场开单 and a supplement
//! call on the same case, 一审一核 sent back and approved, the inbox, a 放心回家 case finished
//! from the desk, a booking and a progress lookup.

use std::path::PathBuf;

use anyhow::{Context, bail};
use cunneng_tests::client::{get_json, login, pairing};
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_case_flows_from_papers_to_sign_off() -> anyhow::Result<()> {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !browser_dir.join("node_modules/playwright-core").exists() {
        bail!("playwright-core is not installed: run ./scripts/test.sh (it runs `npm ci` in tests/browser)");
    }
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        bail!("/usr/bin/chromium is missing: run ./scripts/test.sh (it installs Debian's chromium)");
    }
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let kiosk_url = server
        .links("kiosk")
        .into_iter()
        .find(|l| l.fragment_param("token").as_deref() == Some(p.kiosk.token.as_str()))
        .context("kiosk link")?
        .url
        .clone();
    // The approver at the matter's window, and a chief of the same town.
    let me_of = |user: String, password: String| {
        let server = &server;
        async move {
            let token = login(server, &user, &password).await?;
            if token.is_empty() {
                return Ok::<_, anyhow::Error>(None);
            }
            let (_, me) = get_json(server, "/api/me", Some(&token)).await?;
            Ok(Some(me))
        }
    };
    let mut window_url = None;
    let mut town_id = None;
    for link in server.links("window") {
        let me = me_of(link.fragment_param("user").unwrap(), link.fragment_param("password").unwrap()).await?;
        if let Some(me) = me.filter(|me| me["window"]["id"].as_i64() == Some(p.window_id)) {
            window_url = Some(link.url.clone());
            town_id = me["town"]["id"].as_i64();
            break;
        }
    }
    let window_url = window_url.context("window link")?;
    let mut chief_url = None;
    for link in server.links("chief") {
        let me = me_of(link.fragment_param("user").unwrap(), link.fragment_param("password").unwrap()).await?;
        if me.is_some_and(|me| me["town"]["id"].as_i64() == town_id) {
            chief_url = Some(link.url.clone());
            break;
        }
    }
    let chief_url = chief_url.context("chief link of the approver's town")?;
    let out_dir = tempfile::tempdir()?;

    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("case_flows.mjs"))
        .args([
            "--base",
            &server.base_url,
            "--kiosk-url",
            &kiosk_url,
            "--window-url",
            &window_url,
            "--chief-url",
            &chief_url,
        ])
        .arg("--out-dir")
        .arg(out_dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .context("running node")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(output.status.success(), "browser test failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("PASS"), "{stdout}");
    Ok(())
}
