//! One kiosk cannot stall every upload in the county: a kiosk that opens chunk `PUT`s and
//! never finishes their bodies holds at most `paper_chunks_per_client` receiving slots (one
//! more is 429), each stalled body is broken off after `paper_body_idle_secs` (408), and
//! meanwhile another village's upload goes through. Several kiosks trickling bodies a byte at a
//! time are broken off by the minimum rate.

use std::time::Duration;

use anyhow::{Context, Result};
use cunneng_tests::cases::{Api, pdf, setup};
use cunneng_tests::server::Server;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A chunk `PUT` that declares `declared` bytes and sends only the first `sent`.
async fn stalled_put(server: &Server, token: &str, path: &str, sent: &[u8], declared: usize) -> Result<TcpStream> {
    let addr = server.base_url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(sent).await?;
    s.flush().await?;
    Ok(s)
}

async fn status_line(s: &mut TcpStream) -> Result<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await.context("no answer")??;
    Ok(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn one_kiosk_cannot_stall_every_upload() -> Result<()> {
    let env = [
        ("CUNNENG_LIMITS__PAPER_CHUNKS_RECEIVING", "3"),
        ("CUNNENG_LIMITS__PAPER_CHUNKS_PER_CLIENT", "2"),
        ("CUNNENG_LIMITS__PAPER_BODY_IDLE_SECS", "2"),
    ];
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let a = setup(&server, 0, false).await?;
    let b = setup(&server, 1, false).await?;
    assert_ne!(a.kiosk.me["village"]["id"], b.kiosk.me["village"]["id"]);
    let attacker = Api::new(&server, &a.kiosk.token);
    let (_, case) = attacker.post("/api/cases", json!({"matter_id": a.matter_id})).await?;
    let case_no = case["case_no"].as_str().context("case_no")?.to_string();

    let paper = pdf(20_000);
    let mut stalled = Vec::new();
    for i in 0..3 {
        let (st, start) = attacker
            .start_upload(&case_no, json!({"name": format!("{i}.pdf"), "size": paper.len(), "kind": "scan"}))
            .await?;
        assert_eq!(st, 201, "{start}");
        let path = format!("{}?offset=0", start["url"].as_str().unwrap());
        stalled.push(stalled_put(&server, &a.kiosk.token, &path, &paper[..100], paper.len()).await?);
    }
    // The third body of the same kiosk is refused at once.
    let third = status_line(&mut stalled[2]).await?;
    assert!(third.contains("429"), "{third}");

    // Another village uploads meanwhile.
    let other = Api::new(&server, &b.kiosk.token);
    let (_, case) = other.post("/api/cases", json!({"matter_id": b.matter_id})).await?;
    let other_no = case["case_no"].as_str().context("case_no")?.to_string();
    let stored = other.upload(&other_no, "b.pdf", &paper, None, "scan", 64 * 1024).await?;
    assert_eq!(stored["size"], paper.len());

    // The stalled bodies are broken off (408) and their slots come back.
    for s in &mut stalled[..2] {
        let line = status_line(s).await?;
        assert!(line.contains("408"), "{line}");
    }
    let stored = attacker.upload(&case_no, "a.pdf", &paper, None, "scan", 64 * 1024).await?;
    assert_eq!(stored["size"], paper.len());
    let metrics = reqwest::get(format!("{}/metrics", server.base_url)).await?.text().await?;
    assert!(metrics.contains("paper_body_stalled"), "{metrics}");
    Ok(())
}

/// Several kiosks together: each sends its chunk body a byte at a time, never silent for
/// `paper_body_idle_secs`, so that only the minimum rate (`paper_body_min_bytes_per_sec`, after
/// the first `paper_body_idle_secs`) breaks them off (408); a third village's upload, which
/// waited for a receiving place they held, then goes through, long before the bodies' overall
/// limit.
#[tokio::test]
async fn kiosks_trickling_together_cannot_stall_every_upload() -> Result<()> {
    let env = [
        ("CUNNENG_LIMITS__PAPER_CHUNKS_RECEIVING", "2"),
        ("CUNNENG_LIMITS__PAPER_CHUNKS_PER_CLIENT", "1"),
        ("CUNNENG_LIMITS__PAPER_BODY_IDLE_SECS", "2"),
        ("CUNNENG_LIMITS__PAPER_BODY_MAX_SECS", "300"),
        ("CUNNENG_LIMITS__PAPER_RECEIVE_WAIT_SECS", "60"),
    ];
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let paper = pdf(20_000);
    let mut trickles = Vec::new();
    for nth in 0..2 {
        let s = setup(&server, nth, false).await?;
        let kiosk = Api::new(&server, &s.kiosk.token);
        let (_, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
        let case_no = case["case_no"].as_str().context("case_no")?.to_string();
        let (st, start) =
            kiosk.start_upload(&case_no, json!({"name": "slow.pdf", "size": paper.len(), "kind": "scan"})).await?;
        assert_eq!(st, 201, "{start}");
        let path = format!("{}?offset=0", start["url"].as_str().context("url")?);
        let (mut read, mut write) =
            stalled_put(&server, &s.kiosk.token, &path, &paper[..1], paper.len()).await?.into_split();
        // A byte every half second: never idle for 2 s, about 2 bytes a second.
        let writer = tokio::spawn(async move {
            for _ in 0..240 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if write.write_all(b"%").await.is_err() || write.flush().await.is_err() {
                    break;
                }
            }
        });
        trickles.push((
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(120), read.read(&mut buf))
                    .await
                    .context("no answer")??;
                anyhow::Ok(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string())
            }),
            writer,
        ));
    }
    // Both receiving places are held now; a third village's upload waits for one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = setup(&server, 2, false).await?;
    let other = Api::new(&server, &third.kiosk.token);
    let (_, case) = other.post("/api/cases", json!({"matter_id": third.matter_id})).await?;
    let other_no = case["case_no"].as_str().context("case_no")?.to_string();
    let t0 = std::time::Instant::now();
    let stored = other.upload(&other_no, "c.pdf", &paper, None, "scan", 64 * 1024).await?;
    assert_eq!(stored["size"], paper.len());
    for (answer, writer) in trickles {
        let line = answer.await??;
        assert!(line.contains("408"), "a trickling body was answered {line}");
        writer.abort();
    }
    // Broken off by the rate, not by the 300 s overall limit.
    assert!(t0.elapsed() < Duration::from_secs(120), "the honest upload waited {:?}", t0.elapsed());
    Ok(())
}
