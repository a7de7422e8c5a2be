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
use super::connector_views::{
    BlockView, ConnectorView, EnabledConnection, EnabledConnector, UploadedView, VersionView,
};
use super::error::ErrorBody;
use super::openapi::{VersionPath, WorkspacePath};
use super::views::List;
use super::{Answer, ApiError, AppState, Json, Path, Query};
use crate::ops;
use crate::ops::releases::ReleaseStatus;
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
        .route("/api/v1/connectors/{name}/versions/{version}/approve", post(approve))
        .route("/api/v1/connectors/{name}/versions/{version}/rollout", post(rollout))
        .route("/api/v1/workspaces/{ws}/connectors", get(enabled))
}

/// List the connector registry (admin).
///
/// Every connector, with its versions and the newest one's manifest.
#[utoipa::path(
    get, path = "/api/v1/connectors", tag = "connectors", operation_id = "list_connectors",
    security(("admin_token" = [])),
    responses((status = 200, description = "The connectors.", body = List<ConnectorView>)),
)]
async fn list(State(app): State<AppState>, _admin: AdminOnly) -> Answer<List<ConnectorView>> {
    let records = app.registry().list().iter().map(|(name, versions)| ConnectorView::new(name, versions)).collect();
    Ok(Json(List::all(records)))
}

/// List a connector's versions, oldest first (admin).
#[utoipa::path(
    get, path = "/api/v1/connectors/{name}/versions", tag = "connectors", operation_id = "list_connector_versions",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The connector's name.")),
    responses(
        (status = 200, description = "The versions.", body = List<VersionView>),
        (status = 404, description = "No such connector.", body = ErrorBody),
    ),
)]
async fn versions(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path(name): Path<String>,
) -> Answer<List<VersionView>> {
    let all = app.registry().list();
    let (_, versions) = all.iter().find(|(n, _)| *n == name).ok_or_else(|| ApiError::not_found("connector", &name))?;
    let mut records = Vec::with_capacity(versions.len());
    for e in versions {
        let status = ops::releases::status(&app, &name, &e.connector.manifest().version)?;
        records.push(VersionView::new(e, status));
    }
    Ok(Json(List::all(records)))
}

/// Upload a connector version (admin).
///
/// The component is loaded in the sandbox; its manifest must name `{name}`
/// and a version greater than every existing one. The answer says where the
/// version stands — `live`, `pending_approval` when it asks for more hosts
/// or secrets than the version before it, `rolling_out` with `?rollout=N` —
/// and which connections and rules it refuses; the connections following
/// `latest` that it refuses stay on their version (`held_back`).
#[utoipa::path(
    put, path = "/api/v1/connectors/{name}", tag = "connectors", operation_id = "upload_connector",
    security(("admin_token" = [])),
    params(
        ("name" = String, Path, description = "The connector's name."),
        UploadParams,
    ),
    request_body(
        description = "The component's bytes (any content type), at most 10 MiB.",
        content(("application/wasm")),
    ),
    responses(
        (status = 201, description = "The new version, its state and compatibility report.", body = UploadedView),
        (status = 400, description = "The body is empty or cannot be read.", body = ErrorBody),
        (status = 409, description = "The version is not greater than every existing one.", body = ErrorBody),
        (status = 413, description = "The component is over 10 MiB.", body = ErrorBody),
        (status = 422, description = "Not a valid connector, or it names itself differently.", body = ErrorBody),
    ),
)]
async fn upload(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path(name): Path<String>,
    Query(params): Query<UploadParams>,
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
    let uploaded = ops::connectors::upload(&app, &name, &bytes, params.rollout).await?;
    Ok((StatusCode::CREATED, Json(uploaded.into())))
}

/// How an upload is released.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Serve the new version only to this percentage (0–100) of the
    /// connections following `latest`, as with `…/rollout`.
    pub rollout: Option<u8>,
}

