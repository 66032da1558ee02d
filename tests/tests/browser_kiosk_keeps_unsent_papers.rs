//! The kiosk page never loses a clerk's scans (issue 10): in Chromium, a paper whose upload
//! the link broke off survives a reload and a browser restart (IndexedDB) and then finishes by
//! itself from where the server stood (`tests/browser/kiosk_keeps_unsent_papers.mjs`).

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_kiosk_keeps_unsent_papers_across_a_reload_and_a_restart() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(&server, "kiosk_keeps_unsent_papers.mjs", &[("--kiosk-url", &links.kiosk)]).await
}
