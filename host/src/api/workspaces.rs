//! Workspaces and their keys. Keys are shown once, at creation,
//! and stored only as SHA-256; revocation takes effect on the next request.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;

use super::auth::{AdminOnly, Caller, WorkspaceAccess};
use super::limits::check_name;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWorkspace {
    name: String,
}

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

/// The admin sees every workspace; a workspace key sees its own.
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

async fn show(State(app): State<AppState>, access: WorkspaceAccess) -> Answer<WorkspaceView> {
    Ok(Json((&ops::workspaces::load(&app, &access.workspace).await?).into()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    kind: Option<KeyKind>,
}

async fn create_key(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    body: Option<Json<CreateKey>>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let kind = body.and_then(|Json(b)| b.kind).unwrap_or(KeyKind::Secret);
    let (key, text) = ops::workspaces::create_key(&app, &access.workspace, kind).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { record: (&key).into(), key: text })))
}

async fn list_keys(State(app): State<AppState>, access: WorkspaceAccess) -> Answer<List<KeyView>> {
    let keys = app.store().keys(&access.workspace).await?;
    Ok(Json(List::all(keys.iter().map(Into::into).collect())))
}

async fn revoke(State(app): State<AppState>, access: WorkspaceAccess, Id(key_id): Id) -> Answer<KeyView> {
    Ok(Json((&ops::workspaces::revoke_key(&app, &access.workspace, &key_id).await?).into()))
}
