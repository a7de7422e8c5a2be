//! Glue between the WIT bindings and the domain types. Used by
//! [`crate::export_connector!`]; not part of the public API.

#[allow(unsafe_code, clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "connector",
        pub_export_macro: true,
        export_macro_name: "__export_connector_world",
        default_bindings_module: "switchboard_sdk::__private::bindings",
        runtime_path: "switchboard_sdk::__private::wit_bindgen_rt",
    });
}

/// The wit-bindgen runtime, re-exported so connector crates need not depend on it.
pub use wit_bindgen::rt as wit_bindgen_rt;

use bindings::switchboard::connector::{cache, crypto, http as wit_http, log as wit_log, secrets, types};

use crate::http::Header;
use crate::{Connector, Delivery, Event, Failure, Host, KeyEncoding, Level, Manifest, Request, Response, SendError};

/// The real host: every call is a WIT import.
pub struct WitHost;

impl Host for WitHost {
    fn send(&self, request: &Request) -> Result<Response, SendError> {
        let req = types::Request {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request
                .headers
                .iter()
                .map(|h| types::Header { name: h.name.clone(), value: h.value.clone() })
                .collect(),
            body: request.body.clone(),
            timeout_ms: request.timeout_ms,
        };
        match wit_http::send(&req) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
                body: r.body,
            }),
            Err(e) => Err(match e {
                types::SendError::Timeout => SendError::Timeout,
                types::SendError::Connect(m) => SendError::Connect(m),
                types::SendError::Interrupted(m) => SendError::Interrupted(m),
                types::SendError::Denied(m) => SendError::Denied(m),
                types::SendError::LimitExceeded(m) => SendError::LimitExceeded(m),
                types::SendError::Invalid(m) => SendError::Invalid(m),
            }),
        }
    }

    fn cache_get(&self, key: &str) -> Option<String> {
        cache::get(key)
    }

    fn cache_set(&self, key: &str, value: &str, ttl_seconds: u32) {
        cache::set(key, value, ttl_seconds)
    }

    fn hmac_sha256(&self, secret_name: &str, encoding: KeyEncoding, data: &[u8]) -> Result<Vec<u8>, String> {
        let encoding = match encoding {
            KeyEncoding::Utf8 => crypto::KeyEncoding::Utf8,
            KeyEncoding::Base64 => crypto::KeyEncoding::Base64,
            KeyEncoding::StandardWebhooks => crypto::KeyEncoding::StandardWebhooks,
        };
        crypto::hmac_sha256(secret_name, encoding, data)
    }

    fn has_secret(&self, name: &str) -> bool {
        secrets::has(name)
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit_log::Level::Trace,
            Level::Debug => wit_log::Level::Debug,
            Level::Info => wit_log::Level::Info,
            Level::Warn => wit_log::Level::Warn,
            Level::Error => wit_log::Level::Error,
        };
        wit_log::log(level, message)
    }
}

pub fn describe<C: Connector>() -> types::Manifest {
    let m: Manifest = C::describe();
    types::Manifest {
        name: m.name,
        version: m.version,
        description: m.description,
        settings_schema: m.settings_schema.to_string(),
        secrets: m
            .secrets
            .into_iter()
            .map(|s| types::SecretSpec { name: s.name, description: s.description, required: s.required })
            .collect(),
        actions: m
            .actions
            .into_iter()
            .map(|a| types::Action {
                name: a.name,
                description: a.description,
                fields_schema: a.fields_schema.to_string(),
            })
            .collect(),
        allowed_hosts: m.allowed_hosts,
        default_rate_limit: m
            .default_rate_limit
            .map(|r| types::RateLimit { requests: r.requests, per_seconds: r.per_seconds }),
    }
}

pub fn validate<C: Connector>(settings: String) -> Result<(), String> {
    let settings = serde_json::from_str(&settings).map_err(|e| format!("settings are not valid JSON: {e}"))?;
    C::validate(&settings)
}

pub fn deliver<C: Connector>(
    event: types::Event,
    action: String,
    fields: String,
    settings: String,
) -> Result<String, types::Failure> {
    let fields = serde_json::from_str(&fields)
        .map_err(|e| types::Failure::InvalidFields(format!("fields are not valid JSON: {e}")))?;
    let settings = serde_json::from_str(&settings)
        .map_err(|e| types::Failure::Permanent(format!("settings are not valid JSON: {e}")))?;
    let event = Event {
        id: event.id,
        delivery_id: event.delivery_id,
        name: event.name,
        resource: event.resource,
        resource_id: event.resource_id,
        payload: event.payload,
        created_at: event.created_at,
        workspace: event.workspace,
        attempt: event.attempt,
        attempt_time: event.attempt_time,
    };
    C::deliver(&WitHost, Delivery { event, action, fields, settings }).map_err(|f| match f {
        Failure::Retryable(r) => types::Failure::Retryable(types::Retry { message: r.message, after_ms: r.after_ms }),
        Failure::RateLimited(r) => {
            types::Failure::RateLimited(types::Retry { message: r.message, after_ms: r.after_ms })
        }
        Failure::Permanent(m) => types::Failure::Permanent(m),
        Failure::Auth(m) => types::Failure::Auth(m),
        Failure::InvalidFields(m) => types::Failure::InvalidFields(m),
    })
}

/// Export a [`Connector`] implementation as the component's
/// `switchboard:connector/connector` world. Call it once, at the crate root.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[doc(hidden)]
        pub struct __SwitchboardExport;

        impl $crate::__private::bindings::Guest for __SwitchboardExport {
            fn describe() -> $crate::__private::bindings::switchboard::connector::types::Manifest {
                $crate::__private::describe::<$connector>()
            }
            fn validate(settings: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::validate::<$connector>(settings)
            }
            fn deliver(
                event: $crate::__private::bindings::switchboard::connector::types::Event,
                action: ::std::string::String,
                fields: ::std::string::String,
                settings: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::__private::bindings::switchboard::connector::types::Failure,
            > {
                $crate::__private::deliver::<$connector>(event, action, fields, settings)
            }
        }

        $crate::__private::bindings::__export_connector_world!(__SwitchboardExport with_types_in $crate::__private::bindings);
    };
}
