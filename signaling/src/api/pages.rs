//! The browser pages and their static files (`cunneng-web`), the pages' words module rendered
//! from `case::words` (`/static/words.js`), the security headers on every response, `/healthz`
//! and `/metrics`.

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::ApiError;
use crate::case::words;
use crate::state::AppState;

pub(super) async fn page(name: &'static str) -> Response {
    match cunneng_web::page(name) {
        Some(html) => {
            let mut resp = Html(html).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        None => ApiError::not_found("page").into_response(),
    }
}

pub(super) async fn asset(Path(path): Path<String>) -> Response {
    match cunneng_web::asset(&path) {
        Some((bytes, content_type)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::not_found("file").into_response(),
    }
}

/// `/static/words.js`: [`words_module`].
pub(super) async fn words() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(cunneng_web::SCRIPT_CONTENT_TYPE)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        words_module(),
    )
        .into_response()
}

/// Every table of words the pages import: `case::words` and the audit record's access actions.
pub fn word_tables() -> Vec<words::WordTable> {
    let mut all = words::tables();
    all.push(crate::audit::AccessAction::word_table());
    all
}

/// The words of [`word_tables`] as the pages' ES module: one frozen object per table, keyed by
/// the wire values (`STATUS.missing`, `CALL_ENDED_TOWN.peer_gone`, ...).
pub fn words_module() -> String {
    let mut js = String::from(
        "// The words the pages show, rendered by the server from signaling/src/case/words.rs.\n\
         // Every table is keyed by the values on the wire. Import the words from here; a page\n\
         // keeps no copy of them (signaling/src/api/pages.rs tests that).\n",
    );
    for table in word_tables() {
        js.push_str(&format!(
            // No looser type than the object's own: the pages' type check
            // (tests/tests/pages_type_check.rs) then knows every key, and `STATUS.opne` fails.
            "\n/** {} */\nexport const {} = Object.freeze({{\n",
            table.about, table.name
        ));
        for (key, word) in &table.entries {
            // JSON strings are JavaScript string literals.
            let key = serde_json::Value::from(*key);
            let word = serde_json::Value::from(*word);
            js.push_str(&format!("  {key}: {word},\n"));
        }
        js.push_str("});\n");
    }
    js
}

/// `GET /metrics`: Prometheus text, for whoever `metrics_access` lets in.
pub(super) async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Response {
    use crate::metrics_access::MetricsRefusal;
    match state.metrics_access.check(peer.ip(), &headers) {
        Ok(()) => {}
        Err(MetricsRefusal::NoToken) => {
            let mut refused = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the metrics need the bearer token of metrics.token_file",
            )
            .into_response();
            refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return refused;
        }
        Err(MetricsRefusal::NotLocal) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the metrics are served to this machine only; set metrics.token_file to serve them elsewhere",
            )
            .into_response();
        }
    }
    let text = state.render_metrics().await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// `cunneng_web::security_headers` (CSP, nosniff, ...) on every response; a header a handler
