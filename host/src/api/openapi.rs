//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` and the views' `ToSchema` annotations. What
//! every operation shares is added here, once, by the modifiers: the
//! security schemes, the refusals of the JSON extractor and of
//! authentication (they come from shared extractors, not from the handler),
//! and what each stable error code means.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, ObjectBuilder, Ref, RefOr, Response};
use utoipa::{IntoParams, Modify, OpenApi};

use super::AppState;
use super::error::{ErrorBody, ErrorCode};
use super::{connections, connectors, events, health, ingest, rules, workspaces};

pub const PATH: &str = "/api/v1/openapi.json";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        version = env!("CARGO_PKG_VERSION"),
        description = "Self-hosted event routing through sandboxed WebAssembly connectors.\n\n\
            Two APIs share one port: **ingest** (`POST /api/v1/events`, wire-compatible with the Meshes \
            events API; a publishable or secret workspace key) and **management** (everything else under \
            `/api/v1/`; the admin token or a workspace's secret key). Every error answers an `ErrorBody` \
            whose `code` is one of the stable `ErrorCode`s; the `message` is for people and may change.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        ingest::emit, ingest::emit_bulk,
        workspaces::list_workspaces, workspaces::create, workspaces::show,
        workspaces::list_keys, workspaces::create_key, workspaces::revoke,
        connections::list_connections, connections::create, connections::show, connections::update,
        connections::remove,
        rules::list_rules, rules::create, rules::show, rules::update, rules::remove, rules::preview,
        events::list_events, events::show_event, events::payload, events::event_deliveries,
        events::list_deliveries, events::show_delivery, events::attempts, events::retry, events::cancel,
        events::create_replay, events::show_replay, events::rerun,
        connectors::list, connectors::upload, connectors::versions, connectors::remove, connectors::approve, connectors::rollout,
        connectors::block, connectors::unblock, connectors::enabled,
        health::healthz, health::readyz, metrics, openapi_json,
    ),
    components(schemas(ErrorBody, ErrorCode)),
    modifiers(&SecuritySchemes, &SharedAnswers, &ErrorCodes),
    tags(
        (name = "ingest", description = "Emit events: wire-compatible with the Meshes events API."),
        (name = "workspaces", description = "Workspaces and their keys."),
        (name = "connections", description = "Configured instances of connectors; secrets are write-only."),
        (name = "rules", description = "When an event matches, run an action of a connection with templated fields."),
        (name = "events", description = "What a workspace emitted, and how its deliveries stand."),
        (name = "deliveries", description = "Deliveries, their attempts, and the levers: retry, cancel, replay."),
        (name = "connectors", description = "The connector registry (admin) and what a workspace has enabled."),
        (name = "operations", description = "Probes, metrics and this document."),
    ),
)]
pub struct ApiDoc;

/// The document, serialized once: it only changes with the build.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("an OpenAPI document always serializes"));

/// This document: OpenAPI 3.1, generated from the code.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)),
)]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

/// Prometheus metrics, in the text exposition format.
///
/// Open unless `[metrics] token` is set; then it wants that token as a bearer.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    security((), ("metrics_token" = [])),
    responses(
        (
            status = 200, description = "The metrics.", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8",
        ),
        (status = 401, description = "A token is configured and the request did not send it.", body = ErrorBody),
    ),
)]
#[allow(dead_code)] // Described only: `crate::metrics` serves the route.
fn metrics() {}

/// The `{ws}` of a workspace's routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Described only: `auth::WorkspaceAccess` reads the path.
pub struct WorkspacePath {
    /// The workspace's id (`ws-…`).
    ws: String,
}

/// The `{name}` and `{version}` of a connector version's routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Described only: the handlers read the path.
pub struct VersionPath {
    /// The connector's name.
    name: String,
    /// An exact semver version.
    version: String,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let bearer = |format: Option<&str>, description: &str| {
            let http = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description));
            SecurityScheme::Http(match format {
                Some(f) => http.bearer_format(f).build(),
                None => http.build(),
            })
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            bearer(
                None,
                "The admin token (`admin_token` in the config, or the one generated on first start): every \
                 management endpoint.",
            ),
        );
        components.add_security_scheme(
            "secret_key",
            bearer(
                Some("mesh_sec_…"),
                "A workspace secret key: its own workspace's endpoints, `GET /api/v1/workspaces`, and ingest.",
            ),
        );
        components.add_security_scheme(
            "publishable_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Meshes-Publishable-Key",
                "A workspace publishable key (`mesh_pub_…`), safe in a browser: ingest only.",
            ))),
        );
        components.add_security_scheme(
            "metrics_token",
            bearer(None, "`[metrics] token`, when one is set: `GET /metrics` only."),
        );
    }
}

