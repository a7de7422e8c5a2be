//! Moving an install from the embedded store to PostgreSQL (`switchboard
//! store copy`): every record a user depends on, read from a stopped node's
//! store and written to the database as it is.
//!
//! Copied: workspaces, API keys, connections (secrets stay sealed: the new
//! nodes need the same master key), rules, events with their deliveries in
//! their current state, every attempt record, replay jobs (pending and
//! completed) and idempotency keys with their times, so a client retrying
//! a request after the move is still recognised; and, when asked, the
//! connector versions uploaded to the node with its blocks (`uploads.rs`).
//! Not copied: the connector cache — a cache, which connectors fill again.
//!
//! A delivery that was leased when the source stopped (an attempt cut short)
//! arrives queued: the lease cleared, due when the lease would have expired,
//! so the new cluster runs it again (at-least-once, as after any crash).
//!
//! The target's schema is brought up to date when it is opened
//! ([`PgStore::open`]), before anything is written. What the copy holds
//! does not grow with the store (opening the source costs what starting a
//! node on it does): events are read a page at a time ([`EVENT_PAGE`],
//! with their deliveries and attempts), and each page is written in one
//! transaction while the next is read; the catalog, replay jobs and
//! idempotency keys are paged too. Every write upserts, so a copy
//! interrupted or repeated can be run again over the same database.

mod uploads;

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::{EmbeddedStore, Engine, EventQuery, Page, PgStore, Store, StoreError};
use crate::attempt::AttemptRecord;
use crate::model::{Delivery, DeliveryStatus, Event};

/// Events read (with their deliveries and attempts) and written at a time.
pub const EVENT_PAGE: usize = page(100);
/// Connections, rules, workspaces, replay jobs read at a time.
const CATALOG_PAGE: usize = page(500);
/// Idempotency keys read and written at a time.
const KEY_PAGE: usize = page(1_000);

/// `n`, or 2 in the crate's tests: their few records then span several
/// pages, so every cursor is followed.
const fn page(n: usize) -> usize {
    if cfg!(test) { 2 } else { n }
}

/// An idempotency key as both stores keep it: its hash in a workspace, the
/// event it first made, and when (ms) — the 24 h window counts from `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub workspace: String,
    pub key: String,
    pub event_id: String,
    pub at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Copy into a database that already holds records (see
    /// [`CopyError::NotEmpty`]): records with the same ids are replaced by
    /// the source's, others are kept.
    pub force: bool,
    /// The node's uploaded connectors (`<data_dir>/connectors`), to share
    /// with the cluster.
    pub uploads: Option<PathBuf>,
}

/// How many records of each kind were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub workspaces: u64,
    pub keys: u64,
    pub connections: u64,
    pub rules: u64,
    pub events: u64,
    pub deliveries: u64,
    /// Of `deliveries`: leased in the source, queued in the copy.
    pub requeued: u64,
    pub attempts: u64,
    pub replays: u64,
    pub idempotency_keys: u64,
    pub connector_versions: u64,
    pub blocked_versions: u64,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} workspaces, {} API keys, {} connections, {} rules, {} events, {} deliveries ({} leased, now queued), \
             {} attempts, {} replay jobs, {} idempotency keys, {} uploaded connector versions ({} blocked)",
            self.workspaces,
            self.keys,
            self.connections,
            self.rules,
            self.events,
            self.deliveries,
            self.requeued,
            self.attempts,
            self.replays,
            self.idempotency_keys,
            self.connector_versions,
            self.blocked_versions
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{} holds no embedded store (expected store/fjall or store/sled in it)", .0.display())]
    NoSource(PathBuf),
    #[error("{} holds both store/fjall and store/sled: say which to copy (--engine)", .0.display())]
    TwoSources(PathBuf),
    #[error("the store in {} is in use by another process: stop the `switchboard serve` using it first", .path.display())]
    SourceInUse {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("reading the embedded store: {0}")]
    Read(#[source] StoreError),
    #[error("writing to PostgreSQL: {0}")]
    Write(#[source] StoreError),
    #[error("reading the uploaded connectors ({}): {source}", .path.display())]
    Uploads {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// "Non-empty": the database holds a workspace or an event.
    #[error(
        "the database is not empty ({workspaces} workspaces, {events} events): copy into an empty database, \
         or pass --force to copy over it (records with the same ids are replaced)"
    )]
    NotEmpty { workspaces: i64, events: i64 },
}

