//! `cunneng`: the one binary. `serve` runs the server; `import` loads a region file.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cunneng", version, about = "村能办: village rooms call town windows by video")]
struct Cli {
    /// Configuration file (TOML). Environment variables CUNNENG_<SECTION>__<KEY> override it;
    /// flags override both.
    #[arg(long, global = true, env = "CUNNENG_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the database, TLS material and (later) the local object store.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on, HOST:PORT (port 0 picks a free one).
        #[arg(long)]
        addr: Option<String>,
        /// Load the demo county and print a login link per demo user and kiosk.
        #[arg(long)]
        demo: bool,
        /// TLS certificate (PEM).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve HTTPS with a self-signed certificate kept in DATA_DIR/tls.
        #[arg(long, conflicts_with = "tls_cert")]
        tls_self_signed: bool,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Load a region (towns, villages, windows, matters, accounts, kiosks) from a TOML file.
    Import {
        /// The region file; see docs/import-format.md.
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut overrides = toml::Table::new();
    if let Some(dir) = &cli.data_dir {
        overrides.insert("data_dir".into(), dir.display().to_string().into());
    }
    let mut demo = false;
    if let Command::Serve { addr, demo: d, tls_cert, tls_key, tls_self_signed, log_json } = &cli.command {
        demo = *d;
        if let Some(a) = addr {
            overrides.insert("addr".into(), a.clone().into());
        }
        let mut tls = toml::Table::new();
        if let Some(c) = tls_cert {
            tls.insert("cert".into(), c.display().to_string().into());
        }
        if let Some(k) = tls_key {
            tls.insert("key".into(), k.display().to_string().into());
        }
        if *tls_self_signed {
            tls.insert("self_signed".into(), true.into());
        }
        if !tls.is_empty() {
            overrides.insert("tls".into(), tls.into());
        }
        if *log_json {
            let mut log = toml::Table::new();
            log.insert("json".into(), true.into());
            overrides.insert("log".into(), log.into());
        }
    }
    let config = cunneng_signaling::config::Config::load(cli.config.as_deref(), std::env::vars(), overrides)
        .context("loading configuration")?;
    init_tracing(&config);
    // webrtc brings rustls' ring provider; make it the process default before any TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
    match cli.command {
        Command::Serve { .. } => runtime.block_on(cunneng_signaling::server::serve(config, demo))?,
        Command::Import { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            std::fs::create_dir_all(&config.data_dir)?;
            let db = cunneng_signaling::db::Db::open(&config.data_dir.join("cunneng.sqlite3"))?;
            let summary = cunneng_signaling::import::import_str(&db, &text)
                .with_context(|| format!("importing {}", file.display()))?;
            println!("imported {}: {summary:?}", file.display());
        }
    }
    Ok(())
}

fn init_tracing(config: &cunneng_signaling::config::Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},webrtc=warn,rtc=warn", config.log.level)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}
