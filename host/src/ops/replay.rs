//! Running replay jobs in the background: count what the job selects
//! (`total`), then requeue it page by page, storing progress (`matched`,
//! `requeued`) after every page so the API, the dashboard and
//! `switchboard replay` can follow it. Safe to run again after a crash
//! (unfinished jobs are resumed at start and — on a store several nodes
//! share — by any node once the one running it stops renewing its hold): a
//! delivery already requeued no longer has the matched status.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::app::App;
use crate::model::{ReplayJob, ReplayState, now_ms};
use crate::store::{DeliveryQuery, Page, StoreError};

/// How long a node holds a job it runs; renewed at every page.
const HOLD_MS: i64 = 60_000;
/// Deliveries read (and requeued) per page; progress is stored per page.
const PAGE: usize = 500;

/// Jobs running in this process: resuming must not start a second run of
/// one (job ids are unique, so one set serves every `App` in the process).
static RUNNING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Run `job` in the background unless this process runs it already.
pub fn start(app: &Arc<App>, mut job: ReplayJob) {
    {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if !running.get_or_insert_with(HashSet::new).insert(job.id.clone()) {
            return;
        }
    }
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = run(&app, &mut job).await {
            tracing::error!(replay = %job.id, error = %e, "replay stopped; it resumes at the next start");
        }
        if let Some(running) = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            running.remove(&job.id);
        }
    });
}

/// Start every unfinished job no other node is running.
pub async fn resume(app: &Arc<App>) {
    match app.store().replays_pending().await {
        Ok(pending) => pending.into_iter().for_each(|job| start(app, job)),
        Err(e) => tracing::error!(error = %e, "listing unfinished replays"),
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
    if !hold(app, job).await? {
        return Ok(());
    }
    if job.total.is_none() {
        job.total = Some(count(app, job, &q).await?);
        job.state = ReplayState::Running;
        save(app, job).await?;
    } else {
        // Resumed: what was requeued no longer matches, and is counted.
        job.matched = job.requeued;
    }
    let mut page = Page { cursor: None, limit: PAGE };
    loop {
        if !hold(app, job).await? {
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
        if !batch.is_empty() {
            app.wake().notify_one();
        }
        if batch.len() < page.limit {
            break;
        }
        save(app, job).await?;
        page.cursor = batch.last().map(|d| d.id.clone());
    }
    job.state = ReplayState::Completed;
    save(app, job).await?;
    Ok(())
}

/// How many deliveries the job selects now.
async fn count(app: &App, job: &ReplayJob, q: &DeliveryQuery) -> Result<u64, StoreError> {
    let (mut total, mut page) = (0, Page { cursor: None, limit: PAGE });
    loop {
        let batch = app.store().deliveries(&job.workspace, q, &page).await?;
        total += batch.len() as u64;
        if batch.len() < page.limit {
            return Ok(total);
        }
        page.cursor = batch.last().map(|d| d.id.clone());
    }
}

async fn hold(app: &App, job: &ReplayJob) -> Result<bool, StoreError> {
    let now = now_ms();
    app.store().claim_replay(&job.workspace, &job.id, now + HOLD_MS, now).await
}

async fn save(app: &App, job: &mut ReplayJob) -> Result<(), StoreError> {
    job.updated_at = now_ms();
    app.store().put_replay(job).await
}
