//! Command-line flag groups of both binaries, flattened into each one's `Cli` with
//! `#[command(flatten)]`, and the parsers their flags share. Every flag can also be set from
//! the environment.
//!
//! The flag names, environment variables and defaults are part of the deployment interface
//! (manifests, tests, the demo): change them only together with those.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use clap::Args;

use crate::logging::{self, LogFormat, LoggingError};

/// What differs between the binaries' log flags: the default of `--log-filter`.
pub trait LogDefaults {
    /// Default `--log-filter` / `LOG_FILTER` (tracing EnvFilter syntax).
    const FILTER: &'static str;
}

/// Log output: `--log-format` / `LOG_FORMAT` and `--log-filter` / `LOG_FILTER`, with the
/// filter's default taken from `D`.
#[derive(Args)]
pub struct LogArgs<D: LogDefaults> {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "LOG_FILTER", default_value = D::FILTER)]
    pub log_filter: String,
    #[arg(skip)]
    defaults: PhantomData<fn() -> D>,
}

impl<D: LogDefaults> LogArgs<D> {
    /// Installs the process-wide logger these flags describe ([`logging::init`]).
    pub fn init(&self) -> Result<(), LoggingError> {
        logging::init(self.log_format, &self.log_filter)
    }
}

// By hand: a derived `Debug` would require `D: Debug` of the marker type.
impl<D: LogDefaults> fmt::Debug for LogArgs<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogArgs")
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .finish()
    }
}

/// Durations as `<n>ms`, `<n>s` or `<n>m`; a bare number is seconds. For `value_parser`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}': expected e.g. 500ms, 5s, 1m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration unit in '{text}': use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    struct TestLog;

    impl LogDefaults for TestLog {
        const FILTER: &'static str = "info,test=debug";
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs<TestLog>,
    }

    #[test]
    fn log_flags_parse() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["test", "--log-format", "json", "--log-filter", "warn"]).unwrap();
        assert_eq!(cli.log.log_format, LogFormat::Json);
        assert_eq!(cli.log.log_filter, "warn");
        assert!(Cli::try_parse_from(["test", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn log_flags_name_their_environment_and_take_the_binarys_default() {
        let command = Cli::command();
        let arg = |id: &str| command.get_arguments().find(|a| a.get_id() == id).unwrap();
        let env = |id: &str| arg(id).get_env().unwrap().to_str().unwrap().to_owned();
        let default = |id: &str| arg(id).get_default_values()[0].to_str().unwrap().to_owned();
        assert_eq!(env("log_format"), "LOG_FORMAT");
        assert_eq!(default("log_format"), "plain");
        assert_eq!(env("log_filter"), "LOG_FILTER");
        assert_eq!(default("log_filter"), "info,test=debug");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration(" 3s "), Ok(Duration::from_secs(3)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("").is_err());
    }
}
