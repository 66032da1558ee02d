//! Abuse load test of the real server (issue 12, BENCHMARKS.md "Abuse"): while two calls run
//! and a paper uploads, 1,000 WebSockets that never authenticate, 100 slow chunk uploads and a
//! login flood hit the server. Reports that the calls kept their media, the paper finished,
//! how the abuse was answered, and the server's resident memory before, at the peak and after.
//!
//! ```text
//! cargo build --release --workspace --bins
//! $CARGO_TARGET_DIR/release/abuse_bench [SOCKETS] [SLOW_UPLOADS] [LOGINS]   # 1000 100 500
//! ```
//!
//! The abusers come from other loopback addresses (127.0.0.10 and up) than the calls and the
//! paper (127.0.0.1), as clients on other machines would; the slow uploads come from every
//! kiosk but the honest one. Exits non-zero when a call lost its media, the paper did not finish,
//! a login was answered anything but 401, 429 or 503, or memory (sampled every 100 ms) grew past
//! 64 MiB.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cunneng_tests::cases::{Api, pdf};
use cunneng_tests::client::{AnsweredCall, Pairing, answered_call, demo_kiosks, eventually, negotiate, pairing};
use cunneng_tests::peer::SyntheticPeer;
use cunneng_tests::server::Server;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const LIMIT_MIB: f64 = 64.0;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn connect_from(target: SocketAddr, source: [u8; 4]) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    Ok(socket.connect(target).await?)
}

/// Two pairings with different approvers (two calls at once).
async fn two_pairings(server: &Server) -> Result<(Pairing, Pairing)> {
    let first = pairing(server, 0).await?;
    for nth in 1..demo_kiosks(server).await?.len() {
        let p = pairing(server, nth).await?;
        if p.approver.id() != first.approver.id() {
            return Ok((first, p));
        }
    }
    bail!("the demo has no two kiosks served by different approvers")
}

/// A call with both sides publishing synthetic media.
async fn media_call(server: &Server, p: &Pairing, n: usize) -> Result<(AnsweredCall, SyntheticPeer, SyntheticPeer)> {
    let mut call = answered_call(server, p).await?;
    let kiosk_peer = SyntheticPeer::new("kiosk").await?;
    let staff_peer = SyntheticPeer::new("staff").await?;
    let room = call.room.clone();
    negotiate(&mut call.kiosk, &kiosk_peer, &room, &format!("k{n}"), kiosk_peer.offer().await?).await?;
    negotiate(&mut call.window, &staff_peer, &room, &format!("s{n}"), staff_peer.offer().await?).await?;
    kiosk_peer.wait_connected(Duration::from_secs(15)).await?;
    staff_peer.wait_connected(Duration::from_secs(15)).await?;
    Ok((call, kiosk_peer, staff_peer))
}

