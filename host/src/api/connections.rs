//! Connections: a workspace's configured instance of a connector.
//! Secrets are write-only: sealed with the master key on the way in, shown
//! by name only on the way out, never logged. A secret shorter than
//! [`MIN_SECRET_BYTES`] or longer than [`MAX_SECRET_BYTES`], limits outside
//! [`RATE_LIMIT_MAX`] and [`CONCURRENCY`], names and references outside
//! [`super::limits::NAME_CHARS`] and settings over [`MAX_SETTINGS_BYTES`]
//! are refused with 422 naming the field.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::WorkspaceAccess;
use super::limits::{MAX_SECRET_BYTES, MAX_SETTINGS_BYTES, check_optional_name};
use super::{ApiError, AppState, Json, PageParams, Path, Query, list};
use crate::app::App;
use crate::model::{Connection, InactiveReason, new_id, now_ms, rfc3339};
use crate::ops;
use crate::runtime::LoadedConnector;
use crate::secrets::MIN_SECRET_BYTES;

/// Deliveries per second a connection may ask for, exclusive of zero: a
/// rate of zero or less would make the scheduler spin.
pub const RATE_LIMIT_MAX: f64 = 10_000.0;
/// Deliveries a connection may run at once: zero would park them forever.
pub const CONCURRENCY: std::ops::RangeInclusive<u64> = 1..=256;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspaces/{ws}/connections", get(list_connections).post(create))
        .route("/api/v1/workspaces/{ws}/connections/{id}", get(show).patch(update).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConnection {
    connector: String,
    #[serde(default)]
    version: Option<String>,
    name: String,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    // Any JSON, checked by `limits`: a string or a fraction is a 422 that
    // names the field, like any other out-of-range value.
    #[serde(default)]
    rate_limit_per_second: Option<Value>,
    #[serde(default)]
    concurrency: Option<Value>,
}

/// `null` for a secret removes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateConnection {
    name: Option<String>,
    version: Option<String>,
    settings: Option<Value>,
    #[serde(default)]
    secrets: BTreeMap<String, Option<String>>,
    active: Option<bool>,
    rate_limit_per_second: Option<Value>,
    concurrency: Option<Value>,
}

pub fn view(c: &Connection) -> Value {
    json!({
        "id": c.id, "workspace": c.workspace, "name": c.name, "connector": c.connector, "version": c.version,
        "settings": c.settings, "secrets": c.secret_names, "active": c.active, "inactive_reason": c.inactive_reason,
        "rate_limit_per_second": c.rate_limit_per_second, "concurrency": c.concurrency,
        "created_at": rfc3339(c.created_at), "updated_at": rfc3339(c.updated_at),
    })
}

fn resolve(app: &App, connector: &str, version: &str) -> Result<LoadedConnector, ApiError> {
    if !app.registry.has(connector) {
        return Err(ApiError::unprocessable(format!("unknown connector `{connector}`")));
    }
    app.registry
        .resolve(connector, version)
        .ok_or_else(|| ApiError::unprocessable(format!("connector `{connector}` has no version `{version}`")))
}

/// Names, references and new settings within their bounds; `None` is a
/// field the request leaves unchanged.
fn check_fields(
    name: Option<&str>,
    connector: Option<&str>,
    version: Option<&str>,
    settings: Option<&Value>,
) -> Result<(), ApiError> {
    check_optional_name("name", name)?;
    check_optional_name("connector", connector)?;
    check_optional_name("version", version)?;
    match settings {
        Some(s) if !s.is_object() => Err(ApiError::invalid("settings", "must be a JSON object")),
        Some(s) if !crate::routing::fits_serialized(s, MAX_SETTINGS_BYTES) => {
            Err(ApiError::invalid("settings", format!("must be at most {MAX_SETTINGS_BYTES} bytes serialized")))
        }
        _ => Ok(()),
    }
}

/// `rate_limit_per_second` and `concurrency`, checked; `None` leaves a value unset.
fn limits(rate: Option<Value>, concurrency: Option<Value>) -> Result<(Option<f64>, Option<u32>), ApiError> {
    let rate = match rate {
        None => None,
        Some(v) => match v.as_f64() {
            Some(r) if r.is_finite() && r > 0.0 && r <= RATE_LIMIT_MAX => Some(r),
            _ => {
                return Err(ApiError::invalid(
                    "rate_limit_per_second",
                    "must be a number greater than 0 and at most 10000",
                ));
            }
        },
    };
    let concurrency = match concurrency {
        None => None,
        Some(v) => match v.as_u64().filter(|c| CONCURRENCY.contains(c)).and_then(|c| u32::try_from(c).ok()) {
            Some(c) => Some(c),
            None => return Err(ApiError::invalid("concurrency", "must be a whole number from 1 to 256")),
        },
    };
    Ok((rate, concurrency))
}

/// Secrets being saved are long enough to be scrubbed safely (a short value
/// would also match unrelated text) and short enough to be scrubbed cheaply.
/// Values already stored are not re-checked, so a connection saved before
/// these rules can still be renamed or paused.
fn check_secret_lengths<'a>(saved: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<(), ApiError> {
    for (name, value) in saved {
        let path = format!("secrets.{name}");
        if value.len() < MIN_SECRET_BYTES {
            return Err(ApiError::invalid(
                &path,
                format!("is shorter than {MIN_SECRET_BYTES} bytes; a secret this short cannot be redacted safely"),
            ));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(ApiError::invalid(&path, format!("is longer than {MAX_SECRET_BYTES} bytes")));
        }
    }
    Ok(())
}

