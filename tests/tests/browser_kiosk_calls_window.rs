//! The browser test: Debian's chromium with a fake camera and microphone opens the kiosk page
//! and the window page of the real server; the kiosk calls, the window answers, and both
//! pages decode the other side's video (getStats inbound-rtp framesDecoded > 0). The script is
//! `tests/browser/kiosk_calls_window.mjs` (playwright-core, installed by scripts/test.sh).

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_kiosk_calls_window_and_both_decode_video() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(&server, "kiosk_calls_window.mjs", &[("--kiosk-url", &links.kiosk), ("--window-url", &links.window)])
        .await
}
