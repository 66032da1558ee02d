//! Many connected kiosks on one signaling node (issue 11 point 4; BENCHMARKS.md "Kiosks on one
//! node"). Imports a generated region (KIOSKS villages with a kiosk each, 20 towns with the
//! three standard windows, one approver per window: 60), starts the real server, connects the
//! 60 approvers and then KIOSKS kiosk WebSockets (`hello`, then a `ping` every 20 s as the
//! pages do) from several loopback addresses, holds them idle, places and answers calls at a
//! rate, and finally drops every kiosk at once. Reports the server's RSS per connected kiosk,
//! the connection rate, `call.request` → `call.ring` and `call.answer` → `call.started`
//! latency percentiles, `/metrics` latency, and the server's CPU and disk writes per phase.
//!
//! ```text
//! cargo build --release --workspace --bins
//! $CARGO_TARGET_DIR/release/kiosk_bench [KIOSKS] [CALLS_PER_MIN] [CALL_SECS] [IDLE_SECS]   # 1000 500 60 60
//! ```
//!
//! A call is placed only toward an approver who is free (the bench picks a free approver and
//! an idle kiosk of that approver's town), so the latencies are the server's pairing, not a
//! queue's wait; the approver answers at once, talks 1.5 s and hangs up. Each loopback address
//! (127.0.0.2 and up) opens at most 1,000 kiosk sockets. The server and this process each
//! need KIOSKS plus a few hundred open files: both raise their soft limit to the hard one.
//! Exits non-zero when a kiosk could not connect or a call failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cunneng_tests::client::{get_json, login};
use cunneng_tests::server::Server;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const TOWNS: usize = 20;
/// The standard windows every town gets, and the kind of matter each takes.
const WINDOWS: [(&str, &str); 3] =
    [("综合窗口", "comprehensive"), ("民政窗口", "civil_affairs"), ("社保窗口", "social_security")];
const PER_ADDRESS: usize = 1000;
/// As the pages (web/assets/ws.js).
const PING_EVERY: Duration = Duration::from_secs(20);
/// Kiosks connecting at once (a county's rooms after a power cut come back about so).
const CONNECTING_AT_ONCE: usize = 200;
/// How long an answered call lasts before the approver hangs up.
const HOLD: Duration = Duration::from_millis(1500);
/// Longest wait for one expected message.
const STEP: Duration = Duration::from_secs(30);
const PASSWORD: &str = "bench-password-1";

type Ws = WebSocketStream<TcpStream>;

/// The server process as /proc shows it.
struct Proc(u32);

impl Proc {
    fn field(&self, file: &str, key: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.0))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
    fn rss_kib(&self) -> u64 {
        self.field("status", "VmRSS:")
    }
    fn written(&self) -> u64 {
        self.field("io", "write_bytes:")
    }
    /// User plus system CPU seconds so far (USER_HZ is 100 on Linux).
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        (ticks(11) + ticks(12)) as f64 / 100.0
    }
    fn mark(&self) -> Mark {
        Mark { at: Instant::now(), cpu: self.cpu_secs(), written: self.written() }
    }
}

/// A point in time of the server: wall clock, CPU, bytes written.
struct Mark {
    at: Instant,
    cpu: f64,
    written: u64,
}

impl Mark {
    /// "12.3 s, CPU 45 % of a core (5.5 s), 12 MiB written" since this mark.
    fn since(&self, p: &Proc) -> String {
        let now = p.mark();
        let secs = now.at.duration_since(self.at).as_secs_f64();
        let cpu = now.cpu - self.cpu;
        format!(
            "{secs:.1} s, server CPU {:.0} % of a core ({cpu:.1} s), {:.1} MiB written",
            100.0 * cpu / secs.max(0.001),
            (now.written.saturating_sub(self.written)) as f64 / 1048576.0
        )
    }
}

