//! Workspaces and their API keys: a workspace is created with one
//! publishable and one secret key; keys are stored by SHA-256 only, so the
//! key text exists once, in the answer that creates it. Revoking is final.

use super::{OpError, Result};
use crate::app::App;
use crate::keys;
use crate::model::{ApiKey, KeyKind, Workspace, new_id, now_ms};

/// A new workspace and the text of its publishable and secret keys.
pub async fn create(app: &App, name: &str) -> Result<(Workspace, String, String)> {
    let ws = Workspace { id: new_id("ws-"), name: name.to_string(), created_at: now_ms() };
    app.store().put_workspace(&ws).await?;
    let (publishable, publishable_text) = keys::mint(&ws.id, KeyKind::Publishable);
    let (secret, secret_text) = keys::mint(&ws.id, KeyKind::Secret);
    app.put_key(&publishable).await?;
    app.put_key(&secret).await?;
    Ok((ws, publishable_text, secret_text))
}

pub async fn load(app: &App, ws: &str) -> Result<Workspace> {
    app.store().workspace(ws).await?.ok_or_else(|| OpError::not_found("workspace", ws))
}

/// A further key of the workspace; returns the record and the key text.
pub async fn create_key(app: &App, ws: &str, kind: KeyKind) -> Result<(ApiKey, String)> {
    load(app, ws).await?;
    let (key, text) = keys::mint(ws, kind);
    app.put_key(&key).await?;
    Ok((key, text))
}

/// Revoke a key (again is a no-op); it is refused from its next request on.
pub async fn revoke_key(app: &App, ws: &str, key_id: &str) -> Result<ApiKey> {
    let found = app.store().keys(ws).await?.into_iter().find(|k| k.id == key_id);
    let mut key = found.ok_or_else(|| OpError::not_found("key", key_id))?;
    if key.revoked_at.is_none() {
        key.revoked_at = Some(now_ms());
        app.put_key(&key).await?;
    }
    Ok(key)
}
