//! Logging with tracing: JSON lines when stdout is not a terminal (Docker, systemd), readable
//! text on a terminal. JSON lines look like Pino's:
//! `{"level":"info","time":"2026-…Z","target":"docobo::app","msg":"listening","addr":"…"}`.
//!
//! Never log a secret: tokens and credentials are `SecretString`s, which print `[REDACTED]`.

use std::borrow::Cow;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::format::debug_fn;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber writing to stdout, and bridges the `log` crate to it
/// (rustls, reqwest, tungstenite and cranelift log with `log`).
///
/// # Errors
/// The filter in `log.level` (or `RUST_LOG`) does not parse, or a subscriber is installed.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    // `try_init` also installs tracing-log's `LogTracer`.
    let result = if json {
        json_subscriber(config, std::io::stdout)?.try_init()
    } else {
        text_subscriber(config, std::io::stdout)?.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// A subscriber writing readable text to `writer`: what [`init`] installs on a terminal.
/// (tracing-subscriber's text format already shows a bridged `log` record under its own
/// target, without its `log.*` fields.)
///
/// # Errors
/// The filter does not parse.
pub fn text_subscriber<W>(
    config: &LogConfig,
    writer: W,
) -> anyhow::Result<impl Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let fields = debug_fn(|writer, field, value| match field.name() {
        "message" => write!(writer, "{}", trim_build_paths(&format!("{value:?}"))),
        // A bridged `log` record's metadata, shown by the event formatter already.
        name if name.starts_with("log.") => Ok(()),
        name => write!(writer, "{name}={value:?}"),
    })
    .delimited(" ");
    Ok(tracing_subscriber::fmt()
        .with_env_filter(filter(config)?)
        .with_writer(writer)
        .with_target(false)
        .fmt_fields(fields)
        .finish())
}

/// `text` without the build machine's paths to crates.io and git dependencies (a dependency
/// that puts `file!()` in a message: tokio-tungstenite's traces): `/home/me/.cargo/registry/
/// src/index.crates.io-…/tokio-tungstenite-0.21.0/src/compat.rs` becomes
/// `tokio-tungstenite-0.21.0/src/compat.rs`.
fn trim_build_paths(text: &str) -> Cow<'_, str> {
    /// Where cargo unpacks dependencies, and how many folders follow before the crate's own.
    const ROOTS: &[(&str, usize)] = &[("/registry/src/", 1), ("/git/checkouts/", 2)];
    if !ROOTS.iter().any(|(root, _)| text.contains(root)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(char::is_whitespace) {
        let cut = ROOTS.iter().find_map(|(root, skip)| {
            let at = word.find(root)?;
            let start = word[..at].find('/').unwrap_or(at);
            let mut rest = &word[at + root.len()..];
            for _ in 0..*skip {
                rest = rest.split_once('/').map_or("", |(_, after)| after);
            }
            Some((&word[..start], rest))
        });
        match cut {
            Some((before, rest)) => {
                out.push_str(before);
                out.push_str(rest);
            }
            None => out.push_str(word),
        }
    }
    Cow::Owned(out)
}

/// A subscriber writing JSON lines to `writer`: what [`init`] installs when stdout is not a
/// terminal (tests capture logs with it).
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
        // A record from the `log` crate arrives as an event of tracing-log's with target
        // `log`, and its own target, module, file and line as `log.*` fields: show it under
        // its own target and drop the rest (the file is an absolute path on the build
        // machine, `~/.cargo/registry/src/…`).
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
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
        let mut visitor = JsonVisitor {
            object: &mut object,
            from_log: event.is_log(),
        };
        event.record(&mut visitor);
        let line = serde_json::to_string(&object).map_err(|_| std::fmt::Error)?;
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

