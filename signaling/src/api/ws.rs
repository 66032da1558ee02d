//! The signaling WebSocket: authentication by `hello`, per-socket bounds (message size, rate),
//! and dispatch of client messages to the engine (queue) or the media plane. A misbehaving
//! socket gets an `error` and is closed; nobody else is affected.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::ApiError;
use crate::clients::{CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_UNAUTHORIZED, ClientTx, ConnId, Outbound};
use crate::engine::{label, party_of};
use crate::identity::Principal;
use crate::ratelimit::{MessageRate, per_second};
use crate::state::AppState;
use crate::wire::{ClientEnvelope, ClientMsg, ServerMsg};

/// Close code: the server is overloaded, try again later (RFC 6455 1013).
const CLOSE_TRY_AGAIN: u16 = 1013;
/// How long a closed socket is read on for the client's close reply.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// Messages queued toward one client before it counts as too slow and is dropped.
const OUTBOUND_QUEUE: usize = 256;
/// How often an open kiosk socket renews its last-connection mark (`last_seen_ms`).
const KIOSK_SEEN_EVERY: Duration = Duration::from_secs(600);
/// Each socket's read buffer. Clients send small messages: the largest legitimate one, a
/// `media.offer` (an SDP of 2 to 8 KiB), is read in a few reads, and a message up to
/// `limits.ws_max_message_bytes` grows the buffer while it arrives. The library's default,
/// 128 KiB zero-filled before the first read, stayed resident per idle kiosk (about 135 KiB of
/// RSS per connected kiosk, issue 11).
const WS_READ_BUFFER: usize = 4 * 1024;
/// Frames go out as they are written (the writer flushes every message anyway), instead of
/// collecting up to the library's default of 128 KiB first.
const WS_WRITE_BUFFER: usize = 0;
/// Most bytes held for a client whose socket does not take them: more than the largest
/// legitimate server message, a `queue.snapshot` of a full queue (500 waiting calls of about
/// 200 bytes: 100 KiB); past it the socket is closed as too slow.
const WS_MAX_WRITE_BUFFER: usize = 1024 * 1024;

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    place: Option<axum::Extension<crate::ratelimit::ConnectionPlace>>,
    ws: WebSocketUpgrade,
) -> Response {
    let busy = |reason: &'static str| {
        state.metrics.inc_rejected(reason);
        let mut resp = ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "服务器繁忙,请稍后重试 (too many connections)",
        )
        .into_response();
        resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        resp
    };
    // One address holds only so many sockets; a socket that has not said `hello` holds only
    // an anonymous slot (a small pool, for a few seconds), never a connection permit.
    let Some(address_slot) = state.ws_per_address.try_take(&peer.ip()) else {
        return busy("ws_per_address");
    };
    let Ok(anonymous) = state.ws_anonymous.clone().try_acquire_owned() else {
        return busy("ws_anonymous");
    };
    // The socket keeps its connection's place among `limits.open_connections`.
    let place = place.and_then(|axum::Extension(p)| p.take());
    let max = state.config.limits.ws_max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            handle(state, socket, peer, anonymous).await;
            drop(address_slot);
            drop(place);
        })
}

