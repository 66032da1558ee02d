//! Server configuration: one typed [`Config`], loaded once at start.
//!
//! Precedence, lowest first: built-in defaults < TOML file (`--config FILE`) <
//! environment (`CUNNENG_<KEY>` for top-level keys, `CUNNENG_<SECTION>__<KEY>` for keys of a
//! section; the value is read as a TOML value, and as a plain string when that fails or does
//! not fit) < command-line flags (a [`toml::Table`] the binary builds from its clap flags,
//! shaped like the file: `{"addr" = "...", "tls" = {"self_signed" = true}}`).
//!
//! `CUNNENG_CONFIG` is not a configuration key: it is left to the binary (path of the file).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variables with this prefix are configuration keys.
pub const ENV_PREFIX: &str = "CUNNENG_";
/// Environment variables with the prefix that are not configuration keys (skipped).
pub const ENV_RESERVED: &[&str] = &["CUNNENG_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("command-line option for `{key}`: {message}")]
    Override { key: String, message: String },
    #[error("configuration `{key}`: {message}")]
    Invalid { key: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `HOST:PORT` the HTTP(S)/WebSocket server listens on (`[::1]:8080` for IPv6; a host name
    /// such as `localhost:8080` is resolved when binding).
    pub addr: String,
    /// Directory for the database, TLS material, recordings.
    pub data_dir: PathBuf,
    /// Public base URL (e.g. `https://cunneng.example:8443`) used in printed links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub media: MediaConfig,
    pub queue: QueueConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub audit: AuditConfig,
    pub metrics: MetricsConfig,
}

/// Who may read `/metrics` (`metrics_access`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A file holding the bearer token Prometheus must send (`authorization: {
    /// credentials_file: … }` in its scrape config); then any address with the token is
    /// answered. Without it, only direct requests from this machine (loopback, not forwarded
    /// by a proxy) are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// The audit record's background work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How often the head of the hash chain is signed (and at shutdown).
    pub checkpoint_every_secs: u64,
    /// How often final cases are sealed with their signed manifest.
    pub seal_every_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { checkpoint_every_secs: 5, seal_every_secs: 30 }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. With `key`; without both, plain HTTP (unless `self_signed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate once and keep it under `data_dir/tls`.
    pub self_signed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
    /// A tracing filter: `info`, `debug`, `cunneng_signaling=debug,info`, ...
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { json: false, level: "info".into() }
    }
}

/// One ICE server as handed to browsers (`RTCIceServer`) and used by the media server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Local address the media (UDP) sockets bind to.
    pub bind_ip: IpAddr,
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// Addresses announced in ICE candidates (NAT / public addresses); empty: the bound ones.
    pub announced_ips: Vec<IpAddr>,
    pub ice_servers: Vec<IceServer>,
    /// Most RTCPeerConnections the server holds at once.
    pub max_peer_connections: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port_min: 50000,
            udp_port_max: 50999,
            announced_ips: Vec::new(),
            ice_servers: Vec::new(),
            max_peer_connections: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// How long one approver is rung before the ring stops (`timeout`).
    pub ring_timeout_secs: u64,
    /// How long a live call waits for a dropped kiosk before it ends (`grace_expired`).
    pub kiosk_grace_secs: u64,
    /// How long a group invitation stays open.
    pub group_invite_timeout_secs: u64,
    /// Most calls waiting in one window's queue.
    pub max_waiting_per_queue: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            ring_timeout_secs: 30,
            kiosk_grace_secs: 60,
            group_invite_timeout_secs: 60,
            max_waiting_per_queue: 500,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most open WebSockets that have said `hello` (authenticated). The default holds a
    /// large county (about 2,500 village rooms and their town staff, with room for sockets
    /// being replaced after a network drop); a province node sets it to its kiosks and staff.
    /// A socket refused for this is counted (`cunneng_rejected_total{reason="connection_limit"}`)
    /// and logged (one line per 10 s at most, with the count).
    pub max_connections: usize,
    /// Most TCP connections the server holds at once, plain or TLS: HTTP requests, idle
    /// keep-alive connections and WebSockets (which keep their connection's place). Past it a
    /// new connection is answered `503 too_many_connections` with `Retry-After` (only
    /// `/healthz` and `/metrics` are still served, from a small pool), counted and logged.
    /// Lowered at start to what the open-file limit leaves after `reserved_files`.
    pub open_connections: usize,
    /// Open files kept for everything but client connections (the database, recordings being
    /// written, the spool, the TLS material), besides two per `media.max_peer_connections`
    /// (its UDP socket and a recording file): `open_connections` never takes them.
    pub reserved_files: usize,
    /// Most WebSockets that have not said `hello` yet, server-wide; each has `ws_hello_secs`
    /// to do so and holds no connection permit meanwhile.
    pub ws_anonymous: usize,
    pub ws_hello_secs: u64,
    /// Most WebSockets open at once from one client address (with or without `hello`).
    pub ws_per_address: usize,
    /// Most HTTP connections (requests being read or answered) at once from one address;
    /// past that a new connection is closed at once.
    pub connections_per_address: usize,
    /// A connection that has not sent a whole request head in this long is closed.
    pub http_header_read_secs: u64,
    /// How often an open WebSocket checks that its token is still valid (a logout closes the
    /// session's sockets at once; expiry and revocation are found by this check).
    pub ws_recheck_secs: u64,
    pub ws_max_message_bytes: usize,
    pub ws_messages_per_sec: u32,
    pub ws_burst: u32,
    pub http_body_bytes: usize,
    /// Largest paper (scan, result document) one may upload.
    pub paper_max_bytes: usize,
    /// Papers assembled from their chunks at once (each holds up to two copies in memory).
    pub papers_assembling: usize,
    /// Paper chunk bodies (up to 4 MiB each) received at once; further uploads wait (at most
    /// `paper_receive_wait_secs`, then 503 with `Retry-After`).
    pub paper_chunks_receiving: usize,
    /// Chunk bodies one kiosk (or staff member) may send at once; one more is 429, so that
    /// one client cannot take every receiving slot.
    pub paper_chunks_per_client: usize,
    /// A chunk body that sends nothing for this long is broken off (the client resumes).
    pub paper_body_idle_secs: u64,
    /// Longest a chunk body may take in all.
    pub paper_body_max_secs: u64,
    /// Slowest a chunk body may come once its first `paper_body_idle_secs` have passed, in
    /// bytes per second (the default, 2 KiB/s, is a fifteenth of a 300 kbit/s village link).
    pub paper_body_min_bytes_per_sec: u64,
    /// Longest a chunk waits for a receiving slot.
    pub paper_receive_wait_secs: u64,
    /// Papers opened for viewing at once (each up to `paper_max_bytes` in memory).
    pub papers_opening: usize,
    /// Public progress lookups one client address may make in a burst...
    pub progress_burst: u32,
    /// ...and the seconds it takes to earn one more.
    pub progress_refill_secs: u32,
    /// Client addresses the progress rate limit remembers at most.
    pub progress_max_clients: usize,
    /// Lookups of one case number (from anywhere) in a burst, and the seconds it takes to
    /// earn one more.
    pub progress_case_burst: u32,
    pub progress_case_refill_secs: u32,
    /// Progress lookups one kiosk (authenticated, checking several villagers) may make in a
    /// burst, counted per kiosk instead of per address...
    pub progress_kiosk_burst: u32,
    /// ...and the seconds it takes to earn one more.
    pub progress_kiosk_refill_secs: u32,
    /// A case a kiosk opened and never called stays its current case (restored after a
    /// reload or a power cut) for this many hours.
    pub prepared_case_hours: u32,
    /// Recording media streams (playback, `docs/cases-api.md`) served at once; one more is
    /// refused with 503. Each holds about four chunks (256 KiB) of memory.
    pub media_streams: usize,
    /// A media stream whose client has not taken its next piece for this long is ended (the
    /// browser asks again with a Range when it wants more), so a paused player holds no slot.
    pub media_stream_idle_secs: u64,
    /// Case exports (decrypting a whole case into one file) running at once.
    pub exports_at_once: usize,
    /// argon2id hashes (login, password change and reset, new account; 19 MiB and tens of
    /// milliseconds of a core each) running at once. A request waits up to `password_hash_wait_ms` (2 s) for one, then
    /// is answered 503 `busy` with `Retry-After`. Default 2: the cores of the standard machine.
    pub password_hashes_at_once: usize,
    /// Longest a request waits for a hashing permit before it is answered 503 `busy`.
    pub password_hash_wait_ms: u64,
    /// Login attempts one client address may make in a burst, and the seconds it takes to
    /// earn one more; past that 429 with `Retry-After`, before any password is hashed.
    pub login_address_burst: u32,
    pub login_address_refill_secs: u32,
    /// Login attempts on one account (by user name, from anywhere) in a burst, and the
    /// seconds it takes to earn one more.
    pub login_account_burst: u32,
    pub login_account_refill_secs: u32,
    /// Addresses and accounts the login limits remember at most (each).
    pub login_max_keys: usize,
    /// Kiosk enrolment attempts (`POST /api/enrol`) one client address may make in a burst,
    /// and the seconds it takes to earn one more (the addresses remembered: `login_max_keys`).
    pub enrol_burst: u32,
    pub enrol_refill_secs: u32,
    /// Bookings (预约) one village may hold at once that are neither used, cancelled nor over:
    /// one room cannot book every slot of a window.
    pub open_bookings_per_village: usize,
    /// Recording jobs (closed segments, finished recordings) waiting to be stored; past that
    /// a segment is dropped (counted, the recording marked incomplete) instead of growing
    /// memory without bound while the store is slow.
    pub recording_queue: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 4000,
            open_connections: 10_000,
            reserved_files: 512,
            ws_anonymous: 256,
            ws_hello_secs: 5,
            ws_per_address: 64,
            connections_per_address: 64,
            http_header_read_secs: 10,
            ws_recheck_secs: 60,
            ws_max_message_bytes: 65536,
            ws_messages_per_sec: 20,
            ws_burst: 40,
            http_body_bytes: 1024 * 1024,
            paper_max_bytes: 20 * 1024 * 1024,
            papers_assembling: 2,
            paper_chunks_receiving: 16,
            paper_chunks_per_client: 2,
            paper_body_idle_secs: 20,
            paper_body_max_secs: 600,
            paper_body_min_bytes_per_sec: 2048,
            paper_receive_wait_secs: 30,
            papers_opening: 8,
            progress_burst: 5,
            progress_refill_secs: 6,
            progress_max_clients: 10_000,
            progress_case_burst: 10,
            progress_case_refill_secs: 60,
            progress_kiosk_burst: 30,
            progress_kiosk_refill_secs: 2,
            prepared_case_hours: 12,
            media_streams: 32,
            media_stream_idle_secs: 60,
            exports_at_once: 2,
            password_hashes_at_once: 2,
            password_hash_wait_ms: 2_000,
            login_address_burst: 30,
            login_address_refill_secs: 2,
            login_account_burst: 10,
            login_account_refill_secs: 30,
            login_max_keys: 10_000,
            enrol_burst: 10,
            enrol_refill_secs: 60,
            open_bookings_per_village: 6,
            recording_queue: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of a staff session from login.
    pub session_ttl_hours: u64,
    /// How long a kiosk enrolment code (一次性开通码) stays valid once the administrator
    /// issued it.
    pub enrolment_minutes: u64,
    /// Lifetime of a kiosk token given by enrolment or rotation (tokens from the region import
    /// file do not expire); the kiosk page rotates its token once less than half is left.
    pub kiosk_token_days: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { session_ttl_hours: 12, enrolment_minutes: 30, kiosk_token_days: 180 }
    }
}

/// Where encrypted objects (recordings, papers) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// A local directory (`storage.local_dir`): the embedded default.
    #[default]
    Local,
    /// An S3-compatible store (`[storage.s3]`), behind the durable local spool.
    S3,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Directory of the local backend (default `DATA_DIR/objects`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_dir: Option<PathBuf>,
    /// Durable spool for objects not yet uploaded (default `DATA_DIR/spool`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes the spool may hold while the store is unreachable.
    pub spool_quota_bytes: u64,
    /// Key-encryption keys (default `DATA_DIR-keys/kek.toml`, beside the data directory and
    /// not inside it, so that a backup of the data does not carry its key; generated at the
    /// very first start only: with sealed data and no key file the server refuses to start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<PathBuf>,
    /// Retention of call recordings.
    pub media_retention_days: u32,
    /// Retention of papers (scans, result documents).
    pub papers_retention_days: u32,
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Local,
            local_dir: None,
            spool_dir: None,
            spool_quota_bytes: 10 * 1024 * 1024 * 1024,
            kek_file: None,
            media_retention_days: 365,
            papers_retention_days: 3 * 365,
            s3: S3Config::default(),
        }
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:3900`; empty: the AWS default for the region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Path-style addressing (`endpoint/bucket/key`), as Garage and most on-premises stores want.
    pub path_style: bool,
    /// Credentials; when absent, the standard AWS environment variables and profiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

/// Never prints the secret.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: "cunneng".into(),
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            media: MediaConfig::default(),
            queue: QueueConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            storage: StorageConfig::default(),
            audit: AuditConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Config {
    /// Loads the configuration: defaults < `file` < `env` (pass `std::env::vars()`) <
    /// `overrides` (built from command-line flags). Errors name the source and the key.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        overrides: toml::Table,
    ) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();

        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
            // Parse straight into Config first: toml's error then shows line, column and key.
            toml::from_str::<Config>(&text)
                .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })?;
            merge(&mut merged, table);
        }

        let mut env: Vec<(String, String)> =
            env.filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_RESERVED.contains(&k.as_str())).collect();
        env.sort();
        for (var, raw) in env {
            let layer = env_layer(&var, &raw)?;
            merge(&mut merged, layer);
        }

        for (path, value) in leaves(&overrides) {
            let layer = single(&path, value.clone());
            check_layer(layer).map_err(|message| ConfigError::Override { key: path.join("."), message })?;
        }
        merge(&mut merged, overrides);

        let config: Config = toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| {
            ConfigError::Invalid { key: "(merged)".into(), message: e.message().to_owned() }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The connections the server may hold at once when the process may open `open_files`
    /// files: `limits.open_connections`, or less when the open-file limit does not leave room
    /// for it beside `limits.reserved_files` and two files per peer connection. At least one.
    pub fn connection_budget(&self, open_files: u64) -> usize {
        let kept = self.limits.reserved_files as u64 + 2 * u64::from(self.media.max_peer_connections);
        let room = usize::try_from(open_files.saturating_sub(kept)).unwrap_or(usize::MAX);
        self.limits.open_connections.min(room).max(1)
    }

    /// Checks relations between values that each parse on their own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid { key: key.into(), message: message.into() })
        }
        if self.addr_host_port().is_none() {
            return bad("addr", format!("`{}` is not HOST:PORT (e.g. 127.0.0.1:8080)", self.addr));
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir", "must not be empty");
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad("public_url", "must start with http:// or https://");
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return bad("tls.key", "tls.cert is set, tls.key is missing"),
            (None, Some(_)) => return bad("tls.cert", "tls.key is set, tls.cert is missing"),
            (Some(_), Some(_)) if self.tls.self_signed => {
                return bad("tls.self_signed", "cannot be true when tls.cert and tls.key are given");
            }
            _ => {}
        }
        if self.log.level.trim().is_empty() {
            return bad("log.level", "must not be empty (e.g. \"info\")");
        }
        let st = &self.storage;
        if st.spool_quota_bytes == 0 {
            return bad("storage.spool_quota_bytes", "must be > 0");
        }
        if st.media_retention_days == 0 || st.papers_retention_days == 0 {
            return bad("storage.media_retention_days", "retention periods must be at least one day");
        }
        if st.backend == StorageBackend::S3 && st.s3.bucket.trim().is_empty() {
            return bad("storage.s3.bucket", "must be set when storage.backend = \"s3\"");
        }
        let m = &self.media;
        // 0..0 means ephemeral ports (tests); otherwise a real range.
        if (m.udp_port_min == 0) != (m.udp_port_max == 0) {
            return bad("media.udp_port_min", "0 only together with media.udp_port_max = 0 (ephemeral ports)");
        }
        if m.udp_port_min > m.udp_port_max {
            return bad(
                "media.udp_port_min",
                format!("{} is greater than media.udp_port_max {}", m.udp_port_min, m.udp_port_max),
            );
        }
        if m.max_peer_connections == 0 {
            return bad("media.max_peer_connections", "must be > 0");
        }
        for (i, s) in m.ice_servers.iter().enumerate() {
            if s.urls.is_empty() {
                return bad(&format!("media.ice_servers[{i}].urls"), "must not be empty");
            }
        }
        let q = &self.queue;
        for (key, v) in [
            ("queue.ring_timeout_secs", q.ring_timeout_secs),
            ("queue.kiosk_grace_secs", q.kiosk_grace_secs),
            ("queue.group_invite_timeout_secs", q.group_invite_timeout_secs),
            ("queue.max_waiting_per_queue", u64::from(q.max_waiting_per_queue)),
            ("auth.session_ttl_hours", self.auth.session_ttl_hours),
            ("auth.enrolment_minutes", self.auth.enrolment_minutes),
            ("auth.kiosk_token_days", self.auth.kiosk_token_days),
            ("audit.checkpoint_every_secs", self.audit.checkpoint_every_secs),
            ("audit.seal_every_secs", self.audit.seal_every_secs),
        ] {
            if v == 0 {
                return bad(key, "must be > 0");
            }
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.max_connections", l.max_connections),
            ("limits.open_connections", l.open_connections),
            ("limits.reserved_files", l.reserved_files),
            ("limits.ws_anonymous", l.ws_anonymous),
            ("limits.ws_hello_secs", l.ws_hello_secs as usize),
            ("limits.ws_per_address", l.ws_per_address),
            ("limits.connections_per_address", l.connections_per_address),
            ("limits.http_header_read_secs", l.http_header_read_secs as usize),
            ("limits.ws_recheck_secs", l.ws_recheck_secs as usize),
            ("limits.ws_max_message_bytes", l.ws_max_message_bytes),
            ("limits.ws_messages_per_sec", l.ws_messages_per_sec as usize),
            ("limits.ws_burst", l.ws_burst as usize),
            ("limits.http_body_bytes", l.http_body_bytes),
            ("limits.paper_max_bytes", l.paper_max_bytes),
            ("limits.papers_assembling", l.papers_assembling),
            ("limits.paper_chunks_receiving", l.paper_chunks_receiving),
            ("limits.paper_chunks_per_client", l.paper_chunks_per_client),
            ("limits.paper_body_idle_secs", l.paper_body_idle_secs as usize),
            ("limits.paper_body_max_secs", l.paper_body_max_secs as usize),
            ("limits.paper_receive_wait_secs", l.paper_receive_wait_secs as usize),
            ("limits.papers_opening", l.papers_opening),
            ("limits.progress_burst", l.progress_burst as usize),
            ("limits.progress_refill_secs", l.progress_refill_secs as usize),
            ("limits.progress_max_clients", l.progress_max_clients),
            ("limits.progress_case_burst", l.progress_case_burst as usize),
            ("limits.progress_case_refill_secs", l.progress_case_refill_secs as usize),
            ("limits.progress_kiosk_burst", l.progress_kiosk_burst as usize),
            ("limits.progress_kiosk_refill_secs", l.progress_kiosk_refill_secs as usize),
            ("limits.prepared_case_hours", l.prepared_case_hours as usize),
            ("limits.media_streams", l.media_streams),
            ("limits.media_stream_idle_secs", l.media_stream_idle_secs as usize),
            ("limits.exports_at_once", l.exports_at_once),
            ("limits.password_hashes_at_once", l.password_hashes_at_once),
            ("limits.login_address_burst", l.login_address_burst as usize),
            ("limits.login_address_refill_secs", l.login_address_refill_secs as usize),
            ("limits.login_account_burst", l.login_account_burst as usize),
            ("limits.login_account_refill_secs", l.login_account_refill_secs as usize),
            ("limits.login_max_keys", l.login_max_keys),
            ("limits.enrol_burst", l.enrol_burst as usize),
            ("limits.enrol_refill_secs", l.enrol_refill_secs as usize),
            ("limits.open_bookings_per_village", l.open_bookings_per_village),
            ("limits.recording_queue", l.recording_queue),
        ] {
            if v == 0 {
                return bad(key, "must be > 0");
            }
        }
        if l.open_connections < l.max_connections.saturating_add(l.ws_anonymous) {
            return bad(
                "limits.open_connections",
                format!(
                    "{} is less than limits.max_connections + limits.ws_anonymous ({}): every WebSocket holds a connection",
                    l.open_connections,
                    l.max_connections.saturating_add(l.ws_anonymous)
                ),
            );
        }
        if l.ws_burst < l.ws_messages_per_sec {
            return bad("limits.ws_burst", "must be >= limits.ws_messages_per_sec");
        }
        if l.media_stream_idle_secs > 3600 {
            return bad("limits.media_stream_idle_secs", "must be at most 3600 (an hour)");
        }
        if self.auth.session_ttl_hours > 24 * 366 {
            return bad("auth.session_ttl_hours", "must be at most one year");
        }
        if self.auth.enrolment_minutes > 7 * 24 * 60 {
            return bad("auth.enrolment_minutes", "must be at most a week (10080)");
        }
        if self.auth.kiosk_token_days > 3660 {
            return bad("auth.kiosk_token_days", "must be at most ten years (3660)");
        }
        Ok(())
    }

    /// `data_dir/cunneng.sqlite3`.
    pub fn objects_dir(&self) -> PathBuf {
        self.storage.local_dir.clone().unwrap_or_else(|| self.data_dir.join("objects"))
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.storage.spool_dir.clone().unwrap_or_else(|| self.data_dir.join("spool"))
    }

    /// The key-encryption keys: `storage.kek_file`, else `kek.toml` in the directory beside the
    /// data directory ([`Config::default_keys_dir`]). A server set up before keys moved out of
    /// the data directory keeps using `DATA_DIR/keys/kek.toml` while no file exists beside it.
    pub fn kek_file(&self) -> PathBuf {
        if let Some(f) = &self.storage.kek_file {
            return f.clone();
        }
        let beside = self.default_keys_dir().join("kek.toml");
        let legacy = self.data_dir.join("keys").join("kek.toml");
        if !beside.exists() && legacy.exists() { legacy } else { beside }
    }

    /// `DATA_DIR-keys`: the directory beside the data directory (`/var/lib/cunneng` →
    /// `/var/lib/cunneng-keys`), so that copying the data directory does not copy its keys.
    pub fn default_keys_dir(&self) -> PathBuf {
        match self.data_dir.file_name() {
            Some(name) => {
                let mut n = name.to_os_string();
                n.push("-keys");
                self.data_dir.with_file_name(n)
            }
            None => self.data_dir.join("keys"),
        }
    }

    /// The audit record's Ed25519 signing key: beside the key-encryption keys.
    pub fn audit_key_file(&self) -> PathBuf {
        self.kek_file().with_file_name("audit-ed25519.key")
    }

    /// Where the signed checkpoints of the audit chain are logged, beside the database.
    pub fn audit_checkpoint_log(&self) -> PathBuf {
        self.data_dir.join("audit").join("checkpoints.log")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("cunneng.sqlite3")
    }

    /// `data_dir/tls`: where a self-signed certificate is kept.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// Lifetime of an enrolment code in milliseconds.
    pub fn enrolment_ms(&self) -> u64 {
        self.auth.enrolment_minutes.saturating_mul(60_000)
    }

    /// Lifetime of an enrolled kiosk's token in milliseconds.
    pub fn kiosk_token_ms(&self) -> u64 {
        self.auth.kiosk_token_days.saturating_mul(86_400_000)
    }

    /// Session lifetime in milliseconds.
    pub fn session_ttl_ms(&self) -> u64 {
        self.auth.session_ttl_hours.saturating_mul(3_600_000)
    }

    /// Base of printed links: `public_url`, else derived from `addr` and TLS settings.
    pub fn base_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls.self_signed || self.tls.cert.is_some() { "https" } else { "http" };
        let (host, port) = self.addr_host_port().unwrap_or(("127.0.0.1", 8080));
        let host = match host {
            "0.0.0.0" | "[::]" => "127.0.0.1",
            h => h,
        };
        format!("{scheme}://{host}:{port}")
    }

    /// Host (IPv6 in brackets) and port of `addr`; `None` unless it is `HOST:PORT`.
    /// Port 0 (any free port) is allowed.
    pub fn addr_host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.addr.trim().rsplit_once(':')?;
        let port = port.parse().ok()?;
        let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
        if host.is_empty() || (host.contains(':') && !bracketed) || host.contains(char::is_whitespace) {
            return None;
        }
        Some((host, port))
    }
}

