//! Start the real `cunneng` binary on port 0 in a temporary data directory, read the address
//! and demo links it prints, and stop it (gracefully or with SIGKILL).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One `demo-link ROLE NAME URL` line printed by `cunneng serve --demo`.
#[derive(Debug, Clone)]
pub struct DemoLink {
    pub role: String,
    pub name: String,
    pub url: String,
}

impl DemoLink {
    /// The value of `key` in the link's fragment (`#token=..`, `#user=..&password=..`).
    pub fn fragment_param(&self, key: &str) -> Option<String> {
        let (_, fragment) = self.url.split_once('#')?;
        fragment.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| percent_decode(v))
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path of the `cunneng` binary built in the same target directory as this test.
pub fn binary_path() -> PathBuf {
    if let Ok(p) = std::env::var("CUNNENG_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test-exe> or target/<profile>/<bin> → target/<profile>/cunneng
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join("cunneng");
    assert!(
        bin.exists(),
        "{} does not exist: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` (or https).
    pub base_url: String,
    pub demo_links: Vec<DemoLink>,
    data_dir: PathBuf,
    log_path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// `cunneng serve --demo` on 127.0.0.1:0 in a fresh data directory.
    pub async fn start_demo() -> Result<Server> {
        Self::start(&["--demo"]).await
    }

    /// `cunneng serve --addr 127.0.0.1:0 --data-dir TMP` plus `extra` arguments.
    pub async fn start(extra: &[&str]) -> Result<Server> {
        Self::start_with_env(extra, &[]).await
    }

    /// As [`Server::start`], with extra environment variables (e.g. `CUNNENG_STORAGE__BACKEND`).
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Result<Server> {
        Self::start_prepared(|_| Ok(()), extra, env).await
    }

    /// As [`Server::start_with_env`], after `prepare` has set up the (not yet existing) data
    /// directory, e.g. with `cunneng import` ([`Server::import`]).
    pub async fn start_prepared(
        prepare: impl FnOnce(&Path) -> Result<()>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let tmp = tempfile::tempdir()?;
        let data_dir = tmp.path().join("data");
        prepare(&data_dir)?;
        let mut server = Server {
            child: None,
            base_url: String::new(),
            demo_links: Vec::new(),
            log_path: tmp.path().join("server.log"),
            data_dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            _tmp: Some(tmp),
        };
        server.spawn("127.0.0.1:0").await?;
        Ok(server)
    }

    /// `cunneng import FILE --data-dir DATA_DIR` (for [`Server::start_prepared`]).
    pub fn import(file: &Path, data_dir: &Path) -> Result<String> {
        let out = std::process::Command::new(binary_path())
            .arg("import")
            .arg(file)
            .arg("--data-dir")
            .arg(data_dir)
            .output()
            .context("running cunneng import")?;
        if !out.status.success() {
            bail!("cunneng import failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The server process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The key-encryption key file at its default place: beside the data directory
    /// (`DATA_DIR-keys/kek.toml`), not inside it.
    pub fn key_file(&self) -> PathBuf {
        let mut name = self.data_dir.file_name().unwrap_or_default().to_os_string();
        name.push("-keys");
        self.data_dir.with_file_name(name).join("kek.toml")
    }

    pub fn link(&self, role: &str) -> &DemoLink {
        self.demo_links
            .iter()
            .find(|l| l.role == role)
            .unwrap_or_else(|| panic!("no demo link for role {role}: {:?}", self.demo_links))
    }

    pub fn links(&self, role: &str) -> Vec<&DemoLink> {
        self.demo_links.iter().filter(|l| l.role == role).collect()
    }

    /// `ws://` or `wss://` URL of the signaling socket.
    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.base_url.replacen("http", "ws", 1))
    }

    async fn spawn(&mut self, addr: &str) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        let mut cmd = Command::new(binary_path());
        cmd.arg("serve")
            .arg("--addr")
            .arg(addr)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env("CUNNENG_MEDIA__BIND_IP", "127.0.0.1")
            .env("CUNNENG_MEDIA__UDP_PORT_MIN", "0")
            .env("CUNNENG_MEDIA__UDP_PORT_MAX", "0")
            // Every test's staff log in from 127.0.0.1, many at once (a test's own env may
            // set the login limits back; `login_is_limited_before_any_password_is_hashed`).
            .env("CUNNENG_LIMITS__LOGIN_ADDRESS_BURST", "1000")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning cunneng")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut links = Vec::new();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("demo-link ") {
                    let mut parts = rest.splitn(3, ' ');
                    if let (Some(role), Some(name), Some(url)) = (parts.next(), parts.next(), parts.next()) {
                        links.push(DemoLink { role: role.into(), name: name.into(), url: url.into() });
                    }
                } else if let Some(url) = line.strip_prefix("cunneng listening on ") {
                    return Ok::<_, anyhow::Error>(url.trim().to_string());
                }
            }
            bail!("cunneng exited before it was listening")
        })
        .await;
        let base = match base {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => bail!("{e}\n--- server log ---\n{}", self.log_tail()),
            Err(_) => bail!("cunneng did not start listening in 60 s\n--- server log ---\n{}", self.log_tail()),
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.base_url = base;
        if !links.is_empty() {
            self.demo_links = links;
        }
        self.child = Some(child);
        Ok(())
    }

    /// The last lines of the server's log (stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The whole server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL, as in a crash.
    pub async fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a graceful exit.
    pub async fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        let pid = child.id().context("pid")?;
        std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status()?;
        Ok(tokio::time::timeout(Duration::from_secs(20), child.wait()).await??)
    }

    /// Start again on the same port and data directory (after `kill9` or `stop`).
    pub async fn restart(&mut self) -> Result<()> {
        let addr = self.base_url.rsplit_once("//").map(|(_, a)| a.to_string()).context("addr")?;
        // The old socket may linger for a moment after a kill.
        for _ in 0..50 {
            match self.spawn(&addr).await {
                Ok(()) => return Ok(()),
                Err(e) if e.to_string().contains("in use") => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return Err(e),
            }
        }
        bail!("could not restart on {addr}")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- cunneng log (tail) ---\n{}", self.log_tail());
        }
    }
}
