//! Browser test: a supervisor reviews a recorded case on `/review`
//! (`tests/browser/review_case.mjs`): lands there from the login, finds the case, plays both
//! sides of the call in sync and seeks to a timeline mark, sees the viewing in the case's
//! access list, places and lifts a legal hold with reasons, downloads the export; a supervisor
//! of another town finds nothing. Set `BROWSER_OUT=DIR` to keep its screenshots.

use std::process::Command;

use anyhow::Context;
use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::{get_json, login_as, pairing};
use cunneng_tests::server::{Server, binary_path};

#[tokio::test]
async fn browser_supervisor_reviews_a_recorded_case() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    let supervisor = server.link("supervisor").url.clone();

    // A supervisor limited to a town other than the call's.
    let token = login_as(&server, "supervisor").await?;
    let (_, choices) = get_json(&server, "/api/review/choices", Some(&token)).await?;
    let other = choices["towns"]
        .as_array()
        .context("towns")?
        .iter()
        .find(|t| t["id"].as_i64() != Some(p.approver.town_id()))
        .and_then(|t| t["name"].as_str())
        .context("a second town")?
        .to_string();
    let file = server.data_dir().join("other-town-supervisor.toml");
    std::fs::write(
        &file,
        format!(
            "[[accounts]]\nusername = \"other-sup\"\ndisplay_name = \"邻镇纪委\"\nrole = \"supervisor\"\n\
             town = \"{other}\"\npassword = \"other-sup-pw-1\"\n"
        ),
    )?;
    let out = Command::new(binary_path())
        .args(["import", file.to_str().unwrap(), "--data-dir", server.data_dir().to_str().unwrap()])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    run_script(
        &server,
        "review_case.mjs",
        &[
            ("--kiosk-url", &links.kiosk),
            ("--window-url", &links.window),
            ("--supervisor-url", &supervisor),
            ("--other-town-url", "/login#user=other-sup&password=other-sup-pw-1"),
        ],
    )
    .await
}
