//! A signaling client as the pages are: a WebSocket that says `hello` with a token, sends
//! protocol messages and waits for the ones it expects.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::Server;

pub const STEP: Duration = Duration::from_secs(10);

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages received while waiting for another one, in order.
    backlog: Vec<Value>,
    pub welcome: Value,
}

impl WsClient {
    /// Connect and authenticate; fails unless the server answers `welcome`.
    pub async fn connect(server: &Server, token: &str) -> Result<WsClient> {
        let mut c = Self::connect_raw(server).await?;
        c.send(json!({"type": "hello", "token": token})).await?;
        let first = c.next(STEP).await?;
        if first["type"] != "welcome" {
            bail!("expected welcome, got {first}");
        }
        c.welcome = first;
        Ok(c)
    }

    /// Connect without saying hello.
    pub async fn connect_raw(server: &Server) -> Result<WsClient> {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.context("ws connect")?;
        Ok(WsClient { ws, backlog: Vec::new(), welcome: Value::Null })
    }

    pub async fn send(&mut self, v: Value) -> Result<()> {
        self.ws.send(Message::Text(v.to_string().into())).await?;
        Ok(())
    }

    pub async fn send_raw(&mut self, m: Message) -> Result<()> {
        self.ws.send(m).await?;
        Ok(())
    }

    /// The next message (from the backlog first).
    pub async fn next(&mut self, timeout: Duration) -> Result<Value> {
        if !self.backlog.is_empty() {
            return Ok(self.backlog.remove(0));
        }
        self.read(timeout).await
    }

    async fn read(&mut self, timeout: Duration) -> Result<Value> {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next())
                .await
                .context("timed out waiting for a message")?
                .context("socket closed")??;
            match msg {
                Message::Text(t) => return Ok(serde_json::from_str(&t)?),
                Message::Close(frame) => bail!("socket closed by server: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Wait for a message of type `ty` (others are kept in the backlog).
    pub async fn expect(&mut self, ty: &str) -> Result<Value> {
        self.expect_where(ty, |_| true).await
    }

    /// Wait for a message of type `ty` that satisfies `pred`.
    pub async fn expect_where(&mut self, ty: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        if let Some(i) = self.backlog.iter().position(|m| m["type"] == ty && pred(m)) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self
                .read(left)
                .await
                .with_context(|| format!("waiting for {ty}; seen meanwhile: {:?}", self.backlog))?;
            if m["type"] == ty && pred(&m) {
                return Ok(m);
            }
            self.backlog.push(m);
        }
    }

    /// Send a request with a `req` id and return the `error` answering it, if one comes
    /// within `wait` (None means no error arrived).
    pub async fn request(&mut self, mut v: Value, req: u64, wait: Duration) -> Result<Option<Value>> {
        v["req"] = json!(req);
        self.send(v).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.read(left).await {
                Ok(m) if m["type"] == "error" && m["req"] == json!(req) => return Ok(Some(m)),
                Ok(m) if m["type"] == "ok" && m["req"] == json!(req) => return Ok(None),
                Ok(m) => self.backlog.push(m),
                Err(_) => return Ok(None),
            }
        }
    }

    /// Wait until the server closes the socket; returns the close code.
    /// The server says `unauthorized` and closes the socket with 4401 (an ended session, a
    /// revoked or disabled device).
    pub async fn closed_unauthorized(&mut self) -> Result<()> {
        let err = self.expect("error").await?;
        anyhow::ensure!(err["code"] == "unauthorized", "expected unauthorized: {err}");
        anyhow::ensure!(self.closed().await? == Some(4401), "not closed with 4401");
        Ok(())
    }

