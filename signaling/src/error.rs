//! The crate's one error enum, [`Error`], and [`Rejection`]: a refused request in terms any
//! edge maps on its own (the HTTP API to a status code, the WebSocket to an error code). The
//! HTTP edge's error type is `api::ApiError`.

use crate::case::Refusal;
use crate::config::ConfigError;
use crate::db::DataError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Media(#[from] cunneng_media_recorder::MediaError),
    #[error(transparent)]
    Storage(#[from] cunneng_storage::StorageError),
    /// A request refused: bad input, wrong role or scope, a state that does not allow it.
    /// Nothing changed.
    #[error("{}", .0.message)]
    Rejected(Rejection),
    #[error("{0}")]
    Tool(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What kind of refusal: the edges map it (HTTP status, WebSocket error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// Malformed or invalid input (400).
    Invalid,
    /// Not allowed for this role or scope (403).
    Forbidden,
    /// No such thing, or not in the principal's scope where saying so would leak (404).
    NotFound,
    /// Valid, but the state does not allow it (409).
    Conflict,
    /// Over a size limit (413).
    TooLarge,
    /// It existed and is gone for good, e.g. destroyed by retention (410).
    Gone,
    /// A paper that is not PDF, JPEG or PNG (415).
    UnsupportedType,
    /// Over a rate or count limit (429).
    TooMany,
    /// The server cannot take it right now (503).
    Unavailable,
}

/// A refused request: a stable `code` for programs and a message for people (Chinese first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectKind,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(kind: RejectKind, code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection { kind, code, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Rejection {
        Rejection::new(RejectKind::Invalid, "bad_request", message)
    }
    pub fn forbidden(what: &str) -> Rejection {
        Rejection::new(RejectKind::Forbidden, "forbidden", format!("无权操作 (not allowed for this role: {what})"))
    }
    pub fn not_found(what: &str) -> Rejection {
        Rejection::new(RejectKind::NotFound, "not_found", format!("找不到 (not found: {what})"))
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection::new(RejectKind::Conflict, code, message)
    }
    /// A conditional write lost a race with another change of the same case.
    pub fn changed_meanwhile() -> Rejection {
        Rejection::conflict("conflict", "案件状态已变化,请刷新 (the case changed meanwhile)")
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Error {
        Error::Rejected(r)
    }
}

impl From<Refusal> for Rejection {
    fn from(r: Refusal) -> Rejection {
        let message = r.to_string();
        match r {
            Refusal::Role(_) | Refusal::NotTheDecider => Rejection::new(RejectKind::Forbidden, "forbidden", message),
            Refusal::SamePerson => Rejection::new(RejectKind::Forbidden, "same_person", message),
            Refusal::Closed(_) => Rejection::new(RejectKind::Conflict, "case_closed", message),
            Refusal::Status { .. } | Refusal::InCall => Rejection::new(RejectKind::Conflict, "conflict", message),
            Refusal::Invalid(_) => Rejection::new(RejectKind::Invalid, "bad_request", message),
            Refusal::VillagerRequired => Rejection::new(RejectKind::Conflict, "villager_required", message),
            Refusal::PaperRemoved => Rejection::new(RejectKind::Gone, "paper_removed", message),
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::Rejected(r.into())
    }
}

/// Most characters of a client's input quoted in a detail.
pub const QUOTE_MAX_CHARS: usize = 200;

/// A client's input as a detail may quote it (a serde error names the unknown field or variant
/// it was sent): at most [`QUOTE_MAX_CHARS`] characters, everything but printable ASCII
/// escaped (`\u{6848}`), so that it can neither make the reply as large as the request nor
/// carry Chinese into the detail, where [`split_message`] would no longer find the words.
pub fn quote_client(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == QUOTE_MAX_CHARS {
            out.push_str("...");
            break;
        }
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&c.escape_unicode().to_string());
        }
    }
    out
}

