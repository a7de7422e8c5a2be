//! Generated bindings for `wit/connector.wit`. Private to `runtime`: the rest
//! of the host speaks domain types (`ConnectorManifest`, `AttemptRecord`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector",
    imports: { "switchboard:connector/http.send": async },
    exports: { default: async },
});

pub use self::switchboard::connector::{cache, crypto, http, log, secrets, types};
