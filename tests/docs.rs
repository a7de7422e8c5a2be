//! The connector author's guide works as written: every ```sh block of
//! `docs/writing-a-connector.md` runs, in order, in one shell, in an empty
//! directory, with only the `switchboard` binary on the PATH (copied out of
//! the checkout) and a Rust toolchain. Blocks a reader should not paste
//! (alternatives, output) are fenced as ```text or ```console instead.

use std::path::Path;
use std::process::Command;

use switchboard_tests::build::{binary, workspace_root};

/// The ```sh blocks of a Markdown document, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_connector_guide_runs_as_written() {
    let guide = std::fs::read_to_string(workspace_root().join("docs/writing-a-connector.md")).unwrap();
    let blocks = shell_blocks(&guide);
    assert!(blocks.len() >= 4, "the guide shows its commands in ```sh blocks: {blocks:?}");

    let bin = tempfile::tempdir().unwrap();
    std::fs::copy(binary(), bin.path().join("switchboard")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", path)
        // The guide names `target/…` paths inside the crate: as a reader's
        // shell would, build there (cold, like a reader's first build).
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the guide's commands failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_checkout_path(work.path());
}

/// What the guide generated names no path of the checkout it was built from.
fn assert_no_checkout_path(dir: &Path) {
    let root = workspace_root().canonicalize().unwrap().display().to_string();
    for entry in walk(dir) {
        if let Ok(text) = std::fs::read_to_string(&entry) {
            assert!(!text.contains(&root), "{} names the checkout {root}", entry.display());
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn only_sh_blocks_are_run() {
    let md = "```sh\necho one\n```\n```text\nnot run\n```\n  ```sh\necho two\n  ```\n";
    assert_eq!(shell_blocks(md), ["echo one\n", "echo two\n"]);
}