struct JsonVisitor<'a> {
    object: &'a mut Map<String, Value>,
    /// A bridged `log` record: its `log.*` fields are metadata, not data.
    from_log: bool,
}

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let (name, value) = match (field.name(), value) {
            ("message", Value::String(text)) => {
                ("msg", Value::String(trim_build_paths(&text).into_owned()))
            }
            ("message", value) => ("msg", value),
            (name, _) if self.from_log && name.starts_with("log.") => return,
            (name, value) => (name, value),
        };
        self.object.insert(name.to_owned(), value);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing_log::log;

    use super::*;

    /// A `MakeWriter` that keeps what is written.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn text(&self) -> String {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Where a crate from crates.io was built: what `log` records carry in `file`.
    const BUILD_PATH: &str = "/home/builder/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/rustls-0.23.35/src/conn.rs";

    /// A record from a crate that logs with `log`, bridged as `LogTracer` does it.
    fn log_a_record(subscriber: impl Subscriber + Send + Sync + 'static) {
        tracing::subscriber::with_default(subscriber, || {
            tracing_log::format_trace(
                &log::Record::builder()
                    .args(format_args!("Sending warning alert CloseNotify"))
                    .level(log::Level::Warn)
                    .target("rustls::conn")
                    .module_path_static(Some("rustls::conn"))
                    .file_static(Some(BUILD_PATH))
                    .line(Some(1042))
                    .build(),
            )
            .expect("bridged");
        });
    }

    fn config(format: LogFormat) -> LogConfig {
        LogConfig {
            level: "info".into(),
            format,
        }
    }

    #[test]
    fn a_bridged_log_record_is_one_json_line_under_its_own_target_without_build_paths() {
        let out = Buffer::default();
        log_a_record(json_subscriber(&config(LogFormat::Json), out.clone()).expect("subscriber"));
        let text = out.text();
        let line: Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["level"], "warn", "{text}");
        assert_eq!(line["target"], "rustls::conn", "{text}");
        assert_eq!(line["msg"], "Sending warning alert CloseNotify", "{text}");
        let keys: Vec<&String> = line.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 4, "only level, time, target and msg: {text}");
        for path in [
            BUILD_PATH,
            ".cargo",
            "conn.rs",
            "log.file",
            "log.line",
            "log.module",
        ] {
            assert!(!text.contains(path), "{path:?} in {text}");
        }
    }

    #[test]
    fn a_bridged_log_record_in_text_has_no_build_paths_either() {
        let out = Buffer::default();
        log_a_record(text_subscriber(&config(LogFormat::Text), out.clone()).expect("subscriber"));
        let text = out.text();
        assert!(text.contains("Sending warning alert CloseNotify"), "{text}");
        for path in [".cargo", "conn.rs", "log.file", "log.line", "log.module"] {
            assert!(!text.contains(path), "{path:?} in {text}");
        }
    }

    #[test]
    fn build_paths_in_a_message_are_trimmed_to_the_crate() {
        let home = "/home/builder/.cargo";
        let message = format!(
            "{home}/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-tungstenite-0.21.0/src/compat.rs:149 Read.read"
        );
        assert_eq!(
            trim_build_paths(&message),
            "tokio-tungstenite-0.21.0/src/compat.rs:149 Read.read"
        );
        let git =
            format!("at ({home}/git/checkouts/serenity-0c1a2b3c4d5e6f70/5d2f9a1/src/http.rs:10)");
        // A git checkout's folders (repository and revision) go too.
        assert_eq!(trim_build_paths(&git), "at (src/http.rs:10)");
        assert_eq!(
            trim_build_paths("listening on 0.0.0.0:3000"),
            "listening on 0.0.0.0:3000"
        );
        assert!(matches!(trim_build_paths("no paths"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_build_path_in_a_bridged_message_does_not_reach_the_log() {
        let message = format!("{BUILD_PATH}:149 Read.read");
        for json in [true, false] {
            let out = Buffer::default();
            let format = if json {
                LogFormat::Json
            } else {
                LogFormat::Text
            };
            let record = |subscriber| {
                tracing::subscriber::with_default(subscriber, || {
                    tracing_log::format_trace(
                        &log::Record::builder()
                            .args(format_args!("{message}"))
                            .level(log::Level::Warn)
                            .target("tokio_tungstenite::compat")
                            .file_static(Some(BUILD_PATH))
                            .build(),
                    )
                    .expect("bridged");
                });
            };
            if json {
                record(
                    Box::new(json_subscriber(&config(format), out.clone()).expect("subscriber"))
                        as Box<dyn Subscriber + Send + Sync>,
                );
            } else {
                record(Box::new(
                    text_subscriber(&config(format), out.clone()).expect("subscriber"),
                ));
            }
            let text = out.text();
            assert!(
                text.contains("rustls-0.23.35/src/conn.rs:149 Read.read"),
                "{text}"
            );
            assert!(!text.contains(".cargo"), "{text}");
        }
    }

    #[test]
    fn docobo_events_keep_their_fields() {
        let out = Buffer::default();
        let subscriber =
            json_subscriber(&config(LogFormat::Json), out.clone()).expect("subscriber");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(addr = "127.0.0.1:3000", port = 3000_u64, "listening");
        });
        let line: Value = serde_json::from_str(out.text().trim()).expect("one JSON line");
        assert_eq!(line["msg"], "listening");
        assert_eq!(line["addr"], "127.0.0.1:3000");
        assert_eq!(line["port"], 3000);
        assert_eq!(line["target"], "docobo::telemetry::tests");
    }
}
