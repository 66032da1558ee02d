//! A one-node Garage (S3-compatible object store) for one test, in a temporary directory.
//!
//! `Garage::start().await?` writes a config (`replication_factor = 1`, `db_engine = "sqlite"`,
//! the RPC, S3 API, S3 web and admin listeners all on 127.0.0.1 with free ports,
//! `s3_region = "us-east-1"`), runs `garage server`, waits until it answers, assigns and
//! applies the layout, imports the fixed test key ([`ACCESS_KEY_ID`], [`SECRET_ACCESS_KEY`])
//! and creates the bucket [`BUCKET`] with read, write and owner rights for it.
//!
//! [`Garage::stop`] kills the server (as in an outage) and [`Garage::start_again`] starts it
//! on the same ports and data; the process is killed when the value is dropped.
//!
//! The binary is `$GARAGE_BIN`, else `~/.cache/cunneng/garage/bin/garage`, where
//! `scripts/test.sh` installs it (`cargo install garage@2.5.0 --locked --root ...`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The fixed test access key (`GK` + 24 hex digits), imported with `garage key import`.
pub const ACCESS_KEY_ID: &str = "GK0c0ffee0cafe00f00d00beef";
/// Its secret (64 hex digits).
pub const SECRET_ACCESS_KEY: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
/// The bucket every harness creates.
pub const BUCKET: &str = "cunneng-test";
/// The region Garage is configured with.
pub const REGION: &str = "us-east-1";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the Garage binary is: `$GARAGE_BIN`, else the cache `scripts/test.sh` installs into.
pub fn binary_path() -> Result<PathBuf> {
    let path = match std::env::var_os("GARAGE_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set, and neither is GARAGE_BIN")?;
            PathBuf::from(home).join(".cache/cunneng/garage/bin/garage")
        }
    };
    if !path.is_file() {
        bail!(
            "the Garage binary {} does not exist: run scripts/test.sh, which installs Garage 2.5.0 \
             (cargo install garage@2.5.0 --locked --root ~/.cache/cunneng/garage) and sets GARAGE_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// Ports of one Garage instance, all on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
struct Ports {
    rpc: u16,
    s3: u16,
    web: u16,
    admin: u16,
}

/// A running (or stopped) one-node Garage; see the module docs.
pub struct Garage {
    bin: PathBuf,
    dir: tempfile::TempDir,
    ports: Ports,
    child: Option<Child>,
    /// How long the last `start` / `start_again` took until Garage served S3 requests.
    pub startup_time: Duration,
}

impl std::fmt::Debug for Garage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Garage").field("endpoint", &self.endpoint()).field("running", &self.child.is_some()).finish()
    }
}