fn percentiles(what: &str, mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return format!("{what}: none");
    }
    v.sort();
    let p = |q: f64| v[((q * v.len() as f64) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0;
    format!(
        "{what}: n {} p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms max {:.1} ms",
        v.len(),
        p(0.50),
        p(0.95),
        p(0.99),
        p(1.0)
    )
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

/// The region file, and each kiosk's (town, token).
fn region(kiosks: usize) -> (String, Vec<(usize, String)>) {
    use std::fmt::Write;
    let mut t = String::from("[county]\nname = \"基准县\"\ncode = \"BN\"\n\n");
    for (i, (_, kind)) in WINDOWS.iter().enumerate() {
        let _ = writeln!(
            t,
            "[[matters]]\ncode = \"BN-{i:03}\"\nname = \"基准事项{i}\"\nwindow = \"{kind}\"\nrequired_papers = []\nkeywords = []\n"
        );
    }
    for town in 0..TOWNS {
        let _ = writeln!(t, "[[towns]]\nname = \"镇{town:02}\"\nvillages = [");
        for v in (town..kiosks).step_by(TOWNS) {
            let _ = writeln!(t, "    {{ name = \"村{v:05}\" }},");
        }
        t.push_str("]\n\n");
        for (w, (window, _)) in WINDOWS.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[accounts]]\nusername = \"t{town:02}-w{w}\"\ndisplay_name = \"审批员{town}-{w}\"\nrole = \"approver\"\ntown = \"镇{town:02}\"\nwindow = \"{window}\"\npassword = \"{PASSWORD}\"\n"
            );
        }
    }
    let mut rng = rand::thread_rng();
    let mut tokens = Vec::with_capacity(kiosks);
    for v in 0..kiosks {
        let bytes: [u8; 32] = rng.r#gen();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(t, "[[kiosks]]\ntown = \"镇{:02}\"\nvillage = \"村{v:05}\"\ntoken = \"{token}\"\n", v % TOWNS);
        tokens.push((v % TOWNS, token));
    }
    (t, tokens)
}

/// A WebSocket from `source` that said hello and got its welcome.
async fn open(target: SocketAddr, source: Option<[u8; 4]>, token: &str) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket.bind(SocketAddr::from((source, 0)))?;
    }
    let stream = socket.connect(target).await?;
    // Browsers send without delay too.
    stream.set_nodelay(true)?;
    // A small read buffer: this process holds as many sockets as the server.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{target}/ws"), stream, Some(config)).await?;
    ws.send(text(json!({"type": "hello", "token": token}))).await?;
    wait_for(&mut ws, "welcome", None).await?;
    Ok(ws)
}

/// Read until a message of type `ty` (its arrival time), pinging meanwhile when `ping` is given.
async fn wait_for(ws: &mut Ws, ty: &str, mut ping: Option<&mut tokio::time::Interval>) -> Result<(Value, Instant)> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = async { match ping.as_mut() { Some(p) => { p.tick().await; } None => std::future::pending().await } } => {
                ws.send(text(json!({"type": "ping"}))).await?;
                continue;
            }
            _ = tokio::time::sleep_until(deadline) => bail!("no {ty} within {STEP:?}"),
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                let at = Instant::now();
                let v: Value = serde_json::from_str(&t)?;
                if v["type"] == ty {
                    return Ok((v, at));
                }
                if v["type"] == "error" {
                    bail!("waiting for {ty}: {v}");
                }
            }
            Some(Ok(Message::Close(f))) => bail!("closed waiting for {ty}: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed waiting for {ty}"),
        }
    }
}

fn ping_interval() -> tokio::time::Interval {
    let first = Duration::from_millis(rand::thread_rng().gen_range(0..PING_EVERY.as_millis() as u64));
    tokio::time::interval_at(tokio::time::Instant::now() + first, PING_EVERY)
}

/// A connected kiosk: pings, sends `call.request` for the matters it is told, reads and drops
/// whatever the server sends, closes when told to stop. Counts itself out when the server
/// closes it.
async fn kiosk(mut ws: Ws, mut calls: mpsc::Receiver<i64>, mut stop: watch::Receiver<bool>, dropped: Arc<AtomicUsize>) {
    let mut ping = ping_interval();
    loop {
        tokio::select! {
            call = calls.recv() => match call {
                Some(matter) => {
                    if ws.send(text(json!({"type": "call.request", "matter_id": matter}))).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            m = ws.next() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if ws.send(text(json!({"type": "ping"}))).await.is_err() {
                    break;
                }
            }
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return;
            }
        }
    }
    dropped.fetch_add(1, Ordering::Relaxed);
}

