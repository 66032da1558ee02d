//! Browser test: the county administrator sets up a town on `/admin` (`tests/browser/admin.mjs`)
//! against the demo server: logs in at `/login` and lands on `/admin`; creates a town, a village,
//! a matter with its required papers, a window of the town taking that matter, an approver at
//! the window (the temporary password is shown once and logs in, asking for a new password), the
//! village's kiosk and its enrolment code (shown 4-4 with its QR code and expiry, and accepted by
//! `POST /api/enrol`); disables and enables the village; deleting the town its village refers
//! to is refused (409 `in_use`) and said clearly, with 改为停用; the town filter narrows the
//! lists. Every change is checked against the server's lists; screenshots of each section at
//! 1366×768, the controls inside the viewport. Set `BROWSER_OUT=DIR` to keep the screenshots.

use cunneng_tests::browser::run_script;
use cunneng_tests::server::Server;

#[tokio::test]
async fn browser_admin_sets_up_a_town() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let admin = server.link("admin").url.clone();
    run_script(&server, "admin.mjs", &[("--admin-url", &admin)]).await
}
