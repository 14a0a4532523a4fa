//! Playback access for channels that are not public.
//!
//! The HTTP origin asks a [`PlaybackGate`] about every request under `/live/{channel}/`,
//! with the viewer's token from the query string (`token=`) or the `starling_playback`
//! cookie. The answer is an [`Access`]:
//! - [`Access::Public`]: served as without a gate, with the usual public caching headers;
//! - [`Access::Allowed`]: served with `Cache-Control: private, …` (no shared cache may
//!   keep it), and every URI the origin writes in a playlist carries `token=` so that the
//!   player sends it back on its next requests ([`add_token`]);
//! - [`Access::Refused`]: 401 when no token was given, 403 when the token is expired,
//!   altered or for another channel ([`Refusal`]), with a JSON body naming which.
//!
//! The origin knows neither how tokens are signed nor where visibility is kept: the node
//! implements the gate over its control plane. Nothing here may log or echo a token in
//! an error; the only place a token is written is the playlists of an allowed request.

use std::{borrow::Cow, future::Future, pin::Pin};

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

/// Query parameter that carries a playback token.
pub const TOKEN_PARAM: &str = "token";
/// Cookie that carries a playback token (for players that cannot add query parameters).
pub const TOKEN_COOKIE: &str = "starling_playback";

/// The future a gate answers with (boxed so the trait stays object-safe).
pub type GateFuture<'a> = Pin<Box<dyn Future<Output = Access> + Send + 'a>>;

/// Decides who may watch a channel. Called on every playlist and media request of a
/// channel, so implementations should answer from memory nearly always.
pub trait PlaybackGate: Send + Sync + 'static {
    /// May the holder of `token` (None: no token given) watch `channel`?
    fn check<'a>(&'a self, channel: &'a str, token: Option<&'a str>) -> GateFuture<'a>;
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone may watch: served as without a gate.
    Public,
    /// A valid token for this channel: served privately, with the token in every URI.
    Allowed,
    /// Not served.
    Refused(Refusal),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The channel is private and the request carried no token.
    NoToken,
    /// The token was valid until `expired_at_ms` (unix ms).
    Expired {
        /// Expiry named in the token.
        expired_at_ms: i64,
    },
    /// The token is genuine but for another channel.
    WrongChannel {
        /// The channel named in the token.
        token_channel: String,
    },
    /// The signature does not match: the token was altered or signed with another key.
    BadSignature,
    /// Not a token in a format the gate reads.
    Malformed(&'static str),
    /// The gate could not decide (its store is unreachable and it has no recent answer).
    Unavailable,
}

impl Refusal {
    /// 401 without a token, 503 when undecided, 403 for every bad token.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoToken => StatusCode::UNAUTHORIZED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoToken => "token_required",
            Self::Expired { .. } => "token_expired",
            Self::WrongChannel { .. } => "token_wrong_channel",
            Self::BadSignature => "token_bad_signature",
            Self::Malformed(_) => "token_malformed",
            Self::Unavailable => "access_check_unavailable",
        }
    }

    /// What a person reads: which check failed, never the token itself.
    pub fn message(&self, channel: &str) -> String {
        match self {
            Self::NoToken => format!(
                "channel {channel} is private: a playback token is required \
                 (query parameter `{TOKEN_PARAM}` or cookie `{TOKEN_COOKIE}`)"
            ),
            Self::Expired { expired_at_ms } => {
                format!(
                    "the playback token expired at {expired_at_ms} (unix ms); ask for a new one"
                )
            }
            Self::WrongChannel { token_channel } => {
                format!("the playback token is for channel {token_channel}, not {channel}")
            }
            Self::BadSignature => {
                "the playback token's signature does not match: altered or not issued here"
                    .to_owned()
            }
            Self::Malformed(why) => format!("malformed playback token: {why}"),
            Self::Unavailable => {
                "access to this channel cannot be checked right now; retry shortly".to_owned()
            }
        }
    }

    /// `{"error": {"code", "message"}}`, the API's error shape; never cached.
    pub fn response(&self, channel: &str) -> Response {
        let body = format!(
            "{{\"error\":{{\"code\":\"{}\",\"message\":\"{}\"}}}}\n",
            self.code(),
            json_escape(&self.message(channel))
        );
        let mut r = (
            self.status(),
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_TYPE, "application/json"),
            ],
            body,
        )
            .into_response();
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        r
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The token a request carries: the `token` query parameter, else the `starling_playback`
/// cookie. Percent-escapes are decoded; an empty value counts as none.
pub fn request_token<'a>(query: Option<&'a str>, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
    let from_query = query.and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == TOKEN_PARAM)
            .map(|(_, v)| v)
    });
    let raw = from_query.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == TOKEN_COOKIE)
            .map(|(_, v)| v)
    })?;
    let token = percent_decode(raw);
    (!token.is_empty()).then_some(token)
}

