//! Which registered version a connection runs. A connection names a
//! [`Pin`]: `latest`, an exact version, or a semver requirement (`^1.2`).
//! An exact pin is that version, whatever its state. `latest` and a
//! requirement take the newest matching version that is
//! - not blocked (by an operator, or rolled back),
//! - not waiting for an admin's approval of wider capabilities,
//! - in staged rollout, only when the connection's bucket is inside the
//!   rollout's share,
//! - and accepts what the connection and the delivery hold (`fits`: settings
//!   and fields against its schemas); a version that does not is one the
//!   connection is *held back* from.
//!
//! When no version fits, the newest otherwise eligible one is taken, so the
//! delivery fails with that version's own explanation rather than waiting.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};

use super::release::{Capabilities, Release, bucket};
use super::{Entry, Origin};
use crate::runtime::LoadedConnector;

/// What a connection's `version` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    Latest,
    Exact(Version),
    Matching(VersionReq),
}

impl Pin {
    /// `latest`, `1.2.3` (exactly that) or a requirement (`^1.2`, `~1.4`, `>=2, <3`).
    pub fn parse(text: &str) -> Result<Pin, String> {
        if text == "latest" {
            return Ok(Pin::Latest);
        }
        if let Ok(v) = Version::parse(text) {
            return Ok(Pin::Exact(v));
        }
        VersionReq::parse(text).map(Pin::Matching).map_err(|e| {
            format!("`{text}` is neither `latest`, a version (`1.2.3`) nor a semver requirement (`^1.2`): {e}")
        })
    }

    fn admits(&self, v: &Version) -> bool {
        match self {
            Pin::Latest => true,
            Pin::Exact(exact) => v == exact,
            Pin::Matching(req) => req.matches(v),
        }
    }
}

/// The version a connection runs, and the newer one it is held back from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub connector: LoadedConnector,
    /// A newer version this connection would run, but whose schemas refuse
    /// its settings or the delivery's fields.
    pub held_back_from: Option<String>,
}

/// The versions of one connector, as the registry holds them.
pub(super) struct Versions<'a> {
    pub entries: &'a BTreeMap<Version, Entry>,
    pub release: &'a dyn Fn(&Version) -> Release,
}

impl Versions<'_> {
    /// The versions waiting for approval: each asks for capabilities that
    /// the last version not waiting did not have. The oldest version never
    /// waits, nor do versions the operator installed (bundled, or placed in
    /// `connectors_dir`): only uploads through the API need an approval.
    pub fn pending(&self) -> Vec<Version> {
        let mut pending = Vec::new();
        let mut baseline: Option<Capabilities> = None;
        for (v, e) in self.entries {
            let caps = Capabilities::of(e.connector.manifest());
            let waits = baseline.as_ref().is_some_and(|b| !caps.beyond(b).is_empty())
                && e.origin == Origin::Uploaded
                && !(self.release)(v).approved;
            if waits {
                pending.push(v.clone());
            } else {
                baseline = Some(caps);
            }
        }
        pending
    }

    /// What `version` asks for beyond the last version before it that is
    /// not waiting for approval.
    pub fn widened(&self, version: &Version) -> Capabilities {
        let pending = self.pending();
        let before = self.entries.range(..version).rev().find(|(v, _)| !pending.contains(v));
        match (self.entries.get(version), before) {
            (Some(e), Some((_, b))) => {
                Capabilities::of(e.connector.manifest()).beyond(&Capabilities::of(b.connector.manifest()))
            }
            _ => Capabilities::default(),
        }
    }

    /// See the module docs. `connection` is `None` for a question about no
    /// connection in particular (versions in partial rollout are skipped).
    pub fn resolve(
        &self,
        pin: &Pin,
        connection: Option<&str>,
        fits: &dyn Fn(&LoadedConnector) -> bool,
    ) -> Option<Resolved> {
        if let Pin::Exact(v) = pin {
            return self.entries.get(v).map(|e| Resolved { connector: e.connector.clone(), held_back_from: None });
        }
        let pending = self.pending();
        let in_share = |v: &Version| match ((self.release)(v).rollout, connection) {
            (None, _) => true,
            (Some(p), Some(id)) => bucket(id) < p,
            (Some(p), None) => p >= 100,
        };
        let eligible: Vec<(&Version, &Entry)> = self
            .entries
            .iter()
            .rev()
            .filter(|(v, e)| pin.admits(v) && !e.blocked && !pending.contains(v) && in_share(v))
            .collect();
        let mut held_back_from = None;
        for (v, e) in &eligible {
            if fits(&e.connector) {
                return Some(Resolved { connector: e.connector.clone(), held_back_from });
            }
            held_back_from.get_or_insert_with(|| v.to_string());
        }
        eligible.first().map(|(_, e)| Resolved { connector: e.connector.clone(), held_back_from: None })
    }
}

#[cfg(test)]
mod tests {
    use super::Pin;

    #[test]
    fn pins_are_latest_exact_or_requirements() {
        assert_eq!(Pin::parse("latest"), Ok(Pin::Latest));
        assert!(matches!(Pin::parse("1.2.3"), Ok(Pin::Exact(_))));
        let Ok(Pin::Matching(req)) = Pin::parse("^1.2") else { panic!("a requirement") };
        assert!(req.matches(&"1.9.0".parse().unwrap()) && !req.matches(&"2.0.0".parse().unwrap()));
        assert!(Pin::parse("newest").unwrap_err().contains("semver requirement"));
    }
}