/// The honest kiosk's paper, sent as the kiosk page sends it: in chunks, and a chunk that is
/// refused for now (503 busy, 408, 429, 409 upload_busy) or not answered in time is sent again at the same offset
/// after a pause, for two minutes at most. Returns the number of retries.
async fn honest_upload(api: &Api, case_no: &str, bytes: &[u8]) -> Result<usize> {
    const CHUNK: usize = 512 * 1024;
    let (status, start) =
        api.start_upload(case_no, json!({"name": "scan.pdf", "size": bytes.len(), "kind": "scan"})).await?;
    if status != 201 {
        bail!("starting the honest upload: {status} {start}");
    }
    let url = start["url"].as_str().context("upload url")?.to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut offset, mut retries) = (0usize, 0usize);
    loop {
        let end = (offset + CHUNK).min(bytes.len());
        match api
            .put_bytes(&format!("{url}?offset={offset}"), bytes[offset..end].to_vec(), "application/octet-stream")
            .await
        {
            Ok((200, body)) => offset = body["offset"].as_u64().context("offset")? as usize,
            Ok((201, _)) => return Ok(retries),
            // 409 upload_busy: the server still holds the request that was given up on.
            Ok((408 | 429 | 503, _)) | Err(_) if Instant::now() < deadline => {
                retries += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Ok((409, body)) if body["error"]["code"] == "upload_busy" && Instant::now() < deadline => {
                retries += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Ok((status, body)) => bail!("the honest upload at {offset}: {status} {body}"),
            Err(e) => return Err(e.context("the honest upload ran out of time")),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let sockets: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let slow_uploads: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let logins: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500);

    let server = Server::start_demo().await?;
    let pid = server.pid().context("server pid")?;
    let target: SocketAddr = server.base_url.trim_start_matches("http://").parse()?;
    let (p1, p2) = two_pairings(&server).await?;
    let (c1, k1, s1) = media_call(&server, &p1, 1).await?;
    let (c2, k2, s2) = media_call(&server, &p2, 2).await?;
    let label = |p: &Pairing, kiosk: bool| {
        if kiosk { format!("kiosk:{}", p.kiosk.id()) } else { format!("staff:{}", p.approver.id()) }
    };
    let received = || {
        [
            k1.received_from(&label(&p1, false)).video_packets,
            s1.received_from(&label(&p1, true)).video_packets,
            k2.received_from(&label(&p2, false)).video_packets,
            s2.received_from(&label(&p2, true)).video_packets,
        ]
    };
    eventually(Duration::from_secs(15), "both calls carry media both ways", || received().iter().all(|&n| n > 0))
        .await?;
    let rss_before = rss_kib(pid);
    println!("abuse: two calls with media; server RSS {rss_before} KiB");

    // The honest upload: a kiosk of a third village (or the first one's) sends a 2 MB scan.
    let kiosks = demo_kiosks(&server).await?;
    let honest =
        kiosks.iter().find(|k| k.id() != p1.kiosk.id() && k.id() != p2.kiosk.id()).unwrap_or(&kiosks[0]).clone();
    let honest_api = Api::new(&server, &honest.token);
    // The abusers are every other kiosk: the honest one's own chunk slots stay its own.
    let abusers: Vec<_> = kiosks.iter().filter(|k| k.id() != honest.id()).cloned().collect();
    if abusers.is_empty() {
        bail!("the demo has no kiosk besides the honest one");
    }
    let (_, matters) = honest_api.get("/api/matters").await?;
    let matter_id = matters[0]["id"].as_i64().context("matter")?;

    let started = Instant::now();
    let before = received();
    // The server's resident memory, sampled every 100 ms until the abuse is over.
    let (stop_sampling, mut stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(async move {
        let mut peak = 0u64;
        loop {
            peak = peak.max(rss_kib(pid));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.changed() => break peak,
            }
        }
    });

    // 1. Anonymous sockets: opened from 20 addresses, never say hello.
    let anon = tokio::spawn(async move {
        let (mut opened, mut refused) = (0usize, 0usize);
        let mut held = Vec::new();
        for i in 0..sockets {
            let source = [127, 0, 0, 10 + (i % 20) as u8];
            let Ok(stream) = connect_from(target, source).await else {
                refused += 1;
                continue;
            };
            match tokio_tungstenite::client_async(format!("ws://{target}/ws"), stream).await {
                Ok((ws, _)) => {
                    opened += 1;
                    held.push(ws);
                }
                Err(_) => refused += 1,
            }
        }
        tokio::time::sleep(Duration::from_secs(8)).await;
        drop(held);
        (opened, refused)
    });

    // 2. Slow uploads: chunk PUTs from every other demo kiosk that send a byte now and then.
    let mut slow = Vec::new();
    for i in 0..slow_uploads {
        let kiosk = abusers[i % abusers.len()].clone();
        let api = Api::new(&server, &kiosk.token);
        let (_, ms) = api.get("/api/matters").await?;
        let (st, case) = api.post("/api/cases", json!({"matter_id": ms[0]["id"]})).await?;
        if st != 201 {
            continue;
        }
        let case_no = case["case_no"].as_str().unwrap_or_default().to_string();
        let (st, start) =
            api.start_upload(&case_no, json!({"name": "slow.pdf", "size": 100_000, "kind": "scan"})).await?;
        if st != 201 {
            continue;
        }
        let path = format!("{}?offset=0", start["url"].as_str().unwrap_or_default());
        let token = kiosk.token.clone();
        slow.push(tokio::spawn(async move {
            let source = [127, 0, 0, 40 + (i % 20) as u8];
            let Ok(mut s) = connect_from(target, source).await else { return 0u16 };
            let head = format!(
                "PUT {path} HTTP/1.1\r\nHost: {target}\r\nAuthorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n%PDF-"
            );
            if s.write_all(head.as_bytes()).await.is_err() {
                return 0;
            }
            let mut buf = [0u8; 512];
            // A byte every 5 s until the server answers or closes.
            loop {
                tokio::select! {
                    r = tokio::io::AsyncReadExt::read(&mut s, &mut buf) => {
                        let text = String::from_utf8_lossy(&buf[..r.unwrap_or(0)]).to_string();
                        return text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                    }
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {
                        if s.write_all(b"x").await.is_err() {
                            return 0;
                        }
                    }
                }
            }
        }));
    }

    // 3. Login flood: wrong passwords on one account and on many, from 20 addresses at once
    // (each address one request after another).
    const FLOOD_ADDRESSES: usize = 20;
    let base = server.base_url.clone();
    let victim = server.link("supervisor").fragment_param("user").context("user")?;
    let mut flooders = Vec::new();
    for a in 0..FLOOD_ADDRESSES {
        let (base, victim) = (base.clone(), victim.clone());
        flooders.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, 70 + a as u8]))
                .build()
                .expect("client");
            // 401, 429, 503, anything else.
            let mut answers = [0usize; 4];
            for i in (a..logins).step_by(FLOOD_ADDRESSES) {
                let user = if i % 2 == 0 { victim.clone() } else { format!("nobody{i}") };
                let status = client
                    .post(format!("{base}/api/login"))
                    .json(&json!({"username": user, "password": "x"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                match status {
                    Ok(401) => answers[0] += 1,
                    Ok(429) => answers[1] += 1,
                    Ok(503) => answers[2] += 1,
                    _ => answers[3] += 1,
                }
            }
            answers
        }));
    }
    let flood = tokio::spawn(async move {
        let mut total = [0usize; 4];
        for f in flooders {
            let answers = f.await.unwrap_or([0, 0, 0, 1]);
            for (t, n) in total.iter_mut().zip(answers) {
                *t += n;
            }
        }
        total
    });

    // Meanwhile the honest paper.
    let (_, case) = honest_api.post("/api/cases", json!({"matter_id": matter_id})).await?;
    let case_no = case["case_no"].as_str().context("case_no")?.to_string();
    let upload_started = Instant::now();
    let paper = honest_upload(&honest_api, &case_no, &pdf(2_000_000)).await;
    let upload_secs = upload_started.elapsed().as_secs_f64();

    let (opened, refused) = anon.await?;
    let [unauthorized, limited, busy, other] = flood.await?;
    let mut slow_answers = std::collections::BTreeMap::new();
    for s in slow {
        *slow_answers.entry(s.await?).or_insert(0usize) += 1;
    }
    let after = received();
    let abuse_secs = started.elapsed().as_secs_f64();
    let _ = stop_sampling.send(true);
    let peak = sampler.await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_kib(pid);

    println!("abuse: {abuse_secs:.1} s of abuse");
    println!("abuse: anonymous sockets: {opened} opened (closed after the hello timeout), {refused} refused");
    println!("abuse: slow uploads: answers by status {slow_answers:?} (0: closed without an answer)");
    println!(
        "abuse: login flood from {FLOOD_ADDRESSES} addresses at once: {unauthorized} answered 401, {limited} 429, \
         {busy} 503 busy, {other} other"
    );
    match &paper {
        Ok(retries) => println!("abuse: honest paper of 2 MB: stored in {upload_secs:.1} s ({retries} chunk retries)"),
        Err(e) => println!("abuse: honest paper of 2 MB: FAILED after {upload_secs:.1} s: {e:#}"),
    }
    println!(
        "abuse: video packets received per leg during the abuse: {:?}",
        [after[0] - before[0], after[1] - before[1], after[2] - before[2], after[3] - before[3]]
    );
    let growth = (peak as f64 - rss_before as f64) / 1024.0;
    println!("abuse: server RSS before {rss_before} KiB, peak {peak} KiB (+{growth:.1} MiB), after {rss_after} KiB");
    for p in [k1, s1, k2, s2] {
        p.close().await?;
    }
    drop((c1, c2));
    paper.context("the honest paper did not finish")?;
    if other > 0 {
        bail!("{other} logins of the flood were answered neither 401, 429 nor 503");
    }
    if after.iter().zip(before.iter()).any(|(a, b)| a <= b) {
        bail!("a call lost its media during the abuse");
    }
    if growth >= LIMIT_MIB {
        bail!("RSS grew {growth:.1} MiB during the abuse (limit {LIMIT_MIB} MiB)");
    }
    Ok(())
}
