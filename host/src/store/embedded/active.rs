//! The in-memory index of every delivery not yet final: the per-connection
//! delay queue, the connections' earliest due times, active deliveries by
//! (workspace, status) and events still processing.
//!
//! Why memory: these entries change several times per delivery, and in an
//! LSM engine every change leaves a tombstone that later range scans must
//! step over — a queue kept on disk gets slower the more it is used. The
//! delivery records stay the truth on disk (with an `N/<id>` marker per
//! active delivery); this index is rebuilt from them at open.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::model::{Delivery, DeliveryStatus};

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    workspace: String,
    connection: String,
    event: String,
    status: DeliveryStatus,
    due_at: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Active {
    entries: HashMap<String, Entry>,
    /// Per connection: (due time, delivery id).
    queues: HashMap<String, BTreeSet<(i64, String)>>,
    /// (earliest due time, connection) for every non-empty queue.
    heads: BTreeSet<(i64, String)>,
    /// The workspace of every connection with a non-empty queue.
    owner: HashMap<String, String>,
    /// The workspace that took the last turn in a claim; the next claim
    /// starts with the one after it, so turns go round across claims.
    last_served: String,
    by_status: HashMap<(String, DeliveryStatus), BTreeSet<String>>,
    /// Per workspace: event id → its active deliveries.
    events: HashMap<String, BTreeMap<String, u32>>,
}

impl Active {
    /// Make the index agree with `d` (insert, move or, when final, remove).
    pub fn apply(&mut self, d: &Delivery) {
        self.remove(&d.id);
        if d.status.is_final() {
            return;
        }
        let entry = Entry {
            workspace: d.workspace.clone(),
            connection: d.connection.clone(),
            event: d.event_id.clone(),
            status: d.status,
            due_at: d.due_at,
        };
        if let Some(at) = entry.due_at {
            self.owner.entry(entry.connection.clone()).or_insert_with(|| entry.workspace.clone());
            let queue = self.queues.entry(entry.connection.clone()).or_default();
            let old_head = queue.first().map(|(t, _)| *t);
            queue.insert((at, d.id.clone()));
            self.reset_head(&entry.connection, old_head);
        }
        self.by_status.entry((entry.workspace.clone(), entry.status)).or_default().insert(d.id.clone());
        *self.events.entry(entry.workspace.clone()).or_default().entry(entry.event.clone()).or_default() += 1;
        self.entries.insert(d.id.clone(), entry);
    }