/// One answered call as the approver saw it.
struct Done {
    approver: usize,
    ring: Option<Duration>,
    started: Option<Duration>,
    error: Option<String>,
}

/// An approver: available; for each call it is told to expect (the time the kiosk asked),
/// waits for the ring, answers, talks [`HOLD`], hangs up, and reports.
async fn approver(
    idx: usize,
    mut ws: Ws,
    mut expect: mpsc::Receiver<Instant>,
    done: mpsc::Sender<Done>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ping = ping_interval();
    loop {
        let requested_at = tokio::select! {
            e = expect.recv() => match e { Some(e) => e, None => return },
            _ = ping.tick() => {
                let _ = ws.send(text(json!({"type": "ping"}))).await;
                continue;
            }
            m = ws.next() => match m {
                Some(Ok(_)) => continue,
                _ => return,
            },
            _ = stop.changed() => return,
        };
        let mut d = Done { approver: idx, ring: None, started: None, error: None };
        let result: Result<()> = async {
            let (ring, at) = wait_for(&mut ws, "call.ring", Some(&mut ping)).await?;
            d.ring = Some(at.duration_since(requested_at));
            let call_id = ring["call_id"].clone();
            let answered = Instant::now();
            ws.send(text(json!({"type": "call.answer", "call_id": call_id}))).await?;
            let (_, at) = wait_for(&mut ws, "call.started", Some(&mut ping)).await?;
            d.started = Some(at.duration_since(answered));
            tokio::time::sleep(HOLD).await;
            ws.send(text(json!({"type": "call.hangup", "call_id": call_id}))).await?;
            wait_for(&mut ws, "call.ended", Some(&mut ping)).await?;
            Ok(())
        }
        .await;
        d.error = result.err().map(|e| format!("{e:#}"));
        if done.send(d).await.is_err() {
            return;
        }
    }
}

