//! The one `AppState`: configuration, database, the engine (queue + connections), the media
//! plane, the encrypted store, the papers service with its bounds, rate limits, metrics and
//! the background jobs. Cheap to clone.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::db::{DataError, Db};
use crate::engine::EngineHandle;
use crate::error::Error;
use crate::identity::Principal;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::objects::Vault;
use crate::ratelimit::{KeyedLimiter, quota};
use crate::service::audit::Audit;
use crate::service::papers::{Papers, UPLOAD_IDLE};
use crate::service::playback::Playback;

/// How often abandoned paper uploads are looked for.
const UPLOAD_CLEANUP_EVERY: Duration = Duration::from_secs(600);
/// How often expired staff sessions are deleted.
const SESSION_EXPIRY_EVERY: Duration = Duration::from_secs(3600);
/// How long each phase of the shutdown may take before its jobs are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub db: Db,
    pub engine: EngineHandle,
    pub sfu: cunneng_media_recorder::Sfu,
    pub metrics: Arc<Metrics>,
    /// Seals and opens stored objects (recordings, papers, sealed personal data).
    pub vault: Vault,
    /// The spool in front of an S3 store (None for the local backend).
    pub spool: Option<Arc<cunneng_storage::Spool>>,
    /// One permit per authenticated WebSocket (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    /// One permit per TCP connection the server holds (`limits.open_connections`, lowered
    /// to the open-file limit by `server::serve`); a WebSocket keeps its connection's.
    pub open_connections: Arc<Semaphore>,
    /// One permit per WebSocket that has not said `hello` yet (`limits.ws_anonymous`).
    pub ws_anonymous: Arc<Semaphore>,
    /// Tokens that ended (logout, rotation, a disabled account or kiosk, a revoked or
    /// re-enrolled kiosk): the SHA-256 of the token; their sockets close.
    pub sessions_ended: tokio::sync::broadcast::Sender<String>,
    /// WebSockets per client address (`limits.ws_per_address`).
    pub ws_per_address: crate::ratelimit::KeyedSlots<IpAddr>,
    /// Papers of cases, with their memory bounds (`limits.papers_*`).
    pub papers: Arc<Papers>,
    /// Recording playback, with its bounds (`limits.media_streams`, `media_stream_idle_secs`).
    pub playback: Arc<Playback>,
    /// Public progress lookups per client address (`limits.progress_*`).
    pub progress_limit: KeyedLimiter<IpAddr>,
    /// Public progress lookups per case number (`limits.progress_case_*`).
    pub progress_case_limit: KeyedLimiter<String>,
    /// Login attempts per client address and per account (`limits.login_*`).
    pub login_address_limit: KeyedLimiter<IpAddr>,
    pub login_account_limit: KeyedLimiter<String>,
    /// Progress lookups per kiosk, which checks several villagers (`limits.progress_kiosk_*`).
    pub progress_kiosk_limit: KeyedLimiter<i64>,
    /// Kiosk enrolment attempts per client address (`limits.enrol_*`).
    pub enrol_limit: KeyedLimiter<IpAddr>,
    /// The tamper-evident audit record: accesses, checkpoints, sealed case manifests.
    pub audit: Arc<Audit>,
    /// Case exports running at once (`limits.exports_at_once`).
    pub exports: Arc<Semaphore>,
    /// argon2 hashes and verifications at once (`limits.password_hashes_at_once`): logins,
    /// password changes and resets, new accounts.
    pub password_hashes: crate::auth::PasswordHashes,
    /// The recording store's queue (its figures for `/metrics`).
    pub recordings: Arc<crate::recording::Recordings>,
    /// Every background job; stopped by [`AppState::shutdown`].
    pub jobs: Jobs,
    /// Who may read `/metrics` (`metrics.token_file`).
    pub metrics_access: crate::metrics_access::MetricsAccess,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// (permits taken, permits in all) of a semaphore of `max`.
fn in_use(s: &Semaphore, max: usize) -> (usize, usize) {
    (max.saturating_sub(s.available_permits()), max)
}

