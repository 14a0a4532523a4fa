//! Input validation: every string that reaches the database or a URL passes through here.
//!
//! Lengths are checked before anything scans the string, so a 1 MB value costs one
//! comparison. These functions never allocate for a refused value.

use crate::error::{Problem, ValidationError};

/// Longest channel name (it appears in URLs: `/live/{name}`).
pub const CHANNEL_NAME_MAX: usize = 64;
/// Longest display name (org, device, token name).
pub const NAME_MAX: usize = 100;
/// Longest title.
pub const TITLE_MAX: usize = 200;
/// Longest email address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;
/// Shortest password.
pub const PASSWORD_MIN: usize = 8;
/// Longest password (bounds the hashing work an attacker can ask for).
pub const PASSWORD_MAX: usize = 1024;
/// Longest viewer id in a playback token.
pub const VIEWER_ID_MAX: usize = 128;
/// Longest peer address string stored with a stream key.
pub const ADDR_MAX: usize = 128;

fn length(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    if s.len() > max {
        return Err(ValidationError::new(
            field,
            Problem::TooLong { len: s.len(), max },
        ));
    }
    if s.trim().is_empty() {
        return Err(ValidationError::new(field, Problem::Empty));
    }
    if s.len() < min {
        return Err(ValidationError::new(
            field,
            Problem::TooShort { len: s.len(), min },
        ));
    }
    Ok(())
}

fn no_control(field: &'static str, s: &str) -> Result<(), ValidationError> {
    match s.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, _)) => Err(ValidationError::new(
            field,
            Problem::ControlCharacter { at },
        )),
        None => Ok(()),
    }
}

/// A channel name: 1-64 of `[A-Za-z0-9_-]`.
pub fn channel_name(s: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "name";
    length(FIELD, s, 1, CHANNEL_NAME_MAX)?;
    if s.contains("..") || s.contains('/') || s.contains('\\') {
        return Err(ValidationError::new(FIELD, Problem::PathTraversal));
    }
    no_control(FIELD, s)?;
    if let Some((at, ch)) = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(ValidationError::new(
            FIELD,
            Problem::InvalidCharacter {
                ch,
                at,
                allowed: "A-Z a-z 0-9 _ -",
            },
        ));
    }
    Ok(())
}

/// A free-text display name or title: not empty, at most `max` bytes, no control
/// characters, no path components (names end up in file names and log lines).
pub fn display_text(field: &'static str, s: &str, max: usize) -> Result<(), ValidationError> {
    length(field, s, 1, max)?;
    no_control(field, s)?;
    if s.contains("../") || s.contains("..\\") || s == ".." {
        return Err(ValidationError::new(field, Problem::PathTraversal));
    }
    Ok(())
}

/// An email address, returned lower-cased (emails are unique case-insensitively).
pub fn email(s: &str) -> Result<String, ValidationError> {
    const FIELD: &str = "email";
    length(FIELD, s, 3, EMAIL_MAX)?;
    no_control(FIELD, s)?;
    if let Some((at, ch)) = s.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(ValidationError::new(
            FIELD,
            Problem::InvalidCharacter {
                ch,
                at,
                allowed: "no whitespace",
            },
        ));
    }
    match s.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(s.to_lowercase())
        }
        _ => Err(ValidationError::new(
            FIELD,
            Problem::Format("must look like name@domain"),
        )),
    }
}

/// A password: 8-1024 bytes, no NUL. Any other characters are allowed.
pub fn password(s: &str) -> Result<(), ValidationError> {
    const FIELD: &str = "password";
    if s.len() > PASSWORD_MAX {
        return Err(ValidationError::new(
            FIELD,
            Problem::TooLong {
                len: s.len(),
                max: PASSWORD_MAX,
            },
        ));
    }
    if s.len() < PASSWORD_MIN {
        return Err(ValidationError::new(
            FIELD,
            Problem::TooShort {
                len: s.len(),
                min: PASSWORD_MIN,
            },
        ));
    }
    if let Some(at) = s.find('\0') {
        return Err(ValidationError::new(
            FIELD,
            Problem::ControlCharacter { at },
        ));
    }
    Ok(())
}

/// A viewer id carried in a playback token: 1-128 bytes, printable, no `\n`.
pub fn viewer_id(s: &str) -> Result<(), ValidationError> {
    display_text("viewer_id", s, VIEWER_ID_MAX)
}

