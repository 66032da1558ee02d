//! Wire types of the WebSocket protocol (`docs/protocol.md`). These names exist only at the
//! signaling edge: the queue and the media plane never see them.

use serde::{Deserialize, Serialize};

use crate::case::{Outcome, ShownStatus};
use crate::config::IceServer;
use crate::db::Me;
pub use crate::service::views::Named;
use crate::service::views::{InboxItemView, PaperView};

/// A client message: `{"type": "...", "req": N?, ...fields}`.
#[derive(Debug)]
pub struct ClientEnvelope {
    pub req: Option<u64>,
    pub msg: ClientMsg,
}

impl ClientEnvelope {
    /// Parse one text frame. The error is a short description fit to send back to the client.
    pub fn parse(text: &str) -> Result<ClientEnvelope, (Option<u64>, String)> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| (None, format!("not JSON: {e}")))?;
        let obj = value.as_object_mut().ok_or((None, "expected a JSON object".to_string()))?;
        let req = match obj.remove("req") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or((None, "req must be a whole number".to_string()))?),
        };
        let msg = serde_json::from_value(value).map_err(|e| (req, e.to_string()))?;
        Ok(ClientEnvelope { req, msg })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientMsg {
    #[serde(rename = "hello")]
    Hello { token: String },
    #[serde(rename = "ping")]
    Ping,
    #[serde(rename = "call.request")]
    CallRequest {
        matter_id: i64,
        /// Resume this case (after 现场开单) instead of opening a new one.
        #[serde(default)]
        case_no: Option<String>,
    },
    #[serde(rename = "call.cancel")]
    CallCancel { call_id: u64 },
    #[serde(rename = "call.hangup")]
    CallHangup { call_id: u64 },
    #[serde(rename = "call.answer")]
    CallAnswer { call_id: u64 },
    #[serde(rename = "call.transfer")]
    CallTransfer { call_id: u64, window_id: i64 },
    #[serde(rename = "presence.set")]
    PresenceSet { presence: PresenceWire },
    #[serde(rename = "group.start")]
    GroupStart { village_ids: Vec<i64> },
    #[serde(rename = "group.end")]
    GroupEnd { group_id: u64 },
    #[serde(rename = "group.accept")]
    GroupAccept { group_id: u64 },
    #[serde(rename = "group.decline")]
    GroupDecline { group_id: u64 },
    #[serde(rename = "group.leave")]
    GroupLeave { group_id: u64 },
    /// The dispatcher invites a village of the open group call again.
    #[serde(rename = "group.reinvite")]
    GroupReinvite { group_id: u64, village_id: i64 },
    #[serde(rename = "media.offer")]
    MediaOffer { room: String, pc_id: String, sdp: String },
}

impl ClientMsg {
    /// Every client message type (`type` on the wire), in the order of the enum: what
    /// `cunneng routes --json` lists and the authorization matrix test sends. The tests below
    /// fail if a variant is added without its entry here.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "ping",
        "call.request",
        "call.cancel",
        "call.hangup",
        "call.answer",
        "call.transfer",
        "presence.set",
        "group.start",
        "group.end",
        "group.accept",
        "group.decline",
        "group.leave",
        "group.reinvite",
        "media.offer",
    ];

    /// The message's `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMsg::Hello { .. } => "hello",
            ClientMsg::Ping => "ping",
            ClientMsg::CallRequest { .. } => "call.request",
            ClientMsg::CallCancel { .. } => "call.cancel",
            ClientMsg::CallHangup { .. } => "call.hangup",
            ClientMsg::CallAnswer { .. } => "call.answer",
            ClientMsg::CallTransfer { .. } => "call.transfer",
            ClientMsg::PresenceSet { .. } => "presence.set",
            ClientMsg::GroupStart { .. } => "group.start",
            ClientMsg::GroupEnd { .. } => "group.end",
            ClientMsg::GroupAccept { .. } => "group.accept",
            ClientMsg::GroupDecline { .. } => "group.decline",
            ClientMsg::GroupLeave { .. } => "group.leave",
            ClientMsg::GroupReinvite { .. } => "group.reinvite",
            ClientMsg::MediaOffer { .. } => "media.offer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceWire {
    Available,
    Busy,
    Away,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueItemWire {
    pub call_id: u64,
    pub village: Named,
    pub matter: Named,
    pub waited_secs: u64,
    pub position: usize,
    pub transferred: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupMemberWire {
    pub village: Named,
    /// The member's media label (`kiosk:ID`), the stream id of its video.
    pub label: String,
    pub state: &'static str,
}

/// The other side of a call, as `call.started` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PeerWire {
    /// To the kiosk: the approver and the window.
    Approver { name: String, window: Named },
    /// To the approver: the village and its room.
    Kiosk { village: Named, kiosk: Named },
}

