//! A clerk's and an approver's working day without dead ends (issue 15), in Chromium at
//! 1366×768 (`tests/browser/working_day.mjs`): the clerk's path to a ringing window in at most
//! 8 clicks with nothing out of view, the ranked keyword search, the re-scan dialog above the
//! viewer, no decision without the villager, the camera dialog that fits, a later 现场开单 in
//! the inbox, the ring banner on the case screen, the kiosk's case back after a reload (also
//! mid-queue), undecided calls from the server, the right words, and the smaller traps.

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_a_working_day_without_dead_ends() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(
        &server,
        "working_day.mjs",
        &[("--kiosk-url", &links.kiosk), ("--window-url", &links.window), ("--chief-url", &links.chief)],
    )
    .await
}
