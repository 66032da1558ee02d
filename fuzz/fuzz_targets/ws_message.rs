//! The WebSocket message decoder (`wire::ClientEnvelope::parse`) and the error reply a bad
//! message gets (`ServerMsg::bad_message`: the words, and the reason quoted in the detail).
//! Input: one text frame.
#![no_main]

use cunneng_signaling::error::{QUOTE_MAX_CHARS, split_message};
use cunneng_signaling::wire::{ClientEnvelope, ServerMsg};
use libfuzzer_sys::fuzz_target;

fn is_cjk(c: char) -> bool {
    ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err((req, why)) = ClientEnvelope::parse(text) {
        // As api/ws.rs answers a bad message: the words for people, the reason (which may quote
        // the client) in a short detail without Chinese.
        let reply = ServerMsg::bad_message(&why, req);
        let json = serde_json::to_string(&reply).expect("an error reply serializes");
        let v: serde_json::Value = serde_json::from_str(&json).expect("an error reply is JSON");
        assert_eq!(v["type"], "error");
        assert_eq!(v["message"], "消息格式错误", "{json}");
        let detail = v["detail"].as_str().expect("a detail");
        assert!(!detail.chars().any(is_cjk) && detail.len() < 64 + 6 * QUOTE_MAX_CHARS, "{json}");
    }
    // The split: Chinese words, then the English detail in the last parentheses.
    let (words, detail) = split_message(text);
    match detail {
        None => assert_eq!(words, text),
        Some(detail) => {
            assert!(text.starts_with(words) && text.ends_with(&format!(" ({detail})")), "{text:?}");
            assert!(words.chars().any(is_cjk), "words without Chinese: {words:?}");
            assert!(!detail.chars().any(is_cjk), "Chinese in the detail: {detail:?}");
        }
    }
});
