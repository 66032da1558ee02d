//! Soak: connect-negotiate-forward-close cycles of a synthetic peer against an in-process SFU,
//! watching resident memory.
//!
//! `cargo run --release -p cunneng-media-recorder --example soak -- [CYCLES] [WARMUP]`
//! (defaults 2000 and 200). A long-lived "staff" peer stays in the room; every cycle a new
//! "kiosk" connection joins, receives the staff peer's media (and publishes its own), and
//! leaves: even cycles by `remove_participant`, odd ones by being replaced by the next cycle's
//! connection (new pc_id). Prints VmRSS after the warm-up and at the end; exits non-zero when
//! the growth after warm-up reaches 16 MiB.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cunneng_media_recorder::{MediaConfig, Sfu};
use cunneng_tests::peer::SyntheticPeer;

const ROOM: &str = "call:soak";
const KIOSK: &str = "kiosk:1";
const STAFF: &str = "staff:1";
const LIMIT_MIB: f64 = 16.0;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let mut args = std::env::args().skip(1);
    let cycles: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let warmup: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);

    let (sfu, mut events) =
        Sfu::new(MediaConfig { connect_timeout: Duration::from_secs(5), ..MediaConfig::loopback() });
    tokio::spawn(async move { while events.recv().await.is_some() {} });

    sfu.set_subscriptions(ROOM, STAFF, vec![KIOSK.into()]);
    let staff = SyntheticPeer::new(STAFF).await?;
    let answer = sfu.handle_offer(ROOM, STAFF, "pc-staff", &staff.offer().await?).await?;
    staff.apply_answer(&answer).await?;
    staff.wait_connected(Duration::from_secs(10)).await?;

    let mut warm_rss = 0;
    let mut warm_tasks = 0;
    let mut warm_at = Instant::now();
    let started = Instant::now();
    let mut replaced_pending: Option<SyntheticPeer> = None;
    for i in 0..cycles {
        sfu.set_subscriptions(ROOM, KIOSK, vec![STAFF.into()]);
        let kiosk = SyntheticPeer::new(KIOSK).await?;
        let answer = sfu
            .handle_offer(ROOM, KIOSK, &format!("pc-{i}"), &kiosk.offer().await?)
            .await
            .with_context(|| format!("cycle {i}: offer"))?;
        if let Some(old) = replaced_pending.take() {
            old.close().await?;
        }
        kiosk.apply_answer(&answer).await?;
        kiosk.wait_connected(Duration::from_secs(10)).await.with_context(|| format!("cycle {i}: connect"))?;
        // Media flows both ways through the SFU before the kiosk leaves.
        let staff_before = staff.received_from(KIOSK).audio_packets;
        if !wait_for(Duration::from_secs(5), || {
            kiosk.received_from(STAFF).audio_packets > 0 && staff.received_from(KIOSK).audio_packets > staff_before
        })
        .await
        {
            bail!(
                "cycle {i}: no media (kiosk got {:?}, staff got {:?})",
                kiosk.received_from(STAFF),
                staff.received_from(KIOSK)
            );
        }
        if i % 2 == 0 {
            sfu.remove_participant(ROOM, KIOSK).await;
            kiosk.close().await?;
        } else {
            // Left to be replaced by the next cycle's connection.
            replaced_pending = Some(kiosk);
        }
        if i + 1 == warmup {
            tokio::time::sleep(Duration::from_millis(200)).await;
            warm_rss = rss_kib();
            warm_tasks = alive_tasks();
            warm_at = Instant::now();
            println!(
                "after warm-up ({warmup} cycles, {:.1} s): VmRSS {:.1} MiB, tasks {}, peer connections {}",
                started.elapsed().as_secs_f64(),
                warm_rss as f64 / 1024.0,
                warm_tasks,
                sfu.stats().peer_connections
            );
        }
        if (i + 1) % 250 == 0 {
            println!(
                "cycle {}: VmRSS {:.1} MiB, tasks {}, peer connections {}",
                i + 1,
                rss_kib() as f64 / 1024.0,
                alive_tasks(),
                sfu.stats().peer_connections
            );
        }
    }
    if let Some(old) = replaced_pending.take() {
        sfu.remove_participant(ROOM, KIOSK).await;
        old.close().await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end_rss = rss_kib();
    let stats = sfu.stats();
    let measured = cycles.saturating_sub(warmup).max(1);
    let growth = (end_rss as f64 - warm_rss as f64) / 1024.0;
    println!(
        "end ({cycles} cycles, {:.1} s, {:.1} ms/cycle after warm-up): VmRSS {:.1} MiB, tasks {}, peer connections {}, forwarded {} packets",
        started.elapsed().as_secs_f64(),
        warm_at.elapsed().as_secs_f64() * 1000.0 / measured as f64,
        end_rss as f64 / 1024.0,
        alive_tasks(),
        stats.peer_connections,
        stats.forwarded_packets
    );
    println!(
        "growth after warm-up: {growth:.2} MiB over {measured} cycles (limit {LIMIT_MIB} MiB), tasks {} -> {}",
        warm_tasks,
        alive_tasks()
    );
    sfu.close_room(ROOM).await;
    staff.close().await?;
    if growth >= LIMIT_MIB {
        bail!("RSS grew {growth:.2} MiB after warm-up");
    }
    Ok(())
}
