//! Start-up and the `run(listener, shutdown)` entry point.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::Error;
use crate::state::AppState;

/// How long open requests may take to finish once the server stops taking new ones.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve HTTP (and HTTPS when `tls` is given) on `listener` until `shutdown` resolves, then
/// stop accepting, let open requests finish (at most 10 s), stop the background jobs, and
/// return once they have stopped.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let app = crate::api::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stopping = tokio_util::sync::CancellationToken::new();
    let (s, st) = (stopping.clone(), state.clone());
    let shutdown = async move {
        shutdown.await;
        st.stop_serving();
        s.cancel();
    };
    match tls {
        None => {
            let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
            let grace = async {
                stopping.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                served = serve => served?,
                _ = grace => tracing::warn!("open requests did not finish in time; closing them"),
            }
        }
        Some((cert, key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| Error::Tls(format!("loading {} / {}: {e}", cert.display(), key.display())))?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(SHUTDOWN_GRACE));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, config).handle(handle).serve(app).await?;
        }
    }
    state.shutdown().await;
    Ok(())
}

/// What `cunneng serve` does: open the data directory, load the demo when asked, bind, print
/// the address (and demo links), and serve until SIGINT/SIGTERM.
pub async fn serve(config: Config, demo: bool) -> Result<(), Error> {
    std::fs::create_dir_all(&config.data_dir)?;
    let db = crate::db::Db::open(&config.data_dir.join("cunneng.sqlite3"))?;
    if demo {
        let summary = crate::import::import_str(&db, crate::import::DEMO_TOML)?;
        tracing::info!(?summary, "demo county loaded");
    }
    let tls = crate::tls::resolve(&config)?;
    let listener = TcpListener::bind(&config.addr).await?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = match &config.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        // Links must be openable: a wildcard listen address is reached as 127.0.0.1.
        None if local.ip().is_unspecified() => format!("{scheme}://127.0.0.1:{}", local.port()),
        None => format!("{scheme}://{local}"),
    };
    // Links the server prints or hands out (receipts' QR codes) use the address it is
    // reached at: `public_url`, or the one actually bound.
    let mut config = config;
    if config.public_url.is_none() {
        config.public_url = Some(base.clone());
    }
    let state = AppState::start(Arc::new(config), db).await?;
    // Scripts and tests read these lines from stdout; the `listening` line comes last.
    if demo {
        for (role, name, url) in crate::import::demo_links(crate::import::DEMO_TOML, &base) {
            println!("demo-link {role} {name} {url}");
        }
    }
    println!("cunneng listening on {scheme}://{local}");
    run(listener, state, tls, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