/// Who invites a village to a group call.
#[derive(Debug, Clone, Serialize)]
pub struct GroupFromWire {
    pub name: String,
    pub town: String,
}

/// A server message. Serialized as `{"type": "...", ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum ServerMsg {
    #[serde(rename = "welcome")]
    Welcome { me: Me, ice_servers: Vec<IceServer> },
    #[serde(rename = "pong")]
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    #[serde(rename = "ok")]
    Ok {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    #[serde(rename = "error")]
    Error {
        code: &'static str,
        /// For people (Chinese).
        message: String,
        /// For developers (English), when the message carried one.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    #[serde(rename = "replaced")]
    Replaced,
    #[serde(rename = "presence")]
    Presence { presence: PresenceWire, forced: bool },
    #[serde(rename = "queue.position")]
    QueuePosition {
        call_id: u64,
        window: Named,
        position: usize,
        estimated_wait_secs: u64,
        /// Someone staffs the window now; without anyone the estimate means nothing.
        staffed: bool,
    },
    #[serde(rename = "queue.snapshot")]
    QueueSnapshot { window: Named, items: Vec<QueueItemWire> },
    #[serde(rename = "call.ring")]
    CallRing { call_id: u64, village: Named, matter: Named },
    #[serde(rename = "call.ring_stopped")]
    CallRingStopped { call_id: u64, reason: &'static str },
    #[serde(rename = "call.started")]
    CallStarted { call_id: u64, room: String, peer: PeerWire, matter: Named, case_no: Option<String> },
    #[serde(rename = "call.transferred")]
    CallTransferred { call_id: u64, window: Named },
    #[serde(rename = "call.peer_reconnecting")]
    CallPeerReconnecting { call_id: u64 },
    #[serde(rename = "call.peer_reconnected")]
    CallPeerReconnected { call_id: u64 },
    #[serde(rename = "call.requeued")]
    CallRequeued { call_id: u64, reason: &'static str },
    #[serde(rename = "call.ended")]
    CallEnded { call_id: u64, reason: &'static str },
    #[serde(rename = "group.invite")]
    GroupInvite { group_id: u64, from: GroupFromWire },
    #[serde(rename = "group.joined")]
    GroupJoined { group_id: u64, room: String },
    #[serde(rename = "group.state")]
    GroupState { group_id: u64, room: String, members: Vec<GroupMemberWire> },
    #[serde(rename = "group.invite_expired")]
    GroupInviteExpired { group_id: u64 },
    #[serde(rename = "group.ended")]
    GroupEnded { group_id: u64, reason: &'static str },
    #[serde(rename = "media.answer")]
    MediaAnswer { room: String, pc_id: String, sdp: String },
    #[serde(rename = "media.renegotiate")]
    MediaRenegotiate { room: String, recv_slots: usize },
    // Cases and papers (docs/cases-api.md); sent by the API (`api::push`) via `engine.notify`.
    #[serde(rename = "paper.added")]
    PaperAdded { case_no: String, paper: PaperView },
    /// To the approver of the live call: the village corrected a scan (its checklist item), or
    /// took it back (`removed_at_ms` set: no longer a paper of the case).
    #[serde(rename = "paper.changed")]
    PaperChanged { case_no: String, paper: PaperView },
    #[serde(rename = "paper.rescan_requested")]
    PaperRescanRequested { case_no: String, paper_id: Option<i64>, note: String },
    /// To the village: the window cannot decide before the villager's name and phone are on
    /// the case (a decision was refused with `villager_required` during the call).
    #[serde(rename = "villager.requested")]
    VillagerRequested { case_no: String },
    /// To the approver of the live call: the case changed (the villager was entered); read it again.
    #[serde(rename = "case.updated")]
    CaseUpdated { case_no: String },
    #[serde(rename = "outcome")]
    Outcome {
        case_no: String,
        status: ShownStatus,
        status_text: &'static str,
        outcome: Option<Outcome>,
        note: String,
        missing_items: Vec<String>,
        result: Option<PaperView>,
    },
    #[serde(rename = "signoff.requested")]
    SignoffRequested { case_no: String, matter: Named, village: Named },
    #[serde(rename = "signoff.returned")]
    SignoffReturned { case_no: String, reason: String },
    #[serde(rename = "inbox.item")]
    InboxItem { item: Box<InboxItemView> },
}

impl ServerMsg {
    pub fn error(code: &'static str, message: impl Into<String>, req: Option<u64>) -> Self {
        let message = message.into();
        let (words, detail) = crate::error::split_message(&message);
        ServerMsg::Error { code, detail: detail.map(str::to_string), message: words.to_string(), req }
    }

    /// The answer to a message [`ClientEnvelope::parse`] refused (`why`, which may quote the
    /// client's input).
    pub fn bad_message(why: &str, req: Option<u64>) -> Self {
        let why = crate::error::quote_client(why);
        ServerMsg::error("bad_message", format!("消息格式错误 (bad message: {why})"), req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_message_is_answered_in_chinese_with_the_detail_apart() {
        // Found by fuzz/ws_message: a type with a Chinese character in it.
        let Err((req, why)) = ClientEnvelope::parse(r#"{"type": "presence.ooooooooottype案oaway", "req": 3}"#) else {
            panic!("an unknown type parses")
        };
        let ServerMsg::Error { message, detail, req, .. } = ServerMsg::bad_message(&why, req) else { panic!() };
        assert_eq!((message.as_str(), req), ("消息格式错误", Some(3)));
        assert!(detail.unwrap().starts_with("bad message: unknown variant `presence.ooooooooottype\\u{6848}oaway`"));
    }

    #[test]
    fn client_messages_parse_by_type() {
        let env = ClientEnvelope::parse(r#"{"type":"call.request","matter_id":3,"req":7}"#).unwrap();
        assert_eq!(env.req, Some(7));
        assert!(matches!(env.msg, ClientMsg::CallRequest { matter_id: 3, .. }));
        let env = ClientEnvelope::parse(r#"{"type":"presence.set","presence":"away"}"#).unwrap();
        assert!(matches!(env.msg, ClientMsg::PresenceSet { presence: PresenceWire::Away }));
    }

    #[test]
    fn malformed_client_messages_are_rejected() {
        for bad in [
            "",
            "{}",
            r#"{"type":"call.request"}"#,
            r#"{"type":"call.request","matter_id":"x"}"#,
            r#"{"type":"no.such"}"#,
            r#"{"type":"presence.set","presence":"asleep"}"#,
            r#"[1,2]"#,
            r#"{"type":"ping","req":-1}"#,
            r#"{"type":"call.cancel","call_id":1,"extra":true}"#,
        ] {
            assert!(ClientEnvelope::parse(bad).is_err(), "{bad}");
        }
    }

    /// One well-formed message of each listed type.
    fn sample(ty: &str) -> String {
        let fields = match ty {
            "hello" => r#""token":"t""#,
            "ping" => "",
            "call.request" => r#""matter_id":1"#,
            "call.cancel" | "call.hangup" | "call.answer" => r#""call_id":1"#,
            "call.transfer" => r#""call_id":1,"window_id":2"#,
            "presence.set" => r#""presence":"available""#,
            "group.start" => r#""village_ids":[1]"#,
            "group.end" | "group.accept" | "group.decline" | "group.leave" => r#""group_id":1"#,
            "group.reinvite" => r#""group_id":1,"village_id":2"#,
            "media.offer" => r#""room":"call:1","pc_id":"p","sdp":"v=0""#,
            other => panic!("no sample for `{other}`: add one"),
        };
        let sep = if fields.is_empty() { "" } else { "," };
        format!(r#"{{"type":"{ty}"{sep}{fields}}}"#)
    }

    #[test]
    fn every_client_message_type_is_listed_and_named() {
        // The list serde itself knows (its error for an unknown type names every variant)
        // is exactly `TYPES`: a variant added without its entry fails here.
        let Err((_, why)) = ClientEnvelope::parse(r#"{"type":"no-such-type"}"#) else { panic!("parsed") };
        let (_, expected) = why.split_once("expected one of ").expect(&why);
        let known: Vec<&str> = expected.split(", ").map(|s| s.trim().trim_matches('`')).collect();
        assert_eq!(known, ClientMsg::TYPES, "{why}");
        // Each listed type parses from its sample and names itself (`type_name`'s exhaustive
        // match has one arm per variant).
        for ty in ClientMsg::TYPES {
            let env = ClientEnvelope::parse(&sample(ty)).unwrap_or_else(|e| panic!("{ty}: {e:?}"));
            assert_eq!(env.msg.type_name(), *ty);
        }
        let unique: std::collections::HashSet<_> = ClientMsg::TYPES.iter().collect();
        assert_eq!(unique.len(), ClientMsg::TYPES.len());
    }

    #[test]
    fn server_messages_carry_their_type() {
        let v = serde_json::to_value(ServerMsg::CallEnded { call_id: 4, reason: "hangup" }).unwrap();
        assert_eq!(v["type"], "call.ended");
        assert_eq!(v["call_id"], 4);
    }
}
