//! Generated bindings for `wit/connector.wit`. Private to `runtime`: the rest
//! of the host speaks domain types (`ConnectorManifest`, `AttemptRecord`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector",
    // Host calls that wait on the network or the store are async, so a
    // guest never holds a runtime thread while they run. `trappable` ones
    // may end the invocation: the call past a per-invocation cap does not
    // return to the guest (see `limits.rs`).
    imports: {
        "switchboard:connector/http.send": async | trappable,
        "switchboard:connector/cache.get": async,
        "switchboard:connector/cache.set": async,
        "switchboard:connector/log.log": trappable,
    },
    exports: { default: async },
});

pub use self::switchboard::connector::{cache, crypto, http, log, secrets, types};
