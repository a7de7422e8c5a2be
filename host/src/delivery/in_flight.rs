//! Attempts in flight per workspace: what the store needs to give each
//! workspace its fair share of the worker pool when it claims
//! (`ClaimPlan::workspace_room`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<String, usize>>>);

/// One attempt of a workspace counted in flight until dropped.
#[derive(Debug)]
pub struct Started {
    all: InFlight,
    workspace: String,
}

impl InFlight {
    pub fn start(&self, workspace: &str) -> Started {
        *self.lock().entry(workspace.to_string()).or_default() += 1;
        Started { all: self.clone(), workspace: workspace.to_string() }
    }

    pub fn snapshot(&self) -> HashMap<String, usize> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let mut all = self.all.lock();
        if let Some(n) = all.get_mut(&self.workspace) {
            *n -= 1;
            if *n == 0 {
                all.remove(&self.workspace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_attempts_and_idle_workspaces_leave_the_map() {
        let in_flight = InFlight::default();
        let a1 = in_flight.start("a");
        let a2 = in_flight.start("a");
        let b = in_flight.start("b");
        assert_eq!(in_flight.snapshot(), HashMap::from([("a".into(), 2), ("b".into(), 1)]));
        drop((a1, b));
        assert_eq!(in_flight.snapshot(), HashMap::from([("a".into(), 1)]));
        drop(a2);
        assert!(in_flight.snapshot().is_empty());
    }
}
