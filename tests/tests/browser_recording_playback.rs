//! Browser test: a call recorded from real browsers (fake camera) plays in Chromium's own
//! `<video>` from the media endpoint, and seeks by range requests
//! (`tests/browser/recording_playback.mjs`). Set `BROWSER_OUT=DIR` to keep its screenshot.

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_plays_and_seeks_a_recorded_call() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(&server, "recording_playback.mjs", &[("--kiosk-url", &links.kiosk), ("--window-url", &links.window)])
        .await
}
