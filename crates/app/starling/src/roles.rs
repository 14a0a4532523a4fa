//! The roles a node runs (`[server] roles`, `STARLING_SERVER_ROLES`, `--roles`):
//! `ingest`, `origin`, `edge`, `api`, or `all` (the default: one node does everything).
//!
//! What each subset runs today (docs/cluster.md):
//! - with `origin`: the node packages and serves `/live/` itself; without `ingest` it
//!   takes no publishes (RTMP, SRT, PUT ingest and WebRTC, WHEP included, are off);
//!   without `api` it serves no `/api/` and no live-state stream (the pages stay, but the
//!   admin console has nothing to talk to). `edge` beside `origin` adds nothing (the
//!   origin is its own edge).
//! - `edge` without `origin`: a caching proxy of `/live/` in front of `[edge] origin`,
//!   with the watch pages; private channels are checked against the control database.
//! - other subsets without `origin` (an ingest node that pushes to origins, an API-only
//!   node) are planned and refused by `check-config` for now.

use anyhow::bail;

/// A node's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub ingest: bool,
    pub origin: bool,
    pub edge: bool,
    pub api: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        ingest: true,
        origin: true,
        edge: true,
        api: true,
    };

    /// Parses `all` or a comma-separated list of role names.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let mut r = Self {
            ingest: false,
            origin: false,
            edge: false,
            api: false,
        };
        for name in s.split(',').map(str::trim) {
            match name {
                "all" => r = Self::ALL,
                "ingest" => r.ingest = true,
                "origin" => r.origin = true,
                "edge" => r.edge = true,
                "api" => r.api = true,
                "" => bail!("server.roles: empty role name in {s:?}"),
                other => bail!(
                    "server.roles: unknown role {other:?} (roles are ingest, origin, edge, api, or all)"
                ),
            }
        }
        if !r.origin && r != Self::EDGE_ONLY {
            bail!(
                "server.roles {s:?}: a node without the origin role runs `edge` alone for now \
                 (ingest-only and api-only nodes are planned)"
            );
        }
        Ok(r)
    }

    /// The edge alone: a caching proxy in front of origins.
    pub const EDGE_ONLY: Self = Self {
        ingest: false,
        origin: false,
        edge: true,
        api: false,
    };

    /// The names, for logs and the cluster directory.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.ingest, "ingest"),
            (self.origin, "origin"),
            (self.edge, "edge"),
            (self.api, "api"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_unsupported_sets_are_named() {
        assert_eq!(Roles::parse("all").unwrap(), Roles::ALL);
        assert_eq!(Roles::parse("edge").unwrap(), Roles::EDGE_ONLY);
        let r = Roles::parse("origin, api").unwrap();
        assert!(r.origin && r.api && !r.ingest && !r.edge);
        assert_eq!(r.names(), ["origin", "api"]);
        let e = Roles::parse("edge,transcoder").unwrap_err().to_string();
        assert!(e.contains("unknown role \"transcoder\""), "{e}");
        let e = Roles::parse("ingest").unwrap_err().to_string();
        assert!(e.contains("planned"), "{e}");
        assert!(Roles::parse("origin,,api").is_err());
    }
}
