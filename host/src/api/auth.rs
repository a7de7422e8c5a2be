//! Who is calling: the admin (admin token) or a workspace (its secret key,
//! or on ingest its publishable key). Keys are looked up by SHA-256, so a
//! revoked key is refused on its very next request.
//!
//! Management handlers take their access as an extractor: [`WorkspaceAccess`]
//! checks the caller against the `{ws}` segment of the path, [`AdminOnly`]
//! wants the admin token, [`Caller`] is whoever authenticated. A handler
//! that names one of them cannot forget the check.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::app::App;
use crate::keys::{hash_key, is_publishable_format};
use crate::model::{ApiKey, KeyKind};

#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    Workspace(ApiKey),
}

impl Caller {
    /// Admin, or the workspace's own secret key; 403 for another workspace.
    pub fn can_access(&self, workspace: &str) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Workspace(k) if k.workspace == workspace && k.kind == KeyKind::Secret => Ok(()),
            Caller::Workspace(_) => Err(ApiError::forbidden(format!("this key cannot access workspace `{workspace}`"))),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Workspace(_) => Err(ApiError::forbidden("this endpoint needs the admin token")),
        }
    }
}

impl axum::extract::FromRequestParts<super::AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &super::AppState,
    ) -> Result<Self, ApiError> {
        caller(app, &parts.headers).await
    }
}

/// A caller allowed into the workspace named by the path's `{ws}`: the
/// admin or that workspace's secret key.
#[derive(Debug, Clone)]
pub struct WorkspaceAccess {
    pub workspace: String,
    pub caller: Caller,
}

impl axum::extract::FromRequestParts<super::AppState> for WorkspaceAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &super::AppState,
    ) -> Result<Self, ApiError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))?;
        let Some((_, workspace)) = params.iter().find(|(name, _)| *name == "ws") else {
            // A route without `{ws}` using this extractor is a programming error.
            return Err(ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "route has no workspace"));
        };
        let workspace = workspace.to_string();
        let caller = caller(app, &parts.headers).await?;
        caller.can_access(&workspace)?;
        Ok(WorkspaceAccess { workspace, caller })
    }
}

/// The admin token, and nothing else.
#[derive(Debug, Clone, Copy)]
pub struct AdminOnly;

impl axum::extract::FromRequestParts<super::AppState> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &super::AppState,
    ) -> Result<Self, ApiError> {
        caller(app, &parts.headers).await?.require_admin()?;
        Ok(AdminOnly)
    }
}

/// The management API's caller, from `Authorization: Bearer …`.
pub async fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer(headers).ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>`"))?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if bool::from(digest.ct_eq(app.admin_token_hash())) {
        return Ok(Caller::Admin);
    }
    if !token.starts_with("mesh_sec_") {
        return Err(ApiError::unauthorized("unknown token"));
    }
    workspace_key(app, token, KeyKind::Secret).await.map(Caller::Workspace)
}

/// The ingest caller: a publishable key header or a secret key bearer.
pub async fn ingest_key(app: &App, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    if let Some(key) = headers.get("x-meshes-publishable-key") {
        let key = key.to_str().map_err(|_| ApiError::unauthorized("the publishable key is not valid text"))?;
        if !is_publishable_format(key) {
            return Err(ApiError::unauthorized(
                "malformed publishable key (expected mesh_pub_<workspace>_<key>_<secret>)",
            ));
        }
        return workspace_key(app, key, KeyKind::Publishable).await;
    }
    match bearer(headers) {
        Some(token) if token.starts_with("mesh_sec_") => workspace_key(app, token, KeyKind::Secret).await,
        Some(_) => Err(ApiError::unauthorized("unknown key: ingest takes a publishable key or a workspace secret key")),
        None => Err(ApiError::unauthorized(
            "missing key: send `X-Meshes-Publishable-Key` or `Authorization: Bearer mesh_sec_…`",
        )),
    }
}

async fn workspace_key(app: &App, key: &str, kind: KeyKind) -> Result<ApiKey, ApiError> {
    let found = app.key_by_hash(&hash_key(key)).await?;
    match found {
        Some(k) if k.kind == kind && k.revoked_at.is_none() => Ok(k),
        Some(k) if k.kind == kind => Err(ApiError::forbidden(format!("key `{}` has been revoked", k.id))),
        _ => Err(ApiError::unauthorized("unknown key")),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
