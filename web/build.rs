//! The third-party browser code this crate embeds comes from npm, pinned by
//! `web/package-lock.json` and installed by `npm ci` in `web/` (the setup of
//! `scripts/demo.sh` and `scripts/test.sh` runs it), never copied into the repository. This
//! checks it is there, at the locked version, before `include_bytes!` would fail less clearly.

use std::path::Path;

/// (npm package, file embedded from its directory).
const EMBEDDED: &[(&str, &str)] = &[("echarts", "dist/echarts.min.js")];

/// The `"version"` of the first `"name": {` object in a package.json or package-lock.json text:
/// the lock's `"node_modules/echarts"` entry, or the top of a package's own package.json (key `""`).
fn version_in(json: &str, key: &str) -> Option<String> {
    let rest = if key.is_empty() { json } else { &json[json.find(&format!("\"{key}\": {{"))?..] };
    let at = rest.find("\"version\"")?;
    let value = rest[at + "\"version\"".len()..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=package-lock.json");
    let lock = std::fs::read_to_string(dir.join("package-lock.json")).unwrap_or_default();
    let mut problems = Vec::new();
    for (package, file) in EMBEDDED {
        let path = dir.join("node_modules").join(package).join(file);
        let manifest = dir.join("node_modules").join(package).join("package.json");
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rerun-if-changed={}", manifest.display());
        if !path.is_file() {
            problems.push(format!("web/node_modules/{package}/{file} is missing"));
            continue;
        }
        let locked = version_in(&lock, &format!("node_modules/{package}"));
        let installed = std::fs::read_to_string(&manifest).ok().and_then(|m| version_in(&m, ""));
        if locked.is_none() || locked != installed {
            problems.push(format!(
                "web/node_modules/{package} is version {} but web/package-lock.json locks {}",
                installed.as_deref().unwrap_or("?"),
                locked.as_deref().unwrap_or("?")
            ));
        }
    }
    if !problems.is_empty() {
        eprintln!(
            "error: {}: run npm ci in web/ (cd web && npm ci), as ./scripts/test.sh and ./scripts/demo.sh do",
            problems.join("; ")
        );
        std::process::exit(1);
    }
}
