//! Start-up and the `run(listener, shutdown)` entry point.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;

use crate::ratelimit::KeyedSlots;

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
    let router = crate::api::router(state.clone());
    let stopping = tokio_util::sync::CancellationToken::new();
    let (s, st) = (stopping.clone(), state.clone());
    let transport = match tls {
        None => Transport::Plain,
        Some((cert, key)) => {
            // ALPN h2 and http/1.1, as browsers expect.
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| Error::Tls(format!("loading {} / {}: {e}", cert.display(), key.display())))?;
            Transport::Tls(tokio_rustls::TlsAcceptor::from(config.get_inner()))
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        st.stop_serving();
        s.cancel();
    });
    let limits = &state.config.limits;
    let accept = Accept {
        transport,
        header_read: Duration::from_secs(limits.http_header_read_secs),
        slots: KeyedSlots::new(limits.connections_per_address),
    };
    accept_loop(listener, router, accept, &state, stopping).await;
    state.shutdown().await;
    Ok(())
}

/// How connections are read: plain HTTP, or HTTPS.
#[derive(Clone)]
enum Transport {
    Plain,
    Tls(tokio_rustls::TlsAcceptor),
}

/// What every accepted connection goes through, plain or TLS alike.
struct Accept {
    transport: Transport,
    /// Bound on the TLS handshake and on each request head: both are reads from the client.
    header_read: Duration,
    /// At most `limits.connections_per_address` at once per address.
    slots: KeyedSlots<std::net::IpAddr>,
}

/// Accept connections until `stopping`, each served with upgrades (WebSockets), a
/// header-read timeout (and, with TLS, a handshake within the same time) and the client's
/// address (`ConnectInfo`); at most `limits.connections_per_address` at once per address (one
/// more is closed at once, before any TLS work). Then open requests may finish (at most
/// [`SHUTDOWN_GRACE`]).
async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    accept: Accept,
    state: &AppState,
    stopping: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tower::ServiceExt;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(accept.header_read);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping.cancelled() => break,
        };
        let Some(slot) = accept.slots.try_take(&peer.ip()) else {
            state.metrics.inc_rejected("connections_per_address");
            drop(stream);
            continue;
        };
        prepare(&stream);
        let service = router.clone().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let (builder, watcher, transport, handshake) =
            (builder.clone(), graceful.watcher(), accept.transport.clone(), accept.header_read);
        tokio::spawn(async move {
            let _slot = slot;
            match transport {
                Transport::Plain => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Transport::Tls(acceptor) => {
                    let tls = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake not done in time"),
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("open requests did not finish in time; closing them"),
    }
}

/// Every accepted connection, plain or TLS (before the handshake): `TCP_NODELAY`, so that a
/// small message (`call.started` after an `ok`) is not held back by Nagle's algorithm until
/// the client's delayed acknowledgement (about 40 ms) arrives.
fn prepare(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
    }
}

/// What `cunneng serve` does: open the data directory, load the demo when asked, bind, print
/// the address (and demo links), and serve until SIGINT/SIGTERM.
pub async fn serve(config: Config, demo: bool) -> Result<(), Error> {
    crate::db::private_dir(&config.data_dir)?;
    let db = crate::db::Db::open(&config.data_dir.join("cunneng.sqlite3"))?;
    // The demo county is loaded into an empty data dir; afterwards the data dir keeps what the
    // administrator made of it (an import would re-enable what was disabled).
    if demo && db.counts()?.towns > 0 {
        tracing::info!("demo data dir already set up; keeping it as it is");
    } else if demo {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap(), "a fresh socket has Nagle's algorithm on");
        prepare(&accepted);
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }
}
