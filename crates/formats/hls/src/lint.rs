//! A line checker: an independent reading of the playlist grammar (4.1, 4.2) and of
//! the tag placement rules, stricter than `m3u8-rs` (which ignores the LL-HLS tags).
//! Tests use it, and the origin runs it on every playlist it renders in debug builds.

use std::collections::HashSet;

/// What a well-formed playlist turned out to contain.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub segments: usize,
    pub parts: usize,
    pub skipped: Option<u64>,
    pub variants: usize,
}

const HEADER_TAGS: &[&str] = &[
    "EXT-X-VERSION",
    "EXT-X-TARGETDURATION",
    "EXT-X-MEDIA-SEQUENCE",
    "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-PLAYLIST-TYPE",
    "EXT-X-INDEPENDENT-SEGMENTS",
    "EXT-X-SERVER-CONTROL",
    "EXT-X-PART-INF",
];
const FLOAT_ATTRS: &[&str] = &[
    "DURATION",
    "PART-TARGET",
    "CAN-SKIP-UNTIL",
    "HOLD-BACK",
    "PART-HOLD-BACK",
    "FRAME-RATE",
];
const INT_ATTRS: &[&str] = &[
    "LAST-MSN",
    "LAST-PART",
    "SKIPPED-SEGMENTS",
    "BANDWIDTH",
    "AVERAGE-BANDWIDTH",
];
const ENUM_ATTRS: &[&str] = &[
    "TYPE",
    "INDEPENDENT",
    "GAP",
    "CAN-BLOCK-RELOAD",
    "CAN-SKIP-DATERANGES",
    "DEFAULT",
    "AUTOSELECT",
    "RESOLUTION",
];

fn is_decimal_float(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn is_decimal_integer(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits and checks an attribute-list (4.2). Returns (name, value) pairs, quotes kept.
fn attributes(tag: &str, list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("{tag}: attribute without '=' in {list:?}"))?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("{tag}: bad attribute name {name:?}"));
        }
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| format!("{tag}: unterminated quote"))?;
            (&after[..end + 2], &after[end + 2..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let quoted = value.starts_with('"');
        if !quoted && (value.is_empty() || value.contains(char::is_whitespace)) {
            return Err(format!("{tag}: bad unquoted value {name}={value:?}"));
        }
        if FLOAT_ATTRS.contains(&name) && !is_decimal_float(value) {
            return Err(format!(
                "{tag}: {name}={value} is not a decimal-floating-point"
            ));
        }
        if INT_ATTRS.contains(&name) && !is_decimal_integer(value) {
            return Err(format!("{tag}: {name}={value} is not a decimal-integer"));
        }
        if ENUM_ATTRS.contains(&name) && quoted {
            return Err(format!(
                "{tag}: {name} is an enumerated-string but is quoted"
            ));
        }
        if name == "URI" && !quoted {
            return Err(format!("{tag}: URI must be a quoted-string"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("{tag}: duplicate attribute {name}"));
        }
        out.push((name.to_owned(), value.to_owned()));
        rest = match next.strip_prefix(',') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return Err(format!("{tag}: trailing comma")),
            None if next.is_empty() => "",
            None => return Err(format!("{tag}: junk after value: {next:?}")),
        };
    }
    if out.is_empty() {
        return Err(format!("{tag}: empty attribute-list"));
    }
    Ok(out)
}