/// The refusals every operation of a kind can answer, added where the
/// handler's annotation does not already describe them: those of the JSON
/// body extractor, and those of authentication and the store, which every
/// route under `/api/v1/` (but this document) goes through.
struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let authenticated = path.starts_with("/api/v1/") && path != PATH;
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in operations.into_iter().flatten() {
                let json_body = op.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
                let mut shared = Vec::new();
                if json_body {
                    shared.extend([
                        ("400", "The body is not JSON."),
                        ("413", "The body is over its limit; the message gives the limit in bytes."),
                        ("415", "The body was not sent as `Content-Type: application/json`."),
                    ]);
                }
                // Ingest reads its body as any JSON and refuses shapes item by item.
                let ingest = op.tags.iter().flatten().any(|t| t == "ingest");
                if json_body && !ingest {
                    let shape =
                        "The body has the wrong shape or a value out of bounds; `details.path` names the field.";
                    shared.push(("422", shape));
                }
                if authenticated {
                    shared.extend([
                        ("401", "No credentials, or ones nobody issued."),
                        (
                            "403",
                            "The credentials are valid, not for this: another workspace, a revoked key, or an \
                             admin-only endpoint.",
                        ),
                        ("503", "The store cannot take writes now; try again after `Retry-After`."),
                    ]);
                }
                for (status, description) in shared {
                    let answers = &mut op.responses.responses;
                    answers.entry(status.to_string()).or_insert_with(|| RefOr::T(error_answer(description)));
                }
                for answer in op.responses.responses.values_mut() {
                    if let RefOr::T(answer) = answer {
                        let id = HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)))
                            .description(Some("The request's id: the client's own `X-Request-Id` when usable, else a new one; in every log line of the request."))
                            .build();
                        answer.headers.insert("X-Request-Id".to_string(), id);
                    }
                }
                for status in ["429", "503"] {
                    if let Some(RefOr::T(answer)) = op.responses.responses.get_mut(status) {
                        let seconds = ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer)).minimum(Some(0));
                        let header = HeaderBuilder::new()
                            .schema(seconds)
                            .description(Some("Seconds to wait before trying again."))
                            .build();
                        answer.headers.insert("Retry-After".to_string(), header);
                    }
                }
            }
        }
    }
}

fn error_answer(description: &str) -> Response {
    let mut answer = Response::new(description);
    answer.content.insert("application/json".to_string(), Content::new(Some(Ref::from_schema_name("ErrorBody"))));
    answer
}

/// The stable error codes with what each means: the derived schema lists
/// them, this says what they mean (`x-enum-descriptions`, and a table in the
/// description for viewers that do not read the extension).
struct ErrorCodes;

/// Every code, for naming them. A code missing here has no description in
/// the document, which the integration suite catches.
const CODES: [ErrorCode; 14] = [
    ErrorCode::BadRequest,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::RouteNotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::Conflict,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::Unprocessable,
    ErrorCode::TooEarly,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
];

/// What a code means; the `match` makes a new code name its meaning here.
fn meaning(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "400: the request is malformed (query, path, JSON or body shape).",
        ErrorCode::Unauthorized => "401: no credentials, or ones nobody issued.",
        ErrorCode::Forbidden => "403: the credentials are valid but not for this resource.",
        ErrorCode::NotFound => "404: the record is not there.",
        ErrorCode::RouteNotFound => "404: no route has this path.",
        ErrorCode::MethodNotAllowed => "405: the route exists, not with this method; see `Allow`.",
        ErrorCode::Conflict => "409: the change conflicts with the current state.",
        ErrorCode::PayloadTooLarge => "413: the body is over its limit.",
        ErrorCode::UnsupportedMediaType => "415: the body is not of the type the route takes.",
        ErrorCode::Unprocessable => {
            "422: the request is well-formed but refused; `details.path` names the field when there is one."
        }
        ErrorCode::TooEarly => "425: the delivery has an attempt in flight or due within a second.",
        ErrorCode::RateLimited => "429: over a rate; see `Retry-After`.",
        ErrorCode::Internal => "500: a fault of the server's own.",
        ErrorCode::Unavailable => "503: the store cannot take writes now; see `Retry-After`.",
    }
}

impl Modify for ErrorCodes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let named: Vec<(Value, &str)> = CODES.iter().map(|c| (json!(c), meaning(*c))).collect();
        let schemas = &mut doc.components.get_or_insert_with(Default::default).schemas;
        let Some(RefOr::T(Schema::Object(schema))) = schemas.get_mut("ErrorCode") else { return };
        let codes = schema.enum_values.clone().unwrap_or_default();
        let described: Vec<&str> =
            codes.iter().map(|c| named.iter().find(|(n, _)| n == c).map_or("", |(_, m)| *m)).collect();
        let mut table = String::from(
            "A stable, machine-readable reason: clients match on these; the message is for people and may \
             change.\n\n| code | meaning |\n|---|---|\n",
        );
        for (code, meaning) in codes.iter().zip(&described) {
            table.push_str(&format!("| `{}` | {meaning} |\n", code.as_str().unwrap_or_default()));
        }
        schema.description = Some(table);
        let extensions = ExtensionsBuilder::new().add("x-enum-descriptions", json!(described)).build();
        schema.extensions.get_or_insert_with(Default::default).merge(extensions);
    }
}