/// Settings and secrets checked against the connector before anything is saved.
async fn check(
    app: &App,
    connector: &LoadedConnector,
    settings: &Value,
    secrets: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    if !settings.is_object() {
        return Err(ApiError::invalid("settings", "must be a JSON object"));
    }
    let m = connector.manifest();
    for name in secrets.keys() {
        if !m.secrets.iter().any(|s| s.name == *name) {
            let known: Vec<&str> = m.secrets.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::unprocessable(format!(
                "connector `{}` has no secret `{name}` (it takes: {})",
                m.name,
                known.join(", ")
            )));
        }
    }
    for spec in m.secrets.iter().filter(|s| s.required) {
        if !secrets.contains_key(&spec.name) {
            return Err(ApiError::unprocessable(format!("secret `{}` is required: {}", spec.name, spec.description)));
        }
    }
    match app.runtime.validate(connector, &settings.to_string()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(ApiError::unprocessable(format!("invalid settings: {message}"))),
        Err(e) => Err(ApiError::unprocessable(format!("the connector failed to validate settings: {e}"))),
    }
}

async fn create(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    Json(req): Json<CreateConnection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    app.store.workspace(&ws).await?.ok_or_else(|| ApiError::not_found("workspace", &ws))?;
    check_fields(Some(&req.name), Some(&req.connector), req.version.as_deref(), req.settings.as_ref())?;
    let (rate_limit_per_second, concurrency) = limits(req.rate_limit_per_second, req.concurrency)?;
    let version = req.version.unwrap_or_else(|| "latest".into());
    let connector = resolve(&app, &req.connector, &version)?;
    let settings = req.settings.unwrap_or_else(|| json!({}));
    check(&app, &connector, &settings, &req.secrets).await?;
    check_secret_lengths(&req.secrets)?;
    let now = now_ms();
    let id = new_id("conn_");
    let connection = Connection {
        sealed_secrets: app.master_key.seal(&req.secrets, &id),
        id,
        workspace: ws,
        name: req.name,
        connector: req.connector,
        version,
        settings,
        secret_names: req.secrets.keys().cloned().collect(),
        active: true,
        inactive_reason: None,
        rate_limit_per_second,
        concurrency,
        created_at: now,
        updated_at: now,
    };
    app.store.put_connection(&connection).await?;
    Ok((StatusCode::CREATED, Json(view(&connection))))
}

async fn list_connections(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    Query(p): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let page = p.page()?;
    let all = app.store.connections(&ws, &page).await?;
    let last = all.last().map(|c| c.id.clone());
    Ok(Json(list(all.iter().map(view).collect(), page.limit, last)))
}

async fn load(app: &App, ws: &str, id: &str) -> Result<Connection, ApiError> {
    app.store.connection(ws, id).await?.ok_or_else(|| ApiError::not_found("connection", id))
}

async fn show(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&load(&app, &ws, &id).await?)))
}

async fn update(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
    Json(req): Json<UpdateConnection>,
) -> Result<Json<Value>, ApiError> {
    let mut c = load(&app, &ws, &id).await?;
    check_fields(req.name.as_deref(), None, req.version.as_deref(), req.settings.as_ref())?;
    let (rate_limit_per_second, concurrency) = limits(req.rate_limit_per_second, req.concurrency)?;
    let mut secrets = app
        .master_key
        .open(&c.sealed_secrets, &c.id)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let secrets_changed = !req.secrets.is_empty();
    let saved: Vec<String> = req.secrets.iter().filter(|(_, v)| v.is_some()).map(|(n, _)| n.clone()).collect();
    for (name, value) in req.secrets {
        match value {
            Some(v) => secrets.insert(name, v),
            None => secrets.remove(&name),
        };
    }
    if let Some(v) = req.version {
        c.version = v;
    }
    if let Some(s) = req.settings {
        c.settings = s;
    }
    let connector = resolve(&app, &c.connector, &c.version)?;
    check(&app, &connector, &c.settings, &secrets).await?;
    check_secret_lengths(saved.iter().filter_map(|name| secrets.get_key_value(name)))?;
    if let Some(n) = req.name {
        c.name = n;
    }
    if rate_limit_per_second.is_some() {
        c.rate_limit_per_second = rate_limit_per_second;
    }
    if concurrency.is_some() {
        c.concurrency = concurrency;
    }
    c.sealed_secrets = app.master_key.seal(&secrets, &c.id);
    c.secret_names = secrets.keys().cloned().collect();
    c.updated_at = now_ms();
    app.store.put_connection(&c).await?;
    app.rules_changed(&ws);
    // New credentials or an explicit `active: true` resume a paused connection.
    if req.active == Some(true) || (secrets_changed && req.active.is_none()) {
        ops::connections::resume(&app, &ws, &id).await?;
    } else if req.active == Some(false) {
        ops::connections::pause(&app, &ws, &id, InactiveReason::Disabled).await?;
    }
    let c = load(&app, &ws, &id).await?;
    Ok(Json(view(&c)))
}

#[derive(Deserialize)]
struct DeleteParams {
    force: Option<bool>,
}

async fn remove(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
    Query(p): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    load(&app, &ws, &id).await?;
    let rules = app.store.rules(&ws, &crate::store::Page { cursor: None, limit: usize::MAX }).await?;
    let using: Vec<_> = rules.into_iter().filter(|r| r.connection == id).collect();
    if !using.is_empty() && p.force != Some(true) {
        let ids: Vec<&str> = using.iter().map(|r| r.id.as_str()).collect();
        return Err(ApiError::conflict(format!(
            "rules use this connection: {}; delete them or pass ?force=true",
            ids.join(", ")
        )));
    }
    for r in using {
        app.store.delete_rule(&ws, &r.id).await?;
    }
    app.store.delete_connection(&ws, &id).await?;
    app.rules_changed(&ws);
    Ok(StatusCode::NO_CONTENT)
}
