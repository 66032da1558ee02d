//! argon2id hashes (19 MiB each) run at most `limits.password_hashes_at_once` at a time: a burst
//! of logins from everywhere waits a little (`limits.password_hash_wait_ms`) for a permit and is then answered 503 `busy` with
//! `Retry-After` (never 500, nothing changed), and once the burst is over the right password
//! logs in again.

use anyhow::{Context, Result};
use cunneng_tests::client::{http, login};
use cunneng_tests::server::Server;
use serde_json::json;

/// Logins sent at once (below `limits.connections_per_address`, 64: they come from one address).
const BURST: usize = 48;

#[tokio::test]
async fn password_hashes_at_once_are_bounded() -> Result<()> {
    // One hash at a time and no waiting for it (so that the refusals do not depend on how fast
    // this machine hashes); the login limits out of the way.
    let env = [
        ("CUNNENG_LIMITS__PASSWORD_HASHES_AT_ONCE", "1"),
        ("CUNNENG_LIMITS__PASSWORD_HASH_WAIT_MS", "0"),
        ("CUNNENG_LIMITS__LOGIN_ADDRESS_BURST", "10000"),
        ("CUNNENG_LIMITS__LOGIN_ACCOUNT_BURST", "10000"),
    ];
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let link = server.link("supervisor");
    let (user, password) =
        (link.fragment_param("user").context("user")?, link.fragment_param("password").context("pw")?);

    // Wrong passwords on the real account and on unknown ones (the dummy hash is bounded too).
    let client = http();
    let mut attempts = Vec::new();
    for i in 0..BURST {
        let (client, base) = (client.clone(), server.base_url.clone());
        let username = if i % 2 == 0 { user.clone() } else { format!("nobody-{i}") };
        attempts.push(tokio::spawn(async move {
            let resp = client
                .post(format!("{base}/api/login"))
                .json(&json!({"username": username, "password": format!("guess-{i}")}))
                .send()
                .await?;
            let status = resp.status().as_u16();
            let retry: Option<u64> =
                resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            anyhow::Ok((status, retry, body["error"]["code"].as_str().unwrap_or_default().to_string()))
        }));
    }
    let mut answers = Vec::new();
    for a in attempts {
        answers.push(a.await??);
    }
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(!busy.is_empty(), "one hash at a time cannot answer {BURST} logins within the wait: {answers:?}");
    assert!(busy.iter().all(|a| a.2 == "busy" && a.1.is_some_and(|r| r >= 1)), "503 busy with Retry-After: {busy:?}");
    assert!(answers.iter().any(|a| a.0 == 401), "some were checked: {answers:?}");
    assert!(answers.iter().all(|a| a.0 == 401 || a.0 == 503), "only 401 or 503, never 500: {answers:?}");

    // The burst is over: the right password logs in.
    let token = login(&server, &user, &password).await?;
    let resp = http().get(format!("{}/api/me", server.base_url)).bearer_auth(&token).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    let metrics = http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
    assert!(metrics.contains("password_hashes_busy"), "the busy answers are counted");
    Ok(())
}
