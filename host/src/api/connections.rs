//! Connections over HTTP: a workspace's configured instances of connectors.
//! Secrets are write-only: shown by name only on the way out. Limits
//! outside [`RATE_LIMIT_MAX`] and [`CONCURRENCY`], names and references
//! outside [`super::limits::NAME_CHARS`] and settings over
//! [`MAX_SETTINGS_BYTES`] are refused here with 422 naming the field; the
//! rules about the connector and its secrets live in `ops::connections`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::WorkspaceAccess;
use super::error::ErrorBody;
use super::limits::{MAX_SETTINGS_BYTES, check_optional_name};
use super::openapi::WorkspacePath;
use super::views::{ConnectionView, List};
use super::{Answer, ApiError, AppState, Id, Json, PageParams, Query};
use crate::ops;

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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "connector": "webhook", "name": "Data warehouse", "settings": {"url": "https://hooks.example.com/in"},
    "secrets": {"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
}))]
struct CreateConnection {
    /// The name of a registered connector.
    connector: String,
    /// `latest` (the default), an exact version, or a semver requirement (`^1.2`).
    #[serde(default)]
    version: Option<String>,
    /// 1 to 200 characters, no control characters.
    name: String,
    /// A JSON object (default `{}`), checked by the connector's own `validate`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
    /// Secret values by the names the connector declares: written, never shown.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    // Any JSON, checked by `limits`: a string or a fraction is a 422 that
    // names the field, like any other out-of-range value.
    /// Deliveries per second; the connector's default when absent.
    #[serde(default)]
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 10000)]
    rate_limit_per_second: Option<Value>,
    /// Attempts in flight at once; `[delivery] per_connection_concurrency` when absent.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 256)]
    concurrency: Option<Value>,
}

/// `null` for a secret removes it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": false}))]
struct UpdateConnection {
    name: Option<String>,
    version: Option<String>,
    /// Replaces the settings as a whole.
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
    /// Merged into the stored secrets; `null` removes one.
    #[serde(default)]
    secrets: BTreeMap<String, Option<String>>,
    /// `false` pauses the connection, `true` resumes it.
    active: Option<bool>,
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 10000)]
    rate_limit_per_second: Option<Value>,
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 256)]
    concurrency: Option<Value>,
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

/// Create a connection: a connector, its settings and its secrets.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/connections", tag = "connections", operation_id = "create_connection",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    request_body = CreateConnection,
    responses(
        (status = 201, description = "The connection: secrets by name only.", body = ConnectionView),
        (status = 404, description = "No such workspace.", body = ErrorBody),
        (status = 422, description = "A field out of bounds, an unknown connector or version, a secret it does \
            not declare or a required one missing, or settings its `validate` refuses.", body = ErrorBody),
        (status = 500, description = "The secrets cannot be sealed.", body = ErrorBody),
    ),
)]
async fn create(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Json(req): Json<CreateConnection>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    check_fields(Some(&req.name), Some(&req.connector), req.version.as_deref(), req.settings.as_ref())?;
    let (rate_limit_per_second, concurrency) = limits(req.rate_limit_per_second, req.concurrency)?;
    let new = ops::connections::NewConnection {
        connector: req.connector,
        version: req.version.unwrap_or_else(|| "latest".into()),
        name: req.name,
        settings: req.settings.unwrap_or_else(|| json!({})),
        secrets: req.secrets,
        rate_limit_per_second,
        concurrency,
    };
    let connection = ops::connections::create(&app, &access.workspace, new).await?;
    Ok((StatusCode::CREATED, Json((&connection).into())))
}

/// List the workspace's connections.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/connections", tag = "connections", operation_id = "list_connections",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, PageParams),
    responses(
        (status = 200, description = "A page of connections.", body = List<ConnectionView>),
        (status = 400, description = "`limit` or `cursor` out of range.", body = ErrorBody),
    ),
)]
async fn list_connections(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Query(p): Query<PageParams>,
) -> Answer<List<ConnectionView>> {
    let page = p.page()?;
    let all = app.store().connections(&access.workspace, &page).await?;
    let last = all.last().map(|c| c.id.clone());
    Ok(Json(List::page(all.iter().map(Into::into).collect(), page.limit, last)))
}

/// One connection.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/connections/{id}", tag = "connections", operation_id = "get_connection",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The connection's id (`conn_…`).")),
    responses(
        (status = 200, description = "The connection.", body = ConnectionView),
        (status = 404, description = "No such connection.", body = ErrorBody),
    ),
)]
async fn show(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<ConnectionView> {
    Ok(Json((&ops::connections::load(&app, &access.workspace, &id).await?).into()))
}

/// Change a connection: rename, repin, reconfigure, pause or resume it.
///
/// The resulting settings and secrets are checked with the connector again.
#[utoipa::path(
    patch, path = "/api/v1/workspaces/{ws}/connections/{id}", tag = "connections",
    operation_id = "update_connection",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The connection's id (`conn_…`).")),
    request_body = UpdateConnection,
    responses(
        (status = 200, description = "The connection as changed.", body = ConnectionView),
        (status = 404, description = "No such connection.", body = ErrorBody),
        (status = 422, description = "A field out of bounds, or settings or secrets the connector refuses.",
            body = ErrorBody),
        (status = 500, description = "The stored secrets cannot be opened.", body = ErrorBody),
    ),
)]
async fn update(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Id(id): Id,
    Json(req): Json<UpdateConnection>,
) -> Answer<ConnectionView> {
    check_fields(req.name.as_deref(), None, req.version.as_deref(), req.settings.as_ref())?;
    let (rate_limit_per_second, concurrency) = limits(req.rate_limit_per_second, req.concurrency)?;
    let change = ops::connections::ConnectionChange {
        name: req.name,
        version: req.version,
        settings: req.settings,
        secrets: req.secrets,
        active: req.active,
        rate_limit_per_second,
        concurrency,
    };
    Ok(Json((&ops::connections::update(&app, &access.workspace, &id, change).await?).into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteParams {
    /// Delete the rules that use the connection too.
    force: Option<bool>,
}

/// Delete a connection; its queued deliveries fail.
#[utoipa::path(
    delete, path = "/api/v1/workspaces/{ws}/connections/{id}", tag = "connections",
    operation_id = "delete_connection",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The connection's id (`conn_…`)."), DeleteParams),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`force` is not a boolean.", body = ErrorBody),
        (status = 404, description = "No such connection.", body = ErrorBody),
        (status = 409, description = "Rules use the connection; pass `?force=true`.", body = ErrorBody),
    ),
)]
async fn remove(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Id(id): Id,
    Query(p): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    ops::connections::remove(&app, &access.workspace, &id, p.force == Some(true)).await?;
    Ok(StatusCode::NO_CONTENT)
}
