//! Log output of both binaries: plain lines for people at a terminal, or one JSON object per
//! line for log pipelines.
//!
//! The JSON keys are stable, so queries written against them keep working:
//! `timestamp` (RFC 3339, UTC), `level` (`TRACE`…`ERROR`), `target` (the Rust module),
//! `message`, every structured field of the event at the top level (`namespace`, `name`,
//! `controller`, `error`, …), and `span` (name and fields of the innermost span, e.g. the
//! object a controller is reconciling) when the event happens inside one.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// The log format, chosen with `--log-format` / `LOG_FORMAT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line, with the keys listed in the module docs.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// A subscriber writing to `writer` in `format`, filtered by `filter` (EnvFilter syntax, e.g.
/// `info,kube=warn`). Colours are used only when `ansi` is set.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn Subscriber + Send + Sync>, LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Plain => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    })
}

/// Installs the process-wide subscriber writing to standard output.
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let ansi = std::io::stdout().is_terminal();
    subscriber(format, filter, std::io::stdout, ansi)?.try_init()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn lines(buffer: &Buffer) -> Vec<String> {
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn json_lines_carry_the_stable_keys_and_flattened_fields() {
        let buffer = Buffer::default();
        let sub = subscriber(LogFormat::Json, "info", buffer.clone(), false).unwrap();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("reconcile", object = "ns/app-1");
            let _entered = span.enter();
            tracing::warn!(
                namespace = "ns",
                name = "app-1",
                error = "boom",
                "could not patch"
            );
            tracing::debug!("filtered out");
        });
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "could not patch");
        assert_eq!(v["namespace"], "ns");
        assert_eq!(v["name"], "app-1");
        assert_eq!(v["error"], "boom");
        assert_eq!(v["target"], module_path!());
        assert_eq!(v["span"]["name"], "reconcile");
        assert_eq!(v["span"]["object"], "ns/app-1");
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && ts.contains('T'),
            "RFC 3339 UTC timestamp: {ts}"
        );
        assert!(v.get("fields").is_none(), "fields are flattened");
    }

    #[test]
    fn plain_lines_have_no_colour_codes_when_not_a_terminal() {
        let buffer = Buffer::default();
        let sub = subscriber(LogFormat::Plain, "info", buffer.clone(), false).unwrap();
        tracing::subscriber::with_default(sub, || tracing::info!(pod = "p", "released"));
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("released") && lines[0].contains("pod=\"p\""));
        assert!(!lines[0].contains('\u{1b}'), "{:?}", lines[0]);
    }

    #[test]
    fn a_bad_filter_is_a_clear_error() {
        let err = subscriber(LogFormat::Json, "info,[", std::io::sink, false)
            .err()
            .expect("rejected");
        assert!(err.to_string().contains("invalid log filter \"info,[\""));
    }
}