/// Approve a connector version (admin).
///
/// A version that asks for more hosts or secret names than the version
/// before it waits (`pending_approval`) until an admin approves: until
/// then connections following `latest` stay where they are.
#[utoipa::path(
    post, path = "/api/v1/connectors/{name}/versions/{version}/approve", tag = "connectors",
    operation_id = "approve_connector_version",
    security(("admin_token" = [])),
    params(VersionPath),
    responses(
        (status = 200, description = "Approved; where it stands now.", body = ReleaseStatus),
        (status = 404, description = "No such version.", body = ErrorBody),
    ),
)]
async fn approve(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Answer<ReleaseStatus> {
    Ok(Json(ops::releases::approve(&app, &name, &version).await?))
}

/// Roll a connector version out to a share of connections (admin).
///
/// Serves the version to `percent` of the connections following `latest`,
/// chosen stably by connection id. While it rolls out, a failure ratio
/// above the previous version's by `[registry] rollback_margin` (over at
/// least `rollback_min_attempts` attempts) rolls it back automatically:
/// blocked, state `rolled_back`, and a `switchboard.connector.rolled_back`
/// alert.
#[utoipa::path(
    post, path = "/api/v1/connectors/{name}/versions/{version}/rollout", tag = "connectors",
    operation_id = "rollout_connector_version",
    security(("admin_token" = [])),
    params(VersionPath),
    request_body(content = RolloutBody, example = json!({"percent": 10})),
    responses(
        (status = 200, description = "Rolling out; where it stands now.", body = ReleaseStatus),
        (status = 404, description = "No such version.", body = ErrorBody),
        (status = 409, description = "The version is blocked.", body = ErrorBody),
    ),
)]
async fn rollout(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
    Json(body): Json<RolloutBody>,
) -> Answer<ReleaseStatus> {
    Ok(Json(ops::releases::rollout(&app, &name, &version, body.percent).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    /// 0–100: the share of the connections following `latest` to serve.
    pub percent: u8,
}

/// Delete a connector version (admin).
///
/// Connections on `latest` resolve to the newest version that remains.
#[utoipa::path(
    delete, path = "/api/v1/connectors/{name}/versions/{version}", tag = "connectors",
    operation_id = "delete_connector_version",
    security(("admin_token" = [])),
    params(VersionPath),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such version.", body = ErrorBody),
        (status = 409, description = "Connections are pinned to exactly this version.", body = ErrorBody),
    ),
)]
async fn remove(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::connectors::remove(&app, &name, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the connectors a workspace uses.
///
/// What the workspace has enabled: its connections grouped by connector,
/// with the version each resolves to now and its health.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/connectors", tag = "connectors", operation_id = "list_enabled_connectors",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    responses(
        (status = 200, description = "The connectors in use.", body = List<EnabledConnector>),
        (status = 404, description = "No such workspace.", body = ErrorBody),
    ),
)]
async fn enabled(State(app): State<AppState>, access: WorkspaceAccess) -> Answer<List<EnabledConnector>> {
    let ws = ops::workspaces::load(&app, &access.workspace).await?;
    let connections = app.store().connections(&ws.id, &Page { cursor: None, limit: usize::MAX }).await?;
    let mut by_connector: BTreeMap<String, Vec<EnabledConnection>> = BTreeMap::new();
    for c in &connections {
        let fits = |l: &crate::runtime::LoadedConnector| {
            crate::validation::connection(l, &c.settings, &c.secret_names).is_empty()
        };
        let resolved = app.registry().resolve_for(&c.connector, &c.version, &c.id, &fits);
        by_connector.entry(c.connector.clone()).or_default().push(EnabledConnection::new(c, resolved));
    }
    let records =
        by_connector.into_iter().map(|(connector, connections)| EnabledConnector { connector, connections }).collect();
    Ok(Json(List::all(records)))
}

/// Block a connector version (admin).
///
/// Block a version everywhere: `latest` falls back to the newest unblocked
/// version, connections pinned to it pause (their deliveries wait). The
/// block outlives restarts.
#[utoipa::path(
    post, path = "/api/v1/connectors/{name}/versions/{version}/block", tag = "connectors",
    operation_id = "block_connector_version",
    security(("admin_token" = [])),
    params(VersionPath),
    responses(
        (status = 200, description = "Blocked, with the connections it paused.", body = BlockView),
        (status = 404, description = "No such version.", body = ErrorBody),
    ),
)]
async fn block(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Answer<BlockView> {
    let paused = ops::connectors::block(&app, &name, &version).await?;
    Ok(Json(BlockView { name, version, blocked: true, paused_connections: Some(paused), resumed_connections: None }))
}

/// Unblock a connector version (admin).
///
/// Every connection of the connector paused by a block resumes, and its
/// waiting deliveries are queued again.
#[utoipa::path(
    post, path = "/api/v1/connectors/{name}/versions/{version}/unblock", tag = "connectors",
    operation_id = "unblock_connector_version",
    security(("admin_token" = [])),
    params(VersionPath),
    responses(
        (status = 200, description = "Unblocked, with the connections it resumed.", body = BlockView),
        (status = 404, description = "No such version.", body = ErrorBody),
    ),
)]
async fn unblock(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Path((name, version)): Path<(String, String)>,
) -> Answer<BlockView> {
    let resumed = ops::connectors::unblock(&app, &name, &version).await?;
    Ok(Json(BlockView { name, version, blocked: false, paused_connections: None, resumed_connections: Some(resumed) }))
}
