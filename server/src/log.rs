//! Logs, on `tracing`: one event per line on stderr, as text (`2025-01-31T12:00:00.123456Z  INFO
//! crvm_server::conn: conn 3 login ok …`) or JSON (`--log-format json`, one object per line with
//! `timestamp`, `level`, `target` and `fields.message`), filtered by level (`--log-level` or
//! `CRVM_LOG`: `info` by default, or any `tracing` filter such as `warn,crvm_server::link=debug`).
//!
//! Callers format user-controlled strings with `{:?}` so that a hostile app or user ID cannot
//! forge log lines; secrets and tokens are never logged.

use tracing_subscriber::EnvFilter;

/// The environment variable of the level filter (the `--log-level` flag wins).
pub const LEVEL_ENV: &str = "CRVM_LOG";
/// The environment variable of the format (the `--log-format` flag wins).
pub const FORMAT_ENV: &str = "CRVM_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            _ => Err(format!("the log format is text or json, not {s:?}")),
        }
    }
}

/// The filter of `level` (a flag's value, else [`LEVEL_ENV`], else `info`).
pub fn filter(level: Option<&str>) -> Result<EnvFilter, String> {
    let text = match level {
        Some(l) => l.to_owned(),
        None => std::env::var(LEVEL_ENV).unwrap_or_else(|_| "info".into()),
    };
    EnvFilter::builder()
        .parse(&text)
        .map_err(|e| format!("bad log level {text:?}: {e}"))
}

/// The format of `format` (a flag's value, else [`FORMAT_ENV`], else text).
pub fn format(format: Option<&str>) -> Result<Format, String> {
    match format {
        Some(f) => f.parse(),
        None => match std::env::var(FORMAT_ENV) {
            Ok(f) => f.parse(),
            Err(_) => Ok(Format::Text),
        },
    }
}

/// Installs the process's log subscriber (once; later calls change nothing).
pub fn init(format: Format, filter: EnvFilter) {
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        Format::Text => b.try_init(),
        Format::Json => b.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_and_bad_values_are_named() {
        assert_eq!(format(Some("json")), Ok(Format::Json));
        assert!(format(Some("xml")).unwrap_err().contains("xml"));
        assert!(filter(Some("warn,crvm_server::link=debug")).is_ok());
        assert!(filter(Some("crvm_server=loud"))
            .unwrap_err()
            .contains("loud"));
    }
}
