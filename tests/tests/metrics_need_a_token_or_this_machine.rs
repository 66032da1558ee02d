//! `/metrics` is not open to whoever reaches the public port. Without `metrics.token_file`
//! only direct requests from the machine itself are answered (a request forwarded by a proxy
//! on the same machine is not); with it, only requests carrying its bearer token, from any
//! address. A token file that is missing or too short stops the start, saying which file.

use anyhow::Result;
use cunneng_tests::client::http;
use cunneng_tests::server::Server;

const TOKEN: &str = "metrics-token-0123456789abcdef";

async fn get(server: &Server, headers: &[(&str, &str)]) -> Result<(u16, Option<String>, String)> {
    let mut req = http().get(format!("{}/metrics", server.base_url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok((status, challenge, resp.text().await?))
}

#[tokio::test]
async fn without_a_token_only_direct_requests_of_this_machine_read_the_metrics() -> Result<()> {
    let server = Server::start(&[]).await?;
    let (status, _, text) = get(&server, &[]).await?;
    assert_eq!(status, 200);
    assert!(text.contains("cunneng_"), "{text}");
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let (status, _, body) = get(&server, &[(header, "203.0.113.9")]).await?;
        assert_eq!(status, 403, "{header}: {body}");
        assert!(body.contains("metrics.token_file"), "the refusal says what to set: {body}");
        assert!(!body.contains("cunneng_"), "no figure in a refusal");
    }
    Ok(())
}

#[tokio::test]
async fn with_a_token_file_every_request_needs_the_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("metrics.token");
    std::fs::write(&file, format!("{TOKEN}\n"))?;
    let env = [("CUNNENG_METRICS__TOKEN_FILE", file.to_str().unwrap())];
    let server = Server::start_with_env(&[], &env).await?;
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, text) = get(&server, &[("authorization", &bearer)]).await?;
    assert_eq!(status, 200);
    assert!(text.contains("cunneng_"), "{text}");
    // A proxied request with the token is fine: the token is the rule now.
    let (status, _, _) = get(&server, &[("authorization", &bearer), ("x-forwarded-for", "203.0.113.9")]).await?;
    assert_eq!(status, 200);
    let wrong = format!("Bearer {TOKEN}x");
    for headers in [vec![], vec![("authorization", wrong.as_str())], vec![("authorization", "Basic bWU6bWU=")]] {
        let (status, challenge, body) = get(&server, &headers).await?;
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        assert!(!body.contains("cunneng_"), "no figure in a refusal");
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_or_short_token_file_stops_the_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("nowhere.token");
    let short = dir.path().join("short.token");
    std::fs::write(&short, "short\n")?;
    for file in [&missing, &short] {
        let env = [("CUNNENG_METRICS__TOKEN_FILE", file.to_str().unwrap())];
        let err = Server::start_with_env(&[], &env).await.err().expect("the server must not start");
        let text = format!("{err:#}");
        assert!(text.contains("metrics.token_file") && text.contains(&file.display().to_string()), "{text}");
    }
    Ok(())
}