/// Decodes `%XX` (and `+` as a space, as forms send it). Invalid escapes are kept as
/// written: the gate then refuses the token as malformed.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match c {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(c),
            },
            b'+' => out.push(b' '),
            _ => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `token` as a query value: RFC 3986 unreserved characters as they are, the rest
/// percent-encoded, so that it can sit in a URI and in a quoted playlist attribute.
fn encode_query_value(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `uri` with `token=…` appended to its query (before any fragment).
fn with_query(uri: &str, param: &str) -> String {
    let (base, fragment) = match uri.find('#') {
        Some(i) => uri.split_at(i),
        None => (uri, ""),
    };
    let sep = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    format!("{base}{sep}{param}{fragment}")
}

/// `uri` with `token=<token>` added to its query: for URLs the origin writes outside a
/// playlist (the DASH MPD's segment templates).
pub fn with_token(uri: &str, token: &str) -> String {
    with_query(uri, &format!("{TOKEN_PARAM}={}", encode_query_value(token)))
}

/// Adds `token=<token>` to every URI of a playlist (multivariant or media): URI lines
/// (variants, segments) and every `URI="…"` attribute of a tag (`EXT-X-MEDIA`,
/// `EXT-X-MAP`, `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`, …).
/// Existing query parameters are kept. Comments and other lines are left as they are.
pub fn add_token(playlist: &str, token: &str) -> String {
    let param = format!("{TOKEN_PARAM}={}", encode_query_value(token));
    let mut out = String::with_capacity(playlist.len() + 64 * (param.len() + 1));
    for line in playlist.split_inclusive('\n') {
        let (body, eol) = match line.find(['\r', '\n']) {
            Some(i) => line.split_at(i),
            None => (line, ""),
        };
        if body.starts_with("#EXT") {
            rewrite_uri_attributes(body, &param, &mut out);
        } else if body.trim().is_empty() || body.starts_with('#') {
            out.push_str(body);
        } else {
            out.push_str(&with_query(body, &param));
        }
        out.push_str(eol);
    }
    out
}

/// Copies a tag line to `out`, with `param` added to each `URI="…"` attribute (one whose
/// name is exactly `URI`: right after the `:` or a `,`).
fn rewrite_uri_attributes(line: &str, param: &str, out: &mut String) {
    const KEY: &str = "URI=\"";
    let mut rest = line;
    loop {
        let Some(at) = find_attribute(rest, KEY) else {
            out.push_str(rest);
            return;
        };
        let value_start = at + KEY.len();
        let (head, tail) = rest.split_at(value_start);
        let Some(end) = tail.find('"') else {
            // Unterminated quoted string: leave the rest as it is.
            out.push_str(rest);
            return;
        };
        out.push_str(head);
        out.push_str(&with_query(&tail[..end], param));
        rest = &tail[end..];
    }
}

/// Where `key` starts as an attribute name in `s` (preceded by `:` or `,`), skipping
/// matches inside quoted strings.
fn find_attribute(s: &str, key: &str) -> Option<usize> {
    let mut quoted = false;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' {
            quoted = !quoted;
            continue;
        }
        if !quoted && (b == b':' || b == b',') && s.get(i + 1..).is_some_and(|r| r.starts_with(key))
        {
            return Some(i + 1);
        }
    }
    None
}

