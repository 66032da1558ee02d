//! The server holds at most `limits.open_connections` TCP connections, WebSockets included
//! (a socket keeps its connection's place). One more is answered `503 too_many_connections`
//! with `Retry-After`, except `/healthz` and `/metrics`, which a full server still serves; the
//! refusals are counted in `/metrics` and logged. A place given back is taken again. Past
//! `limits.max_connections` a WebSocket is refused with 1013, counted and logged too.

use std::time::Duration;

use anyhow::{Context, Result};
use cunneng_tests::client::{WsClient, demo_kiosks, eventually_async};
use cunneng_tests::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(server: &Server) -> String {
    server.base_url.trim_start_matches("http://").to_string()
}

/// `GET path` on a connection of its own, read to the end: the whole answer as text.
async fn get(server: &Server, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr(server)).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await.context("no answer")??;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// A keep-alive connection that has been answered once and stays open.
async fn kept_alive(server: &Server) -> Result<TcpStream> {
    let mut s = TcpStream::connect(addr(server)).await?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await.context("no answer")??;
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    anyhow::ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(s)
}

/// The log without its colours (ANSI escapes around field names).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn connections_past_the_limit_get_503_and_health_still_answers() -> Result<()> {
    let env = [
        ("CUNNENG_LIMITS__OPEN_CONNECTIONS", "4"),
        ("CUNNENG_LIMITS__MAX_CONNECTIONS", "3"),
        ("CUNNENG_LIMITS__WS_ANONYMOUS", "1"),
        ("CUNNENG_LIMITS__HTTP_HEADER_READ_SECS", "60"),
    ];
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let kiosks = demo_kiosks(&server).await?;

    // Three kiosk sockets and one idle keep-alive connection take the four places (the
    // connections that looked the kiosks up close first).
    let mut sockets = Vec::new();
    for k in &kiosks[..3] {
        sockets.push(WsClient::connect(&server, &k.token).await?);
    }
    let idle =
        eventually_async(Duration::from_secs(10), "a place for the keep-alive connection", || kept_alive(&server))
            .await?;

    // Full: an API request is answered 503 with Retry-After, and the connection closes.
    let refused = get(&server, "/api/matters").await?;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.to_ascii_lowercase().contains("retry-after: 5"), "{refused}");
    assert!(refused.contains("too_many_connections"), "{refused}");
    // A WebSocket too: the upgrade is refused.
    match WsClient::connect(&server, &kiosks[3].token).await {
        Ok(_) => panic!("a socket past limits.open_connections was opened"),
        Err(e) => assert!(format!("{e:#}").contains("503"), "{e:#}"),
    }
    // Monitoring still sees the full server.
    let health = get(&server, "/healthz").await?;
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok"), "{health}");
    let metrics = get(&server, "/metrics").await?;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("cunneng_open_connections_max 4"), "{metrics}");
    assert!(metrics.contains("cunneng_websockets 3"), "{metrics}");
    let refusals = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cunneng_rejected_total{reason=\"open_connections\"} "))
        .context("open_connections refusals counted")?;
    assert!(refusals.parse::<u64>()? >= 3, "{refusals}");
    // Logged for the operator, once for the flood, naming the limit.
    let log = plain(&server.log());
    assert!(log.contains("limits.open_connections (4) are open"), "{}", server.log_tail());

    // A kiosk leaves: its place is taken again.
    sockets.pop().context("a socket")?.close().await;
    let c = eventually_async(Duration::from_secs(10), "the freed place serves a kiosk", || {
        WsClient::connect(&server, &kiosks[3].token)
    })
    .await?;
    assert_eq!(c.welcome["type"], "welcome");
    drop(idle);
    Ok(())
}

#[tokio::test]
async fn websockets_past_max_connections_are_refused_and_logged() -> Result<()> {
    let server = Server::start_with_env(&["--demo"], &[("CUNNENG_LIMITS__MAX_CONNECTIONS", "2")]).await?;
    let kiosks = demo_kiosks(&server).await?;
    let _a = WsClient::connect(&server, &kiosks[0].token).await?;
    let _b = WsClient::connect(&server, &kiosks[1].token).await?;
    let mut third = WsClient::connect_raw(&server).await?;
    third.send(serde_json::json!({"type": "hello", "token": kiosks[2].token})).await?;
    let err = third.next(Duration::from_secs(10)).await?;
    assert_eq!(err["code"], "too_many_connections", "{err}");
    assert_eq!(third.closed().await?, Some(1013));

    let metrics = get(&server, "/metrics").await?;
    assert!(metrics.contains("cunneng_rejected_total{reason=\"connection_limit\"} 1"), "{metrics}");
    assert!(metrics.contains("cunneng_websockets_max 2"), "{metrics}");
    let log = plain(&server.log());
    let line =
        log.lines().find(|l| l.contains("limits.max_connections (2) are open")).context("the refusal is logged")?;
    // The line says which limit and how many, and names nobody.
    assert!(line.contains("refused=1"), "{line}");
    for k in &kiosks[..3] {
        assert!(!line.contains(&k.token), "{line}");
    }
    assert!(!line.contains("127.0.0.1"), "{line}");
    Ok(())
}
