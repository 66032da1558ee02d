//! Browser test of two group-call traps (issue 15, point 10;
//! `tests/browser/group_invite_while_queued.mjs`): a kiosk queued for the town window is warned
//! that accepting a group invitation gives up its place (declining keeps it), the dispatcher
//! invites a village that declined again, and the kiosk that then accepts joins without an
//! error. Set `BROWSER_OUT=DIR` to keep its 1366×768 screenshots.

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_a_queued_kiosk_is_warned_and_a_declining_village_is_invited_again() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(
        &server,
        "group_invite_while_queued.mjs",
        &[("--kiosk-url", &links.kiosk), ("--dispatcher-url", &links.dispatcher)],
    )
    .await
}
