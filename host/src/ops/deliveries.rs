//! Delivery operations a person asks for: retry now, cancel, and replays
//! (requeue every final delivery a filter matches; the job itself runs in
//! `replay.rs`).

use std::sync::Arc;

use super::{OpError, Result};
use crate::app::App;
use crate::model::{Delivery, DeliveryStatus, ReplayJob, ReplayState, new_id, now_ms};

/// The workspace's delivery. Deliveries are keyed globally; the workspace
/// check keeps tenants apart.
pub async fn load(app: &App, workspace: &str, id: &str) -> Result<Delivery> {
    app.store()
        .delivery(id)
        .await?
        .filter(|d| d.workspace == workspace)
        .ok_or_else(|| OpError::not_found("delivery", id))
}

/// Make a delivery due now (an attempt sooner than its retry schedule, or
/// once more after it failed).
pub async fn retry(app: &App, workspace: &str, id: &str) -> Result<Delivery> {
    let d = load(app, workspace, id).await?;
    let now = now_ms();
    if d.lease.is_some() {
        return Err(OpError::TooEarly("an attempt is in flight; try again when it has finished".into()));
    }
    if d.due_at.is_some_and(|at| at <= now + 1000) {
        return Err(OpError::TooEarly("the delivery is already due within a second".into()));
    }
    let updated =
        app.store().requeue(id, now, now).await?.ok_or_else(|| OpError::TooEarly("an attempt is in flight".into()))?;
    app.wake().notify_one();
    Ok(updated)
}

/// Stop a delivery for good.
pub async fn cancel(app: &App, workspace: &str, id: &str) -> Result<Delivery> {
    let d = load(app, workspace, id).await?;
    if d.status.is_final() {
        return Err(OpError::Conflict(format!("the delivery is already {}", d.status.as_str())));
    }
    app.store().cancel(id, now_ms()).await?.ok_or_else(|| OpError::Conflict("the delivery is already final".into()))
}

/// What a replay selects: final deliveries of one status, optionally of one
/// connection or rule, created within a time range.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub status: DeliveryStatus,
    pub connection: Option<String>,
    pub rule: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Record a replay job (durably, before any work: a crash mid-replay
/// resumes it at start), then start it in the background; the answer is
/// the job as recorded, its progress is read with `GET …/replays/{id}`.
pub async fn replay(app: &Arc<App>, workspace: &str, filter: ReplayFilter) -> Result<ReplayJob> {
    if app.store().workspace(workspace).await?.is_none() {
        return Err(OpError::not_found("workspace", workspace));
    }
    if !matches!(filter.status, DeliveryStatus::Failed | DeliveryStatus::Completed | DeliveryStatus::Canceled) {
        return Err(OpError::Invalid {
            field: "status".into(),
            message: "must be failed, completed or canceled".into(),
        });
    }
    let job = ReplayJob {
        id: new_id("rpl_"),
        workspace: workspace.to_string(),
        status: filter.status,
        connection: filter.connection,
        rule: filter.rule,
        since: filter.since,
        until: filter.until,
        matched: 0,
        requeued: 0,
        state: ReplayState::Pending,
        total: None,
        created_at: now_ms(),
        updated_at: now_ms(),
    };
    app.store().put_replay(&job).await?;
    super::replay::start(app, job.clone());
    Ok(job)
}
