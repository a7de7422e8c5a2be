//! The Switchboard connector SDK: what a connector author depends on.
//!
//! A connector is a type implementing [`Connector`] plus one call to
//! [`export_connector!`]. The WIT contract (`wit/connector.wit`) stays behind
//! this crate: connector code speaks [`Event`], [`Request`], [`Response`] and
//! [`Failure`], and reaches the outside world only through a [`Host`], which
//! in a component is the Switchboard host and in native unit tests is a
//! [`testing::MockHost`]. The same logic therefore compiles and tests natively
//! and for `wasm32-wasip2`.
//!
//! # Example
//!
//! A complete connector that posts the event's payload to a URL from its
//! settings, authenticated with a secret it never sees:
//!
//! ```
//! use switchboard_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Ping;
//!
//! impl Connector for Ping {
//!     fn describe() -> Manifest {
//!         Manifest::new("ping", "0.1.0", "POSTs the payload to a URL")
//!             .settings_schema(json!({
//!                 "type": "object",
//!                 "required": ["url"],
//!                 "properties": {"url": {"type": "string", "format": "uri"}}
//!             }))
//!             .secret("token", "Bearer token for the receiver", true)
//!             .action("ping", "Send the payload", json!({"type": "object"}))
//!             .allowed_hosts(["*"])
//!     }
//!
//!     fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
//!         let url = delivery.setting_str("url")?;
//!         let request = Request::post(url)
//!             .bearer_secret("token")
//!             .json_text(delivery.event.payload.clone());
//!         let response = host.send(&request)?;
//!         response.classify(delivery.event.attempt_time)?;
//!         Ok(format!("receiver answered {}", response.status))
//!     }
//! }
//!
//! switchboard_sdk::export_connector!(Ping);
//!
//! // Natively, the same logic runs against a scripted host:
//! # fn main() {
//! use switchboard_sdk::testing::{MockHost, event};
//! let host = MockHost::new().respond(200, "ok");
//! let delivery = Delivery::new(event("page.completed", json!({"step": 3})), "ping",
//!     json!({}), json!({"url": "https://example.com/hook"}));
//! assert_eq!(Ping::deliver(&host, delivery).unwrap(), "receiver answered 200");
//! let sent = host.requests();
//! assert_eq!(sent[0].header_value("authorization"), Some("Bearer {{secret.token}}"));
//! # }
//! ```

// The generated bindings name this crate by its external name, from inside too.
extern crate self as switchboard_sdk;

mod connector;
mod failure;
mod host;
mod http;
mod manifest;
#[cfg(feature = "testing")]
pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use connector::{Connector, Delivery, Event};
pub use failure::{Failure, Retry};
pub use host::{Host, KeyEncoding, Level};
pub use http::{Header, Request, Response, SendError, parse_retry_after, secret};
pub use manifest::{Action, Manifest, RateLimit, SecretSpec};
pub use serde_json::{self, Value, json};

/// Everything a connector module usually needs.
pub mod prelude {
    pub use crate::{
        Connector, Delivery, Event, Failure, Host, KeyEncoding, Level, Manifest, Request, Response, Retry, SendError,
        json, secret,
    };
    pub use serde_json::Value;
}