impl Garage {
    /// Start a fresh one-node Garage with the test key and bucket. The free ports are picked
    /// before Garage binds them, so a test running beside may take one meanwhile (seen: the
    /// CLI's RPC handshake reached another test's Garage): a failed start is tried again, with
    /// new ports and a new directory, up to three times.
    pub async fn start() -> Result<Garage> {
        let mut last = None;
        for attempt in 1..=3 {
            match Garage::start_once().await {
                Ok(g) => return Ok(g),
                Err(e) => {
                    eprintln!("garage start {attempt} of 3 failed: {e:#}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("garage did not start")))
    }

    async fn start_once() -> Result<Garage> {
        let t0 = Instant::now();
        let bin = binary_path()?;
        let dir = tempfile::Builder::new().prefix("cunneng-garage-").tempdir()?;
        let ports = free_ports()?;
        let rpc_secret = random_hex::<32>();
        let admin_token = random_hex::<16>();
        let d = dir.path();
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:{web}"
root_domain = ".web.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{admin_token}"
"#,
            meta = d.join("meta").display(),
            data = d.join("data").display(),
            rpc = ports.rpc,
            s3 = ports.s3,
            web = ports.web,
            admin = ports.admin,
        );
        std::fs::write(d.join("garage.toml"), config)?;
        let mut g = Garage { bin, dir, ports, child: None, startup_time: Duration::ZERO };
        g.spawn().await?;

        let node = g.cli(&["node", "id", "-q"]).await?;
        let node_id = node.trim().split('@').next().unwrap_or_default().to_owned();
        if node_id.len() < 16 {
            bail!("unexpected `garage node id` output: {node:?}");
        }
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node_id]).await?;
        g.cli(&["layout", "apply", "--version", "1"]).await?;
        g.cli(&["key", "import", "--yes", "-n", "ci", ACCESS_KEY_ID, SECRET_ACCESS_KEY]).await?;
        g.cli(&["bucket", "create", BUCKET]).await?;
        g.cli(&["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "ci"]).await?;
        g.wait_healthy().await?;
        g.startup_time = t0.elapsed();
        Ok(g)
    }

    /// `http://127.0.0.1:PORT`, the S3 API endpoint (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    pub fn access_key_id(&self) -> &'static str {
        ACCESS_KEY_ID
    }

    pub fn secret_access_key(&self) -> &'static str {
        SECRET_ACCESS_KEY
    }

    /// The temporary directory holding the config, data, metadata and log.
    /// Environment for `cunneng` to use this Garage as its S3 store (behind the spool).
    pub fn server_env(&self) -> Vec<(String, String)> {
        [
            ("CUNNENG_STORAGE__BACKEND", "s3".to_string()),
            ("CUNNENG_STORAGE__S3__ENDPOINT", self.endpoint()),
            ("CUNNENG_STORAGE__S3__REGION", self.region().to_string()),
            ("CUNNENG_STORAGE__S3__BUCKET", self.bucket().to_string()),
            ("CUNNENG_STORAGE__S3__ACCESS_KEY_ID", self.access_key_id().to_string()),
            ("CUNNENG_STORAGE__S3__SECRET_ACCESS_KEY", self.secret_access_key().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kill the server (SIGKILL: an outage, not a shutdown). Its data stays.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing garage")?;
        }
        Ok(())
    }

    /// Start the server again on the same ports and data (after [`Garage::stop`]).
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("garage is already running");
        }
        let t0 = Instant::now();
        // A port of the killed process may linger for a moment.
        let mut last = None;
        for _ in 0..50 {
            match self.spawn().await {
                Ok(()) => {
                    self.wait_healthy().await?;
                    self.startup_time = t0.elapsed();
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Run `garage server` and wait until its RPC and S3 ports accept connections.
    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let log2 = log.try_clone()?;
        let mut child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .arg("server")
            .env("RUST_LOG", std::env::var("GARAGE_LOG").unwrap_or_else(|_| "garage=info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("garage server exited at start-up ({status})\n--- garage log ---\n{}", self.log_tail());
            }
            if port_open(self.ports.rpc).await && port_open(self.ports.s3).await && port_open(self.ports.admin).await {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                bail!("garage did not listen within {START_TIMEOUT:?}\n--- garage log ---\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.child = Some(child);
        Ok(())
    }

    /// Wait until the admin API's `/health` says the cluster is fully operational.
    async fn wait_healthy(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let last = match http_get(self.ports.admin, "/health").await {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => format!("HTTP {status}: {body}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("garage not healthy within {START_TIMEOUT:?}: {last}\n--- garage log ---\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Run a `garage` CLI command against this instance; its stdout.
    pub async fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running garage {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`garage {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!("--- garage log (tail) ---\n{}", self.log_tail());
        }
    }
}

fn random_hex<const N: usize>() -> String {
    (0..N).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// Four distinct free ports on 127.0.0.1 (all held open while choosing, so they differ).
fn free_ports() -> Result<Ports> {
    let listeners: Vec<std::net::TcpListener> =
        (0..4).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
    let p: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<std::io::Result<_>>()?;
    Ok(Ports { rpc: p[0], s3: p[1], web: p[2], admin: p[3] })
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: (status, body).
async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("bad HTTP response")?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_owned()).unwrap_or_default();
        Ok::<_, anyhow::Error>((status, body))
    };
    tokio::time::timeout(Duration::from_secs(2), fut).await.context("timeout")?
}
