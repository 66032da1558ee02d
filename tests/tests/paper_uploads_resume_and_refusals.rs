//! Paper uploads over a weak link (docs/cases-api.md "Papers"): an upload broken off halfway
//! is resumed from the offset the server kept; every bad upload gets a clear 4xx and stores
//! nothing (the object directory gains no file).

use std::time::Duration;

use anyhow::Context;
use cunneng_tests::cases::{Api, assert_error, jpeg, object_files, pdf, png, setup};
use cunneng_tests::server::Server;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Open a case ahead of a call (no call needed for papers).
async fn open_case(server: &Server) -> anyhow::Result<(Api, String, Vec<String>)> {
    let s = setup(server, 0, false).await?;
    let api = Api::new(server, &s.kiosk.token);
    let (st, case) = api.post("/api/cases", json!({"matter_id": s.matter_id})).await?;
    anyhow::ensure!(st == 201, "{case}");
    let items =
        s.matter["required_papers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    Ok((api, case["case_no"].as_str().unwrap().to_string(), items))
}

fn host_port(server: &Server) -> String {
    server.base_url.trim_start_matches("http://").to_string()
}

/// Send a PUT whose headers promise `promised` bytes but whose body stops after `body`, then
/// drop the connection (a weak link going down mid-chunk).
async fn broken_put(server: &Server, token: &str, path: &str, promised: usize, body: &[u8]) -> anyhow::Result<()> {
    let mut tcp = TcpStream::connect(host_port(server)).await?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/pdf\r\n\
         Content-Length: {promised}\r\n\r\n",
        host_port(server)
    );
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body).await?;
    tcp.flush().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(tcp);
    Ok(())
}

#[tokio::test]
async fn upload_broken_off_halfway_is_resumed() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let (api, case_no, items) = open_case(&server).await?;
    let paper = pdf(3_000_000);
    let (st, start) = api
        .start_upload(&case_no, json!({"name": "申请表.pdf", "size": paper.len(), "checklist_item": items[0]}))
        .await?;
    assert_eq!(st, 201, "{start}");
    assert_eq!(start["chunk_max"], 4 * 1024 * 1024);
    let url = start["url"].as_str().context("url")?.to_string();
    let token = api.token.clone().unwrap();

    // The first megabyte arrives (a chunk over the 1 MiB JSON body limit: chunks have their own).
    let (st, r) = api.put_bytes(&format!("{url}?offset=0"), paper[..1_200_000].to_vec(), "application/pdf").await?;
    assert_eq!((st, r["offset"].as_u64(), r["complete"].as_bool()), (200, Some(1_200_000), Some(false)), "{r}");

    // The link drops in the middle of the second chunk.
    broken_put(&server, &token, &format!("{url}?offset=1200000"), 1_000_000, &paper[1_200_000..1_600_000]).await?;

    // The page asks where to go on: the server kept only what it stored whole.
    let (st, status) = api.get(&url).await?;
    assert_eq!(st, 200);
    assert_eq!((status["offset"].as_u64(), status["complete"].as_bool()), (Some(1_200_000), Some(false)), "{status}");
    // A wrong offset is refused with the right one.
    let a = api.put_bytes(&format!("{url}?offset=1600000"), paper[1_600_000..].to_vec(), "application/pdf").await?;
    assert_error(&a, 409, "offset_mismatch");
    assert_eq!(a.1["offset"], 1_200_000);
    // Nothing but sealed chunks so far.
    assert!(object_files(&server).iter().all(|f| f.to_string_lossy().contains("/uploads/")));

    // (The server may take a moment to notice the dropped connection: `upload_busy` meanwhile.)
    let mut tries = 0;
    let (st, r) = loop {
        let a =
            api.put_bytes(&format!("{url}?offset=1200000"), paper[1_200_000..2_500_000].to_vec(), "text/plain").await?;
        tries += 1;
        if a.1["error"]["code"] != "upload_busy" || tries > 50 {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((st, r["offset"].as_u64()), (200, Some(2_500_000)), "{r}");
    let (st, r) = api.put_bytes(&format!("{url}?offset=2500000"), paper[2_500_000..].to_vec(), "text/plain").await?;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["complete"], true);
    let p = &r["paper"];
    assert_eq!((p["size"].as_u64(), p["content_type"].as_str()), (Some(3_000_000), Some("application/pdf")));
    assert_eq!(p["checklist_item"], items[0].as_str());

    // The answer to the last chunk got lost: sending it again is harmless.
    let (st, again) =
        api.put_bytes(&format!("{url}?offset=2500000"), paper[2_500_000..].to_vec(), "text/plain").await?;
    assert_eq!((st, &again["paper"]["id"]), (201, &p["id"]));
    let (_, status) = api.get(&url).await?;
    assert_eq!((status["complete"].as_bool(), &status["paper"]["id"]), (Some(true), &p["id"]));

    let (st, _, bytes) = api.get_bytes(p["url"].as_str().unwrap()).await?;
    assert_eq!(st, 200);
    assert!(bytes == paper, "the paper comes back byte for byte");
    let files = object_files(&server);
    assert_eq!(files.len(), 1, "one sealed paper, no chunks left: {files:?}");
    assert!(files[0].to_string_lossy().contains("/papers/"));
    let (_, case) = api.get(&format!("/api/cases/{case_no}")).await?;
    assert_eq!(case["papers"].as_array().unwrap().len(), 1);

    // An upload can be abandoned; its chunks go with it.
    let (_, s2) = api.start_upload(&case_no, json!({"name": "照片.png", "size": 100_000})).await?;
    let url2 = s2["url"].as_str().unwrap().to_string();
    let (st, _) = api.put_bytes(&format!("{url2}?offset=0"), png(100_000)[..50_000].to_vec(), "image/png").await?;
    assert_eq!(st, 200);
    assert_eq!(object_files(&server).len(), 2);
    assert_eq!(api.delete(&url2).await?.0, 204);
    assert_eq!(api.get(&url2).await?.0, 404);
    assert_eq!(object_files(&server), files);
    Ok(())
}

