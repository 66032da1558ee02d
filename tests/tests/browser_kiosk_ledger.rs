//! The village ledger (台账) on the kiosk page in Chromium (`tests/browser/kiosk_ledger.mjs`):
//! this month's three cases of the room as the server lists them, printed as landscape A4 and
//! exported to Excel; the town's chief sees the same on the review page (村台账).

use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::cases::{Api, decided_case, setup};
use cunneng_tests::client::pairing;
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn browser_kiosk_prints_and_exports_its_ledger() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    decided_case(&server, &s, "done", Some(("good", "很快"))).await?;
    decided_case(&server, &s, "refused", Some(("bad", "没说清楚"))).await?;
    let (st, body) = Api::new(&server, &s.kiosk.token)
        .post("/api/cases", json!({"matter_id": s.matter_id, "villager": {"name": "欧阳明月", "phone": "13700002222"}}))
        .await?;
    anyhow::ensure!(st == 201, "prepared case: {st} {body}");
    let p = pairing(&server, 0).await?;
    anyhow::ensure!(p.kiosk.token == s.kiosk.token, "pairing 0 is not the ledger's kiosk");
    let links = page_links(&server, &p).await?;
    run_script(&server, "kiosk_ledger.mjs", &[("--kiosk-url", &links.kiosk), ("--chief-url", &links.chief)]).await
}