async fn handle(state: AppState, socket: WebSocket, peer: SocketAddr, anonymous: tokio::sync::OwnedSemaphorePermit) {
    let (mut sink, mut stream) = socket.split();

    // 1. hello, within `ws_hello_secs`; then the anonymous slot is given back and the socket
    // takes a connection permit.
    let hello_within = Duration::from_secs(state.config.limits.ws_hello_secs);
    let mut sessions_ended = state.sessions_ended.subscribe();
    let hello = match tokio::time::timeout(hello_within, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match ClientEnvelope::parse(&text) {
            Ok(ClientEnvelope { msg: ClientMsg::Hello { token }, .. }) => {
                state.resolve_token(token.clone()).await.ok().map(|p| (p, token))
            }
            _ => None,
        },
        _ => None,
    };
    let (principal, token) = match hello {
        Some((p, t)) => (Some(p), t),
        None => (None, String::new()),
    };
    drop(anonymous);
    let Some(principal) = principal else {
        state.metrics.inc_rejected("unauthorized");
        tracing::info!(%peer, "websocket refused: no valid hello");
        let err = ServerMsg::error("unauthorized", "身份验证失败,请重新登录 (missing, unknown or expired token)", None);
        let _ = sink.send(text(&err)).await;
        let _ = sink.send(close(CLOSE_UNAUTHORIZED, "unauthorized")).await;
        return;
    };
    let Ok(_permit) = state.connections.clone().try_acquire_owned() else {
        state.metrics.refused(
            "connection_limit",
            &format!(
                "WebSockets refused (1013 try again): limits.max_connections ({}) are open; raise it for this many kiosks and staff",
                state.config.limits.max_connections
            ),
        );
        let err = ServerMsg::error("too_many_connections", "服务器繁忙,请稍后重试 (too many connections)", None);
        let _ = sink.send(text(&err)).await;
        let _ = sink.send(close(CLOSE_TRY_AGAIN, "too many connections")).await;
        return;
    };

    // 2. writer task: everything toward this client goes through one bounded queue.
    let slow = CancellationToken::new();
    let (tx, mut rx) = ClientTx::channel(OUTBOUND_QUEUE, slow.clone());
    let writer_slow = slow.clone();
    let writer = tokio::spawn(async move {
        loop {
            let out = tokio::select! {
                out = rx.recv() => match out { Some(o) => o, None => break },
                _ = writer_slow.cancelled() => break,
            };
            let result = match out {
                Outbound::Msg(m) => sink.send(text(&m)).await,
                Outbound::Close(code, reason) => {
                    let _ = sink.send(close(code, reason)).await;
                    break;
                }
            };
            if result.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let conn = ConnId::next();
    let party = party_of(&principal);
    let p = principal.clone();
    let me = match state.db.run(move |db| db.me(&p)).await {
        Ok(me) => me,
        Err(_) => {
            tx.send(ServerMsg::error("internal", "服务器内部错误 (internal error)", None));
            tx.close(1011, "internal error");
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    kiosk_seen(&state, &principal).await;
    state.engine.connect(principal.clone(), me, conn, tx.clone()).await;
    tracing::info!(%peer, ?party, ?conn, "websocket connected");

    // 3. read loop
    let limits = &state.config.limits;
    let rate = MessageRate::new(per_second(limits.ws_messages_per_sec, limits.ws_burst));
    let token_hash = crate::auth::token_hash(&token);
    let recheck_every = Duration::from_secs(limits.ws_recheck_secs);
    // The first check at a random point of [½, 1½) periods: sockets that connected in one burst
    // (a county's rooms after a power cut) do not all check, and write, at the same moment.
    let first = recheck_every.mul_f64(0.5 + rand::random::<f64>());
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + first, recheck_every);
    let mut seen_marked = Instant::now();
    let session_over = |tx: &ClientTx| {
        state.metrics.inc_rejected("session_ended");
        tx.send(ServerMsg::error("unauthorized", "登录已失效,请重新登录 (the session ended)", None));
        tx.close(CLOSE_UNAUTHORIZED, "session ended");
    };
    loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            ended = sessions_ended.recv() => {
                let over = match ended {
                    Ok(hash) => hash == token_hash,
                    // Missed some: ask the database.
                    Err(_) => state.resolve_token(token.clone()).await.is_err_and(|e| e.is_unauthorized()),
                };
                if over {
                    session_over(&tx);
                    break;
                }
                continue;
            }
            _ = recheck.tick() => {
                if state.resolve_token(token.clone()).await.is_err_and(|e| e.is_unauthorized()) {
                    session_over(&tx);
                    break;
                }
                // A write per kiosk per period would be thousands a minute on a province
                // node: the mark is renewed every `KIOSK_SEEN_EVERY` at most.
                if seen_marked.elapsed() >= KIOSK_SEEN_EVERY {
                    kiosk_seen(&state, &principal).await;
                    seen_marked = Instant::now();
                }
                continue;
            }
            _ = tx.closed() => break, // writer gone (replaced or closed)
            _ = slow.cancelled() => {
                state.metrics.inc_rejected("slow_client");
                break;
            }
        };
        // Every frame but the closing one counts against the rate: binary, ping and pong
        // frames too.
        if matches!(frame, Some(Ok(ref m)) if !matches!(m, Message::Close(_))) && !rate.allow() {
            state.metrics.inc_rejected("rate_limited");
            tracing::warn!(?party, "websocket over the message rate; closing");
            tx.send(ServerMsg::error("rate_limited", "消息过于频繁 (too many messages)", None));
            tx.close(CLOSE_POLICY, "rate limit");
            break;
        }
        let text = match frame {
            None => break,
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                tx.send(ServerMsg::error(
                    "bad_message",
                    "只接受文本消息 (binary frames are not part of the protocol)",
                    None,
                ));
                continue;
            }
            Some(Err(e)) => {
                // axum reports an oversized message as an error on receive.
                let too_big = e.to_string().to_ascii_lowercase().contains("too long")
                    || e.to_string().to_ascii_lowercase().contains("size");
                if too_big {
                    state.metrics.inc_rejected("too_large");
                    tracing::warn!(?party, "websocket message over the size limit; closing");
                    tx.send(ServerMsg::error("too_large", "消息过大 (message over the size limit)", None));
                    tx.close(CLOSE_TOO_BIG, "message too large");
                }
                break;
            }
        };
        let env = match ClientEnvelope::parse(&text) {
            Ok(env) => env,
            Err((req, why)) => {
                tx.send(ServerMsg::bad_message(&why, req));
                continue;
            }
        };
        dispatch(&state, &principal, &tx, env).await;
    }

    state.engine.disconnect(party, conn).await;
    drop(tx);
    let _ = writer.await;
    // A socket the server closed (rate, session ended) may still be sending: read on until
    // its close reply (at most a moment), so that it gets the close frame, not a reset.
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    tracing::info!(%peer, ?party, ?conn, "websocket closed");
}

/// A kiosk's socket said hello or passed its periodic check: its last connection (one
/// indexed update; a failure only loses the mark).
async fn kiosk_seen(state: &AppState, principal: &Principal) {
    if let Principal::Kiosk { kiosk_id, .. } = *principal
        && let Err(e) = state.db.run(move |db| db.kiosk_seen(kiosk_id, crate::now_ms())).await
    {
        tracing::warn!(error = %e, kiosk_id, "could not mark the kiosk as seen");
    }
}

async fn dispatch(state: &AppState, principal: &Principal, tx: &ClientTx, env: ClientEnvelope) {
    let req = env.req;
    match env.msg {
        ClientMsg::Ping => tx.send(ServerMsg::Pong { req }),
        ClientMsg::Hello { .. } => tx.send(ServerMsg::error("bad_message", "已经登录 (hello was already said)", req)),
        ClientMsg::MediaOffer { room, pc_id, sdp } => {
            if pc_id.is_empty() || pc_id.len() > 64 || sdp.is_empty() {
                tx.send(ServerMsg::error("bad_message", "media.offer needs pc_id (≤ 64 chars) and sdp", req));
                return;
            }
            if !state.engine.in_room(party_of(principal), room.clone()).await {
                tx.send(ServerMsg::error("forbidden", "不在此通话中 (not a participant of this room)", req));
                return;
            }
            // ICE gathering takes a moment: answer off the read loop.
            let state = state.clone();
            let tx = tx.clone();
            let label = label(party_of(principal));
            tokio::spawn(async move {
                match state.sfu.handle_offer(&room, &label, &pc_id, &sdp).await {
                    Ok(answer) => tx.send(ServerMsg::MediaAnswer { room, pc_id, sdp: answer }),
                    Err(e) => {
                        tracing::warn!(error = %e, %room, "media offer refused");
                        tx.send(ServerMsg::error(
                            "bad_message",
                            format!("媒体协商失败 (media negotiation failed: {e})"),
                            req,
                        ));
                    }
                }
            });
        }
        other => match state.engine.client(principal.clone(), other).await {
            Ok(()) => {
                if req.is_some() {
                    tx.send(ServerMsg::Ok { req });
                }
            }
            Err((code, message)) => tx.send(ServerMsg::error(code, message, req)),
        },
    }
}

fn text(m: &ServerMsg) -> Message {
    Message::Text(serde_json::to_string(m).unwrap_or_else(|_| "{}".into()).into())
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}
