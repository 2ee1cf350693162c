//! Logging with tracing: JSON lines when stdout is not a terminal (Docker, systemd), readable
//! text on a terminal. JSON lines look like Pino's:
//! `{"level":"info","time":"2026-…Z","target":"docobo::app","msg":"listening","addr":"…"}`.
//!
//! Never log a secret: tokens and credentials are `SecretString`s, which print `[REDACTED]`.

use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber writing to stdout.
///
/// # Errors
/// The filter in `log.level` (or `RUST_LOG`) does not parse, or a subscriber is installed.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let filter = filter(config)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = if json {
        builder.event_format(JsonLines).try_init()
    } else {
        builder.with_target(false).try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// A subscriber writing JSON lines to `writer` (tests capture logs with it).
///
/// # Errors
/// The filter does not parse.
pub fn json_subscriber<W>(
    config: &LogConfig,
    writer: W,
) -> anyhow::Result<impl Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Ok(tracing_subscriber::fmt()
        .with_env_filter(filter(config)?)
        .with_writer(writer)
        .event_format(JsonLines)
        .finish())
}

fn filter(config: &LogConfig) -> anyhow::Result<EnvFilter> {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| config.level.clone());
    EnvFilter::try_new(&spec).map_err(|e| {
        anyhow::anyhow!("log.level {spec:?} is not a valid filter: {e}. Fix: use error, warn, info, debug or trace")
    })
}

/// Formats each event as one JSON object per line.
#[derive(Debug, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut object = Map::new();
        object.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_ascii_lowercase()),
        );
        object.insert(
            "time".into(),
            Value::String(jiff::Timestamp::now().to_string()),
        );
        object.insert("target".into(), Value::String(meta.target().to_owned()));
        let mut visitor = JsonVisitor(&mut object);
        event.record(&mut visitor);
        let line = serde_json::to_string(&object).map_err(|_| std::fmt::Error)?;
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = if field.name() == "message" {
            "msg"
        } else {
            field.name()
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
}
