//! Native test support: [`MockHost`] answers `send` from a script, records
//! every request, keeps a real cache and computes real HMACs, so connector
//! logic is unit-tested without a sandbox. [`event`] makes the event to
//! deliver; [`action_names`] and [`secrets`] put a [`Manifest`]'s lists in a
//! form one `assert_eq!` can pin. Enabled by the `testing` feature.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::http::Header;
use crate::{Event, Host, KeyEncoding, Level, Manifest, Request, Response, SendError};

/// A scripted [`Host`].
#[derive(Default)]
pub struct MockHost {
    script: RefCell<VecDeque<Result<Response, SendError>>>,
    requests: RefCell<Vec<Request>>,
    cache: RefCell<HashMap<String, String>>,
    secrets: HashMap<String, String>,
    logs: RefCell<Vec<(Level, String)>>,
}

impl MockHost {
    /// A host with an empty script, no secrets and an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue a response with a text body.
    pub fn respond(self, status: u16, body: &str) -> Self {
        self.respond_with(status, &[], body)
    }

    /// Queue a response with headers and a text body.
    pub fn respond_with(self, status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        let headers = headers.iter().map(|(n, v)| Header { name: n.to_string(), value: v.to_string() }).collect();
        self.script.borrow_mut().push_back(Ok(Response::new(status, headers, body.as_bytes().to_vec())));
        self
    }

    /// Queue a transport failure.
    pub fn fail(self, error: SendError) -> Self {
        self.script.borrow_mut().push_back(Err(error));
        self
    }

    /// Give the connection a secret (used by `hmac_sha256` only: requests
    /// keep their placeholders, exactly as the real host records them).
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.to_string(), value.to_string());
        self
    }

    /// Every request the connector sent, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.borrow().clone()
    }

    /// The cache's current contents.
    pub fn cached(&self, key: &str) -> Option<String> {
        self.cache.borrow().get(key).cloned()
    }

    /// Everything logged.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }
}

impl Host for MockHost {
    fn send(&self, request: &Request) -> Result<Response, SendError> {
        self.requests.borrow_mut().push(request.clone());
        self.script.borrow_mut().pop_front().unwrap_or_else(|| {
            panic!("MockHost: unexpected request {} {} (script exhausted)", request.method, request.url)
        })
    }

    fn cache_get(&self, key: &str) -> Option<String> {
        self.cache.borrow().get(key).cloned()
    }

    fn cache_set(&self, key: &str, value: &str, _ttl_seconds: u32) {
        self.cache.borrow_mut().insert(key.to_string(), value.to_string());
    }

    fn hmac_sha256(&self, secret_name: &str, encoding: KeyEncoding, data: &[u8]) -> Result<Vec<u8>, String> {
        let secret = self.secrets.get(secret_name).ok_or_else(|| format!("no secret named `{secret_name}`"))?;
        let key = decode_key(secret, encoding)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn has_secret(&self, name: &str) -> bool {
        self.secrets.contains_key(name)
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

/// The key bytes of a secret under an encoding — the same rule as the host.
pub fn decode_key(secret: &str, encoding: KeyEncoding) -> Result<Vec<u8>, String> {
    let b64 =
        |s: &str| base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| format!("secret is not base64: {e}"));
    match encoding {
        KeyEncoding::Utf8 => Ok(secret.as_bytes().to_vec()),
        KeyEncoding::Base64 => b64(secret),
        KeyEncoding::StandardWebhooks => b64(secret.strip_prefix("whsec_").unwrap_or(secret)),
    }
}

/// An event for tests: first attempt, fixed ids and times.
pub fn event(name: &str, payload: serde_json::Value) -> Event {
    Event {
        id: "evt_01JTESTEVENT".to_string(),
        delivery_id: "dlv_01JTESTDELIVERY".to_string(),
        name: name.to_string(),
        resource: "global".to_string(),
        resource_id: None,
        payload: payload.to_string(),
        created_at: "2026-01-15T10:00:00Z".to_string(),
        workspace: "ws_test".to_string(),
        attempt: 1,
        attempt_time: 1_768_471_200,
    }
}

/// The manifest's action names, in the order declared:
/// `assert_eq!(action_names(&m), ["send_message"])`.
pub fn action_names(manifest: &Manifest) -> Vec<&str> {
    manifest.actions.iter().map(|a| a.name.as_str()).collect()
}

/// The manifest's secrets as `(name, required)`, in the order declared:
/// `assert_eq!(secrets(&m), [("bot_token", false), ("webhook_url", false)])`.
pub fn secrets(manifest: &Manifest) -> Vec<(&str, bool)> {
    manifest.secrets.iter().map(|s| (s.name.as_str(), s.required)).collect()
}
