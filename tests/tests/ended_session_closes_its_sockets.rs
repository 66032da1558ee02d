//! Whatever ends a session closes its sockets: after a logout, the session's open WebSocket
//! gets `unauthorized` and is closed (4401) at once, so it can no longer set presence; a
//! session removed by other means (revoked, expired) is found by the socket's periodic check
//! (`limits.ws_recheck_secs`). Other sessions are not touched.

use std::time::Duration;

use anyhow::Result;
use cunneng_tests::client::{WsClient, demo_staff, http};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn ended_session_closes_its_sockets() -> Result<()> {
    let server = Server::start_with_env(&["--demo"], &[("CUNNENG_LIMITS__WS_RECHECK_SECS", "1")]).await?;
    let staff = demo_staff(&server, "window").await?;
    let (token, other) = (staff[0].token.clone(), staff[1].token.clone());
    let mut ws = WsClient::connect(&server, &token).await?;
    let mut kept = WsClient::connect(&server, &other).await?;
    ws.send(json!({"type": "presence.set", "presence": "available"})).await?;
    ws.expect_where("presence", |m| m["presence"] == "available").await?;

    let resp = http().post(format!("{}/api/logout", server.base_url)).bearer_auth(&token).send().await?;
    assert_eq!(resp.status().as_u16(), 204);
    let err = ws.expect("error").await?;
    assert_eq!(err["code"], "unauthorized", "{err}");
    assert_eq!(ws.closed().await?, Some(4401));

    // Another session keeps its socket.
    kept.send(json!({"type": "ping", "req": 1})).await?;
    kept.expect("pong").await?;

    // A session removed behind the server's back (revoked) is found by the periodic check.
    let db = rusqlite::Connection::open(server.data_dir().join("cunneng.sqlite3"))?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.execute("DELETE FROM sessions", [])?;
    drop(db);
    let err = kept.expect("error").await?;
    assert_eq!(err["code"], "unauthorized", "{err}");
    assert_eq!(kept.closed().await?, Some(4401));
    Ok(())
}
