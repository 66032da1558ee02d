//! Guessing passwords is limited: per account (from anywhere) and per client address, a burst
//! of attempts and then 429 with `Retry-After`, answered before any password is hashed, so a
//! flood neither guesses on nor starves the database pool. Other accounts and the rest of the
//! API keep answering.

use anyhow::{Context, Result};
use cunneng_tests::client::{http, login};
use cunneng_tests::server::Server;
use serde_json::json;

async fn attempt(server: &Server, user: &str, password: &str) -> Result<(u16, Option<u64>)> {
    let resp = http()
        .post(format!("{}/api/login", server.base_url))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await?;
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    Ok((resp.status().as_u16(), retry))
}

#[tokio::test]
async fn login_is_limited_before_any_password_is_hashed() -> Result<()> {
    // Per account: 3 in a burst, then one a minute; per address: 6 in a burst.
    let env = [
        ("CUNNENG_LIMITS__LOGIN_ACCOUNT_BURST", "3"),
        ("CUNNENG_LIMITS__LOGIN_ACCOUNT_REFILL_SECS", "60"),
        ("CUNNENG_LIMITS__LOGIN_ADDRESS_BURST", "6"),
        ("CUNNENG_LIMITS__LOGIN_ADDRESS_REFILL_SECS", "60"),
    ];
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let link = server.link("supervisor");
    let (user, password) =
        (link.fragment_param("user").context("user")?, link.fragment_param("password").context("pw")?);

    // Fifteen wrong guesses on one account: three are answered 401, the rest 429.
    let mut answers = Vec::new();
    for i in 0..15 {
        answers.push(attempt(&server, &user, &format!("guess-{i}")).await?);
    }
    assert!(answers[..3].iter().all(|a| a.0 == 401), "{answers:?}");
    assert!(answers[3..].iter().all(|a| a.0 == 429), "{answers:?}");
    let retry = answers[3].1.context("429 carries Retry-After")?;
    assert!((1..=60).contains(&retry), "{retry}");
    // Even the right password waits (the account is limited, not the guess); the user name is
    // one account in any case.
    assert_eq!(attempt(&server, &user, &password).await?.0, 429);
    assert_eq!(attempt(&server, &user.to_uppercase(), &password).await?.0, 429);

    // Another account from the same address still logs in (the address has budget left)...
    let other = server.link("window");
    let token =
        login(&server, &other.fragment_param("user").unwrap(), &other.fragment_param("password").unwrap()).await?;
    assert!(!token.is_empty());
    // ...until the address's own budget is spent on guesses across accounts.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(attempt(&server, &format!("nobody-{i}"), "x").await?.0);
    }
    assert!(statuses.contains(&401) && statuses.last() == Some(&429), "{statuses:?}");

    // The rest of the API is not affected.
    let resp = http().get(format!("{}/api/me", server.base_url)).bearer_auth(&token).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    let metrics = http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
    assert!(metrics.contains("login_rate"), "the refusals are counted");
    Ok(())
}
