//! Running the browser scripts of `tests/browser/` (playwright-core driving Debian's chromium
//! with a fake camera and microphone) against a running server.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::client::{Pairing, get_json, login};
use crate::server::{DemoLink, Server};

/// The demo login links a browser test opens: the kiosk of a pairing, the approver at its
/// matter's window, and a chief and a dispatcher of the same town.
pub struct PageLinks {
    pub kiosk: String,
    pub window: String,
    pub chief: String,
    pub dispatcher: String,
}

async fn me_of(server: &Server, link: &DemoLink) -> Result<serde_json::Value> {
    let user = link.fragment_param("user").context("user")?;
    let password = link.fragment_param("password").context("password")?;
    let token = login(server, &user, &password).await?;
    Ok(get_json(server, "/api/me", Some(&token)).await?.1)
}

pub async fn page_links(server: &Server, p: &Pairing) -> Result<PageLinks> {
    let kiosk = server
        .links("kiosk")
        .into_iter()
        .find(|l| l.fragment_param("token").as_deref() == Some(p.kiosk.token.as_str()))
        .context("kiosk link")?
        .url
        .clone();
    let mut window = None;
    for link in server.links("window") {
        if me_of(server, link).await?["window"]["id"].as_i64() == Some(p.window_id) {
            window = Some(link.url.clone());
            break;
        }
    }
    Ok(PageLinks {
        kiosk,
        window: window.context("window link")?,
        chief: town_link(server, "chief", p.approver.town_id()).await?,
        dispatcher: town_link(server, "dispatcher", p.approver.town_id()).await?,
    })
}

/// The demo login link of a staff member of `role` (`chief`, `dispatcher`, `window`) in town
/// `town_id`.
pub async fn town_link(server: &Server, role: &str, town_id: i64) -> Result<String> {
    for link in server.links(role) {
        if me_of(server, link).await?["town"]["id"].as_i64() == Some(town_id) {
            return Ok(link.url.clone());
        }
    }
    bail!("no {role} link of town {town_id}")
}

/// Run `tests/browser/SCRIPT --base URL ARGS...`; fails with the script's output unless it
/// exits 0 and says PASS.
pub async fn run_script(server: &Server, script: &str, args: &[(&str, &str)]) -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !dir.join("node_modules/playwright-core").exists() {
        bail!("playwright-core is not installed: run ./scripts/test.sh (it runs `npm ci` in tests/browser)");
    }
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        bail!("/usr/bin/chromium is missing: run ./scripts/test.sh (it installs Debian's chromium)");
    }
    // Screenshots and test papers: a temporary directory, or `BROWSER_OUT/<script>` to keep
    // them (not a `CUNNENG_` variable: the server takes those as configuration).
    let tmp = tempfile::tempdir()?;
    let out_dir = match std::env::var_os("BROWSER_OUT") {
        Some(keep) => PathBuf::from(keep).join(script.trim_end_matches(".mjs")),
        None => tmp.path().to_path_buf(),
    };
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join(script)).args(["--base", &server.base_url]);
    for (flag, value) in args {
        cmd.arg(flag).arg(value);
    }
    let output = cmd.arg("--out-dir").arg(&out_dir).kill_on_drop(true).output().await.context("running node")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    if !output.status.success() || !stdout.contains("PASS") {
        bail!("browser script {script} failed ({}):\n{stdout}\n{stderr}", output.status);
    }
    Ok(())
}
