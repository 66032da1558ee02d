//! The second browser test: Debian's chromium drives the kiosk, an approver's window page and a
//! window chief's page of the real server through the rest of a case's life
//! (`tests/browser/case_flows.mjs`): an upload broken off and resumed, 现场开单 and a supplement
//! call on the same case, 一审一核 sent back and approved, the inbox, a 放心回家 case finished
//! from the desk, a booking and a progress lookup.

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_case_flows_from_papers_to_sign_off() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(
        &server,
        "case_flows.mjs",
        &[("--kiosk-url", &links.kiosk), ("--window-url", &links.window), ("--chief-url", &links.chief)],
    )
    .await
}
