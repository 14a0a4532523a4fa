//! Builds the web UI in `web/` (npm) into `OUT_DIR/site` and generates
//! `OUT_DIR/assets.rs`, the table of embedded files that `src/assets.rs` includes.
//!
//! This script must never fail the cargo build because Node.js is missing or the npm
//! build broke: the Rust side of Starling has to build everywhere. In that case it
//! embeds a one-page fallback that says how to get the real UI, prints a
//! `cargo:warning`, and asks cargo to run it again on the next build.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

const FALLBACK_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Starling</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5">
<h1>Starling</h1>
<p>The web UI was not built: install Node.js and npm (apt-get install nodejs npm) and rebuild.</p>
<p>Playback still works: open <code>/live/CHANNEL/index.m3u8</code> in VLC, ffplay or Safari.</p>
</body>
</html>
"#;

/// One file to embed, as the generated table will describe it.
struct Entry {
    name: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

fn main() {
    if let Err(err) = run() {
        // Only I/O on OUT_DIR gets here: a broken build environment, not a missing npm.
        panic!("starling-web build script: {err}");
    }
}

fn run() -> io::Result<()> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let web = manifest_dir.join("../../../web");
    for input in ["src", "build.mjs", "package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=NPM");
    let npm = env::var("NPM").unwrap_or_else(|_| "npm".to_owned());
    let npm_found = Command::new(&npm)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());

    let site = out_dir.join("site");
    let built = if npm_found {
        build_site(&npm, &web, &site)
    } else {
        Err(format!("`{npm}` was not found"))
    };

    let (pages, assets) = match built
        .and_then(|()| collect(&site).map_err(|e| format!("reading {}: {e}", site.display())))
    {
        Ok(found) => found,
        Err(why) => {
            println!(
                "cargo:warning=starling-web: the web UI was not built ({why}); embedding a fallback page. \
                 Install Node.js and npm (apt-get install nodejs npm) and rebuild."
            );
            // A path that never exists makes cargo rerun this script on every build,
            // so the real UI appears as soon as npm works, without touching web/.
            println!(
                "cargo:rerun-if-changed={}",
                out_dir.join("retry-until-npm-works").display()
            );
            let fallback = out_dir.join("fallback.html");
            fs::write(&fallback, FALLBACK_PAGE)?;
            let page = |name: &str| Entry {
                name: name.to_owned(),
                path: fallback.clone(),
                bytes: FALLBACK_PAGE.as_bytes().to_vec(),
            };
            return write_table(
                &out_dir,
                false,
                npm_found,
                &[page("index.html"), page("watch.html"), page("admin.html")],
                &[],
            );
        }
    };
    write_table(&out_dir, true, npm_found, &pages, &assets)
}

/// `npm ci` when node_modules is missing or older than the lock file, then `npm run build`.
fn build_site(npm: &str, web: &Path, site: &Path) -> Result<(), String> {
    let lock = web.join("package-lock.json");
    if !lock.is_file() {
        return Err(format!("{} is missing", lock.display()));
    }
    // npm writes node_modules/.package-lock.json at the end of every install.
    let installed = web.join("node_modules").join(".package-lock.json");
    if mtime(&installed) < mtime(&lock) {
        let out = Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(web)
            .output()
            .map_err(|e| format!("running `{npm} ci`: {e}"))?;
        check(&out, "npm ci")?;
    }
    let out = Command::new(npm)
        .args(["run", "build"])
        .current_dir(web)
        .env("STARLING_WEB_OUT", site)
        .output()
        .map_err(|e| format!("running `{npm} run build`: {e}"))?;
    check(&out, "npm run build")
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn check(out: &Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
    Err(format!("`{what}` failed with {}: {tail}", out.status))
}

/// The pages (`*.html` at the top of the site) and the assets (`assets/*`).
fn collect(site: &Path) -> io::Result<(Vec<Entry>, Vec<Entry>)> {
    let pages = read_dir_files(site)?
        .into_iter()
        .filter(|e| e.name.ends_with(".html"))
        .collect::<Vec<_>>();
    let assets = read_dir_files(&site.join("assets"))?;
    for required in ["index.html", "watch.html", "admin.html"] {
        if !pages.iter().any(|p| p.name == required) {
            return Err(io::Error::other(format!(
                "the build did not produce {required}"
            )));
        }
    }
    Ok((pages, assets))
}

fn read_dir_files(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Names become URL path segments; keep them boring.
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            println!("cargo:warning=starling-web: not embedding {name:?}: unusual file name");
            continue;
        }
        let path = entry.path();
        let bytes = fs::read(&path)?;
        files.push(Entry { name, path, bytes });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `name.0123456789.ext`: the content hash that build.mjs puts in every asset name.
fn is_hashed(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 3
        && parts
            .get(parts.len() - 2)
            .is_some_and(|h| h.len() >= 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart for an ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn write_table(
    out_dir: &Path,
    built: bool,
    npm_found: bool,
    pages: &[Entry],
    assets: &[Entry],
) -> io::Result<()> {
    let mut code = String::new();
    let _ = writeln!(
        code,
        "// Generated by crates/app/web/build.rs; do not edit."
    );
    let _ = writeln!(
        code,
        "/// Whether the npm build succeeded (false: the fallback page is embedded)."
    );
    let _ = writeln!(code, "pub const BUILT: bool = {built};");
    let _ = writeln!(
        code,
        "/// Whether npm could be run when this crate was built."
    );
    let _ = writeln!(code, "#[allow(dead_code)] // read by the tests");
    let _ = writeln!(code, "pub const NPM_FOUND: bool = {npm_found};");
    for (table, entries) in [("PAGES", pages), ("ASSETS", assets)] {
        let _ = writeln!(code, "pub(crate) static {table}: &[Asset] = &[");
        for e in entries {
            let _ = writeln!(
                code,
                "    Asset {{ name: {:?}, content_type: {:?}, etag: {:?}, immutable: {}, bytes: include_bytes!({:?}) }},",
                e.name,
                content_type(&e.name),
                format!("\"{:016x}\"", fnv1a(&e.bytes)),
                is_hashed(&e.name),
                e.path.display().to_string(),
            );
        }
        let _ = writeln!(code, "];");
    }
    fs::write(out_dir.join("assets.rs"), code)
}
