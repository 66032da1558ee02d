//! The papers of a live call in Chromium (`tests/browser/window_papers.mjs`, issue 15): the
//! kiosk re-tags a wrongly tagged scan and removes one scanned by mistake (after asking), the
//! window sees both at once, and after the decision neither is offered; the window page at
//! 1366×768 and 1280×800 shows the paper viewer beside the live video, not over it, with its
//! controls in view. Set `BROWSER_OUT=DIR` to keep the screenshots.

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_papers_are_corrected_live_and_viewed_beside_the_video() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(&server, "window_papers.mjs", &[("--kiosk-url", &links.kiosk), ("--window-url", &links.window)]).await
}
