//! The browser pages of cunneng (kiosk, town window with the chief's sign-off, dispatcher,
//! login, the public progress page, the supervisors' review and statistics, the county
//! administrator's page), embedded into the
//! binary: plain HTML, CSS and JavaScript modules with no build step.
//!
//! Third-party code is not copied into the repository: [`VENDORED`] files come from npm,
//! pinned by `web/package-lock.json` and installed by `npm ci` in `web/` (the setup scripts do
//! it; `build.rs` fails with "run npm ci in web/" when they are missing), and are embedded from
//! `web/node_modules` like the rest (Apache ECharts for the statistics page's charts).
//!
//! Routes the server gives them: `/` → `page("index")`, `/login`, `/kiosk`, `/window`,
//! `/dispatcher`, `/progress`, `/review`, `/stats`, `/admin` → `page(name)` (as `text/html; charset=utf-8`), and
//! `/static/{path}` → `asset(path)`, except the modules of [`SERVER_MODULES`], which the server
//! renders itself (`/static/words.js`: every status and reason word the pages show). The pages reference their assets as `/static/...` and the
//! JavaScript modules import each other relatively (`./api.js`), so everything under
//! `/static/` is flat. No page uses inline script or inline style (sizes set from scripts go
//! through the CSSOM; ECharts sets its own sizes that way too and draws its tooltips on the
//! canvas, `renderMode: 'richText'`, because its HTML tooltips carry inline styles), so a strict
//! `Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' blob:;
//! frame-src 'self' blob:` (plus `ws:`/`wss:` of the same host where browsers need it spelled
//! out) does not break them. `blob:` is needed because papers are fetched with the bearer
//! token and shown from blob: URLs (thumbnails, the viewer, PDFs in a frame, printing).
//!
//! [`security_headers`] gives that policy and the other headers every response of the server
//! should carry; the server adds them to every response (`signaling/src/api/pages.rs`) and the
//! browser tests fail on any CSP violation.

/// Names accepted by [`page`], in the order of the routes above.
pub const PAGES: &[&str] = &["index", "login", "kiosk", "window", "dispatcher", "progress", "review", "stats", "admin"];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file served under `/static/`: (path after `/static/`, bytes, content type).
const ASSETS: &[(&str, &[u8], &str)] = &[
    ("app.css", include_bytes!("../assets/app.css"), CSS),
    ("favicon.svg", include_bytes!("../assets/favicon.svg"), SVG),
    ("admin.js", include_bytes!("../assets/admin.js"), JS),
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
    ("ledger.js", include_bytes!("../assets/ledger.js"), JS),
    ("papers.js", include_bytes!("../assets/papers.js"), JS),
    ("pending.js", include_bytes!("../assets/pending.js"), JS),
    ("print.js", include_bytes!("../assets/print.js"), JS),
    ("progress.js", include_bytes!("../assets/progress.js"), JS),
    ("progressform.js", include_bytes!("../assets/progressform.js"), JS),
    ("replay.js", include_bytes!("../assets/replay.js"), JS),
    ("review.js", include_bytes!("../assets/review.js"), JS),
    ("staffpage.js", include_bytes!("../assets/staffpage.js"), JS),
    ("stats.js", include_bytes!("../assets/stats.js"), JS),
    ("upload.js", include_bytes!("../assets/upload.js"), JS),
    ("window.js", include_bytes!("../assets/window.js"), JS),
    ("windowcase.js", include_bytes!("../assets/windowcase.js"), JS),
    ("ws.js", include_bytes!("../assets/ws.js"), JS),
    // Vendored (npm, web/package-lock.json): a classic script defining the global `echarts`.
    ("echarts.min.js", include_bytes!("../node_modules/echarts/dist/echarts.min.js"), JS),
];

/// Files of [`asset_paths`] that are third-party code from npm (`web/package.json`), not ours:
/// the checks of our own modules (imports, words, type check) leave them alone.
pub const VENDORED: &[&str] = &["echarts.min.js"];

/// Modules the pages import that are not files of this crate: the server renders them
/// (`/static/words.js`: the words of `signaling/src/case/words.rs`, statuses, outcomes, call-end
/// reasons, ..., keyed by their wire values), so that the pages carry no copy of them.
/// [`asset`] does not know them; the server routes them before `/static/{path}`.
pub const SERVER_MODULES: &[&str] = &["words.js"];