/// Turns the public caching of a response into private caching (`public, max-age=2` →
/// `private, max-age=2`); other values are kept, a missing one becomes `private, no-cache`.
pub fn make_private(headers: &mut HeaderMap) {
    let current = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value = match current.as_deref() {
        Some(v) => match v.strip_prefix("public") {
            Some(rest) => Cow::Owned(format!("private{rest}")),
            None => return,
        },
        None => Cow::Borrowed("private, no-cache"),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(header::CACHE_CONTROL, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "MQpuZXdzCjE3MDAwMDAwMDAwMDAK.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    #[test]
    fn media_playlist_uris_all_carry_the_token() {
        // An LL-HLS playlist as the origin renders it (map, parts, preload hint,
        // rendition report, a discontinuity with a new map).
        let pl = "#EXTM3U\n\
#EXT-X-VERSION:9\n\
#EXT-X-TARGETDURATION:2\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.6,HOLD-BACK=6.0\n\
#EXT-X-PART-INF:PART-TARGET=0.2\n\
#EXT-X-MEDIA-SEQUENCE:4\n\
#EXT-X-MAP:URI=\"init-0.mp4\"\n\
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T03:00:00.000Z\n\
#EXTINF:2.00000,\n\
4.m4s\n\
#EXT-X-DISCONTINUITY\n\
#EXT-X-MAP:URI=\"init-1.mp4\"\n\
#EXT-X-PART:DURATION=0.20000,URI=\"5.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.20000,URI=\"5.1.m4s\"\n\
#EXTINF:0.40000,\n\
5.m4s\n\
#EXT-X-PART:DURATION=0.20000,URI=\"6.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"6.1.m4s\"\n\
#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=6,LAST-PART=0\n";
        let out = add_token(pl, TOKEN);
        let t = format!("token={TOKEN}");
        for uri in [
            "init-0.mp4",
            "init-1.mp4",
            "4.m4s",
            "5.0.m4s",
            "5.1.m4s",
            "5.m4s",
            "6.0.m4s",
            "6.1.m4s",
            "../audio/index.m3u8",
        ] {
            assert!(
                out.contains(&format!("{uri}?{t}")),
                "{uri} lacks the token:\n{out}"
            );
        }
        // Same lines, same tags, same attribute order: only URIs changed.
        assert_eq!(out.lines().count(), pl.lines().count());
        for (a, b) in pl.lines().zip(out.lines()) {
            if !a.contains(".m4s") && !a.contains(".mp4") && !a.contains(".m3u8") {
                assert_eq!(a, b);
            }
        }
        assert!(out.contains(&format!(
            "#EXT-X-PART:DURATION=0.20000,URI=\"5.0.m4s?{t}\",INDEPENDENT=YES\n"
        )));
        assert!(out.contains(&format!(
            "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8?{t}\",LAST-MSN=6,LAST-PART=0\n"
        )));
        // The real parser agrees.
        let Ok((_, m3u8_rs::Playlist::MediaPlaylist(m))) = m3u8_rs::parse_playlist(out.as_bytes())
        else {
            panic!("not a media playlist:\n{out}");
        };
        assert!(m.segments.iter().all(|s| s.uri.ends_with(&t)));
    }

    #[test]
    fn multivariant_uris_carry_the_token_and_existing_queries_are_kept() {
        let pl = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"audio\"\n\
video/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1000\n\
low/index.m3u8?_HLS_msn=3&x=1#frag\n";
        let out = add_token(pl, TOKEN);
        assert!(out.contains(&format!("URI=\"audio/index.m3u8?token={TOKEN}\"\n")));
        assert!(out.contains(&format!("\nvideo/index.m3u8?token={TOKEN}\n")));
        assert!(out.contains(&format!(
            "\nlow/index.m3u8?_HLS_msn=3&x=1&token={TOKEN}#frag\n"
        )));
        // Attributes whose names only end in URI, and URI= inside quoted values, stay.
        let tricky = "#EXT-X-SESSION-DATA:DATA-ID=\"URI\",X-URI=\"keep\",VALUE=\"a,b\"\n";
        assert_eq!(add_token(tricky, TOKEN), tricky);
        // CRLF playlists keep their line ends; a trailing line without one is handled.
        assert_eq!(
            add_token("#EXTM3U\r\n1.m4s\r\n2.m4s", "a.b"),
            "#EXTM3U\r\n1.m4s?token=a.b\r\n2.m4s?token=a.b"
        );
        // Characters outside the URL-safe set are escaped (no quote can break out).
        assert_eq!(
            add_token("#EXT-X-MAP:URI=\"i.mp4\"\n", "a\"b c/"),
            "#EXT-X-MAP:URI=\"i.mp4?token=a%22b%20c%2F\"\n"
        );
    }

    #[test]
    fn tokens_come_from_the_query_or_the_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(request_token(None, &h), None);
        assert_eq!(
            request_token(Some("_HLS_msn=4&token=a.b&_HLS_part=1"), &h).as_deref(),
            Some("a.b")
        );
        assert_eq!(request_token(Some("token="), &h), None);
        assert_eq!(request_token(Some("tokens=a.b"), &h), None);
        assert_eq!(
            request_token(Some("token=a%2Eb"), &h).as_deref(),
            Some("a.b")
        );
        assert_eq!(
            request_token(Some("token=a%zz"), &h).as_deref(),
            Some("a%zz")
        );
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; starling_playback=c.d; x=y"),
        );
        assert_eq!(request_token(None, &h).as_deref(), Some("c.d"));
        // The query wins over the cookie.
        assert_eq!(request_token(Some("token=a.b"), &h).as_deref(), Some("a.b"));
    }

    #[test]
    fn refusals_map_to_status_codes_and_never_echo_the_token() {
        let cases = [
            (Refusal::NoToken, 401, "token_required"),
            (
                Refusal::Expired {
                    expired_at_ms: 1_700_000_000_000,
                },
                403,
                "token_expired",
            ),
            (
                Refusal::WrongChannel {
                    token_channel: "sport".into(),
                },
                403,
                "token_wrong_channel",
            ),
            (Refusal::BadSignature, 403, "token_bad_signature"),
            (Refusal::Malformed("no `.`"), 403, "token_malformed"),
            (Refusal::Unavailable, 503, "access_check_unavailable"),
        ];
        for (r, status, code) in cases {
            assert_eq!(r.status().as_u16(), status, "{r:?}");
            assert_eq!(r.code(), code);
            let resp = r.response("news");
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        }
        assert!(Refusal::WrongChannel {
            token_channel: "sport".into()
        }
        .message("news")
        .contains("for channel sport, not news"));
        assert!(Refusal::Malformed("x\"y")
            .response("news")
            .status()
            .is_client_error());
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }

    #[test]
    fn public_caching_becomes_private() {
        for (before, after) in [
            ("public, max-age=1", "private, max-age=1"),
            (
                "public, max-age=31536000, immutable",
                "private, max-age=31536000, immutable",
            ),
            ("no-store", "no-store"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(before));
            make_private(&mut h);
            assert_eq!(h[header::CACHE_CONTROL], after);
        }
        let mut h = HeaderMap::new();
        make_private(&mut h);
        assert_eq!(h[header::CACHE_CONTROL], "private, no-cache");
    }
}
