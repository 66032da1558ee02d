//! The browser test: Debian's chromium with a fake camera and microphone opens the kiosk page
//! and the window page of the real server; the kiosk calls, the window answers, and both
//! pages decode the other side's video (getStats inbound-rtp framesDecoded > 0). The script is
//! `tests/browser/kiosk_calls_window.mjs` (playwright-core, installed by scripts/test.sh).

use std::path::PathBuf;

use anyhow::{Context, bail};
use cunneng_tests::client::{login, pairing};
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_kiosk_calls_window_and_both_decode_video() -> anyhow::Result<()> {
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
    // The window link of the approver at the matter's window.
    let mut window_url = None;
    for link in server.links("window") {
        let token =
            login(&server, &link.fragment_param("user").unwrap(), &link.fragment_param("password").unwrap()).await?;
        if token.is_empty() {
            continue;
        }
        let (_, me) = cunneng_tests::client::get_json(&server, "/api/me", Some(&token)).await?;
        if me["window"]["id"].as_i64() == Some(p.window_id) {
            window_url = Some(link.url.clone());
            break;
        }
    }
    let window_url = window_url.context("window link")?;
    let out_dir = tempfile::tempdir()?;

    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("kiosk_calls_window.mjs"))
        .args(["--base", &server.base_url, "--kiosk-url", &kiosk_url, "--window-url", &window_url])
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