/// The engine whose store `data_dir` holds: `asked` if given, else the one
/// there is.
pub fn source_engine(data_dir: &Path, asked: Option<Engine>) -> Result<Engine, CopyError> {
    if let Some(engine) = asked {
        return Ok(engine);
    }
    match EmbeddedStore::engines_in(data_dir)[..] {
        [engine] => Ok(engine),
        [] => Err(CopyError::NoSource(data_dir.to_path_buf())),
        _ => Err(CopyError::TwoSources(data_dir.to_path_buf())),
    }
}

/// Copy everything from `source` into `target` (opened, so migrated),
/// reporting on `progress`: its length is the number of events, its
/// position the events copied, its message the step.
pub async fn copy(
    source: &EmbeddedStore,
    target: &PgStore,
    options: &CopyOptions,
    progress: &ProgressBar,
) -> Result<Copied, CopyError> {
    let (workspaces, events) = target.occupancy().await.map_err(CopyError::Write)?;
    if (workspaces > 0 || events > 0) && !options.force {
        return Err(CopyError::NotEmpty { workspaces, events });
    }
    progress.set_message("counting events");
    progress.set_length(source.count_events().await.map_err(CopyError::Read)?);
    let mut copied = Copied::default();
    let mut cursor = None;
    loop {
        let page = Page { cursor: cursor.take(), limit: CATALOG_PAGE };
        let workspaces = source.workspaces(&page).await.map_err(CopyError::Read)?;
        for ws in &workspaces {
            progress.set_message(format!("workspace {}", ws.id));
            target.put_workspace(ws).await.map_err(CopyError::Write)?;
            copied.workspaces += 1;
            copy_catalog(source, target, &ws.id, &mut copied).await?;
            copy_events(source, target, &ws.id, &mut copied, progress).await?;
        }
        cursor = next_cursor(&workspaces, CATALOG_PAGE, |w| w.id.clone());
        if cursor.is_none() {
            break;
        }
    }
    progress.set_message("replay jobs");
    copy_replays(source, target, &mut copied).await?;
    progress.set_message("idempotency keys");
    copy_idempotency(source, target, &mut copied).await?;
    if let Some(dir) = &options.uploads {
        progress.set_message("uploaded connectors");
        uploads::copy_uploads(dir, target, &mut copied).await?;
    }
    Ok(copied)
}

/// Where the page after `page` starts: after its last record, unless it was
/// short (then it was the last).
fn next_cursor<T>(page: &[T], limit: usize, cursor_of: impl Fn(&T) -> String) -> Option<String> {
    if page.len() < limit { None } else { page.last().map(cursor_of) }
}

/// A workspace's keys, connections and rules, through the `Store` trait.
async fn copy_catalog(
    source: &EmbeddedStore,
    target: &PgStore,
    ws: &str,
    copied: &mut Copied,
) -> Result<(), CopyError> {
    for key in source.keys(ws).await.map_err(CopyError::Read)? {
        target.put_key(&key).await.map_err(CopyError::Write)?;
        copied.keys += 1;
    }
    let mut cursor = None;
    loop {
        let page = Page { cursor: cursor.take(), limit: CATALOG_PAGE };
        let connections = source.connections(ws, &page).await.map_err(CopyError::Read)?;
        for c in &connections {
            target.put_connection(c).await.map_err(CopyError::Write)?;
        }
        copied.connections += connections.len() as u64;
        cursor = next_cursor(&connections, CATALOG_PAGE, |c| c.id.clone());
        if cursor.is_none() {
            break;
        }
    }
    loop {
        let page = Page { cursor: cursor.take(), limit: CATALOG_PAGE };
        let rules = source.rules(ws, &page).await.map_err(CopyError::Read)?;
        for r in &rules {
            target.put_rule(r).await.map_err(CopyError::Write)?;
        }
        copied.rules += rules.len() as u64;
        cursor = next_cursor(&rules, CATALOG_PAGE, |r| r.id.clone());
        if cursor.is_none() {
            return Ok(());
        }
    }
}

