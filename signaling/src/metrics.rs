//! Prometheus text exposition. Counters that the edge increments live here; gauges are read
//! from their owners (the engine, the media plane) at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// How often a kind of refusal is logged at most.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Metrics {
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    refusal_log: crate::ratelimit::LogGate,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { rejected: Mutex::default(), refusal_log: crate::ratelimit::LogGate::new(REFUSAL_LOG_EVERY) }
    }
}

impl Metrics {
    /// A refusal an operator must hear of (a limit of the configuration reached, the process
    /// out of files): counted as [`Metrics::inc_rejected`] does, and logged as a warning at most
    /// once per 10 s per reason, with how many there were since the last line. `what` says
    /// which limit and how to raise it; it names nobody (no address, no account).
    pub fn refused(&self, reason: &'static str, what: &str) {
        self.inc_rejected(reason);
        if let Some(n) = self.refusal_log.event(reason, std::time::Instant::now()) {
            tracing::warn!(reason, refused = n, "{what}");
        }
    }

    /// A refused connection or message, by reason (`unauthorized`, `rate_limited`, ...).
    pub fn inc_rejected(&self, reason: &'static str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        self.rejected.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Per-queue figures at scrape time.
pub struct QueueGauge {
    pub queue: String,
    pub waiting: usize,
    pub oldest_wait_secs: u64,
    pub estimated_wait_secs: u64,
}

pub struct Snapshot {
    pub queues: Vec<QueueGauge>,
    pub live_calls: usize,
    pub open_groups: usize,
    pub connected_kiosks: usize,
    pub connected_staff: usize,
    /// Queue snapshot writes that failed since start.
    pub snapshot_failures: u64,
    /// Queue changes held, told to nobody, until their snapshot is written.
    pub held_changes: usize,
    pub peer_connections: usize,
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    /// Recording media streams being served, and how many may be (`limits.media_streams`).
    pub media_streams: (usize, usize),
    pub spool: Option<cunneng_storage::SpoolMetrics>,
    /// Recording segments waiting to be stored, the most that may (`limits.recording_queue`),
    /// and those dropped since start because the queue was full.
    pub recording_queue: (usize, usize, u64),
    pub jobs: Vec<(&'static str, crate::jobs::JobStatus)>,
    /// TCP connections held now, and how many may be (`limits.open_connections`, as lowered to
    /// the open-file limit at start).
    pub open_connections: (usize, usize),
    /// WebSockets said `hello` and open now, and how many may be (`limits.max_connections`).
    pub websockets: (usize, usize),
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# HELP cunneng_queue_waiting Calls waiting in a queue.\n# TYPE cunneng_queue_waiting gauge");
    for q in &s.queues {
        let _ = writeln!(o, "cunneng_queue_waiting{{queue=\"{}\"}} {}", esc(&q.queue), q.waiting);
    }
    let _ = writeln!(
        o,
        "# HELP cunneng_queue_oldest_wait_seconds Age of the oldest waiting call.\n# TYPE cunneng_queue_oldest_wait_seconds gauge"
    );
    for q in &s.queues {
        let _ = writeln!(o, "cunneng_queue_oldest_wait_seconds{{queue=\"{}\"}} {}", esc(&q.queue), q.oldest_wait_secs);
    }
    let _ = writeln!(
        o,
        "# HELP cunneng_queue_estimated_wait_seconds Estimated wait for a call joining now.\n# TYPE cunneng_queue_estimated_wait_seconds gauge"
    );
    for q in &s.queues {
        let _ = writeln!(
            o,
            "cunneng_queue_estimated_wait_seconds{{queue=\"{}\"}} {}",
            esc(&q.queue),
            q.estimated_wait_secs
        );
    }
    let gauges: [(&str, &str, u64); 11] = [
        ("cunneng_open_connections", "TCP connections held (HTTP and WebSockets).", s.open_connections.0 as u64),
        (
            "cunneng_open_connections_max",
            "TCP connections held at most (limits.open_connections, lowered to the open-file limit).",
            s.open_connections.1 as u64,
        ),
        ("cunneng_websockets", "WebSockets that said hello, open now.", s.websockets.0 as u64),
        ("cunneng_websockets_max", "WebSockets open at most (limits.max_connections).", s.websockets.1 as u64),
        ("cunneng_live_calls", "Calls in progress (1-to-1).", s.live_calls as u64),
        ("cunneng_open_group_calls", "Group calls in progress.", s.open_groups as u64),
        ("cunneng_connected_kiosks", "Kiosks with a live signaling socket.", s.connected_kiosks as u64),
        ("cunneng_connected_staff", "Staff with a live signaling socket.", s.connected_staff as u64),
        ("cunneng_peer_connections", "WebRTC peer connections held by the media plane.", s.peer_connections as u64),
        (
            "cunneng_queue_held_changes",
            "Queue changes waiting for their snapshot to be written.",
            s.held_changes as u64,
        ),
        ("cunneng_up", "1 while the server runs.", 1),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let _ = writeln!(
        o,
        "# HELP cunneng_forwarded_packets_total RTP packets forwarded.\n# TYPE cunneng_forwarded_packets_total counter\ncunneng_forwarded_packets_total {}",
        s.forwarded_packets
    );
    let _ = writeln!(
        o,
        "# HELP cunneng_forwarded_bytes_total RTP payload bytes forwarded.\n# TYPE cunneng_forwarded_bytes_total counter\ncunneng_forwarded_bytes_total {}",
        s.forwarded_bytes
    );
    let _ = writeln!(
        o,
        "# HELP cunneng_queue_snapshot_failures_total Queue snapshot writes that failed.\n# TYPE cunneng_queue_snapshot_failures_total counter\ncunneng_queue_snapshot_failures_total {}",
        s.snapshot_failures
    );
    let _ = writeln!(
        o,
        "# HELP cunneng_job_up Background jobs: 1 while running or idle, 0 once stopped or failed; `state` and `last_error` say more.\n# TYPE cunneng_job_up gauge"
    );
    for (name, j) in &s.jobs {
        let up = matches!(j.state, crate::jobs::JobState::Running | crate::jobs::JobState::Idle) as u8;
        let _ = writeln!(
            o,
            "cunneng_job_up{{job=\"{name}\",state=\"{}\",last_error=\"{}\"}} {up}",
            j.state.as_str(),
            esc(j.last_error.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(
        o,
        "# HELP cunneng_job_runs_total Runs of each background job.\n# TYPE cunneng_job_runs_total counter"
    );
    for (name, j) in &s.jobs {
        let _ = writeln!(o, "cunneng_job_runs_total{{job=\"{name}\"}} {}", j.runs);
    }
    let _ = writeln!(
        o,
        "# HELP cunneng_job_failures_total Failed runs (or the failure) of each background job.\n# TYPE cunneng_job_failures_total counter"
    );
    for (name, j) in &s.jobs {
        let _ = writeln!(o, "cunneng_job_failures_total{{job=\"{name}\"}} {}", j.failures);
    }
    let _ = writeln!(
        o,
        "# HELP cunneng_rejected_total Connections or messages refused, by reason.\n# TYPE cunneng_rejected_total counter"
    );
    for (reason, n) in &s.rejected {
        let _ = writeln!(o, "cunneng_rejected_total{{reason=\"{reason}\"}} {n}");
    }
    let _ = writeln!(
        o,
        "# HELP cunneng_media_streams Recording media streams being served.\n# TYPE cunneng_media_streams gauge\ncunneng_media_streams {}",
        s.media_streams.0
    );
    let _ = writeln!(
        o,
        "# HELP cunneng_media_streams_max Recording media streams served at most at once (limits.media_streams).\n# TYPE cunneng_media_streams_max gauge\ncunneng_media_streams_max {}",
        s.media_streams.1
    );
    let (waiting, max, dropped) = s.recording_queue;
    let _ = writeln!(
        o,
        "# HELP cunneng_recording_queue Recording segments waiting to be stored.\n# TYPE cunneng_recording_queue gauge\ncunneng_recording_queue {waiting}"
    );
    let _ = writeln!(
        o,
        "# HELP cunneng_recording_queue_max Recording segments that may wait at most (limits.recording_queue).\n# TYPE cunneng_recording_queue_max gauge\ncunneng_recording_queue_max {max}"
    );
    let _ = writeln!(
        o,
        "# HELP cunneng_recording_segments_dropped_total Recording segments dropped because the queue was full (their recordings end incomplete).\n# TYPE cunneng_recording_segments_dropped_total counter\ncunneng_recording_segments_dropped_total {dropped}"
    );
    if let Some(sp) = &s.spool {
        let spool: [(&str, &str, &str, f64); 7] = [
            (
                "cunneng_spool_objects",
                "gauge",
                "Encrypted objects waiting in the spool for upload.",
                sp.spooled_objects as f64,
            ),
            ("cunneng_spool_bytes", "gauge", "Bytes waiting in the spool.", sp.spooled_bytes as f64),
            ("cunneng_spool_quota_bytes", "gauge", "The spool's quota.", sp.quota_bytes as f64),
            ("cunneng_spool_fill_ratio", "gauge", "Spooled bytes over the quota (warns past 0.8).", sp.fill_ratio),
            (
                "cunneng_spool_uploaded_objects_total",
                "counter",
                "Objects uploaded and verified.",
                sp.uploaded_objects as f64,
            ),
            ("cunneng_spool_upload_failures_total", "counter", "Failed upload attempts.", sp.upload_failures as f64),
            ("cunneng_spool_rejected_puts_total", "counter", "Objects refused (spool full).", sp.rejected_puts as f64),
        ];
        for (name, kind, help, v) in spool {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
    }
    o
}