    fn remove(&mut self, id: &str) {
        let Some(e) = self.entries.remove(id) else { return };
        if let Some(at) = e.due_at
            && let Some(queue) = self.queues.get_mut(&e.connection)
        {
            let old_head = queue.first().map(|(t, _)| *t);
            queue.remove(&(at, id.to_string()));
            if queue.is_empty() {
                self.queues.remove(&e.connection);
                self.owner.remove(&e.connection);
            }
            self.reset_head(&e.connection, old_head);
        }
        let key = (e.workspace.clone(), e.status);
        if let Some(ids) = self.by_status.get_mut(&key) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_status.remove(&key);
            }
        }
        if let Some(events) = self.events.get_mut(&e.workspace)
            && let Some(n) = events.get_mut(&e.event)
        {
            *n -= 1;
            if *n == 0 {
                events.remove(&e.event);
            }
        }
    }

    fn reset_head(&mut self, connection: &str, old_head: Option<i64>) {
        let new_head = self.queues.get(connection).and_then(|q| q.first().map(|(t, _)| *t));
        if old_head != new_head {
            if let Some(t) = old_head {
                self.heads.remove(&(t, connection.to_string()));
            }
            if let Some(t) = new_head {
                self.heads.insert((t, connection.to_string()));
            }
        }
    }

    /// Connections with something due at `now`, most overdue first.
    pub fn due_connections(&self, now: i64) -> Vec<String> {
        self.heads.iter().take_while(|(at, _)| *at <= now).map(|(_, c)| c.clone()).collect()
    }

    /// Workspaces with something due at `now`, each with its due
    /// connections (most overdue first), in turn order: the workspaces after
    /// the one served last (by id), then the rest.
    pub fn due_by_workspace(&self, now: i64) -> Vec<(String, VecDeque<String>)> {
        let mut by_workspace: BTreeMap<&str, VecDeque<String>> = BTreeMap::new();
        for connection in self.due_connections(now) {
            let workspace = self.owner.get(&connection).map_or("", String::as_str);
            by_workspace.entry(workspace).or_default().push_back(connection);
        }
        let (before, after): (Vec<_>, Vec<_>) =
            by_workspace.into_iter().partition(|(ws, _)| *ws <= self.last_served.as_str());
        after.into_iter().chain(before).map(|(ws, c)| (ws.to_string(), c)).collect()
    }

    /// Record that `workspace` took a turn (see [`Self::due_by_workspace`]).
    pub fn served(&mut self, workspace: &str) {
        workspace.clone_into(&mut self.last_served);
    }

    /// Up to `n` (due time, id) of `connection` due at `now`, earliest first.
    pub fn due_in(&self, connection: &str, now: i64, n: usize) -> Vec<(i64, String)> {
        let Some(queue) = self.queues.get(connection) else { return Vec::new() };
        queue.iter().take_while(|(at, _)| *at <= now).take(n).cloned().collect()
    }

    /// The earliest due time of any queue head later than `after`.
    pub fn next_due_after(&self, after: i64) -> Option<i64> {
        self.heads.range((after.saturating_add(1), String::new())..).next().map(|(at, _)| *at)
    }

    /// How many active deliveries are in `status`, in every workspace: one
    /// set length per workspace, never a walk over the deliveries.
    pub fn count(&self, status: DeliveryStatus) -> usize {
        self.by_status.iter().filter(|((_, s), _)| *s == status).map(|(_, ids)| ids.len()).sum()
    }

    /// The earliest due time of all, leases included: when it has passed,
    /// that delivery is due (an expired lease is claimed again).
    pub fn earliest_due(&self) -> Option<i64> {
        self.heads.first().map(|(at, _)| *at)
    }

    /// Active delivery ids of a workspace in one status, after `cursor`.
    pub fn with_status(&self, workspace: &str, status: DeliveryStatus, cursor: Option<&str>) -> Vec<String> {
        let Some(ids) = self.by_status.get(&(workspace.to_string(), status)) else { return Vec::new() };
        match cursor {
            Some(c) => {
                ids.range::<str, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded)).cloned().collect()
            }
            None => ids.iter().cloned().collect(),
        }
    }

    /// A connection's deliveries in `waiting`.
    pub fn waiting(&self, connection: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.connection == connection && e.status == DeliveryStatus::Waiting)
            .map(|(id, _)| id.clone())
            .collect();
        out.sort();
        out
    }

    /// Events of a workspace with deliveries still active, after `cursor`.
    pub fn processing_events(&self, workspace: &str, cursor: Option<&str>) -> Vec<String> {
        let Some(events) = self.events.get(workspace) else { return Vec::new() };
        match cursor {
            Some(c) => events
                .range::<str, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                .map(|(id, _)| id.clone())
                .collect(),
            None => events.keys().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, connection: &str, status: DeliveryStatus, due_at: Option<i64>) -> Delivery {
        Delivery {
            id: id.into(),
            workspace: "ws".into(),
            event_id: format!("evt_{id}"),
            rule: "r".into(),
            connection: connection.into(),
            connector: "webhook".into(),
            action: "a".into(),
            fields: serde_json::json!({}),
            status,
            attempt_count: 0,
            due_at,
            lease: None,
            connector_version: None,
            last_error: None,
            last_outcome: None,
            interruptions: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn heads_follow_each_connections_earliest_due_time() {
        let mut a = Active::default();
        a.apply(&delivery("d1", "c1", DeliveryStatus::Pending, Some(30)));
        a.apply(&delivery("d2", "c1", DeliveryStatus::Pending, Some(10)));
        a.apply(&delivery("d3", "c2", DeliveryStatus::Pending, Some(20)));
        assert_eq!(a.due_connections(25), ["c1", "c2"]);
        assert_eq!(a.due_in("c1", 100, 10), [(10, "d2".to_string()), (30, "d1".to_string())]);
        a.apply(&delivery("d2", "c1", DeliveryStatus::Processing, Some(1000)));
        assert_eq!(a.due_connections(25), ["c2"], "c1's head moved to 30");
        assert_eq!(a.next_due_after(25), Some(30));
        a.apply(&delivery("d2", "c1", DeliveryStatus::Completed, None));
        a.apply(&delivery("d1", "c1", DeliveryStatus::Waiting, None));
        assert_eq!(a.waiting("c1"), ["d1"]);
        assert_eq!(a.due_connections(i64::MAX), ["c2"]);
        assert_eq!(a.with_status("ws", DeliveryStatus::Waiting, None), ["d1"]);
        assert_eq!(a.processing_events("ws", None), ["evt_d1", "evt_d3"], "final deliveries leave the index");
    }
}