/// Deep-merges `upper` into `lower` (tables merge key by key, everything else replaces).
fn merge(lower: &mut toml::Table, upper: toml::Table) {
    for (k, v) in upper {
        match (lower.get_mut(&k), v) {
            (Some(toml::Value::Table(l)), toml::Value::Table(u)) => merge(l, u),
            (_, v) => {
                lower.insert(k, v);
            }
        }
    }
}

/// Leaf values of a table with their key paths (a table value is descended into).
fn leaves(table: &toml::Table) -> Vec<(Vec<String>, &toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(t) if !t.is_empty() => {
                for (mut p, v) in leaves(t) {
                    p.insert(0, k.clone());
                    out.push((p, v));
                }
            }
            _ => out.push((vec![k.clone()], v)),
        }
    }
    out
}

/// A table holding only `value` at `path`.
fn single(path: &[String], value: toml::Value) -> toml::Table {
    let mut v = value;
    for k in path.iter().skip(1).rev() {
        let mut t = toml::Table::new();
        t.insert(k.clone(), v);
        v = toml::Value::Table(t);
    }
    let mut t = toml::Table::new();
    t.insert(path[0].clone(), v);
    t
}

/// Does a partial configuration deserialize on its own? (All fields have defaults.)
fn check_layer(layer: toml::Table) -> Result<(), String> {
    toml::Value::Table(layer).try_into::<Config>().map(|_| ()).map_err(|e| e.message().to_owned())
}