#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let (api, case_no, _) = open_case(&server).await?;
    let before = object_files(&server);
    assert!(before.is_empty(), "{before:?}");

    // Over the size limit: refused from the declared size, before any byte is sent.
    let a = api.start_upload(&case_no, json!({"name": "big.pdf", "size": 20 * 1024 * 1024 + 1})).await?;
    assert_error(&a, 413, "too_large");

    // A chunk over the chunk limit, or past the declared size: refused by its Content-Length.
    let (_, s) = api.start_upload(&case_no, json!({"name": "big.pdf", "size": 6 * 1024 * 1024})).await?;
    let url = s["url"].as_str().unwrap().to_string();
    // Only the head is sent: the answer must come from Content-Length alone, before any body.
    let mut tcp = TcpStream::connect(host_port(&server)).await?;
    let head = format!(
        "PUT {url}?offset=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/pdf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        api.token.as_deref().unwrap(),
        4 * 1024 * 1024 + 1
    );
    tcp.write_all(head.as_bytes()).await?;
    let mut resp = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut resp)).await??;
    let resp = String::from_utf8_lossy(&resp[..n]);
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    drop(tcp);
    let (_, s) = api.start_upload(&case_no, json!({"name": "small.pdf", "size": 100})).await?;
    let small = s["url"].as_str().unwrap().to_string();
    let a = api.put_bytes(&format!("{small}?offset=0"), pdf(101), "application/pdf").await?;
    assert_error(&a, 413, "too_large");
    // ... and without a Content-Length (chunked transfer), cut off at the limit.
    let mut tcp = TcpStream::connect(host_port(&server)).await?;
    let head = format!(
        "PUT {small}?offset=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
        api.token.as_deref().unwrap()
    );
    tcp.write_all(head.as_bytes()).await?;
    let body = pdf(200);
    tcp.write_all(format!("{:x}\r\n", body.len()).as_bytes()).await?;
    tcp.write_all(&body).await?;
    tcp.write_all(b"\r\n0\r\n\r\n").await?;
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");

    // Not PDF, JPEG or PNG by content, whatever the name and Content-Type say.
    for (name, bytes, ct) in [
        ("scan.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec(), "application/pdf"),
        ("photo.png", b"<html><script>alert(1)</script></html>".to_vec(), "image/png"),
        ("photo.jpg", b"GIF89a\x01\x00\x01\x00\x00\x00".to_vec(), "image/jpeg"),
        ("doc.pdf", b"PK\x03\x04\x14\x00\x06\x00".to_vec(), "application/pdf"),
    ] {
        let (st, s) = api.start_upload(&case_no, json!({"name": name, "size": bytes.len()})).await?;
        assert_eq!(st, 201, "{s}");
        let url = s["url"].as_str().unwrap().to_string();
        let a = api.put_bytes(&format!("{url}?offset=0"), bytes, ct).await?;
        assert_error(&a, 415, "unsupported_type");
        assert_eq!(api.get(&url).await?.0, 404, "the refused upload is gone");
    }

    // Names with path tricks: refused (names are labels; keys are generated).
    for name in
        ["../../etc/passwd.pdf", "a/b.pdf", "..\\..\\x.pdf", ".htaccess", "", "x\u{0}.pdf", "evil\u{202E}fdp.exe"]
    {
        let a = api.start_upload(&case_no, json!({"name": name, "size": 1000})).await?;
        assert_error(&a, 400, "bad_name");
    }
    // Other bad starts.
    assert_error(&api.start_upload(&case_no, json!({"name": "a.pdf", "size": 0})).await?, 400, "bad_request");
    let a =
        api.start_upload(&case_no, json!({"name": "a.pdf", "size": 1000, "checklist_item": "不存在的材料"})).await?;
    assert_error(&a, 400, "bad_request");
    let a = api.start_upload(&case_no, json!({"name": "a.pdf", "size": 1000, "kind": "other"})).await?;
    assert_error(&a, 400, "bad_request");
    assert_error(
        &api.start_upload("ZH-19990101-0001", json!({"name": "a.pdf", "size": 1000})).await?,
        404,
        "not_found",
    );
    let (_, s) = api.start_upload(&case_no, json!({"name": "tiny-first.jpg", "size": 1000})).await?;
    let url = s["url"].as_str().unwrap().to_string();
    let a = api.put_bytes(&format!("{url}?offset=0"), jpeg(1000)[..4].to_vec(), "image/jpeg").await?;
    assert_error(&a, 400, "bad_request");
    let a = api.put_bytes(&url, jpeg(1000), "image/jpeg").await?;
    assert_error(&a, 400, "bad_request"); // no offset
    let a = api.put_bytes(&format!("/api/cases/{case_no}/uploads/../../x?offset=0"), jpeg(10), "image/jpeg").await?;
    assert!((400..500).contains(&a.0) && a.0 != 401, "{a:?}");
    // Without a token nothing happens at all.
    let anon = Api::anonymous(&server);
    assert_error(&anon.start_upload(&case_no, json!({"name": "a.pdf", "size": 1000})).await?, 401, "unauthorized");

    assert_eq!(object_files(&server), before, "nothing was stored");
    let (_, case) = api.get(&format!("/api/cases/{case_no}")).await?;
    assert!(case["papers"].as_array().unwrap().is_empty());
    // Too many unfinished uploads on one case.
    let mut last = (0, serde_json::Value::Null);
    for i in 0..10 {
        last = api.start_upload(&case_no, json!({"name": format!("p{i}.pdf"), "size": 1000})).await?;
        if last.0 != 201 {
            break;
        }
    }
    assert_error(&last, 429, "too_many_uploads");
    Ok(())
}
