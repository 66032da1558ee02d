//! Every page, static asset and API answer of the real server carries the security headers of
//! `cunneng_web::security_headers` (CSP with the request's own host for ws:/wss:, nosniff,
//! no-referrer, DENY framing, camera and microphone for the site itself only), and a header a
//! handler sets itself (a paper's nosniff) is not doubled. The pages' words module
//! (`/static/words.js`) is served, as a script, by the server itself.

use cunneng_tests::client::http;
use cunneng_tests::server::Server;

#[tokio::test]
async fn pages_assets_and_api_carry_the_security_headers() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let host = server.base_url.trim_start_matches("http://").to_string();
    let client = http();
    for path in [
        "/",
        "/login",
        "/kiosk",
        "/window",
        "/dispatcher",
        "/progress",
        "/admin",
        "/static/kiosk.js",
        "/static/words.js",
        "/static/app.css",
        "/api/me",
        "/healthz",
        "/no-such-page",
    ] {
        let resp = client.get(format!("{}{path}", server.base_url)).send().await?;
        let headers = resp.headers();
        let one = |name: &str| {
            let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("?")).collect();
            assert_eq!(values.len(), 1, "{path}: {name} {values:?}");
            values[0].to_string()
        };
        let csp = one("content-security-policy");
        assert_eq!(csp, cunneng_web::content_security_policy(Some(&host)), "{path}");
        assert!(csp.contains(&format!("connect-src 'self' ws://{host} wss://{host};")), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("frame-src 'self' blob:"), "{path}: {csp}");
        assert_eq!(one("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(one("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(one("x-frame-options"), "DENY", "{path}");
        assert!(one("permissions-policy").contains("camera=(self), microphone=(self)"), "{path}");
    }
    // The words module is rendered by the server, as a script, from case::words.
    let resp = client.get(format!("{}/static/words.js", server.base_url)).send().await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], cunneng_web::SCRIPT_CONTENT_TYPE);
    let words = resp.text().await?;
    assert!(
        words.contains("export const STATUS = Object.freeze({") && words.contains("\"missing\": \"需补充材料\""),
        "{words}"
    );
    // A Host header that could break out of the policy adds nothing to it.
    let resp =
        client.get(format!("{}/kiosk", server.base_url)).header("host", "evil.example;script-src *").send().await?;
    let csp = resp.headers()["content-security-policy"].to_str()?.to_string();
    assert_eq!(csp, cunneng_web::content_security_policy(None));
    Ok(())
}