/// One page of a workspace's events with everything hanging off them.
#[derive(Default)]
struct EventPage {
    events: Vec<Event>,
    deliveries: Vec<Delivery>,
    /// (delivery id, record).
    attempts: Vec<(String, AttemptRecord)>,
    requeued: u64,
}

/// A workspace's events a page at a time: each page is written while the
/// next one is read, so at most two are held.
async fn copy_events(
    source: &EmbeddedStore,
    target: &PgStore,
    ws: &str,
    copied: &mut Copied,
    progress: &ProgressBar,
) -> Result<(), CopyError> {
    let mut page = read_events(source, ws, None).await?;
    while !page.events.is_empty() {
        let cursor = next_cursor(&page.events, EVENT_PAGE, |e| e.id.clone());
        let write = target.import_events(&page.events, &page.deliveries, &page.attempts);
        let read = async {
            match cursor {
                Some(cursor) => read_events(source, ws, Some(cursor)).await,
                None => Ok(EventPage::default()), // a short page was the last
            }
        };
        let (written, next) = tokio::join!(write, read);
        written.map_err(CopyError::Write)?;
        copied.events += page.events.len() as u64;
        copied.deliveries += page.deliveries.len() as u64;
        copied.attempts += page.attempts.len() as u64;
        copied.requeued += page.requeued;
        progress.inc(page.events.len() as u64);
        page = next?;
    }
    Ok(())
}

async fn read_events(source: &EmbeddedStore, ws: &str, cursor: Option<String>) -> Result<EventPage, CopyError> {
    let read = async {
        let mut page = EventPage {
            events: source.events(ws, &EventQuery::default(), &Page { cursor, limit: EVENT_PAGE }).await?,
            ..EventPage::default()
        };
        for event in &page.events {
            for mut d in source.deliveries_of(event).await? {
                page.attempts.extend(source.attempts(&d.id).await?.into_iter().map(|a| (d.id.clone(), a)));
                if requeue_leased(&mut d) {
                    page.requeued += 1;
                }
                page.deliveries.push(d);
            }
        }
        Ok(page)
    };
    read.await.map_err(CopyError::Read)
}

/// A leased delivery — its attempt was cut short when the source stopped —
/// becomes queued: no lease, due when the lease would have expired (its
/// `due_at` while leased), so the new cluster runs it again. Returns
/// whether it was leased.
fn requeue_leased(d: &mut Delivery) -> bool {
    if d.lease.take().is_none() {
        return false;
    }
    d.status = DeliveryStatus::queued(d.attempt_count);
    d.due_at = d.due_at.or(Some(d.updated_at));
    true
}

/// Every replay job, pending or completed (the trait lists pending ones only).
async fn copy_replays(source: &EmbeddedStore, target: &PgStore, copied: &mut Copied) -> Result<(), CopyError> {
    let mut cursor = None;
    loop {
        let page = Page { cursor: cursor.take(), limit: CATALOG_PAGE };
        let jobs = source.replay_jobs(&page).await.map_err(CopyError::Read)?;
        for job in &jobs {
            target.put_replay(job).await.map_err(CopyError::Write)?;
        }
        copied.replays += jobs.len() as u64;
        cursor = next_cursor(&jobs, CATALOG_PAGE, EmbeddedStore::replay_cursor);
        if cursor.is_none() {
            return Ok(());
        }
    }
}

async fn copy_idempotency(source: &EmbeddedStore, target: &PgStore, copied: &mut Copied) -> Result<(), CopyError> {
    let mut cursor = None;
    loop {
        let page = Page { cursor: cursor.take(), limit: KEY_PAGE };
        let keys = source.idempotency_keys(&page).await.map_err(CopyError::Read)?;
        target.import_idempotency(&keys).await.map_err(CopyError::Write)?;
        copied.idempotency_keys += keys.len() as u64;
        cursor = next_cursor(&keys, KEY_PAGE, EmbeddedStore::idempotency_cursor);
        if cursor.is_none() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
