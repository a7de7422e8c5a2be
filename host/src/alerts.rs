//! Operator alerts: Switchboard's own events about connections, emitted into
//! the workspace `[alerts] workspace` names.

use crate::app::App;
use crate::attempt::AttemptRecord;
use crate::model::Connection;

/// A connection was paused (`switchboard.connection.paused`).
pub async fn connection_paused(app: &App, connection: &Connection) {
    let _ = (app, connection);
}

/// An attempt finished: counts toward the connection's failure ratio
/// (`switchboard.connection.failing`).
pub async fn attempt_finished(app: &App, connection: &Connection, record: &AttemptRecord) {
    let _ = (app, connection, record);
}
