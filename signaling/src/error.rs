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

/// A message as people and developers read it: the words before a trailing ` (…)` without
/// Chinese in it are for people (`message`), the parenthesised English is the `detail` for
/// developers. "案件已办结 (the case is closed)" → ("案件已办结", Some("the case is closed")).
pub fn split_message(message: &str) -> (&str, Option<&str>) {
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

#[cfg(test)]
mod tests {
    use super::split_message;

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
}
