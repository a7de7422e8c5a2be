//! The OpenAPI document at `GET /api/v1/openapi.json`: valid OpenAPI 3.1 by
//! the official schema, complete (every route the router declares is an
//! operation, and every operation is served), and honest about refusals
//! (every error answer is an `ErrorBody`, and every error code is listed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Resource, Validator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::host::TestHost;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

async fn served_document(host: &TestHost) -> Value {
    let (status, doc) = host.raw(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "the document needs no credentials: {doc}");
    doc
}

/// A vendored schema from `tests/data/`: the OpenAPI Initiative's own,
/// unchanged, taken from the PyPI packages `openapi-spec-validator` 0.9.0
/// (the 3.1 schema, `$id` `…/oas/3.1/schema/2022-10-07`) and
/// `openapi-schema-validator` 0.9.0 (the 3.1 base dialect and its base
/// vocabulary); `tests/data/README.md` has the paths and checksums.
fn vendored(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("tests/data").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

const DIALECT: &str = "https://spec.openapis.org/oas/3.1/dialect/base";
const VOCABULARY: &str = "https://spec.openapis.org/oas/3.1/meta/base";

/// The OpenAPI 3.1 schema, with Schema Objects held to the OAS base dialect
/// as the specification's `schema-base` does. The schema leaves them open
/// (its `#meta` anchor is `{"type": ["object", "boolean"]}`) for a wrapper
/// to narrow through `$dynamicRef`'s dynamic scope; the `jsonschema` crate
/// resolves `$dynamicRef` statically, so the anchor is pointed at the dialect
/// here. The dialect's own references (the 2020-12 meta-schema, built into the
/// crate, and the OAS vocabulary) resolve offline.
fn openapi_31() -> Validator {
    let mut schema = vendored("openapi-3.1-schema.json");
    assert_eq!(schema["$defs"]["schema"]["$dynamicAnchor"], "meta", "the anchor this narrows");
    schema["$defs"]["schema"] = json!({"$dynamicAnchor": "meta", "$ref": DIALECT});
    let resource = |name| Resource::from_contents(vendored(name)).unwrap();
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .with_resource(DIALECT, resource("openapi-3.1-dialect-base.json"))
        .with_resource(VOCABULARY, resource("openapi-3.1-meta-base.json"))
        .build(&schema)
        .expect("the OpenAPI 3.1 schema compiles")
}

fn violations(validator: &Validator, doc: &Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

/// Every operation of the document: `(path, method, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut all = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                all.push((path.clone(), method.to_string(), op.clone()));
            }
        }
    }
    all
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let host = TestHost::start().await;
    let doc = served_document(&host).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Switchboard");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"), "the workspace version");
    let errors = violations(&openapi_31(), &doc);
    assert!(errors.is_empty(), "{errors:#?}");
    // What the schema cannot say: operation ids are unique.
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| METHODS.iter().filter_map(|m| item.get(*m)?["operationId"].as_str()))
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicate operation ids in {ids:?}");
    for scheme in ["admin_token", "secret_key", "publishable_key"] {
        assert!(doc["components"]["securitySchemes"].get(scheme).is_some(), "{scheme}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["publishable_key"]["name"], "X-Meshes-Publishable-Key");
}

/// What a broken copy lacks, and how it is broken.
type Breakage = (&'static str, fn(&mut Value));

#[tokio::test]
async fn the_validator_rejects_broken_documents() {
    let host = TestHost::start().await;
    let doc = served_document(&host).await;
    let validator = openapi_31();
    let broken: [Breakage; 5] = [
        ("no info", |d| {
            d.as_object_mut().unwrap().remove("info");
        }),
        ("an OpenAPI 3.0 version", |d| d["openapi"] = json!("3.0.3")),
        ("a response without a description", |d| {
            d["paths"]["/healthz"]["get"]["responses"]["200"].as_object_mut().unwrap().remove("description");
        }),
        ("a parameter in no place", |d| {
            d["paths"]["/api/v1/workspaces/{ws}"]["get"]["parameters"][0]["in"] = json!("body")
        }),
        // Only a Schema Object held to the dialect is refused for this.
        ("a schema whose type is a number", |d| d["components"]["schemas"]["ErrorBody"]["type"] = json!(7)),
    ];
    for (what, breaks) in broken {
        let mut copy = doc.clone();
        breaks(&mut copy);
        assert!(!violations(&validator, &copy).is_empty(), "a document with {what} passed");
    }
}

/// `(path, method)` of every `.route("<path>", <method>(…)…)` in `source`:
/// the methods are the method routers called at the top level of the
/// call's second argument (`get(a).post(b)`, `put(c).layer(…)`).
fn declared_routes(source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (start, _) in source.match_indices(".route(") {
        let Some(rest) = source[start + ".route(".len()..].trim_start().strip_prefix('"') else { continue };
        let Some((path, rest)) = rest.split_once('"') else { continue };
        let (mut depth, mut ident) = (0usize, String::new());
        for c in rest.chars() {
            match c {
                '(' if depth == 0 && METHODS.contains(&ident.as_str()) => {
                    found.push((path.to_string(), ident.clone()));
                    depth += 1;
                }
                '(' | '{' | '[' => depth += 1,
                ')' | '}' | ']' if depth == 0 => break,
                ')' | '}' | ']' => depth -= 1,
                _ => {}
            }
            if c.is_alphanumeric() || c == '_' {
                ident.push(c);
            } else {
                ident.clear();
            }
        }
    }
    found
}

/// The routes the router is built from: `host/src/api/*.rs` and `metrics.rs`
/// (the dashboard under `/ui` is HTML, not API).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let api = repo().join("host/src/api");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&api)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.push(repo().join("host/src/metrics.rs"));
    files.iter().flat_map(|f| declared_routes(&std::fs::read_to_string(f).unwrap())).collect()
}

#[test]
fn the_route_scan_reads_method_chains() {
    let source = r#"Router::new()
        .route("/a/{id}", get(show).patch(update).delete(remove))
        .route("/b", put(upload).layer(DefaultBodyLimit::max(get_limit(1))))
        .route("/c", get(|| async { axum::Json(serde_json::json!({})) }))"#;
    let routes = declared_routes(source);
    let expect = [("/a/{id}", "get"), ("/a/{id}", "patch"), ("/a/{id}", "delete"), ("/b", "put"), ("/c", "get")];
    assert_eq!(routes, expect.map(|(p, m)| (p.to_string(), m.to_string())));
}

#[tokio::test]
async fn every_route_of_the_router_is_documented_and_every_operation_is_served() {
    let host = TestHost::start().await;
    let doc = served_document(&host).await;
    let declared = routes_in_source();
    assert!(declared.len() >= 30, "the scan found too few routes: {declared:?}");
    for sample in [("/api/v1/events", "post"), ("/metrics", "get"), ("/api/v1/openapi.json", "get")] {
        assert!(declared.contains(&(sample.0.into(), sample.1.into())), "the scan missed {sample:?}");
    }
    let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(p, m, _)| (p, m)).collect();
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes missing from the document: {undocumented:?}");

    // And each operation is served: called without credentials, it may be
    // refused, but never as a path or a method the router does not know.
    for (path, method) in &documented {
        let concrete: String = path
            .split('/')
            .map(|segment| if segment.starts_with('{') { "x" } else { segment })
            .collect::<Vec<_>>()
            .join("/");
        let (status, body) = host.raw(method.to_uppercase().parse().unwrap(), &concrete, None, None).await;
        let code = body["code"].as_str().unwrap_or_default();
        assert!(
            !["route_not_found", "method_not_allowed"].contains(&code) && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served: {status} {body}"
        );
    }
}

