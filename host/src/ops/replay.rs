//! Running a replay job: requeue every delivery it matches, page by page.
//! Safe to run again after a crash (unfinished jobs are resumed, at start
//! and — on a store several nodes share — by any node once the one running
//! it stops renewing its hold): a delivery already requeued no longer has
//! the matched status.

use crate::app::App;
use crate::model::{ReplayJob, ReplayState, now_ms};
use crate::store::{DeliveryQuery, Page, StoreError};

/// How long a node holds a job it runs; renewed at every page.
const HOLD_MS: i64 = 60_000;

/// Resume every unfinished job no other node is running.
pub async fn resume(app: &App) {
    let pending = match app.store().replays_pending().await {
        Ok(pending) => pending,
        Err(e) => return tracing::error!(error = %e, "listing unfinished replays"),
    };
    for mut job in pending {
        if let Err(e) = run(app, &mut job).await {
            tracing::error!(replay = %job.id, error = %e, "resuming a replay");
        }
    }
}

/// Run the job unless another node holds it (then it is left to that node).
pub async fn run(app: &App, job: &mut ReplayJob) -> Result<(), StoreError> {
    let q = DeliveryQuery {
        status: Some(job.status),
        connection: job.connection.clone(),
        rule: job.rule.clone(),
        since: job.since,
        until: job.until,
    };
    let mut page = Page { cursor: None, limit: 500 };
    loop {
        let now = now_ms();
        if !app.store().claim_replay(&job.workspace, &job.id, now + HOLD_MS, now).await? {
            return Ok(());
        }
        let batch = app.store().deliveries(&job.workspace, &q, &page).await?;
        let now = now_ms();
        for d in &batch {
            job.matched += 1;
            if app.store().requeue(&d.id, now, now).await?.is_some() {
                job.requeued += 1;
            }
        }
        if batch.len() < page.limit {
            break;
        }
        page.cursor = batch.last().map(|d| d.id.clone());
    }
    job.state = ReplayState::Completed;
    app.store().put_replay(job).await?;
    app.wake().notify_one();
    Ok(())
}
