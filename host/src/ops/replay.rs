//! Running a replay job: requeue every delivery it matches, page by page.
//! Safe to run again after a crash (the server resumes unfinished jobs at
//! start): a delivery already requeued no longer has the matched status.

use crate::app::App;
use crate::model::{ReplayJob, ReplayState, now_ms};
use crate::store::{DeliveryQuery, Page, StoreError};

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
