//! Workspaces and their keys. Keys are shown once, at creation,
//! and stored only as SHA-256; revocation takes effect on the next request.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AdminOnly, Caller, WorkspaceAccess, hash_key};
use super::limits::check_name;
use super::{ApiError, AppState, Json, PageParams, Path, Query, list};
use crate::model::{ApiKey, KeyKind, Workspace, new_id, now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspaces", get(list_workspaces).post(create))
        .route("/api/v1/workspaces/{ws}", get(show))
        .route("/api/v1/workspaces/{ws}/keys", get(list_keys).post(create_key))
        .route("/api/v1/workspaces/{ws}/keys/{key}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWorkspace {
    name: String,
}

fn view(ws: &Workspace) -> Value {
    json!({"id": ws.id, "name": ws.name, "created_at": rfc3339(ws.created_at)})
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).replace(['_', '-'], "x")
}

/// Mint a key; returns the record and the key text (shown once).
pub fn mint_key(workspace: &str, kind: KeyKind) -> (ApiKey, String) {
    let id = new_id("key-");
    let text = match kind {
        KeyKind::Publishable => format!("mesh_pub_{workspace}_{id}_{}", random_token()),
        KeyKind::Secret => format!("mesh_sec_{}", random_token()),
    };
    let hint = format!("{}…{}", &text[..9], &text[text.len() - 4..]);
    let key = ApiKey {
        id,
        workspace: workspace.to_string(),
        kind,
        hash: hash_key(&text),
        hint,
        created_at: now_ms(),
        revoked_at: None,
    };
    (key, text)
}

async fn create(
    State(app): State<AppState>,
    _admin: AdminOnly,
    Json(req): Json<CreateWorkspace>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = req.name.trim();
    check_name("name", name)?;
    let ws = Workspace { id: new_id("ws-"), name: name.to_string(), created_at: now_ms() };
    app.store().put_workspace(&ws).await?;
    let (publishable, pub_text) = mint_key(&ws.id, KeyKind::Publishable);
    let (secret, sec_text) = mint_key(&ws.id, KeyKind::Secret);
    app.put_key(&publishable).await?;
    app.put_key(&secret).await?;
    let mut out = view(&ws);
    out["publishable_key"] = json!(pub_text);
    out["secret_key"] = json!(sec_text);
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list_workspaces(
    State(app): State<AppState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let page = p.page()?;
    let workspaces = match caller {
        Caller::Admin => app.store().workspaces(&page).await?,
        Caller::Workspace(k) => app.store().workspace(&k.workspace).await?.into_iter().collect(),
    };
    let last = workspaces.last().map(|w| w.id.clone());
    Ok(Json(list(workspaces.iter().map(view).collect(), page.limit, last)))
}

async fn show(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let found = app.store().workspace(&ws).await?.ok_or_else(|| ApiError::not_found("workspace", &ws))?;
    Ok(Json(view(&found)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    kind: Option<KeyKind>,
}

fn key_view(k: &ApiKey) -> Value {
    json!({"id": k.id, "kind": k.kind, "hint": k.hint, "created_at": rfc3339(k.created_at),
           "revoked_at": k.revoked_at.map(rfc3339)})
}

async fn create_key(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    body: Option<Json<CreateKey>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    app.store().workspace(&ws).await?.ok_or_else(|| ApiError::not_found("workspace", &ws))?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let (key, text) = mint_key(&ws, req.kind.unwrap_or(KeyKind::Secret));
    app.put_key(&key).await?;
    let mut out = key_view(&key);
    out["key"] = json!(text);
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list_keys(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let keys = app.store().keys(&ws).await?;
    Ok(Json(super::list_all(keys.iter().map(key_view).collect())))
}

async fn revoke(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, key_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut key = app
        .store()
        .keys(&ws)
        .await?
        .into_iter()
        .find(|k| k.id == key_id)
        .ok_or_else(|| ApiError::not_found("key", &key_id))?;
    if key.revoked_at.is_none() {
        key.revoked_at = Some(now_ms());
        app.put_key(&key).await?;
    }
    Ok(Json(key_view(&key)))
}
