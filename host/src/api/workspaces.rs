//! Workspaces and their keys. Keys are shown once, at creation,
//! and stored only as SHA-256; revocation takes effect on the next request.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;

use super::auth::{AdminOnly, Caller, WorkspaceAccess};
use super::error::ErrorBody;
use super::limits::check_name;
use super::openapi::WorkspacePath;
use super::views::{CreatedKey, CreatedWorkspace, KeyView, List, WorkspaceView};
use super::{Answer, ApiError, AppState, Id, Json, PageParams, Query};
use crate::model::KeyKind;
use crate::ops;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspaces", get(list_workspaces).post(create))
        .route("/api/v1/workspaces/{ws}", get(show))
        .route("/api/v1/workspaces/{ws}/keys", get(list_keys).post(create_key))
        .route("/api/v1/workspaces/{ws}/keys/{id}", delete(revoke))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Northstar prod"}))]
struct CreateWorkspace {
    /// 1 to 200 characters, no control characters; trimmed.
    name: String,
}

/// Create a workspace (admin).
///
/// It comes with a first publishable and a first secret key: the only time
/// their text is shown.
#[utoipa::path(
    post, path = "/api/v1/workspaces", tag = "workspaces", operation_id = "create_workspace",
    security(("admin_token" = [])),
    request_body = CreateWorkspace,
    responses((status = 201, description = "The workspace and its two keys.", body = CreatedWorkspace)),
)]
async fn create(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Json(req): Json<CreateWorkspace>,
) -> Result<(StatusCode, Json<CreatedWorkspace>), ApiError> {
    let name = req.name.trim();
    check_name("name", name)?;
    let (ws, publishable_key, secret_key) = ops::workspaces::create(&app, name).await?;
    Ok((StatusCode::CREATED, Json(CreatedWorkspace { workspace: (&ws).into(), publishable_key, secret_key })))
}

/// List workspaces: the admin sees every workspace; a workspace key sees its own.
#[utoipa::path(
    get, path = "/api/v1/workspaces", tag = "workspaces", operation_id = "list_workspaces",
    security(("admin_token" = []), ("secret_key" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of workspaces.", body = List<WorkspaceView>),
        (status = 400, description = "`limit` or `cursor` out of range.", body = ErrorBody),
    ),
)]
async fn list_workspaces(
    State(app): State<AppState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> Answer<List<WorkspaceView>> {
    let page = p.page()?;
    let workspaces = match caller {
        Caller::Admin => app.store().workspaces(&page).await?,
        Caller::Workspace(k) => app.store().workspace(&k.workspace).await?.into_iter().collect(),
    };
    let last = workspaces.last().map(|w| w.id.clone());
    Ok(Json(List::page(workspaces.iter().map(Into::into).collect(), page.limit, last)))
}

/// One workspace.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}", tag = "workspaces", operation_id = "get_workspace",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    responses(
        (status = 200, description = "The workspace.", body = WorkspaceView),
        (status = 404, description = "No such workspace.", body = ErrorBody),
    ),
)]
async fn show(State(app): State<AppState>, access: WorkspaceAccess) -> Answer<WorkspaceView> {
    Ok(Json((&ops::workspaces::load(&app, &access.workspace).await?).into()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "publishable"}))]
struct CreateKey {
    /// `secret` when absent.
    kind: Option<KeyKind>,
}

/// Create a key.
///
/// An empty body (which needs no content type) makes a secret key. The key
/// text is in this answer only.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/keys", tag = "workspaces", operation_id = "create_key",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    request_body(content = Option<CreateKey>, description = "Optional."),
    responses(
        (status = 201, description = "The key record, and the key once.", body = CreatedKey),
        (status = 404, description = "No such workspace.", body = ErrorBody),
    ),
)]
async fn create_key(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    body: Option<Json<CreateKey>>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let kind = body.and_then(|Json(b)| b.kind).unwrap_or(KeyKind::Secret);
    let (key, text) = ops::workspaces::create_key(&app, &access.workspace, kind).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { record: (&key).into(), key: text })))
}

/// Every key of the workspace, revoked ones included (not paginated).
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/keys", tag = "workspaces", operation_id = "list_keys",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    responses((status = 200, description = "The keys, by their hints.", body = List<KeyView>)),
)]
async fn list_keys(State(app): State<AppState>, access: WorkspaceAccess) -> Answer<List<KeyView>> {
    let keys = app.store().keys(&access.workspace).await?;
    Ok(Json(List::all(keys.iter().map(Into::into).collect())))
}

/// Revoke a key.
///
/// The key is refused from its very next request. Revoking twice is harmless.
#[utoipa::path(
    delete, path = "/api/v1/workspaces/{ws}/keys/{id}", tag = "workspaces", operation_id = "revoke_key",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The key's id (`key-…`).")),
    responses(
        (status = 200, description = "The key, with `revoked_at` set.", body = KeyView),
        (status = 404, description = "No such key.", body = ErrorBody),
    ),
)]
async fn revoke(State(app): State<AppState>, access: WorkspaceAccess, Id(key_id): Id) -> Answer<KeyView> {
    Ok(Json((&ops::workspaces::revoke_key(&app, &access.workspace, &key_id).await?).into()))
}
