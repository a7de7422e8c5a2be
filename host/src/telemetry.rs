//! Logging: the `tracing` subscriber `[log]` asks for.
