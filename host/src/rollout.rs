//! Watching staged rollouts: every attempt counts toward its connector
//! version's failure ratio, and a version in rollout whose ratio exceeds
//! the previous version's by `[registry] rollback_margin`, over at least
//! `rollback_min_attempts` of its own attempts, is rolled back — blocked,
//! so its connections return to the previous version — and an operator
//! alert (`switchboard.connector.rolled_back`) is emitted.
//!
//! Counts are this node's, since the rollout started (or since start); a
//! rollback any node decides is shared like any block.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::json;

use crate::app::App;
use crate::outcome::Outcome;
use crate::registry::VersionState;

/// Attempts and failures of one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    attempts: u64,
    failed: u64,
}

impl Counts {
    fn ratio(self) -> f64 {
        if self.attempts == 0 { 0.0 } else { self.failed as f64 / self.attempts as f64 }
    }
}

/// This node's counts by `(connector, version)`; owned by [`App`]. Keys are
/// versions that ran here, so the map is as small as the registry.
#[derive(Debug, Default)]
pub struct RolloutWatch {
    counts: Mutex<HashMap<(String, String), Counts>>,
}

impl RolloutWatch {
    /// Never held across an await.
    fn counts(&self) -> MutexGuard<'_, HashMap<(String, String), Counts>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A rollout of `name@version` starts: its counts and those of every
    /// other version of the connector start again, so both sides of the
    /// comparison cover the same time.
    pub fn started(&self, name: &str) {
        self.counts().retain(|(n, _), _| n != name);
    }
}

/// An attempt of `name@version` ended with `outcome`.
pub async fn attempt_finished(app: &App, name: &str, version: &str, outcome: Outcome) {
    // An interrupted attempt says this process stopped, not that the version failed.
    if outcome == Outcome::Interrupted {
        return;
    }
    let key = (name.to_string(), version.to_string());
    let mine = {
        let mut counts = app.rollout.counts();
        let c = counts.entry(key).or_default();
        c.attempts += 1;
        c.failed += u64::from(outcome != Outcome::Delivered);
        *c
    };
    let release = app.registry().release(name, version);
    let settings = &app.config().registry;
    if release.rollout.is_none() || release.rolled_back || mine.attempts < u64::from(settings.rollback_min_attempts) {
        return;
    }
    let Some(previous) = previous_version(app, name, version) else { return };
    let theirs = app.rollout.counts().get(&(name.to_string(), previous.clone())).copied().unwrap_or_default();
    if mine.ratio() <= theirs.ratio() + settings.rollback_margin {
        return;
    }
    roll_back(app, name, version, &previous, mine, theirs).await;
}

/// The version the connections following `latest` run outside the rollout.
fn previous_version(app: &App, name: &str, version: &str) -> Option<String> {
    let current = semver::Version::parse(version).ok()?;
    let (_, entries) = app.registry().list().into_iter().find(|(n, _)| n == name)?;
    entries
        .iter()
        .rev()
        .map(|e| e.connector.manifest().version.clone())
        .filter(|v| semver::Version::parse(v).is_ok_and(|v| v < current))
        .find(|v| app.registry().state(name, v) == Some(VersionState::Live))
}

async fn roll_back(app: &App, name: &str, version: &str, previous: &str, mine: Counts, theirs: Counts) {
    // One rollback per version, however many attempts cross the line at once.
    let mut first = false;
    if let Err(e) = crate::ops::releases::change(app, name, version, |r| {
        first = !r.rolled_back;
        r.rolled_back = true;
    })
    .await
    {
        tracing::error!(connector = %name, %version, error = %e, "recording a rollback");
    }
    if !first {
        return;
    }
    if let Err(e) = crate::ops::connectors::block(app, name, version).await {
        tracing::error!(connector = %name, %version, error = %e, "blocking a rolled back version");
    }
    tracing::warn!(
        connector = %name, %version, %previous, failure_ratio = mine.ratio(), previous_failure_ratio = theirs.ratio(),
        "connector version rolled back"
    );
    let payload = json!({
        "connector": name,
        "version": version,
        "previous_version": previous,
        "attempts": mine.attempts,
        "failed": mine.failed,
        "failure_ratio": mine.ratio(),
        "previous_attempts": theirs.attempts,
        "previous_failure_ratio": theirs.ratio(),
        "margin": app.config().registry.rollback_margin,
    });
    let serde_json::Value::Object(payload) = payload else { unreachable!("a JSON object literal") };
    crate::alerts::connector_rolled_back(app, name, version, payload).await;
}
