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
    /// Write the stored region (towns, villages, windows, matters, accounts, kiosks) as an
    /// import file: `cunneng import` of it into an empty data dir reproduces the region. It
    /// holds the stored password and token hashes, no secret itself.
    ExportRegion {
        /// Write it to this file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Key-encryption keys (the file `storage.kek_file`, default DATA_DIR/keys/kek.toml).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Decrypt one object (a file, or a key in the configured store) to a file.
    Decrypt {
        /// Path of an encrypted object file, or its key in the store.
        object: String,
        /// Where to write the plaintext.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check the integrity of every object in the store.
    Verify,
    /// The tamper-evident audit record (可查可追溯).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Retention: destroy what has expired (the server also sweeps every 6 hours).
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
    /// For tests and reviewers: every (method, path) the router serves and every WebSocket
    /// client message type (the authorization matrix test checks its rows against these).
    #[command(hide = true)]
    Routes {
        /// Print `{"routes":[{"method","path"}],"ws_messages":[type]}` instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RetentionAction {
    /// Sweep once: destroy expired objects (not those under legal hold) and record it.
    Sweep {
        /// Judge expiry as of this Unix time in milliseconds instead of now (to rehearse a
        /// sweep, or to catch up after downtime).
        #[arg(long)]
        as_of_ms: Option<u64>,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the whole hash chain, its signed checkpoints and the timeline against it; exit 1
    /// and name the first bad entry if anything was changed, removed, reordered or cut off.
    Verify,
    /// Check a case's signed manifest against the database and the stored objects.
    VerifyCase {
        /// The case number.
        case_no: String,
    },
    /// Check an exported case bundle offline (no data dir needed).
    VerifyBundle {
        /// The exported `.tar` file.
        file: PathBuf,
        /// The public key you trust (hex, from `cunneng audit public-key` of that server);
        /// without it the key inside the bundle is used and its id printed.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print the public half of the audit signing key (hex), for verifying exports elsewhere.
    PublicKey,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create the key file with a first key (refuses to overwrite one).
    Generate,
    /// Start a new key for new objects; older keys keep decrypting.
    Rotate,
    /// Re-wrap every object's data key under the active key (contents untouched).
    Rewrap,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A plain message, never a backtrace: this is what an operator reads.
            eprintln!("cunneng: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Routes { json } = cli.command {
        print_routes(json)?;
        return Ok(());
    }
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
    cunneng_storage::s3::install_default_crypto_provider();

    let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
    match cli.command {
        Command::Serve { .. } => runtime.block_on(cunneng_signaling::server::serve(config, demo))?,
        Command::Import { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            cunneng_signaling::db::private_dir(&config.data_dir)?;
            let db = cunneng_signaling::db::Db::open(&config.data_dir.join("cunneng.sqlite3"))?;
            let summary = cunneng_signaling::import::import_str(&db, &text)
                .with_context(|| format!("importing {}", file.display()))?;
            println!("imported {}: {summary}", file.display());
        }
        Command::ExportRegion { out } => {
            let path = config.db_path();
            anyhow::ensure!(path.exists(), "no database at {}: nothing to export", path.display());
            let db = cunneng_signaling::db::Db::open(&path)?;
            let text = cunneng_signaling::import::export_region(&db)?;
            match out {
                Some(file) => {
                    cunneng_storage::write_private(&file, text.as_bytes())
                        .with_context(|| format!("writing {}", file.display()))?;
                    eprintln!("wrote the region to {}", file.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Keys { action: KeysAction::Generate } => {
            println!("{}", cunneng_signaling::tools::keys_generate(&config)?)
        }
        Command::Keys { action: KeysAction::Rotate } => println!("{}", cunneng_signaling::tools::keys_rotate(&config)?),
        Command::Keys { action: KeysAction::Rewrap } => {
            let msg = runtime.block_on(async {
                let store = cunneng_signaling::objects::open_store(&config).await?;
                let db = match config.db_path().exists() {
                    true => Some(cunneng_signaling::db::Db::open(&config.db_path())?),
                    false => None,
                };
                cunneng_signaling::tools::keys_rewrap(&config, store.as_ref(), db.as_ref()).await
            })?;
            println!("{msg}");
        }
        Command::Decrypt { object, out } => {
            let msg = runtime.block_on(async {
                // On the server's data dir, the decryption is an access of the audit record,
                // written before any plaintext is.
                if config.db_path().exists() {
                    let db = cunneng_signaling::db::Db::open(&config.db_path())?;
                    cunneng_signaling::tools::record_decrypt(&db, &object)
                        .context("the decryption could not be recorded in the audit record; nothing was decrypted")?;
                }
                let store = cunneng_signaling::objects::open_store(&config).await?;
                Ok::<_, anyhow::Error>(cunneng_signaling::tools::decrypt(&config, store, &object, &out).await?)
            })?;
            println!("{msg}");
        }
        Command::Retention { action: RetentionAction::Sweep { as_of_ms } } => {
            let summary = runtime.block_on(async {
                let db = cunneng_signaling::db::Db::open(&config.data_dir.join("cunneng.sqlite3"))?;
                let store = cunneng_signaling::objects::open_store(&config).await?;
                let policy = cunneng_signaling::objects::retention_policy(&config)?;
                let log = cunneng_signaling::retention::destruction_log(&config)?;
                let now = match as_of_ms {
                    Some(ms) => std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
                    None => std::time::SystemTime::now(),
                };
                let keys = cunneng_signaling::objects::Keys::load(&config)?;
                cunneng_signaling::retention::sweep(&db, store.as_ref(), &policy, &keys, &log, now).await
            })?;
            println!("retention sweep: {summary}");
        }
        Command::Audit { action } => {
            let code = runtime.block_on(audit(&config, action))?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        Command::Routes { .. } => unreachable!("handled before the configuration is loaded"),
        Command::Verify => {
            let verdicts = runtime.block_on(async {
                let store = cunneng_signaling::objects::open_store(&config).await?;
                cunneng_signaling::tools::verify(&config, store).await
            })?;
            let bad: Vec<_> = verdicts.iter().filter(|v| v.problem.is_some()).collect();
            for v in &bad {
                eprintln!("DAMAGED {}: {}", v.key, v.problem.as_deref().unwrap_or_default());
            }
            println!("verified {} objects: {} good, {} damaged", verdicts.len(), verdicts.len() - bad.len(), bad.len());
            if !bad.is_empty() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// `cunneng audit ...`: prints what it found; returns the exit code (1: something is wrong).
async fn audit(config: &cunneng_signaling::config::Config, action: AuditAction) -> anyhow::Result<i32> {
    use cunneng_signaling::audit::PublicKey;
    use cunneng_signaling::service::audit as service;
    if let AuditAction::VerifyBundle { file, key } = &action {
        let trusted = match key {
            Some(k) => Some(PublicKey::from_hex(k).context("--key is not an Ed25519 public key in hex")?),
            None => None,
        };
        let report = cunneng_signaling::service::export::verify_bundle(file, trusted.as_ref())?;
        for p in &report.problems {
            eprintln!("BAD {p}");
        }
        println!(
            "bundle of case {}: {} files checked against the manifest signed by key {}: {}",
            report.case_no,
            report.files_checked,
            report.key_id,
            if report.problems.is_empty() { "good" } else { "DAMAGED" }
        );
        return Ok(if report.problems.is_empty() { 0 } else { 1 });
    }
    let key = cunneng_signaling::objects::load_or_create_audit_key(&config.audit_key_file(), false)?.public();
    if let AuditAction::PublicKey = action {
        println!("{}", key.to_hex());
        eprintln!("key id {}", key.key_id());
        return Ok(0);
    }
    let db = cunneng_signaling::db::Db::open(&config.db_path())?;
    match action {
        AuditAction::Verify => {
            let r = service::verify_chain(&db, &key, &config.audit_checkpoint_log()).await?;
            let mut bad = false;
            if let Some(p) = &r.problem {
                eprintln!("BAD entry {}: {p}", p.seq());
                bad = true;
            }
            if !r.unchained_events.is_empty() {
                eprintln!(
                    "BAD timeline events that differ from their audit entries (changed or added later): {:?}",
                    r.unchained_events
                );
                bad = true;
            }
            println!(
                "audit record: {} entries, {} checkpoints checked: {}",
                r.entries,
                r.checkpoints,
                if bad { "TAMPERED" } else { "good" }
            );
            Ok(i32::from(bad))
        }
        AuditAction::VerifyCase { case_no } => {
            let store = cunneng_signaling::objects::open_store(config).await?;
            let vault = cunneng_signaling::objects::Vault::new(store, cunneng_signaling::objects::Keys::load(config)?);
            let problems = service::verify_case(&db, &vault, &key, &case_no).await?;
            for p in &problems {
                eprintln!("BAD {p}");
            }
            println!("case {case_no}: {}", if problems.is_empty() { "the sealed manifest holds" } else { "TAMPERED" });
            Ok(i32::from(!problems.is_empty()))
        }
        AuditAction::VerifyBundle { .. } | AuditAction::PublicKey => unreachable!("handled above"),
    }
}

/// `cunneng routes`: the router's table and the WebSocket message types.
fn print_routes(json: bool) -> anyhow::Result<()> {
    let table = cunneng_signaling::api::route_table();
    let types = cunneng_signaling::wire::ClientMsg::TYPES;
    if json {
        let routes: Vec<_> =
            table.iter().map(|r| serde_json::json!({"method": r.method.as_str(), "path": r.path})).collect();
        println!("{}", serde_json::json!({"routes": routes, "ws_messages": types}));
    } else {
        for r in &table {
            println!("{} {}", r.method.as_str(), r.path);
        }
        for t in types {
            println!("WS {t}");
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
