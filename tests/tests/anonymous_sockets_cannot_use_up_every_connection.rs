//! Anonymous clients cannot use up the server's connections: a WebSocket that has not said
//! `hello` holds only a slot of a small anonymous pool, and only for `ws_hello_secs`; one
//! address holds at most `ws_per_address` sockets and `connections_per_address` HTTP
//! connections; a request head not sent in full within `http_header_read_secs` is closed.
//! Meanwhile a kiosk from another address connects and gets its `welcome`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use cunneng_tests::client::{WsClient, demo_kiosks};
use cunneng_tests::server::Server;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A TCP connection to the server from `source` (another loopback address: another client).
async fn connect_from(server: &Server, source: &str) -> Result<TcpStream> {
    let target: SocketAddr = server.base_url.trim_start_matches("http://").parse()?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse()?)?;
    Ok(socket.connect(target).await?)
}

/// A WebSocket from `source` that never says hello; `Err` when the upgrade is refused.
async fn anonymous_ws(
    server: &Server,
    source: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let stream = connect_from(server, source).await.expect("tcp");
    tokio_tungstenite::client_async(server.ws_url(), stream).await.map(|(ws, _)| ws)
}

/// Read until the server closes the connection (or 60 s pass: a failure).
async fn closed_by_server(s: &mut TcpStream) -> Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .context("the server kept the connection open")?;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn anonymous_sockets_cannot_use_up_every_connection() -> Result<()> {
    let env = [
        ("CUNNENG_LIMITS__WS_PER_ADDRESS", "3"),
        ("CUNNENG_LIMITS__WS_ANONYMOUS", "5"),
        ("CUNNENG_LIMITS__WS_HELLO_SECS", "2"),
        ("CUNNENG_LIMITS__CONNECTIONS_PER_ADDRESS", "4"),
        ("CUNNENG_LIMITS__HTTP_HEADER_READ_SECS", "2"),
    ];
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let kiosk = demo_kiosks(&server).await?.remove(0);

    // One address: three sockets, the fourth is refused (503).
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(anonymous_ws(&server, "127.0.0.2").await?);
    }
    match anonymous_ws(&server, "127.0.0.2").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
        other => panic!("a fourth socket from one address: {:?}", other.map(|_| ())),
    }
    // Another address fills the anonymous pool (5): one more is refused.
    held.push(anonymous_ws(&server, "127.0.0.3").await?);
    held.push(anonymous_ws(&server, "127.0.0.3").await?);
    assert!(anonymous_ws(&server, "127.0.0.4").await.is_err(), "the anonymous pool is full");

    // Sockets that never say hello are closed (4401) once `ws_hello_secs` pass...
    for ws in &mut held {
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(m) = ws.next().await {
                if let Ok(Message::Close(frame)) = m {
                    return frame.map(|f| u16::from(f.code));
                }
            }
            None
        })
        .await
        .context("an anonymous socket stayed open")?;
        assert_eq!(closed, Some(4401));
    }
    // ...and their slots come back: the kiosk connects and is welcomed.
    let c = WsClient::connect(&server, &kiosk.token).await?;
    assert_eq!(c.welcome["type"], "welcome");

    // A half-sent request head is closed after `http_header_read_secs`.
    let mut half = connect_from(&server, "127.0.0.5").await?;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await?;
    closed_by_server(&mut half).await?;

    // One address holds at most four HTTP connections: the fifth is closed at once, while
    // another address is served.
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from(&server, "127.0.0.6").await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await?;
        open.push(s);
    }
    let mut fifth = connect_from(&server, "127.0.0.6").await?;
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = closed_by_server(&mut fifth).await?;
    assert!(answer.is_empty(), "the fifth connection got no answer: {answer}");
    let mut other = connect_from(&server, "127.0.0.7").await?;
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    let answer = closed_by_server(&mut other).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let metrics = reqwest::get(format!("{}/metrics", server.base_url)).await?.text().await?;
    for reason in ["ws_per_address", "ws_anonymous", "connections_per_address"] {
        assert!(metrics.contains(reason), "{reason} counted: {metrics}");
    }
    drop(open);
    Ok(())
}