impl AppState {
    /// Build the state and start the background jobs: the engine (restoring the persisted
    /// queue), media teardown, the recording store, retention sweeps, clean-up of abandoned
    /// uploads and expired sessions.
    pub async fn start(config: Arc<Config>, db: Db) -> Result<AppState, Error> {
        let jobs = Jobs::new();
        let (sfu, media_events) = cunneng_media_recorder::Sfu::new(crate::engine::media_config(&config));
        let metrics = Arc::new(Metrics::default());
        let metrics_access = crate::metrics_access::MetricsAccess::load(config.metrics.token_file.as_deref())?;
        let sealed = db.run(|db| db.sealed_data_present()).await?;
        crate::objects::check_key_file(&config, sealed)?;
        let keys = crate::objects::Keys::new(&config, crate::objects::load_or_create_keys(&config.kek_file())?)?;
        // A signed record needs its key: only a record never signed may get a new one.
        let signed = db.run(|db| db.last_audit_checkpoint_seq()).await? > 0;
        let audit_key = crate::objects::load_or_create_audit_key(&config.audit_key_file(), !signed)?;
        let audit = Audit::new(db.clone(), audit_key, config.audit_checkpoint_log());
        let crate::objects::Objects { store, spool } = crate::objects::open(&config).await?;
        crate::objects::check_period_key_file(&config, &db, store.as_ref()).await?;
        let vault = Vault::new(store, keys.clone());
        let recordings =
            crate::recording::Recordings::start(db.clone(), vault.clone(), &jobs, config.limits.recording_queue)
                .await?;
        let engine =
            crate::engine::start(config.clone(), db.clone(), sfu.clone(), media_events, recordings.clone(), &jobs)
                .await?;
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        let open_connections = Arc::new(Semaphore::new(config.limits.open_connections));
        let ws_anonymous = Arc::new(Semaphore::new(config.limits.ws_anonymous));
        let ws_per_address = crate::ratelimit::KeyedSlots::new(config.limits.ws_per_address);
        let papers = Arc::new(Papers::new(db.clone(), vault.clone(), &config.limits));
        let playback = Arc::new(Playback::new(db.clone(), vault.clone(), &config.limits));
        let l = &config.limits;
        let every = |secs: u32| Duration::from_secs(u64::from(secs));
        let progress_limit =
            KeyedLimiter::new(quota(every(l.progress_refill_secs), l.progress_burst), l.progress_max_clients);
        let progress_case_limit =
            KeyedLimiter::new(quota(every(l.progress_case_refill_secs), l.progress_case_burst), l.progress_max_clients);
        let login_address_limit =
            KeyedLimiter::new(quota(every(l.login_address_refill_secs), l.login_address_burst), l.login_max_keys);
        let login_account_limit =
            KeyedLimiter::new(quota(every(l.login_account_refill_secs), l.login_account_burst), l.login_max_keys);
        let progress_kiosk_limit = KeyedLimiter::new(
            quota(every(l.progress_kiosk_refill_secs), l.progress_kiosk_burst),
            l.progress_max_clients,
        );
        let enrol_limit = KeyedLimiter::new(quota(every(l.enrol_refill_secs), l.enrol_burst), l.login_max_keys);

        let p = papers.clone();
        jobs.every("upload-cleanup", UPLOAD_CLEANUP_EVERY, move || {
            let p = p.clone();
            async move { p.cleanup_abandoned(UPLOAD_IDLE).await.map(drop) }
        });
        let d = db.clone();
        jobs.every("session-expiry", SESSION_EXPIRY_EVERY, move || {
            let d = d.clone();
            async move { Ok(d.run(|db| db.delete_expired_sessions(crate::now_ms())).await.map(drop)?) }
        });
        crate::retention::start_sweeps(&config, db.clone(), vault.store().clone(), keys.clone(), &jobs)?;
        let a = audit.clone();
        jobs.every("case-seal", Duration::from_secs(config.audit.seal_every_secs), move || {
            let a = a.clone();
            async move { a.seal_due().await.map(drop) }
        });
        let (d, viewings) = (db.clone(), playback.viewings());
        // How much of each recording was watched, once a viewing has been idle ten minutes
        // (and every viewing at shutdown, before the last checkpoint).
        jobs.spawn("viewing-record", crate::jobs::Phase::Drain, move |ctx| async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        let idle_before = crate::now_ms().saturating_sub(crate::service::review::OPEN_WINDOW_MS);
                        if let Err(e) = viewings.flush(&d, idle_before).await {
                            ctx.report_error(&e);
                        }
                    }
                    _ = ctx.stopped() => break,
                }
            }
            viewings.flush(&d, u64::MAX).await.map(drop)
        });
        let a = audit.clone();
        let checkpoint_every = Duration::from_secs(config.audit.checkpoint_every_secs);
        // Stops last, after a final checkpoint, so that the record is signed up to its end.
        jobs.spawn("audit-checkpoint", crate::jobs::Phase::Drain, move |ctx| async move {
            let mut ticks = tokio::time::interval(checkpoint_every);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        if let Err(e) = a.checkpoint().await {
                            ctx.report_error(&e);
                        }
                    }
                    _ = ctx.stopped() => break,
                }
            }
            a.checkpoint().await.map(drop)
        });
        let exports = Arc::new(Semaphore::new(config.limits.exports_at_once));
        let password_hashes = crate::auth::PasswordHashes::new(
            config.limits.password_hashes_at_once,
            std::time::Duration::from_millis(config.limits.password_hash_wait_ms),
        );

        Ok(AppState(Arc::new(Inner {
            config,
            db,
            engine,
            sfu,
            metrics,
            vault,
            spool,
            connections,
            open_connections,
            ws_anonymous,
            ws_per_address,
            sessions_ended: tokio::sync::broadcast::channel(256).0,
            papers,
            playback,
            progress_limit,
            progress_case_limit,
            login_address_limit,
            login_account_limit,
            progress_kiosk_limit,
            enrol_limit,
            audit,
            exports,
            password_hashes,
            recordings,
            jobs,
            metrics_access,
        })))
    }

    /// Leave to hash a password, waiting a little ([`crate::auth::PasswordHashes::WAIT`]); none:
    /// counted (`password_hashes_busy`) and [`crate::auth::HashesBusy`].
    pub async fn hash_permit(&self) -> Result<crate::auth::HashPermit, crate::auth::HashesBusy> {
        let permit = self.password_hashes.permit().await;
        if permit.is_err() {
            self.metrics.inc_rejected("password_hashes_busy");
        }
        permit
    }

    /// Resolve a bearer token (kiosk device token or staff session).
    pub async fn resolve_token(&self, token: String) -> Result<Principal, DataError> {
        if token.is_empty() || token.len() > 256 {
            return Err(DataError::Unauthorized);
        }
        let now = crate::now_ms();
        self.db.run(move |db| crate::auth::resolve_token(db, &token, now)).await
    }

    /// Resolve a bearer token, also a session that must change its password (flagged): for
    /// `api::extract::Authed`, which lets such a session reach only a few routes.
    pub async fn resolve(&self, token: String) -> Result<crate::auth::Resolved, DataError> {
        if token.is_empty() || token.len() > 256 {
            return Err(DataError::Unauthorized);
        }
        let now = crate::now_ms();
        self.db.run(move |db| crate::auth::resolve(db, &token, now)).await
    }

    /// Tokens (by hash) that no longer stand for anyone: their open sockets get
    /// `unauthorized` and close (4401) at once.
    pub fn tokens_ended(&self, hashes: impl IntoIterator<Item = String>) {
        for hash in hashes {
            // No receiver: no socket open.
            let _ = self.sessions_ended.send(hash);
        }
    }

    /// An administrative change is stored: the sockets of `ended` tokens close and the running
    /// queue takes the new topology (calls keep their places). A reload that fails is logged:
    /// the change is stored, and the next reload or restart applies it.
    pub async fn region_changed(&self, ended: impl IntoIterator<Item = String>) {
        self.tokens_ended(ended);
        if let Err(why) = self.engine.reload_topology().await {
            tracing::warn!(why, "the running queue kept its topology after an administrative change");
        }
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
            snapshot_failures: e.snapshot_failures,
            held_changes: e.held_changes,
            peer_connections: media.peer_connections as usize,
            forwarded_packets: media.forwarded_packets,
            forwarded_bytes: media.forwarded_bytes,
            rejected: self.metrics.rejected(),
            media_streams: (self.playback.streams_open(), self.config.limits.media_streams),
            spool: self.spool.as_ref().map(|s| s.metrics()),
            recording_queue: self.recordings.queue_figures(),
            jobs: self.jobs.statuses(),
            open_connections: in_use(&self.open_connections, self.config.limits.open_connections),
            websockets: in_use(&self.connections, self.config.limits.max_connections),
        })
    }

    /// The HTTP server stops taking requests: end the responses that could last (recording
    /// media streams), so that the open requests finish.
    pub fn stop_serving(&self) {
        self.playback.stop();
    }

    /// Stop every background job (the engine persists the queue and stops the media plane;
    /// the recording store finishes what it was handed), then the spool. Called after the
    /// HTTP server stopped; returns when everything has stopped.
    pub async fn shutdown(&self) {
        self.jobs.shutdown(SHUTDOWN_GRACE).await;
        if let Some(spool) = &self.spool {
            spool.shutdown();
        }
    }
}
