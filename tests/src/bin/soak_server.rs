//! Soak of the real server: connect-negotiate-close cycles of a synthetic peer through
//! `cunneng serve`, watching the server's resident memory.
//!
//! ```text
//! cargo build --release --workspace --bins
//! $CARGO_TARGET_DIR/release/soak_server [CYCLES] [WARMUP]     # defaults 2000 and 200
//! ```
//!
//! A kiosk and an approver are paired through the queue; the approver's synthetic peer stays
//! connected and publishing. Every cycle a new kiosk peer (a new `pc_id`, as after a page
//! reload) offers over the signaling socket, connects, receives the approver's media, and is
//! closed; the next offer replaces its server-side connection. Prints the server's VmRSS after
//! the warm-up and at the end, and exits non-zero when the growth reaches 16 MiB.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cunneng_tests::client::{AnsweredCall, answered_call, eventually, negotiate, pairing};
use cunneng_tests::peer::SyntheticPeer;
use cunneng_tests::server::Server;

const LIMIT_MIB: f64 = 16.0;

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

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cycles: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let warmup: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    if warmup >= cycles {
        bail!("WARMUP must be smaller than CYCLES");
    }

    let server = Server::start_demo().await?;
    let pid = server.pid().context("server pid")?;
    let p = pairing(&server, 0).await?;
    let AnsweredCall { mut kiosk, mut window, room, .. } = answered_call(&server, &p).await?;

    let staff_peer = SyntheticPeer::new("staff").await?;
    negotiate(&mut window, &staff_peer, &room, "staff", staff_peer.offer().await?).await?;
    let staff_label = format!("staff:{}", p.approver.id());

    println!("soak: {cycles} cycles, warm-up {warmup}, server pid {pid}, start RSS {} KiB", rss_kib(pid));
    let started = Instant::now();
    let mut warm_rss = 0;
    for i in 0..cycles {
        let peer = SyntheticPeer::new("kiosk").await?;
        negotiate(&mut kiosk, &peer, &room, &format!("k{i}"), peer.offer().await?).await?;
        peer.wait_connected(Duration::from_secs(10)).await.with_context(|| format!("cycle {i}"))?;
        eventually(Duration::from_secs(10), "the kiosk receives media", || {
            peer.received_from(&staff_label).video_packets > 0
        })
        .await
        .with_context(|| format!("cycle {i}"))?;
        peer.close().await?;
        // Drain signaling noise (renegotiation hints etc.) so the socket's backlog stays small.
        while let Ok(m) = kiosk.next(Duration::from_millis(1)).await {
            let _ = m;
        }
        if i + 1 == warmup {
            warm_rss = rss_kib(pid);
            println!("soak: after warm-up ({warmup} cycles): RSS {warm_rss} KiB");
        }
        if (i + 1) % 250 == 0 {
            println!(
                "soak: {} cycles, RSS {} KiB, {:.0} ms/cycle",
                i + 1,
                rss_kib(pid),
                started.elapsed().as_millis() as f64 / (i + 1) as f64
            );
        }
    }
    // Let the last connection's teardown finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end_rss = rss_kib(pid);
    let growth_mib = (end_rss as f64 - warm_rss as f64) / 1024.0;
    println!(
        "soak: done: {cycles} cycles in {:.1} s ({:.0} ms/cycle); RSS after warm-up {warm_rss} KiB, at end {end_rss} KiB, growth {growth_mib:.2} MiB (limit {LIMIT_MIB} MiB)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_millis() as f64 / cycles as f64
    );
    staff_peer.close().await?;
    if growth_mib >= LIMIT_MIB {
        bail!("RSS grew {growth_mib:.2} MiB after warm-up (limit {LIMIT_MIB} MiB)");
    }
    Ok(())
}
