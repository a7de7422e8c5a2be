//! PostgreSQL and several nodes (issue #11's Measure): real `switchboard
//! serve` processes (release build), in one run, next to the embedded store
//! and next to PostgreSQL alone.
//!
//! - baseline: PostgreSQL alone, single-row `INSERT` commits from 64
//!   `pgbench` clients (what one commit per event would allow);
//! - ingest: 64 keep-alive clients, closed loop, `POST /api/v1/events` with
//!   one event each, 10 s, no rules (the accept path alone, as
//!   `host/benches/ingest.rs`); embedded store and PostgreSQL, one node;
//! - end to end: a burst of 20,000 events in bulk ×100 requests from 4
//!   streams (spread over the nodes), one webhook rule, a local receiver
//!   answering 204; deliveries/s from the first emit until the receiver has
//!   every event; embedded one node, PostgreSQL one node and three nodes;
//! - resident memory (VmRSS) of each node after each measurement, and where
//!   the CPU went during it (nodes, PostgreSQL, this process — the load
//!   generator, the receiver, pgbench and psql — and everything else on the
//!   machine), and
//!   for PostgreSQL what its connections were doing (`pg_stat_activity`).
//!
//! PostgreSQL is a scratch cluster made durable for the run (`fsync`,
//! `synchronous_commit`, `full_page_writes` on; the scratch default has them
//! off): every 201 means the event is committed and flushed, as with the
//! embedded store. Each measurement gets fresh nodes, data dirs and database.
//!
//! Before measuring it waits (up to 15 minutes) for the 1-minute load
//! average to fall below 1.5, and prints the load at each run's start.
//!
//! Env: `CLUSTER_RUNS` (default 3), `CLUSTER_MAX_LOAD` (default 1.5),
//! `CLUSTER_BINARY` (a `switchboard` binary to use instead of building
//! `target/release/switchboard`), and for experiments only:
//! `CLUSTER_PG_DURABLE=0` (keep the scratch cluster's non-durable settings),
//! `CLUSTER_PG_STATEMENTS=1` (load `pg_stat_statements` and print the
//! statements each PostgreSQL measurement ran), `CLUSTER_NODE_ENV=K=V,…`
//! (more settings for every node), `CLUSTER_ONLY=ingest|e2e`.
//!
//! Run: `scripts/bench.sh cluster`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use switchboard::store::postgres::scratch::ScratchCluster;
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::build::workspace_root;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "cluster-bench-admin";
const CLIENTS: usize = 64;
const INGEST_FOR: Duration = Duration::from_secs(10);
const BURST: usize = 20_000;
const STREAMS: usize = 4;
const BULK: usize = 100;
/// A burst not delivered by then is reported as stalled.
const DRAIN_LIMIT: Duration = Duration::from_secs(240);
/// Clock ticks per second in /proc (`getconf CLK_TCK` is 100 on Linux).
const TICKS: f64 = 100.0;

// ---------------------------------------------------------------- the binary

/// `target/release/switchboard`, built now (`cargo build --release --locked`)
/// unless `CLUSTER_BINARY` names one.
fn release_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLUSTER_BINARY") {
        return PathBuf::from(path);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args = ["build", "--release", "--locked", "-p", "switchboard", "--bin", "switchboard"];
    eprintln!("building the server: cargo {}", args.join(" "));
    let mut command = Command::new(cargo);
    // Without what cargo set for this bench: some build scripts (ring's)
    // rerun when CARGO_MANIFEST_DIR changes, and everything above them
    // would be rebuilt, here and again by the next plain `cargo build`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_bench = ["CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_PRIMARY_PACKAGE", "CARGO_CRATE_NAME"]
            .contains(&key.as_ref())
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key == "CARGO_TARGET_TMPDIR";
        if set_for_bench {
            command.env_remove(key.as_ref());
        }
    }
    let status = command.args(args).current_dir(workspace_root()).status().expect("run cargo");
    assert!(status.success(), "cargo build --release failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("release/switchboard")
}

