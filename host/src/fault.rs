//! Test-only fault hooks, compiled in only with the `fault-injection`
//! feature (the integration suite turns it on; release builds never have
//! it). They let a test make the process die at a precise moment.

/// `SB_TEST_ABORT_ON_EVENT=<event name>` (not `SWITCHBOARD_*`: that prefix is configuration): abort the whole process
/// when an attempt for an event of that name starts — a delivery that
/// kills its process, which must not crash-loop the service.
pub fn before_attempt(event_name: &str) {
    if std::env::var("SB_TEST_ABORT_ON_EVENT").is_ok_and(|poison| poison == event_name) {
        eprintln!("switchboard: fault injection: aborting on an attempt for `{event_name}`");
        std::process::abort();
    }
}
