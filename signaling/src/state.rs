//! The one `AppState`: configuration, database, the engine (queue + connections), the media
//! plane, metrics and the connection bound. Cheap to clone.

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::auth::Principal;
use crate::config::Config;
use crate::db::Db;
use crate::engine::EngineHandle;
use crate::error::{ApiError, Error};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub db: Db,
    pub engine: EngineHandle,
    pub sfu: cunneng_media_recorder::Sfu,
    pub metrics: Arc<Metrics>,
    /// Where encrypted objects (recordings, papers) are kept.
    pub objects: Arc<dyn cunneng_storage::ObjectStore>,
    /// The spool in front of an S3 store (None for the local backend).
    pub spool: Option<Arc<cunneng_storage::Spool>>,
    /// Key-encryption keys: the active one seals new objects, older ones still open theirs.
    pub keys: Arc<cunneng_storage::KeyRing>,
    /// One permit per open WebSocket (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Build the state and start the engine task (restoring the persisted queue).
    pub async fn start(config: Arc<Config>, db: Db) -> Result<AppState, Error> {
        let (sfu, media_events) = cunneng_media_recorder::Sfu::new(crate::engine::media_config(&config)?);
        let metrics = Arc::new(Metrics::default());
        let keys = Arc::new(crate::objects::load_or_create_keys(&config.kek_file())?);
        let crate::objects::Objects { store: objects, spool } = crate::objects::open(&config).await?;
        let recordings = crate::recording::Recordings::start(db.clone(), objects.clone(), keys.clone())?;
        let engine = crate::engine::start(config.clone(), db.clone(), sfu.clone(), media_events, recordings).await?;
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        Ok(AppState(Arc::new(Inner { config, db, engine, sfu, metrics, objects, spool, keys, connections })))
    }

    /// Resolve a bearer token (kiosk device token or staff session).
    pub async fn resolve_token(&self, token: String) -> Result<Principal, ApiError> {
        if token.is_empty() || token.len() > 256 {
            return Err(ApiError::unauthorized());
        }
        let db = self.db.clone();
        let now = crate::now_ms();
        tokio::task::spawn_blocking(move || crate::auth::resolve_token(&db, &token, now))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(ApiError::from)
    }

    /// The `Me` object of the protocol for a principal.
    pub async fn me(&self, p: &Principal) -> Result<serde_json::Value, ApiError> {
        let db = self.db.clone();
        let p = p.clone();
        let me = tokio::task::spawn_blocking(move || db.me(&p)).await.map_err(|_| ApiError::internal())??;
        serde_json::to_value(me).map_err(|_| ApiError::internal())
    }

    /// Villages with a kiosk connected right now.
    pub async fn online_villages(&self) -> HashSet<i64> {
        self.engine.online_villages().await
    }

    pub async fn render_metrics(&self) -> String {
        let e = self.engine.gauges().await;
        let media = self.sfu.stats();
        crate::metrics::render(&crate::metrics::Snapshot {
            queues: e.queues,
            live_calls: e.live_calls,
            open_groups: e.open_groups,
            connected_kiosks: e.connected_kiosks,
            connected_staff: e.connected_staff,
            peer_connections: media.peer_connections as usize,
            forwarded_packets: media.forwarded_packets,
            forwarded_bytes: media.forwarded_bytes,
            rejected: self.metrics.rejected(),
            spool: self.spool.as_ref().map(|s| s.metrics()),
        })
    }

    /// Stop the engine (persisting the queue) after the HTTP server has stopped.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
        if let Some(spool) = &self.spool {
            spool.shutdown();
        }
    }
}
