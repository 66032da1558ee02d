//! Start-up and the `run(listener, shutdown)` entry point.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;

use crate::ratelimit::{ConnectionPlace, KeyedSlots};

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
        overflow: Arc::new(tokio::sync::Semaphore::new(OVERFLOW_CONNECTIONS)),
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

/// Connections past `limits.open_connections` that are still read: they get `/healthz` and
/// `/metrics` (so that monitoring sees a full server) and `503 too_many_connections` for
/// anything else. Past these a new connection is closed at once.
const OVERFLOW_CONNECTIONS: usize = 32;
/// How long a connection of the overflow pool may stay.
const OVERFLOW_LIFETIME: Duration = Duration::from_secs(10);
/// What the overflow pool still serves.
const OVERFLOW_PATHS: [&str; 2] = ["/healthz", "/metrics"];
/// Wait after a failed accept (the process out of open files): doubles from the first to the
/// second while accepts keep failing.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// What every accepted connection goes through, plain or TLS alike.
struct Accept {
    transport: Transport,
    /// Bound on the TLS handshake and on each request head: both are reads from the client.
    header_read: Duration,
    /// At most `limits.connections_per_address` at once per address.
    slots: KeyedSlots<std::net::IpAddr>,
    /// Connections answered past `limits.open_connections` ([`OVERFLOW_CONNECTIONS`]).
    overflow: Arc<tokio::sync::Semaphore>,
}

/// The answer to a request on a connection past `limits.open_connections`; the connection
/// closes after it.
fn too_many_connections() -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut e = crate::api::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "服务器繁忙,请稍后重试 (too many connections)",
    );
    e.retry_after = Some(5);
    let mut resp = e.into_response();
    resp.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    resp
}

/// Accept connections until `stopping`, each served with upgrades (WebSockets), a
/// header-read timeout (and, with TLS, a handshake within the same time) and the client's
/// address (`ConnectInfo`); at most `limits.connections_per_address` at once per address (one
/// more is closed at once, before any TLS work); at most `limits.open_connections` in all
/// (one more is answered 503, see [`OVERFLOW_CONNECTIONS`]). An accept that fails (out of
/// open files) is retried after a back-off while the served connections carry on. Then open
/// requests may finish (at most [`SHUTDOWN_GRACE`]).
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
    let max_open = state.config.limits.open_connections;
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = ACCEPT_BACKOFF.0;
                    a
                }
                // The client gave up before it was accepted: nothing to wait for.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::Interrupted) => continue,
                Err(e) => {
                    // Out of open files and the like: the served connections carry on, new
                    // ones wait in the listen queue; wait a moment, do not spin.
                    state.metrics.refused(
                        "accept_failed",
                        &format!("accepting a connection failed ({e}); retrying in {} ms: raise the open-file limit or lower limits.open_connections", backoff.as_millis()),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopping.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
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
        // A place among `open_connections`, or one of the overflow pool, or nothing.
        let (place, overflow) = match state.open_connections.clone().try_acquire_owned() {
            Ok(permit) => (Some(ConnectionPlace::new(permit)), None),
            Err(_) => {
                state.metrics.refused(
                    "open_connections",
                    &format!("connections refused with 503: limits.open_connections ({max_open}) are open; raise it (and the open-file limit) for more"),
                );
                match accept.overflow.clone().try_acquire_owned() {
                    Ok(permit) => (None, Some(permit)),
                    Err(_) => {
                        drop(stream);
                        continue;
                    }
                }
            }
        };
        let service = tower::service_fn({
            let router = router.clone();
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                let router = router.clone();
                let place = place.clone();
                async move {
                    match place {
                        Some(p) => {
                            req.extensions_mut().insert(p);
                        }
                        None if !OVERFLOW_PATHS.contains(&req.uri().path()) => {
                            return Ok::<_, std::convert::Infallible>(too_many_connections());
                        }
                        None => {}
                    }
                    router.oneshot(req).await
                }
            }
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let (builder, watcher, transport, handshake) =
            (builder.clone(), graceful.watcher(), accept.transport.clone(), accept.header_read);
        tokio::spawn(async move {
            let _slot = slot;
            let served = async move {
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
            };
            match overflow {
                Some(permit) => {
                    let _ = tokio::time::timeout(OVERFLOW_LIFETIME, served).await;
                    drop(permit);
                }
                None => served.await,
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("open requests did not finish in time; closing them"),
    }
}

/// Raise the soft limit on open files to the hard one (a county's connections need more than
/// the usual 1,024); returns the soft limit in force, or `None` when it cannot be read.
fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => Some(soft),
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
        }
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
    let mut config = config;
    if let Some(open_files) = raise_open_file_limit() {
        let budget = config.connection_budget(open_files);
        if budget < config.limits.open_connections {
            tracing::warn!(
                open_files,
                open_connections = budget,
                configured = config.limits.open_connections,
                max_connections = config.limits.max_connections,
                "the open-file limit leaves room for fewer connections than limits.open_connections: lowered; raise the hard limit (LimitNOFILE= of the service)"
            );
        }
        config.limits.open_connections = budget;
        tracing::info!(open_files, open_connections = budget, "connection limits");
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