/// Shortest SRT passphrase (libsrt's limit, in bytes).
pub const SRT_PASSPHRASE_MIN: usize = 10;
/// Longest SRT passphrase (libsrt's limit, in bytes).
pub const SRT_PASSPHRASE_MAX: usize = 79;
/// AES key lengths SRT offers, in bytes.
pub const SRT_PBKEYLENS: [i64; 3] = [16, 24, 32];

/// An SRT (AES) passphrase: 10 to 79 bytes, libsrt's limits, of printable ASCII (space
/// to `~`). libsrt takes any bytes, but a passphrase is typed into encoders and put in
/// `srt://` URLs, where control characters and non-ASCII are trouble; ASCII also makes
/// the byte limits the character limits an API schema can state exactly. The one check
/// for every passphrase: the control plane's channels and the config file's.
pub fn srt_passphrase(field: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.len() > SRT_PASSPHRASE_MAX {
        return Err(ValidationError::new(
            field,
            Problem::TooLong {
                len: s.len(),
                max: SRT_PASSPHRASE_MAX,
            },
        ));
    }
    if s.len() < SRT_PASSPHRASE_MIN {
        return Err(ValidationError::new(
            field,
            Problem::TooShort {
                len: s.len(),
                min: SRT_PASSPHRASE_MIN,
            },
        ));
    }
    match s.char_indices().find(|(_, c)| !matches!(c, ' '..='~')) {
        Some((at, ch)) => Err(ValidationError::new(
            field,
            Problem::InvalidCharacter {
                ch,
                at,
                allowed: "printable ASCII (space to ~)",
            },
        )),
        None => Ok(()),
    }
}

/// An SRT AES key length in bytes: 16, 24 or 32.
pub fn srt_pbkeylen(field: &'static str, n: i64) -> Result<u8, ValidationError> {
    if SRT_PBKEYLENS.contains(&n) {
        // In the list above, so it fits.
        Ok(u8::try_from(n).unwrap_or_default())
    } else {
        Err(ValidationError::new(
            field,
            Problem::NotOneOf {
                expected: "16, 24, 32",
            },
        ))
    }
}

/// Longest URL accepted (artwork, webhook targets).
pub const URL_MAX: usize = 2048;

/// An absolute `http://` or `https://` URL (scheme in any case): at most [`URL_MAX`]
/// bytes of printable ASCII (percent-encode the rest), a host with an optional valid
/// port, and no credentials (they would be shown to every client or logged).
pub fn http_url(field: &'static str, url: &str) -> Result<(), ValidationError> {
    let bad = |why: &'static str| ValidationError::new(field, Problem::Format(why));
    if url.len() > URL_MAX {
        return Err(ValidationError::new(
            field,
            Problem::TooLong {
                len: url.len(),
                max: URL_MAX,
            },
        ));
    }
    if url.is_empty() {
        return Err(ValidationError::new(field, Problem::Empty));
    }
    if let Some((at, ch)) = url.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(ValidationError::new(
            field,
            Problem::InvalidCharacter {
                ch,
                at,
                allowed: "printable ASCII without spaces (percent-encode the rest)",
            },
        ));
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        _ => return Err(bad("must start with http:// or https://")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("must not contain credentials (`user:password@`)"));
    }
    // Host, optionally `:port`; an IPv6 literal is bracketed.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, after)) => (h, after.strip_prefix(':')),
            None => return Err(bad("unterminated IPv6 address")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("must name a host"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("port must be a number in 1..=65535"));
        }
    }
    Ok(())
}

/// A number within bounds.
pub fn range(field: &'static str, value: i64, min: i64, max: i64) -> Result<(), ValidationError> {
    if value < min || value > max {
        return Err(ValidationError::new(
            field,
            Problem::OutOfRange { value, min, max },
        ));
    }
    Ok(())
}

