//! Operator alerts: Switchboard's own events about connections, emitted into
//! the workspace `[alerts] workspace` names.