    pub async fn closed(&mut self) -> Result<Option<u16>> {
        loop {
            match tokio::time::timeout(STEP, self.ws.next()).await.context("socket still open")? {
                None => return Ok(None),
                Some(Err(_)) => return Ok(None),
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Text(t))) => self.backlog.push(serde_json::from_str(&t)?),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Messages received but not yet consumed.
    pub fn backlog(&self) -> &[Value] {
        &self.backlog
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Log in as staff over HTTP; returns the session token.
pub async fn login(server: &Server, username: &str, password: &str) -> Result<String> {
    let resp = http()
        .post(format!("{}/api/login", server.base_url))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        bail!("login failed: {status} {body}");
    }
    body["token"].as_str().map(str::to_string).context("no token in login response")
}

/// Log in with a demo link of the given role (`window`, `chief`, `dispatcher`, ...).
pub async fn login_as(server: &Server, role: &str) -> Result<String> {
    let link = server.link(role);
    login(server, &link.fragment_param("user").context("user")?, &link.fragment_param("password").context("password")?)
        .await
}

/// An HTTP client that accepts the server's self-signed certificate.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// GET an API path with a bearer token; returns (status, JSON body or Null).
pub async fn get_json(server: &Server, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
    send_json(server, reqwest::Method::GET, path, token, None).await
}

/// Any method on an API path, with a bearer token and a JSON body if given; returns (status,
/// JSON body or Null).
pub async fn send_json(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut req = http().request(method, format!("{}{path}", server.base_url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// POST a JSON body to an API path; returns (status, JSON body or Null).
pub async fn post_json(server: &Server, path: &str, token: Option<&str>, body: Value) -> Result<(u16, Value)> {
    send_json(server, reqwest::Method::POST, path, token, Some(body)).await
}

/// A demo participant: its token and who it is (`/api/me`).
#[derive(Debug, Clone)]
pub struct Who {
    pub token: String,
    pub me: Value,
}

impl Who {
    pub fn id(&self) -> i64 {
        self.me["id"].as_i64().unwrap_or_default()
    }
    pub fn town_id(&self) -> i64 {
        self.me["town"]["id"].as_i64().unwrap_or_default()
    }
    pub fn window_id(&self) -> Option<i64> {
        self.me["window"]["id"].as_i64()
    }
    pub fn village_id(&self) -> Option<i64> {
        self.me["village"]["id"].as_i64()
    }
}

/// Every demo kiosk, with its `/api/me`.
pub async fn demo_kiosks(server: &Server) -> Result<Vec<Who>> {
    let mut out = Vec::new();
    for link in server.links("kiosk") {
        let token = link.fragment_param("token").context("kiosk link without token")?;
        let (status, me) = get_json(server, "/api/me", Some(&token)).await?;
        if status != 200 {
            bail!("/api/me for kiosk {}: {status} {me}", link.name);
        }
        out.push(Who { token, me });
    }
    Ok(out)
}

/// Every demo staff member of `role` (`window`, `chief`, `dispatcher`, ...), logged in.
pub async fn demo_staff(server: &Server, role: &str) -> Result<Vec<Who>> {
    let mut out = Vec::new();
    for link in server.links(role) {
        let token = login(
            server,
            &link.fragment_param("user").context("user")?,
            &link.fragment_param("password").context("password")?,
        )
        .await?;
        let (_, me) = get_json(server, "/api/me", Some(&token)).await?;
        out.push(Who { token, me });
    }
    Ok(out)
}

/// A kiosk, a matter its town handles, and an approver of the window that takes the matter.
pub struct Pairing {
    pub kiosk: Who,
    pub approver: Who,
    pub matter_id: i64,
    pub window_id: i64,
}

/// Pick the `nth` kiosk and a matter of its town, and the approver at the matter's window.
pub async fn pairing(server: &Server, nth: usize) -> Result<Pairing> {
    let kiosks = demo_kiosks(server).await?;
    let kiosk = kiosks.get(nth).context("not enough demo kiosks")?.clone();
    let (_, matters) = get_json(server, "/api/matters", Some(&kiosk.token)).await?;
    let approvers = demo_staff(server, "window").await?;
    for m in matters.as_array().context("matters")? {
        let window_id = m["window"]["id"].as_i64().context("matter window")?;
        if let Some(a) = approvers.iter().find(|a| a.window_id() == Some(window_id)) {
            return Ok(Pairing { kiosk, approver: a.clone(), matter_id: m["id"].as_i64().context("id")?, window_id });
        }
    }
    bail!("no matter of the kiosk's town has an approver in the demo")
}

/// Negotiate `peer` into `room` over the signaling socket `ws` (as a page does): send its
/// offer with `pc_id`, apply the server's answer.
pub async fn negotiate(
    ws: &mut WsClient,
    peer: &crate::peer::SyntheticPeer,
    room: &str,
    pc_id: &str,
    offer: String,
) -> Result<()> {
    ws.send(json!({"type": "media.offer", "room": room, "pc_id": pc_id, "sdp": offer})).await?;
    let answer = ws.expect_where("media.answer", |m| m["pc_id"] == pc_id).await?;
    peer.apply_answer(answer["sdp"].as_str().context("answer sdp")?).await?;
    Ok(())
}

/// Poll `cond` every 100 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Try `attempt` every 200 ms until it succeeds or `timeout` passes (then its last error).
pub async fn eventually_async<T, F, Fut>(timeout: Duration, what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e.context(format!("timed out after {timeout:?} waiting until {what}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A call answered through the queue: both signaling sockets, the call and its room.
pub struct AnsweredCall {
    pub kiosk: WsClient,
    pub window: WsClient,
    pub call_id: Value,
    pub room: String,
    pub case_no: String,
}

/// The approver of `p` sets itself available, the kiosk of `p` asks for a call on the matter,
/// the approver is rung and answers; both sides got `call.started`.
pub async fn answered_call(server: &Server, p: &Pairing) -> Result<AnsweredCall> {
    let mut window = WsClient::connect(server, &p.approver.token).await?;
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    let mut kiosk = WsClient::connect(server, &p.kiosk.token).await?;
    kiosk.send(json!({"type": "call.request", "matter_id": p.matter_id})).await?;
    let pos = kiosk.expect("queue.position").await?;
    window.expect_where("call.ring", |m| m["call_id"] == pos["call_id"]).await?;
    window.send(json!({"type": "call.answer", "call_id": pos["call_id"]})).await?;
    let started = window.expect("call.started").await?;
    kiosk.expect("call.started").await?;
    Ok(AnsweredCall {
        kiosk,
        window,
        call_id: pos["call_id"].clone(),
        room: started["room"].as_str().context("room")?.to_string(),
        case_no: started["case_no"].as_str().unwrap_or_default().to_string(),
    })
}
