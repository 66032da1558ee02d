//! HTTPS has the same bounds as plain HTTP: one address holds at most
//! `connections_per_address` connections (one more is closed before any TLS work, while
//! another address is served), and a TLS handshake not done within `http_header_read_secs`
//! is closed, as a request head would be.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use cunneng_tests::server::Server;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

fn target(server: &Server) -> Result<SocketAddr> {
    Ok(server.base_url.trim_start_matches("https://").parse()?)
}

/// A TCP connection from `source` (another loopback address: another client) that sends
/// nothing, not even a TLS ClientHello.
async fn idle_from(server: &Server, source: &str) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse()?)?;
    Ok(socket.connect(target(server)?).await?)
}

/// `GET /healthz` over HTTPS from `source`; the status, or the error as text.
async fn health_from(server: &Server, source: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(source.parse::<IpAddr>().expect("an address"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    match client.get(format!("{}/healthz", server.base_url)).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(format!("{e:?}")),
    }
}

#[tokio::test]
async fn tls_connections_are_bounded_per_address() -> Result<()> {
    // Long enough that the idle connections stay for the whole first part.
    let env = [("CUNNENG_LIMITS__CONNECTIONS_PER_ADDRESS", "3"), ("CUNNENG_LIMITS__HTTP_HEADER_READ_SECS", "120")];
    let server = Server::start_with_env(&["--demo", "--tls-self-signed"], &env).await?;
    assert!(server.base_url.starts_with("https://"), "{}", server.base_url);

    // Three connections from one address that never say hello take its three places: a fourth
    // from there is refused, one from another address is served.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(idle_from(&server, "127.0.0.2").await?);
    }
    let refused = health_from(&server, "127.0.0.2").await;
    assert!(refused.is_err(), "a fourth connection from one address: {refused:?}");
    assert_eq!(health_from(&server, "127.0.0.3").await, Ok(200));
    let metrics = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?
        .get(format!("{}/metrics", server.base_url))
        .send()
        .await?
        .text()
        .await?;
    assert!(metrics.contains("connections_per_address"), "counted: {metrics}");

    // Closed, they give their places back.
    drop(idle);
    let mut served = false;
    for _ in 0..100 {
        if health_from(&server, "127.0.0.2").await == Ok(200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the address is served again once its connections closed");
    drop(server);

    // A handshake that does not come within `http_header_read_secs` is closed.
    let env = [("CUNNENG_LIMITS__HTTP_HEADER_READ_SECS", "2")];
    let server = Server::start_with_env(&["--demo", "--tls-self-signed"], &env).await?;
    let mut silent = idle_from(&server, "127.0.0.4").await?;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(60), silent.read(&mut buf))
        .await
        .context("the server kept a connection without a handshake open")?;
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer: {read:?}");
    // The address it came from is served.
    assert_eq!(health_from(&server, "127.0.0.4").await, Ok(200));
    Ok(())
}
