//! `run(config, listener, shutdown)`: the whole service — store, sandbox,
//! registry, delivery workers and the HTTP API — started in-process by the
//! binary and by the tests alike.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::Config;
use crate::egress::EgressPolicy;
use crate::registry::{Entry, Origin, RegistryError};
use crate::runtime::Runtime;
use crate::runtime::cache::StoreCache;
use crate::runtime::transport::ReqwestTransport;
use crate::secrets::MasterKey;

/// Read a generated credential from the data dir, or create it (0600) and
/// print it once.
fn bootstrap_secret(dir: &Path, file: &str, what: &str, make: impl Fn() -> String) -> anyhow::Result<String> {
    let path = dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let value = make();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, value.as_bytes())?;
    f.sync_all()?;
    eprintln!("switchboard: generated {what} (stored in {}, shown once): {value}", path.display());
    Ok(value)
}

/// Open everything and build the shared state.
pub async fn build(config: Config) -> anyhow::Result<Arc<App>> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    if config.store.backend.is_shared() && (config.admin_token.is_none() || config.master_key.is_none()) {
        // A node that made up its own would refuse the others' tokens and
        // could not open the connection secrets they sealed.
        anyhow::bail!("with a shared store, set `admin_token` and `master_key` (the same on every node)");
    }
    let admin_token = match &config.admin_token {
        Some(t) => t.clone(),
        None => bootstrap_secret(&config.data_dir, "admin_token", "admin token", || {
            format!("sb_admin_{}", ulid::Ulid::new().to_string().to_lowercase())
        })?,
    };
    let master_key = match &config.master_key {
        Some(k) => k.clone(),
        None => bootstrap_secret(&config.data_dir, "master_key", "master key", MasterKey::generate)?,
    };
    let master_key = MasterKey::from_base64(&master_key).context("master_key")?;
    let store = crate::store::open(&config.store, &config.data_dir).await.context("opening the store")?;
    let egress = Arc::new(EgressPolicy {
        allow_private_networks: config.egress.allow_private_networks,
        allow_hosts: config.egress.allow_hosts.clone(),
    });
    let map_hosts =
        crate::runtime::transport::HostMap::from_config(&config.egress.map_hosts).context("egress.map_hosts")?;
    for (host, to) in map_hosts.iter() {
        tracing::warn!(%host, %to, "egress.map_hosts: requests for this host go to this address over plain HTTP");
    }
    let transport = Arc::new(ReqwestTransport::new(egress.clone())?.with_map_hosts(map_hosts));
    let runtime = Runtime::new(config.sandbox.clone(), egress, transport, Arc::new(StoreCache(store.clone())))?;
    let admin_hash: [u8; 32] = Sha256::digest(admin_token.as_bytes()).into();
    let connectors_dir = config.connectors_dir.clone();
    let app = Arc::new(App::new(config, store, runtime, master_key, admin_hash));
    // Bundled first: a file in connectors_dir with the same name and
    // version is then the one left out (and logged).
    for (package, bytes) in crate::bundled::CONNECTORS {
        register(&app, bytes, Origin::Bundled, package).await;
    }
    if let Some(dir) = connectors_dir {
        register_dir(&app, &dir, Origin::Directory).await?;
    }
    if app.config().store.backend.is_shared() {
        // The store holds the cluster's uploads and blocks: the files of
        // this node's own are not the truth.
        crate::cluster::sync(&app).await.context("reading the shared connector registry")?;
    } else {
        let uploaded = app.uploads_dir();
        if uploaded.exists() {
            register_dir(&app, &uploaded, Origin::Uploaded).await?;
        }
        app.registry().load_blocked(&app.uploads_dir()).await;
        app.registry().load_releases(&app.uploads_dir()).await;
    }
    Ok(app)
}

/// Register every `*.wasm` in `dir` (`connectors_dir`, or the uploads), in name order.
async fn register_dir(app: &App, dir: &Path, origin: Origin) -> anyhow::Result<()> {
    let mut paths = Vec::new();
    let mut entries =
        tokio::fs::read_dir(dir).await.with_context(|| format!("reading connectors dir {}", dir.display()))?;
    while let Some(entry) = entries.next_entry().await? {
        if entry.path().extension().is_some_and(|x| x == "wasm") {
            paths.push(entry.path());
        }
    }
    paths.sort();
    for path in paths {
        let bytes = tokio::fs::read(&path).await?;
        register(app, &bytes, origin, &path.display().to_string()).await;
    }
    Ok(())
}

/// Load `bytes` (through the compiled-artifact cache, so a restart compiles
/// nothing) and add them to the registry. `source` names them in the log.
/// A refusal is logged, not returned: one bad file does not stop the start.
async fn register(app: &App, bytes: &[u8], origin: Origin, source: &str) {
    let (connector, compiled) = match app.runtime().load_cached(bytes, &app.artifacts_dir()).await {
        Ok(loaded) => loaded,
        Err(e) => return tracing::warn!(source, error = %e, "connector refused"),
    };
    let (name, version) = (connector.manifest().name.clone(), connector.manifest().version.clone());
    let sha256 = connector.sha256().to_string();
    match app.registry().restore(Entry { connector, origin, compiled, blocked: false }) {
        Ok(()) => tracing::info!(connector = %name, %version, ?origin, compiled, source, "connector registered"),
        Err(RegistryError::NotGreater { .. }) => {
            // Registered earlier at start: bundled first, then connectors_dir, then uploads.
            let same = app.registry().resolve(&name, &version).is_some_and(|c| c.sha256() == sha256);
            if same {
                tracing::info!(connector = %name, %version, source, "connector not registered: the same build is already registered");
            } else {
                tracing::warn!(
                    connector = %name, %version, source,
                    "connector not registered: another build of this name and version was registered first \
                     (bundled connectors, then connectors_dir, then uploads); give it a new version"
                );
            }
        }
        Err(e) => tracing::warn!(connector = %name, %version, source, error = %e, "connector not registered"),
    }
}

/// Serve until `shutdown` is cancelled, then stop accepting, let in-flight
/// attempts finish within the grace period and flush the store.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let app = build(config).await?;
    serve(app, listener, shutdown).await
}

pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let delivery = tokio::spawn(crate::delivery::run(app.clone(), shutdown.clone()));
    let sweeper = tokio::spawn(crate::ops::retention::run(app.clone(), shutdown.clone()));
    tokio::spawn(crate::cluster::follow(app.clone(), shutdown.clone()));
    if let Some(dir) = app.config().connectors_dir.clone().filter(|_| app.config().registry.watch) {
        tracing::info!(dir = %dir.display(), "development mode: watching the connectors directory");
        crate::devmode::spawn(app.clone(), dir, shutdown.clone())?;
    }
    crate::ops::replay::resume(&app).await;
    let router = crate::api::router(app.clone());
    tracing::info!(listen = %listener.local_addr()?, "switchboard serving");
    // TCP_NODELAY: an answer written in two parts must not wait for the
    // client's delayed ACK (40 ms on Linux) before its second part leaves.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned()).await?;
    app.set_workers_up(false);
    let _ = delivery.await;
    let _ = sweeper.await;
    app.store().sync().await?;
    // The store closes when its last handle goes; a restart in the same
    // process waits briefly for the engine's lock (see `EmbeddedStore::open`).
    drop(app);
    tracing::info!("switchboard stopped");
    Ok(())
}
