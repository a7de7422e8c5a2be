//! Switchboard's integration suite: one binary, real sandbox, real HTTP on
//! loopback. Each module reads as the specification of one product promise.

mod alerts;
mod author;
mod bundled;
mod cli;
mod cluster;
mod connector_test;
mod connectors;
mod crash;
mod crash_loop;
mod dashboard;
mod delivery;
mod devmode;
mod docs;
mod engine;
mod fuzz;
mod ingest;
mod isolation;
mod lifecycle;
mod metrics;
mod onboarding;
mod openapi;
mod operator;
mod registry;
mod rerun;
mod sandbox;
mod secrecy;
mod serve;
mod soak;
mod webhook;
