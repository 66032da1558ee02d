//! A recording's media is served decrypted on the fly (docs/cases-api.md, "Recording media"):
//! any range of an archive or a segment is exactly the bytes `cunneng decrypt` gives for the
//! same object, locally, from the spool while the store is down, and from S3 (Garage); 206,
//! 416, If-Range and ETag as RFC 9110 says; only those who may see the case's recordings get
//! them; a small range of a large object reads a small part of it, and serving all of it
//! never holds it in memory.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cunneng_tests::client::{Who, demo_staff, http, login_as, pairing};
use cunneng_tests::garage::Garage;
use cunneng_tests::peer::PeerOptions;
use cunneng_tests::recorded::{decrypt, start_call_with, wait_recordings};
use cunneng_tests::server::Server;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// One answer: status, headers, body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn request(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Answer> {
    let mut req = http().request(method, format!("{}{path}", server.base_url)).timeout(Duration::from_secs(120));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Ok(Answer { status, headers, body: resp.bytes().await?.to_vec() })
}

async fn get(server: &Server, path: &str, token: &str, headers: &[(&str, &str)]) -> Result<Answer> {
    request(server, reqwest::Method::GET, path, Some(token), headers).await
}

/// A 206 for `range` whose body is `want` (checked with the headers that go with it).
async fn assert_partial(
    server: &Server,
    path: &str,
    token: &str,
    range: &str,
    all: &[u8],
    want: std::ops::Range<usize>,
) {
    let a = get(server, path, token, &[("range", range)]).await.unwrap();
    assert_eq!(a.status, 206, "{path} {range}: {}", String::from_utf8_lossy(&a.body));
    let content_range = format!("bytes {}-{}/{}", want.start, want.end - 1, all.len());
    assert_eq!(a.header("content-range"), content_range, "{path} {range}");
    assert_eq!(a.header("content-length"), (want.end - want.start).to_string());
    assert_eq!(a.header("accept-ranges"), "bytes");
    assert!(a.body == all[want.clone()], "{path} {range}: not the bytes {want:?} of the decrypted object");
}

fn decrypted(server: &Server, env: &[(&str, &str)], key: &str, dir: &Path) -> Result<Vec<u8>> {
    let file = dir.join(key.replace('/', "_"));
    decrypt(server, env, key, &file)?;
    Ok(std::fs::read(file)?)
}

/// Lines the server logged for media it served (`service::access::recording_played`), without
/// their colours.
fn played(server: &Server) -> Vec<String> {
    let plain = |line: &str| {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|c| c.is_ascii_alphabetic());
            } else {
                out.push(c);
            }
        }
        out
    };
    server.log().lines().map(plain).filter(|l| l.contains("recording played")).collect()
}

