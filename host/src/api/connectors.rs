//! The connector registry API (admin): upload a component as a new version,
//! list versions, delete, block and unblock one (the rules are in
//! `ops::connectors`); and a workspace's view of the connectors it has
//! enabled through its connections.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};

use super::auth::{AdminOnly, WorkspaceAccess};
use super::views::{BlockView, ConnectorView, EnabledConnection, EnabledConnector, List, UploadedView, VersionView};
use super::{Answer, ApiError, AppState, Json, Path};
use crate::ops;
use crate::store::Page;

/// Components larger than this are refused before they are read further.
pub const MAX_COMPONENT_BYTES: usize = 10 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/connectors", get(list))
        .route("/api/v1/connectors/{name}", put(upload).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)))
        .route("/api/v1/connectors/{name}/versions", get(versions))
        .route("/api/v1/connectors/{name}/versions/{version}", delete(remove))
        .route("/api/v1/connectors/{name}/versions/{version}/block", post(block))
        .route("/api/v1/connectors/{name}/versions/{version}/unblock", post(unblock))
        .route("/api/v1/workspaces/{ws}/connectors", get(enabled))
}

async fn list(State(app): State<AppState>, _admin: AdminOnly) -> Answer<List<ConnectorView>> {
    let records = app.registry().list().iter().map(|(name, versions)| ConnectorView::new(name, versions)).collect();
    Ok(Json(List::all(records)))
}

async fn versions(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path(name): Path<String>,
) -> Answer<List<VersionView>> {
    let all = app.registry().list();
    let (_, versions) = all.iter().find(|(n, _)| *n == name).ok_or_else(|| ApiError::not_found("connector", &name))?;
    Ok(Json(List::all(versions.iter().map(Into::into).collect())))
}

async fn upload(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<UploadedView>), ApiError> {
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a component may be at most {MAX_COMPONENT_BYTES} bytes"),
        ),
        _ => ApiError::bad_request(format!("cannot read the body: {e}")),
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the body must be the component's bytes (application/wasm)"));
    }
    let manifest = ops::connectors::upload(&app, &name, &bytes).await?;
    Ok((StatusCode::CREATED, Json(UploadedView { name, version: manifest.version.clone(), manifest })))
}

async fn remove(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::connectors::remove(&app, &name, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the workspace has enabled: its connections grouped by connector,
/// with the version each resolves to now and its health.
async fn enabled(State(app): State<AppState>, access: WorkspaceAccess) -> Answer<List<EnabledConnector>> {
    let ws = ops::workspaces::load(&app, &access.workspace).await?;
    let connections = app.store().connections(&ws.id, &Page { cursor: None, limit: usize::MAX }).await?;
    let mut by_connector: BTreeMap<String, Vec<EnabledConnection>> = BTreeMap::new();
    for c in &connections {
        let resolved = app.registry().resolve(&c.connector, &c.version).map(|l| l.manifest().version.clone());
        by_connector.entry(c.connector.clone()).or_default().push(EnabledConnection::new(c, resolved));
    }
    let records =
        by_connector.into_iter().map(|(connector, connections)| EnabledConnector { connector, connections }).collect();
    Ok(Json(List::all(records)))
}

/// Block a version everywhere: `latest` falls back to the newest unblocked
/// version, connections pinned to it pause (their deliveries wait). The
/// block outlives restarts.
async fn block(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Answer<BlockView> {
    let paused = ops::connectors::block(&app, &name, &version).await?;
    Ok(Json(BlockView { name, version, blocked: true, paused_connections: Some(paused), resumed_connections: None }))
}

async fn unblock(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Answer<BlockView> {
    let resumed = ops::connectors::unblock(&app, &name, &version).await?;
    Ok(Json(BlockView { name, version, blocked: false, paused_connections: None, resumed_connections: Some(resumed) }))
}