/// One environment variable as a one-key layer, checked.
fn env_layer(var: &str, raw: &str) -> Result<toml::Table, ConfigError> {
    let err = |message: String| ConfigError::Env { var: var.to_owned(), message };
    let rest = &var[ENV_PREFIX.len()..];
    let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if path.len() > 3 || path.iter().any(|p| p.is_empty()) {
        return Err(err(format!(
            "expected {ENV_PREFIX}KEY, {ENV_PREFIX}SECTION__KEY or {ENV_PREFIX}SECTION__SUBSECTION__KEY"
        )));
    }
    let parsed =
        format!("v = {raw}").parse::<toml::Table>().ok().filter(|t| t.len() == 1).and_then(|mut t| t.remove("v"));
    let as_string = toml::Value::String(raw.to_owned());
    match parsed {
        Some(value) => {
            let layer = single(&path, value);
            match check_layer(layer.clone()) {
                Ok(()) => Ok(layer),
                Err(first) => {
                    let layer = single(&path, as_string);
                    match check_layer(layer.clone()) {
                        Ok(()) => Ok(layer),
                        Err(_) => Err(err(first)),
                    }
                }
            }
        }
        None => {
            let layer = single(&path, as_string);
            check_layer(layer.clone()).map_err(err)?;
            Ok(layer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn key_file_is_beside_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config { data_dir: dir.path().join("cunneng"), ..Config::default() };
        assert_eq!(c.kek_file(), dir.path().join("cunneng-keys").join("kek.toml"));
        assert_eq!(c.audit_key_file(), dir.path().join("cunneng-keys").join("audit-ed25519.key"));
        // A server set up with the key inside the data dir keeps using it.
        std::fs::create_dir_all(c.data_dir.join("keys")).unwrap();
        std::fs::write(c.data_dir.join("keys").join("kek.toml"), "").unwrap();
        assert_eq!(c.kek_file(), c.data_dir.join("keys").join("kek.toml"));
        let explicit = Config {
            storage: StorageConfig { kek_file: Some("/etc/cunneng/kek.toml".into()), ..StorageConfig::default() },
            ..c
        };
        assert_eq!(explicit.kek_file(), PathBuf::from("/etc/cunneng/kek.toml"));
    }

    #[test]
    fn connections_never_take_the_files_kept_for_the_rest() {
        let c = Config::default();
        // A system's usual hard limit leaves the configured figure as it is...
        assert_eq!(c.connection_budget(1 << 20), c.limits.open_connections);
        // ...a small one leaves the reserve and two files per peer connection free.
        let kept = c.limits.reserved_files + 2 * c.media.max_peer_connections as usize;
        assert_eq!(c.connection_budget(5_000), 5_000 - kept);
        assert_eq!(c.connection_budget(100), 1, "at least one connection, whatever the limit");
    }

    #[test]
    fn open_connections_hold_every_websocket() {
        let too_few = env(&[("CUNNENG_LIMITS__MAX_CONNECTIONS", "5000"), ("CUNNENG_LIMITS__OPEN_CONNECTIONS", "5000")]);
        let e = Config::load(None, too_few, toml::Table::new()).unwrap_err().to_string();
        assert!(e.contains("limits.open_connections"), "{e}");
        let enough = env(&[("CUNNENG_LIMITS__MAX_CONNECTIONS", "5000"), ("CUNNENG_LIMITS__OPEN_CONNECTIONS", "5256")]);
        assert_eq!(Config::load(None, enough, toml::Table::new()).unwrap().limits.open_connections, 5256);
    }

    #[test]
    fn defaults() {
        let c = Config::load(None, env(&[]), toml::Table::new()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.addr, "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.queue.ring_timeout_secs, 30);
        assert_eq!(c.queue.max_waiting_per_queue, 500);
        assert_eq!(c.limits.http_body_bytes, 1 << 20);
        assert_eq!((c.media.udp_port_min, c.media.udp_port_max), (50000, 50999));
        assert_eq!(c.auth.session_ttl_hours, 12);
        assert_eq!(c.session_ttl_ms(), 12 * 3_600_000);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
        assert_eq!(c.db_path(), PathBuf::from("./data/cunneng.sqlite3"));
    }

    #[test]
    fn precedence_file_env_flags() {
        let f = file(
            r#"
addr = "0.0.0.0:9000"
data_dir = "/var/lib/cunneng"
[queue]
ring_timeout_secs = 10
kiosk_grace_secs = 11
[log]
level = "debug"
[media]
announced_ips = ["10.1.2.3"]
ice_servers = [{ urls = ["stun:stun.example:3478"] }]
"#,
        );
        let vars = env(&[
            ("CUNNENG_QUEUE__KIOSK_GRACE_SECS", "22"),
            ("CUNNENG_QUEUE__GROUP_INVITE_TIMEOUT_SECS", "23"),
            ("CUNNENG_LOG__JSON", "true"),
            ("CUNNENG_PUBLIC_URL", "https://cn.example/"),
            ("CUNNENG_CONFIG", "/ignored.toml"),
            ("HOME", "/root"),
        ]);
        let mut flags = toml::Table::new();
        flags.insert("addr".into(), "127.0.0.1:7000".into());
        let mut q = toml::Table::new();
        q.insert("group_invite_timeout_secs".into(), 33.into());
        flags.insert("queue".into(), q.into());
        let c = Config::load(Some(f.path()), vars, flags).unwrap();
        assert_eq!(c.addr, "127.0.0.1:7000"); // flag over file
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/cunneng")); // file over default
        assert_eq!(c.queue.ring_timeout_secs, 10); // file
        assert_eq!(c.queue.kiosk_grace_secs, 22); // env over file
        assert_eq!(c.queue.group_invite_timeout_secs, 33); // flag over env
        assert_eq!(c.queue.max_waiting_per_queue, 500); // default kept beside file keys
        assert_eq!(c.log.level, "debug");
        assert!(c.log.json);
        assert_eq!(c.media.announced_ips, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.media.ice_servers[0].urls, vec!["stun:stun.example:3478".to_string()]);
        assert_eq!(c.base_url(), "https://cn.example");
    }

    #[test]
    fn env_values_are_toml_then_string() {
        let vars = env(&[
            ("CUNNENG_ADDR", "0.0.0.0:8443"),             // not TOML: string
            ("CUNNENG_LOG__LEVEL", "cunneng=debug,info"), // not TOML: string
            ("CUNNENG_MEDIA__ANNOUNCED_IPS", r#"["192.0.2.1", "192.0.2.2"]"#),
            ("CUNNENG_TLS__SELF_SIGNED", "true"),
            ("CUNNENG_DATA_DIR", "123"), // TOML integer, but the field is a path: taken as string
        ]);
        let c = Config::load(None, vars, toml::Table::new()).unwrap();
        assert_eq!(c.addr, "0.0.0.0:8443");
        assert_eq!(c.log.level, "cunneng=debug,info");
        assert_eq!(c.media.announced_ips.len(), 2);
        assert!(c.tls.self_signed);
        assert_eq!(c.data_dir, PathBuf::from("123"));
        assert_eq!(c.base_url(), "https://127.0.0.1:8443");
    }

    #[test]
    fn bad_env_names_the_variable() {
        let e =
            Config::load(None, env(&[("CUNNENG_QUEUE__RING_TIMEOUT_SECS", "soon")]), toml::Table::new()).unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, ConfigError::Env { .. }), "{s}");
        assert!(s.contains("CUNNENG_QUEUE__RING_TIMEOUT_SECS"), "{s}");

        let e = Config::load(None, env(&[("CUNNENG_QUEUE__RING_TIMEOUT", "5")]), toml::Table::new()).unwrap_err();
        assert!(e.to_string().contains("CUNNENG_QUEUE__RING_TIMEOUT"), "{e}");
        assert!(e.to_string().contains("unknown field"), "{e}");

        let e = Config::load(None, env(&[("CUNNENG_A__B__C", "5")]), toml::Table::new()).unwrap_err();
        assert!(matches!(e, ConfigError::Env { .. }), "{e}");

        let e = Config::load(None, env(&[("CUNNENG_MEDIA__UDP_PORT_MIN", "70000")]), toml::Table::new()).unwrap_err();
        assert!(e.to_string().contains("CUNNENG_MEDIA__UDP_PORT_MIN"), "{e}");
    }

    #[test]
    fn bad_file_names_file_and_key() {
        let f = file("[queue]\nring_timeout_secs = \"thirty\"\n");
        let e = Config::load(Some(f.path()), env(&[]), toml::Table::new()).unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, ConfigError::File { .. }), "{s}");
        assert!(s.contains("ring_timeout_secs") && s.contains("line 2"), "{s}");

        let f = file("[queue]\nring_timeout = 3\n");
        let e = Config::load(Some(f.path()), env(&[]), toml::Table::new()).unwrap_err();
        assert!(e.to_string().contains("unknown field `ring_timeout`"), "{e}");

        for bad in ["not an address", "1.2.3.4", "::1:80", "host:99999", ":80"] {
            let f = file(&format!("addr = \"{bad}\"\n"));
            let e = Config::load(Some(f.path()), env(&[]), toml::Table::new()).unwrap_err();
            assert!(matches!(&e, ConfigError::Invalid { key, .. } if key == "addr"), "{bad}: {e}");
        }
        for good in ["[::1]:8080", "localhost:0", "0.0.0.0:443"] {
            let f = file(&format!("addr = \"{good}\"\n"));
            Config::load(Some(f.path()), env(&[]), toml::Table::new()).unwrap();
        }

        let f = file("this is not toml\n");
        assert!(matches!(Config::load(Some(f.path()), env(&[]), toml::Table::new()), Err(ConfigError::File { .. })));

        let e = Config::load(Some(Path::new("/nonexistent/cunneng.toml")), env(&[]), toml::Table::new()).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }), "{e}");
    }

    #[test]
    fn bad_override_names_key() {
        let mut flags = toml::Table::new();
        let mut l = toml::Table::new();
        l.insert("ws_burst".into(), "many".into());
        flags.insert("limits".into(), l.into());
        let e = Config::load(None, env(&[]), flags).unwrap_err();
        assert!(matches!(&e, ConfigError::Override { key, .. } if key == "limits.ws_burst"), "{e}");
    }

    #[test]
    fn relations_are_checked() {
        let f = file("[media]\nudp_port_min = 6000\nudp_port_max = 5000\n");
        let e = Config::load(Some(f.path()), env(&[]), toml::Table::new()).unwrap_err();
        assert!(matches!(&e, ConfigError::Invalid { key, .. } if key == "media.udp_port_min"), "{e}");

        let f = file("[tls]\ncert = \"/etc/c.pem\"\n");
        let e = Config::load(Some(f.path()), env(&[]), toml::Table::new()).unwrap_err();
        assert!(matches!(&e, ConfigError::Invalid { key, .. } if key == "tls.key"), "{e}");

        let e = Config::load(None, env(&[("CUNNENG_QUEUE__RING_TIMEOUT_SECS", "0")]), toml::Table::new()).unwrap_err();
        assert!(e.to_string().contains("queue.ring_timeout_secs"), "{e}");

        let e = Config::load(None, env(&[("CUNNENG_PUBLIC_URL", "cn.example")]), toml::Table::new()).unwrap_err();
        assert!(e.to_string().contains("public_url"), "{e}");
    }

    #[test]
    fn serializes_back_to_toml() {
        let c = Config::default();
        let text = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
