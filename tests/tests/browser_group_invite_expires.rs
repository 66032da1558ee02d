//! Browser test: the town dispatcher's group call rings a village kiosk, nobody answers, and the
//! invitation lapses (`queue.group_invite_timeout_secs`, set short here): the kiosk's prompt
//! closes, it stops ringing and says so in plain words, the dispatcher sees 没有应答; a second
//! invitation is answered (`tests/browser/group_invite_expires.mjs`). Set
//! `BROWSER_OUT=DIR` to keep its 1366×768 screenshots.

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;

const INVITE_SECS: &str = "4";

#[tokio::test]
async fn browser_unanswered_group_invite_lapses_and_the_kiosk_stops_ringing() -> anyhow::Result<()> {
    let server =
        Server::start_with_env(&["--demo"], &[("CUNNENG_QUEUE__GROUP_INVITE_TIMEOUT_SECS", INVITE_SECS)]).await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    run_script(
        &server,
        "group_invite_expires.mjs",
        &[("--kiosk-url", &links.kiosk), ("--dispatcher-url", &links.dispatcher), ("--invite-secs", INVITE_SECS)],
    )
    .await
}
