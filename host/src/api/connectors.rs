//! The connector registry API: upload a component as a
//! new version (validated in the sandbox before anything is kept), list
//! versions, delete one no connection pins, and a workspace's view of the
//! connectors it has enabled through its connections.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::auth::{AdminOnly, WorkspaceAccess};
use super::{ApiError, AppState, Path};
use crate::ops;
use crate::registry::{Entry, Origin, RegistryError};
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

fn version_view(e: &Entry) -> Value {
    let m = e.connector.manifest();
    json!({"version": m.version, "origin": e.origin, "blocked": e.blocked,
           "artifact": if e.compiled { "compiled" } else { "cached" }, "manifest": m})
}

async fn list(State(app): State<AppState>, _admin: AdminOnly) -> Result<Json<Value>, ApiError> {
    let records: Vec<Value> = app
        .registry()
        .list()
        .iter()
        .map(|(name, versions)| {
            let latest = versions.last().map(|e| e.connector.manifest().clone());
            json!({"name": name, "versions": versions.iter().map(|e| e.connector.manifest().version.clone()).collect::<Vec<_>>(),
                   "latest": latest.as_ref().map(|m| m.version.clone()), "manifest": latest})
        })
        .collect();
    Ok(Json(super::list_all(records)))
}

async fn versions(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = app.registry().list();
    let (_, versions) = all.iter().find(|(n, _)| *n == name).ok_or_else(|| ApiError::not_found("connector", &name))?;
    let records: Vec<Value> = versions.iter().map(version_view).collect();
    Ok(Json(super::list_all(records)))
}

async fn upload(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let (connector, compiled) = app
        .runtime()
        .load_cached(&bytes, &app.artifacts_dir())
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let m = connector.manifest().clone();
    if m.name != name {
        return Err(ApiError::unprocessable(format!("the component describes itself as `{}`, not `{name}`", m.name)));
    }
    // Check before writing anything, then register under the same rule.
    if let Some((_, existing)) = app.registry().list().into_iter().find(|(n, _)| *n == name)
        && let Some(latest) = existing.last()
    {
        let latest = semver::Version::parse(&latest.connector.manifest().version).ok();
        let new = semver::Version::parse(&m.version).ok();
        if latest >= new {
            return Err(ApiError::conflict(format!(
                "connector `{name}` already has version {}; upload a greater version",
                latest.map(|v| v.to_string()).unwrap_or_default()
            )));
        }
    }
    let dir = app.uploads_dir();
    let file = dir.join(format!("{name}-{}.wasm", m.version));
    let stored = match tokio::fs::create_dir_all(&dir).await {
        Ok(()) => tokio::fs::write(&file, &bytes).await,
        Err(e) => Err(e),
    };
    stored.map_err(|e| ApiError::unavailable(format!("cannot store the component: {e}")))?;
    match app.registry().register(Entry { connector, origin: Origin::Uploaded, compiled, blocked: false }) {
        Ok(()) => {}
        Err(RegistryError::NotGreater { existing, .. }) => {
            let _ = tokio::fs::remove_file(&file).await;
            return Err(ApiError::conflict(format!("connector `{name}` already has version {existing}")));
        }
        Err(e) => return Err(ApiError::unprocessable(e.to_string())),
    }
    tracing::info!(connector = %name, version = %m.version, "connector version uploaded and live");
    Ok((StatusCode::CREATED, Json(json!({"name": name, "version": m.version, "manifest": m}))))
}

/// Every connection of every workspace.
async fn remove(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if app.registry().resolve(&name, &version).is_none() {
        return Err(ApiError::not_found("connector version", &format!("{name}@{version}")));
    }
    let pinned: Vec<String> = ops::connections::everywhere(&app)
        .await?
        .into_iter()
        .filter(|c| c.connector == name && c.version == version)
        .map(|c| c.id)
        .collect();
    if !pinned.is_empty() {
        return Err(ApiError::conflict(format!("connections pin {name}@{version}: {}", pinned.join(", "))));
    }
    if let Some(entry) = app.registry().remove(&name, &version)
        && entry.origin == Origin::Uploaded
    {
        let _ = tokio::fs::remove_file(app.uploads_dir().join(format!("{name}-{version}.wasm"))).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// What the workspace has enabled: its connections grouped by connector,
/// with the version each resolves to now and its health.
async fn enabled(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.store().workspace(&ws).await?.ok_or_else(|| ApiError::not_found("workspace", &ws))?;
    let connections = app.store().connections(&ws, &Page { cursor: None, limit: usize::MAX }).await?;
    let mut by_connector: std::collections::BTreeMap<String, Vec<Value>> = std::collections::BTreeMap::new();
    for c in &connections {
        let resolved = app.registry().resolve(&c.connector, &c.version).map(|l| l.manifest().version.clone());
        by_connector.entry(c.connector.clone()).or_default().push(json!({
            "connection": c.id, "name": c.name, "version": c.version, "resolved_version": resolved,
            "active": c.active && resolved.is_some(),
            "inactive_reason": if resolved.is_none() { json!("connector_version_missing") } else { json!(c.inactive_reason) },
        }));
    }
    let records: Vec<Value> = by_connector
        .into_iter()
        .map(|(connector, connections)| json!({"connector": connector, "connections": connections}))
        .collect();
    Ok(Json(super::list_all(records)))
}

/// The blocked versions, as `name@version`, kept in the data dir so a block
/// survives restarts.
/// Block a version everywhere: `latest` falls back to the newest unblocked
/// version, connections pinned to it pause (their deliveries wait).
async fn block(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let paused = ops::connectors::block(&app, &name, &version).await?;
    Ok(Json(json!({"name": name, "version": version, "blocked": true, "paused_connections": paused})))
}

async fn unblock(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let resumed = ops::connectors::unblock(&app, &name, &version).await?;
    Ok(Json(json!({"name": name, "version": version, "blocked": false, "resumed_connections": resumed})))
}
