//! Re-running a recorded attempt on another connector version, against the
//! responses that attempt recorded: no network.