/// The content type of JavaScript modules (assets and [`SERVER_MODULES`]).
pub const SCRIPT_CONTENT_TYPE: &str = JS;

/// The content type of the HTML pages.
pub const PAGE_CONTENT_TYPE: &str = HTML;

/// The HTML of a page by name (`index`, `login`, `kiosk`, `window`, `dispatcher`, `progress`,
/// `review`, `stats`, `admin`).
pub fn page(name: &str) -> Option<&'static str> {
    match name {
        "index" => Some(include_str!("../assets/index.html")),
        "login" => Some(include_str!("../assets/login.html")),
        "kiosk" => Some(include_str!("../assets/kiosk.html")),
        "window" => Some(include_str!("../assets/window.html")),
        "dispatcher" => Some(include_str!("../assets/dispatcher.html")),
        "progress" => Some(include_str!("../assets/progress.html")),
        "review" => Some(include_str!("../assets/review.html")),
        "stats" => Some(include_str!("../assets/stats.html")),
        "admin" => Some(include_str!("../assets/admin.html")),
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

/// The Content-Security-Policy of every page, for a request to `host`: the policy described
/// at the top of this crate, plus
/// - `ws://HOST wss://HOST` in `connect-src`: CSP Level 3 lets `'self'` match the page's own
///   host over ws:/wss:, older browsers (Safari before 15.4, old Chromium on village PCs) need
///   it spelled out. Only the request's own host is added, never the bare schemes (which would
///   allow any host); a `host` that is not a plain `name[:port]` / `[v6]:port` adds nothing;
/// - `frame-ancestors 'none'`: no other site may frame the pages (clickjacking). Our own
///   blob: frames (PDFs) are governed by `frame-src`, not by this;
/// - `base-uri 'self'`, `form-action 'self'`: no `<base>` or form can point elsewhere;
/// - `object-src 'none'`: no plugins (PDFs are shown by the browser in a frame, which
///   `frame-src` covers).
pub fn content_security_policy(host: Option<&str>) -> String {
    let mut connect = String::from("'self'");
    if let Some(host) = host.filter(|h| is_plain_host(h)) {
        connect.push_str(&format!(" ws://{host} wss://{host}"));
    }
    format!(
        "default-src 'self'; connect-src {connect}; img-src 'self' blob:; frame-src 'self' blob:; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `name`, `name:port`, `1.2.3.4:port` or `[v6]:port`: nothing that could end a CSP source
/// expression or directive.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The headers every response of the server should carry (pages, assets, API), for a request
/// to `host` (its `Host` header or URI authority): (name, value), names in lower case.
///
/// - `content-security-policy`: [`content_security_policy`];
/// - `x-content-type-options: nosniff`: no content sniffing (papers are served with their
///   checked type, pages and scripts with theirs);
/// - `referrer-policy: no-referrer`: nothing the pages do needs a Referer (the server reads
///   none), and the progress page's address carries a case number (`/progress?case=...`),
///   which must not leak to anywhere a link or a resource might lead; `same-origin` would
///   only tell our own server what it already knows;
/// - `x-frame-options: DENY`: `frame-ancestors 'none'` for browsers without CSP Level 2;
/// - `permissions-policy`: camera and microphone for our own pages only (the kiosk, window
///   and dispatcher pages need them; no frame gets them), and a few powerful features nobody
///   uses switched off.
pub fn security_headers(host: Option<&str>) -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", content_security_policy(host)),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        ("x-frame-options", "DENY".into()),
        (
            "permissions-policy",
            "camera=(self), microphone=(self), display-capture=(), geolocation=(), payment=(), usb=()".into(),
        ),
    ]
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
    fn security_headers_are_the_documented_policy() {
        let headers = security_headers(Some("127.0.0.1:8080"));
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap();
        let csp = get("content-security-policy");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for d in [
            "default-src 'self'",
            "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080",
            "img-src 'self' blob:",
            "frame-src 'self' blob:",
            "frame-ancestors 'none'",
        ] {
            assert!(directives.contains(&d), "{d:?} missing from {csp}");
        }
        // Nothing that would let an injected script or style run, and no wildcard sockets.
        for bad in ["unsafe-inline", "unsafe-eval", "*", " ws: ", " wss: ", "data:"] {
            assert!(!csp.contains(bad), "{bad:?} in {csp}");
        }
        assert_eq!(get("x-content-type-options"), "nosniff");
        assert_eq!(get("referrer-policy"), "no-referrer");
        assert_eq!(get("x-frame-options"), "DENY");
        assert!(get("permissions-policy").contains("camera=(self), microphone=(self)"));
        for (name, value) in &headers {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{name}");
            assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)), "{name}: {value}");
        }
        // IPv6 and plain names are kept; anything that could break out of the policy is not.
        assert!(content_security_policy(Some("[::1]:9000")).contains("ws://[::1]:9000 wss://[::1]:9000;"));
        assert!(content_security_policy(Some("cunneng.example")).contains("wss://cunneng.example;"));
        for bad in ["evil.example; script-src *", "a b", "x'y", "", "a/b", "a,b"] {
            let csp = content_security_policy(Some(bad));
            assert_eq!(csp, content_security_policy(None), "{bad:?}");
        }
        assert!(content_security_policy(None).contains("connect-src 'self';"));
    }

    // ---- pages cannot drift from the protocol ----------------------------------------------

    const PROTOCOL: &str = include_str!("../../docs/protocol.md");
    const CASES_API: &str = include_str!("../../docs/cases-api.md");

    /// The cells of each body row of the first markdown table under the heading (of any
    /// level) that starts with `heading`. `\|` inside a cell is not a separator.
    fn table_rows<'a>(doc: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
        let is_heading = |l: &str| l.starts_with('#') && l.trim_start_matches('#').trim_start().starts_with(heading);
        let mut lines = doc.lines().skip_while(|l| !is_heading(l));
        let wanted = heading;
        assert!(lines.next().is_some(), "no heading {wanted:?} in the document");
        let table = lines
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            // The header row and the |---| row.
            .skip(2);
        let mut rows = Vec::new();
        for line in table {
            let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
            let mut cells = Vec::new();
            let mut start = 0;
            let bytes = inner.as_bytes();
            for i in 0..bytes.len() {
                if bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\') {
                    cells.push(inner[start..i].trim());
                    start = i + 1;
                }
            }
            cells.push(inner[start..].trim());
            rows.push(cells);
        }
        assert!(!rows.is_empty(), "the table under {wanted:?} has no rows");
        rows
    }

    /// The text of the first `code` span of a cell.
    fn first_code(cell: &str) -> Option<&str> {
        let (_, rest) = cell.split_once('`')?;
        Some(rest.split_once('`')?.0)
    }

    /// Message types of a "Server → ..." table (the first column of each row).
    fn server_types(heading: &str) -> BTreeSet<&'static str> {
        table_rows(PROTOCOL, heading)
            .iter()
            .map(|cells| first_code(cells[0]).unwrap_or_else(|| panic!("{heading}: a row without a type: {cells:?}")))
            .collect()
    }

    /// Server messages of the media table: its rows written "server `type`" (the others are
    /// sent by the client).
    fn media_server_types() -> BTreeSet<&'static str> {
        table_rows(PROTOCOL, "Anyone in a call (media)")
            .iter()
            .filter(|cells| cells[0].starts_with("server "))
            .filter_map(|cells| first_code(cells[0]))
            .collect()
    }

    /// The JavaScript modules a page loads: its `<script src="/static/...">` and every module
    /// those import, transitively.
    fn page_modules(name: &str) -> BTreeSet<&'static str> {
        let html = page(name).unwrap();
        let mut todo: Vec<&str> = attribute_values(html, "src")
            .into_iter()
            .filter_map(|v| v.strip_prefix("/static/"))
            .filter(|p| p.ends_with(".js"))
            .collect();
        assert!(!todo.is_empty(), "page {name} loads no script");
        let mut seen = BTreeSet::new();
        while let Some(module) = todo.pop() {
            if SERVER_MODULES.contains(&module) || VENDORED.contains(&module) {
                continue; // rendered by the server, or third-party: neither registers handlers
            }
            let module = asset_paths().find(|p| *p == module).unwrap_or_else(|| panic!("{name}: missing {module}"));
            if seen.insert(module) {
                todo.extend(imports(text(module)).into_iter().map(|s| s.trim_start_matches("./")));
            }
        }
        seen
    }

    /// JavaScript without its comments (`/* ... */` and whole `// ...` lines), so that a
    /// handler that is commented out does not count.
    fn without_comments(js: &str) -> String {
        let mut out = String::with_capacity(js.len());
        let mut rest = js;
        while let Some(at) = rest.find("/*") {
            out.push_str(&rest[..at]);
            rest = rest[at..].split_once("*/").map_or("", |(_, after)| after);
        }
        out.push_str(rest);
        out.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
    }

    /// Types a module registers a handler for: `x.on('type', ...)` (the `Signal.on` of
    /// ws.js; nothing else in the pages has an `on` method).
    fn registered_types(js: &str) -> BTreeSet<String> {
        let js = without_comments(js);
        let mut out = BTreeSet::new();
        let mut rest = js.as_str();
        while let Some(at) = rest.find(".on(") {
            rest = &rest[at + 4..];
            let arg = rest.trim_start();
            let Some(quote) = arg.chars().next().filter(|c| matches!(c, '\'' | '"' | '`')) else { continue };
            if let Some((ty, _)) = arg[1..].split_once(quote) {
                out.insert(ty.to_string());
            }
        }
        out
    }

    /// Server messages each page receives, from the tables of docs/protocol.md.
    fn received_by_page() -> Vec<(&'static str, BTreeSet<&'static str>)> {
        let media = media_server_types();
        [("kiosk", "Server → kiosk"), ("window", "Server → approver"), ("dispatcher", "Server → dispatcher")]
            .into_iter()
            .map(|(page_name, heading)| (page_name, server_types(heading).union(&media).copied().collect()))
            .collect()
    }

    /// Handled by ws.js itself for every page, or the client's own pseudo-messages.
    const GENERIC: &[&str] = &["welcome", "replaced", "error", "ok", "pong", "ws.closed", "*"];

    #[test]
    fn protocol_tables_parse() {
        // If the document's layout changes, the test below must not silently check nothing.
        let kiosk = server_types("Server → kiosk");
        for ty in ["queue.position", "call.started", "call.requeued", "group.invite", "group.invite_expired", "outcome"]
        {
            assert!(kiosk.contains(ty), "kiosk table lacks {ty}: {kiosk:?}");
        }
        assert!(!kiosk.contains("call.request"), "a client message in a server table");
        let approver = server_types("Server → approver");
        for ty in
            ["presence", "queue.snapshot", "call.ring", "call.peer_reconnected", "paper.added", "signoff.requested"]
        {
            assert!(approver.contains(ty), "approver table lacks {ty}: {approver:?}");
        }
        assert_eq!(server_types("Server → dispatcher"), BTreeSet::from(["group.state", "group.ended"]));
        assert_eq!(media_server_types(), BTreeSet::from(["media.answer", "media.renegotiate"]));
        assert_eq!(
            registered_types("s.on('a', f); s.on( \"b\", g);\n// s.on('c', h);\n/* s.on('d') */ x.on(`e`)"),
            ["a", "b", "e"].into_iter().map(String::from).collect()
        );
        assert!(page_modules("kiosk").contains("media.js") && page_modules("kiosk").contains("ws.js"));
    }

    /// cases-api.md documents the case pushes with a `to` column; protocol.md's per-page tables
    /// (the one source the page test reads) must list each for the same receivers.
    #[test]
    fn case_pushes_are_in_the_page_tables_of_their_receivers() {
        let kiosk = server_types("Server → kiosk");
        let approver = server_types("Server → approver");
        let mut wrong = Vec::new();
        let rows = table_rows(CASES_API, "WebSocket additions (server → client)");
        assert!(rows.len() >= 6, "{rows:?}");
        for cells in rows {
            let ty = first_code(cells[0]).expect("type");
            let to = cells[1];
            let mut tables = Vec::new();
            if to.contains("kiosk") {
                tables.push(("kiosk", &kiosk));
            }
            if to.contains("approver") || to.contains("chief") {
                tables.push(("approver", &approver));
            }
            assert!(!tables.is_empty(), "cases-api.md: {ty} goes to {to:?}: which page is that?");
            for (name, table) in tables {
                if !table.contains(ty) {
                    wrong.push(format!("{ty} (to {to}) is not in protocol.md's \"Server → {name}\" table"));
                }
            }
        }
        assert!(wrong.is_empty(), "docs disagree:\n  {}", wrong.join("\n  "));
    }

    /// Every server message docs/protocol.md lists for a page has a handler in that page's
    /// modules, and a page handles no message type that its table does not list (a typo, or a
    /// message the server never sends it).
    #[test]
    fn every_page_handles_every_message_it_receives() {
        let mut missing = Vec::new();
        let mut unknown = Vec::new();
        for (page_name, receives) in received_by_page() {
            let modules = page_modules(page_name);
            let handled: BTreeSet<String> = modules.iter().flat_map(|m| registered_types(text(m))).collect();
            let lacking: Vec<&str> = receives.iter().filter(|ty| !handled.contains(**ty)).copied().collect();
            if !lacking.is_empty() {
                missing.push(format!("{page_name}: {}", lacking.join(", ")));
            }
            let extra: Vec<&str> = handled
                .iter()
                .map(String::as_str)
                .filter(|ty| !receives.contains(ty) && !GENERIC.contains(ty))
                .collect();
            if !extra.is_empty() {
                unknown.push(format!("{page_name}: {}", extra.join(", ")));
            }
        }
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "pages out of step with docs/protocol.md.\nno handler (signal.on) for a message the page receives:\n  {}\nhandlers for types its table does not list:\n  {}",
            if missing.is_empty() { "(none)".to_string() } else { missing.join("\n  ") },
            if unknown.is_empty() { "(none)".to_string() } else { unknown.join("\n  ") },
        );
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
        assert_eq!(page("settings"), None);
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
        let mut server_modules_used = BTreeSet::new();
        while let Some(module) = modules.pop() {
            if VENDORED.contains(&module) {
                continue; // a classic script of its own, importing nothing of ours
            }
            for spec in imports(text(module)) {
                let path = spec.trim_start_matches("./");
                if SERVER_MODULES.contains(&path) {
                    server_modules_used.insert(path);
                    continue;
                }
                assert!(asset(path).is_some(), "{module} imports missing {spec}");
                if used.insert(path) {
                    modules.push(path);
                }
            }
        }
        let all: BTreeSet<_> = asset_paths().collect();
        let unused: Vec<_> = all.difference(&used).collect();
        assert!(unused.is_empty(), "assets nothing references: {unused:?}");
        // The server's modules are imported by some page and are not also files here.
        for module in SERVER_MODULES {
            assert!(server_modules_used.contains(module), "no page imports the server's {module}");
            assert!(asset(module).is_none(), "{module} is rendered by the server: no file of that name");
        }
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
        for path in VENDORED {
            assert!(asset(path).is_some(), "vendored {path} is not an asset");
        }
        // ECharts as npm builds it: the UMD bundle that defines the global the page uses.
        let echarts = text("echarts.min.js");
        assert!(echarts.len() > 500_000 && echarts.contains("echarts"), "echarts.min.js is not the ECharts bundle");
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
        let review = sources("review", &["review.js", "replay.js", "papers.js"]);
        let stats = sources("stats", &["stats.js"]);
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
        // The review (issue 8).
        for id in [
            "review-query",
            "review-search",
            "review-result",
            "playback-video",
            "playback-play",
            "playback-seek",
            "timeline-event",
            "access-entry",
            "hold-place",
            "hold-lift",
            "export-case",
            "paper-viewer",
        ] {
            assert!(has(&review, id), "review page lacks {id}");
        }
        // The statistics (issue 9): a chart container per chart, an export button per format.
        for id in
            ["stats-chart", "stats-export", "stats-table", "stats-kpi", "stats-row", "stats-comment", "nav-review"]
        {
            assert!(has(&stats, id), "stats page lacks {id}");
        }
        for (kind, format) in
            [("data-kind=\"series\"", "data-format=\"xlsx\""), ("data-kind=\"breakdown\"", "data-format=\"csv\"")]
        {
            assert!(stats.contains(kind) && stats.contains(format), "stats page lacks {kind} or {format}");
        }
        assert!(has(&review, "nav-stats"), "the review page does not link to the statistics");
        // The administration (issue 9): a section per kind of item, its controls, the enrolment code.
        let admin = sources("admin", &["admin.js"]);
        for id in
            ["admin-section", "admin-new", "admin-save", "admin-disable", "admin-delete", "admin-status", "enrol-code"]
        {
            assert!(has(&admin, id), "admin page lacks {id}");
        }
        for kind in ["towns", "villages", "windows", "matters", "users", "kiosks"] {
            assert!(
                admin.contains(&format!("data-testid=\"admin-section\" data-kind=\"{kind}\"")),
                "admin page lacks the section of {kind}"
            );
        }
    }
}
