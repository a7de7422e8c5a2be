//! A throw-away PostgreSQL cluster for tests (compiled for the crate's own
//! tests and with the `fault-injection` feature the integration suite
//! turns on). Nothing assumes a server already running: [`ScratchCluster`]
//! finds the server binaries (`initdb` on `PATH`, else the newest
//! `/usr/lib/postgresql/*/bin`, where Debian's `postgresql` package puts
//! them; `scripts/setup.sh` installs it), creates a cluster in a temporary
//! directory, starts it on a free loopback port (its socket in that
//! directory too), and hands out a fresh database per caller
//! ([`ScratchCluster::database`]).
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then every
//! server command runs as the `postgres` system user (through `runuser`),
//! which owns the directory.
//!
//! Stopping: a small watchdog shell, started with the cluster, waits on a
//! pipe from this process; when the pipe closes — the cluster dropped, or
//! this process gone however it ended — it stops the server and removes
//! the directory. So the [`ScratchCluster::shared`] one, a static never
//! dropped, goes too.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin: run scripts/setup.sh"
    )]
    NotInstalled,
    #[error("running as root needs the `postgres` system user to run the server (apt-get install postgresql makes it)")]
    NoServerUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {output}")]
    Command { what: String, output: String },
    #[error("creating a scratch database: {0}")]
    Database(#[from] sqlx::Error),
}

pub struct ScratchCluster {
    dir: PathBuf,
    port: u16,
    /// Closing this pipe makes the watchdog stop the server and clean up.
    watchdog: Option<(Child, ChildStdin)>,
}

impl std::fmt::Debug for ScratchCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchCluster").field("dir", &self.dir).field("port", &self.port).finish_non_exhaustive()
    }
}

/// Databases handed out in this process, for unique names.
static DATABASES: AtomicU32 = AtomicU32::new(0);
static CLUSTERS: AtomicU32 = AtomicU32::new(0);

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ScratchError {
    let what = what.into();
    move |source| ScratchError::Io { what, source }
}

impl ScratchCluster {
    /// One cluster for the whole test process, started on first use.
    pub fn shared() -> Result<&'static ScratchCluster, String> {
        static SHARED: OnceLock<Result<ScratchCluster, String>> = OnceLock::new();
        SHARED.get_or_init(|| ScratchCluster::start().map_err(|e| e.to_string())).as_ref().map_err(Clone::clone)
    }

    /// Create and start a cluster (blocking: a second or so).
    pub fn start() -> Result<ScratchCluster, ScratchError> {
        let bin = server_bin_dir().ok_or(ScratchError::NotInstalled)?;
        let run_as = server_user()?;
        let dir = std::env::temp_dir().join(format!(
            "switchboard-pg-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        if let Some((_, uid, gid)) = &run_as {
            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).map_err(io("handing the directory to postgres"))?;
        }
        // From here on the watchdog owns the directory's removal.
        let mut cluster = ScratchCluster { dir: dir.clone(), port: 0, watchdog: None };
        cluster.watchdog = Some(watchdog(&dir, &server_command(&run_as, &bin.join("pg_ctl")))?);
        let data = dir.join("data");
        run(
            server_command(&run_as, &bin.join("initdb"))
                .args(["--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync", "-D"])
                .arg(&data),
            "initdb",
        )?;
        cluster.port = free_port()?;
        // Settings appended to the cluster's own file: no quoting through pg_ctl's shell.
        let settings = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nmax_connections = 300\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            cluster.port,
            dir.display().to_string().replace('\'', "''"),
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(io("writing postgresql.conf"))?;
        run(
            server_command(&run_as, &bin.join("pg_ctl"))
                .args(["-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .arg("start"),
            "pg_ctl start",
        )?;
        Ok(cluster)
    }

    /// The cluster's `postgres` database, as its superuser (no password).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A new, empty database; its URL.
    pub async fn database(&self) -> Result<String, ScratchError> {
        let name = format!("scratch_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
        let mut admin = sqlx::PgConnection::connect(&self.admin_url()).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        admin.close().await?;
        Ok(format!("postgres://postgres@127.0.0.1:{}/{name}", self.port))
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`: `PATH` first (following a
/// symlink to its real directory), then the newest Debian install.
fn server_bin_dir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    for dir in on_path {
        if let Ok(initdb) = dir.join("initdb").canonicalize()
            && let Some(real) = initdb.parent()
            && has_both(real)
        {
            return Some(real.to_path_buf());
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| has_both(bin))
        .collect();
    debian.sort();
    debian.pop().map(|(_, bin)| bin)
}

/// `None` when this process may run the server itself; as root, the
/// `postgres` user (name, uid, gid) to run it as.
fn server_user() -> Result<Option<(String, u32, u32)>, ScratchError> {
    let me = std::fs::metadata("/proc/self").map_err(io("reading /proc/self"))?.uid();
    if me != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("reading /etc/passwd"))?;
    let entry = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() > 3 && f[0] == "postgres");
    let Some(fields) = entry else { return Err(ScratchError::NoServerUser) };
    match (fields[2].parse(), fields[3].parse()) {
        (Ok(uid), Ok(gid)) => Ok(Some(("postgres".to_string(), uid, gid))),
        _ => Err(ScratchError::NoServerUser),
    }
}

/// `program`, run as the server user when there is one.
fn server_command(run_as: &Option<(String, u32, u32)>, program: &Path) -> Command {
    match run_as {
        Some((user, _, _)) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Run a setup step; its output is the error when it fails.
fn run(command: &mut Command, what: &str) -> Result<(), ScratchError> {
    let output = command.stdin(Stdio::null()).output().map_err(io(what))?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    Err(ScratchError::Command { what: what.into(), output: text.trim().to_string() })
}

/// A port nothing listens on now (the server takes it a moment later).
fn free_port() -> Result<u16, ScratchError> {
    let probe = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io("finding a free port"))?;
    Ok(probe.local_addr().map_err(io("finding a free port"))?.port())
}

/// The shell that stops the server (`pg_ctl`, as `stop` runs it) and
/// removes `dir` once its stdin closes. It ignores the terminal's
/// interrupt, which reaches it with this process: it cleans up after.
fn watchdog(dir: &Path, pg_ctl: &Command) -> Result<(Child, ChildStdin), ScratchError> {
    let script = r#"trap '' INT HUP; dir=$1; shift; read -r _ || true
if [ -f "$dir/data/postmaster.pid" ]; then "$@" -D "$dir/data" -m immediate -w stop; fi
rm -rf -- "$dir""#;
    let mut child = Command::new("sh")
        .args(["-c", script, "switchboard-scratch-watchdog"])
        .arg(dir)
        .arg(pg_ctl.get_program())
        .args(pg_ctl.get_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("starting the scratch cluster's watchdog"))?;
    match child.stdin.take() {
        Some(stdin) => Ok((child, stdin)),
        None => Err(ScratchError::Command { what: "the watchdog".into(), output: "no stdin pipe".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_out_fresh_databases_and_cleans_up_when_dropped() {
        let cluster = ScratchCluster::start().unwrap();
        let dir = cluster.dir.clone();
        let url = cluster.database().await.unwrap();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let (one,): (i32,) = sqlx::query_as("SELECT 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(one, 1);
        assert_ne!(cluster.database().await.unwrap(), url, "each caller gets its own");
        conn.close().await.unwrap();
        drop(cluster);
        assert!(!dir.exists(), "stopped and removed");
    }
}
