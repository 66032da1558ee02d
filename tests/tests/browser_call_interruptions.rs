//! Browser test: a live call between the kiosk and window pages whose sides drop
//! (`tests/browser/call_interruptions.mjs`): the window's "village side gone" notice comes with
//! `call.peer_reconnecting` and goes with `call.peer_reconnected`; when the approver drops, the
//! kiosk is told the call is back at the head of the queue (`call.requeued`) and the window,
//! back again, answers it from there. Set `BROWSER_OUT=DIR` to keep its screenshots.

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_call_survives_drops_on_either_side() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(&server, "call_interruptions.mjs", &[("--kiosk-url", &links.kiosk), ("--window-url", &links.window)])
        .await
}
