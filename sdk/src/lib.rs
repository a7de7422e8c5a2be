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
//!             .required_secret("token", "Bearer token for the receiver")
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
//!
//! # Helpers every connector uses
//!
//! - [`Delivery::expect_action`]: the unknown-action guard, one line.
//! - [`Delivery::settings_as`] (in `deliver`), [`settings_as`] (in
//!   `validate`) and [`Delivery::fields_as`]: the settings and fields as the
//!   connector's own `#[derive(Deserialize)]` structs. With
//!   `#[serde(deny_unknown_fields)]` an unknown key is refused by name, and
//!   every refusal names the setting or field (`settings.mode is required`,
//!   ``field `text` must be a string, got a number``); [`settings_as`] lists
//!   the messages. [`NonEmpty`] is a string that must not be empty, [`BaseUrl`]
//!   the origin a vendor's API paths hang off, and [`Checked`] a string that
//!   passed the connector's own [`Check`] (an API version, say).
//! - [`percent_encode`]: any text as one path segment or query value.
//! - [`Failure::map_message`] and [`Response::snippet`]: a classified failure
//!   reworded (e.g. to name the step), a body quoted in a message.
//! - [`Manifest::required_secret`] and [`Manifest::optional_secret`].
//!
//! ```
//! use serde::Deserialize;
//! use switchboard_sdk::prelude::*;
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     base_url: Option<BaseUrl>,
//! }
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Fields {
//!     user: NonEmpty,
//!     note: Option<String>,
//! }
//!
//! fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
//!     delivery.expect_action(&["add_note"])?;
//!     let settings: Settings = delivery.settings_as()?;
//!     let fields: Fields = delivery.fields_as()?;
//!     let base = settings.base_url.as_ref().map_or("https://api.example.com", BaseUrl::as_str);
//!     let url = format!("{base}/users/{}/notes", percent_encode(&fields.user));
//!     let response = host.send(&Request::post(url).json(&json!({"note": fields.note})))?;
//!     response.classify(delivery.event.attempt_time).map_err(|f| f.map_message(|m| format!("add note: {m}")))?;
//!     Ok(format!("HTTP {}", response.status))
//! }
//!
//! # fn main() {
//! use switchboard_sdk::testing::{MockHost, event};
//! let run = |fields: Value| {
//!     let host = MockHost::new().respond(201, "{}");
//!     let summary = deliver(&host, Delivery::new(event("e", json!({})), "add_note", fields, json!({})));
//!     (summary, host.requests().first().map(|r| r.url.clone()))
//! };
//! assert_eq!(
//!     run(json!({"user": "a/b"})),
//!     (Ok("HTTP 201".into()), Some("https://api.example.com/users/a%2Fb/notes".into()))
//! );
//! assert_eq!(run(json!({"user": ""})), (Err(Failure::invalid_fields("field `user` is empty")), None));
//! assert_eq!(
//!     run(json!({"user": "a", "note": 1})),
//!     (Err(Failure::invalid_fields("field `note` must be a string, got a number")), None)
//! );
//! assert_eq!(
//!     run(json!({"usr": "a"})),
//!     (Err(Failure::invalid_fields("field `usr` is not a field of add_note (it takes: user, note)")), None)
//! );
//! assert_eq!(
//!     settings_as::<Settings>(&json!({"base_url": "example.com"})).unwrap_err(),
//!     "settings.base_url must be an absolute http(s) URL without query or fragment, got \"example.com\""
//! );
//! # }
//! ```

#![warn(missing_docs)]

// The generated bindings name this crate by its external name, from inside too.
extern crate self as switchboard_sdk;

mod connector;
mod failure;
mod host;
mod http;
mod manifest;
#[cfg(feature = "testing")]
pub mod testing;
mod typed;
mod url;

#[doc(hidden)]
pub mod __private;

pub use connector::{Connector, Delivery, Event};
pub use failure::{Failure, Retry};
pub use host::{Host, KeyEncoding, Level};
pub use http::{Header, Request, Response, SendError, parse_retry_after, secret};
pub use manifest::{Action, Manifest, RateLimit, SecretSpec};
pub use serde_json::{self, Value, json};
pub use typed::{Check, Checked, NonEmpty, settings_as};
pub use url::{BaseUrl, percent_encode};

/// Everything a connector module usually needs.
pub mod prelude {
    pub use crate::{
        BaseUrl, Check, Checked, Connector, Delivery, Event, Failure, Host, KeyEncoding, Level, Manifest, NonEmpty,
        Request, Response, Retry, SendError, json, percent_encode, secret, settings_as,
    };
    pub use serde_json::Value;
}
