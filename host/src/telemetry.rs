//! Logging: the `tracing` subscriber `[log]` asks for — text (colored only
//! on a terminal) or one JSON object per line — filtered by `log.level` or,
//! when set, the `SWITCHBOARD_LOG` environment variable.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// A log filter nobody can use, named by where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} `{value}`: {reason}")]
pub struct FilterError {
    /// `log.level` or `SWITCHBOARD_LOG`.
    pub source_name: &'static str,
    pub value: String,
    pub reason: String,
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Parse a filter strictly. `tracing` reads a bare word as a target name, so
/// `verbose` would quietly switch every other log line off; here a directive
/// without `=` must be a level.
pub fn parse_filter(text: &str) -> Result<EnvFilter, String> {
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("`{level}` is not a level (one of {})", LEVELS.join(", ")));
        }
    }
    EnvFilter::builder().parse(text).map_err(|e| e.to_string())
}

/// The filter to use: `SWITCHBOARD_LOG` when set, else `log.level`.
pub fn filter(log: &LogConfig, env: Option<String>) -> Result<EnvFilter, FilterError> {
    let (source_name, value) = match env {
        Some(value) => ("SWITCHBOARD_LOG", value),
        None => ("log.level", log.level.clone()),
    };
    parse_filter(&value).map_err(|reason| FilterError { source_name, value, reason })
}

/// Install the process's subscriber (once; later calls change nothing).
pub fn init(log: &LogConfig) -> Result<(), FilterError> {
    let filter = filter(log, std::env::var("SWITCHBOARD_LOG").ok())?;
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    let _ = match log.format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        // The request span's fields (its id) ride along on every line.
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_pass() {
        for ok in ["info", "WARN", "warn,switchboard=debug", "switchboard::access=off,info", ""] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_word_that_is_not_a_level_is_refused_naming_its_source() {
        let err = filter(&LogConfig::default(), Some("verbose".into())).unwrap_err().to_string();
        assert!(err.starts_with("SWITCHBOARD_LOG `verbose`: `verbose` is not a level"), "{err}");
        let log = LogConfig { level: "info,switchboard=loud".into(), ..LogConfig::default() };
        let err = filter(&log, None).unwrap_err().to_string();
        assert!(err.starts_with("log.level `info,switchboard=loud`"), "{err}");
    }
}
