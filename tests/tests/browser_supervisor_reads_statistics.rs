//! Browser test: a supervisor reads the statistics on `/stats` (`tests/browser/stats.mjs`)
//! after a small known history (two decided cases in one town, rated with comments, one in
//! another town): from the review page's 统计 button, the cards, both charts drawn on canvas,
//! the tables equal to `/api/stats` and following a change of grouping and breakdown, the
//! Excel and CSV downloads; a town chief, from his window page's 统计 link, sees his town only.
//! Set `BROWSER_OUT=DIR` to keep its screenshots.

use cunneng_tests::browser::{run_script, town_link};
use cunneng_tests::cases::{decided_case, setup, setup_in_another_town};
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_supervisor_reads_statistics() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let a = setup(&server, 0, false).await?;
    let b = setup_in_another_town(&server, a.kiosk.town_id(), false).await?;
    decided_case(&server, &a, "done", Some(("good", "很方便,不用跑镇上"))).await?;
    decided_case(&server, &a, "refused", Some(("bad", "等得太久"))).await?;
    decided_case(&server, &b, "done", None).await?;

    let supervisor = server.link("supervisor").url.clone();
    let chief = town_link(&server, "chief", a.kiosk.town_id()).await?;
    let town = a.kiosk.town_id().to_string();
    run_script(
        &server,
        "stats.mjs",
        &[
            ("--supervisor-url", &supervisor),
            ("--chief-url", &chief),
            ("--chief-town", &town),
            ("--total-cases", "3"),
            ("--chief-cases", "2"),
        ],
    )
    .await
}
