//! The operator's dashboard at `/ui`: a small vanilla JavaScript app that
//! calls the management API with the credential the operator signs in with.
//! Its files are embedded in the binary (no CDN, no build step) and served
//! here with a strict Content-Security-Policy: the app may load and call
//! only its own origin, and nothing of it runs inline.
//!
//! The dashboard has no access of its own: every screen is a plain API call
//! with the operator's bearer token, so the API's permissions apply as they are.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::api::AppState;

/// One embedded file, served at `/ui/{name}` (the page itself at `/ui`).
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset { name: $name, content_type: $content_type, body: include_bytes!(concat!("assets/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("signin.js", JS),
    asset!("workspaces.js", JS),
    asset!("events.js", JS),
    asset!("event.js", JS),
    asset!("attempts.js", JS),
    asset!("replay.js", JS),
    asset!("connections.js", JS),
    asset!("rules.js", JS),
    asset!("connectors.js", JS),
];

/// Only this origin, for everything; no inline script or style, no plugins,
/// no framing. `style-src` stays `'self'`: the app sets styles through the
/// CSSOM, which a CSP does not govern, never through `style` attributes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A strong validator per asset, so a reload revalidates cheaply but never
/// keeps a file from an older binary (`Cache-Control: no-cache`).
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
        })
        .collect()
});

pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(|headers: HeaderMap| async move { serve(0, &headers) }))
        .route("/ui/", get(|| async { Redirect::to("/ui") }));
    for (index, asset) in ASSETS.iter().enumerate().skip(1) {
        let path = format!("/ui/{}", asset.name);
        router = router.route(&path, get(move |headers: HeaderMap| async move { serve(index, &headers) }));
    }
    router
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_named_once_and_the_page_comes_first() {
        assert_eq!(ASSETS[0].name, "index.html");
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        for reference in page.split(['"', '\'']).filter(|s| s.starts_with("/ui/")) {
            let name = &reference["/ui/".len()..];
            assert!(ASSETS.iter().any(|a| a.name == name), "index.html loads {reference}, which is not embedded");
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "no external resources");
    }

    #[test]
    fn every_module_import_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line.rsplit(['"', '\'']).nth(1).expect("an import names its module");
                let name = target.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{} imports {target}, which is not embedded",
                    asset.name
                );
            }
        }
    }
}
