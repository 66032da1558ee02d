//! Helpers for the case and paper tests (docs/cases-api.md): a small REST client, paper
//! uploads in chunks, test papers with the right magic bytes, a call set up between a kiosk
//! and the approver of a chosen matter, a whole decided case, and a look at what the object
//! store holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::client::{Who, WsClient, demo_kiosks, demo_staff, get_json, http};
use crate::server::Server;

/// A bearer-token REST client for one principal.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
}

/// Status and JSON body (Null when the body is not JSON).
pub type Answer = (u16, Value);

async fn answer(resp: reqwest::Response) -> Result<Answer> {
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

impl Api {
    pub fn new(server: &Server, token: &str) -> Api {
        Api { base: server.base_url.clone(), token: Some(token.to_string()) }
    }

    pub fn anonymous(server: &Server) -> Api {
        Api { base: server.base_url.clone(), token: None }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = http().request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn get(&self, path: &str) -> Result<Answer> {
        answer(self.req(reqwest::Method::GET, path).send().await?).await
    }

    /// GET the raw bytes (status, content type, body).
    pub async fn get_bytes(&self, path: &str) -> Result<(u16, String, Vec<u8>)> {
        let resp = self.req(reqwest::Method::GET, path).send().await?;
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        Ok((status, ct, resp.bytes().await?.to_vec()))
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Answer> {
        answer(self.req(reqwest::Method::POST, path).json(&body).send().await?).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Answer> {
        answer(self.req(reqwest::Method::PUT, path).json(&body).send().await?).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Answer> {
        answer(self.req(reqwest::Method::PATCH, path).json(&body).send().await?).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer> {
        answer(self.req(reqwest::Method::DELETE, path).send().await?).await
    }

    /// DELETE with a JSON body (e.g. lifting a legal hold with its reason).
    pub async fn delete_with(&self, path: &str, body: Value) -> Result<Answer> {
        answer(self.req(reqwest::Method::DELETE, path).json(&body).send().await?).await
    }

    /// PUT raw bytes with a content type.
    pub async fn put_bytes(&self, path: &str, bytes: Vec<u8>, content_type: &str) -> Result<Answer> {
        answer(self.req(reqwest::Method::PUT, path).header("content-type", content_type).body(bytes).send().await?)
            .await
    }

    /// Start an upload: the answer of `POST /api/cases/{case_no}/papers`.
    pub async fn start_upload(&self, case_no: &str, body: Value) -> Result<Answer> {
        self.post(&format!("/api/cases/{case_no}/papers"), body).await
    }

    /// Upload a whole paper in chunks of `chunk` bytes; returns the stored Paper.
    pub async fn upload(
        &self,
        case_no: &str,
        name: &str,
        bytes: &[u8],
        checklist_item: Option<&str>,
        kind: &str,
        chunk: usize,
    ) -> Result<Value> {
        let (status, start) = self
            .start_upload(
                case_no,
                json!({"name": name, "size": bytes.len(), "checklist_item": checklist_item, "kind": kind}),
            )
            .await?;
        if status != 201 {
            bail!("starting the upload of {name}: {status} {start}");
        }
        let url = start["url"].as_str().context("upload url")?.to_string();
        let mut offset = 0;
        loop {
            let end = (offset + chunk).min(bytes.len());
            let (status, body) = self
                .put_bytes(&format!("{url}?offset={offset}"), bytes[offset..end].to_vec(), "application/octet-stream")
                .await?;
            match status {
                200 => offset = body["offset"].as_u64().context("offset")? as usize,
                201 => return Ok(body["paper"].clone()),
                _ => bail!("uploading {name} at {offset}: {status} {body}"),
            }
        }
    }
}

/// Bytes that are a PDF by their magic (and padded to `n` bytes).
pub fn pdf(n: usize) -> Vec<u8> {
    padded(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n", n)
}

pub fn jpeg(n: usize) -> Vec<u8> {
    padded(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0], n)
}

pub fn png(n: usize) -> Vec<u8> {
    padded(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, b'I', b'H', b'D', b'R'], n)
}

fn padded(head: &[u8], n: usize) -> Vec<u8> {
    let mut v = head.to_vec();
    let mut x: u32 = 0x1234_5678;
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v.truncate(n.max(head.len()));
    v
}

/// Every file the local object store holds (temporary files excluded), sorted.
pub fn object_files(server: &Server) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    // The local store, and the spool in front of an S3 store.
    walk(&server.data_dir().join("objects"), &mut out);
    walk(&server.data_dir().join("spool").join("queue"), &mut out);
    out.sort();
    out
}

/// A kiosk, a matter of its town (with or without 一审一核), the approver of the matter's
/// window and the chief of the town.
pub struct CaseSetup {
    pub kiosk: Who,
    pub approver: Who,
    pub chief: Who,
    pub matter: Value,
    pub matter_id: i64,
}

/// Pick the `nth` demo kiosk and a matter of its town with `needs_signoff` as asked that
/// has an approver in the demo.
pub async fn setup(server: &Server, nth: usize, needs_signoff: bool) -> Result<CaseSetup> {
    let kiosks = demo_kiosks(server).await?;
    let kiosk = kiosks.get(nth).context("not enough demo kiosks")?.clone();
    let (_, matters) = get_json(server, "/api/matters", Some(&kiosk.token)).await?;
    let approvers = demo_staff(server, "window").await?;
    let chiefs = demo_staff(server, "chief").await?;
    let chief = chiefs.iter().find(|c| c.town_id() == kiosk.town_id()).context("no chief in the town")?.clone();
    for m in matters.as_array().context("matters")? {
        if m["needs_signoff"].as_bool() != Some(needs_signoff) {
            continue;
        }
        let window_id = m["window"]["id"].as_i64().context("matter window")?;
        if let Some(a) = approvers.iter().find(|a| a.window_id() == Some(window_id)) {
            return Ok(CaseSetup {
                kiosk,
                approver: a.clone(),
                chief,
                matter: m.clone(),
                matter_id: m["id"].as_i64().context("id")?,
            });
        }
    }
    bail!("no matter with needs_signoff = {needs_signoff} and an approver in the demo town")
}

/// The kiosk of `s` asks for a call (resuming `case_no` when given) and the approver, made
/// available, is rung; returns both sockets and the call id. Answer with [`answer_call`].
pub async fn call(server: &Server, s: &CaseSetup, case_no: Option<&str>) -> Result<(WsClient, WsClient, u64)> {
    let mut window = WsClient::connect(server, &s.approver.token).await?;
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    window.expect_where("presence", |m| m["presence"] == "available").await?;
    let mut kiosk = WsClient::connect(server, &s.kiosk.token).await?;
    let mut req = json!({"type": "call.request", "matter_id": s.matter_id});
    if let Some(no) = case_no {
        req["case_no"] = json!(no);
    }
    if let Some(err) = kiosk.request(req, 1, std::time::Duration::from_secs(3)).await? {
        bail!("call.request refused: {err}");
    }
    let pos = kiosk.expect("queue.position").await?;
    let call_id = pos["call_id"].as_u64().context("call id")?;
    window.expect_where("call.ring", |m| m["call_id"] == call_id).await?;
    Ok((kiosk, window, call_id))
}

/// Answer a ringing call; returns the `call.started` the approver got.
pub async fn answer_call(kiosk: &mut WsClient, window: &mut WsClient, call_id: u64) -> Result<Value> {
    window.send(json!({"type": "call.answer", "call_id": call_id})).await?;
    let started = window.expect_where("call.started", |m| m["call_id"] == call_id).await?;
    kiosk.expect_where("call.started", |m| m["call_id"] == call_id).await?;
    Ok(started)
}

/// Hang up from the kiosk and wait until both sides saw it end.
pub async fn hang_up(kiosk: &mut WsClient, window: &mut WsClient, call_id: u64) -> Result<()> {
    kiosk.send(json!({"type": "call.hangup", "call_id": call_id})).await?;
    kiosk.expect_where("call.ended", |m| m["call_id"] == call_id).await?;
    window.expect_where("call.ended", |m| m["call_id"] == call_id).await?;
    Ok(())
}

/// A case the kiosk of `s` calls about, the approver answers and decides: `done` (with a
/// result document) or `refused`, the kiosk hangs up, and the villager rates it when
/// `rating` gives (rating, comment). Returns the case number. For statistics and the pages
/// that show them.
pub async fn decided_case(
    server: &Server,
    s: &CaseSetup,
    outcome: &str,
    rating: Option<(&str, &str)>,
) -> Result<String> {
    let kiosk = Api::new(server, &s.kiosk.token);
    let window = Api::new(server, &s.approver.token);
    let (mut k, mut w, id) = call(server, s, None).await?;
    let started = answer_call(&mut k, &mut w, id).await?;
    let case_no = started["case_no"].as_str().context("case_no")?.to_string();
    let villager = json!({"name": "王大妈", "phone": "13900001111"});
    let (st, body) = kiosk.put(&format!("/api/cases/{case_no}/villager"), villager).await?;
    if st != 200 {
        bail!("villager: {st} {body}");
    }
    let decision = match outcome {
        "done" => {
            let paper = window.upload(&case_no, "结果.pdf", &pdf(2000), None, "result", 64 * 1024).await?;
            json!({"outcome": "done", "note": "当场办结", "result_paper_id": paper["id"]})
        }
        "refused" => json!({"outcome": "refused", "note": "不符合条件"}),
        other => bail!("decided_case: outcome {other} is not supported"),
    };
    let (st, body) = window.post(&format!("/api/cases/{case_no}/outcome"), decision).await?;
    if st != 200 {
        bail!("outcome: {st} {body}");
    }
    hang_up(&mut k, &mut w, id).await?;
    if let Some((rating, comment)) = rating {
        let (st, body) =
            kiosk.post(&format!("/api/cases/{case_no}/rating"), json!({"rating": rating, "comment": comment})).await?;
        if st != 201 {
            bail!("rating: {st} {body}");
        }
    }
    Ok(case_no)
}

/// The first demo kiosk (by the order of [`setup`]'s `nth`) whose town is not `town_id`,
/// set up as [`setup`] does.
pub async fn setup_in_another_town(server: &Server, town_id: i64, needs_signoff: bool) -> Result<CaseSetup> {
    let kiosks = demo_kiosks(server).await?;
    for (nth, k) in kiosks.iter().enumerate() {
        if k.town_id() != town_id
            && let Ok(s) = setup(server, nth, needs_signoff).await
        {
            return Ok(s);
        }
    }
    bail!("no demo kiosk outside town {town_id} with a matter that fits")
}

/// Assert an error answer: status and `error.code`.
pub fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.0, status, "expected {status} {code}, got {} {}", a.0, a.1);
    assert_eq!(a.1["error"]["code"], code, "expected {code}: {}", a.1);
}

/// The case's receipt lookup code, read from the server's database (what the receipt prints).
pub fn lookup_code(server: &Server, case_no: &str) -> Result<String> {
    let db = rusqlite::Connection::open(server.data_dir().join("cunneng.sqlite3"))?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(db.query_row("SELECT lookup_code FROM cases WHERE case_no = ?1", [case_no], |r| r.get(0))?)
}

/// The public progress lookup of a case as a villager makes it from the receipt: case number,
/// lookup code, the phone's last four digits.
pub async fn public_progress(server: &Server, case_no: &str, phone4: &str) -> Result<Answer> {
    let code = lookup_code(server, case_no)?;
    Api::anonymous(server).get(&format!("/api/progress?case={case_no}&code={code}&phone4={phone4}")).await
}