/// A message as people and developers read it: the words before a trailing ` (…)` without
/// Chinese in it are for people (`message`), the parenthesised English is the `detail` for
/// developers. "案件已办结 (the case is closed)" → ("案件已办结", Some("the case is closed")).
///
/// The split is at the first ` (` that has Chinese before it and none after it, that is the
/// first ` (` after the last Chinese character. Found in one pass from each end: messages may
/// echo a client's input (a serde error names the unknown field or variant it was sent), and
/// trying every ` (` against the whole rest made a 1 MiB request body cost minutes of CPU.
pub fn split_message(message: &str) -> (&str, Option<&str>) {
    let is_cjk = |c: char| ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c);
    let Some(inner) = message.strip_suffix(')') else { return (message, None) };
    let Some(last) = inner.char_indices().rev().find(|&(_, c)| is_cjk(c)) else { return (message, None) };
    let mut from = last.0 + last.1.len_utf8();
    while let Some(i) = inner[from..].find(" (").map(|i| i + from) {
        // Blank words (only whitespace, such as U+3000) can happen at the first ` (` only:
        // past it, the words hold its `(`.
        let words = &inner[..i];
        if !words.trim().is_empty() {
            return (words.trim_end(), Some(&inner[i + 2..]));
        }
        from = i + 2;
    }
    (message, None)
}

#[cfg(test)]
mod tests {
    use super::{QUOTE_MAX_CHARS, quote_client, split_message};

    #[test]
    fn messages_split_into_words_and_detail() {
        assert_eq!(
            split_message("案件已办结 (the case is closed: done)"),
            ("案件已办结", Some("the case is closed: done"))
        );
        assert_eq!(
            split_message("无权操作 (not allowed for this role: cases (kiosk))"),
            ("无权操作", Some("not allowed for this role: cases (kiosk)"))
        );
        assert_eq!(
            split_message("姓名 (name) 不对 (name is not valid)"),
            ("姓名 (name) 不对", Some("name is not valid"))
        );
        assert_eq!(split_message("outcome 应为 done 或 later"), ("outcome 应为 done 或 later", None));
        assert_eq!(split_message("only english (x)"), ("only english (x)", None));
    }

    #[test]
    fn client_text_quoted_in_a_detail_is_short_and_ascii() {
        // Found by fuzz/ws_message: an unknown message type with a Chinese character in it
        // was echoed into the detail, so the reply's words for people carried the English.
        let why = "unknown variant `presence.ooooooooottype案oaway`, expected one of `hello`";
        let message = format!("消息格式错误 (bad message: {})", quote_client(why));
        assert_eq!(
            split_message(&message),
            (
                "消息格式错误",
                Some("bad message: unknown variant `presence.ooooooooottype\\u{6848}oaway`, expected one of `hello`")
            )
        );
        let long = quote_client(&"x".repeat(1 << 20));
        assert_eq!(long.len(), QUOTE_MAX_CHARS + 3);
        assert_eq!(quote_client("a\nb\u{202e}"), "a\\u{a}b\\u{202e}");
    }

    /// The rule as first written: try every ` (` against the words before it and the rest
    /// after it (quadratic).
    fn split_by_every_parenthesis(message: &str) -> (&str, Option<&str>) {
        let is_cjk = |c: char| ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ffef}').contains(&c);
        let Some(inner) = message.strip_suffix(')') else { return (message, None) };
        let mut from = 0;
        while let Some(i) = inner[from..].find(" (").map(|i| i + from) {
            let (words, rest) = (&inner[..i], &inner[i + 2..]);
            if !words.trim().is_empty() && words.chars().any(is_cjk) && !rest.chars().any(is_cjk) {
                return (words.trim_end(), Some(rest));
            }
            from = i + 2;
        }
        (message, None)
    }

    #[test]
    fn the_split_is_the_rule_for_every_short_message() {
        // Every message of up to 6 characters over the characters that matter.
        let alphabet = ['中', ' ', '(', ')', 'a', '\u{3000}'];
        let mut messages = vec![String::new()];
        for _ in 0..6 {
            messages = messages.iter().flat_map(|m| alphabet.iter().map(move |c| format!("{m}{c}"))).collect();
            for m in &messages {
                assert_eq!(split_message(m), split_by_every_parenthesis(m), "{m:?}");
            }
        }
    }

    #[test]
    fn a_long_echo_of_a_client_splits_in_one_pass() {
        // A 1 MiB request body naming an unknown field of many ` (` that ends in Chinese: the
        // serde error echoes it. Trying every ` (` against the rest took minutes; in one pass
        // this test takes milliseconds.
        let field = format!("{}中", " (".repeat(512 * 1024));
        let message = format!("请求格式错误 (bad request body: unknown field `{field}`, expected `username`)");
        assert_eq!(split_message(&message), (message.as_str(), None));
        let message = format!("{field} (detail)");
        assert_eq!(split_message(&message), (field.as_str(), Some("detail")));
    }
}