/// Checks a playlist line by line; `Err` says which line breaks which rule.
pub fn lint(text: &str) -> Result<Summary, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or("the playlist must end with a line break")?;
    let mut lines = body.split('\n').enumerate();
    match lines.next() {
        Some((_, "#EXTM3U")) => {}
        other => return Err(format!("first line must be #EXTM3U, got {other:?}")),
    }
    let mut s = Summary::default();
    let mut seen_header: HashSet<String> = HashSet::new();
    let mut in_body = false; // a segment, part or skip has been written
    let mut in_tail = false; // preload hint / rendition reports have started
    let mut ended = false;
    let mut want_uri = false;
    for (n, line) in lines {
        let n = n + 1;
        let err = |m: String| format!("line {n} {line:?}: {m}");
        if line.is_empty() || line.chars().any(char::is_control) {
            return Err(err("blank line or control character".into()));
        }
        if ended {
            return Err(err("after EXT-X-ENDLIST".into()));
        }
        if !line.starts_with('#') {
            if !want_uri {
                return Err(err("URI line without EXTINF / EXT-X-STREAM-INF".into()));
            }
            want_uri = false;
            continue;
        }
        if want_uri {
            return Err(err("expected a URI line".into()));
        }
        let tag = line
            .strip_prefix('#')
            .filter(|t| t.starts_with("EXT"))
            .ok_or_else(|| err("comment or unknown line".into()))?;
        let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
        if HEADER_TAGS.contains(&name) {
            if in_body {
                return Err(err("header tag after the first segment".into()));
            }
            if !seen_header.insert(name.to_owned()) {
                return Err(err("header tag repeated".into()));
            }
        }
        if in_tail && !matches!(name, "EXT-X-RENDITION-REPORT" | "EXT-X-ENDLIST") {
            return Err(err("after the preload hint / rendition reports".into()));
        }
        match name {
            "EXT-X-VERSION"
            | "EXT-X-TARGETDURATION"
            | "EXT-X-MEDIA-SEQUENCE"
            | "EXT-X-DISCONTINUITY-SEQUENCE" => {
                if !is_decimal_integer(value) {
                    return Err(err("not a decimal-integer".into()));
                }
            }
            "EXT-X-PLAYLIST-TYPE" => {
                if !matches!(value, "EVENT" | "VOD") {
                    return Err(err("bad playlist type".into()));
                }
            }
            "EXT-X-INDEPENDENT-SEGMENTS" | "EXT-X-DISCONTINUITY" | "EXT-X-GAP" => {
                if !value.is_empty() {
                    return Err(err("this tag takes no value".into()));
                }
            }
            "EXT-X-ENDLIST" => ended = true,
            "EXT-X-SERVER-CONTROL" | "EXT-X-PART-INF" | "EXT-X-MAP" | "EXT-X-MEDIA" => {
                attributes(name, value).map_err(err)?;
            }
            "EXT-X-PROGRAM-DATE-TIME" => {
                let b = value.as_bytes();
                if b.len() != 24 || b[10] != b'T' || b[19] != b'.' || b[23] != b'Z' {
                    return Err(err("not YYYY-MM-DDThh:mm:ss.sssZ".into()));
                }
            }
            "EXT-X-SKIP" => {
                if in_body || s.skipped.is_some() {
                    return Err(err("EXT-X-SKIP must come once, before every segment".into()));
                }
                in_body = true;
                let attrs = attributes(name, value).map_err(err)?;
                let count = attrs
                    .iter()
                    .find(|(k, _)| k == "SKIPPED-SEGMENTS")
                    .ok_or_else(|| err("no SKIPPED-SEGMENTS".into()))?;
                s.skipped = Some(count.1.parse().map_err(|_| err("count".into()))?);
            }
            "EXT-X-PART" => {
                in_body = true;
                let attrs = attributes(name, value).map_err(err)?;
                for required in ["DURATION", "URI"] {
                    if !attrs.iter().any(|(k, _)| k == required) {
                        return Err(err(format!("no {required}")));
                    }
                }
                s.parts += 1;
            }
            "EXTINF" => {
                in_body = true;
                let (duration, _title) = value
                    .split_once(',')
                    .ok_or_else(|| err("EXTINF without ','".into()))?;
                if !is_decimal_float(duration) {
                    return Err(err("EXTINF duration".into()));
                }
                s.segments += 1;
                want_uri = true;
            }
            "EXT-X-STREAM-INF" => {
                let attrs = attributes(name, value).map_err(err)?;
                if !attrs.iter().any(|(k, _)| k == "BANDWIDTH") {
                    return Err(err("no BANDWIDTH".into()));
                }
                s.variants += 1;
                want_uri = true;
            }
            "EXT-X-PRELOAD-HINT" | "EXT-X-RENDITION-REPORT" => {
                in_tail = true;
                let attrs = attributes(name, value).map_err(err)?;
                if !attrs.iter().any(|(k, _)| k == "URI") {
                    return Err(err("no URI".into()));
                }
            }
            _ => return Err(err("tag this crate does not write".into())),
        }
    }
    if want_uri {
        return Err("the playlist ends without the URI of its last EXTINF".into());
    }
    Ok(s)
}

#[test]
fn lint_rejects_what_it_should() {
    let ok = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\na.ts\n";
    assert_eq!(lint(ok).unwrap().segments, 1);
    for bad in [
        "#EXTM3U\n#EXTINF:2.0,\na.ts",                 // no final newline
        "#EXTM3U\n#EXTINF:2.0,\n#EXTINF:2.0,\na.ts\n", // EXTINF without URI
        "#EXTM3U\n#EXTINF:2.0,\na.ts\n#EXT-X-TARGETDURATION:2\n", // header after segment
        "#EXTM3U\n#EXT-X-PART:DURATION=0.5,URI=a\n",   // unquoted URI
        "#EXTM3U\n#EXT-X-PART:DURATION=1e3,URI=\"a\"\n", // exponent
        "#EXTM3U\n#EXT-X-PART:URI=\"a\",URI=\"b\",DURATION=1.0\n", // duplicate
        "#EXTM3U\n#EXT-X-PART:DURATION=0.5,URI=\"a\",INDEPENDENT=\"YES\"\n",
        "#EXTM3U\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a\"\n#EXTINF:2.0,\na.ts\n",
        "#EXTM3U\n#EXTINF:2.0,\na.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n",
        "#EXTM3U\n\n",
    ] {
        assert!(lint(bad).is_err(), "{bad:?}");
    }
}