/// GET /metrics: (latency, the value of `cunneng_connected_kiosks`).
async fn metrics(base: &str) -> Result<(Duration, u64)> {
    let t = Instant::now();
    let body = cunneng_tests::client::http().get(format!("{base}/metrics")).send().await?.text().await?;
    let kiosks = body
        .lines()
        .find_map(|l| l.strip_prefix("cunneng_connected_kiosks "))
        .and_then(|v| v.trim().parse().ok())
        .context("cunneng_connected_kiosks in /metrics")?;
    Ok((t.elapsed(), kiosks))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let calls_per_min: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500.0);
    let call_secs: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);
    let idle_secs: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);
    let files = rlimit::increase_nofile_limit(u64::MAX)?;
    println!(
        "kiosk_bench: {n} kiosks, {calls_per_min} calls/min for {call_secs} s, idle {idle_secs} s; open files {files}"
    );

    // 1. The region, imported before the server starts.
    let (file_text, tokens) = region(n);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("region.toml");
    std::fs::write(&file, &file_text)?;
    let t = Instant::now();
    let mut imported = String::new();
    let env: Vec<(String, String)> = vec![
        ("CUNNENG_LIMITS__MAX_CONNECTIONS".into(), (n + 200).to_string()),
        ("CUNNENG_LIMITS__OPEN_CONNECTIONS".into(), (n + 1000).to_string()),
        ("CUNNENG_LIMITS__WS_PER_ADDRESS".into(), (PER_ADDRESS + 100).to_string()),
        ("CUNNENG_LIMITS__CONNECTIONS_PER_ADDRESS".into(), (PER_ADDRESS + 100).to_string()),
        // No media here: keep the files of peer connections for kiosks.
        ("CUNNENG_MEDIA__MAX_PEER_CONNECTIONS".into(), "16".into()),
        ("CUNNENG_LIMITS__RESERVED_FILES".into(), "128".into()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_prepared(
        |data| {
            imported = Server::import(&file, data)?;
            Ok(())
        },
        &[],
        &env_ref,
    )
    .await?;
    println!("kiosk_bench: {imported} ({:.1} s with the start)", t.elapsed().as_secs_f64());
    let proc = Proc(server.pid().context("server pid")?);
    let target: SocketAddr = server.base_url.trim_start_matches("http://").parse()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base_rss = proc.rss_kib();
    println!("kiosk_bench: server RSS at start {base_rss} KiB");
    let (stop_tx, stop_rx) = watch::channel(false);

    // 3. Kiosks connect, CONNECTING_AT_ONCE at a time, from 127.0.0.2 and up.
    let mark = proc.mark();
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let welcomed = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<String>();
    let mut call_txs = Vec::with_capacity(n);
    let mut idle: Vec<Vec<usize>> = vec![Vec::new(); TOWNS];
    for (i, (town, token)) in tokens.iter().enumerate() {
        let (tx, rx) = mpsc::channel(2);
        call_txs.push(tx);
        idle[*town].push(i);
        let source = [127, 0, 0, 2 + (i / PER_ADDRESS) as u8];
        let (gate, welcomed, dropped, failed, stop, token) =
            (gate.clone(), welcomed.clone(), dropped.clone(), failed_tx.clone(), stop_rx.clone(), token.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            match open(target, Some(source), &token).await {
                Ok(ws) => {
                    drop(permit);
                    welcomed.fetch_add(1, Ordering::Relaxed);
                    kiosk(ws, rx, stop, dropped).await;
                }
                Err(e) => {
                    let _ = failed.send(format!("{e:#}"));
                }
            }
        });
    }
    drop(failed_tx);
    let mut failures = Vec::new();
    let mut last_report = Instant::now();
    loop {
        while let Ok(f) = failed_rx.try_recv() {
            failures.push(f);
        }
        let w = welcomed.load(Ordering::Relaxed);
        if w + failures.len() >= n {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            println!(
                "kiosk_bench: {w} kiosks connected after {:.0} s, server RSS {} KiB",
                mark.at.elapsed().as_secs_f64(),
                proc.rss_kib()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = mark.at.elapsed().as_secs_f64();
    let connected = welcomed.load(Ordering::Relaxed);
    println!(
        "kiosk_bench: connect: {connected} kiosks welcomed ({} failed) in {connect_secs:.1} s: {:.0} kiosks/s; {}",
        failures.len(),
        connected as f64 / connect_secs,
        mark.since(&proc)
    );
    for f in failures.iter().take(5) {
        println!("kiosk_bench: a kiosk could not connect: {f}");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let connected_rss = proc.rss_kib();
    let per_kiosk = (connected_rss as f64 - base_rss as f64) / connected.max(1) as f64;
    println!(
        "kiosk_bench: server RSS with {connected} kiosks {connected_rss} KiB: {per_kiosk:.1} KiB per connected kiosk"
    );

    // 4. Idle: pings (every 20 s per socket) and token re-checks (every 60 s).
    let mark = proc.mark();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let (m_latency, _) = metrics(&server.base_url).await?;
    println!(
        "kiosk_bench: idle: {}; /metrics answered in {:.1} ms; RSS {} KiB",
        mark.since(&proc),
        m_latency.as_secs_f64() * 1000.0,
        proc.rss_kib()
    );

    // 4b. Approvers: logged in, connected, available (after the kiosks' memory was read: each
    // login's password hash leaves memory with the allocator that later allocations reuse).
    let (_, matters) = get_json(&server, "/api/matters", Some(&tokens[0].1)).await?;
    let matter_of = |w: usize| -> Result<i64> {
        matters
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["code"] == format!("BN-{w:03}")))
            .and_then(|m| m["id"].as_i64())
            .with_context(|| format!("matter BN-{w:03} in {matters}"))
    };
    let matter_ids = [matter_of(0)?, matter_of(1)?, matter_of(2)?];
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(256);
    let mut expect_txs = Vec::new();
    for town in 0..TOWNS {
        for w in 0..WINDOWS.len() {
            let token = login(&server, &format!("t{town:02}-w{w}"), PASSWORD).await?;
            let mut ws = open(target, None, &token).await?;
            ws.send(text(json!({"type": "presence.set", "presence": "available"}))).await?;
            let (tx, rx) = mpsc::channel(4);
            expect_txs.push(tx);
            tokio::spawn(approver(expect_txs.len() - 1, ws, rx, done_tx.clone(), stop_rx.clone()));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("kiosk_bench: 60 approvers logged in and connected: server RSS {} KiB", proc.rss_kib());

    // 5. Calls at the rate, each toward a free approver from an idle kiosk of the same town.
    let mark = proc.mark();
    let base = server.base_url.clone();
    let (mstop_tx, mut mstop_rx) = watch::channel(false);
    let metrics_probe = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    if let Ok((d, _)) = metrics(&base).await {
                        seen.push(d);
                    }
                }
                _ = mstop_rx.changed() => return seen,
            }
        }
    });
    let approvers = expect_txs.len();
    let mut free: Vec<usize> = (0..approvers).collect();
    let mut in_call: Vec<Option<usize>> = vec![None; approvers];
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(60.0 / calls_per_min));
    let end = tokio::time::Instant::now() + Duration::from_secs(call_secs);
    let (mut placed, mut skipped) = (0usize, 0usize);
    let (mut rings, mut starts, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let drain_until = end + Duration::from_secs(60);
    loop {
        let placing = tokio::time::Instant::now() < end;
        if !placing && free.len() == approvers {
            break;
        }
        tokio::select! {
            _ = ticker.tick(), if placing => {
                if free.is_empty() {
                    skipped += 1;
                    continue;
                }
                let mut rng = rand::thread_rng();
                let pick = rng.gen_range(0..free.len());
                let a = free[pick];
                let town = a / WINDOWS.len();
                if idle[town].is_empty() {
                    skipped += 1;
                    continue;
                }
                free.swap_remove(pick);
                let at_random = rng.gen_range(0..idle[town].len());
                let k = idle[town].swap_remove(at_random);
                in_call[a] = Some(k);
                let at = Instant::now();
                let _ = expect_txs[a].send(at).await;
                let _ = call_txs[k].send(matter_ids[a % WINDOWS.len()]).await;
                placed += 1;
            }
            d = done_rx.recv() => {
                let Some(d) = d else { break };
                if let Some(k) = in_call[d.approver].take() {
                    idle[d.approver / WINDOWS.len()].push(k);
                }
                free.push(d.approver);
                rings.extend(d.ring);
                starts.extend(d.started);
                if let Some(e) = d.error {
                    errors.push(e);
                }
            }
            _ = tokio::time::sleep_until(drain_until) => {
                errors.push(format!("{} calls did not end within 60 s of the phase", approvers - free.len()));
                break;
            }
        }
    }
    let _ = mstop_tx.send(true);
    let metrics_seen = metrics_probe.await?;
    println!(
        "kiosk_bench: calls: {placed} placed ({skipped} ticks without a free approver), {} failed; {}; RSS {} KiB",
        errors.len(),
        mark.since(&proc),
        proc.rss_kib()
    );
    println!("kiosk_bench: {}", percentiles("call.request -> call.ring", rings));
    println!("kiosk_bench: {}", percentiles("call.answer -> call.started", starts));
    println!("kiosk_bench: {}", percentiles("/metrics during calls", metrics_seen));
    for e in errors.iter().take(5) {
        println!("kiosk_bench: a call failed: {e}");
    }
    println!("kiosk_bench: {} kiosks were dropped by the server during the run", dropped.load(Ordering::Relaxed));

    // 6. Every kiosk drops at once: how long until the server has counted them out.
    let mark = proc.mark();
    let _ = stop_tx.send(true);
    let mut slowest_metrics = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match tokio::time::timeout(Duration::from_secs(30), metrics(&server.base_url)).await {
            Ok(Ok((d, 0))) => {
                slowest_metrics = slowest_metrics.max(d);
                break;
            }
            Ok(Ok((d, _))) => slowest_metrics = slowest_metrics.max(d),
            Ok(Err(_)) | Err(_) => slowest_metrics = slowest_metrics.max(Duration::from_secs(30)),
        }
        if Instant::now() > deadline {
            bail!("the server still counted kiosks 600 s after they all left");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "kiosk_bench: all kiosks gone: counted out in {}; slowest /metrics meanwhile {:.1} ms; RSS after {} KiB",
        mark.since(&proc),
        slowest_metrics.as_secs_f64() * 1000.0,
        proc.rss_kib()
    );
    if !failures.is_empty() || !errors.is_empty() {
        bail!("{} kiosks could not connect, {} calls failed", failures.len(), errors.len());
    }
    Ok(())
}
