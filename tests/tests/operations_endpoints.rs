//! Health, metrics, pages, and HTTPS with a self-signed certificate.

use cunneng_tests::client::{WsClient, get_json, http, pairing};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn healthz_metrics_and_pages_are_served() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    kiosk.send(json!({"type": "call.request", "matter_id": p.matter_id})).await?;
    kiosk.expect("queue.position").await?;

    let health = http().get(format!("{}/healthz", server.base_url)).send().await?;
    assert_eq!(health.status().as_u16(), 200);
    let metrics = http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
    for name in [
        "cunneng_queue_waiting",
        "cunneng_live_calls",
        "cunneng_connected_kiosks",
        "cunneng_forwarded_packets_total",
        "cunneng_forwarded_bytes_total",
        "cunneng_queue_estimated_wait_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    assert!(metrics.lines().any(|l| l.starts_with("cunneng_queue_waiting{") && l.ends_with(" 1")), "{metrics}");
    assert!(metrics.contains("cunneng_connected_kiosks 1"), "{metrics}");

    for page in ["/", "/login", "/kiosk", "/window", "/dispatcher"] {
        let resp = http().get(format!("{}{page}", server.base_url)).send().await?;
        assert_eq!(resp.status().as_u16(), 200, "{page}");
        let text = resp.text().await?;
        assert!(text.contains("<html"), "{page} is HTML");
    }
    let (s, body) = get_json(&server, "/api/nope", None).await?;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "not_found");
    Ok(())
}

#[tokio::test]
async fn self_signed_https_serves_pages_and_api() -> anyhow::Result<()> {
    let server = Server::start(&["--demo", "--tls-self-signed"]).await?;
    assert!(server.base_url.starts_with("https://"), "{}", server.base_url);
    let health = http().get(format!("{}/healthz", server.base_url)).send().await?;
    assert_eq!(health.status().as_u16(), 200);
    assert!(server.data_dir().join("tls/self-signed.crt").exists());
    let p = pairing(&server, 0).await?;
    let (s, me) = get_json(&server, "/api/me", Some(&p.kiosk.token)).await?;
    assert_eq!(s, 200, "{me}");
    let kiosk_page = http().get(format!("{}/kiosk", server.base_url)).send().await?;
    assert_eq!(kiosk_page.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn import_rejects_a_bad_region_file_and_changes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[[towns]]\nname = \"\"\n")?;
    let out = std::process::Command::new(cunneng_tests::server::binary_path())
        .args(["import", file.to_str().unwrap(), "--data-dir", dir.path().join("data").to_str().unwrap()])
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.is_empty(), "a clear error on stderr");
    Ok(())
}