/// A connectors dir holding only the webhook component (so a node compiles
/// one component at start, not every guest the suite has built).
fn connectors_dir() -> tempfile::TempDir {
    let built = workspace_root().join("target/wasm32-wasip2/guest/switchboard_connector_webhook.wasm");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&built, dir.path().join("switchboard_connector_webhook.wasm"))
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/bench.sh builds it)", built.display()));
    dir
}

// ---------------------------------------------------------------- nodes

#[derive(Clone)]
enum Backend {
    Embedded,
    Postgres(String),
}

struct Node {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

struct Setup {
    binary: PathBuf,
    connectors: PathBuf,
    master_key: String,
    /// `CLUSTER_NODE_ENV`, for experiments: more `SWITCHBOARD_*` settings.
    node_env: Vec<(String, String)>,
}

impl Node {
    fn spawn(setup: &Setup, backend: &Backend) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("switchboard.log")).unwrap();
        let mut command = Command::new(&setup.binary);
        command
            .arg("serve")
            .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("SWITCHBOARD_DATA_DIR", dir.path().join("data"))
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN)
            .env("SWITCHBOARD_MASTER_KEY", &setup.master_key)
            .env("SWITCHBOARD_CONNECTORS_DIR", &setup.connectors)
            .env("SWITCHBOARD_EGRESS__ALLOW_PRIVATE_NETWORKS", "true")
            .env("SWITCHBOARD_LOG", "warn");
        if let Backend::Postgres(url) = backend {
            command.env("SWITCHBOARD_STORE__BACKEND", "postgres").env("SWITCHBOARD_STORE__URL", url);
        }
        command.envs(setup.node_env.iter().cloned());
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start switchboard");
        Node { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    async fn ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http.get(format!("{}/readyz", self.url)).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            let exited = self.child.try_wait().unwrap();
            let log = std::fs::read_to_string(self._dir.path().join("switchboard.log")).unwrap_or_default();
            assert!(exited.is_none(), "switchboard exited during start-up: {log}");
            assert!(Instant::now() < deadline, "switchboard not ready within 60 s: {log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` nodes on `backend`, all ready.
async fn nodes(setup: &Setup, backend: &Backend, count: usize, http: &reqwest::Client) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        // One at a time: the first runs the migrations.
        let mut node = Node::spawn(setup, backend);
        node.ready(http).await;
        nodes.push(node);
    }
    nodes
}

