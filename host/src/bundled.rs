//! The connectors that ship inside the `switchboard` binary.
