//! The browser pages of cunneng (kiosk, town window with the chief's sign-off, dispatcher,
//! login, the public progress page), embedded into the binary: plain HTML, CSS and JavaScript
//! modules with no build step.
//!
//! Routes the server gives them: `/` → `page("index")`, `/login`, `/kiosk`, `/window`,
//! `/dispatcher`, `/progress` → `page(name)` (as `text/html; charset=utf-8`), and
//! `/static/{path}` → `asset(path)`. The pages reference their assets as `/static/...` and the
//! JavaScript modules import each other relatively (`./api.js`), so everything under
//! `/static/` is flat. No page uses inline script or inline style (sizes set from scripts go
//! through the CSSOM), so a strict
//! `Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' blob:;
//! frame-src 'self' blob:` (plus `ws:`/`wss:` of the same host where browsers need it spelled
//! out) does not break them. `blob:` is needed because papers are fetched with the bearer
//! token and shown from blob: URLs (thumbnails, the viewer, PDFs in a frame, printing).

/// Names accepted by [`page`], in the order of the routes above.
pub const PAGES: &[&str] = &["index", "login", "kiosk", "window", "dispatcher", "progress"];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file served under `/static/`: (path after `/static/`, bytes, content type).
const ASSETS: &[(&str, &[u8], &str)] = &[
    ("app.css", include_bytes!("../assets/app.css"), CSS),
    ("favicon.svg", include_bytes!("../assets/favicon.svg"), SVG),
    ("api.js", include_bytes!("../assets/api.js"), JS),
    ("callview.js", include_bytes!("../assets/callview.js"), JS),
    ("camera.js", include_bytes!("../assets/camera.js"), JS),
    ("common.js", include_bytes!("../assets/common.js"), JS),
    ("dispatcher.js", include_bytes!("../assets/dispatcher.js"), JS),
    ("kiosk.js", include_bytes!("../assets/kiosk.js"), JS),
    ("kioskcase.js", include_bytes!("../assets/kioskcase.js"), JS),
    ("kiosktools.js", include_bytes!("../assets/kiosktools.js"), JS),
    ("login.js", include_bytes!("../assets/login.js"), JS),
    ("media.js", include_bytes!("../assets/media.js"), JS),
    ("papers.js", include_bytes!("../assets/papers.js"), JS),
    ("print.js", include_bytes!("../assets/print.js"), JS),
    ("progress.js", include_bytes!("../assets/progress.js"), JS),
    ("progressform.js", include_bytes!("../assets/progressform.js"), JS),
    ("qr.js", include_bytes!("../assets/qr.js"), JS),
    ("upload.js", include_bytes!("../assets/upload.js"), JS),
    ("window.js", include_bytes!("../assets/window.js"), JS),
    ("windowcase.js", include_bytes!("../assets/windowcase.js"), JS),
    ("ws.js", include_bytes!("../assets/ws.js"), JS),
];

/// The content type of the HTML pages.
pub const PAGE_CONTENT_TYPE: &str = HTML;

/// The HTML of a page by name (`index`, `login`, `kiosk`, `window`, `dispatcher`, `progress`).
pub fn page(name: &str) -> Option<&'static str> {
    match name {
        "index" => Some(include_str!("../assets/index.html")),
        "login" => Some(include_str!("../assets/login.html")),
        "kiosk" => Some(include_str!("../assets/kiosk.html")),
        "window" => Some(include_str!("../assets/window.html")),
        "dispatcher" => Some(include_str!("../assets/dispatcher.html")),
        "progress" => Some(include_str!("../assets/progress.html")),
        _ => None,
    }
}

/// A static file and its content type, by its path under `/static/` (`"app.css"`; a leading
/// `/static/` is accepted too). Unknown paths, including any with `..`, give `None`.
pub fn asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    let path = path.strip_prefix("/static/").unwrap_or(path);
    ASSETS.iter().find(|(name, _, _)| *name == path).map(|(_, bytes, content_type)| (*bytes, *content_type))
}