async fn admin(http: &reqwest::Client, node: &Node, path: &str, body: Value) -> Value {
    let res = http.post(format!("{}{path}", node.url)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// A workspace; (id, publishable key).
async fn workspace(http: &reqwest::Client, node: &Node) -> (String, String) {
    let v = admin(http, node, "/api/v1/workspaces", json!({"name": "bench"})).await;
    (v["id"].as_str().unwrap().into(), v["publishable_key"].as_str().unwrap().into())
}

// ---------------------------------------------------------------- PostgreSQL

struct Postgres {
    cluster: ScratchCluster,
    port: String,
    /// The postmaster's pid (its children are the backends).
    postmaster: u32,
    /// `pg_stat_statements` loaded (`CLUSTER_PG_STATEMENTS=1`).
    statements: bool,
}

fn psql(port: &str, db: &str, commands: &[&str]) -> String {
    let mut command = Command::new("psql");
    command.args(["-X", "-q", "-A", "-t", "-F", "|", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", db]);
    for c in commands {
        command.args(["-c", c]);
    }
    let out = command.stdin(Stdio::null()).output().expect("run psql");
    assert!(out.status.success(), "psql {commands:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `pg_ctl restart` of the cluster in `data`, as the user owning it.
fn restart(data: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").unwrap().flatten().map(|e| e.path().join("bin/pg_ctl")).collect();
    versions.sort();
    let pg_ctl = versions.pop().filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from("pg_ctl"));
    let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let mut command = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_ctl);
        c
    } else {
        Command::new(pg_ctl)
    };
    let log = data.parent().unwrap().join("restart.log");
    let out = command
        .args(["-w", "-m", "fast", "-D"])
        .arg(data)
        .arg("-l")
        .arg(log)
        .arg("restart")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_ctl restart: {}", String::from_utf8_lossy(&out.stderr));
}

impl Postgres {
    fn start(durable: bool, statements: bool) -> Postgres {
        let cluster = ScratchCluster::start().expect("a scratch PostgreSQL (scripts/setup.sh installs it)");
        let port = cluster.admin_url().rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
        if durable {
            psql(
                &port,
                "postgres",
                &[
                    "ALTER SYSTEM SET fsync = on",
                    "ALTER SYSTEM SET synchronous_commit = on",
                    "ALTER SYSTEM SET full_page_writes = on",
                    "SELECT pg_reload_conf()",
                ],
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let data = PathBuf::from(psql(&port, "postgres", &["SHOW data_directory"]));
        if statements {
            psql(&port, "postgres", &["ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"]);
            restart(&data);
            psql(&port, "postgres", &["CREATE EXTENSION pg_stat_statements"]);
        }
        let pid = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
        let postmaster = pid.lines().next().unwrap().trim().parse().unwrap();
        Postgres { cluster, port, postmaster, statements }
    }

    fn settings(&self) -> String {
        let show = |s: &str| psql(&self.port, "postgres", &[&format!("SHOW {s}")]);
        format!(
            "{}; fsync={} synchronous_commit={} full_page_writes={} shared_buffers={} max_connections={}",
            psql(&self.port, "postgres", &["SELECT version()"]).split(" on ").next().unwrap_or(""),
            show("fsync"),
            show("synchronous_commit"),
            show("full_page_writes"),
            show("shared_buffers"),
            show("max_connections"),
        )
    }

    async fn database(&self) -> String {
        self.cluster.database().await.expect("a fresh database")
    }

    /// CPU ticks of the postmaster (with the backends it has reaped) and of
    /// each live backend.
    fn cpu(&self) -> HashMap<u32, u64> {
        self.pids()
            .into_iter()
            .map(|pid| (pid, if pid == self.postmaster { cpu_ticks_with_reaped(pid) } else { cpu_ticks(pid) }))
            .collect()
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if stat_fields(pid).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok())) == Some(self.postmaster) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// PostgreSQL alone: 64 pgbench clients, each transaction one `INSERT` of a
/// row the size of the bench's event. (tps, mean latency ms)
fn pgbench(pg: &Postgres, db_url: &str) -> (f64, f64) {
    let db = db_url.rsplit('/').next().unwrap();
    psql(&pg.port, db, &["CREATE TABLE bench_events (id bigserial PRIMARY KEY, body text NOT NULL)"]);
    let script = tempfile::NamedTempFile::new().unwrap();
    let body = String::from_utf8(event_body()).unwrap().replace('\'', "''");
    std::fs::write(script.path(), format!("INSERT INTO bench_events (body) VALUES ('{body}');\n")).unwrap();
    let out = Command::new("pgbench")
        .args(["-n", "-c", &CLIENTS.to_string(), "-j", "2", "-T", &INGEST_FOR.as_secs().to_string()])
        .args(["-h", "127.0.0.1", "-p", &pg.port, "-U", "postgres", "-f"])
        .arg(script.path())
        .arg(db)
        .stdin(Stdio::null())
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "pgbench: {text}{}", String::from_utf8_lossy(&out.stderr));
    let number = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (number("tps = "), number("latency average = "))
}

/// One psql session kept open (sampling through it costs PostgreSQL no
/// new backend per sample and this process no new psql).
struct Session {
    child: Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Session {
    fn open(port: &str) -> Session {
        let mut child = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "|",
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run psql");
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        Session { child, input, output }
    }

    /// The rows `sql` (one statement, no `;`) answers, one line each.
    fn query(&mut self, sql: &str) -> Vec<String> {
        use std::io::{BufRead, Write};
        writeln!(self.input, "{sql};\n\\echo __end__").unwrap();
        self.input.flush().unwrap();
        let mut rows = Vec::new();
        loop {
            let mut line = String::new();
            if self.output.read_line(&mut line).unwrap() == 0 {
                panic!("psql ended");
            }
            let line = line.trim_end();
            if line == "__end__" {
                return rows;
            }
            if !line.is_empty() {
                rows.push(line.to_string());
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples what the nodes' connections are doing every 250 ms until
/// stopped; counts commits; with `CLUSTER_PG_STATEMENTS=1`, the statements
/// PostgreSQL spent its time on.
struct Activity {
    since: Instant,
    commits: u64,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Session, u32, HashMap<String, u32>)>,
}

/// Transactions committed in the whole cluster so far.
fn commits(session: &mut Session) -> u64 {
    session.query("SELECT sum(xact_commit) FROM pg_stat_database").first().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl Activity {
    fn start(pg: &Postgres) -> Activity {
        let mut session = Session::open(&pg.port);
        if pg.statements {
            session.query("SELECT pg_stat_statements_reset()");
        }
        let commits = commits(&mut session);
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut counts = HashMap::new();
            let mut samples = 0;
            while !halt.load(Ordering::Relaxed) {
                let rows = session.query(
                    "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'on CPU'), \
                     left(regexp_replace(query, '\\s+', ' ', 'g'), 48) \
                     FROM pg_stat_activity WHERE application_name = 'switchboard'",
                );
                samples += 1;
                for row in rows {
                    let mut fields = row.splitn(3, '|');
                    let (state, wait, query) =
                        (fields.next().unwrap_or(""), fields.next().unwrap_or(""), fields.next().unwrap_or(""));
                    let key = match state {
                        "active" => format!("active {wait} «{query}»"),
                        "idle in transaction" => format!("idle in transaction after «{query}»"),
                        other => other.to_string(),
                    };
                    *counts.entry(key).or_insert(0) += 1;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            (session, samples, counts)
        });
        Activity { since: Instant::now(), commits, stop, thread }
    }

    /// Commits/s, "mean connections per state: …" busiest first, and the
    /// statements when they are tracked.
    fn finish(self, pg: &Postgres) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let (mut session, samples, counts) = self.thread.join().unwrap();
        let per_s = (commits(&mut session) - self.commits) as f64 / self.since.elapsed().as_secs_f64();
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let parts: Vec<String> = counts
            .iter()
            .take(8)
            .map(|(k, n)| format!("{k} {:.1}", f64::from(*n) / f64::from(samples.max(1))))
            .collect();
        let mut text = format!(
            "PostgreSQL: {per_s:.0} commits/s; pg_stat_activity, mean connections by state over {samples} samples \
             (top 8): {}",
            parts.join(", ")
        );
        if pg.statements {
            let secs = self.since.elapsed().as_secs_f64();
            let rows = session.query(
                "SELECT calls, round(total_exec_time::numeric, 1), \
                 left(regexp_replace(query, '\\s+', ' ', 'g'), 60) FROM pg_stat_statements \
                 WHERE query NOT LIKE '%pg_stat%' ORDER BY calls DESC LIMIT 12",
            );
            let top: Vec<String> = rows
                .iter()
                .map(|r| {
                    let f: Vec<&str> = r.splitn(3, '|').collect();
                    let calls: f64 = f[0].parse().unwrap_or(0.0);
                    format!("{:.0}/s {}ms «{}»", calls / secs, f.get(1).unwrap_or(&""), f.get(2).unwrap_or(&""))
                })
                .collect();
            text += &format!("; pg_stat_statements by calls (calls/s, total exec ms): {}", top.join(", "));
        }
        text
    }
}

// ---------------------------------------------------------------- CPU accounting

/// The fields of /proc/PID/stat after the command name (state is [0], ppid [1]).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0))
}

/// utime + stime of `pid` and of its children it has reaped (cutime +
/// cstime): this process with its pgbench and psql, the postmaster with its
/// backends that ended.
fn cpu_ticks_with_reaped(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| f[11..15].iter().map(|v| v.parse::<u64>().unwrap_or(0)).sum())
}

/// Busy ticks of the whole machine (all cores), from /proc/stat.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

/// Where the CPU went between `start` and `finish`, in % of one core.
struct CpuWindow {
    at: Instant,
    nodes: Vec<(u32, u64)>,
    pg: HashMap<u32, u64>,
    me: u64,
    machine: u64,
}

#[derive(Clone, Copy, Default)]
struct CpuShare {
    nodes: f64,
    pg: f64,
    me: f64,
    other: f64,
}

impl CpuWindow {
    fn start(nodes: &[Node], pg: Option<&Postgres>) -> CpuWindow {
        CpuWindow {
            at: Instant::now(),
            nodes: nodes.iter().map(|n| (n.pid(), cpu_ticks(n.pid()))).collect(),
            pg: pg.map(Postgres::cpu).unwrap_or_default(),
            me: cpu_ticks_with_reaped(std::process::id()),
            machine: machine_busy_ticks(),
        }
    }

    fn finish(&self, pg: Option<&Postgres>) -> CpuShare {
        let secs = self.at.elapsed().as_secs_f64();
        let pct = |ticks: u64| ticks as f64 / TICKS / secs * 100.0;
        let nodes: u64 = self.nodes.iter().map(|(pid, t)| cpu_ticks(*pid).saturating_sub(*t)).sum();
        let pg_ticks: u64 = pg.map_or(0, |p| {
            p.cpu().into_iter().map(|(pid, t)| t.saturating_sub(self.pg.get(&pid).copied().unwrap_or(0))).sum()
        });
        let me = cpu_ticks_with_reaped(std::process::id()).saturating_sub(self.me);
        let machine = machine_busy_ticks().saturating_sub(self.machine);
        CpuShare {
            nodes: pct(nodes),
            pg: pct(pg_ticks),
            me: pct(me),
            other: pct(machine.saturating_sub(nodes + pg_ticks + me)),
        }
    }
}

/// Wait (polling every 30 s, at most 15 minutes) until the 1-minute load
/// average is below `CLUSTER_MAX_LOAD` (default 1.5): on a shared 2-core
/// machine, numbers taken during someone else's build mean little.
fn wait_for_quiet() {
    let max: f64 = std::env::var("CLUSTER_MAX_LOAD").ok().and_then(|v| v.parse().ok()).unwrap_or(1.5);
    let one_minute = || loadavg().split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let since = Instant::now();
    while one_minute() >= max {
        if since.elapsed() >= Duration::from_secs(15 * 60) {
            eprintln!("load average still {} after 15 minutes: measuring anyway", loadavg());
            return;
        }
        eprintln!("load average {} (>= {max}): waiting for a quiet machine", loadavg());
        std::thread::sleep(Duration::from_secs(30));
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------- load

fn event_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": "page.completed", "resource": "onboarding_sequence", "resource_id": "workspace-setup",
        "payload": {"user_id": "usr_5012", "email": "alex@northstar.io", "page_id": "page_connect-crm",
                    "page_title": "Connect your CRM", "sequence_step": 3, "completed_at": "2026-03-21T15:06:00Z",
                    "time_on_page_seconds": 522}
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).map_or(0.0, ms)
}

fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Ingest {
    per_s: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

/// `CLIENTS` keep-alive connections, each posting one event back to back.
async fn closed_loop(url: String, key: String) -> Ingest {
    let stop = Arc::new(AtomicBool::new(false));
    let body = Bytes::from(event_body());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (url, key, body, stop) = (url.clone(), key.clone(), body.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("X-Meshes-Publishable-Key", &key)
                    .body(body.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(INGEST_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    Ingest {
        per_s: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        errors,
    }
}

/// Counts the distinct events that reached the receiver, and when the last did.
struct Arrivals {
    seen: Vec<AtomicBool>,
    distinct: AtomicU64,
    duplicates: AtomicU64,
    last_ns: AtomicU64,
    since: Instant,
}

/// A receiver on a fresh loopback port answering every `POST /hook` with 204
/// (TCP_NODELAY on each connection, as `host/benches/common`'s); stops with `stop`.
async fn receiver(arrivals: Arc<Arrivals>, stop: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let a = arrivals.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(n) = v["data"]["n"].as_u64().and_then(|n| a.seen.get(n as usize)) {
                    if n.swap(true, Ordering::Relaxed) {
                        a.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else {
                        a.last_ns.fetch_max(a.since.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        a.distinct.fetch_add(1, Ordering::Relaxed);
                    }
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    url
}

struct EndToEnd {
    /// None when the burst did not drain within `DRAIN_LIMIT`.
    per_s: Option<f64>,
    ingest_s: f64,
    delivered: u64,
    duplicates: u64,
}

/// The burst through `nodes`: workspace, webhook connection and rule made on
/// the first node; bulk requests round-robin over all of them.
async fn end_to_end(nodes: &[Node], http: &reqwest::Client) -> EndToEnd {
    let stop = CancellationToken::new();
    let arrivals = Arc::new(Arrivals {
        seen: (0..BURST).map(|_| AtomicBool::new(false)).collect(),
        distinct: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        since: Instant::now(),
    });
    let hook = receiver(arrivals.clone(), stop.clone()).await;
    let (ws, key) = workspace(http, &nodes[0]).await;
    let conn = admin(
        http,
        &nodes[0],
        &format!("/api/v1/workspaces/{ws}/connections"),
        json!({"connector": "webhook", "name": "bench", "settings": {"url": hook},
               "secrets": {"signing_secret": WEBHOOK_SECRET}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin(
        http,
        &nodes[0],
        &format!("/api/v1/workspaces/{ws}/rules"),
        json!({"event": "page.completed", "connection": conn, "action": "send_webhook"}),
    )
    .await;

    let urls: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| format!("{}/api/v1/events/bulk", n.url)).collect());
    let requests = BURST / BULK;
    let started = Instant::now();
    let mut streams = Vec::new();
    for s in 0..STREAMS {
        let (http, urls, key) = (http.clone(), urls.clone(), key.clone());
        streams.push(tokio::spawn(async move {
            for r in (s..requests).step_by(STREAMS) {
                let batch: Vec<Value> = (0..BULK)
                    .map(|i| {
                        json!({"event": "page.completed", "payload": {"n": r * BULK + i,
                               "email": "alex@northstar.io", "sequence_step": 3}})
                    })
                    .collect();
                let url = &urls[r % urls.len()];
                let res = http.post(url).header("X-Meshes-Publishable-Key", &key).json(&batch).send().await.unwrap();
                assert_eq!(res.status(), reqwest::StatusCode::CREATED, "{url}");
            }
        }));
    }
    for s in streams {
        s.await.unwrap();
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let since_start = started.duration_since(arrivals.since);
    while (arrivals.distinct.load(Ordering::Relaxed) as usize) < BURST && started.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = arrivals.distinct.load(Ordering::Relaxed);
    let per_s = (delivered as usize == BURST).then(|| {
        let last = Duration::from_nanos(arrivals.last_ns.load(Ordering::Relaxed)).saturating_sub(since_start);
        BURST as f64 / last.as_secs_f64()
    });
    stop.cancel();
    EndToEnd { per_s, ingest_s, delivered, duplicates: arrivals.duplicates.load(Ordering::Relaxed) }
}

// ---------------------------------------------------------------- the table

/// One measurement of one run.
#[derive(Default, Clone)]
struct Row {
    value: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    rss: Vec<f64>,
    cpu: CpuShare,
    note: String,
    /// Not measured in this run (`CLUSTER_ONLY`).
    skipped: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn fmt_thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const MEASURES: [&str; 6] = [
    "baseline: PostgreSQL alone, 1-row INSERT commits, 64 pgbench clients (tx/s; p50 = mean latency)",
    "ingest, single events, 64 clients, embedded store, 1 node (events/s)",
    "ingest, single events, 64 clients, PostgreSQL, 1 node (events/s)",
    "end to end, 20,000-event burst, embedded store, 1 node (deliveries/s)",
    "end to end, 20,000-event burst, PostgreSQL, 1 node (deliveries/s)",
    "end to end, 20,000-event burst, PostgreSQL, 3 nodes (deliveries/s)",
];

fn print_row(run: usize, m: usize, row: &Row) {
    let opt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
    let rss: Vec<String> = row.rss.iter().map(|r| format!("{r:.0}")).collect();
    let c = row.cpu;
    println!(
        "| {run} | {} | {} | {} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} | {} |",
        MEASURES[m],
        fmt_thousands(row.value),
        opt(row.p50),
        opt(row.p99),
        if rss.is_empty() { "—".into() } else { rss.join(" / ") },
        c.nodes,
        c.pg,
        c.me,
        c.other,
        row.note
    );
}

async fn run_once(run: usize, setup: &Setup, pg: &Postgres, http: &reqwest::Client) -> Vec<Row> {
    let mut rows = Vec::new();
    let only = std::env::var("CLUSTER_ONLY").unwrap_or_default();
    if only == "e2e" {
        rows.resize(3, Row { skipped: true, ..Row::default() });
    } else {
        rows.extend(ingest_rows(run, setup, pg, http).await);
    }
    if only == "ingest" {
        rows.resize(6, Row { skipped: true, ..Row::default() });
    } else {
        rows.extend(end_to_end_rows(run, setup, pg, http).await);
    }
    rows
}

/// The pgbench baseline and ingest, embedded and PostgreSQL.
async fn ingest_rows(run: usize, setup: &Setup, pg: &Postgres, http: &reqwest::Client) -> Vec<Row> {
    let mut rows = Vec::new();
    // Baseline: PostgreSQL alone.
    let db = pg.database().await;
    let window = CpuWindow::start(&[], Some(pg));
    let (tps, latency) = tokio::task::block_in_place(|| pgbench(pg, &db));
    let row = Row { value: tps, p50: Some(latency), cpu: window.finish(Some(pg)), ..Row::default() };
    print_row(run, 0, &row);
    rows.push(row);

    // Ingest, one node each.
    for (m, postgres) in [(1, false), (2, true)] {
        let backend = if postgres { Backend::Postgres(pg.database().await) } else { Backend::Embedded };
        let nodes = nodes(setup, &backend, 1, http).await;
        let (_ws, key) = workspace(http, &nodes[0]).await;
        let pg_here = postgres.then_some(pg);
        let activity = pg_here.map(Activity::start);
        let window = CpuWindow::start(&nodes, pg_here);
        let r = closed_loop(format!("{}/api/v1/events", nodes[0].url), key).await;
        let cpu = window.finish(pg_here);
        let note = format!("errors {}", r.errors);
        let row = Row {
            value: r.per_s,
            p50: Some(r.p50),
            p99: Some(r.p99),
            rss: nodes.iter().map(Node::rss_mib).collect(),
            cpu,
            note,
            skipped: false,
        };
        print_row(run, m, &row);
        if let Some(a) = activity {
            println!("|   | {} | | | | | | |", a.finish(pg));
        }
        rows.push(row);
    }
    rows
}

/// The burst, embedded one node, PostgreSQL one node and three nodes.
async fn end_to_end_rows(run: usize, setup: &Setup, pg: &Postgres, http: &reqwest::Client) -> Vec<Row> {
    let mut rows = Vec::new();
    for (m, postgres, count) in [(3, false, 1), (4, true, 1), (5, true, 3)] {
        let backend = if postgres { Backend::Postgres(pg.database().await) } else { Backend::Embedded };
        let nodes = nodes(setup, &backend, count, http).await;
        let pg_here = postgres.then_some(pg);
        let activity = pg_here.map(Activity::start);
        let window = CpuWindow::start(&nodes, pg_here);
        let e = end_to_end(&nodes, http).await;
        let cpu = window.finish(pg_here);
        let note = format!(
            "ingest {:.2} s; {} delivered{}; {} duplicates",
            e.ingest_s,
            e.delivered,
            if e.per_s.is_none() { " (STALLED)" } else { "" },
            e.duplicates
        );
        let row = Row {
            value: e.per_s.unwrap_or(0.0),
            rss: nodes.iter().map(Node::rss_mib).collect(),
            cpu,
            note,
            ..Row::default()
        };
        print_row(run, m, &row);
        if let Some(a) = activity {
            println!("|   | {} | | | | | | |", a.finish(pg));
        }
        rows.push(row);
    }
    rows
}

fn main() {
    let runs: usize = std::env::var("CLUSTER_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let durable = std::env::var("CLUSTER_PG_DURABLE").map_or(true, |v| v != "0");
    let binary = release_binary();
    let connectors = connectors_dir();
    let setup = Setup {
        binary,
        connectors: connectors.path().to_path_buf(),
        master_key: switchboard::secrets::MasterKey::generate(),
        node_env: std::env::var("CLUSTER_NODE_ENV")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    };
    let statements = std::env::var("CLUSTER_PG_STATEMENTS").is_ok_and(|v| v == "1");
    let pg = Postgres::start(durable, statements);
    wait_for_quiet();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        println!("server: {}", setup.binary.display());
        println!("PostgreSQL: {}", pg.settings());
        println!("load average before the runs: {}", loadavg());
        println!();
        println!("CPU columns: % of one core (the machine has 2) during the measurement, for the switchboard");
        println!("node(s) / PostgreSQL / this process (load generator + receiver) / everything else.");
        println!();
        println!("| run | measure | value | p50 ms | p99 ms | RSS MiB per node | CPU % nodes / pg / bench / other | |");
        println!("|---|---|---:|---:|---:|---:|---|---|");
        let started = Instant::now();
        let mut all: Vec<Vec<Row>> = Vec::new();
        let mut loads = Vec::new();
        for run in 1..=runs {
            loads.push(loadavg());
            all.push(run_once(run, &setup, &pg, &http).await);
        }
        loads.push(loadavg());
        println!();
        println!(
            "{runs} run(s) in {:.0} s; load average at each run's start and at the end: {}",
            started.elapsed().as_secs_f64(),
            loads.join(" → ")
        );
        println!();
        println!("Medians of {runs} run(s), each column on its own:");
        println!();
        println!("| measure | median | p50 ms | p99 ms | RSS MiB per node | CPU % nodes / pg / bench / other |");
        println!("|---|---:|---:|---:|---:|---|");
        let mut medians = Vec::new();
        for (m, name) in MEASURES.iter().enumerate() {
            if all[0][m].skipped {
                medians.push(f64::NAN);
                continue;
            }
            let col = |f: &dyn Fn(&Row) -> f64| median(all.iter().map(|rows| f(&rows[m])).collect());
            let value = col(&|r| r.value);
            let opt = |f: &dyn Fn(&Row) -> Option<f64>| {
                f(&all[0][m]).map(|_| median(all.iter().filter_map(|rows| f(&rows[m])).collect()))
            };
            let (p50, p99) = (opt(&|r| r.p50), opt(&|r| r.p99));
            let nodes = all[0][m].rss.len();
            let rss: Vec<String> = (0..nodes).map(|i| format!("{:.0}", col(&|r| r.rss[i]))).collect();
            println!(
                "| {name} | **{}** | {} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} |",
                fmt_thousands(value),
                p50.map_or("—".into(), |v| format!("{v:.1}")),
                p99.map_or("—".into(), |v| format!("{v:.1}")),
                if rss.is_empty() { "—".into() } else { rss.join(" / ") },
                col(&|r| r.cpu.nodes),
                col(&|r| r.cpu.pg),
                col(&|r| r.cpu.me),
                col(&|r| r.cpu.other),
            );
            medians.push(value);
        }
        println!();
        if medians.iter().any(|m| m.is_nan()) {
            return; // CLUSTER_ONLY: no ratios
        }
        println!(
            "ratios of the medians: ingest PostgreSQL / embedded {:.2}; PostgreSQL ingest / pgbench baseline {:.2}; \
             end to end PostgreSQL 1 node / embedded {:.2}; 3 nodes / 1 node {:.2}",
            medians[2] / medians[1],
            medians[2] / medians[0],
            medians[4] / medians[3],
            medians[5] / medians[4],
        );
        let per_run: Vec<String> = all.iter().map(|rows| format!("{:.2}", rows[2].value / rows[1].value)).collect();
        println!("ingest ratio PostgreSQL / embedded, run by run (same run): {}", per_run.join(", "));
        let per_run: Vec<String> = all.iter().map(|rows| format!("{:.2}", rows[4].value / rows[3].value)).collect();
        println!("end-to-end ratio PostgreSQL 1 node / embedded, run by run: {}", per_run.join(", "));
        println!(
            "target: PostgreSQL single-event ingest through one node >= 5,000/s: {}",
            if medians[2] >= 5000.0 { "met" } else { "NOT met" }
        );
    });
    drop(pg);
}
