//! Development mode: watch the connectors directory and reload a `.wasm`
//! when it changes, so an author sees a rebuilt connector on the next
//! delivery without restarting. A file that fails to load is refused with
//! the reason logged, and the version already registered keeps serving.
//! Reloading a version that is already registered replaces it in place (an
//! author rebuilding 0.1.0 again and again); attempts in flight finish on
//! the build they started with, and every attempt records the SHA-256 of
//! the build that ran it. A reload never lifts a block: a blocked version
//! stays blocked whatever file takes its place.
//!
//! Only in development mode (`serve --dev` or `[registry] watch = true`):
//! otherwise the directory is read once, at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::registry::{Entry, Origin};

/// Watch `dir` until `shutdown`. Changes are debounced by 150 ms, enough for
/// `cargo build` or `cp` to finish writing.
pub fn spawn(app: Arc<App>, dir: PathBuf, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_))
        {
            for path in event.paths.into_iter().filter(|p| p.extension().is_some_and(|x| x == "wasm")) {
                let _ = tx.send(path);
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        let _watcher = watcher; // dropped (and stopped) with this task
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            };
            let mut changed = vec![first];
            tokio::time::sleep(Duration::from_millis(150)).await;
            while let Ok(p) = rx.try_recv() {
                changed.push(p);
            }
            changed.sort();
            changed.dedup();
            for path in changed {
                reload(&app, &path).await;
            }
        }
    });
    Ok(())
}

async fn reload(app: &App, path: &Path) {
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) => {
            return tracing::warn!(path = %path.display(), error = %e, "dev mode: cannot read the changed connector");
        }
    };
    match app.runtime().load_cached(&bytes, &app.artifacts_dir()).await {
        Ok((connector, compiled)) => {
            let (name, version) = (connector.manifest().name.clone(), connector.manifest().version.clone());
            let blocked = app.registry().is_blocked(&name, &version);
            let sha256 = connector.sha256().to_string();
            app.registry().replace(Entry { connector, origin: Origin::Directory, compiled, blocked });
            tracing::info!(connector = %name, %version, %sha256, blocked, path = %path.display(), "dev mode: connector reloaded");
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "dev mode: connector refused; the previous version keeps serving")
        }
    }
}