async fn wait_played(server: &Server, n: usize) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines = played(server);
        if lines.len() >= n || tokio::time::Instant::now() > deadline {
            return Ok(lines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rchar`: bytes the process read (files and sockets).
fn bytes_read(pid: u32) -> Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    Ok(io.lines().find_map(|l| l.strip_prefix("rchar: ")).context("rchar")?.trim().parse()?)
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let v = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).context("status field")?;
    Ok(v.trim().trim_end_matches("kB").trim().parse()?)
}

/// Run `f` and return its result with how far the resident set of `pid` rose above what it
/// was before (kB): the kernel's peak (reset first through `clear_refs`) and samples taken
/// every 5 ms, whichever is higher.
async fn rss_rise<T>(pid: u32, f: impl std::future::Future<Output = T>) -> Result<(T, u64)> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting the peak resident set")?;
    let base = status_kb(pid, "VmRSS")?;
    let sampled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base));
    let s = sampled.clone();
    let sampler = tokio::spawn(async move {
        loop {
            if let Ok(rss) = status_kb(pid, "VmRSS") {
                s.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let out = f.await;
    sampler.abort();
    let peak = status_kb(pid, "VmHWM")?.max(sampled.load(std::sync::atomic::Ordering::Relaxed));
    Ok((out, peak.saturating_sub(base)))
}

/// Video of about 30 KB a second: a 12 s recording spans several 64 KiB chunks.
fn peers() -> PeerOptions {
    PeerOptions { video_padding: 1000, ..PeerOptions::default() }
}

/// A call of about 12 s (two segments per participant), hung up; its complete recordings.
async fn recorded_call(
    server: &Server,
    approver: &Who,
    p: &cunneng_tests::client::Pairing,
) -> Result<(String, Vec<Value>)> {
    let call = start_call_with(server, p, peers()).await?;
    let case_no = call.case_no.clone();
    tokio::time::sleep(Duration::from_secs(12)).await;
    call.hang_up().await?;
    let recs = wait_recordings(server, &approver.token, &case_no, |r| {
        r.len() == 2 && r.iter().all(|x| x["status"] == "complete")
    })
    .await?;
    Ok((case_no, recs))
}

#[tokio::test]
async fn archive_and_segments_answer_ranges_with_exactly_the_decrypted_bytes() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let token = p.approver.token.clone();
    let (case_no, recs) = recorded_call(&server, &p.approver, &p).await?;
    let out = tempfile::tempdir()?;
    let rec = &recs[0];
    let id = rec["id"].as_i64().context("recording id")?;
    let base = format!("/api/cases/{case_no}/recordings/{id}");
    let archive_path = format!("{base}/archive");
    let archive = decrypted(&server, &[], rec["archive_key"].as_str().context("archive key")?, out.path())?;
    let len = archive.len();
    assert!(len > 3 * 65536, "a 12 s archive spans several 64 KiB chunks: {len} bytes");
    let mut served = 0; // media responses with a body: each is one `recording played` line

    // The whole archive: 200, the decrypted bytes, and the headers a player needs.
    let a = get(&server, &archive_path, &token, &[]).await?;
    served += 1;
    assert_eq!(a.status, 200);
    assert!(a.body == archive, "GET without Range is the whole decrypted archive");
    assert_eq!(a.header("content-type"), "video/webm");
    assert_eq!(a.header("accept-ranges"), "bytes");
    assert_eq!(a.header("cache-control"), "private, no-store");
    assert_eq!(a.header("content-length"), len.to_string());
    let etag = a.header("etag").to_string();
    assert!(etag.len() == 34 && etag.starts_with('"') && etag.ends_with('"'), "a strong ETag: {etag}");

    // Ranges of every form, across chunk boundaries, clipped at the end.
    for (range, want) in [
        ("bytes=0-99".to_string(), 0..100),
        ("bytes=0-0".to_string(), 0..1),
        ("bytes=65530-65545".to_string(), 65530..65546),
        ("bytes=65536-196607".to_string(), 65536..196608),
        ("bytes=1000-".to_string(), 1000..len),
        ("bytes=-500".to_string(), len - 500..len),
        (format!("bytes={}-{}", len - 10, len + 1000), len - 10..len),
        (format!("bytes=-{}", len + 5), 0..len),
    ] {
        assert_partial(&server, &archive_path, &token, &range, &archive, want).await;
        served += 1;
    }
    // Unsatisfiable: 416 with the length; malformed: 400. Neither is a playback.
    for range in [format!("bytes={len}-"), "bytes=-0".to_string(), format!("bytes={}-{}", len + 1, len + 9)] {
        let a = get(&server, &archive_path, &token, &[("range", &range)]).await?;
        assert_eq!(a.status, 416, "{range}");
        assert_eq!(a.header("content-range"), format!("bytes */{len}"));
        assert_eq!(a.json()["error"]["code"], "range_not_satisfiable");
    }
    let a = get(&server, &archive_path, &token, &[("range", "bytes=9-1")]).await?;
    assert_eq!((a.status, a.json()["error"]["code"].as_str()), (400, Some("bad_request")));
    // Another unit or several ranges: ignored, the whole archive.
    for range in ["items=0-9", "bytes=0-9,20-29"] {
        let a = get(&server, &archive_path, &token, &[("range", range)]).await?;
        served += 1;
        assert_eq!(a.status, 200, "{range}");
        assert!(a.body == archive);
    }
    // If-Range: the current ETag keeps the Range; any other validator gets the whole archive.
    let a = get(&server, &archive_path, &token, &[("range", "bytes=10-19"), ("if-range", &etag)]).await?;
    served += 1;
    assert_eq!((a.status, &a.body[..]), (206, &archive[10..20]));
    for stale in ["\"00000000000000000000000000000000\"", &format!("W/{etag}"), "Tue, 01 Dec 2026 10:00:00 GMT"] {
        let a = get(&server, &archive_path, &token, &[("range", "bytes=10-19"), ("if-range", stale)]).await?;
        served += 1;
        assert_eq!(a.status, 200, "If-Range {stale}");
        assert!(a.body == archive);
    }
    // HEAD: the same headers, no body, no playback.
    let a = request(&server, reqwest::Method::HEAD, &archive_path, Some(&token), &[]).await?;
    assert_eq!((a.status, a.header("content-length"), a.body.len()), (200, len.to_string().as_str(), 0));
    assert_eq!(a.header("etag"), etag);
    let a = request(&server, reqwest::Method::HEAD, &archive_path, Some(&token), &[("range", "bytes=0-99")]).await?;
    assert_eq!((a.status, a.header("content-length")), (206, "100"));

    // A segment: a complete file of its own, with its own ETag.
    let seg_key = rec["segments"][0].as_str().context("segment key")?;
    let segment = decrypted(&server, &[], seg_key, out.path())?;
    let seg_path = format!("{base}/segments/0");
    let a = get(&server, &seg_path, &token, &[]).await?;
    served += 1;
    assert_eq!((a.status, a.header("content-type")), (200, "video/webm"));
    assert!(a.body == segment);
    assert_ne!(a.header("etag"), etag);
    assert_partial(&server, &seg_path, &token, "bytes=100-70000", &segment, 100..70001).await;
    served += 1;
    let n = rec["segments"].as_array().map_or(0, |s| s.len());
    let last = decrypted(&server, &[], rec["segments"][n - 1].as_str().unwrap(), out.path())?;
    assert_partial(
        &server,
        &format!("{base}/segments/{}", n - 1),
        &token,
        "bytes=-1",
        &last,
        last.len() - 1..last.len(),
    )
    .await;
    served += 1;

    // What is not there: 404, and nothing played.
    for missing in [
        format!("{base}/segments/{n}"),
        format!("/api/cases/{case_no}/recordings/999999/archive"),
        format!("/api/cases/XX-00000000-0000/recordings/{id}/archive"),
        format!("{base}/segments/x"),
    ] {
        let a = get(&server, &missing, &token, &[]).await?;
        assert!(matches!(a.status, 400 | 404), "{missing}: {}", a.status);
    }
    // A recording of this case asked for under another case of the town: 404.
    let (st, other) = cunneng_tests::cases::Api::new(&server, &p.kiosk.token)
        .post("/api/cases", json!({"matter_id": p.matter_id}))
        .await?;
    assert_eq!(st, 201, "{other}");
    let other_path = format!("/api/cases/{}/recordings/{id}/archive", other["case_no"].as_str().unwrap());
    assert_eq!(get(&server, &other_path, &token, &[]).await?.status, 404);

    // Who may play: town staff of the case's town and supervisors; not the village room, not
    // dispatchers, not another town's staff, not without a token.
    let supervisor = demo_staff(&server, "supervisor").await?.remove(0);
    let chief = demo_staff(&server, "chief").await?.into_iter().find(|c| c.town_id() == p.approver.town_id());
    for who in [&supervisor.token, &chief.context("a chief of the town")?.token] {
        assert_partial(&server, &archive_path, who, "bytes=5-9", &archive, 5..10).await;
        served += 1;
    }
    let dispatcher = login_as(&server, "dispatcher").await?;
    let other_town = demo_staff(&server, "window").await?.into_iter().find(|a| a.town_id() != p.approver.town_id());
    let other_town = other_town.context("an approver of another town")?;
    for (who, status) in [(&p.kiosk.token, 403), (&dispatcher, 403), (&other_town.token, 403)] {
        for path in [&archive_path, &seg_path] {
            let a = get(&server, path, who, &[("range", "bytes=0-9")]).await?;
            assert_eq!(a.status, status, "{path}: {}", String::from_utf8_lossy(&a.body));
            assert!(a.header("content-type").starts_with("application/json"));
        }
    }
    let a = request(&server, reqwest::Method::GET, &archive_path, None, &[]).await?;
    assert_eq!(a.status, 401);

    // The cookie for <video src>: set for town staff, refused to the village room; it alone
    // is enough for the media (and a bogus one is not).
    let a = request(&server, reqwest::Method::POST, "/api/playback-cookie", Some(&token), &[]).await?;
    assert_eq!(a.status, 204);
    let set_cookie = a.header("set-cookie").to_string();
    for attr in ["cunneng_media=", "Path=/api/cases/", "HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let a = request(&server, reqwest::Method::GET, &archive_path, None, &[("cookie", &cookie), ("range", "bytes=0-9")])
        .await?;
    served += 1;
    assert_eq!((a.status, &a.body[..]), (206, &archive[..10]));
    let a = request(&server, reqwest::Method::POST, "/api/playback-cookie", Some(&p.kiosk.token), &[]).await?;
    assert_eq!(a.status, 403);
    let a = request(&server, reqwest::Method::GET, &archive_path, None, &[("cookie", "cunneng_media=00ff")]).await?;
    assert_eq!(a.status, 401);

    // Every media response with a body was reported once, with who and which bytes; none of
    // the refusals, HEADs or 416s was.
    let lines = wait_played(&server, served).await?;
    assert_eq!(lines.len(), served, "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains(&format!("user_id={}", supervisor.id())) && l.contains("range_start=5")));
    assert!(lines.iter().all(|l| l.contains(&format!("recording_id={id}")) && !l.contains(&token)));

    // A segment gone from the store without being destroyed: 503 media_missing, not an
    // internal error (destroyed by retention it is 410, below).
    std::fs::remove_file(server.data_dir().join("objects").join(rec["segments"][1].as_str().unwrap()))?;
    let a = get(&server, &format!("{base}/segments/1"), &token, &[]).await?;
    assert_eq!((a.status, a.json()["error"]["code"].as_str()), (503, Some("media_missing")));

    // One byte of the archive's fourth chunk changed on disk: ranges before it are still
    // served exactly; a response that reaches it breaks off, never whole.
    let file = server.data_dir().join("objects").join(rec["archive_key"].as_str().unwrap());
    let mut sealed = std::fs::read(&file)?;
    let (_, header_len) = cunneng_storage::Header::parse(&sealed)?;
    sealed[header_len + 16 + 3 * (65536 + 25) + 9 + 100] ^= 0x01;
    std::fs::write(&file, &sealed)?;
    assert_partial(&server, &archive_path, &token, "bytes=0-99", &archive, 0..100).await;
    for range in [None, Some("bytes=196700-196800")] {
        let mut req = http().get(format!("{}{archive_path}", server.base_url)).bearer_auth(&token);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = req.send().await?;
        assert!(matches!(resp.status().as_u16(), 200 | 206), "{range:?}: {}", resp.status());
        let body = resp.bytes().await;
        assert!(body.is_err(), "{range:?}: a response through the damaged chunk looked whole");
    }
    assert!(server.log().contains("a recording being played cannot be read"));

    // Under legal hold the media moves to the hold area and plays from there; once the hold is
    // lifted and a year has passed, it is destroyed: 410 destroyed, with its date.
    let other = &recs[1];
    let other_path = format!("/api/cases/{case_no}/recordings/{}/archive", other["id"]);
    let other_archive = decrypted(&server, &[], other["archive_key"].as_str().unwrap(), out.path())?;
    let sup = cunneng_tests::cases::Api::new(&server, &supervisor.token);
    let (st, body) = sup.put(&format!("/api/cases/{case_no}/legal-hold"), json!({"reason": "复议"})).await?;
    assert_eq!(st, 200, "{body}");
    let swept = sweep(&server, 30)?;
    assert!(swept.contains("moved to the legal-hold area"), "{swept}");
    let held = server.data_dir().join("objects/legal-hold").join(other["archive_key"].as_str().unwrap());
    assert!(held.exists(), "the archive is in the hold area");
    assert_partial(
        &server,
        &other_path,
        &token,
        "bytes=-2000",
        &other_archive,
        other_archive.len() - 2000..other_archive.len(),
    )
    .await;
    let (st, body) = sup.delete(&format!("/api/cases/{case_no}/legal-hold")).await?;
    assert!(matches!(st, 200 | 204), "{st} {body}");
    let swept = sweep(&server, 366)?;
    assert!(!swept.contains("destroyed 0"), "{swept}");
    let a = get(&server, &other_path, &token, &[("range", "bytes=0-9")]).await?;
    assert_eq!((a.status, a.json()["error"]["code"].as_str()), (410, Some("destroyed")), "{}", a.json());
    assert!(a.json()["error"]["message"].as_str().unwrap_or("").contains("已销毁"));

    // The audit record: each viewer's playing of the recording is one `recording.played`
    // access, written before the first byte; how much was watched is written when the viewing
    // ends (here: at shutdown).
    let (_, review) = sup.get(&format!("/api/review/cases/{case_no}")).await?;
    let plays: Vec<&serde_json::Value> =
        review["access"].as_array().unwrap().iter().filter(|e| e["action"] == "recording.played").collect();
    assert!(
        plays.iter().any(|e| e["actor"]["id"] == supervisor.id() && e["detail"]["recording_id"] == id),
        "{plays:#?}"
    );
    let viewings: std::collections::HashSet<String> =
        plays.iter().map(|e| format!("{}/{}", e["actor"]["id"], e["detail"]["recording_id"])).collect();
    assert_eq!(plays.len(), viewings.len(), "one entry per viewer and recording: {plays:#?}");
    server.stop().await?;
    let db = rusqlite::Connection::open(server.data_dir().join("cunneng.sqlite3"))?;
    let watched: i64 = db.query_row(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'recording.watched' AND json_extract(detail, '$.bytes') > 0",
        [],
        |r| r.get(0),
    )?;
    assert!(watched >= 1, "no viewing was summed up");
    Ok(())
}

/// `cunneng retention sweep` as if `days_ahead` days had passed.
fn sweep(server: &Server, days_ahead: u64) -> Result<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let out = std::process::Command::new(cunneng_tests::server::binary_path())
        .args(["retention", "sweep", "--as-of-ms", &(now + days_ahead * 86_400_000).to_string(), "--data-dir"])
        .arg(server.data_dir())
        .output()?;
    if !out.status.success() {
        bail!("sweep: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn a_small_range_of_a_large_object_reads_little_and_serving_it_all_holds_little() -> Result<()> {
    // One stream at a time, ended after 2 s without progress (for the bounds, at the end).
    let limits = [("CUNNENG_LIMITS__MEDIA_STREAMS", "1"), ("CUNNENG_LIMITS__MEDIA_STREAM_IDLE_SECS", "2")];
    let server = Server::start_with_env(&["--demo"], &limits).await?;
    let p = pairing(&server, 0).await?;
    let (case_no, recs) = recorded_call(&server, &p.approver, &p).await?;
    // The archive of one participant becomes a 64 MiB object sealed with the server's key
    // (as a one-hour call would be, about 400 MB, only smaller).
    let rec = &recs[1];
    let key = rec["archive_key"].as_str().context("archive key")?;
    let ring = cunneng_storage::KeyRing::load(&server.data_dir().join("keys/kek.toml"))?;
    let plain: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let id = cunneng_storage::ObjectId::new(key)?;
    let sealed = cunneng_storage::seal(ring.active(), cunneng_storage::ObjectClass::MEDIA, id, &plain)?;
    std::fs::write(server.data_dir().join("objects").join(key), &sealed)?;
    let path = format!("/api/cases/{case_no}/recordings/{}/archive", rec["id"]);
    let pid = server.pid().context("pid")?;

    let read0 = bytes_read(pid)?;
    let a = get(&server, &path, &p.approver.token, &[("range", "bytes=30000000-30000099")]).await?;
    assert_eq!(a.status, 206);
    assert!(a.body == plain[30_000_000..30_000_100]);
    let small = bytes_read(pid)? - read0;
    eprintln!("100 bytes of a {} byte object: the server read {small} bytes", sealed.len());
    // Header, final record and one 64 KiB record (132 KB), plus the manifest, the database
    // and the request itself.
    assert!(small < 512 * 1024, "reading 100 bytes made the server read {small} bytes");

    let read1 = bytes_read(pid)?;
    let (a, rise) = rss_rise(pid, get(&server, &path, &p.approver.token, &[])).await?;
    let a = a?;
    assert_eq!(a.status, 200);
    assert!(a.body == plain, "the whole object, decrypted");
    let all = bytes_read(pid)? - read1;
    eprintln!("the whole object: the server read {all} bytes; its resident set rose by {rise} kB at most");
    assert!(all >= sealed.len() as u64, "the measure counts the object's reads ({all} bytes)");
    // Chunk by chunk: nothing like the object's 64 MiB is ever held.
    assert!(rise < 16 * 1024, "the resident set rose by {rise} kB");

    // A client that stops reading holds the one stream: another is refused (503, Retry-After)
    // until the stalled one has been idle for 2 s and ended; its response was cut short.
    let metric = |text: &str| text.lines().find_map(|l| l.strip_prefix("cunneng_media_streams ")).map(str::to_owned);
    let metrics = || async { http().get(format!("{}/metrics", server.base_url)).send().await?.text().await };
    let stalled = http().get(format!("{}{path}", server.base_url)).bearer_auth(&p.approver.token).send().await?;
    let t0 = std::time::Instant::now();
    assert_eq!(stalled.status(), 200);
    assert_eq!(metric(&metrics().await?).as_deref(), Some("1"));
    let a = get(&server, &path, &p.approver.token, &[("range", "bytes=0-9")]).await?;
    assert_eq!((a.status, a.json()["error"]["code"].as_str()), (503, Some("streams_busy")));
    assert_eq!(a.header("retry-after"), "2");
    // It ends once the connection's buffers are full and 2 s pass without progress (later
    // on a loaded machine: filling the buffers takes longer).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(&metrics().await?).as_deref() != Some("0") {
        assert!(tokio::time::Instant::now() < deadline, "the stalled stream never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(t0.elapsed() >= Duration::from_secs(2), "ended after {:?}, before it was idle 2 s", t0.elapsed());
    let a = get(&server, &path, &p.approver.token, &[("range", "bytes=0-9")]).await?;
    assert_eq!((a.status, &a.body[..]), (206, &plain[..10]));
    let cut = stalled.bytes().await.map(|b| b.len());
    assert!(!matches!(cut, Ok(n) if n == plain.len()), "a stream ended idle never looks whole: {cut:?}");
    let lines = wait_played(&server, 4).await?;
    assert!(lines.iter().any(|l| l.contains("complete=false")), "{lines:#?}");

    // A stalled stream does not keep the server from stopping.
    let _stalled = http().get(format!("{}{path}", server.base_url)).bearer_auth(&p.approver.token).send().await?;
    let mut server = server;
    let t0 = std::time::Instant::now();
    let status = server.stop().await?;
    assert!(status.success(), "{status:?}");
    eprintln!("stopped in {:?} with a stalled media stream open", t0.elapsed());
    Ok(())
}

#[tokio::test]
async fn an_incomplete_recording_has_no_archive_and_its_segments_play() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let call = start_call_with(&server, &p, peers()).await?;
    let case_no = call.case_no.clone();
    tokio::time::sleep(Duration::from_secs(12)).await;
    server.kill9().await?;
    drop(call);
    server.restart().await?;
    let recs = wait_recordings(&server, &p.approver.token, &case_no, |r| r.len() == 2).await?;
    let out = tempfile::tempdir()?;
    for rec in &recs {
        assert_eq!(rec["status"], "incomplete");
        let base = format!("/api/cases/{case_no}/recordings/{}", rec["id"]);
        let a = get(&server, &format!("{base}/archive"), &p.approver.token, &[]).await?;
        assert_eq!((a.status, a.json()["error"]["code"].as_str()), (404, Some("no_archive")));
        let seg = decrypted(&server, &[], rec["segments"][0].as_str().context("a closed segment")?, out.path())?;
        let path = format!("{base}/segments/0");
        let a = get(&server, &path, &p.approver.token, &[]).await?;
        // Without a manifest the media type comes from the key.
        assert_eq!((a.status, a.header("content-type")), (200, "video/webm"));
        assert!(a.body == seg);
        assert_partial(&server, &path, &p.approver.token, "bytes=1-65536", &seg, 1..65537).await;
    }
    Ok(())
}

#[tokio::test]
async fn media_is_served_from_the_spool_while_the_store_is_down_and_from_garage_after() -> Result<()> {
    let mut garage = Garage::start().await?;
    let env = garage.server_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let p = pairing(&server, 0).await?;
    let token = p.approver.token.clone();
    let call = start_call_with(&server, &p, peers()).await?;
    let case_no = call.case_no.clone();
    tokio::time::sleep(Duration::from_secs(12)).await;
    // The store goes down before the call ends: the last segments, the archives and the
    // manifests wait in the spool.
    garage.stop().await?;
    call.hang_up().await?;
    let recs =
        wait_recordings(&server, &token, &case_no, |r| r.len() == 2 && r.iter().all(|x| x["status"] == "complete"))
            .await?;
    let ranges = ["bytes=0-99", "bytes=65500-140000", "bytes=-1000"];
    let mut from_spool = Vec::new();
    for rec in &recs {
        let base = format!("/api/cases/{case_no}/recordings/{}", rec["id"]);
        let n = rec["segments"].as_array().map_or(0, |s| s.len());
        for path in [format!("{base}/archive"), format!("{base}/segments/{}", n - 1)] {
            for range in ranges {
                let a = get(&server, &path, &token, &[("range", range)]).await?;
                if a.status != 206 {
                    bail!("{path} {range} while the store is down: {} {}", a.status, String::from_utf8_lossy(&a.body));
                }
                from_spool.push((path.clone(), range, a.header("etag").to_string(), a.body));
            }
        }
    }
    let metrics = http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
    assert!(!metrics.contains("cunneng_spool_objects 0\n"), "objects still wait in the spool:\n{metrics}");

    garage.start_again().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !http()
        .get(format!("{}/metrics", server.base_url))
        .send()
        .await?
        .text()
        .await?
        .contains("cunneng_spool_objects 0\n")
    {
        if tokio::time::Instant::now() > deadline {
            bail!("the spool did not empty\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // From the bucket now: the same bytes, and exactly those `cunneng decrypt` gives.
    let out = tempfile::tempdir()?;
    let mut i = 0;
    for rec in &recs {
        let n = rec["segments"].as_array().map_or(0, |s| s.len());
        for key in [rec["archive_key"].as_str().unwrap(), rec["segments"][n - 1].as_str().unwrap()] {
            let plain = decrypted(&server, &env, key, out.path())?;
            for range in ranges {
                let (path, r, etag, spooled) = &from_spool[i];
                assert_eq!(*r, range);
                let a = get(&server, path, &token, &[("range", range)]).await?;
                assert_eq!(a.status, 206);
                assert_eq!(a.header("etag"), etag, "the same object, the same ETag");
                assert!(a.body == *spooled, "{path} {range}: the bucket and the spool serve the same bytes");
                let total: usize = a.header("content-range").rsplit('/').next().unwrap().parse()?;
                assert_eq!(total, plain.len());
                let (start, end) = a.header("content-range")[6..].split('/').next().unwrap().split_once('-').unwrap();
                let (start, end): (usize, usize) = (start.parse()?, end.parse()?);
                assert!(a.body == plain[start..=end], "{path} {range}: the decrypted bytes");
                i += 1;
            }
        }
    }
    Ok(())
}
