//! Generated bindings for `wit/connector.wit`. Private to `runtime`: the rest
//! of the host speaks domain types (`ConnectorManifest`, `AttemptRecord`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector",
    // Host calls that wait on the network or the store are async, so a
    // guest never holds a runtime thread while they run.
    imports: {
        "switchboard:connector/http.send": async,
        "switchboard:connector/cache.get": async,
        "switchboard:connector/cache.set": async,
    },
    exports: { default: async },
});

pub use self::switchboard::connector::{cache, crypto, http, log, secrets, types};