/// Whether a response's JSON schema is the `ErrorBody`, or one of its choices.
fn is_error_body(schema: &Value) -> bool {
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    *schema == error_body
        || ["oneOf", "anyOf"].iter().any(|k| schema[k].as_array().is_some_and(|c| c.contains(&error_body)))
}

/// `ErrorCode`'s variants, in the wire's snake case, read from its source.
fn error_codes_in_source() -> Vec<String> {
    let source = std::fs::read_to_string(repo().join("host/src/api/error.rs")).unwrap();
    let body = source.split("pub enum ErrorCode {").nth(1).expect("ErrorCode").split('}').next().unwrap();
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
        .map(|variant| {
            let mut snake = String::new();
            for (i, c) in variant.trim_end_matches(',').chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            snake
        })
        .collect()
}

#[tokio::test]
async fn every_error_answer_is_an_error_body_and_every_code_is_listed() {
    let host = TestHost::start().await;
    let doc = served_document(&host).await;
    for (path, method, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        for (status, answer) in responses {
            // The probe's "not ready" is its answer, not a refusal.
            if !(status.starts_with('4') || status.starts_with('5')) || (path == "/readyz" && status == "503") {
                continue;
            }
            let schema = &answer["content"]["application/json"]["schema"];
            assert!(is_error_body(schema), "{method} {path} {status} is not an ErrorBody: {answer}");
        }
        if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
            for status in ["401", "403", "503"] {
                assert!(responses.contains_key(status), "{method} {path} does not document {status}");
            }
            assert!(op["security"].as_array().is_some_and(|s| !s.is_empty()), "{method} {path} names no credential");
        }
    }

    let schema = &doc["components"]["schemas"]["ErrorCode"];
    let listed: Vec<&str> = schema["enum"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let codes = error_codes_in_source();
    assert!(codes.len() >= 14 && codes.contains(&"route_not_found".to_string()), "{codes:?}");
    for code in &codes {
        assert!(listed.contains(&code.as_str()), "`{code}` is not in the document's ErrorCode");
    }
    let descriptions = schema["x-enum-descriptions"].as_array().unwrap();
    assert_eq!(descriptions.len(), listed.len());
    for (code, description) in listed.iter().zip(descriptions) {
        assert!(description.as_str().is_some_and(|d| !d.is_empty()), "`{code}` has no description");
        assert!(schema["description"].as_str().unwrap().contains(&format!("`{code}`")), "{code}");
    }
}

#[tokio::test]
async fn the_examples_fit_their_schemas() {
    let host = TestHost::start().await;
    let doc = served_document(&host).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut checked = 0;
    for (name, schema) in schemas {
        let Some(example) = schema.get("example") else { continue };
        // The document as the root resource, so that `#/components/…` resolves.
        let mut root = doc.clone();
        root["$ref"] = json!(format!("#/components/schemas/{name}"));
        let validator = jsonschema::options().with_draft(Draft::Draft202012).build(&root).unwrap();
        let errors = violations(&validator, example);
        assert!(errors.is_empty(), "the example of {name} does not fit: {errors:#?}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples");
}
