//! An upload whose bytes are all in is never stuck: when storing the paper fails after its
//! last chunk was counted (here the store cannot create `papers/`), the upload stands at
//! `offset = size` without a paper; once the store works again, the next `GET` of the upload
//! or `PUT` at that offset finishes it and answers with the paper.

use anyhow::{Context, Result};
use cunneng_tests::cases::{Api, pdf, setup};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn stuck_upload_is_finished_by_the_next_request() -> Result<()> {
    let server = Server::start_demo().await?;
    let s = setup(&server, 0, false).await?;
    let kiosk = Api::new(&server, &s.kiosk.token);
    let (st, case) = kiosk.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    assert_eq!(st, 201, "{case}");
    let case_no = case["case_no"].as_str().unwrap().to_string();

    // The store cannot take papers: a file where the `papers/` directory would go.
    let blocker = server.data_dir().join("objects").join("papers");
    std::fs::write(&blocker, b"not a directory")?;

    let paper = pdf(3000);
    let mut urls = Vec::new();
    for name in ["a.pdf", "b.pdf"] {
        let (st, start) =
            kiosk.start_upload(&case_no, json!({"name": name, "size": paper.len(), "kind": "scan"})).await?;
        assert_eq!(st, 201, "{start}");
        let url = start["url"].as_str().context("url")?.to_string();
        let (st, body) = kiosk.put_bytes(&format!("{url}?offset=0"), paper.clone(), "application/octet-stream").await?;
        assert!(st >= 500, "storing the paper fails: {st} {body}");
        urls.push(url);
    }
    // Every byte is counted, no paper: the attack's state.
    let (st, body) = kiosk.get(&urls[0]).await?;
    assert!(st >= 500 || body["complete"] == false, "{st} {body}");

    // The store works again: a GET finishes one upload, a PUT at `offset = size` the other.
    std::fs::remove_file(&blocker)?;
    let (st, body) = kiosk.get(&urls[0]).await?;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["complete"], true, "{body}");
    assert_eq!(body["offset"], paper.len());
    let first = body["paper"]["url"].as_str().context("paper url")?.to_string();

    let (st, body) =
        kiosk.put_bytes(&format!("{}?offset={}", urls[1], paper.len()), Vec::new(), "application/octet-stream").await?;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["complete"], true, "{body}");
    // Asked again, the answer is the same paper (no second one).
    let (st, again) = kiosk.get(&urls[1]).await?;
    assert_eq!((st, &again["paper"]["id"]), (200, &body["paper"]["id"]), "{again}");

    for url in [first, body["paper"]["url"].as_str().unwrap().to_string()] {
        let (st, _, bytes) = kiosk.get_bytes(&url).await?;
        assert_eq!(st, 200);
        assert_eq!(bytes, paper);
    }
    let (_, view) = kiosk.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(view["papers"].as_array().map(Vec::len), Some(2), "{view}");
    Ok(())
}
