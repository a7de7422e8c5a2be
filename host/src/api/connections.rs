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
use super::limits::{MAX_SETTINGS_BYTES, check_optional_name};
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

async fn show(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<ConnectionView> {
    Ok(Json((&ops::connections::load(&app, &access.workspace, &id).await?).into()))
}

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

#[derive(Deserialize)]
struct DeleteParams {
    force: Option<bool>,
}

async fn remove(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Id(id): Id,
    Query(p): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    ops::connections::remove(&app, &access.workspace, &id, p.force == Some(true)).await?;
    Ok(StatusCode::NO_CONTENT)
}
