//! Connector versions over their life: schemas enforced, safe upgrades, approval, staged rollout.