/// set itself is kept.
pub(super) async fn security_headers(req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = host.or_else(|| req.uri().authority().map(|a| a.to_string()));
    let mut resp = next.run(req).await;
    for (name, value) in cunneng_web::security_headers(host.as_deref()) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            resp.headers_mut().entry(name).or_insert(value);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{word_tables as tables, words_module};
    use crate::audit::AccessAction;
    use crate::case::EventKind;
    use crate::case::{BookingStatus, Outcome, Rating, ShownStatus, SignoffDecision};
    use crate::queue::{CallEndReason, MemberStatus, RingStopReason};

    /// The `"key": "word"` entries of each `export const NAME = Object.freeze({...})` of the module.
    fn exported_tables(js: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut current: Option<(String, BTreeMap<String, String>)> = None;
        for line in js.lines() {
            if let Some(rest) = line.strip_prefix("export const ") {
                let (name, tail) = rest.split_once(" = ").expect("export const NAME = ...");
                assert_eq!(tail, "Object.freeze({", "{line}");
                current = Some((name.to_string(), BTreeMap::new()));
            } else if line == "});" {
                let (name, entries) = current.take().expect("a table ends that never began");
                assert!(out.insert(name, entries).is_none(), "a table exported twice");
            } else if let Some((_, entries)) = current.as_mut() {
                let (key, word) = line.trim().trim_end_matches(',').split_once(": ").expect("key: word");
                let key: String = serde_json::from_str(key).expect("a JSON string key");
                let word: String = serde_json::from_str(word).expect("a JSON string word");
                assert!(entries.insert(key, word).is_none(), "{line}: key twice");
            }
        }
        assert!(current.is_none(), "an unterminated table");
        out
    }

    #[test]
    fn the_words_module_has_every_variant_of_every_enumeration() {
        let module = exported_tables(&words_module());
        let check = |name: &str, want: Vec<(&str, &str)>| {
            let got = module.get(name).unwrap_or_else(|| panic!("words.js exports no {name}"));
            assert_eq!(got.len(), want.len(), "{name}: {got:?}");
            for (key, word) in want {
                assert_eq!(got.get(key).map(String::as_str), Some(word), "{name}.{key}");
            }
        };
        check("STATUS", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.text())).collect());
        check("NEXT_STEP", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.next_step())).collect());
        check("CLERK_NOTE", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.clerk_note())).collect());
        check("PRINT_LABEL", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.print_label())).collect());
        check("DECISION_STATE", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.decision_state())).collect());
        check("OUTCOME", Outcome::ALL.iter().map(|o| (o.as_str(), o.name())).collect());
        check("SIGNOFF_DECISION", SignoffDecision::ALL.iter().map(|d| (d.as_str(), d.text())).collect());
        check("BOOKING_STATUS", BookingStatus::ALL.iter().map(|b| (b.as_str(), b.text())).collect());
        check("CALL_ENDED_VILLAGE", CallEndReason::ALL.iter().map(|r| (r.as_str(), r.village_text())).collect());
        check("CALL_ENDED_TOWN", CallEndReason::ALL.iter().map(|r| (r.as_str(), r.town_text())).collect());
        check("RING_STOPPED", RingStopReason::ALL.iter().map(|r| (r.as_str(), r.text())).collect());
        check("GROUP_MEMBER", MemberStatus::ALL.iter().map(|m| (m.as_str(), m.text())).collect());
        check("EVENT", EventKind::ALL.iter().map(|e| (e.as_str(), e.text())).collect());
        check("RATING", Rating::ALL.iter().map(|r| (r.as_str(), r.text())).collect());
        check("ACCESS_ACTION", AccessAction::ALL.iter().map(|a| (a.as_str(), a.text())).collect());
        assert_eq!(module.len(), tables().len(), "{:?}", module.keys());
        // Frozen, and plain module syntax (no build step).
        assert_eq!(words_module().matches("Object.freeze({").count(), tables().len());
        assert!(!words_module().contains('`') && !words_module().contains("import "));
    }

    /// The string literals of a JavaScript text ('...', "..." and `...` without `${`), unescaped
    /// only as far as the comparison needs (escapes are kept). Comments are not skipped: a word
    /// quoted in a comment counts too.
    fn string_literals(js: &str) -> Vec<String> {
        let mut out = Vec::new();
        let chars: Vec<char> = js.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            // `//` line comments: skip (they hold apostrophes in English prose).
            if c == '/' && chars.get(i + 1) == Some(&'/') {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            if matches!(c, '\'' | '"' | '`') {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        s.push(chars[i]);
                        i += 1;
                    }
                    if c != '`' && chars[i] == '\n' {
                        break; // not a literal after all (a regex or a stray quote)
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                if !(c == '`' && s.contains("${")) {
                    out.push(s);
                }
            }
            i += 1;
        }
        out
    }

    /// Object literals that are tables of words: `{ key: 'text', ... }` with two or more entries,
    /// every key a wire value of one table of `case::words` and every value Chinese text.
    /// Returns (the tables whose keys they are, the keys), once per object.
    fn word_tables_in(js: &str) -> Vec<(String, Vec<String>)> {
        let tables = tables();
        let mut found = Vec::new();
        let mut rest = js;
        while let Some(at) = rest.find('{') {
            rest = &rest[at + 1..];
            let Some(end) = rest.find('}') else { break };
            let body = &rest[..end];
            if body.contains('{') {
                continue; // not a flat object: its inner objects are looked at on their own
            }
            let mut keys = Vec::new();
            let mut all_words = true;
            for part in body.split(",\n").flat_map(|p| p.split(", ")).map(str::trim).filter(|p| !p.is_empty()) {
                let part = part.trim_end_matches(',');
                let Some((key, value)) = part.split_once(':') else {
                    all_words = false;
                    break;
                };
                let key = key.trim().trim_matches(|c| c == '\'' || c == '"');
                let value = value.trim();
                let quoted = value.len() >= 2
                    && matches!(value.chars().next(), Some('\'' | '"' | '`'))
                    && value.ends_with(value.chars().next().unwrap());
                if !quoted || !value.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
                    all_words = false;
                    break;
                }
                keys.push(key.to_string());
            }
            if !all_words || keys.len() < 2 {
                continue;
            }
            let of: Vec<&str> = tables
                .iter()
                .filter(|t| {
                    let table_keys: BTreeSet<&str> = t.entries.iter().map(|(k, _)| *k).collect();
                    keys.iter().all(|k| table_keys.contains(k.as_str()))
                })
                .map(|t| t.name)
                .collect();
            if !of.is_empty() {
                found.push((of.join("/"), keys));
            }
        }
        found
    }

    #[test]
    fn the_finders_find_what_they_look_for() {
        let js = "const A = { done: '已办结', missing: '还缺材料' };\n// it's \"审核中\"\nconst B = { done: 'x', y: '好' };\nf(`a${b}`, \"c\");";
        assert_eq!(string_literals(js), ["已办结", "还缺材料", "x", "好", "c"]);
        let found = word_tables_in(js);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].0.split('/').any(|t| t == "STATUS") && found[0].1 == ["done", "missing"], "{found:?}");
        assert!(found.iter().all(|(_, keys)| !keys.contains(&"y".to_string())));
        let multiline = "const T = {\n  booked: '约了',\n  called: '打了',\n};";
        assert_eq!(word_tables_in(multiline)[0].0, "BOOKING_STATUS");
    }

    /// No page asset carries a copy of the words: none of them is a literal of any script, and
    /// no script has an object keyed by the wire values of one of the tables with Chinese text.
    #[test]
    fn no_page_asset_carries_a_table_of_words() {
        let all = tables();
        let words: BTreeMap<&str, &str> =
            all.iter().flat_map(|t| t.entries.iter().map(|(_, word)| (*word, t.name))).collect();
        let mut copies = Vec::new();
        let mut scripts = 0;
        for path in cunneng_web::asset_paths().filter(|p| p.ends_with(".js")) {
            scripts += 1;
            let js = std::str::from_utf8(cunneng_web::asset(path).unwrap().0).unwrap();
            for literal in string_literals(js) {
                if let Some(table) = words.get(literal.as_str()) {
                    copies.push(format!("{path}: '{literal}' (a word of {table}: import it from ./words.js)"));
                }
            }
            for (table, keys) in word_tables_in(js) {
                copies.push(format!("{path}: an object keyed {keys:?} (a copy of {table}: import it from ./words.js)"));
            }
        }
        assert!(scripts > 10, "only {scripts} scripts looked at");
        assert!(copies.is_empty(), "pages carry words of case::words:\n  {}", copies.join("\n  "));
    }

    #[test]
    fn the_server_modules_are_the_routed_ones() {
        assert_eq!(cunneng_web::SERVER_MODULES, ["words.js"], "route each in api/mod.rs before /static/{{*path}}");
    }
}
