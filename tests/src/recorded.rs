//! Recorded calls from a test's side: a live call between two synthetic peers through the
//! server, the recordings of its case as the API lists them, and `cunneng decrypt` of a stored
//! object with the server's configuration.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::client::{AnsweredCall, Pairing, WsClient, answered_call, get_json, negotiate};
use crate::peer::{PeerOptions, SyntheticPeer};
use crate::server::{Server, binary_path};

/// A live call between two synthetic peers: the sockets, peers and case number.
pub struct LiveCall {
    pub kiosk: WsClient,
    pub window: WsClient,
    pub kiosk_peer: SyntheticPeer,
    pub window_peer: SyntheticPeer,
    pub call_id: Value,
    pub case_no: String,
}

/// The approver of `p` answers a call from its kiosk; both sides send media.
pub async fn start_call(server: &Server, p: &Pairing) -> Result<LiveCall> {
    start_call_with(server, p, PeerOptions::default()).await
}

/// As [`start_call`], with both peers configured by `opts` (e.g. larger video frames).
pub async fn start_call_with(server: &Server, p: &Pairing, opts: PeerOptions) -> Result<LiveCall> {
    let AnsweredCall { mut kiosk, mut window, call_id, room, case_no } = answered_call(server, p).await?;
    let kiosk_peer = SyntheticPeer::with_options("kiosk", opts.clone()).await?;
    let window_peer = SyntheticPeer::with_options("window", opts).await?;
    negotiate(&mut kiosk, &kiosk_peer, &room, "k1", kiosk_peer.offer().await?).await?;
    negotiate(&mut window, &window_peer, &room, "w1", window_peer.offer().await?).await?;
    kiosk_peer.wait_connected(Duration::from_secs(10)).await?;
    window_peer.wait_connected(Duration::from_secs(10)).await?;
    Ok(LiveCall { kiosk, window, kiosk_peer, window_peer, call_id, case_no })
}

impl LiveCall {
    /// The kiosk hangs up; both peers close.
    pub async fn hang_up(mut self) -> Result<()> {
        self.kiosk.send(json!({"type": "call.hangup", "call_id": self.call_id})).await?;
        self.window.expect("call.ended").await?;
        self.kiosk_peer.close().await?;
        self.window_peer.close().await?;
        Ok(())
    }
}

/// The recordings of a case as `token` (town staff) sees them.
pub async fn recordings(server: &Server, token: &str, case_no: &str) -> Result<Vec<Value>> {
    let (status, body) = get_json(server, &format!("/api/cases/{case_no}/recordings"), Some(token)).await?;
    if status != 200 {
        bail!("recordings of {case_no}: {status} {body}");
    }
    Ok(body.as_array().cloned().unwrap_or_default())
}

/// Poll the recordings of a case (for 30 s at most) until `pred` holds.
pub async fn wait_recordings(
    server: &Server,
    token: &str,
    case_no: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = recordings(server, token, case_no).await?;
        if pred(&r) {
            return Ok(r);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("recordings never reached the expected state: {r:#?}\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `cunneng decrypt KEY --out FILE` with the server's data dir and `env` (its storage config).
pub fn decrypt(server: &Server, env: &[(&str, &str)], key: &str, out: &Path) -> Result<()> {
    let output = std::process::Command::new(binary_path())
        .args(["decrypt", key, "--out"])
        .arg(out)
        .arg("--data-dir")
        .arg(server.data_dir())
        .envs(env.iter().copied())
        .output()?;
    if !output.status.success() {
        bail!("decrypt {key}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