/// Paths of all static files (for listing or pre-compression by the server).
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Values of `attr="..."` in an HTML text.
    fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        let needle = format!("{attr}=\"");
        let mut out = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            let after = &rest[at + needle.len()..];
            let end = after.find('"').expect("unterminated attribute");
            // Only real attributes: the character before must be whitespace.
            let before = rest[..at].chars().last();
            if before.is_some_and(char::is_whitespace) {
                out.push(&after[..end]);
            }
            rest = &after[end..];
        }
        out
    }

    /// Relative module specifiers of `import ... from './x.js'` and `import './x.js'`.
    fn imports(js: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for line in js.lines() {
            let line = line.trim();
            let spec = if line.starts_with("import ") || line.starts_with("} from ") {
                line.rsplit_once(" from ").map(|(_, s)| s).or_else(|| line.strip_prefix("import "))
            } else {
                None
            };
            if let Some(spec) = spec {
                let spec = spec.trim_end_matches(';').trim_matches(|c| c == '\'' || c == '"');
                if spec.starts_with("./") {
                    out.push(spec);
                }
            }
        }
        out
    }

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).expect(path).0).expect("UTF-8")
    }

    #[test]
    fn every_page_exists_and_is_chinese_html() {
        for name in PAGES {
            let html = page(name).unwrap_or_else(|| panic!("page {name}"));
            assert!(html.starts_with("<!doctype html>"), "{name}");
            assert!(html.contains("<html lang=\"zh-CN\">"), "{name}");
            assert!(html.contains("<meta charset=\"utf-8\">"), "{name}");
            assert!(!html.contains("<script>") && !html.contains(" style=\""), "{name}: no inline script or style");
        }
        assert_eq!(page("admin"), None);
        assert_eq!(page(""), None);
    }

    #[test]
    fn every_referenced_asset_exists_and_every_asset_is_used() {
        let mut used = BTreeSet::new();
        let mut modules: Vec<&str> = Vec::new();
        for name in PAGES {
            let html = page(name).unwrap();
            for value in attribute_values(html, "src").into_iter().chain(attribute_values(html, "href")) {
                if let Some(path) = value.strip_prefix("/static/") {
                    assert!(asset(path).is_some(), "page {name} references missing /static/{path}");
                    used.insert(path);
                    if path.ends_with(".js") {
                        modules.push(path);
                    }
                } else if value.starts_with('/') {
                    let target = value.trim_start_matches('/');
                    let target = if target.is_empty() { "index" } else { target };
                    assert!(page(target).is_some(), "page {name} links to unknown page {value}");
                } else {
                    panic!("page {name}: use same-origin absolute paths, not {value:?}");
                }
            }
        }
        // Follow the module graph.
        while let Some(module) = modules.pop() {
            for spec in imports(text(module)) {
                let path = spec.trim_start_matches("./");
                assert!(asset(path).is_some(), "{module} imports missing {spec}");
                if used.insert(path) {
                    modules.push(path);
                }
            }
        }
        let all: BTreeSet<_> = asset_paths().collect();
        let unused: Vec<_> = all.difference(&used).collect();
        assert!(unused.is_empty(), "assets nothing references: {unused:?}");
    }

    #[test]
    fn asset_lookup_and_content_types() {
        assert_eq!(asset("app.css").unwrap().1, "text/css; charset=utf-8");
        assert_eq!(asset("/static/kiosk.js").unwrap().1, "text/javascript; charset=utf-8");
        assert_eq!(asset("favicon.svg").unwrap().1, "image/svg+xml");
        for bad in ["", "/", "nope.js", "../Cargo.toml", "static/app.css", "/static/../src/lib.rs", "APP.CSS"] {
            assert!(asset(bad).is_none(), "{bad:?}");
        }
        for path in asset_paths() {
            assert!(!asset(path).unwrap().0.is_empty(), "{path} is empty");
        }
    }

    /// The browser tests find elements by these data-testid names; keep them stable.
    #[test]
    fn test_ids_are_present() {
        let sources = |page_name: &str, scripts: &[&str]| {
            let mut all = page(page_name).unwrap().to_string();
            for script in scripts {
                all.push_str(text(script));
            }
            all
        };
        let kiosk = sources("kiosk", &["kiosk.js", "kioskcase.js", "kiosktools.js", "papers.js", "print.js"]);
        let window = sources("window", &["window.js", "windowcase.js", "papers.js"]);
        let dispatcher = sources("dispatcher", &["dispatcher.js"]);
        let progress = sources("progress", &["progress.js", "progressform.js"]);
        let has = |src: &str, id: &str| {
            src.contains(&format!("data-testid=\"{id}\"")) || src.contains(&format!("testid: '{id}'"))
        };
        for id in [
            "matter-search",
            "matter-option",
            "call-button",
            "queue-position",
            "cancel-button",
            "local-video",
            "remote-video",
            "hangup-button",
            "incoming-call",
            "accept-call-button",
            "connection-status",
            // Papers and decisions (issue 4).
            "scan-upload",
            "capture-still",
            "material-item",
            "checklist-item",
            "rescan-request",
            "outcome-banner",
            "print-button",
            "rating-good",
            "rating-fair",
            "rating-bad",
            "case-number",
            "progress-lookup",
            "villager-name",
            "villager-phone",
            "villager-id",
            "villager-save",
            "capture-shoot",
            "print-sheet",
            "inbox-button",
            "inbox-item",
            "resume-case",
            "resume-continue",
            "booking-open",
            "booking-slot",
            "booking-confirm",
        ] {
            assert!(has(&kiosk, id), "kiosk lacks {id}");
        }
        for id in [
            "presence-toggle",
            "queue-item",
            "answer-button",
            "transfer-button",
            "local-video",
            "remote-video",
            "hangup-button",
            "connection-status",
            // Papers and decisions (issue 4), and the chief's sign-off on the same page.
            "material-item",
            "checklist-item",
            "rescan-request",
            "outcome-done",
            "outcome-missing",
            "outcome-refused",
            "outcome-later",
            "result-upload",
            "outcome-confirm",
            "outcome-note",
            "decision-state",
            "signoff-approve",
            "signoff-return",
            "signoff-return-confirm",
            "signoff-item",
            "later-case",
            "finish-button",
            "booking-item",
            "paper-viewer",
        ] {
            assert!(has(&window, id), "window lacks {id}");
        }
        for id in ["progress-lookup", "progress-case", "progress-phone4", "progress-submit", "progress-result"] {
            assert!(has(&progress, id), "progress page lacks {id}");
        }
        for id in ["village-checkbox", "group-start-button", "hangup-button", "local-video", "connection-status"] {
            assert!(has(&dispatcher, id), "dispatcher lacks {id}");
        }
    }
}