/// Truncates a peer address for storage without splitting a character.
pub(crate) fn clip_addr(addr: &str) -> &str {
    if addr.len() <= ADDR_MAX {
        return addr;
    }
    let mut end = ADDR_MAX;
    while !addr.is_char_boundary(end) {
        end -= 1;
    }
    &addr[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_passphrases_and_key_lengths() {
        for ok in ["0123456789", "a passphrase ~!", &"p".repeat(79)] {
            assert_eq!(srt_passphrase("srt_passphrase", ok), Ok(()), "{ok}");
        }
        let problem = |s: &str| srt_passphrase("srt_passphrase", s).unwrap_err().problem;
        assert!(matches!(problem(""), Problem::TooShort { len: 0, min: 10 }));
        assert!(matches!(
            problem("short"),
            Problem::TooShort { len: 5, min: 10 }
        ));
        assert!(matches!(
            problem(&"p".repeat(80)),
            Problem::TooLong { len: 80, max: 79 }
        ));
        assert!(matches!(
            problem("0123456789\n"),
            Problem::InvalidCharacter {
                ch: '\n',
                at: 10,
                ..
            }
        ));
        assert!(matches!(
            problem("caf\u{e9}-passphrase"),
            Problem::InvalidCharacter {
                ch: '\u{e9}',
                at: 3,
                ..
            }
        ));
        for n in [16, 24, 32] {
            assert_eq!(srt_pbkeylen("srt_pbkeylen", n), Ok(n as u8));
        }
        for n in [0, 8, 17, 256, -16] {
            let e = srt_pbkeylen("srt_pbkeylen", n).unwrap_err();
            assert_eq!(e.field, "srt_pbkeylen");
            assert!(e.to_string().contains("16, 24, 32"), "{e}");
        }
    }

    #[test]
    fn channel_names() {
        for ok in ["a", "live_1", "A-b_C-9", &"x".repeat(64)] {
            assert_eq!(channel_name(ok), Ok(()), "{ok}");
        }
        let too_long = "x".repeat(65);
        type Check = fn(&Problem) -> bool;
        let cases: [(&str, Check); 8] = [
            ("", |p| matches!(p, Problem::Empty)),
            (&too_long, |p| {
                matches!(p, Problem::TooLong { len: 65, max: 64 })
            }),
            ("../etc", |p| matches!(p, Problem::PathTraversal)),
            ("a/b", |p| matches!(p, Problem::PathTraversal)),
            ("a\0b", |p| matches!(p, Problem::ControlCharacter { at: 1 })),
            ("a b", |p| {
                matches!(p, Problem::InvalidCharacter { ch: ' ', at: 1, .. })
            }),
            ("é", |p| {
                matches!(
                    p,
                    Problem::InvalidCharacter {
                        ch: 'é', at: 0, ..
                    }
                )
            }),
            ("a.b", |p| {
                matches!(p, Problem::InvalidCharacter { ch: '.', .. })
            }),
        ];
        for (input, check) in cases {
            let err = channel_name(input).unwrap_err();
            assert_eq!(err.field, "name");
            assert!(check(&err.problem), "{input:?}: {err}");
        }
    }

    #[test]
    fn megabyte_strings_are_refused_by_length() {
        let big = "a".repeat(1 << 20);
        let err = display_text("title", &big, TITLE_MAX).unwrap_err();
        assert_eq!(err.field, "title");
        assert!(matches!(err.problem, Problem::TooLong { len, .. } if len == 1 << 20));
        assert!(matches!(
            password(&big).unwrap_err().problem,
            Problem::TooLong { .. }
        ));
        assert!(matches!(
            email(&big).unwrap_err().problem,
            Problem::TooLong { .. }
        ));
    }

    #[test]
    fn display_text_rules() {
        assert_eq!(display_text("name", "Studio A / cam 2", NAME_MAX), Ok(()));
        assert_eq!(
            display_text("name", "../../x", NAME_MAX)
                .unwrap_err()
                .problem,
            Problem::PathTraversal
        );
        assert_eq!(
            display_text("name", "x\0", NAME_MAX).unwrap_err().problem,
            Problem::ControlCharacter { at: 1 }
        );
        assert_eq!(
            display_text("name", "  ", NAME_MAX).unwrap_err().problem,
            Problem::Empty
        );
        let msg = display_text("title", "a\nb", TITLE_MAX)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`title`"), "{msg}");
    }

    #[test]
    fn emails_and_passwords() {
        assert_eq!(email("Ann@Example.ORG").unwrap(), "ann@example.org");
        for bad in ["ann", "@x", "a@", "a b@x", "a@b@c"] {
            assert_eq!(email(bad).unwrap_err().field, "email", "{bad}");
        }
        assert!(password("correct horse").is_ok());
        assert!(matches!(
            password("short").unwrap_err().problem,
            Problem::TooShort { .. }
        ));
        assert!(matches!(
            password("long enough\0").unwrap_err().problem,
            Problem::ControlCharacter { at: 11 }
        ));
    }

    #[test]
    fn clip_addr_respects_char_boundaries() {
        let s = "é".repeat(100);
        let c = clip_addr(&s);
        assert!(c.len() <= ADDR_MAX && c.len().is_multiple_of(2));
        assert_eq!(clip_addr("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
