//! Accepting events in PostgreSQL: a whole ingest group in one transaction
//! (its idempotency keys claimed first, then its events and deliveries in
//! multi-row inserts), answered once committed. Other nodes hear of the new
//! work through `NOTIFY` (see `notify.rs`), sent on commit.

use std::collections::{HashMap, HashSet};

use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};

use super::super::{Accept, Accepted, Result, StoreError};
use super::notify;
use super::rows::{self, DELIVERY_INSERT_COLUMNS, EVENT_COLUMNS, bind_delivery, bind_event};
use crate::model::{Delivery, Event};

/// An idempotency key is remembered this long after the event it made.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// PostgreSQL takes at most this many parameters in one statement.
const MAX_BINDS: usize = u16::MAX as usize;
const EVENT_BINDS: usize = 9;
const DELIVERY_BINDS: usize = 18;

/// What becomes of one accept in the group.
enum Fate {
    New,
    /// Its key was used earlier in the same group: a duplicate of that accept.
    SameAs(usize),
    /// Its key is stored, within the window: a duplicate of this event.
    Known(Event),
}

pub async fn accept_all(pool: &PgPool, accepts: Vec<Accept>) -> Result<Vec<Accepted>> {
    if accepts.is_empty() {
        return Ok(Vec::new());
    }
    let mut fates = Vec::with_capacity(accepts.len());
    let mut first_use: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, a) in accepts.iter().enumerate() {
        let key = a.idempotency.as_deref().map(|key| (a.event.workspace.as_str(), key));
        match key.and_then(|key| first_use.get(&key)) {
            Some(&first) => fates.push(Fate::SameAs(first)),
            None => {
                if let Some(key) = key {
                    first_use.insert(key, i);
                }
                fates.push(Fate::New);
            }
        }
    }
    let mut tx = pool.begin().await?;
    for (i, original) in claim_keys(&mut tx, &accepts, first_use.into_values().collect()).await? {
        fates[i] = Fate::Known(original);
    }
    let new: Vec<&Accept> =
        accepts.iter().zip(&fates).filter(|(_, fate)| matches!(fate, Fate::New)).map(|(a, _)| a).collect();
    insert_events(&mut tx, &new).await?;
    let deliveries: Vec<&Delivery> = new.iter().flat_map(|a| &a.deliveries).collect();
    insert_deliveries(&mut tx, &deliveries).await?;
    if !deliveries.is_empty() {
        notify::work(&mut *tx).await?;
    }
    // The group's one WAL flush: what ingest waits on to be durable.
    let started = std::time::Instant::now();
    tx.commit().await?;
    crate::metrics::store_synced(started.elapsed());

    let mut answers: Vec<Accepted> = Vec::with_capacity(accepts.len());
    for (fate, a) in fates.into_iter().zip(accepts) {
        answers.push(match fate {
            Fate::New => Accepted::New(a.event),
            Fate::SameAs(first) => Accepted::Duplicate(match &answers[first] {
                Accepted::New(e) | Accepted::Duplicate(e) => e.clone(),
            }),
            Fate::Known(original) => Accepted::Duplicate(original),
        });
    }
    Ok(answers)
}

/// Record the keys of `keyed` (indexes into `accepts`, each key once) for
/// their events, unless a key is already known for an event within the
/// window. Returns the known ones: index → the original event.
///
/// One statement: an insert that, on a known key, takes the record over only
/// if it is out of the window or its event is gone (swept); what it does not
/// take over is a duplicate. It locks every conflicting record, so the
/// original event cannot be swept before it is read back. Keys go in sorted,
/// so two groups sharing keys lock them in the same order.
async fn claim_keys(
    tx: &mut Transaction<'_, Postgres>,
    accepts: &[Accept],
    mut keyed: Vec<usize>,
) -> Result<Vec<(usize, Event)>> {
    let key_of = |i: usize| (accepts[i].event.workspace.as_str(), accepts[i].idempotency.as_deref().unwrap_or(""));
    keyed.sort_by_key(|i| key_of(*i));
    if keyed.is_empty() {
        return Ok(Vec::new());
    }
    let (workspaces, keys): (Vec<&str>, Vec<&str>) = keyed.iter().map(|i| key_of(*i)).unzip();
    let events: Vec<&str> = keyed.iter().map(|i| accepts[*i].event.id.as_str()).collect();
    let ats: Vec<i64> = keyed.iter().map(|i| accepts[*i].event.created_at).collect();
    let claimed: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO idempotency AS i (workspace, key, event_id, at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) \
         ON CONFLICT (workspace, key) DO UPDATE SET event_id = EXCLUDED.event_id, at = EXCLUDED.at \
         WHERE EXCLUDED.at - i.at >= $5 \
            OR NOT EXISTS (SELECT 1 FROM events e WHERE e.workspace = i.workspace AND e.id = i.event_id) \
         RETURNING workspace, key",
    )
    .bind(&workspaces)
    .bind(&keys)
    .bind(&events)
    .bind(&ats)
    .bind(IDEMPOTENCY_WINDOW_MS)
    .fetch_all(&mut **tx)
    .await?;
    let claimed: HashSet<(&str, &str)> = claimed.iter().map(|(ws, key)| (ws.as_str(), key.as_str())).collect();
    keyed.retain(|i| !claimed.contains(&key_of(*i)));
    if keyed.is_empty() {
        return Ok(Vec::new());
    }
    let (workspaces, keys): (Vec<&str>, Vec<&str>) = keyed.iter().map(|i| key_of(*i)).unzip();
    let sql = format!(
        "SELECT i.key AS idempotency_key, {} FROM idempotency i \
         JOIN events e ON e.workspace = i.workspace AND e.id = i.event_id \
         WHERE (i.workspace, i.key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        prefixed("e", EVENT_COLUMNS)
    );
    let rows = sqlx::query(&sql).bind(&workspaces).bind(&keys).fetch_all(&mut **tx).await?;
    let mut originals: HashMap<(String, String), Event> = HashMap::new();
    for row in &rows {
        let key: String = sqlx::Row::try_get(row, "idempotency_key")?;
        let event = rows::event(row)?;
        originals.insert((event.workspace.clone(), key), event);
    }
    keyed
        .into_iter()
        .map(|i| {
            let (ws, key) = key_of(i);
            match originals.get(&(ws.to_string(), key.to_string())) {
                Some(original) => Ok((i, original.clone())),
                None => {
                    Err(StoreError::Engine(format!("the idempotency record of workspace {ws} lost its event").into()))
                }
            }
        })
        .collect()
}

/// `a, b` → `t.a, t.b`.
pub fn prefixed(table: &str, columns: &str) -> String {
    columns.split(',').map(|c| format!("{table}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

async fn insert_events(tx: &mut Transaction<'_, Postgres>, accepts: &[&Accept]) -> Result<()> {
    for chunk in accepts.chunks(MAX_BINDS / EVENT_BINDS) {
        let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO events ({EVENT_COLUMNS}) "));
        insert.push_values(chunk, |mut row, a| bind_event(&mut row, &a.event));
        // Each group size is a new statement text: not worth preparing.
        insert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_deliveries(tx: &mut Transaction<'_, Postgres>, deliveries: &[&Delivery]) -> Result<()> {
    for chunk in deliveries.chunks(MAX_BINDS / DELIVERY_BINDS) {
        let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO deliveries ({DELIVERY_INSERT_COLUMNS}) "));
        insert.push_values(chunk, |mut row, d| bind_delivery(&mut row, d));
        insert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}
