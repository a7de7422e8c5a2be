//! Loading a [`Config`]: defaults, then the TOML file, then the
//! `SWITCHBOARD_*` environment. A bad value is reported where it came from:
//! the file with line and column, or the environment variable by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}, line {line}, column {column}: {message}")]
    File { path: PathBuf, line: usize, column: usize, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `file`, then the `SWITCHBOARD_*` variables of `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort();
        // Each key path the environment set, and the variable that set it.
        let mut from_env = BTreeMap::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("SWITCHBOARD_") else { continue };
            if rest == "LOG" {
                continue; // the log filter, read by `telemetry`
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::Env { name, message: "empty key segment".into() });
            }
            let at = |message| ConfigError::Env { name: name.clone(), message };
            set_path(&mut table, &path, env_value(&value)).map_err(at)?;
            from_env.insert(path.join("."), name);
        }
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            let message = format!("`{key}`: {}", e.inner().message());
            match blame(&from_env, &key, e.inner().message()) {
                Some(name) => ConfigError::Env { name: name.clone(), message },
                None => ConfigError::Invalid(message),
            }
        })?;
        config.validate()?;
        crate::runtime::transport::HostMap::from_config(&config.egress.map_hosts)
            .map_err(|e| ConfigError::Invalid(format!("egress.map_hosts.{e}")))?;
        Ok(config)
    }
}

/// The file's table, after checking it alone: its own faults — syntax,
/// unknown keys, wrong types — carry a position in it.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    let at = |e: toml::de::Error, key: Option<String>| {
        let (line, column) = position(&text, e.span().map_or(0, |s| s.start));
        let message = match key.filter(|k| !k.is_empty() && k != ".") {
            Some(key) => format!("`{key}`: {}", e.message()),
            None => e.message().to_string(),
        };
        ConfigError::File { path: path.into(), line, column, message }
    };
    let table = toml::from_str::<toml::Table>(&text).map_err(|e| at(e, None))?;
    if let Err(e) = toml::from_str::<Config>(&text) {
        let key = serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table.clone()))
            .err()
            .map(|e| e.path().to_string());
        return Err(at(e, key));
    }
    Ok(table)
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The variable that set the value at `key`, or the one that added an
/// unknown key under it (named in `message`).
fn blame<'a>(from_env: &'a BTreeMap<String, String>, key: &str, message: &str) -> Option<&'a String> {
    if let Some(name) = from_env.get(key) {
        return Some(name);
    }
    let under = |path: &str| key == "." || path.starts_with(&format!("{key}."));
    let candidates: Vec<(&String, &String)> = from_env.iter().filter(|(path, _)| under(path)).collect();
    candidates
        .iter()
        .find(|(path, _)| path.rsplit('.').next().is_some_and(|last| message.contains(&format!("`{last}`"))))
        .or(candidates.first())
        .map(|(_, name)| *name)
}

/// An env value is TOML when it parses as one (`true`, `64`, `["0s"]`), else a string.
fn env_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("`{key}` is not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_work_with_no_config() {
        let c = Config::load(None, env(&[("PATH", "/bin")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.retry.schedule.len(), 10);
        assert_eq!(c.retry.schedule[2], Duration::from_secs(300));
        assert_eq!(c.sandbox.cpu, Duration::from_millis(100));
    }

    #[test]
    fn env_overrides_file_and_parses_types() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("switchboard.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[retry]\nschedule = [\"0s\", \"200ms\", \"1s\"]\n")
            .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("SWITCHBOARD_EGRESS__ALLOW_PRIVATE_NETWORKS", "true"),
                ("SWITCHBOARD_DELIVERY__CONCURRENCY", "8"),
                ("SWITCHBOARD_DATA_DIR", "/tmp/sb data"),
                ("SWITCHBOARD_SANDBOX__CPU", "250ms"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.retry.schedule, [Duration::ZERO, Duration::from_millis(200), Duration::from_secs(1)]);
        assert!(c.egress.allow_private_networks);
        assert_eq!(c.delivery.concurrency, 8);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/sb data"));
        assert_eq!(c.sandbox.cpu, Duration::from_millis(250));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::load(None, env(&[("SWITCHBOARD_EGRESS__ALLOW_EVERYTHING", "true")])).unwrap_err();
        assert!(err.to_string().contains("allow_everything"), "{err}");
        let err = Config::load(None, env(&[("SWITCHBOARD_LISTN", "x")])).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let err = Config::load(None, env(&[("SWITCHBOARD_RETRY__SCHEDULE", "[\"soon\"]")])).unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let err = Config::load(None, env(&[("SWITCHBOARD_RETRY__JITTER", "2.0")])).unwrap_err();
        assert!(err.to_string().contains("retry.jitter"), "{err}");
    }

    #[test]
    fn the_store_is_chosen_through_the_environment_and_its_url_never_shows() {
        use crate::store::Backend;
        let url = "postgres://sb:hunter2-secret@db.internal:5432/switchboard";
        let c = Config::load(
            None,
            env(&[
                ("SWITCHBOARD_STORE__BACKEND", "postgres"),
                ("SWITCHBOARD_STORE__URL", url),
                ("SWITCHBOARD_STORE__MAX_CONNECTIONS", "32"),
            ]),
        )
        .unwrap();
        assert_eq!(c.store.backend, Backend::Postgres);
        assert_eq!(c.store.url.as_ref().map(|u| u.expose()), Some(url));
        assert_eq!(c.store.max_connections, 32);
        assert!(!format!("{c:?}").contains("hunter2"), "Debug redacts the password");
        assert_eq!(Config::load(None, env(&[])).unwrap().store.backend, Backend::Fjall, "fjall by default");

        let err = Config::load(None, env(&[("SWITCHBOARD_STORE__BACKEND", "postgres")])).unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
        let err = Config::load(None, env(&[("SWITCHBOARD_STORE__URL", url)])).unwrap_err();
        assert!(err.to_string().contains("only for store.backend"), "{err}");
        let err = Config::load(
            None,
            env(&[
                ("SWITCHBOARD_STORE__BACKEND", "postgres"),
                ("SWITCHBOARD_STORE__URL", "mysql://u:hunter2-secret@h/d"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("postgres://") && !err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_bad_environment_value_names_its_variable() {
        let err = Config::load(None, env(&[("SWITCHBOARD_DELIVERY__CONCURRENCY", "lots")])).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("environment variable SWITCHBOARD_DELIVERY__CONCURRENCY:"), "{text}");
        assert!(text.contains("`delivery.concurrency`") && text.contains("lots"), "{text}");
        let err = Config::load(None, env(&[("SWITCHBOARD_EGRESS__ALLOW_EVERYTHING", "true")])).unwrap_err();
        assert!(err.to_string().starts_with("environment variable SWITCHBOARD_EGRESS__ALLOW_EVERYTHING:"), "{err}");
    }

    #[test]
    fn a_bad_host_mapping_names_its_key() {
        let c =
            Config::load(None, env(&[("SWITCHBOARD_EGRESS__MAP_HOSTS", r#"{"api.hubapi.com" = "127.0.0.1:8081"}"#)]))
                .unwrap();
        assert_eq!(c.egress.map_hosts["api.hubapi.com"], "127.0.0.1:8081");
        let err = Config::load(None, env(&[("SWITCHBOARD_EGRESS__MAP_HOSTS", r#"{"api.hubapi.com" = "fake:8081"}"#)]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("configuration: egress.map_hosts.`api.hubapi.com`: `fake:8081` is not"), "{err}");
    }

    #[test]
    fn a_bad_file_value_names_the_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchboard.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[delivery]\nconcurrency = \"x\"\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("switchboard.toml, line 3, column 15: `delivery.concurrency`: invalid type"), "{err}");

        std::fs::write(&file, "listen = \n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("line 1, column"), "{err}");

        std::fs::write(&file, "[egress]\nallow_everything = true\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("line 2, column 1") && err.contains("allow_everything"), "{err}");
    }
}
