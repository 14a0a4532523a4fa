//! Where a webhook may be sent: not to the node's own network (SSRF).
//!
//! An organisation admin chooses webhook URLs; without these rules they could make the
//! node POST to its loopback services, its private network or the cloud metadata
//! service. Two checks, with the same rules:
//!
//! - at creation ([`check_url`]): a literal IP or a name that is local by definition
//!   (`localhost`, `*.localhost`, the metadata services' names) is refused with a clear
//!   message; other names are not resolved here (they may resolve differently later);
//! - at every delivery (the dispatcher): the name is resolved, every refused address is
//!   dropped, and the connection goes to an address that passed, so a name that
//!   rebinds to `127.0.0.1` after creation is refused too.
//!
//! Refused: unspecified, loopback, private (RFC 1918, IPv6 ULA `fc00::/7`, site-local),
//! link-local, CGNAT (`100.64.0.0/10`), multicast, broadcast and reserved ranges, and
//! IPv6 forms that embed one of those IPv4 addresses (mapped, NAT64, 6to4).
//! [`TargetPolicy::allow_private`] (config `[webhooks] allow_private_targets`) lifts all
//! of that for receivers on an internal network, except the cloud metadata service
//! ([`METADATA_ADDRS`], [`METADATA_NAMES`]), which no webhook ever needs.
//!
//! Pure functions, no I/O: also built without the `dispatcher` feature.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which targets are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Allow loopback, private, link-local … targets (not the metadata service).
    pub allow_private: bool,
}

/// The cloud metadata services' addresses (AWS, GCP, Azure, OpenStack …: the IPv4 one;
/// AWS's IPv6 one). Refused even when private targets are allowed.
pub const METADATA_ADDRS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// Names of metadata services (compared without a trailing dot, case-insensitively).
pub const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data.ec2.internal",
];

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// An address in a refused range.
    #[error("{addr} is {kind}: webhooks may not target it (a node's operator can allow private targets with [webhooks] allow_private_targets)")]
    Address { addr: IpAddr, kind: &'static str },
    /// The cloud metadata service, by address or name.
    #[error("{0} is the cloud metadata service: webhooks may never target it")]
    Metadata(String),
    /// A name that always means this machine.
    #[error("{0} is this machine: webhooks may not target it (a node's operator can allow private targets with [webhooks] allow_private_targets)")]
    Local(String),
}

/// The kind of a refused address, or `None` for an address on the public internet.
pub fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified (\"this network\") address",
        (127, _, _) => "a loopback address",
        (10, _, _) | (192, 168, _) => "a private address",
        (172, b, _) if (16..32).contains(&b) => "a private address",
        (169, 254, _) => "a link-local address",
        (100, b, _) if (64..128).contains(&b) => "a carrier-grade NAT (shared) address",
        (192, 0, 0) => "an IETF protocol assignment address",
        (198, b, _) if b == 18 || b == 19 => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        _ if ip.is_broadcast() => "the broadcast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // IPv6 forms that reach an IPv4 address: judge that address.
    if let Some(v4) = embedded_v4(ip) {
        return refused_v4(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "a private (unique local) address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a private (site-local) address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

impl TargetPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn check_addr(self, ip: IpAddr) -> Result<(), TargetError> {
        let ip = match ip {
            // Judge the IPv4 address a mapped one reaches (also for the metadata check).
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if METADATA_ADDRS.contains(&ip) {
            return Err(TargetError::Metadata(ip.to_string()));
        }
        match refused_kind(ip) {
            Some(kind) if !self.allow_private => Err(TargetError::Address { addr: ip, kind }),
            _ => Ok(()),
        }
    }

    /// Whether a URL's host (a name, an IPv4 literal or a bracketed IPv6 literal) may
    /// be a target, as far as can be told without resolving it.
    pub fn check_host(self, host: &str) -> Result<(), TargetError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_addr(ip);
        }
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_NAMES.contains(&name.as_str()) {
            return Err(TargetError::Metadata(name));
        }
        let local =
            name == "localhost" || name.ends_with(".localhost") || name == "localhost.localdomain";
        if local && !self.allow_private {
            return Err(TargetError::Local(name));
        }
        Ok(())
    }

    /// [`Self::check_host`] of an `http(s)://` URL's host. A URL whose host cannot be
    /// found is let through: the URL validator refuses it with its own message.
    pub fn check_url(self, url: &str) -> Result<(), TargetError> {
        match url_host(url) {
            Some(host) => self.check_host(host),
            None => Ok(()),
        }
    }
}

/// The host of an `http(s)://host[:port]/…` URL (IPv6 literals keep their brackets).
pub fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if authority.starts_with('[') {
        &authority[..=authority.find(']')?]
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENY: TargetPolicy = TargetPolicy {
        allow_private: false,
    };
    const ALLOW: TargetPolicy = TargetPolicy {
        allow_private: true,
    };

    #[test]
    fn refused_urls() {
        for url in [
            "http://127.0.0.1/x",
            "http://127.1.2.3:8080/x",
            "https://10.0.0.1/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.1.1/",
            "http://100.64.0.1/",
            "http://100.127.255.255/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd12:3456::1]:9000/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "http://[ff02::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.1.2.3]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:c0a8:101::1]/",
            "http://localhost/",
            "http://LOCALHOST.:8080/",
            "http://api.localhost/",
            "http://user@127.0.0.1/",
        ] {
            assert!(DENY.check_url(url).is_err(), "{url} was allowed");
            assert!(ALLOW.check_url(url).is_ok(), "{url} refused though allowed");
        }
    }

    #[test]
    fn metadata_is_refused_even_when_private_targets_are_allowed() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://Metadata.Google.Internal./",
            "http://metadata/",
        ] {
            for policy in [DENY, ALLOW] {
                assert!(
                    matches!(policy.check_url(url), Err(TargetError::Metadata(_))),
                    "{url} with {policy:?}"
                );
            }
        }
    }

    #[test]
    fn public_targets_pass() {
        for url in [
            "https://hooks.example.com/x?token=1",
            "http://93.184.216.34/",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
            "http://[2606:4700::1111]/",
            "http://192.0.2.1/",
            "http://11.0.0.1:8080/",
        ] {
            assert_eq!(DENY.check_url(url), Ok(()), "{url}");
        }
        // Not a URL the validator accepts: left to it.
        assert_eq!(DENY.check_url("nonsense"), Ok(()));
    }

    #[test]
    fn the_message_says_what_and_how_to_allow_it() {
        let e = DENY.check_url("http://10.1.2.3/").unwrap_err().to_string();
        assert!(e.contains("10.1.2.3 is a private address"), "{e}");
        assert!(e.contains("allow_private_targets"), "{e}");
    }
}
