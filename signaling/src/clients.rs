//! The way to one connected client: an id per WebSocket connection and a bounded queue toward
//! it, drained by the socket's writer task (`ws`). The engine sends through it; a client too
//! slow to keep up (queue full) is disconnected rather than allowed to hold memory.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use crate::wire::ServerMsg;

pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_REPLACED: u16 = 4000;

/// Identifies one WebSocket connection (a party may reconnect with a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

impl ConnId {
    pub fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What goes toward one socket.
#[derive(Debug)]
pub enum Outbound {
    Msg(Box<ServerMsg>),
    Close(u16, &'static str),
}

#[derive(Clone)]
pub struct ClientTx {
    tx: mpsc::Sender<Outbound>,
    slow: CancellationToken,
}

impl ClientTx {
    /// A queue of `capacity` messages toward a client, and its receiving end for the writer.
    /// `slow` is cancelled when the client falls behind.
    pub fn channel(capacity: usize, slow: CancellationToken) -> (ClientTx, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity);
        (ClientTx { tx, slow }, rx)
    }

    pub fn send(&self, msg: ServerMsg) {
        match self.tx.try_send(Outbound::Msg(Box::new(msg))) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("client does not keep up with its messages; disconnecting it");
                self.slow.cancel();
            }
        }
    }

    /// Send a close frame after what is queued.
    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.try_send(Outbound::Close(code, reason));
    }

    /// Resolves when the writer is gone (the socket closed or was replaced).
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
